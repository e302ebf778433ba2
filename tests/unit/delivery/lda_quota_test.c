/*
 * lda_quota_test.c - maildirsize parsing, arithmetic and the check itself.
 */
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery/lda_quota.h"
#include "lib/common.h"

static void test_parse_limit(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t bytes, count;
	} cases[] = {
		{ "1000S,10C", 0, 1000, 10 },
		{ "10C,1000S", 0, 1000, 10 },
		{ "1000S", 0, 1000, 0 },
		{ "10C", 0, 0, 10 },
		{ "0S", 0, 0, 0 },
		{ "", 0, 0, 0 },
		{ "1000", -1, 0, 0 },
		{ "1000X", -1, 0, 0 },
		{ "S", -1, 0, 0 },
		{ "1S,2S", -1, 0, 0 },
		{ "1S,", -1, 0, 0 },
		{ "1S;2C", -1, 0, 0 },
		{ "-1S", -1, 0, 0 },
		{ "99999999999999999999999S", -1, 0, 0 },
		{ "18446744073709551615S", 0, UINT64_MAX, 0 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct lda_quota_limit lim;
		assert_int_equal(lda_quota_parse_limit(str_of(cases[i].in), &lim), cases[i].ret);
		if (cases[i].ret == 0) {
			assert_int_equal(lim.bytes, cases[i].bytes);
			assert_int_equal(lim.count, cases[i].count);
		}
	}
}

static void test_parse_file(void **state)
{
	static const struct {
		const char *in;
		int ret;
		int64_t bytes, count;
		unsigned lines;
	} cases[] = {
		{ "1000S,10C\n", 0, 0, 0, 0 },
		{ "1000S,10C\n500 5\n", 0, 500, 5, 1 },
		{ "1000S,10C\n500 5\n100 1\n-50 -1\n", 0, 550, 5, 3 },
		{ "1000S\n  500   5\n", 0, 500, 5, 1 },
		{ "1000S,10C\n500 5", -1, 0, 0, 0 },  /* torn append */
		{ "1000S,10C\n500\n", -1, 0, 0, 0 },
		{ "1000S,10C\nabc 1\n", -1, 0, 0, 0 },
		{ "", -1, 0, 0, 0 },
		{ "1000S,10C", -1, 0, 0, 0 },
		{ "garbage\n1 1\n", -1, 0, 0, 0 },
		{ "1S\n9223372036854775807 1\n1 1\n", -1, 0, 0, 0 }, /* overflow */
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct lda_quota_limit lim;
		struct lda_quota_usage use;
		assert_int_equal(lda_quota_parse_file(str_of(cases[i].in), &lim, &use), cases[i].ret);
		if (cases[i].ret == 0) {
			assert_int_equal(use.bytes, cases[i].bytes);
			assert_int_equal(use.count, cases[i].count);
			assert_int_equal(use.lines, cases[i].lines);
		}
	}
}

static void test_exceeds(void **state)
{
	struct lda_quota_limit lim = { 1000, 10 };
	struct lda_quota_usage use = { 900, 5, 1 };
	assert_false(lda_quota_exceeds(&lim, &use, 100));
	assert_true(lda_quota_exceeds(&lim, &use, 101));
	assert_true(lda_quota_exceeds(&lim, &use, UINT64_MAX));
	use.count = 10;
	assert_true(lda_quota_exceeds(&lim, &use, 1));
	use = (struct lda_quota_usage){ -50, -3, 1 }; /* negative sums count as empty */
	assert_false(lda_quota_exceeds(&lim, &use, 1000));
	lim = (struct lda_quota_limit){ 0, 0 };
	use = (struct lda_quota_usage){ INT64_MAX, INT64_MAX, 1 };
	assert_false(lda_quota_exceeds(&lim, &use, UINT64_MAX));
	use = (struct lda_quota_usage){ 2000, 0, 1 };
	lim.bytes = 1000;
	assert_true(lda_quota_exceeds(&lim, &use, 0));
	char out[64];
	lda_quota_format_limit(&(struct lda_quota_limit){ 5, 6 }, out, sizeof(out));
	assert_string_equal(out, "5S,6C");
	lda_quota_format_limit(&(struct lda_quota_limit){ 0, 6 }, out, sizeof(out));
	assert_string_equal(out, "6C");
	lda_quota_format_limit(&(struct lda_quota_limit){ 5, 0 }, out, sizeof(out));
	assert_string_equal(out, "5S");
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_check(void **state)
{
	char tmpl[] = "/tmp/lda_quota_test.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *p;
	const char *subs[] = { "tmp", "new", "cur", ".A", ".A/new", ".A/cur", ".A/tmp" };
	for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
		p = xasprintf("%s/%s", tmpl, subs[i]);
		assert_int_equal(mkdir(p, 0700), 0);
		free(p);
	}
	p = xasprintf("%s/new/1.M1P1.h,S=300,W=310", tmpl);
	put(p, "x");
	free(p);
	p = xasprintf("%s/.A/cur/1.M2P1.h:2,S", tmpl); /* no S=: stat size 5 */
	put(p, "hello");
	free(p);
	int rootfd = open(tmpl, O_RDONLY | O_DIRECTORY);
	struct lda_status st = { 0 };
	bool active;
	/* no limit anywhere: nothing happens */
	assert_int_equal(lda_quota_check(rootfd, tmpl, NULL, 10, true, &active, &st), 0);
	assert_false(active);
	char *msz = xasprintf("%s/maildirsize", tmpl);
	struct stat sb;
	assert_int_equal(stat(msz, &sb), -1);
	/* an -o limit: the file is created from a scan (305 bytes, 2 messages) */
	struct lda_quota_limit lim = { 400, 0 };
	assert_int_equal(lda_quota_check(rootfd, tmpl, &lim, 95, true, &active, &st), 0);
	assert_true(active);
	FILE *f = fopen(msz, "r");
	char line[100];
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "400S\n");
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "305 2\n");
	fclose(f);
	assert_int_equal(lda_quota_check(rootfd, tmpl, &lim, 96, true, &active, &st), -1);
	assert_int_equal(st.ex, 75);
	assert_string_equal(st.dsn, "4.2.2");
	assert_int_equal(lda_quota_check(rootfd, tmpl, &lim, 96, false, &active, &st), -1);
	assert_int_equal(st.ex, 77);
	assert_string_equal(st.dsn, "5.2.2");
	/* the file's own limit line, deltas appended */
	put(msz, "1000S,3C\n305 2\n");
	lda_quota_add(rootfd, 50);
	f = fopen(msz, "r");
	assert_non_null(fgets(line, sizeof(line), f));
	assert_non_null(fgets(line, sizeof(line), f));
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "50 1\n");
	fclose(f);
	/* 3 messages counted -> over the 3C limit; several data lines force a
	 * rescan which finds only the 2 real files -> accepted */
	assert_int_equal(lda_quota_check(rootfd, tmpl, NULL, 10, true, &active, &st), 0);
	/* a file that reached 5120 octets is recalculated, even when valid */
	f = fopen(msz, "w");
	fputs("1000S,10C\n", f);
	for (int i = 0; i < 1400; i++) /* 5610 octets */
		fputs("0 0\n", f);
	fclose(f);
	assert_int_equal(lda_quota_check(rootfd, tmpl, NULL, 10, true, &active, &st), 0);
	assert_true(active);
	assert_int_equal(stat(msz, &sb), 0);
	assert_true(sb.st_size < 100);
	f = fopen(msz, "r");
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "1000S,10C\n");
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "305 2\n");
	fclose(f);
	/* a garbage file with a limit given: recalculated */
	put(msz, "junk\n");
	assert_int_equal(lda_quota_check(rootfd, tmpl, &lim, 10, true, &active, &st), 0);
	f = fopen(msz, "r");
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "400S\n");
	fclose(f);
	close(rootfd);
	p = xasprintf("rm -rf %s", tmpl);
	assert_int_equal(system(p), 0);
	free(p);
	free(msz);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_limit),
		cmocka_unit_test(test_parse_file),
		cmocka_unit_test(test_exceeds),
		cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
