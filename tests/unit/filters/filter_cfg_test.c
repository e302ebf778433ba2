/* filter_cfg_test.c - opendkim.conf-style config files (filters/common/filter_cfg.c). */
#include "tests/unit/unit.h"
#include "filters/common/filter_cfg.h"
#include "lib/common.h"

static struct filter_cfg *parse_ok(const char *text)
{
	struct filter_cfg *cfg = NULL;
	const char *err = NULL;
	assert_int_equal(filter_cfg_parse(text, strlen(text), &cfg, &err), 0);
	assert_non_null(cfg);
	return cfg;
}

static void test_values(void **state)
{
	struct filter_cfg *cfg = parse_ok("# comment\n"
					  "  Socket   inet:8891@127.0.0.1  \r\n"
					  "\n"
					  "Mode sv # trailing comment\n"
					  "KeyFile /k#not-a-comment\n"
					  "Empty\n"
					  "mode v\n");
	assert_string_equal(filter_cfg_get(cfg, "socket"), "inet:8891@127.0.0.1");
	assert_string_equal(filter_cfg_get(cfg, "MODE"), "v"); /* last one wins */
	assert_string_equal(filter_cfg_get(cfg, "KeyFile"), "/k#not-a-comment");
	assert_string_equal(filter_cfg_get(cfg, "Empty"), "");
	assert_null(filter_cfg_get(cfg, "Missing"));
	assert_int_equal(cfg->v[0].line, 2);
	filter_cfg_free(&cfg);
	assert_null(cfg);
	filter_cfg_free(&cfg); /* NULL is fine */
}

static void test_typed(void **state)
{
	struct filter_cfg *cfg = parse_ok("A yes\nB off\nC maybe\nN 42\nBig 99999999999999999999999\n"
					  "Neg -1\nTrail 5x\n");
	const char *err;
	bool b;
	unsigned long n;
	assert_int_equal(filter_cfg_bool(cfg, "A", false, &b, &err), 0);
	assert_true(b);
	assert_int_equal(filter_cfg_bool(cfg, "B", true, &b, &err), 0);
	assert_false(b);
	assert_int_equal(filter_cfg_bool(cfg, "Z", true, &b, &err), 0);
	assert_true(b);
	assert_int_equal(filter_cfg_bool(cfg, "C", true, &b, &err), -1);
	assert_non_null(strstr(err, "line 3"));
	assert_int_equal(filter_cfg_uint(cfg, "N", 0, 0, 100, &n, &err), 0);
	assert_int_equal(n, 42);
	assert_int_equal(filter_cfg_uint(cfg, "N", 0, 0, 41, &n, &err), -1);
	assert_int_equal(filter_cfg_uint(cfg, "Big", 0, 0, ULONG_MAX, &n, &err), -1);
	assert_int_equal(filter_cfg_uint(cfg, "Neg", 0, 0, 100, &n, &err), -1);
	assert_int_equal(filter_cfg_uint(cfg, "Trail", 0, 0, 100, &n, &err), -1);
	assert_int_equal(filter_cfg_uint(cfg, "None", 7, 0, 100, &n, &err), 0);
	assert_int_equal(n, 7);
	filter_cfg_free(&cfg);
}

static void test_keys(void **state)
{
	static const char *const common[] = { "Socket", NULL };
	static const char *const own[] = { "Mode", NULL };
	struct filter_cfg *cfg = parse_ok("socket x\nMODE y\n");
	const char *err;
	assert_int_equal(filter_cfg_check_keys(cfg, common, own, &err), 0);
	filter_cfg_free(&cfg);
	cfg = parse_ok("Socket x\nSockt y\n");
	assert_int_equal(filter_cfg_check_keys(cfg, common, own, &err), -1);
	assert_non_null(strstr(err, "Sockt"));
	assert_non_null(strstr(err, "line 2"));
	filter_cfg_free(&cfg);
}

static void test_hostile(void **state)
{
	struct filter_cfg *cfg = NULL;
	const char *err;
	static const struct {
		const char *text;
		size_t len;
	} bad[] = {
		{ "Key val\0ue\n", 11 },          /* NUL */
		{ "Key \x01value\n", 11 },         /* control byte */
		{ "K\xc3\xa9y value\n", 12 },       /* 8-bit key */
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		assert_int_equal(filter_cfg_parse(bad[i].text, bad[i].len, &cfg, &err), -1);
		assert_null(cfg);
	}
	/* a line longer than the limit */
	size_t n = FILTER_CFG_MAX_LINE + 10;
	char *big = xmalloc(n);
	memset(big, 'a', n);
	big[3] = ' ';
	assert_int_equal(filter_cfg_parse(big, n, &cfg, &err), -1);
	assert_non_null(strstr(err, "longer"));
	free(big);
	/* many short lines are fine */
	struct buf_like {
		char *p;
		size_t n;
	} many = { xmalloc(100000), 0 };
	for (int i = 0; i < 10000; i++) {
		memcpy(many.p + many.n, "K v\n", 4);
		many.n += 4;
	}
	assert_int_equal(filter_cfg_parse(many.p, many.n, &cfg, &err), 0);
	assert_int_equal(cfg->n, 10000);
	filter_cfg_free(&cfg);
	free(many.p);
	assert_int_equal(filter_cfg_load("/nonexistent/x.conf", &cfg, &err), -1);
	assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_typed),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
