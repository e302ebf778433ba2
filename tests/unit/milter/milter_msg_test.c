/*
 * milter_msg_test.c - the message a chain edits: parsing with CRLF and bare
 * LF, byte-exact rendering, header edits with Postfix's index rules, hidden
 * headers, limits.
 */
#include "tests/unit/unit.h"

#include "mta/milter/milter_msg.h"
#include "lib/common.h"

static char *render(const struct milter_msg *m)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(milter_msg_render(m, &b), 0);
	char *s = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return s;
}

static void test_parse_render_exact(void **state)
{
	static const char in[] = "From: a@example.net\r\nSubject:  two  spaces\r\n\tfolded\r\n"
				 "X-Empty:\r\nX-Tab:\tv\r\n\r\nbody\r\n\r\nlast";
	struct milter_msg m;
	const char *err;
	milter_msg_init(&m, 1 << 20);
	assert_int_equal(milter_msg_parse(&m, in, sizeof(in) - 1, &err), 0);
	assert_int_equal(m.n, 4);
	assert_string_equal(m.hdrs[1].name, "Subject");
	assert_string_equal(m.hdrs[1].value, "  two  spaces\n\tfolded");
	assert_string_equal(m.hdrs[2].value, "");
	char *out = render(&m);
	assert_string_equal(out, in);
	free(out);
	/* as sent to a filter: one space removed unless LEADSPC */
	assert_string_equal(milter_msg_value_out(m.hdrs[1].value, false), " two  spaces\n\tfolded");
	assert_string_equal(milter_msg_value_out(m.hdrs[1].value, true), "  two  spaces\n\tfolded");
	assert_string_equal(milter_msg_value_out(m.hdrs[3].value, false), "\tv");
	milter_msg_free(&m);
}

static void test_parse_lf(void **state)
{
	static const char in[] = "A: 1\nB: 2\n cont\n\nline1\nline2\n";
	struct milter_msg m;
	const char *err;
	milter_msg_init(&m, 1 << 20);
	assert_int_equal(milter_msg_parse(&m, in, sizeof(in) - 1, &err), 0);
	char *out = render(&m);
	assert_string_equal(out, "A: 1\r\nB: 2\r\n cont\r\n\r\nline1\r\nline2\r\n");
	free(out);
	milter_msg_free(&m);
	/* a line without a colon ends the headers; no body separator needed */
	milter_msg_init(&m, 1 << 20);
	assert_int_equal(milter_msg_parse(&m, "A: 1\nnot a header\n", 18, &err), 0);
	assert_int_equal(m.n, 1);
	assert_int_equal(m.body.len, strlen("not a header\r\n"));
	milter_msg_free(&m);
}

static void test_chgheader(void **state)
{
	static const char in[] = "X-A: 1\r\nx-a: 2\r\nReceived: ours\r\nX-A: 3\r\n\r\n";
	struct milter_msg m;
	const char *err;
	milter_msg_init(&m, 1 << 20);
	assert_int_equal(milter_msg_parse(&m, in, sizeof(in) - 1, &err), 0);
	assert_int_equal(milter_msg_chgheader(&m, "X-A", 2, " two"), 0);
	assert_string_equal(m.hdrs[1].value, " two");
	assert_int_equal(milter_msg_chgheader(&m, "x-A", 0, " one"), 0); /* 0 is 1 */
	assert_string_equal(m.hdrs[0].value, " one");
	assert_int_equal(milter_msg_chgheader(&m, "X-A", 3, ""), 0); /* delete third */
	assert_int_equal(m.n, 3);
	assert_int_equal(milter_msg_chgheader(&m, "X-A", 9, " new"), 0); /* past the end: append */
	assert_int_equal(m.n, 4);
	assert_string_equal(m.hdrs[3].name, "X-A");
	assert_int_equal(milter_msg_chgheader(&m, "X-None", 1, ""), 0); /* deleting nothing */
	assert_int_equal(m.n, 4);
	char *out = render(&m);
	assert_string_equal(out, "X-A: one\r\nx-a: two\r\nReceived: ours\r\nX-A: new\r\n\r\n");
	free(out);
	milter_msg_free(&m);
}

static void test_hidden_and_insert(void **state)
{
	struct milter_msg m;
	milter_msg_init(&m, 1 << 20);
	assert_int_equal(milter_msg_add(&m, "Received", 8, " by us", 6, true), 0);
	assert_int_equal(milter_msg_add(&m, "Received", 8, " by them", 8, false), 0);
	assert_int_equal(milter_msg_add(&m, "Subject", 7, " s", 2, false), 0);
	/* index 1 names the first *visible* Received */
	assert_int_equal(milter_msg_chgheader(&m, "Received", 1, " changed"), 0);
	assert_string_equal(m.hdrs[0].value, " by us");
	assert_string_equal(m.hdrs[1].value, " changed");
	/* insheader counts the stored message, hidden header included */
	assert_int_equal(milter_msg_insheader(&m, 0, "DKIM-Signature", " v=1"), 0);
	assert_int_equal(milter_msg_insheader(&m, 2, "X-Mid", " m"), 0);
	assert_int_equal(milter_msg_insheader(&m, 4000000000u, "X-End", " e"), 0);
	char *out = render(&m);
	assert_string_equal(out, "DKIM-Signature: v=1\r\nReceived: by us\r\nX-Mid: m\r\nReceived: changed\r\n"
				 "Subject: s\r\nX-End: e\r\n\r\n");
	free(out);
	milter_msg_free(&m);
}

static void test_value_in(void **state)
{
	char *v = milter_msg_value_in("a\r\n\tb", 5, false);
	assert_string_equal(v, " a\n\tb");
	free(v);
	v = milter_msg_value_in("\tverbatim", 9, true);
	assert_string_equal(v, "\tverbatim");
	free(v);
}

/* A value with bare line ends (as a milter may send) stays one header. */
static void test_render_no_injection(void **state)
{
	struct milter_msg m;
	milter_msg_init(&m, 1 << 20);
	static const char a[] = " one\nTwo: x\n\nbody\n", b[] = " b\n\tc";
	assert_int_equal(milter_msg_add(&m, "X-A", 3, a, sizeof(a) - 1, false), 0);
	assert_int_equal(milter_msg_add(&m, "X-B", 3, b, sizeof(b) - 1, false), 0);
	assert_int_equal(milter_msg_body_append(&m, "real\r\n", 6), 0);
	char *out = render(&m);
	assert_string_equal(out, "X-A: one\r\n\tTwo: x\r\n\t\r\n\tbody\r\nX-B: b\r\n\tc\r\n\r\nreal\r\n");
	free(out);
	milter_msg_free(&m);
}

static void test_limits(void **state)
{
	struct milter_msg m;
	const char *err;
	milter_msg_init(&m, 16);
	assert_int_equal(milter_msg_add(&m, "A", 1, "0123456789", 10, false), 0);
	assert_int_equal(milter_msg_add(&m, "B", 1, "0123456789", 10, false), -1);
	assert_int_equal(m.n, 1);
	assert_int_equal(milter_msg_chgheader(&m, "A", 1, "0123456789012345"), -1);
	assert_string_equal(m.hdrs[0].value, "0123456789");
	assert_int_equal(milter_msg_insheader(&m, 0, "C", "0123456789"), -1);
	assert_int_equal(milter_msg_body_append(&m, "01234567890123456", 17), -1);
	milter_msg_free(&m);
	milter_msg_init(&m, 8);
	assert_int_equal(milter_msg_parse(&m, "A: 1\r\n\r\n0123456789", 18, &err), -1);
	milter_msg_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_render_exact), cmocka_unit_test(test_parse_lf),
		cmocka_unit_test(test_chgheader),          cmocka_unit_test(test_hidden_and_insert),
		cmocka_unit_test(test_value_in),           cmocka_unit_test(test_limits),
		cmocka_unit_test(test_render_no_injection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
