/*
 * addr_test.c - RFC 5321 paths: what parses, what is refused, which relay
 * tricks are flagged, and the helpers around them.
 */
#include "tests/unit/unit.h"

#include "lib/addr.h"
#include "lib/common.h"

struct addr_case {
	const char *in;       /* path text */
	unsigned opts;        /* ADDR_O_* */
	int ret;              /* 0 or -1 */
	enum addr_kind kind;  /* when ret == 0 */
	const char *text;     /* expected text when ret == 0 */
	const char *domain;   /* expected domain when ret == 0 */
	unsigned flags;       /* flags that must be set */
	unsigned noflags;     /* flags that must not be set */
};

static char long_local[80], long_domain[300], long_path[300];

static void test_addr_table(void **state)
{
	memset(long_local, 'a', 65);
	memcpy(long_local + 65, "@x.test", 8);
	long_domain[0] = 'u';
	long_domain[1] = '@';
	for (size_t i = 2; i < 258; i++)
		long_domain[i] = (i % 60 == 0) ? '.' : 'd';
	long_domain[258] = '\0';
	/* 64-char local + @ + domain to exceed 256 in total */
	memset(long_path, 'b', 64);
	long_path[64] = '@';
	for (size_t i = 65; i < 260; i++)
		long_path[i] = (i % 50 == 0) ? '.' : 'c';
	long_path[260] = '\0';

	const struct addr_case cases[] = {
		{ "<user@example.test>", 0, 0, ADDR_MAILBOX, "user@example.test", "example.test", ADDR_F_ANGLE, ADDR_F_ROUTING },
		{ "user@example.test", 0, 0, ADDR_MAILBOX, "user@example.test", "example.test", 0, ADDR_F_ANGLE },
		{ "user@example.test", ADDR_O_STRICT, -1 },
		{ "<>", 0, 0, ADDR_NULL, "", "", ADDR_F_ANGLE, 0 },
		{ "", 0, -1 },
		{ "<Postmaster>", 0, 0, ADDR_POSTMASTER, "Postmaster", "", 0, 0 },
		{ "<postMASTER>", 0, 0, ADDR_POSTMASTER, "postMASTER", "", 0, 0 },
		{ "<alice>", 0, 0, ADDR_LOCAL_ONLY, "alice", "", 0, 0 },
		{ "<\"john doe\"@example.test>", 0, 0, ADDR_MAILBOX, "\"john doe\"@example.test", "example.test", ADDR_F_QUOTED, ADDR_F_ROUTING },
		{ "<\"a\\\"b\"@example.test>", 0, 0, ADDR_MAILBOX, "\"a\\\"b\"@example.test", "example.test", ADDR_F_QUOTED, 0 },
		{ "<\"unterminated@example.test>", 0, -1 },
		{ "<\"x\"y@example.test>", 0, -1 },
		/* relay tricks */
		{ "<a%remote.test@ours.test>", 0, 0, ADDR_MAILBOX, "a%remote.test@ours.test", "ours.test", ADDR_F_PERCENT, 0 },
		{ "<remote.test!a@ours.test>", 0, 0, ADDR_MAILBOX, "remote.test!a@ours.test", "ours.test", ADDR_F_BANG, 0 },
		{ "<\"a@remote.test\"@ours.test>", 0, 0, ADDR_MAILBOX, "\"a@remote.test\"@ours.test", "ours.test", ADDR_F_QUOTED_AT | ADDR_F_QUOTED, 0 },
		{ "<@ours.test:a@remote.test>", 0, 0, ADDR_MAILBOX, "a@remote.test", "remote.test", ADDR_F_SOURCE_ROUTE, 0 },
		{ "<@a.test,@b.test:u@remote.test>", 0, 0, ADDR_MAILBOX, "u@remote.test", "remote.test", ADDR_F_SOURCE_ROUTE, 0 },
		{ "<@ours.test:user>", 0, -1 },
		{ "<@:u@x.test>", 0, -1 },
		{ "<a@ours.test.>", 0, -1 },
		{ "<a@ours..test>", 0, -1 },
		{ "<a@.ours.test>", 0, -1 },
		{ "<a@-ours.test>", 0, -1 },
		{ "<a@ours-.test>", 0, -1 },
		{ "<a@b@ours.test>", 0, -1 },
		{ "<a..b@x.test>", 0, -1 },
		{ "<.a@x.test>", 0, -1 },
		{ "<a.@x.test>", 0, -1 },
		{ "<a@>", 0, -1 },
		{ "<@x.test>", 0, -1 },
		{ "<a@x.test", 0, -1 },
		{ "a@x.test>", 0, -1 },
		/* address literals */
		{ "<u@[127.0.0.1]>", 0, 0, ADDR_MAILBOX, "u@[127.0.0.1]", "[127.0.0.1]", ADDR_F_LITERAL, 0 },
		{ "<u@[IPv6:::1]>", 0, 0, ADDR_MAILBOX, "u@[IPv6:::1]", "[IPv6:::1]", ADDR_F_LITERAL, 0 },
		{ "<u@[999.0.0.1]>", 0, -1 },
		{ "<u@[1.2.3]>", 0, -1 },
		{ "<u@[foo:bar]>", 0, -1 },
		{ "<u@[127.0.0.1>", 0, -1 },
		/* shell metacharacters are bytes: valid atext stays valid, specials need quotes */
		{ "<|/bin/sh@x.test>", 0, 0, ADDR_MAILBOX, "|/bin/sh@x.test", "x.test", 0, 0 },
		{ "<$(id)@x.test>", 0, -1 },
		{ "<;sleep 66;>", 0, -1 },
		{ "<\";sleep 66;\"@x.test>", 0, 0, ADDR_MAILBOX, "\";sleep 66;\"@x.test", "x.test", ADDR_F_QUOTED, 0 },
		{ "<`id`@x.test>", 0, 0, ADDR_MAILBOX, "`id`@x.test", "x.test", 0, 0 },
		/* control characters and NUL */
		{ "<a\tb@x.test>", 0, -1 },
		{ "<\"a\rb\"@x.test>", 0, -1 },
		{ "<a b@x.test>", 0, -1 },
		/* UTF-8 */
		{ "<j\xc3\xb6rg@x.test>", 0, -1 },
		{ "<j\xc3\xb6rg@x.test>", ADDR_O_SMTPUTF8, 0, ADDR_MAILBOX, "j\xc3\xb6rg@x.test", "x.test", ADDR_F_UTF8, 0 },
		{ "<u@b\xc3\xbc" "cher.test>", ADDR_O_SMTPUTF8, 0, ADDR_MAILBOX, "u@b\xc3\xbc" "cher.test", "b\xc3\xbc" "cher.test", ADDR_F_UTF8, 0 },
		{ "<j\xc3rg@x.test>", ADDR_O_SMTPUTF8, -1 },
		{ "<j\xc0\xafrg@x.test>", ADDR_O_SMTPUTF8, -1 },
		{ "<j\xed\xa0\x80@x.test>", ADDR_O_SMTPUTF8, -1 },
		{ "<j\xff@x.test>", ADDR_O_SMTPUTF8, -1 },
		/* limits */
		{ long_local, 0, -1 },
		{ long_domain, 0, -1 },
		{ long_path, 0, -1 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct addr_case *c = &cases[i];
		struct addr a;
		const char *err = NULL;
		int r = addr_parse(str_of(c->in), c->opts, &a, &err);
		if (r != c->ret)
			fail_msg("case %zu <%s>: got %d (%s), want %d", i, c->in, r, err ? err : "", c->ret);
		if (r != 0) {
			assert_non_null(err);
			continue;
		}
		assert_int_equal(a.kind, c->kind);
		assert_string_equal(a.text, c->text);
		assert_int_equal(a.len, strlen(c->text));
		struct str d = addr_domain(&a);
		assert_int_equal(d.len, strlen(c->domain));
		assert_memory_equal(d.p, c->domain, d.len);
		if ((a.flags & c->flags) != c->flags || (a.flags & c->noflags) != 0)
			fail_msg("case %zu <%s>: flags %#x", i, c->in, a.flags);
	}
}

static void test_nul_and_exact_limits(void **state)
{
	struct addr a;
	const char *err;
	assert_int_equal(addr_parse((struct str){ "<a\0b@x.test>", 12 }, 0, &a, &err), -1);
	/* exactly 64 octets of local part is fine, 65 is not */
	char buf[100];
	memset(buf, 'l', 64);
	memcpy(buf + 64, "@x.test", 8);
	assert_int_equal(addr_parse(str_of(buf), 0, &a, &err), 0);
	assert_int_equal(a.local_len, 64);
	/* UTF-8 error is recognisable for 553 5.6.7 */
	assert_int_equal(addr_parse(str_of("<\xc3\xa9@x.test>"), 0, &a, &err), -1);
	assert_true(addr_error_is_utf8(err));
	assert_int_equal(addr_parse(str_of("<a b@x.test>"), 0, &a, &err), -1);
	assert_false(addr_error_is_utf8(err));
}

static void test_unquote_and_base(void **state)
{
	struct addr a;
	const char *err;
	struct buf b;
	buf_init(&b, 100);
	assert_int_equal(addr_parse(str_of("<\"a\\\"b c\"@x.test>"), 0, &a, &err), 0);
	assert_int_equal(addr_local_unquoted(&a, &b), 0);
	assert_string_equal(buf_cstr(&b), "a\"b c");
	assert_int_equal(addr_parse(str_of("<plain@x.test>"), 0, &a, &err), 0);
	assert_int_equal(addr_local_unquoted(&a, &b), 0);
	assert_string_equal(buf_cstr(&b), "plain");
	buf_free(&b);

	assert_int_equal(addr_base_len(str_of("user+ext"), "+"), 4);
	assert_int_equal(addr_base_len(str_of("user-ext+x"), "+-"), 4);
	assert_int_equal(addr_base_len(str_of("user+ext"), ""), 8);
	assert_int_equal(addr_base_len(str_of("+user"), "+"), 5);
	assert_int_equal(addr_base_len(str_of("user"), NULL), 4);
}

static void test_domain_lists(void **state)
{
	const char *l = "example.test, localhost,other.test  .sub.test lmdb:/etc/x /etc/file";
	assert_true(addr_domain_in_list(str_of("EXAMPLE.test"), l, false));
	assert_true(addr_domain_in_list(str_of("localhost"), l, false));
	assert_true(addr_domain_in_list(str_of("other.test"), l, false));
	assert_false(addr_domain_in_list(str_of("a.example.test"), l, false));
	assert_true(addr_domain_in_list(str_of("a.example.test"), l, true));
	assert_false(addr_domain_in_list(str_of("xexample.test"), l, true));
	assert_true(addr_domain_in_list(str_of("a.sub.test"), l, false));
	assert_false(addr_domain_in_list(str_of("sub.test"), l, false));
	assert_false(addr_domain_in_list(str_of("lmdb:/etc/x"), l, false));
	assert_false(addr_domain_in_list(str_of("example.test"), "", false));
	assert_false(addr_domain_in_list(str_of(""), l, false));
}

static void test_utf8_validator(void **state)
{
	assert_true(addr_utf8_valid("plain", 5));
	assert_true(addr_utf8_valid("\xe2\x82\xac", 3));
	assert_true(addr_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_false(addr_utf8_valid("\xe2\x82", 2));
	assert_false(addr_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	assert_false(addr_utf8_valid("\xe0\x80\x80", 3));     /* overlong */
	assert_false(addr_utf8_valid("\x80", 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_table),
		cmocka_unit_test(test_nul_and_exact_limits),
		cmocka_unit_test(test_unquote_and_base),
		cmocka_unit_test(test_domain_lists),
		cmocka_unit_test(test_utf8_validator),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
