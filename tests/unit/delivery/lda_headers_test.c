/*
 * lda_headers_test.c - added headers, From_ envelope lines, CRLF, loops.
 */
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <unistd.h>

#include "delivery/lda_headers.h"
#include "lib/common.h"

struct prep_case {
	const char *in;
	const char *sender, *orig, *final;
	int ret;
	const char *out; /* expected output, or the DSN when ret is -1 */
};

static void test_prepare(void **state)
{
	static const struct prep_case cases[] = {
		{ "Subject: x\n\nb\n", "a@b", NULL, "u@d", 0,
		  "Return-Path: <a@b>\nDelivered-To: u@d\nSubject: x\n\nb\n" },
		{ "Subject: x\r\n\r\nb\r\n", "<a@b>", "o@d", "u@d", 0,
		  "Return-Path: <a@b>\nX-Original-To: o@d\nDelivered-To: u@d\nSubject: x\n\nb\n" },
		{ "S: x\n\nb", "", NULL, "u@d", 0, "Return-Path: <>\nDelivered-To: u@d\nS: x\n\nb" },
		{ "S: x\n\nb", "<>", NULL, "u@d", 0, "Return-Path: <>\nDelivered-To: u@d\nS: x\n\nb" },
		/* no sender known: no Return-Path */
		{ "S: x\n\n", NULL, NULL, "u@d", 0, "Delivered-To: u@d\nS: x\n\n" },
		/* bare CR, NUL-free oddities, CR CR LF: only CRLF pairs change */
		{ "S: a\rb\n\nx\r\r\ny\r", "a@b", NULL, "u@d", 0,
		  "Return-Path: <a@b>\nDelivered-To: u@d\nS: a\rb\n\nx\r\ny\r" },
		/* the loop: Delivered-To for us below other headers */
		{ "Received: x\nDelivered-To: U@D\n\nb\n", "a@b", NULL, "u@d", -1, "5.4.6" },
		{ "Received: x\nDelivered-To:\n  <u@d>\n\nb\n", "a@b", NULL, "u@d", -1, "5.4.6" },
		{ "Received: x\r\nDelivered-To: u@d\r\n\r\nb\r\n", "a@b", NULL, "<u@d>", -1, "5.4.6" },
		/* other addresses and the body do not count */
		{ "Received: x\nDelivered-To: v@d\n\nDelivered-To: u@d\n", "a@b", NULL, "u@d", 0,
		  "Return-Path: <a@b>\nDelivered-To: u@d\nReceived: x\nDelivered-To: v@d\n\n"
		  "Delivered-To: u@d\n" },
		{ "Received: x\nX-Delivered-To: u@d\n\n", "a@b", NULL, "u@d", 0,
		  "Return-Path: <a@b>\nDelivered-To: u@d\nReceived: x\nX-Delivered-To: u@d\n\n" },
		/* Postfix mailbox_command input: From_ line and its own envelope
		 * headers on top; nothing duplicated, no loop */
		{ "From a@b  Mon Jan  1 09:05:00 2024\nReturn-Path: <a@b>\nX-Original-To: u@d\n"
		  "Delivered-To: u@d\nReceived: r\n\nbody\n",
		  NULL, "u@d", NULL, 0,
		  "Return-Path: <a@b>\nX-Original-To: u@d\nDelivered-To: u@d\nReceived: r\n\nbody\n" },
		/* a From_ line gives the sender when -f is absent */
		{ "From z@y Mon Jan  1 09:05:00 2024\nS: x\n\n", NULL, NULL, "u@d", 0,
		  "Return-Path: <z@y>\nDelivered-To: u@d\nS: x\n\n" },
		{ "From MAILER-DAEMON Mon Jan  1 09:05:00 2024\nS: x\n\n", NULL, NULL, "u@d", 0,
		  "Return-Path: <>\nDelivered-To: u@d\nS: x\n\n" },
		/* -f wins over the From_ line */
		{ "From z@y Mon Jan  1 09:05:00 2024\nS: x\n\n", "a@b", NULL, "u@d", 0,
		  "Return-Path: <a@b>\nDelivered-To: u@d\nS: x\n\n" },
		/* caller block with Delivered-To of someone else, then ours lower down */
		{ "Delivered-To: v@d\nReceived: r\nDelivered-To: u@d\n\n", "a@b", NULL, "u@d", -1,
		  "5.4.6" },
		/* no header section at all, empty input */
		{ "", "a@b", NULL, "u@d", 0, "Return-Path: <a@b>\nDelivered-To: u@d\n" },
		{ "\nbody only\n", "a@b", NULL, "u@d", 0,
		  "Return-Path: <a@b>\nDelivered-To: u@d\n\nbody only\n" },
		/* a line that is not a header ends the header section */
		{ "not a header\nDelivered-To: u@d\n\n", "a@b", NULL, "u@d", 0,
		  "Return-Path: <a@b>\nDelivered-To: u@d\nnot a header\nDelivered-To: u@d\n\n" },
		/* orig equal to final: no X-Original-To */
		{ "S: x\n\n", "a@b", "u@d", "u@d", 0, "Return-Path: <a@b>\nDelivered-To: u@d\nS: x\n\n" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct prep_case *c = &cases[i];
		struct lda_headers_env env = { c->sender, c->orig, c->final };
		struct lda_headers_info info;
		struct lda_status st = { 0 };
		struct buf out;
		buf_init(&out, 10000);
		int r = lda_headers_prepare(str_of(c->in), &env, &out, &info, &st);
		if (r != c->ret)
			fail_msg("case %zu: ret %d, want %d (%s %s)", i, r, c->ret, st.dsn, st.text);
		if (r == 0 && strcmp(buf_cstr(&out), c->out) != 0)
			fail_msg("case %zu: got\n%s\nwant\n%s", i, buf_cstr(&out), c->out);
		if (r < 0)
			assert_string_equal(st.dsn, c->out);
		lda_headers_info_free(&info);
		buf_free(&out);
	}
}

static void test_binary_kept(void **state)
{
	static const char in[] = "S: \0x\n\nnul\0here\r\n";
	struct lda_headers_env env = { "a@b", NULL, "u@d" };
	struct lda_headers_info info;
	struct lda_status st = { 0 };
	struct buf out;
	buf_init(&out, 1000);
	assert_int_equal(lda_headers_prepare((struct str){ in, sizeof(in) - 1 }, &env, &out, &info,
					     &st), 0);
	static const char want[] = "Return-Path: <a@b>\nDelivered-To: u@d\nS: \0x\n\nnul\0here\n";
	assert_int_equal(out.len, sizeof(want) - 1);
	assert_memory_equal(out.data, want, sizeof(want) - 1);
	lda_headers_info_free(&info);
	buf_free(&out);
	/* a 2000-octet line is stored as given */
	char *longl = xmalloc(2002);
	memset(longl, 'a', 2000);
	longl[2000] = '\n';
	longl[2001] = '\0';
	buf_init(&out, 10000);
	assert_int_equal(lda_headers_prepare(str_of(longl), &env, &out, &info, &st), 0);
	assert_non_null(memmem(out.data, out.len, longl, 2001));
	lda_headers_info_free(&info);
	buf_free(&out);
	free(longl);
}

static void test_read_limit(void **state)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "0123456789", 10), 10);
	close(p[1]);
	struct buf raw;
	struct lda_status st = { 0 };
	buf_init(&raw, 100);
	assert_int_equal(lda_headers_read(p[0], &raw, 5, &st), -1);
	assert_int_equal(st.ex, 65);
	assert_string_equal(st.dsn, "5.3.4");
	close(p[0]);
	buf_free(&raw);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "0123456789", 10), 10);
	close(p[1]);
	buf_init(&raw, 100);
	assert_int_equal(lda_headers_read(p[0], &raw, 10, &st), 0);
	assert_int_equal(raw.len, 10);
	close(p[0]);
	buf_free(&raw);
}

static void test_addr(void **state)
{
	assert_true(lda_headers_addr_ok("a@b"));
	assert_true(lda_headers_addr_ok(""));
	assert_true(lda_headers_addr_ok("\"x y\"@b"));
	assert_false(lda_headers_addr_ok("a@b\nBcc: x"));
	assert_false(lda_headers_addr_ok("a\r@b"));
	assert_false(lda_headers_addr_ok("a\x7f"));
	assert_false(lda_headers_addr_ok(NULL));
	char *bare = lda_headers_bare_addr("  <a@b> ");
	assert_string_equal(bare, "a@b");
	free(bare);
	bare = lda_headers_bare_addr("<>");
	assert_string_equal(bare, "");
	free(bare);
	bare = lda_headers_bare_addr("<");
	assert_string_equal(bare, "<");
	free(bare);
	struct buf b;
	buf_init(&b, 100);
	assert_int_equal(lda_headers_crlf_to_lf(&b, "a\r\nb\r\r\n\r", 8), 0);
	assert_string_equal(buf_cstr(&b), "a\nb\r\n\r");
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prepare),
		cmocka_unit_test(test_binary_kept),
		cmocka_unit_test(test_read_limit),
		cmocka_unit_test(test_addr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
