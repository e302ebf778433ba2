/*
 * smtpd_rcpt_test.c - recipient classes and relay control, table-driven:
 * mydestination with local_recipient_maps, virtual alias and mailbox
 * domains, relay_domains, mynetworks; relay tricks never accepted; and the
 * mynetworks parser/matcher.
 */
#include "tests/unit/unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "mta/smtpd/smtpd_conf.h"
#include "mta/smtpd/smtpd_rcpt.h"
#include "lib/common.h"

static struct smtpd_conf *conf;
static char dir[] = "/tmp/smtpd_rcpt_test.XXXXXX";

static int setup(void **state)
{
	CHECK(mkdtemp(dir) != NULL);
	char *path = xasprintf("%s/main.cf", dir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fprintf(f, "myhostname = postern.test\n"
		   "mydestination = localhost, $myhostname\n"
		   "local_recipient_maps = unix:passwd.byname\n"
		   "alias_maps =\n"
		   "mynetworks = 127.0.0.0/8 [::1]/128 192.0.2.0/25\n"
		   "virtual_mailbox_domains = example.test\n"
		   "virtual_mailbox_maps = inline:{ alice@example.test=a/, @catch.example.test=c/ }\n"
		   "virtual_alias_domains = alias.test\n"
		   "virtual_alias_maps = inline:{ sales@alias.test=alice@example.test, postmaster=root }\n"
		   "relay_domains = relay.test\n"
		   "recipient_delimiter = +-\n");
	fclose(f);
	free(path);
	const char *err = NULL;
	conf = smtpd_conf_load(dir, NULL, 0, &err);
	if (conf == NULL)
		fail_msg("load: %s", err);
	return 0;
}

static int teardown(void **state)
{
	smtpd_conf_unref(&conf);
	char *path = xasprintf("%s/main.cf", dir);
	unlink(path);
	free(path);
	rmdir(dir);
	return 0;
}

static void test_rcpt_table(void **state)
{
	static const struct {
		const char *addr;
		bool trusted;
		const char *reply; /* NULL = accepted */
	} cases[] = {
		{ "<alice@example.test>", false, NULL },
		{ "<Alice+box@EXAMPLE.test>", false, NULL },
		{ "<alice-box@example.test>", false, NULL },
		{ "<bob@example.test>", false, "550 5.1.1 <bob@example.test>: Recipient address rejected: User unknown in virtual mailbox table" },
		{ "<sales@alias.test>", false, NULL },
		{ "<x@alias.test>", false, "550 5.1.1 <x@alias.test>: Recipient address rejected: User unknown in virtual alias table" },
		{ "<root@localhost>", false, NULL },
		{ "<root+x@postern.test>", false, NULL },
		{ "<postmaster@localhost>", false, NULL }, /* via virtual_alias_maps local part */
		{ "<nosuchuser@localhost>", false, "550 5.1.1 <nosuchuser@localhost>: Recipient address rejected: User unknown in local recipient table" },
		{ "<any@relay.test>", false, NULL },
		{ "<any@sub.relay.test>", false, NULL }, /* parent_domain_matches_subdomains */
		{ "<x@foreign.test>", false, "554 5.7.1 <x@foreign.test>: Relay access denied" },
		{ "<x@foreign.test>", true, NULL },
		{ "<x@notexample.test>", false, "554 5.7.1 <x@notexample.test>: Relay access denied" },
		{ "<x@sub.example.test>", false, "554 5.7.1 <x@sub.example.test>: Relay access denied" },
		{ "<x%foreign.test@example.test>", true, "554 5.7.1 <x%foreign.test@example.test>: Relay access denied" },
		{ "<foreign.test!x@localhost>", true, "554 5.7.1 <foreign.test!x@localhost>: Relay access denied" },
		{ "<\"x@foreign.test\"@relay.test>", false, "554 5.7.1 <\"x@foreign.test\"@relay.test>: Relay access denied" },
		{ "<x%y@foreign.test>", true, NULL }, /* a foreign host decides about its own */
		{ "<x@[192.0.2.1]>", false, "554 5.7.1 <x@[192.0.2.1]>: Relay access denied" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct addr a;
		const char *err;
		char reply[600];
		if (addr_parse(str_of(cases[i].addr), 0, &a, &err) < 0)
			fail_msg("case %zu: parse %s", i, err);
		int r = smtpd_rcpt_check(conf, &a, cases[i].trusted, reply, sizeof(reply));
		if (cases[i].reply == NULL) {
			if (r != 0)
				fail_msg("case %zu %s: rejected: %s", i, cases[i].addr, reply);
		} else {
			if (r != -1 || strcmp(reply, cases[i].reply) != 0)
				fail_msg("case %zu %s: got %d '%s'", i, cases[i].addr, r, r ? reply : "");
		}
	}
}

static void test_nets(void **state)
{
	size_t n;
	struct smtpd_net *nets = smtpd_conf_parse_nets("mynetworks", "10.0.0.0/8, [2001:db8::]/32 192.0.2.7 bogus 1.2.3.4/33 ::1", &n);
	assert_int_equal(n, 4);
	static const struct {
		const char *ip;
		bool in;
	} cases[] = {
		{ "10.1.2.3", true }, { "11.0.0.1", false }, { "192.0.2.7", true }, { "192.0.2.8", false },
		{ "2001:db8::5", true }, { "2001:db9::5", false }, { "::1", true }, { "::ffff:10.9.9.9", true },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		if (strchr(cases[i].ip, ':')) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			inet_pton(AF_INET6, cases[i].ip, &s6->sin6_addr);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			inet_pton(AF_INET, cases[i].ip, &s4->sin_addr);
		}
		if (smtpd_conf_net_match(nets, n, (struct sockaddr *)&ss) != cases[i].in)
			fail_msg("case %zu %s", i, cases[i].ip);
	}
	free(nets);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rcpt_table),
		cmocka_unit_test(test_nets),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
