/* filter_hdr_test.c - From addresses and authserv-ids (filters/common/filter_hdr.c). */
#include "tests/unit/unit.h"
#include "filters/common/filter_hdr.h"
#include "lib/common.h"

static void test_from(void **state)
{
	static const struct {
		const char *in;
		enum filter_from res;
		const char *addr;
		const char *domain;
	} cases[] = {
		{ "alice@d.test", FILTER_FROM_ONE, "alice@d.test", "d.test" },
		{ "Alice <alice@D.Test>", FILTER_FROM_ONE, "alice@D.Test", "d.test" },
		{ "\"Doe, Alice\" <alice@d.test>", FILTER_FROM_ONE, "alice@d.test", "d.test" },
		{ "(comment) alice@d.test (more (nested))", FILTER_FROM_ONE, "alice@d.test", "d.test" },
		{ "\"a@b\"@d.test", FILTER_FROM_ONE, "\"a@b\"@d.test", "d.test" },
		{ "Alice\n\t<alice@d.test>", FILTER_FROM_ONE, "alice@d.test", "d.test" },
		{ "=?utf-8?q?J=C3=B6rg?= <j@d.test>", FILTER_FROM_ONE, "j@d.test", "d.test" },
		{ "J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc" "cher.test>", FILTER_FROM_ONE,
		  "j\xc3\xb6rg@b\xc3\xbc" "cher.test", "b\xc3\xbc" "cher.test" }, /* RFC 6532 */
		{ "group: alice@d.test;", FILTER_FROM_ONE, "alice@d.test", "d.test" },
		{ "a@d.test, b@e.test", FILTER_FROM_MANY, "", "" },
		{ "A <a@d.test>, B <b@e.test>", FILTER_FROM_MANY, "", "" },
		{ "", FILTER_FROM_NONE, "", "" },
		{ "   (only a comment) ", FILTER_FROM_NONE, "", "" },
		{ "undisclosed-recipients:;", FILTER_FROM_NONE, "", "" },
		{ "<>", FILTER_FROM_NONE, "", "" },
		{ "alice", FILTER_FROM_BAD, "", "" },
		{ "Alice <alice@d.test", FILTER_FROM_BAD, "", "" },
		{ "alice@d.test>", FILTER_FROM_BAD, "", "" },
		{ "<a@d.test> <b@d.test>", FILTER_FROM_BAD, "", "" },
		{ "<<a@d.test>>", FILTER_FROM_BAD, "", "" },
		{ "\"unterminated <a@d.test>", FILTER_FROM_BAD, "", "" },
		{ "(unterminated a@d.test", FILTER_FROM_BAD, "", "" },
		{ "a@", FILTER_FROM_BAD, "", "" },
		{ "@d.test", FILTER_FROM_BAD, "", "" },
		{ "a@d..test", FILTER_FROM_BAD, "", "" },
		{ "a@-d.test", FILTER_FROM_BAD, "", "" },
		{ "a@d.123", FILTER_FROM_BAD, "", "" },
		{ "a@[192.0.2.1]", FILTER_FROM_BAD, "", "" },
		{ "a@d.test;x", FILTER_FROM_BAD, "", "" },
	};
	struct buf addr, dom;
	buf_init(&addr, FILTER_HDR_ADDR_MAX);
	buf_init(&dom, FILTER_HDR_ADDR_MAX);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		enum filter_from r = filter_hdr_from(str_of(cases[i].in), &addr, &dom);
		if (r != cases[i].res)
			fail_msg("case %zu \"%s\": got %d want %d", i, cases[i].in, r, cases[i].res);
		assert_string_equal(buf_cstr(&addr), cases[i].addr);
		assert_string_equal(buf_cstr(&dom), cases[i].domain);
	}
	/* a NUL byte inside the value is refused, not read past */
	assert_int_equal(filter_hdr_from((struct str){ "a@d.test\0<b@e.test>", 19 }, &addr, &dom),
			 FILTER_FROM_BAD);
	/* deeply nested comments */
	char deep[200];
	memset(deep, '(', 100);
	memset(deep + 100, ')', 100);
	assert_int_equal(filter_hdr_from((struct str){ deep, sizeof(deep) }, &addr, &dom),
			 FILTER_FROM_BAD);
	/* an address longer than the limit */
	size_t n = FILTER_HDR_ADDR_MAX + 100;
	char *big = xmalloc(n);
	memset(big, 'a', n);
	memcpy(big + n - 7, "@d.test", 7);
	assert_int_equal(filter_hdr_from((struct str){ big, n }, &addr, &dom), FILTER_FROM_BAD);
	free(big);
	buf_free(&addr);
	buf_free(&dom);
}

static void test_authserv(void **state)
{
	static const struct {
		const char *in;
		const char *id; /* NULL: no id */
	} cases[] = {
		{ "mx.d.test; dkim=pass", "mx.d.test" },
		{ "  mx.d.test 1; spf=pass", "mx.d.test" },
		{ "(c) mx.d.test;", "mx.d.test" },
		{ "\"quoted id\"; none", "quoted id" },
		{ "\"a\\\"b\"; none", "a\"b" },
		{ "mx.d.test", "mx.d.test" },
		{ "; dkim=pass", NULL },
		{ "", NULL },
		{ "(unterminated", NULL },
		{ "\"unterminated", NULL },
	};
	struct buf id;
	buf_init(&id, 256);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int r = filter_hdr_authserv_id(str_of(cases[i].in), &id);
		if (cases[i].id == NULL) {
			if (r != -1)
				fail_msg("case %zu accepted", i);
		} else {
			assert_int_equal(r, 0);
			assert_string_equal(buf_cstr(&id), cases[i].id);
		}
	}
	buf_free(&id);
}

static void test_domain(void **state)
{
	assert_true(filter_hdr_domain_ok(STR_LIT("d.test")));
	assert_true(filter_hdr_domain_ok(STR_LIT("_dmarc.d.test")));
	assert_true(filter_hdr_domain_ok(STR_LIT("x")));
	assert_false(filter_hdr_domain_ok(STR_LIT("")));
	assert_false(filter_hdr_domain_ok(STR_LIT("d.test.")));
	assert_false(filter_hdr_domain_ok(STR_LIT("a b.test")));
	assert_false(filter_hdr_domain_ok(STR_LIT("1.2.3.4")));
	char label[70];
	memset(label, 'a', sizeof(label));
	assert_false(filter_hdr_domain_ok((struct str){ label, 64 }));
	assert_true(filter_hdr_domain_ok((struct str){ label, 63 }));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from),
		cmocka_unit_test(test_authserv),
		cmocka_unit_test(test_domain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
