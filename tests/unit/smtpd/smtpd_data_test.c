/*
 * smtpd_data_test.c - DATA ends only on CRLF.CRLF (every smuggling variant
 * is content), dot-unstuffing, bare LF/CR handling, size limit, header
 * scanning, header_size_limit; every case also fed one byte at a time.
 */
#include "tests/unit/unit.h"

#include "mta/smtpd/smtpd_data.h"
#include "lib/common.h"

struct data_case {
	const char *in;       /* client bytes after 354 */
	bool end;             /* end of DATA expected */
	size_t used;          /* bytes consumed at the end (when end) */
	const char *content;  /* stored content */
	bool bare_lf;         /* saw_bare_lf expected */
	bool bare_cr;         /* saw_bare_cr expected */
};

static const struct data_case cases[] = {
	{ ".\r\n", true, 3, "", false, false },
	{ "a\r\n.\r\n", true, 6, "a\r\n", false, false },
	{ "a\r\n.\r\nMAIL FROM:<x>\r\n", true, 6, "a\r\n", false, false },
	{ "..a\r\n.\r\n", true, 8, ".a\r\n", false, false },
	{ "..\r\n.\r\n", true, 7, ".\r\n", false, false },
	{ ".x\r\n.\r\n", true, 7, "x\r\n", false, false },
	/* smuggling variants never end DATA */
	{ "a\n.\nb\r\n", false, 0, "a\r\n.\r\nb\r\n", true, false },
	{ "a\n.\r\nb\r\n", false, 0, "a\r\n.\r\nb\r\n", true, false },
	{ "a\r\n.\nb\r\n", false, 0, "a\r\n.\r\nb\r\n", true, false },
	{ "a\r.\r\nb\r\n", false, 0, "a\r.\r\nb\r\n", false, true },
	{ "a\r\n.\rb\r\n", false, 0, "a\r\n\rb\r\n", false, true },
	{ "a\r\n.\r\r\n", false, 0, "a\r\n\r\r\n", false, true },
	/* after a bare-LF line a real end still needs its own CRLF first */
	{ "a\n.\r\n.\r\n", true, 8, "a\r\n.\r\n", true, false },
	/* bare CR inside a line is a data byte */
	{ "a\rb\r\n.\r\n", true, 8, "a\rb\r\n", false, true },
	/* NUL passes through (the caller refuses it) */
	{ "a\0b\r\n.\r\n", true, 8, "a\0b\r\n", false, false },
};

static void run_case(const struct data_case *c, size_t chunk, size_t idx)
{
	size_t n = strlen(c->in);
	if (idx == ARRAY_LEN(cases) - 1)
		n = 8; /* the NUL case */
	struct smtpd_data d;
	smtpd_data_init(&d, SMTPD_BARE_LF_NORMALIZE, false, 0);
	struct buf out;
	buf_init(&out, 4096);
	size_t off = 0;
	bool ended = false;
	while (off < n) {
		size_t k = n - off < chunk ? n - off : chunk;
		size_t used;
		enum smtpd_data_result r = smtpd_data_feed(&d, c->in + off, k, &out, &used);
		off += used;
		if (r == SMTPD_DATA_END) {
			ended = true;
			break;
		}
	}
	if (ended != c->end)
		fail_msg("case %zu chunk %zu: end %d", idx, chunk, ended);
	if (ended)
		assert_int_equal(off, c->used);
	size_t clen = idx == ARRAY_LEN(cases) - 1 ? 5 : strlen(c->content);
	if (out.len != clen || (clen > 0 && memcmp(out.data, c->content, clen) != 0))
		fail_msg("case %zu chunk %zu: content '%s'", idx, chunk, buf_cstr(&out));
	assert_int_equal(d.saw_bare_lf, c->bare_lf);
	assert_int_equal(d.saw_bare_cr, c->bare_cr);
	assert_int_equal(d.size, clen);
	buf_free(&out);
}

static void test_data_table(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		run_case(&cases[i], 1, i);
		run_case(&cases[i], 2, i);
		run_case(&cases[i], 1000, i);
	}
	/* NUL flagged */
	struct smtpd_data d;
	struct buf out;
	size_t used;
	buf_init(&out, 100);
	smtpd_data_init(&d, SMTPD_BARE_LF_REJECT, false, 0);
	smtpd_data_feed(&d, "a\0b\r\n", 5, &out, &used);
	assert_true(d.saw_nul);
	buf_free(&out);
}

static void test_size_limit(void **state)
{
	struct smtpd_data d;
	struct buf out;
	size_t used;
	buf_init(&out, 1000);
	smtpd_data_init(&d, SMTPD_BARE_LF_NORMALIZE, false, 10);
	assert_int_equal(smtpd_data_feed(&d, "0123456789\r\n", 12, &out, &used), SMTPD_DATA_MORE);
	assert_true(d.too_big);
	assert_true(out.len <= 10);
	/* still finds the end */
	assert_int_equal(smtpd_data_feed(&d, "more\r\n.\r\nX", 10, &out, &used), SMTPD_DATA_END);
	assert_int_equal(used, 9);
	assert_int_equal(d.size, 18);
	buf_free(&out);
}

static void test_headers(void **state)
{
	const char *msg = "Received: from a\r\n"
			  "Received: from b\r\n"
			  "Message-ID:\r\n <abc@example.test>\r\n"
			  "Subject: x\r\n"
			  "\r\n"
			  "Message-ID: <body@not.header>\r\n"
			  "Received: body\r\n"
			  ".\r\n";
	struct smtpd_data d;
	struct buf out;
	size_t used;
	buf_init(&out, 8192);
	smtpd_data_init(&d, SMTPD_BARE_LF_NORMALIZE, false, 0);
	for (size_t i = 0; i < strlen(msg); i++) {
		if (smtpd_data_feed(&d, msg + i, 1, &out, &used) == SMTPD_DATA_END)
			break;
	}
	assert_string_equal(d.msgid, "<abc@example.test>");
	assert_int_equal(d.received, 2);
	assert_false(d.in_header);

	/* a long Message-ID is cut, never overflows */
	char big[2000];
	memcpy(big, "Message-ID: <", 13);
	memset(big + 13, 'x', 1900);
	memcpy(big + 1913, ">\r\n\r\n.\r\n", 9);
	smtpd_data_init(&d, SMTPD_BARE_LF_NORMALIZE, false, 0);
	buf_reset(&out);
	assert_int_equal(smtpd_data_feed(&d, big, strlen(big), &out, &used), SMTPD_DATA_END);
	assert_int_equal(strlen(d.msgid), SMTPD_DATA_MSGID_MAX);
	buf_free(&out);
}

/* header_size_limit: each logical header is cut at the limit (folds count
 * one byte), continuation lines past it are dropped whole, the header
 * block still ends at its empty line, the body is never cut. */
struct hlimit_case {
	uint64_t limit;       /* header_size_limit */
	const char *in;       /* client bytes after 354 */
	const char *content;  /* stored content */
	bool truncated;       /* header_truncated expected */
};

static const struct hlimit_case hlimit_cases[] = {
	{ 10, "A: 1234567\r\n\r\nbody\r\n.\r\n", "A: 1234567\r\n\r\nbody\r\n", false },
	{ 10, "A: 12345678\r\n\r\nb\r\n.\r\n", "A: 1234567\r\n\r\nb\r\n", true },
	/* every header has its own budget */
	{ 6, "A: 1234\r\nB: 5678\r\n\r\n.\r\n", "A: 123\r\nB: 567\r\n\r\n", true },
	/* folded: "A: 12" + fold + " 34" = 9 bytes fit in 10; the next fold
	 * and its first byte do not: that line is dropped, and the one after */
	{ 10, "A: 12\r\n 34\r\n 56\r\n\t78\r\nB: x\r\n\r\n.\r\n", "A: 12\r\n 34\r\nB: x\r\n\r\n", true },
	/* a continuation that fits only partly is cut, and never empty */
	{ 8, "A: 12\r\n 3456\r\n\r\n.\r\n", "A: 12\r\n 3\r\n\r\n", true },
	/* cut inside the first line: every continuation goes */
	{ 4, "Subj: long\r\n more\r\n\r\nbody line longer than four\r\n.\r\n",
	  "Subj\r\n\r\nbody line longer than four\r\n", true },
	/* bare LF ends lines inside a header too */
	{ 6, "A: 1234\n 5\nB: 1\r\n\r\n.\r\n", "A: 123\r\nB: 1\r\n\r\n", true },
	/* a first line that is no header field is the body's: not cut */
	{ 4, "no header here at all\r\n.\r\n", "no header here at all\r\n", false },
	/* the obsolete "Name :" form is a header field */
	{ 6, "Name : value\r\n\r\n.\r\n", "Name :\r\n\r\n", true },
	/* dot-unstuffing happens before the count */
	{ 6, "..A: 12345\r\n\r\n.\r\n", ".A: 12\r\n\r\n", true },
};

static void test_header_limit(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(hlimit_cases); i++) {
		const struct hlimit_case *c = &hlimit_cases[i];
		for (size_t chunk = 1; chunk <= 1000; chunk = chunk == 1 ? 3 : chunk * 1000) {
			struct smtpd_data d;
			struct buf out;
			buf_init(&out, 4096);
			smtpd_data_init(&d, SMTPD_BARE_LF_NORMALIZE, false, 0);
			smtpd_data_header_limit(&d, c->limit);
			size_t n = strlen(c->in), off = 0;
			bool ended = false;
			while (off < n && !ended) {
				size_t k = n - off < chunk ? n - off : chunk, used;
				ended = smtpd_data_feed(&d, c->in + off, k, &out, &used) == SMTPD_DATA_END;
				off += used;
			}
			if (!ended || strcmp(buf_cstr(&out), c->content) != 0)
				fail_msg("case %zu chunk %zu: ended %d content '%s'", i, chunk, ended,
					 buf_cstr(&out));
			assert_int_equal(d.size, out.len);
			assert_int_equal(d.header_truncated, c->truncated);
			buf_free(&out);
		}
	}
	/* one 200 KiB header under the default limit: 102400 bytes kept, the
	 * body intact, memory bounded by what is stored */
	size_t big = 200 * 1024;
	char *msg = xmalloc(big + 64);
	memcpy(msg, "X-Big: ", 7);
	memset(msg + 7, 'a', big - 7);
	memcpy(msg + big, "\r\nB: 1\r\n\r\nbody\r\n.\r\n", 20);
	struct smtpd_data d;
	struct buf out;
	size_t used;
	buf_init(&out, 1 << 20);
	smtpd_data_init(&d, SMTPD_BARE_LF_NORMALIZE, false, 0);
	smtpd_data_header_limit(&d, 102400);
	assert_int_equal(smtpd_data_feed(&d, msg, big + 19, &out, &used), SMTPD_DATA_END);
	assert_int_equal(out.len, 102400 + strlen("\r\nB: 1\r\n\r\nbody\r\n"));
	assert_memory_equal(out.data + 102400, "\r\nB: 1\r\n\r\nbody\r\n", 16);
	assert_true(d.header_truncated);
	assert_false(d.in_header);
	buf_free(&out);
	free(msg);
}

static void test_bdat_mode(void **state)
{
	struct smtpd_data d;
	struct buf out;
	size_t used;
	buf_init(&out, 1000);
	smtpd_data_init(&d, SMTPD_BARE_LF_NORMALIZE, true, 0);
	/* no dot rules, no terminator, bare LF normalised */
	assert_int_equal(smtpd_data_feed(&d, "a\r\n.\r\n..b\nc\r", 13, &out, &used), SMTPD_DATA_MORE);
	smtpd_data_finish(&d, &out);
	assert_string_equal(buf_cstr(&out), "a\r\n.\r\n..b\r\nc\r");
	assert_true(d.saw_bare_lf);
	assert_true(d.saw_bare_cr);
	buf_free(&out);
}

static void test_modes(void **state)
{
	assert_int_equal(smtpd_data_bare_lf_mode("reject"), SMTPD_BARE_LF_REJECT);
	assert_int_equal(smtpd_data_bare_lf_mode("normalize"), SMTPD_BARE_LF_NORMALIZE);
	assert_int_equal(smtpd_data_bare_lf_mode("yes"), SMTPD_BARE_LF_NORMALIZE);
	assert_int_equal(smtpd_data_bare_lf_mode("note"), SMTPD_BARE_LF_NORMALIZE);
	assert_int_equal(smtpd_data_bare_lf_mode("no"), SMTPD_BARE_LF_ALLOW);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_table),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_header_limit),
		cmocka_unit_test(test_bdat_mode),
		cmocka_unit_test(test_modes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
