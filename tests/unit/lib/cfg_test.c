/*
 * cfg_test.c - main.cf and master.cf: syntax, expansion, defaults, every
 * type's bad values with their exact "FILE:LINE:" messages, overrides,
 * postconf-style printing, and docs/configuration.md naming every parameter.
 */
#include "tests/unit/unit.h"

#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/cfg.h"
#include "lib/cfg_int.h"
#include "lib/log.h"
#include "lib/common.h"

static struct cfg *parse(const char *text, const char **err)
{
	*err = NULL;
	return cfg_parse_text("/etc/postern", "main.cf", text, strlen(text), err);
}

/* A temp directory for file-based tests; removed by rmtree. */
static char *mktmp(void)
{
	char *d = xstrdup("/tmp/cfg_test.XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rmtree(char *dir)
{
	char *cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(dir);
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return xstrdup("");
	struct buf b;
	buf_init(&b, 1 << 20);
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		assert_int_equal(buf_append(&b, tmp, n), 0);
	fclose(f);
	char *r = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return r;
}

static void test_defaults(void **state)
{
	const char *err;
	struct cfg *c = parse("", &err);
	assert_non_null(c);
	assert_int_equal(c->message_size_limit, 10240000);
	assert_int_equal(c->header_size_limit, 102400);
	assert_int_equal(c->smtpd_recipient_limit, 1000);
	assert_int_equal(c->smtpd_timeout, 300);
	assert_int_equal(c->queue_run_delay, 300);
	assert_int_equal(c->minimal_backoff_time, 300);
	assert_int_equal(c->maximal_backoff_time, 4000);
	assert_int_equal(c->maximal_queue_lifetime, 5 * 86400);
	assert_int_equal(c->bounce_queue_lifetime, 5 * 86400);
	assert_int_equal(c->delay_warning_time, 0);
	assert_int_equal(c->line_length_limit, 2048);
	assert_int_equal(c->virtual_minimum_uid, 100);
	assert_int_equal(c->smtpd_process_count, 1);
	assert_int_equal(c->milter_content_timeout, 300);
	assert_string_equal(c->smtpd_forbid_bare_newline, "normalize");
	assert_string_equal(c->syslog_name, "postern");
	assert_string_equal(c->mail_owner, "postern");
	assert_string_equal(c->mynetworks, "127.0.0.0/8 [::1]/128");
	assert_string_equal(c->daemon_directory, "");
	assert_string_equal(c->config_directory, "/etc/postern");
	assert_string_equal(c->_2bounce_notice_recipient, "postmaster");
	assert_string_equal(c->smtpd_tls_security_level, "");
	assert_false(c->biff);
	assert_true(c->smtpd_delay_reject);
	assert_false(c->smtpd_helo_required);
	/* computed defaults hang together as in Postfix */
	assert_non_null(strchr(c->myhostname, '.'));
	assert_string_equal(c->myorigin, c->myhostname);
	char *dest = xasprintf("%s, localhost.%s, localhost", c->myhostname, c->mydomain);
	assert_string_equal(c->mydestination, dest);
	free(dest);
	char *banner = xasprintf("%s ESMTP Postern", c->myhostname);
	assert_string_equal(c->smtpd_banner, banner);
	free(banner);
	/* RAW parameters keep their $names for delivery time */
	assert_string_equal(c->forward_path,
			    "$home/.forward${recipient_delimiter}${extension}, $home/.forward");
	/* every parameter has a text value */
	for (size_t i = 0; i < cfg_nparams; i++)
		assert_non_null(cfg_value(c, cfg_param_name(&cfg_params[i])));
	cfg_free(&c);
	assert_null(c);
	cfg_free(&c);
	cfg_free(NULL);
}

static void test_values(void **state)
{
	static const struct {
		const char *text;
		const char *name;
		const char *want;
	} cases[] = {
		{ "myhostname = mx.example.com\n", "mydomain", "example.com" },
		{ "myhostname = example.com\n", "mydomain", "localdomain" },
		{ "myhostname = mx.example.com\n", "mydestination",
		  "mx.example.com, localhost.example.com, localhost" },
		{ "mydomain = d.test\nmyhostname = a.b.c\n", "mydomain", "d.test" },
		{ "myhostname=h.x.y\nsmtpd_banner=$myhostname ready\n", "smtpd_banner", "h.x.y ready" },
		{ "myhostname = h.x.y\nsmtpd_banner = ${myhostname} $(myhostname)\n", "smtpd_banner",
		  "h.x.y h.x.y" },
		{ "smtpd_banner = cost $$5 and $ alone\n", "smtpd_banner", "cost $5 and $ alone" },
		{ "smtpd_banner = [$undefined_thing]\n", "smtpd_banner", "[]" },
		/* continuation lines, comments inside them, '#' inside a value */
		{ "relay_domains = a.test,\n  b.test\n# note\n\tc.test\n", "relay_domains",
		  "a.test, b.test c.test" },
		{ "smtpd_banner = hi # not a comment\n", "smtpd_banner", "hi # not a comment" },
		{ "  # indented comment\nsmtpd_banner = x\n", "smtpd_banner", "x" },
		{ "smtpd_banner = a\r\n", "smtpd_banner", "a" },
		{ "smtpd_banner = first\nsmtpd_banner = second\n", "smtpd_banner", "second" },
		/* conditionals */
		{ "relayhost = r.test\nsmtpd_banner = ${relayhost?set}${relayhost:unset}\n",
		  "smtpd_banner", "set" },
		{ "smtpd_banner = ${relayhost?set}${relayhost:unset}\n", "smtpd_banner", "unset" },
		{ "relayhost = r\nsmtpd_banner = ${relayhost?{yes $relayhost}:{no}}\n", "smtpd_banner",
		  "yes r" },
		{ "smtpd_banner = ${relayhost?{yes}:{no}}\n", "smtpd_banner", "no" },
		{ "smtpd_banner = ${relayhost?{yes}}\n", "smtpd_banner", "" },
		{ "smtpd_banner = ${relayhost:${mail_name}}\n", "smtpd_banner", "Postern" },
		{ "smtpd_hard_error_limit = ${stress?{1}:{20}}\n", "smtpd_hard_error_limit", "20" },
		/* user-defined names can be referenced */
		{ "my_own = one\nsmtpd_banner = $my_own two\n", "smtpd_banner", "one two" },
		{ "my_own = one\n", "my_own", "one" },
		/* a chain, evaluated once each (no exponential blow-up) */
		{ "a0 = x\na1 = $a0$a0\na2 = $a1$a1\na3 = $a2$a2\nsmtpd_banner = $a3\n", "smtpd_banner",
		  "xxxxxxxx" },
		/* conversions and canonical forms */
		{ "smtpd_timeout = 5m\n", "smtpd_timeout", "5m" },
		{ "smtpd_forbid_bare_newline = REJECT\n", "smtpd_forbid_bare_newline", "reject" },
		{ "config_directory = /elsewhere\n", "config_directory", "/etc/postern" },
		{ "inet_protocols = ipv4, ipv6\n", "inet_protocols", "ipv4, ipv6" },
		{ "forward_path = $home/.fwd\n", "forward_path", "$home/.fwd" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const char *err;
		struct cfg *c = parse(cases[i].text, &err);
		if (c == NULL)
			fail_msg("case %zu: %s", i, err);
		const char *v = cfg_value(c, cases[i].name);
		assert_non_null(v);
		if (strcmp(v, cases[i].want) != 0)
			fail_msg("case %zu: %s = \"%s\", want \"%s\"", i, cases[i].name, v, cases[i].want);
		cfg_free(&c);
	}
}

static void test_types(void **state)
{
	static const struct {
		const char *text;
		long long want;
		int which; /* 0 timeout 1 max_queue_lifetime 2 message_size_limit 3 recipient_limit */
	} cases[] = {
		{ "smtpd_timeout = 10\n", 10, 0 },
		{ "smtpd_timeout = 10s\n", 10, 0 },
		{ "smtpd_timeout = 2m\n", 120, 0 },
		{ "smtpd_timeout = 1h\n", 3600, 0 },
		{ "smtpd_timeout = 1d\n", 86400, 0 },
		{ "smtpd_timeout = 1w\n", 604800, 0 },
		{ "smtpd_timeout = 3H\n", 10800, 0 },
		{ "maximal_queue_lifetime = 2\n", 2 * 86400, 1 }, /* bare number: days here */
		{ "maximal_queue_lifetime = 2h\n", 7200, 1 },
		{ "message_size_limit = 0\n", 0, 2 },
		{ "message_size_limit = 9223372036854775807\n", 9223372036854775807LL, 2 },
		{ "smtpd_recipient_limit = 7\n", 7, 3 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const char *err;
		struct cfg *c = parse(cases[i].text, &err);
		if (c == NULL)
			fail_msg("case %zu: %s", i, err);
		long long got = cases[i].which == 0   ? c->smtpd_timeout
				: cases[i].which == 1 ? c->maximal_queue_lifetime
				: cases[i].which == 2 ? c->message_size_limit
						      : c->smtpd_recipient_limit;
		assert_int_equal(got, cases[i].want);
		cfg_free(&c);
	}
	const char *err;
	static const char *yes[] = { "yes", "YES", "true", "1" }, *no[] = { "no", "No", "false", "0" };
	for (size_t i = 0; i < 4; i++) {
		char *t = xasprintf("biff = %s\nsmtpd_helo_required = %s\n", yes[i], no[i]);
		struct cfg *c = parse(t, &err);
		assert_non_null(c);
		assert_true(c->biff);
		assert_false(c->smtpd_helo_required);
		cfg_free(&c);
		free(t);
	}
}

static void test_errors(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "# c\n\nsmtpd_recipient_limit = 12x\n",
		  "main.cf:3: bad integer value for smtpd_recipient_limit: \"12x\"" },
		{ "smtpd_recipient_limit = -1\n",
		  "main.cf:1: bad integer value for smtpd_recipient_limit: \"-1\"" },
		{ "smtpd_recipient_limit = 99999999999999999999\n",
		  "main.cf:1: bad integer value for smtpd_recipient_limit: \"99999999999999999999\"" },
		{ "smtpd_recipient_limit =\n", "main.cf:1: bad integer value for smtpd_recipient_limit: \"\"" },
		{ "message_size_limit = 10M\n", "main.cf:1: bad size value for message_size_limit: \"10M\"" },
		{ "smtpd_timeout = 5x\n",
		  "main.cf:1: bad time value for smtpd_timeout: \"5x\" (a number with an optional unit s, m, h, d or w)" },
		{ "smtpd_timeout = s\n",
		  "main.cf:1: bad time value for smtpd_timeout: \"s\" (a number with an optional unit s, m, h, d or w)" },
		{ "smtpd_timeout = 99999999999999999w\n",
		  "main.cf:1: bad time value for smtpd_timeout: \"99999999999999999w\" (a number with an optional unit s, m, h, d or w)" },
		{ "biff = maybe\n", "main.cf:1: bad boolean value for biff: \"maybe\" (yes or no)" },
		{ "smtpd_forbid_bare_newline = sometimes\n",
		  "main.cf:1: bad value for smtpd_forbid_bare_newline: \"sometimes\" (expected one of normalize|yes|note|reject|no)" },
		{ "smtpd_tls_security_level = dane\n",
		  "main.cf:1: bad value for smtpd_tls_security_level: \"dane\" (expected one of none|may|encrypt)" },
		{ "inet_protocols = ipv4, ipx\n",
		  "main.cf:1: bad value for inet_protocols: \"ipx\" is not one of all|ipv4|ipv6" },
		{ "a = $b\nb = $a\nsmtpd_banner = $a\n", "main.cf:1: a: parameter reference loop at $a" },
		{ "smtpd_banner = $smtpd_banner\n", "main.cf:1: smtpd_banner: parameter reference loop at $smtpd_banner" },
		{ "smtpd_banner = ${myhostname\n", "main.cf:1: smtpd_banner: unterminated \"${\"" },
		{ "smtpd_banner = $(myhostname\n", "main.cf:1: smtpd_banner: unterminated \"$(\"" },
		{ "smtpd_banner = ${}\n", "main.cf:1: smtpd_banner: bad parameter name in \"${\"" },
		{ "smtpd_banner = ${{$a} == {$b}?x}\n",
		  "main.cf:1: smtpd_banner: bad parameter name in \"${{$a} == {$b}?x\"" },
		{ "smtpd_banner = ${myhostname!x}\n",
		  "main.cf:1: smtpd_banner: bad character '!' after ${myhostname" },
		{ "smtpd_banner = ${relayhost?{a}x}\n", "main.cf:1: smtpd_banner: bad conditional after ${relayhost?" },
		{ "ok = 1\nnot a parameter line\n", "main.cf:2: missing '=' after parameter name \"not\"" },
		{ "= value\n", "main.cf:1: bad parameter name: \"= value\"" },
		{ "-x = 1\n", "main.cf:1: bad parameter name: \"-x = 1\"" },
		{ "  leading = 1\n", "main.cf:1: line starts with whitespace but continues nothing" },
		{ "biff = no\nsmtpd_banner = a\0b\n", "main.cf:2: NUL byte in line" },
		/* the first error by line number is the one reported */
		{ "smtpd_timeout = x\nbiff = x\nmessage_size_limit = x\n",
		  "main.cf:1: bad time value for smtpd_timeout: \"x\" (a number with an optional unit s, m, h, d or w)" },
		{ "message_size_limit = x\nsmtpd_timeout = x\n", "main.cf:1: bad size value for message_size_limit: \"x\"" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const char *err = NULL;
		size_t len = strlen(cases[i].text);
		if (strstr(cases[i].want, "NUL"))
			len = sizeof("biff = no\nsmtpd_banner = a\0b\n") - 1;
		struct cfg *c = cfg_parse_text("/etc/postern", "main.cf", cases[i].text, len, &err);
		if (c != NULL)
			fail_msg("case %zu: accepted", i);
		if (strcmp(err, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\"\n want \"%s\"", i, err, cases[i].want);
	}
}

static void test_long_lines(void **state)
{
	/* a value over 64 KiB is fine; a logical line over 1 MiB is not; an
	 * expansion over 1 MiB is not */
	struct buf b;
	buf_init(&b, 4 << 20);
	assert_int_equal(buf_puts(&b, "mydestination = "), 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf_printf(&b, "d%05d.test, ", i), 0);
	assert_true(b.len > 64 * 1024);
	const char *err;
	struct cfg *c = cfg_parse_text("/x", "main.cf", b.data, b.len, &err);
	assert_non_null(c);
	assert_true(strlen(c->mydestination) > 64 * 1024);
	cfg_free(&c);
	buf_reset(&b);
	assert_int_equal(buf_puts(&b, "smtpd_banner = "), 0);
	for (int i = 0; i < 1100 * 1024; i++)
		assert_int_equal(buf_putc(&b, 'x'), 0);
	c = cfg_parse_text("/x", "main.cf", b.data, b.len, &err);
	assert_null(c);
	assert_string_equal(err, "main.cf:1: logical line longer than 1048576 bytes");
	buf_reset(&b);
	/* 2^25 bytes by doubling: refused, not allocated */
	assert_int_equal(buf_puts(&b, "a0 = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"), 0);
	for (int i = 1; i <= 20; i++)
		assert_int_equal(buf_printf(&b, "a%d = $a%d$a%d\n", i, i - 1, i - 1), 0);
	assert_int_equal(buf_puts(&b, "smtpd_banner = $a20\n"), 0);
	c = cfg_parse_text("/x", "main.cf", b.data, b.len, &err);
	assert_null(c);
	assert_non_null(strstr(err, "value longer than 1048576 bytes after expansion"));
	buf_free(&b);
}

static void test_load_file(void **state)
{
	char *dir = mktmp();
	const char *err;
	struct cfg *c = cfg_load(dir, &err);
	assert_null(c);
	char *want = xasprintf("%s/main.cf: No such file or directory", dir);
	assert_string_equal(err, want);
	free(want);

	char *log = xasprintf("%s/log", dir);
	assert_int_equal(log_open("cfgtest", log, &err), 0);
	unit_write_file(dir, "main.cf",
		   "myhostname = mx.example.org\n"
		   "smtpd_bogus_limit = 3\n"
		   "helper = x\n"
		   "smtpd_banner = $helper $config_directory\n");
	c = cfg_load(dir, &err);
	assert_non_null(c);
	log_close();
	char *banner = xasprintf("x %s", dir);
	assert_string_equal(c->smtpd_banner, banner);
	assert_string_equal(c->config_directory, dir);
	free(banner);
	char *text = read_all(log);
	want = xasprintf("warning: %s/main.cf:2: unknown parameter smtpd_bogus_limit\n", dir);
	if (strstr(text, want) == NULL)
		fail_msg("log lacks \"%s\": %s", want, text);
	/* helper is used by $helper: no warning */
	assert_null(strstr(text, "helper"));
	free(want);
	free(text);
	free(log);
	cfg_free(&c);

	/* Debian's myorigin = /etc/mailname */
	unit_write_file(dir, "mailname", "  mail.example.net \nignored\n");
	char *mo = xasprintf("myorigin = %s/mailname\n", dir);
	unit_write_file(dir, "main.cf", mo);
	free(mo);
	c = cfg_load(dir, &err);
	assert_non_null(c);
	assert_string_equal(c->myorigin, "mail.example.net");
	/* the file goes away: a copy still works, a re-evaluation says why not */
	char *mn = xasprintf("%s/mailname", dir);
	assert_int_equal(unlink(mn), 0);
	free(mn);
	struct cfg *d = cfg_dup(c);
	assert_string_equal(d->myorigin, "mail.example.net");
	assert_int_equal(cfg_override(d, "smtpd_timeout", "1", &err), -1);
	char *want2 = xasprintf("%s/main.cf:1: myorigin: cannot read %s/mailname: No such file or directory", dir, dir);
	assert_string_equal(err, want2);
	free(want2);
	assert_string_equal(d->myorigin, "mail.example.net");
	cfg_free(&d);
	cfg_free(&c);
	unit_write_file(dir, "main.cf", "myorigin = /nonexistent/mailname\n");
	c = cfg_load(dir, &err);
	assert_null(c);
	assert_non_null(strstr(err, "/main.cf:1: myorigin: cannot read /nonexistent/mailname: No such file or directory"));

	/* a directory where main.cf should be */
	char *sub = xasprintf("%s/d", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	char *mc = xasprintf("%s/main.cf", sub);
	assert_int_equal(mkdir(mc, 0700), 0);
	c = cfg_load(sub, &err);
	assert_null(c);
	assert_non_null(strstr(err, "main.cf: Is a directory"));
	free(mc);
	free(sub);
	rmtree(dir);
}

static void test_override_dup(void **state)
{
	const char *err;
	struct cfg *c = parse("myhostname = a.example.com\nsmtpd_timeout = 60\n", &err);
	assert_non_null(c);
	struct cfg *d = cfg_dup(c);
	assert_int_equal(cfg_override(c, "smtpd_timeout", "10s", &err), 0);
	assert_int_equal(c->smtpd_timeout, 10);
	assert_string_equal(cfg_value(c, "smtpd_timeout"), "10s");
	/* references follow an overridden parameter */
	assert_int_equal(cfg_override(c, "myhostname", "b.example.net", &err), 0);
	assert_string_equal(c->myorigin, "b.example.net");
	assert_string_equal(c->mydomain, "example.net");
	/* the dup is independent */
	assert_int_equal(d->smtpd_timeout, 60);
	assert_string_equal(d->myorigin, "a.example.com");
	/* errors leave the configuration unchanged */
	assert_int_equal(cfg_override(c, "smtpd_timeout", "forever", &err), -1);
	assert_string_equal(err, "-o smtpd_timeout=forever: bad time value for smtpd_timeout: \"forever\" (a number with an optional unit s, m, h, d or w)");
	assert_int_equal(c->smtpd_timeout, 10);
	assert_int_equal(cfg_override(c, "no_such_parameter", "1", &err), -1);
	assert_string_equal(err, "unknown parameter no_such_parameter");
	assert_int_equal(cfg_override(c, "smtpd_banner", "${oops", &err), -1);
	assert_string_equal(err, "-o smtpd_banner=${oops: unterminated \"${\"");
	assert_null(cfg_value(c, "no_such_parameter"));
	assert_true(cfg_is_known("2bounce_notice_recipient"));
	assert_false(cfg_is_known("_2bounce_notice_recipient"));
	assert_int_equal(cfg_override(c, "2bounce_notice_recipient", "admin", &err), 0);
	assert_string_equal(c->_2bounce_notice_recipient, "admin");
	/* the caller fills daemon_directory */
	assert_int_equal(cfg_override(c, "daemon_directory", "/opt/postern/bin", &err), 0);
	assert_string_equal(c->daemon_directory, "/opt/postern/bin");
	cfg_free(&c);
	cfg_free(&d);
}

static char *print_to_string(const struct cfg *c, enum cfg_print_mode mode, char **names, int *rc)
{
	char *p = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&p, &n);
	assert_non_null(f);
	*rc = cfg_print(c, mode, names, f);
	fclose(f);
	return p;
}

static void test_print(void **state)
{
	const char *err;
	struct cfg *c = parse("smtpd_timeout = 10s\nmyhostname = mx.example.com\nsmtpd_banner = $myhostname hi\n", &err);
	assert_non_null(c);
	int rc;
	char *out = print_to_string(c, CFG_PRINT_NONDEFAULT, NULL, &rc);
	assert_int_equal(rc, 0);
	/* postconf -n: sorted, expanded */
	assert_string_equal(out, "myhostname = mx.example.com\n"
				 "smtpd_banner = mx.example.com hi\n"
				 "smtpd_timeout = 10s\n");
	free(out);
	out = print_to_string(c, CFG_PRINT_ALL, NULL, &rc);
	assert_int_equal(rc, 0);
	/* one line per parameter, sorted */
	size_t lines = 0;
	const char *prev = NULL;
	for (char *l = out; *l; l = strchr(l, '\n') + 1) {
		lines++;
		if (prev)
			assert_true(strncmp(prev, l, (size_t)(strchr(l, ' ') - l)) < 0);
		prev = l;
	}
	assert_int_equal(lines, cfg_nparams);
	assert_non_null(strstr(out, "\nsmtpd_timeout = 10s\n"));
	assert_non_null(strstr(out, "\nmydomain = example.com\n"));
	assert_non_null(strstr(out, "\n2bounce_notice_recipient = postmaster\n") ||
			strncmp(out, "2bounce_notice_recipient = postmaster\n", 38) == 0);
	free(out);
	char *names[] = { "smtpd_timeout", "message_size_limit", NULL };
	out = print_to_string(c, CFG_PRINT_DEFAULTS, names, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "smtpd_timeout = 300s\nmessage_size_limit = 10240000\n");
	free(out);
	out = print_to_string(c, CFG_PRINT_ALL, names, &rc);
	assert_string_equal(out, "smtpd_timeout = 10s\nmessage_size_limit = 10240000\n");
	free(out);
	char *bad[] = { "smtpd_timeout", "nonesuch", NULL };
	out = print_to_string(c, CFG_PRINT_ALL, bad, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(out, "smtpd_timeout = 10s\n");
	free(out);
	assert_string_equal(cfg_print_mode_name(CFG_PRINT_NONDEFAULT), "nondefault");
	cfg_free(&c);
}

static void test_check_collects_all(void **state)
{
	char *dir = mktmp();
	unit_write_file(dir, "main.cf",
		   "smtpd_timeout = 5x\n"
		   "biff = perhaps\n"
		   "bogus_name = 1\n"
		   "no equals here\n"
		   "message_size_limit = 10\n");
	unit_write_file(dir, "master.cf",
		   "127.0.0.1:2525 inet n - n - - smtpd -o smtpd_timeout=never\n"
		   "pickup unix n - n 60 1 pickup\n"
		   "127.0.0.1:2526 inet n - n - - smtpd -o nonesuch=1\n"
		   "127.0.0.1:2527 inet q - n - - smtpd\n");
	struct buf r;
	buf_init(&r, 100000);
	int n = cfg_check(dir, &r);
	assert_int_equal(n, 6);
	const char *want[] = {
		"/main.cf:1: bad time value for smtpd_timeout: \"5x\"",
		"/main.cf:2: bad boolean value for biff: \"perhaps\" (yes or no)\n",
		"/main.cf:3: warning: unknown parameter bogus_name\n",
		"/main.cf:4: missing '=' after parameter name \"no\"\n",
		"/master.cf:1: -o smtpd_timeout: bad time value for smtpd_timeout: \"never\"",
		"/master.cf:2: warning: ignoring service pickup unix (pickup)",
		"/master.cf:3: -o nonesuch: unknown parameter\n",
		"/master.cf:4: private, unpriv and chroot must be y, n or -\n",
	};
	for (size_t i = 0; i < ARRAY_LEN(want); i++)
		if (strstr(buf_cstr(&r), want[i]) == NULL)
			fail_msg("report lacks \"%s\":\n%s", want[i], buf_cstr(&r));
	/* sorted by file, then line */
	const char *prev = NULL;
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		const char *at = strstr(buf_cstr(&r), want[i]);
		assert_true(prev == NULL || at > prev);
		prev = at;
	}
	/* a clean main.cf lets -o values with $references be checked too */
	buf_reset(&r);
	unit_write_file(dir, "main.cf", "smtpd_timeout = 5\nmy_timeout = 1x\nalias_maps =\n");
	unit_write_file(dir, "master.cf", "127.0.0.1:2525 inet n - n - - smtpd\n"
				     "127.0.0.1:2526 inet n - n - - smtpd -o smtpd_timeout=$my_timeout\n");
	assert_int_equal(cfg_check(dir, &r), 1);
	if (strstr(buf_cstr(&r), "/master.cf:2: -o smtpd_timeout=$my_timeout: bad time value") == NULL)
		fail_msg("%s", buf_cstr(&r));
	/* a broken reference is one problem, not two */
	buf_reset(&r);
	unit_write_file(dir, "main.cf", "smtpd_timeout = ${x\nalias_maps =\n");
	unit_write_file(dir, "master.cf", "");
	assert_int_equal(cfg_check(dir, &r), 1);
	if (strstr(buf_cstr(&r), "/main.cf:1: smtpd_timeout: unterminated \"${\"\n") == NULL)
		fail_msg("%s", buf_cstr(&r));
	/* tables: one that cannot open is an error, one not built a warning */
	buf_reset(&r);
	unit_write_file(dir, "main.cf", "alias_maps =\n"
				   "virtual_alias_maps = inline:{ a=b }, bogus:x\n"
				   "virtual_mailbox_maps = lmdb:/nonexistent/vmailbox\n"
				   "header_checks = regexp:/nonexistent/hc\n"
				   "relay_recipient_maps = hash:/nonexistent/relay\n");
	assert_int_equal(cfg_check(dir, &r), 2);
	const char *want_tables[] = {
		"/main.cf:2: virtual_alias_maps: bogus:x: unknown table type \"bogus\"\n",
		"/main.cf:3: warning: virtual_mailbox_maps: lookups will fail: /nonexistent/vmailbox.lmdb: No such file or directory\n",
		"/main.cf:4: header_checks: /nonexistent/hc: No such file or directory\n",
		"/main.cf:5: warning: relay_recipient_maps: hash: and btree: tables are read as lmdb:\n",
	};
	for (size_t i = 0; i < ARRAY_LEN(want_tables); i++)
		if (strstr(buf_cstr(&r), want_tables[i]) == NULL)
			fail_msg("report lacks \"%s\":\n%s", want_tables[i], buf_cstr(&r));
	/* texthash: is not hash: (no lmdb: warning for it) */
	buf_reset(&r);
	char *th = xasprintf("alias_maps =\nvirtual_mailbox_maps = texthash:%s/main.cf\n", dir);
	unit_write_file(dir, "main.cf", th);
	free(th);
	assert_int_equal(cfg_check(dir, &r), 0);
	assert_string_equal(buf_cstr(&r), "");
	/* a clean configuration has no problems at all */
	buf_reset(&r);
	unit_write_file(dir, "main.cf", "smtpd_timeout = 5\nalias_maps =\n");
	unit_write_file(dir, "master.cf", "127.0.0.1:2525 inet n - n - - smtpd\n");
	assert_int_equal(cfg_check(dir, &r), 0);
	assert_string_equal(buf_cstr(&r), "");
	rmtree(dir);
	buf_free(&r);
}

/* ---- master.cf ---- */

static void test_master_ok(void **state)
{
	const char *text =
		"# Postern services\n"
		"127.0.0.1:2525 inet n - n - - smtpd\n"
		"  -o smtpd_timeout=10s\n"
		"  -o { smtpd_banner = hello there }\n"
		"  -v\n"
		"[::1]:2525 inet n - n - 4 smtpd -o smtpd_tls_wrappermode=yes\n"
		"2600 inet n y y 60? 10 smtpd\n"
		"smtp inet n - y - - smtpd\n"
		"127.0.0.2:smtp inet n - y - - smtpd -osyslog_name=postern/alt\n"
		"pickup unix n - y 60 1 pickup\n"
		"submission inet n - y - - smtpd -o smtpd_banner=$myhostname\n";
	struct cfg_service *s;
	size_t n;
	const char *err;
	int rc = cfg_master_parse_text("master.cf", text, strlen(text), &s, &n, &err);
	if (rc != 0)
		fail_msg("%s", err);
	assert_int_equal(n, 6);
	assert_string_equal(s[0].endpoint, "127.0.0.1:2525");
	assert_string_equal(s[0].host, "127.0.0.1");
	assert_int_equal(s[0].port, 2525);
	assert_int_equal(s[0].line, 2);
	assert_int_equal(s[0].maxproc, -1);
	assert_false(s[0].private_);
	assert_false(s[0].chroot);
	assert_true(s[0].unpriv);
	assert_string_equal(s[0].command, "smtpd");
	assert_int_equal(s[0].n_overrides, 2);
	assert_string_equal(s[0].override_names[0], "smtpd_timeout");
	assert_string_equal(s[0].override_values[0], "10s");
	assert_string_equal(s[0].override_names[1], "smtpd_banner");
	assert_string_equal(s[0].override_values[1], "hello there");
	assert_string_equal(s[0].args[0], "-v");
	assert_null(s[0].args[1]);
	assert_string_equal(s[1].host, "::1");
	assert_int_equal(s[1].port, 2525);
	assert_int_equal(s[1].maxproc, 4);
	assert_null(s[2].host);
	assert_int_equal(s[2].port, 2600);
	assert_int_equal(s[2].wakeup, 60);
	assert_true(s[2].unpriv);
	assert_true(s[2].chroot);
	assert_false(s[3].private_);
	assert_int_equal(s[3].port, 25);
	assert_null(s[3].host);
	assert_string_equal(s[4].host, "127.0.0.2");
	assert_int_equal(s[4].port, 25);
	assert_string_equal(s[4].override_names[0], "syslog_name");
	assert_int_equal(s[5].port, 587);

	/* a service's configuration: main.cf plus its -o, in order */
	struct cfg *c = parse("myhostname = m.example.com\nsmtpd_timeout = 60\n", &err);
	assert_non_null(c);
	struct cfg *sc = cfg_for_service(c, &s[0], &err);
	assert_non_null(sc);
	assert_int_equal(sc->smtpd_timeout, 10);
	assert_string_equal(sc->smtpd_banner, "hello there");
	assert_int_equal(c->smtpd_timeout, 60);
	cfg_free(&sc);
	sc = cfg_for_service(c, &s[5], &err);
	assert_string_equal(sc->smtpd_banner, "m.example.com");
	cfg_free(&sc);
	cfg_free(&c);
	cfg_master_free(&s, n);
	assert_null(s);
}

static void test_master_errors(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "127.0.0.1:2525 inet n - n - - smtpd -o bogus=1\n", "master.cf:1: -o bogus: unknown parameter" },
		{ "127.0.0.1:2525 inet n - n - - smtpd -o smtpd_timeout=x\n",
		  "master.cf:1: -o smtpd_timeout: bad time value for smtpd_timeout: \"x\" (a number with an optional unit s, m, h, d or w)" },
		{ "127.0.0.1:2525 inet n - n - - smtpd -o\n", "master.cf:1: -o without name=value" },
		{ "127.0.0.1:2525 inet n - n - - smtpd -o smtpd_timeout\n",
		  "master.cf:1: -o needs name=value, got \"smtpd_timeout\"" },
		{ "127.0.0.1:2525 inet n - n - -\n", "master.cf:1: expected 8 or more fields, got 7" },
		{ "127.0.0.1:2525 tcp n - n - - smtpd\n", "master.cf:1: bad service type \"tcp\"" },
		{ "127.0.0.1:2525 inet n - n x - smtpd\n", "master.cf:1: bad wakeup time \"x\"" },
		{ "127.0.0.1:2525 inet n - n - many smtpd\n", "master.cf:1: bad process limit \"many\"" },
		{ "127.0.0.1:99999 inet n - n - - smtpd\n",
		  "master.cf:1: bad service \"127.0.0.1:99999\": unknown port or service name" },
		{ "127.0.0.1:0 inet n - n - - smtpd\n",
		  "master.cf:1: bad service \"127.0.0.1:0\": unknown port or service name" },
		{ "nosuchservicename inet n - n - - smtpd\n",
		  "master.cf:1: bad service \"nosuchservicename\": unknown port or service name" },
		{ "::1:25 inet n - n - - smtpd\n",
		  "master.cf:1: bad service \"::1:25\": IPv6 addresses need brackets: [address]:port" },
		{ "[::1]25 inet n - n - - smtpd\n", "master.cf:1: bad service \"[::1]25\": expected [address]:port" },
		{ "[]:25 inet n - n - - smtpd\n", "master.cf:1: bad service \"[]:25\": empty address" },
		{ "2525 inet n - n - - smtpd\n\n2525 inet n - n - - smtpd\n",
		  "master.cf:3: duplicate service 2525 (line 1)" },
		{ "2525 inet n - n - - smtpd -o { smtpd_banner = x\n", "master.cf:1: unbalanced \"{\"" },
		{ "2525 inet n - n - - smtpd -o {smtpd_banner=x}y\n", "master.cf:1: text after \"}\"" },
		{ " 2525 inet n - n - - smtpd\n", "master.cf:1: line starts with whitespace but continues nothing" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct cfg_service *s = NULL;
		size_t n = 0;
		const char *err;
		int rc = cfg_master_parse_text("master.cf", cases[i].text, strlen(cases[i].text), &s, &n, &err);
		if (rc == 0)
			fail_msg("case %zu accepted", i);
		if (strcmp(err, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\"\n want \"%s\"", i, err, cases[i].want);
		assert_null(s);
	}
	/* a NUL byte */
	static const char nul[] = "2525 inet n - n - - smtpd\0\n";
	struct cfg_service *s = NULL;
	size_t n;
	const char *err;
	assert_int_equal(cfg_master_parse_text("master.cf", nul, sizeof(nul) - 1, &s, &n, &err), -1);
	assert_string_equal(err, "master.cf:1: NUL byte in line");
}

static void test_master_default(void **state)
{
	char *dir = mktmp();
	struct cfg_service *s;
	size_t n;
	const char *err;
	assert_int_equal(cfg_master_load(dir, &s, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(s[0].endpoint, "smtp");
	assert_int_equal(s[0].port, 25);
	assert_null(s[0].host);
	assert_int_equal(s[0].n_overrides, 0);
	assert_null(s[0].args[0]);
	cfg_master_free(&s, n);
	unit_write_file(dir, "master.cf", "127.0.0.1:2525 inet n - n - - smtpd\n");
	assert_int_equal(cfg_master_load(dir, &s, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(s[0].port, 2525);
	cfg_master_free(&s, n);
	unit_write_file(dir, "master.cf", "127.0.0.1:2525 inet n - n - - smtpd -o x=1\n");
	assert_int_equal(cfg_master_load(dir, &s, &n, &err), -1);
	char *want = xasprintf("%s/master.cf:1: -o x: unknown parameter", dir);
	assert_string_equal(err, want);
	free(want);
	rmtree(dir);
}

/* docs/configuration.md names every parameter of the table. */
static void test_docs_in_sync(void **state)
{
	const char *self = __FILE__;
	const char *tail = strstr(self, "tests/unit/lib/cfg_test.c");
	if (tail == NULL || self[0] != '/')
		fail_msg("cannot find docs/configuration.md from %s", self);
	char *path = xasprintf("%.*sdocs/configuration.md", (int)(tail - self), self);
	char *doc = read_all(path);
	assert_true(strlen(doc) > 0);
	for (size_t i = 0; i < cfg_nparams; i++) {
		const struct cfg_param *p = &cfg_params[i];
		char *needle = xasprintf("`%s`", cfg_param_name(p));
		if (strstr(doc, needle) == NULL)
			fail_msg("%s does not document %s", path, needle);
		free(needle);
		/* its row in the parameter tables shows the default of the table */
		char *row = xasprintf("\n| `%s` |", cfg_param_name(p));
		const char *params = strstr(doc, "\n## Parameters\n");
		assert_non_null(params);
		const char *r = strstr(params, row);
		if (r == NULL)
			fail_msg("%s has no table row for %s", path, cfg_param_name(p));
		const char *eol = strchr(r + 1, '\n');
		char *line = xmemdup(r + 1, eol ? (size_t)(eol - r - 1) : strlen(r + 1));
		struct buf d;
		buf_init(&d, 4096);
		if (p->def[0] == 0) {
			assert_int_equal(buf_puts(&d, "| (empty) |"), 0);
		} else if (strcmp(p->def, POSTERN_VERSION) != 0) {
			assert_int_equal(buf_putc(&d, '`'), 0);
			for (const char *c = p->def; *c; c++)
				assert_int_equal(*c == '|' ? buf_puts(&d, "\\|") : buf_putc(&d, *c), 0);
			assert_int_equal(buf_putc(&d, '`'), 0);
		}
		if (strstr(line, buf_cstr(&d)) == NULL)
			fail_msg("%s: row \"%s\" lacks the default %s", path, line, buf_cstr(&d));
		buf_free(&d);
		free(line);
		free(row);
	}
	free(doc);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_override_dup),
		cmocka_unit_test(test_print),
		cmocka_unit_test(test_check_collects_all),
		cmocka_unit_test(test_master_ok),
		cmocka_unit_test(test_master_errors),
		cmocka_unit_test(test_master_default),
		cmocka_unit_test(test_docs_in_sync),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
