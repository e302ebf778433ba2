/*
 * smtpd_submit_text_test.c - sendmail input to queue content: CRLF, the
 * mbox From_ line, dropped headers (Bcc and friends) with their
 * continuations, the headers cleanup adds only when missing, the blank
 * line before a body that started without one, NUL and size limits.
 */
#include "tests/unit/unit.h"

#include "mta/smtpd/smtpd_submit_text.h"
#include "lib/common.h"

static const struct smtpd_submit_fill fill = { "u@h.test", "", "DATE", "<id@h.test>" };
#define ADDED "From: u@h.test\r\nDate: DATE\r\nMessage-ID: <id@h.test>\r\n"

struct text_case {
	const char *in;  /* sendmail input */
	const char *out; /* queue content */
	unsigned dropped; /* headers removed */
};

static const struct text_case cases[] = {
	{ "", ADDED "\r\n", 0 },
	{ "Subject: a\n\nbody\n", "Subject: a\r\n" ADDED "\r\nbody\r\n", 0 },
	{ "Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n" ADDED "\r\nbody\r\n", 0 },
	/* last line without a line end gets one */
	{ "Subject: a\n\nbody", "Subject: a\r\n" ADDED "\r\nbody\r\n", 0 },
	/* no blank line: the first non-header line starts the body */
	{ "Subject: a\nnot a header\n", "Subject: a\r\n" ADDED "\r\nnot a header\r\n", 0 },
	{ "just text\n", ADDED "\r\njust text\r\n", 0 },
	/* mbox envelope lines on top only */
	{ "From x@y Mon\n>From z\nSubject: a\n\nFrom me\n", "Subject: a\r\n" ADDED "\r\nFrom me\r\n", 0 },
	/* Bcc and its continuation go; so do the other message_drop_headers */
	{ "To: a@b\nBcc: c@d,\n e@f\nSubject: s\n\nx\n", "To: a@b\r\nSubject: s\r\n" ADDED "\r\nx\r\n", 1 },
	{ "Resent-Bcc: x\nContent-Length: 3\nReturn-Path: <r@s>\nBCC : y\n\nx\n", ADDED "\r\nx\r\n", 4 },
	/* present headers are not added again (any case) */
	{ "FROM: me\ndate: d\nmessage-id: <m@x>\n\nx\n", "FROM: me\r\ndate: d\r\nmessage-id: <m@x>\r\n\r\nx\r\n", 0 },
	/* dots are data: no unstuffing, no end */
	{ "S: a\n\n.\n..\n", "S: a\r\n" ADDED "\r\n.\r\n..\r\n", 0 },
	/* a header continuation line that is not dropped stays */
	{ "Subject: a\n\tb\n\nx\n", "Subject: a\r\n\tb\r\n" ADDED "\r\nx\r\n", 0 },
	/* CR inside a line stays a byte; CRCRLF loses one CR only */
	{ "S: a\rb\n\nx\r\r\n", "S: a\rb\r\n" ADDED "\r\nx\r\r\n", 0 },
};

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct buf out;
		struct smtpd_submit_info info;
		buf_init(&out, 1 << 20);
		assert_int_equal(smtpd_submit_text_convert(cases[i].in, strlen(cases[i].in), &fill, &out, &info), 0);
		if (strcmp(buf_cstr(&out), cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\"", i, buf_cstr(&out));
		assert_int_equal(info.dropped, cases[i].dropped);
		buf_free(&out);
	}
}

static void test_from_with_full_name(void **state)
{
	(void)state;
	struct smtpd_submit_fill f = { "u@h.test", "Doe, John \"JD\"", "D", "<i@h>" };
	struct buf out;
	struct smtpd_submit_info info;
	buf_init(&out, 4096);
	assert_int_equal(smtpd_submit_text_convert("\n", 1, &f, &out, &info), 0);
	assert_string_equal(buf_cstr(&out),
			    "From: \"Doe, John \\\"JD\\\"\" <u@h.test>\r\nDate: D\r\nMessage-ID: <i@h>\r\n\r\n");
	assert_true(info.added_from && info.added_date && info.added_msgid);
	assert_string_equal(info.msgid, "<i@h>");
	buf_reset(&out);
	struct smtpd_submit_fill plain = { "u@h.test", "Jane Roe", "D", "<i@h>" };
	assert_int_equal(smtpd_submit_text_convert("\n", 1, &plain, &out, &info), 0);
	assert_non_null(strstr(buf_cstr(&out), "From: Jane Roe <u@h.test>\r\n"));
	/* the null sender gets no From: */
	buf_reset(&out);
	struct smtpd_submit_fill null = { "", "X", "D", "<i@h>" };
	assert_int_equal(smtpd_submit_text_convert("\n", 1, &null, &out, &info), 0);
	assert_null(strstr(buf_cstr(&out), "From:"));
	assert_false(info.added_from);
	buf_free(&out);
}

static void test_info(void **state)
{
	(void)state;
	struct buf out;
	struct smtpd_submit_info info;
	buf_init(&out, 4096);
	const char in[] = "Received: a\nReceived: b\nMessage-ID:   <k@x>  \n\nx\0y\n";
	assert_int_equal(smtpd_submit_text_convert(in, sizeof(in) - 1, &fill, &out, &info), 0);
	assert_int_equal(info.received, 2);
	assert_true(info.saw_nul);
	assert_string_equal(info.msgid, "<k@x>");
	assert_false(info.added_msgid);
	buf_free(&out);
}

static void test_limit(void **state)
{
	(void)state;
	struct buf out;
	struct smtpd_submit_info info;
	buf_init(&out, 40);
	const char in[] = "Subject: a\n\n0123456789012345678901234567890123456789\n";
	assert_int_equal(smtpd_submit_text_convert(in, sizeof(in) - 1, &fill, &out, &info), -1);
	assert_true(out.len <= 40);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_from_with_full_name),
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
