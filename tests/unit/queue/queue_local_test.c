/*
 * queue_local_test.c - recipient resolution over real inline: and texthash:
 * tables: virtual aliases (recursion, loops, self reference), virtual
 * mailboxes (paths, uid/gid, escape attempts), local aliases (:include:,
 * |command and /file with their permissions), passwd users, remote domains,
 * and table failures (temporary, never "unknown user").
 */
#include <pwd.h>
#include <unistd.h>

#include "tests/unit/unit.h"

#include "lib/cfg.h"
#include "mta/queue/queue_local.h"
#include "lib/common.h"

static char tmpdir[] = "/tmp/queue_local_test.XXXXXX";

static const char *base_cf =
	"myhostname = mx.test\n"
	"mydomain = test\n"
	"myorigin = mx.test\n"
	"mydestination = localhost, mx.test, inline:{ tabled.test=ok }\n"
	"virtual_mailbox_domains = virt.test\n"
	"virtual_mailbox_base = /srv/vmail\n"
	"virtual_mailbox_maps = inline:{ ann@virt.test=ann/, bob@virt.test=bob/,"
	" carl@virt.test=carl.mbox, evil@virt.test=../../etc/, @catch.test=catchall/ }\n"
	"virtual_alias_maps = inline:{ { info@virt.test = ann@virt.test, bob@virt.test },"
	" loop1@virt.test=loop2@virt.test, loop2@virt.test=loop1@virt.test,"
	" { self@virt.test = self@virt.test, bob@virt.test }, fwd@mx.test=x@remote.example }\n"
	"virtual_alias_domains = valias.test\n"
	"recipient_delimiter = +\n"
	"default_privs = nobody\n"
	"alias_maps =\n"
	"mail_spool_directory = /var/mail\n";

static struct cfg *load(const char *extra)
{
	char *text = xasprintf("%s%s", base_cf, extra);
	const char *err = NULL;
	struct cfg *cfg = cfg_parse_text(tmpdir, "main.cf", text, strlen(text), &err);
	if (cfg == NULL)
		fail_msg("%s", err);
	free(text);
	return cfg;
}

static void resolve(const char *extra, const char *rcpt, struct queue_targets *ts)
{
	struct cfg *cfg = load(extra);
	struct queue_local *ql = queue_local_new(cfg, queue_tables_lookup, NULL);
	queue_local_resolve(ql, rcpt, ts);
	queue_local_free(&ql);
	queue_tables_flush();
	cfg_free(&cfg);
}

static void expect_one(const struct queue_targets *ts, enum queue_target_kind kind, const char *path)
{
	assert_int_equal(ts->n, 1);
	assert_int_equal(ts->v[0].kind, kind);
	if (path)
		assert_string_equal(ts->v[0].path, path);
}

static void test_virtual_mailboxes(void **state)
{
	struct queue_targets ts;
	resolve("", "ann@virt.test", &ts);
	expect_one(&ts, QT_MAILDIR, "/srv/vmail/ann/");
	assert_string_equal(ts.v[0].user, "ann@virt.test");
	assert_string_equal(ts.v[0].relay, "virtual");
	assert_int_equal(ts.v[0].uid, getuid()); /* no virtual_uid_maps */
	queue_targets_free(&ts);

	resolve("", "Carl@VIRT.test", &ts);
	expect_one(&ts, QT_MBOX, "/srv/vmail/carl.mbox");
	queue_targets_free(&ts);

	resolve("", "nobody@virt.test", &ts);
	expect_one(&ts, QT_BOUNCE, NULL);
	assert_string_equal(ts.v[0].dsn, "5.1.1");
	assert_string_equal(ts.v[0].reason, "unknown user: \"nobody@virt.test\"");
	queue_targets_free(&ts);

	/* a mailbox path may not climb out of virtual_mailbox_base */
	resolve("", "evil@virt.test", &ts);
	expect_one(&ts, QT_DEFER, NULL);
	assert_string_equal(ts.v[0].dsn, "4.3.5");
	queue_targets_free(&ts);

	/* ann+tag finds ann (extension stripped), final address kept */
	resolve("", "ann+tag@virt.test", &ts);
	expect_one(&ts, QT_MAILDIR, "/srv/vmail/ann/");
	assert_string_equal(ts.v[0].final, "ann+tag@virt.test");
	queue_targets_free(&ts);

	/* @domain catch-all */
	resolve("virtual_mailbox_domains = virt.test, catch.test\n", "any@catch.test", &ts);
	expect_one(&ts, QT_MAILDIR, "/srv/vmail/catchall/");
	queue_targets_free(&ts);
}

static void test_virtual_uids(void **state)
{
	struct queue_targets ts;
	resolve("virtual_uid_maps = static:1234\nvirtual_gid_maps = static:2345\n", "bob@virt.test", &ts);
	expect_one(&ts, QT_MAILDIR, NULL);
	assert_int_equal(ts.v[0].uid, 1234);
	assert_int_equal(ts.v[0].gid, 2345);
	queue_targets_free(&ts);

	/* below virtual_minimum_uid: never deliver, defer with a reason */
	resolve("virtual_uid_maps = static:5\n", "bob@virt.test", &ts);
	expect_one(&ts, QT_DEFER, NULL);
	assert_string_equal(ts.v[0].dsn, "4.3.5");
	queue_targets_free(&ts);

	resolve("virtual_uid_maps = static:12x\n", "bob@virt.test", &ts);
	expect_one(&ts, QT_DEFER, NULL);
	queue_targets_free(&ts);
}

static void test_virtual_aliases(void **state)
{
	struct queue_targets ts;
	resolve("", "info@virt.test", &ts);
	assert_int_equal(ts.n, 2);
	assert_string_equal(ts.v[0].final, "ann@virt.test");
	assert_string_equal(ts.v[1].final, "bob@virt.test");
	assert_string_not_equal(ts.v[0].key, ts.v[1].key);
	queue_targets_free(&ts);

	resolve("", "loop1@virt.test", &ts);
	expect_one(&ts, QT_BOUNCE, NULL);
	assert_string_equal(ts.v[0].dsn, "5.4.6");
	queue_targets_free(&ts);

	/* an alias that lists itself: delivered to itself and the others */
	resolve("virtual_mailbox_maps = inline:{ self@virt.test=self/, bob@virt.test=bob/ }\n",
		"self@virt.test", &ts);
	assert_int_equal(ts.n, 2);
	assert_string_equal(ts.v[0].final, "bob@virt.test");
	assert_string_equal(ts.v[1].final, "self@virt.test");
	queue_targets_free(&ts);

	/* a local address aliased to a remote one goes nowhere yet */
	resolve("", "fwd@mx.test", &ts);
	expect_one(&ts, QT_DEFER, NULL);
	assert_string_equal(ts.v[0].reason, "no outbound transport yet");
	assert_string_equal(ts.v[0].final, "x@remote.example");
	queue_targets_free(&ts);

	resolve("", "someone@valias.test", &ts);
	expect_one(&ts, QT_BOUNCE, NULL);
	queue_targets_free(&ts);
}

static void test_remote_and_table_errors(void **state)
{
	struct queue_targets ts;
	resolve("", "x@remote.example", &ts);
	expect_one(&ts, QT_DEFER, NULL);
	assert_string_equal(ts.v[0].relay, "none");
	queue_targets_free(&ts);

	/* a table that cannot be read is a temporary error, never "unknown" */
	resolve("virtual_alias_maps = texthash:/nonexistent/table\n", "ann@virt.test", &ts);
	expect_one(&ts, QT_DEFER, NULL);
	assert_string_equal(ts.v[0].dsn, "4.3.0");
	queue_targets_free(&ts);
}

static char *write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_local_aliases(void **state)
{
	struct queue_targets ts;
	char *inc = write_file("list.inc", "# members\nann@virt.test\n|/bin/true\n/tmp/x.mbox\n");
	char *aliases = xasprintf("postmaster root\n"
				  "cmd |/usr/bin/logger -t test\n"
				  "file /tmp/alias.mbox\n"
				  "list :include:%s\n"
				  "both ann@virt.test, \"|/bin/cat, with comma\"\n"
				  "a1 a2\na2 a1\n",
				  inc);
	char *tab = write_file("aliases", aliases);
	char *cf = xasprintf("alias_maps = texthash:%s\n", tab);

	resolve(cf, "cmd@mx.test", &ts);
	expect_one(&ts, QT_PIPE, "/usr/bin/logger -t test");
	assert_string_equal(ts.v[0].what, "command");
	queue_targets_free(&ts);

	resolve(cf, "file@mx.test", &ts);
	expect_one(&ts, QT_MBOX, "/tmp/alias.mbox");
	assert_string_equal(ts.v[0].what, "file");
	queue_targets_free(&ts);

	resolve(cf, "both@localhost", &ts);
	assert_int_equal(ts.n, 2);
	assert_int_equal(ts.v[0].kind, QT_MAILDIR);
	assert_int_equal(ts.v[1].kind, QT_PIPE);
	assert_string_equal(ts.v[1].path, "/bin/cat, with comma");
	queue_targets_free(&ts);

	/* :include: members: commands and files need "include" permission */
	resolve(cf, "list@mx.test", &ts);
	assert_int_equal(ts.n, 3);
	assert_int_equal(ts.v[0].kind, QT_MAILDIR);
	assert_int_equal(ts.v[1].kind, QT_BOUNCE);
	assert_string_equal(ts.v[1].reason, "mail to command is restricted");
	assert_int_equal(ts.v[2].kind, QT_BOUNCE);
	assert_string_equal(ts.v[2].reason, "mail to file is restricted");
	queue_targets_free(&ts);

	char *cf2 = xasprintf("%sallow_mail_to_commands = alias, include\n"
			      "allow_mail_to_files = include\n", cf);
	resolve(cf2, "list@mx.test", &ts);
	assert_int_equal(ts.v[1].kind, QT_PIPE);
	assert_int_equal(ts.v[2].kind, QT_MBOX);
	queue_targets_free(&ts);
	resolve(cf2, "file@mx.test", &ts); /* now files from aliases are refused */
	expect_one(&ts, QT_BOUNCE, NULL);
	assert_string_equal(ts.v[0].dsn, "5.7.1");
	queue_targets_free(&ts);

	resolve(cf, "a1@mx.test", &ts);
	expect_one(&ts, QT_BOUNCE, NULL);
	assert_string_equal(ts.v[0].dsn, "5.4.6");
	queue_targets_free(&ts);

	/* postmaster -> root: root's mailbox, never delivered as uid 0 */
	resolve(cf, "postmaster@mx.test", &ts);
	expect_one(&ts, QT_MBOX, "/var/mail/root");
	assert_string_equal(ts.v[0].user, "root");
	struct passwd *nobody = getpwnam("nobody");
	if (nobody)
		assert_int_equal(ts.v[0].uid, nobody->pw_uid);
	queue_targets_free(&ts);
	free(cf);
	free(cf2);
	free(tab);
	free(inc);
	free(aliases);
}

static void test_passwd_users(void **state)
{
	struct queue_targets ts;
	struct passwd *pw = getpwuid(getuid());
	assert_non_null(pw);
	char *name = xstrdup(pw->pw_name);
	char *home = xstrdup(pw->pw_dir);

	char *addr = xasprintf("%s+folder@MX.test", name);
	resolve("home_mailbox = Maildir/\n", addr, &ts);
	char *want = xasprintf("%s/Maildir/", home);
	expect_one(&ts, QT_MAILDIR, want);
	assert_string_equal(ts.v[0].user, name);
	assert_string_equal(ts.v[0].final, addr);
	assert_string_equal(ts.v[0].relay, "local");
	queue_targets_free(&ts);
	free(want);
	free(addr);

	addr = xasprintf("%s@tabled.test", name);
	resolve("home_mailbox = Mailbox\n", addr, &ts);
	want = xasprintf("%s/Mailbox", home);
	expect_one(&ts, QT_MBOX, want);
	queue_targets_free(&ts);
	free(want);
	free(addr);

	resolve("", "no-such-user-zz@mx.test", &ts);
	expect_one(&ts, QT_BOUNCE, NULL);
	assert_string_equal(ts.v[0].reason, "unknown user: \"no-such-user-zz\"");
	queue_targets_free(&ts);
	free(name);
	free(home);
}

static int setup(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char *cmd = xasprintf("rm -rf %s", tmpdir);
	int rc = system(cmd);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_virtual_mailboxes),
		cmocka_unit_test(test_virtual_uids),
		cmocka_unit_test(test_virtual_aliases),
		cmocka_unit_test(test_remote_and_table_errors),
		cmocka_unit_test(test_local_aliases),
		cmocka_unit_test(test_passwd_users),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
