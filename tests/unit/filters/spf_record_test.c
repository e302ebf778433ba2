/* spf_record_test.c - RFC 7208 record syntax and the libspf2-safe rewrite
 * (filters/spf/spf_record.c). */
#include "tests/unit/unit.h"
#include "filters/spf/spf_record.h"
#include "lib/common.h"

static void test_valid(void **state)
{
	static const struct {
		const char *in;
		const char *out; /* what libspf2 gets */
	} cases[] = {
		{ "v=spf1", "v=spf1" },
		{ "v=spf1 -all", "v=spf1 -all" },
		{ "V=SPF1 +ALL", "v=spf1 +ALL" },
		{ "v=spf1  ip4:192.0.2.0/24   ~all ", "v=spf1 ip4:192.0.2.0/24 ~all" },
		{ "v=spf1 ip4:0.0.0.0/0 -all", "v=spf1 ip4:0.0.0.0/1 ip4:128.0.0.0/1 -all" },
		{ "v=spf1 -ip6:::/0", "v=spf1 -ip6:::/1 -ip6:8000::/1" },
		{ "v=spf1 ip6:2001:db8::/32 ip6:::1", "v=spf1 ip6:2001:db8::/32 ip6:::1" },
		{ "v=spf1 a mx ptr a/24 mx//64 a:d.test/24//64 mx:d.test",
		  "v=spf1 a mx ptr a/24 mx//64 a:d.test/24//64 mx:d.test" },
		{ "v=spf1 include:_spf.d.test exists:%{i}.%{l1r-}.d.test ?all",
		  "v=spf1 include:_spf.d.test exists:%{i}.%{l1r-}.d.test ?all" },
		{ "v=spf1 x.y-z_w=anything -all", "v=spf1 -all" },
		{ "v=spf1 redirect=d.test exp=explain.%{d}", "v=spf1 redirect=d.test exp=explain.%{d}" },
		{ "v=spf1 exists:%{l99999r}.d.test", "v=spf1 exists:%{l128r}.d.test" },
		{ "v=spf1 exists:%{d}", "v=spf1 exists:%{d}" },
		{ "v=spf1 a:d.test.", "v=spf1 a:d.test." },
		{ "v=spf1 a:d.x-1", "v=spf1 a:d.x-1" },
		{ "v=spf1 exists:%%.%_.%-.d.test", "v=spf1 exists:%%.%_.%-.d.test" },
	};
	struct buf out;
	buf_init(&out, SPF_RECORD_MAX * 2 + 64);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const char *why = NULL;
		if (spf_record_check(cases[i].in, strlen(cases[i].in), &out, &why) != 0)
			fail_msg("refused \"%s\": %s", cases[i].in, why);
		assert_string_equal(buf_cstr(&out), cases[i].out);
	}
	buf_free(&out);
}

static void test_invalid(void **state)
{
	static const char *const bad[] = {
		"v=spf1 foo:bar",                /* unknown mechanism */
		"v=spf1 all:x",                  /* all takes nothing */
		"v=spf1 include",                /* include needs a domain */
		"v=spf1 include:",               /* empty domain-spec */
		"v=spf1 a:localhost",            /* no dot */
		"v=spf1 a:d.123",                /* numeric top label */
		"v=spf1 a:d.-x",                 /* hyphen at label start */
		"v=spf1 ip4:192.0.2.0/33",       /* CIDR too long */
		"v=spf1 ip4:192.0.2.0/024",      /* leading zero */
		"v=spf1 ip6:2001:db8::/129",
		"v=spf1 ip4:300.0.0.1",
		"v=spf1 ip4:2001:db8::1",
		"v=spf1 a/33",
		"v=spf1 mx//129",
		"v=spf1 redirect=a.test redirect=b.test",
		"v=spf1 exp=a.test exp=b.test",
		"v=spf1 exists:%{z}.d.test",     /* bad macro letter */
		"v=spf1 exists:%{c}.d.test",     /* c only in exp text */
		"v=spf1 exists:%{d0}.d.test",    /* digit transformer 0 */
		"v=spf1 exists:%{d.d.test",      /* unterminated */
		"v=spf1 exists:%x.d.test",
		"v=spf1 exists:d.test%",
		"v=spf1 -all\t",                 /* only spaces separate terms */
		"v=spf1 =x",
		"v=spf1 a:d\x7f.test",
		"v=spf10",
		"spf1 -all",
	};
	struct buf out;
	buf_init(&out, SPF_RECORD_MAX * 2 + 64);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		const char *why = NULL;
		if (spf_record_check(bad[i], strlen(bad[i]), &out, &why) != -1)
			fail_msg("accepted \"%s\" as \"%s\"", bad[i], buf_cstr(&out));
		assert_non_null(why);
	}
	/* a NUL inside the record */
	const char *why;
	assert_int_equal(spf_record_check("v=spf1 -all\0+all", 16, &out, &why), -1);
	/* too long */
	size_t n = SPF_RECORD_MAX + 10;
	char *big = xmalloc(n);
	memcpy(big, "v=spf1 ", 7);
	memset(big + 7, 'a', n - 7);
	assert_int_equal(spf_record_check(big, n, &out, &why), -1);
	free(big);
	buf_free(&out);
}

static void test_is_spf(void **state)
{
	assert_true(spf_record_is_spf("v=spf1", 6));
	assert_true(spf_record_is_spf("v=spf1 -all", 11));
	assert_false(spf_record_is_spf("v=spf10 -all", 12));
	assert_false(spf_record_is_spf("v=spf", 5));
	assert_false(spf_record_is_spf("google-site-verification=x", 26));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_is_spf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
