/*
 * milter_conf_test.c - milter lists and milter_* parameters: endpoints,
 * per-milter groups, defaults from main.cf, and malformed lists.
 */
#include "tests/unit/unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "mta/milter/milter_conf.h"
#include "lib/common.h"

static const struct milter_defaults defs = {
	.connect_timeout_ms = 30000,
	.command_timeout_ms = 30000,
	.content_timeout_ms = 300000,
	.default_action = MILTER_ACT_TEMPFAIL,
	.protocol = 6,
};

static void test_endpoints(void **state)
{
	struct milter_endpoint *l = NULL;
	size_t n = 0;
	char *err = NULL;
	assert_int_equal(milter_conf_parse_list("unix:/run/a.sock, local:/run/b.sock inet:127.0.0.1:8891,"
						"inet:[::1]:8892 inet6:[::1]:8893 inet:localhost:smtp",
						&defs, &l, &n, &err),
			 0);
	assert_int_equal(n, 6);
	assert_string_equal(l[0].name, "unix:/run/a.sock");
	assert_int_equal(l[0].addr.ss_family, AF_UNIX);
	assert_string_equal(((struct sockaddr_un *)&l[1].addr)->sun_path, "/run/b.sock");
	assert_int_equal(l[2].addr.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&l[2].addr)->sin_port), 8891);
	assert_int_equal(l[3].addr.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&l[4].addr)->sin6_port), 8893);
	assert_int_equal(ntohs(((struct sockaddr_in *)&l[5].addr)->sin_port), 25);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(l[i].default_action, MILTER_ACT_TEMPFAIL);
		assert_int_equal(l[i].command_timeout_ms, 30000);
		assert_int_equal(l[i].protocol, 6);
	}
	milter_endpoints_free(&l, n);
	assert_null(l);
}

static void test_groups(void **state)
{
	struct milter_endpoint *l = NULL;
	size_t n = 0;
	char *err = NULL;
	assert_int_equal(milter_conf_parse_list(
				 "{ inet:127.0.0.1:8891, connect_timeout=10s, command_timeout = 2m,"
				 " content_timeout=500ms, default_action=accept, protocol=4 },"
				 "unix:/x {inet:127.0.0.1:9,default_action=shutdown,protocol=6;no_header_reply,"
				 " reuse=yes}",
				 &defs, &l, &n, &err),
			 0);
	assert_int_equal(n, 3);
	assert_string_equal(l[0].name, "inet:127.0.0.1:8891");
	assert_int_equal(l[0].connect_timeout_ms, 10000);
	assert_int_equal(l[0].command_timeout_ms, 120000);
	assert_int_equal(l[0].content_timeout_ms, 500);
	assert_int_equal(l[0].default_action, MILTER_ACT_ACCEPT);
	assert_int_equal(l[0].protocol, 4);
	assert_false(l[0].reuse); /* the defaults' (reuse off here) */
	assert_true(l[2].reuse);
	assert_int_equal(l[1].default_action, MILTER_ACT_TEMPFAIL);
	assert_int_equal(l[2].default_action, MILTER_ACT_SHUTDOWN);
	assert_true(l[2].no_header_reply);
	milter_endpoints_free(&l, n);
}

static const char *const bad_lists[] = {
	"tcp:127.0.0.1:1",                   /* unknown type */
	"inet:127.0.0.1",                    /* no port */
	"inet::25",                          /* no host */
	"inet:[::1:25",                      /* unclosed bracket */
	"unix:",                             /* empty path */
	"{ inet:127.0.0.1:1, protocol=5 }",  /* bad version */
	"{ inet:127.0.0.1:1, default_action=bounce }",
	"{ inet:127.0.0.1:1, command_timeout=0s }",
	"{ inet:127.0.0.1:1, command_timeout=10x }",
	"{ inet:127.0.0.1:1, colour=blue }",
	"{ inet:127.0.0.1:1, reuse=maybe }",
	"{ inet:127.0.0.1:1, timeout }",
	"{ inet:127.0.0.1:1",                /* unclosed group */
	"inet:127.0.0.1:1 }",                /* stray brace */
	"{ , default_action=accept }",       /* group without endpoint */
	"{ { inet:127.0.0.1:1 } }",
};

static void test_bad_lists(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(bad_lists); i++) {
		struct milter_endpoint *l = NULL;
		size_t n = 0;
		char *err = NULL;
		if (milter_conf_parse_list(bad_lists[i], &defs, &l, &n, &err) != -1)
			fail_msg("accepted bad list \"%s\"", bad_lists[i]);
		assert_non_null(err);
		assert_int_equal(n, 0);
		free(err);
		milter_endpoints_free(&l, n);
	}
	/* a long unix path is refused, not truncated */
	char path[200];
	memset(path, 'a', sizeof(path));
	memcpy(path, "unix:/", 6);
	path[sizeof(path) - 1] = 0;
	struct milter_endpoint *l = NULL;
	size_t n = 0;
	char *err = NULL;
	assert_int_equal(milter_conf_parse_list(path, &defs, &l, &n, &err), -1);
	free(err);
	milter_endpoints_free(&l, n);
}

static void test_time(void **state)
{
	long long ms;
	assert_int_equal(milter_conf_parse_time("30", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(milter_conf_parse_time("2h", &ms), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(milter_conf_parse_time("1w", &ms), 0);
	assert_int_equal(milter_conf_parse_time("-1s", &ms), -1);
	assert_int_equal(milter_conf_parse_time("s", &ms), -1);
	assert_int_equal(milter_conf_parse_time("99999999999999999999", &ms), -1);
	assert_int_equal(milter_conf_parse_time("9999999999999999w", &ms), -1);
}

static void test_from_cfg(void **state)
{
	static const char maincf[] =
		"smtpd_milters = inet:127.0.0.1:8891, { unix:/run/m.sock, default_action=reject }\n"
		"milter_default_action = accept\n"
		"milter_command_timeout = 7s\n"
		"milter_protocol = 4\n"
		"myhostname = mx.example.org\n"
		"milter_mail_macros = i, {mail_addr}\n";
	const char *cerr = NULL;
	struct cfg *cfg = cfg_parse_text("/nonexistent", "main.cf", maincf, sizeof(maincf) - 1, &cerr);
	assert_non_null(cfg);
	char *err = NULL;
	struct milter_conf *c = milter_conf_from_cfg(cfg, cfg->smtpd_milters,
						     "{auth_type}=none, tls_version = TLSv1.3", &err);
	assert_non_null(c);
	assert_int_equal(c->n, 2);
	assert_int_equal(c->milters[0].default_action, MILTER_ACT_ACCEPT);
	assert_int_equal(c->milters[1].default_action, MILTER_ACT_REJECT);
	assert_int_equal(c->milters[0].command_timeout_ms, 7000);
	assert_int_equal(c->milters[0].content_timeout_ms, 300000);
	assert_int_equal(c->milters[0].protocol, 4);
	assert_string_equal(c->daemon_name, "mx.example.org");
	assert_string_equal(c->macros[MILTER_MACROS_CONNECT], "j {daemon_name} {daemon_addr} v _");
	assert_string_equal(c->macros[MILTER_MACROS_MAIL], "i  {mail_addr}");
	assert_string_equal(c->macros[MILTER_MACROS_EOM], "i");
	assert_int_equal(c->n_defaults, 2);
	assert_string_equal(c->default_names[0], "auth_type");
	assert_string_equal(c->default_values[1], "TLSv1.3");
	assert_non_null(strstr(c->v, "Postern"));
	milter_conf_free(&c);
	assert_null(c);
	/* an empty list is a chain of no milters */
	c = milter_conf_from_cfg(cfg, cfg->non_smtpd_milters, NULL, &err);
	assert_non_null(c);
	assert_int_equal(c->n, 0);
	milter_conf_free(&c);
	c = milter_conf_from_cfg(cfg, "inet:1.2.3.4", NULL, &err);
	assert_null(c);
	assert_non_null(err);
	free(err);
	cfg_free(&cfg);
}

static void test_actions(void **state)
{
	enum milter_action a;
	static const char *const names[] = { "accept", "reject", "tempfail", "quarantine", "shutdown" };
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		assert_int_equal(milter_action_parse(names[i], &a), 0);
		assert_string_equal(milter_action_name(a), names[i]);
	}
	assert_int_equal(milter_action_parse("discard", &a), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoints), cmocka_unit_test(test_groups),
		cmocka_unit_test(test_bad_lists), cmocka_unit_test(test_time),
		cmocka_unit_test(test_from_cfg),  cmocka_unit_test(test_actions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
