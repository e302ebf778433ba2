/*
 * buf_test.c - bounded buffers never pass their maximum; escaping is printable.
 */
#include "tests/unit/unit.h"

#include "lib/buf.h"
#include "lib/common.h"

static void test_append_respects_max(void **state)
{
	struct buf b;
	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "abcd", 4), 0);
	assert_int_equal(buf_append(&b, "efgh", 4), 0);
	assert_int_equal(buf_append(&b, "i", 1), -1);
	assert_int_equal(b.len, 8);
	assert_string_equal(buf_cstr(&b), "abcdefgh");
	assert_int_equal(buf_printf(&b, "%d", 1), -1);
	buf_consume(&b, 3);
	assert_string_equal(buf_cstr(&b), "defgh");
	assert_int_equal(buf_printf(&b, "%03d", 7), 0);
	assert_string_equal(buf_cstr(&b), "defgh007");
	buf_free(&b);
}

static void test_binary_safe(void **state)
{
	struct buf b;
	buf_init(&b, 100);
	assert_int_equal(buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(b.len, 3);
	assert_true(str_eq(buf_str(&b), (struct str){ "a\0b", 3 }));
	buf_free(&b);
}

static void test_escape(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		size_t limit;
		const char *out;
	} cases[] = {
		{ "plain", 5, 100, "plain" },
		{ "a\r\nb", 4, 100, "a\\015\\012b" },
		{ "back\\slash", 10, 100, "back\\134slash" },
		{ "\xff\x00", 2, 100, "\\377\\000" },
		{ "toolong", 7, 3, "too..." },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct buf b;
		buf_init(&b, 1000);
		assert_int_equal(buf_escape(&b, cases[i].in, cases[i].len, cases[i].limit), 0);
		assert_string_equal(buf_cstr(&b), cases[i].out);
		buf_free(&b);
	}
}

static void test_str_helpers(void **state)
{
	assert_true(str_case_eq(STR_LIT("MAIL"), STR_LIT("mail")));
	assert_false(str_case_eq(STR_LIT("MAIL"), STR_LIT("mai")));
	assert_true(str_case_prefix(STR_LIT("mail from:<>"), "MAIL FROM:"));
	assert_false(str_case_prefix(STR_LIT("mail"), "MAIL FROM:"));
	size_t r;
	assert_false(size_add(SIZE_MAX, 1, &r));
	assert_false(size_mul(SIZE_MAX / 2, 3, &r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_respects_max),
		cmocka_unit_test(test_binary_safe),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_str_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
