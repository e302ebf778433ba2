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

/* U-labels to A-labels (RFC 8616), and what cannot be converted. */
static void test_domain_ascii(void **state)
{
	static const struct {
		const char *in;   /* NUL-terminated here; hostile NULs below */
		const char *want; /* NULL: refused */
	} cases[] = {
		{ "d.test", "d.test" },
		{ "D.Test", "d.test" },
		{ "b\xc3\xbc" "cher.test", "xn--bcher-kva.test" },
		{ "B\xc3\x9c" "CHER.Test", "xn--bcher-kva.test" },     /* mapped to lower case */
		{ "xn--bcher-kva.test", "xn--bcher-kva.test" },        /* already A-labels */
		{ "stra\xc3\x9f" "e.test", "xn--strae-oqa.test" },   /* non-transitional: not "strasse" */
		{ "\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88",
		  "xn--r8jz45g.xn--zckzah" },
		{ "", NULL },
		{ "d..test", NULL },
		{ "[192.0.2.1]", NULL },
		{ "b\xc3(.test", NULL },              /* a lead byte without its continuation */
		{ "b\xc3", NULL },                    /* cut short at the end */
		{ "\xbc.test", NULL },                /* a lone continuation byte */
		{ "\xc0\xaf.test", NULL },            /* overlong '/' */
		{ "\xe0\x80\xaf.test", NULL },        /* overlong, three bytes */
		{ "\xf0\x80\x80\xaf.test", NULL },    /* overlong, four bytes */
		{ "\xed\xa0\x80.test", NULL },        /* a UTF-16 surrogate */
		{ "\xf4\x90\x80\x80.test", NULL },    /* above U+10FFFF */
		{ "\xff.test", NULL },
		{ "\xe2\x98\x83.test", NULL },        /* U+2603 SNOWMAN: disallowed in IDNA2008 */
		{ "\xcc\x81" "a.test", NULL },         /* a label that starts with a combining mark */
		{ "a\xc3\xbc b.test", NULL },         /* a space */
	};
	struct buf out;
	buf_init(&out, 1024);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int rc = filter_hdr_domain_ascii(str_of(cases[i].in), &out);
		if (cases[i].want == NULL) {
			if (rc != -1)
				fail_msg("case %zu: accepted as %s", i, buf_cstr(&out));
			assert_int_equal(out.len, 0);
		} else {
			if (rc != 0)
				fail_msg("case %zu refused", i);
			assert_string_equal(buf_cstr(&out), cases[i].want);
		}
	}
	/* a NUL inside the name */
	assert_int_equal(filter_hdr_domain_ascii((struct str){ "b\xc3\xbc\0x.test", 9 }, &out), -1);
	/* one U-label of 58 'a' and a u-umlaut: 60 bytes, but its A-label
	 * ("xn--" + 58 'a' + "-" + the encoded umlaut) is 66 octets */
	char big[2048];
	memset(big, 'a', 58);
	size_t n = 58;
	big[n++] = '\xc3';
	big[n++] = '\xbc';
	memcpy(big + n, ".test", 5);
	assert_int_equal(filter_hdr_domain_ascii((struct str){ big, n + 5 }, &out), -1);
	/* a name longer than any domain: never handed to libidn2 */
	n = 0;
	while (n + 8 < sizeof(big)) {
		memcpy(big + n, "\xc3\xbc.", 3);
		n += 3;
	}
	memcpy(big + n, "test", 4);
	assert_int_equal(filter_hdr_domain_ascii((struct str){ big, n + 4 }, &out), -1);
	/* 60 labels of "\xc3\xbc": each converts, the whole is too long */
	n = 0;
	for (int i = 0; i < 60; i++) {
		memcpy(big + n, "\xc3\xbc.", 3);
		n += 3;
	}
	memcpy(big + n, "test", 4);
	assert_int_equal(filter_hdr_domain_ascii((struct str){ big, n + 4 }, &out), -1);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from),
		cmocka_unit_test(test_authserv),
		cmocka_unit_test(test_domain),
		cmocka_unit_test(test_domain_ascii),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
