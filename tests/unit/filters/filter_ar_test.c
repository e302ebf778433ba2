/* filter_ar_test.c - Authentication-Results reading (filters/common/filter_ar.c). */
#include "tests/unit/unit.h"
#include "filters/common/filter_ar.h"
#include "lib/common.h"

static void test_parse(void **state)
{
	struct filter_ar ar;
	const char *v = "Mx.D.Test (comment; with semicolon) 1;\n\tspf=pass (sender ok)"
			" smtp.mailfrom=Alice@D.test;\n\tdkim=pass (2048-bit key) header.d=d.test"
			" header.s=sel header.b=\"abc;def\"; dkim/1=FAIL header.i=@Sub.D.Test;"
			" dmarc=pass header.from=d.test; spf=none smtp.helo=h.test";
	assert_int_equal(filter_ar_parse(str_of(v), &ar), 0);
	assert_string_equal(ar.authserv_id, "Mx.D.Test");
	assert_int_equal(ar.n, 5);
	assert_string_equal(ar.v[0].method, "spf");
	assert_string_equal(ar.v[0].result, "pass");
	assert_string_equal(ar.v[0].domain, "d.test");
	assert_false(ar.v[0].helo);
	assert_string_equal(ar.v[1].method, "dkim");
	assert_string_equal(ar.v[1].domain, "d.test");
	assert_string_equal(ar.v[1].selector, "sel");
	assert_string_equal(ar.v[2].result, "fail");
	assert_string_equal(ar.v[2].domain, "sub.d.test");
	assert_string_equal(ar.v[3].method, "dmarc");
	assert_true(ar.v[4].helo);
	assert_string_equal(ar.v[4].domain, "h.test");
}

static void test_hostile(void **state)
{
	struct filter_ar ar;
	static const char *const no_id[] = { "", "; spf=pass", "(unterminated" };
	for (size_t i = 0; i < ARRAY_LEN(no_id); i++)
		assert_int_equal(filter_ar_parse(str_of(no_id[i]), &ar), -1);
	/* an id, but the rest unreadable: no results */
	assert_int_equal(filter_ar_parse(str_of("x; spf=pass (open"), &ar), 0);
	assert_int_equal(ar.n, 0);
	assert_int_equal(filter_ar_parse(str_of("x; spf=pass \"open"), &ar), 0);
	assert_int_equal(ar.n, 0);
	/* a domain that is not one is dropped, not kept truncated */
	assert_int_equal(filter_ar_parse(str_of("x; dkim=pass header.d=d..test; "
						"spf=pass smtp.mailfrom=a@-bad.test"),
					 &ar),
			 0);
	assert_int_equal(ar.n, 2);
	assert_string_equal(ar.v[0].domain, "");
	assert_string_equal(ar.v[1].domain, "");
	/* many results: bounded */
	struct buf b;
	buf_init(&b, 100000);
	buf_puts(&b, "x");
	for (int i = 0; i < 140; i++) /* 3.8 KB: within the 4 KiB read */
		buf_puts(&b, "; dkim=pass header.d=d.test");
	assert_int_equal(filter_ar_parse(buf_str(&b), &ar), 0);
	assert_int_equal(ar.n, FILTER_AR_MAX_RESULTS);
	buf_free(&b);
	/* NUL inside */
	assert_int_equal(filter_ar_parse((struct str){ "x; spf=pass\0 dkim=pass", 22 }, &ar), 0);
	assert_int_equal(ar.n, 0);
}

static void test_claims(void **state)
{
	assert_true(filter_ar_claims(str_of("Postern.Test; dkim=pass"), "postern.test", "dkim"));
	assert_false(filter_ar_claims(str_of("postern.test; spf=pass"), "postern.test", "dkim"));
	assert_true(filter_ar_claims(str_of("postern.test; none"), "postern.test", "dkim"));
	assert_false(filter_ar_claims(str_of("other.test; dkim=pass"), "postern.test", "dkim"));
	assert_true(filter_ar_claims(str_of("postern.test; spf=pass; dkim=fail"), "postern.test",
				     "dkim"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_claims),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
