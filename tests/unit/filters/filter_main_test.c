/* filter_main_test.c - socket specs and common settings (filters/common/filter_main.c). */
#include "tests/unit/unit.h"
#include "filters/common/filter_main.h"
#include "lib/common.h"

static void test_socket(void **state)
{
	static const char *const ok[] = {
		"inet:8891@127.0.0.1", "inet:8891", "inet:8891@localhost", "inet6:8891@::1",
		"inet6:8891@[::1]", "unix:/run/p.sock", "local:/run/p.sock", "/run/p.sock",
	};
	static const char *const bad[] = {
		"", "inet:", "inet:0@127.0.0.1", "inet:70000@127.0.0.1", "inet:x@127.0.0.1",
		"inet:8891@", "inet:8891@host name", "unix:", "unix:relative", "tcp:1",
		"inet:8891@127.0.0.1@x", "inet6:8891@127.0.0.1", "inet6:1@[::1",
	};
	for (size_t i = 0; i < ARRAY_LEN(ok); i++)
		if (!filter_socket_ok(ok[i]))
			fail_msg("refused %s", ok[i]);
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		if (filter_socket_ok(bad[i]))
			fail_msg("accepted %s", bad[i]);
	assert_false(filter_socket_ok(NULL));
}

static int read_common(const char *text, struct filter_common *c, const char **err)
{
	struct filter_cfg *cfg;
	assert_int_equal(filter_cfg_parse(text, strlen(text), &cfg, err), 0);
	int r = filter_common_read(cfg, c, err);
	filter_cfg_free(&cfg);
	return r;
}

static void test_common(void **state)
{
	struct filter_common c;
	const char *err;
	assert_int_equal(read_common("Socket inet:1@127.0.0.1\nUserID postern:postern\n"
				     "AuthservID mx.d.test\nNameservers 127.0.0.1@5353\n"
				     "DNSTimeout 4\nUMask 0077\nInternalHosts 192.0.2.0/24\n",
				     &c, &err),
			 0);
	assert_string_equal(c.socket, "inet:1@127.0.0.1");
	assert_string_equal(c.user, "postern:postern");
	assert_string_equal(c.authserv_id, "mx.d.test");
	assert_int_equal(c.umask, 077);
	assert_int_equal(c.dns.timeout_ms * c.dns.tries, 4000);
	assert_true(filter_netlist_match_str(&c.internal, "192.0.2.9"));
	assert_false(filter_netlist_match_str(&c.internal, "127.0.0.1"));
	filter_common_free(&c);
	/* defaults */
	assert_int_equal(read_common("Nameservers 127.0.0.1\n", &c, &err), 0);
	assert_null(c.socket);
	assert_null(c.log_file);
	assert_int_equal(c.umask, 07);
	assert_true(filter_netlist_match_str(&c.internal, "127.0.0.1"));
	assert_true(filter_netlist_match_str(&c.internal, "::1"));
	assert_true(strlen(c.authserv_id) > 0);
	filter_common_free(&c);
	static const char *const bad[] = {
		"Socket nonsense\n",
		"AuthservID has space\n",
		"AuthservID semi;colon\n",
		"UMask 999\n",
		"UMask -1\n",
		"DNSTimeout 0\n",
		"Nameservers name.test\n",
		"InternalHosts 300.0.0.1\n",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		if (read_common(bad[i], &c, &err) != -1)
			fail_msg("accepted %s", bad[i]);
		filter_common_free(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket),
		cmocka_unit_test(test_common),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
