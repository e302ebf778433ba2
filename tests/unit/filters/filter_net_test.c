/* filter_net_test.c - network lists (filters/common/filter_net.c). */
#include "tests/unit/unit.h"
#include <arpa/inet.h>
#include "filters/common/filter_net.h"
#include "lib/common.h"

static void test_match(void **state)
{
	struct filter_netlist l = { 0 };
	const char *err;
	assert_int_equal(filter_netlist_parse(&l, "127.0.0.0/8, ::1 192.0.2.128/25,2001:db8::/32,"
						  "::ffff:198.51.100.0/120, 10.1.2.3",
					      &err),
			 0);
	assert_int_equal(l.n, 6);
	static const struct {
		const char *addr;
		bool in;
	} cases[] = {
		{ "127.0.0.1", true },       { "127.255.255.255", true }, { "128.0.0.1", false },
		{ "::1", true },             { "::2", false },            { "192.0.2.128", true },
		{ "192.0.2.127", false },    { "2001:db8:ffff::1", true }, { "2001:db9::1", false },
		{ "198.51.100.7", true },    { "::ffff:127.0.0.1", true }, /* mapped matches v4 */
		{ "::ffff:192.0.2.200", true }, { "10.1.2.3", true },    { "10.1.2.4", false },
		{ "junk", false },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		if (filter_netlist_match_str(&l, cases[i].addr) != cases[i].in)
			fail_msg("%s should %smatch", cases[i].addr, cases[i].in ? "" : "not ");
	}
	filter_netlist_free(&l);
	assert_int_equal(l.n, 0);
}

static void test_bad(void **state)
{
	struct filter_netlist l = { 0 };
	const char *err;
	static const char *const bad[] = {
		"127.0.0.1/33", "::1/129", "host.example", "1.2.3.4/", "1.2.3.4/x", "1.2.3.4/-1",
		"1.2.3", "/8", "1.2.3.4/0008",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		if (filter_netlist_parse(&l, bad[i], &err) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_int_equal(l.n, 0);
	}
	assert_int_equal(filter_netlist_parse(&l, "0.0.0.0/0", &err), 0);
	assert_true(filter_netlist_match_str(&l, "203.0.113.9"));
	assert_false(filter_netlist_match_str(&l, "2001:db8::1"));
	filter_netlist_free(&l);
	assert_int_equal(filter_netlist_parse(&l, "", &err), 0);
	assert_false(filter_netlist_match_str(&l, "127.0.0.1"));
}

static void test_ntop(void **state)
{
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &s6.sin6_addr);
	char out[64];
	assert_string_equal(filter_net_ntop((struct sockaddr *)&s6, out, sizeof(out)), "192.0.2.1");
	struct sockaddr sa = { .sa_family = AF_UNIX };
	assert_string_equal(filter_net_ntop(&sa, out, sizeof(out)), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_ntop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
