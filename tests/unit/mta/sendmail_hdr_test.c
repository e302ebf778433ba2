/*
 * sendmail_hdr_test.c - sendmail -t: which headers count (To/Cc/Bcc, or
 * only Resent-* when one is present), folded headers, and RFC 5322 address
 * lists with display names, comments, quoted strings, groups and routes;
 * malformed lists fail instead of guessing.
 */
#include "tests/unit/unit.h"

#include "mta/cli/sendmail_hdr.h"
#include "lib/buf.h"
#include "lib/common.h"

struct list_case {
	const char *value; /* header value */
	const char *want;  /* addresses joined with '|', or NULL for an error */
};

static const struct list_case lists[] = {
	{ "a@b", "a@b" },
	{ " a@b , c@d ", "a@b|c@d" },
	{ "Alice <a@b>", "a@b" },
	{ "\"Doe, John\" <j@d>, x@y", "j@d|x@y" },
	{ "(comment) a@b (more (nested))", "a@b" },
	{ "undisclosed-recipients:;", "" },
	{ "team: a@b, Bob <c@d>;, e@f", "a@b|c@d|e@f" },
	{ "<@r1,@r2:u@d>", "u@d" },
	{ "\"quoted local\"@d", "\"quoted local\"@d" },
	{ "a@b,\r\n\tc@d", "a@b|c@d" },
	{ "", "" },
	{ ",,,", "" },
	{ "a@b (unclosed", NULL },
	{ "\"open@b", NULL },
	{ "<a@b", NULL },
	{ "a@b>", NULL },
	{ "<<a@b>>", NULL },
};

static char *join(const struct sendmail_hdr_rcpts *r)
{
	struct buf b;
	buf_init(&b, 1 << 16);
	for (size_t i = 0; i < r->n; i++) {
		if (i)
			buf_putc(&b, '|');
		buf_puts(&b, r->addr[i]);
	}
	char *s = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return s;
}

static void test_lists(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(lists); i++) {
		struct sendmail_hdr_rcpts r = { 0 };
		const char *err = NULL;
		int rc = sendmail_hdr_addrlist(lists[i].value, strlen(lists[i].value), &r, &err);
		if (lists[i].want == NULL) {
			if (rc != -1)
				fail_msg("list %zu: expected an error", i);
			assert_non_null(err);
		} else {
			if (rc != 0)
				fail_msg("list %zu: %s", i, err);
			char *got = join(&r);
			if (strcmp(got, lists[i].want) != 0)
				fail_msg("list %zu: got \"%s\"", i, got);
			free(got);
		}
		sendmail_hdr_rcpts_free(&r);
	}
}

struct msg_case {
	const char *msg;  /* message text */
	const char *want; /* recipients joined with '|' */
};

static const struct msg_case msgs[] = {
	{ "To: a@b\nCc: c@d\nBcc: e@f\nSubject: x\n\nTo: body@x\n", "a@b|c@d|e@f" },
	{ "To: a@b,\n c@d\r\nSubject: s\r\n\r\n", "a@b|c@d" },
	/* a Resent- header of any kind switches to the Resent-* set */
	{ "To: a@b\nResent-From: r@s\nResent-To: n@m\nResent-Bcc: o@p\n\n", "n@m|o@p" },
	{ "To: a@b\nResent-Date: x\n\n", "" },
	/* headers end at a line that is not a header */
	{ "To: a@b\nnot a header\nCc: c@d\n", "a@b" },
	{ "Subject: no recipients\n\n", "" },
	{ "", "" },
	{ "tO : a@b\n", "a@b" },
};

static void test_messages(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(msgs); i++) {
		struct sendmail_hdr_rcpts r = { 0 };
		const char *err = NULL;
		if (sendmail_hdr_rcpts(msgs[i].msg, strlen(msgs[i].msg), &r, &err) != 0)
			fail_msg("msg %zu: %s", i, err);
		char *got = join(&r);
		if (strcmp(got, msgs[i].want) != 0)
			fail_msg("msg %zu: got \"%s\"", i, got);
		free(got);
		sendmail_hdr_rcpts_free(&r);
	}
}

static void test_errors_and_limits(void **state)
{
	(void)state;
	struct sendmail_hdr_rcpts r = { 0 };
	const char *err = NULL;
	assert_int_equal(sendmail_hdr_rcpts("To: (x\n\n", 8, &r, &err), -1);
	assert_int_equal(r.n, 0);
	/* an address longer than the limit is an error, not a truncation */
	char big[SENDMAIL_HDR_ADDR_MAX + 20];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[10] = '@';
	assert_int_equal(sendmail_hdr_addrlist(big, strlen(big), &r, &err), -1);
	assert_string_equal(err, "address too long");
	/* deep comment nesting stops */
	char deep[200];
	memset(deep, '(', sizeof(deep));
	assert_int_equal(sendmail_hdr_addrlist(deep, sizeof(deep), &r, &err), -1);
	sendmail_hdr_rcpts_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_errors_and_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
