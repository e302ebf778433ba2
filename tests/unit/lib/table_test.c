/*
 * table_test.c - every lookup table type: hits, misses, case folding,
 * compile (postmap/newaliases), and hostile table files.
 */
#include "tests/unit/unit.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/table.h"
#include "lib/common.h"

static char *tmpdir;

static int setup(void **state)
{
	tmpdir = xstrdup("/tmp/table_test.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	int rc = system(cmd);
	free(cmd);
	free(tmpdir);
	return rc;
}

/* Write a file under tmpdir (len bytes, may hold NULs); returns its path. */
static char *put(const char *name, const char *text, size_t len)
{
	char *p = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
	return p;
}

static char *puts_file(const char *name, const char *text)
{
	return put(name, text, strlen(text));
}

struct kase {
	const char *key;
	const char *want; /* NULL: not found */
};

static void check_cases(struct table *t, const struct kase *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *v = (char *)1;
		const char *err = NULL;
		int rc = table_lookup(t, c[i].key, &v, &err);
		if (c[i].want == NULL) {
			if (rc != 0)
				fail_msg("%s: key \"%s\": rc %d value %s err %s", table_spec(t), c[i].key, rc,
					 rc == 1 ? v : "-", err ? err : "-");
			assert_null(v);
		} else {
			if (rc != 1)
				fail_msg("%s: key \"%s\": rc %d err %s", table_spec(t), c[i].key, rc,
					 err ? err : "-");
			if (strcmp(v, c[i].want) != 0)
				fail_msg("%s: key \"%s\": \"%s\", want \"%s\"", table_spec(t), c[i].key, v,
					 c[i].want);
			free(v);
		}
	}
}

static struct table *open_ok(const char *spec)
{
	const char *err = NULL;
	struct table *t = table_open(spec, &err);
	if (t == NULL)
		fail_msg("%s: %s", spec, err);
	return t;
}

static void open_fails(const char *spec, const char *want)
{
	const char *err = NULL;
	struct table *t = table_open(spec, &err);
	if (t != NULL)
		fail_msg("%s: opened", spec);
	if (strstr(err, want) == NULL)
		fail_msg("%s: error \"%s\" lacks \"%s\"", spec, err, want);
}

static void test_inline_static(void **state)
{
	struct table *t = open_ok("inline:{ Alice@Example.COM=bob@example.net, x=1,y=2 { k = v, with comma } }");
	static const struct kase c[] = {
		{ "alice@example.com", "bob@example.net" },
		{ "ALICE@EXAMPLE.COM", "bob@example.net" },
		{ "x", "1" }, { "y", "2" }, { "k", "v, with comma" }, { "z", NULL }, { "", NULL },
	};
	check_cases(t, c, ARRAY_LEN(c));
	table_free(&t);
	assert_null(t);
	table_free(&t);
	t = open_ok("inline:{}");
	check_cases(t, (struct kase[]){ { "a", NULL } }, 1);
	table_free(&t);
	t = open_ok("static:5000");
	check_cases(t, (struct kase[]){ { "anything", "5000" }, { "", "5000" } }, 2);
	table_free(&t);
	t = open_ok("static:{ two words }");
	check_cases(t, (struct kase[]){ { "a", "two words" } }, 1);
	table_free(&t);
	open_fails("inline:a=b", "expected inline:{ key=value, ... }");
	open_fails("inline:{ a=b", "expected inline:{");
	open_fails("inline:{ a=b } }", "expected inline:{");
	open_fails("inline:{ novalue }", "\"novalue\": missing '='");
	open_fails("inline:{ =v }", "empty key");
	open_fails("static:{ x", "expected static:value");
	open_fails("nosuch:x", "unknown table type \"nosuch\"");
	open_fails("/etc/aliases", "missing table type");
	open_fails(":x", "missing table type");
	t = open_ok("proxy:static:1");
	table_free(&t);
}

static void test_texthash(void **state)
{
	char *p = puts_file("virtual",
			    "# comment\n"
			    "Info@Example.com   alice@example.com,\n"
			    "    bob@example.com\n"
			    "   # indented comment keeps the continuation going\n"
			    "\tcarol@example.com\n"
			    "\n"
			    "@example.org catchall@example.com\n"
			    "dup first\n"
			    "dup second\n"
			    "spaces   value with  inner  spaces   \n");
	char *spec = xasprintf("texthash:%s", p);
	struct table *t = open_ok(spec);
	static const struct kase c[] = {
		{ "info@example.com", "alice@example.com, bob@example.com carol@example.com" },
		{ "INFO@EXAMPLE.COM", "alice@example.com, bob@example.com carol@example.com" },
		{ "@example.org", "catchall@example.com" },
		{ "dup", "first" },
		{ "spaces", "value with  inner  spaces" },
		{ "#", NULL }, { "comment", NULL }, { "", NULL },
	};
	check_cases(t, c, ARRAY_LEN(c));
	table_free(&t);
	free(spec);
	free(p);

	struct {
		const char *name, *text;
		size_t len;
		const char *want;
	} bad[] = {
		{ "nokey", "a b\nlonely\n", 0, "nokey:2: expected \"key whitespace value\"" },
		{ "lead", "  a b\n", 0, "lead:1: line starts with whitespace but continues nothing" },
		{ "nul", "a b\nc d\0e\n", 10, "nul:2: NUL byte in line" },
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		p = put(bad[i].name, bad[i].text, bad[i].len ? bad[i].len : strlen(bad[i].text));
		spec = xasprintf("texthash:%s", p);
		open_fails(spec, bad[i].want);
		free(spec);
		free(p);
	}
	/* a logical line over 64 KiB */
	struct buf b;
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_puts(&b, "key "), 0);
	for (int i = 0; i < 70000; i++)
		assert_int_equal(buf_putc(&b, 'v'), 0);
	p = put("long", b.data, b.len);
	buf_free(&b);
	spec = xasprintf("texthash:%s", p);
	open_fails(spec, "long:1: logical line longer than 65536 bytes");
	free(spec);
	free(p);
	spec = xasprintf("texthash:%s/missing", tmpdir);
	open_fails(spec, "missing: No such file or directory");
	free(spec);
	spec = xasprintf("texthash:%s", tmpdir);
	open_fails(spec, "Is a directory");
	free(spec);
}

static void test_lmdb(void **state)
{
	char *p = puts_file("map", "Key1 value one\nkey2 v2\n# c\nkey3\tthree\n");
	const char *err;
	char *spec = xasprintf("lmdb:%s", p);
	/* not built yet: lookups fail (temporarily) until it is, then work */
	struct table *t = open_ok(spec);
	char *v = NULL;
	assert_int_equal(table_lookup(t, "key1", &v, &err), -1);
	assert_non_null(strstr(err, ".lmdb: No such file or directory"));
	assert_int_equal(table_compile(spec, &err), 0);
	check_cases(t, (struct kase[]){ { "key1", "value one" }, { "KEY2", "v2" }, { "key3", "three" },
					{ "key4", NULL }, { "", NULL } },
		    5);
	/* the file is replaced under an open table: the next lookup sees it */
	free(puts_file("map", "key1 changed\nkey9 new\n"));
	assert_int_equal(table_compile(p, &err), 0); /* bare path means lmdb */
	check_cases(t, (struct kase[]){ { "key1", "changed" }, { "key9", "new" }, { "key2", NULL } }, 3);
	/* the file vanishes: an error, not "not found" */
	char *db = xasprintf("%s.lmdb", p);
	assert_int_equal(unlink(db), 0);
	assert_int_equal(table_lookup(t, "key1", &v, &err), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_null(v);
	table_free(&t);
	/* a file that is not an LMDB database fails the open */
	free(puts_file("map.lmdb", "this is not lmdb\n"));
	open_fails(spec, "map.lmdb: ");
	assert_int_equal(unlink(db), 0);
	free(spec);

	/* hash: and btree: are lmdb: */
	spec = xasprintf("hash:%s", p);
	assert_int_equal(table_compile(spec, &err), 0);
	t = open_ok(spec);
	check_cases(t, (struct kase[]){ { "key9", "new" } }, 1);
	table_free(&t);
	free(spec);
	spec = xasprintf("btree:%s", p);
	t = open_ok(spec);
	check_cases(t, (struct kase[]){ { "key1", "changed" } }, 1);
	table_free(&t);
	free(spec);

	/* no temp files are left behind */
	char *cmd = xasprintf("test $(ls '%s' | grep -c tmp) -eq 0", tmpdir);
	assert_int_equal(system(cmd), 0);
	free(cmd);

	/* texthash: compile only checks */
	assert_int_equal(unlink(db), 0);
	spec = xasprintf("texthash:%s", p);
	assert_int_equal(table_compile(spec, &err), 0);
	assert_int_not_equal(access(db, F_OK), 0);
	free(spec);

	/* compile errors */
	char *bad = puts_file("bad", "ok 1\nbroken\n");
	assert_int_equal(table_compile(bad, &err), -1);
	assert_non_null(strstr(err, "bad:2: expected \"key whitespace value\""));
	spec = xasprintf("regexp:%s", bad);
	assert_int_equal(table_compile(spec, &err), -1);
	assert_non_null(strstr(err, "cannot compile table type \"regexp\""));
	free(spec);
	struct buf b;
	buf_init(&b, 10000);
	for (int i = 0; i < 600; i++)
		assert_int_equal(buf_putc(&b, 'k'), 0);
	assert_int_equal(buf_puts(&b, " v\n"), 0);
	char *longkey = put("longkey", b.data, b.len);
	buf_free(&b);
	assert_int_equal(table_compile(longkey, &err), -1);
	assert_non_null(strstr(err, "longkey:1: key of 600 bytes (1..511 allowed)"));
	free(longkey);
	free(bad);
	free(db);
	free(p);
}

static void test_lmdb_many(void **state)
{
	/* more than the first map size guess; keys in random order */
	struct buf b;
	buf_init(&b, 64 << 20);
	for (int i = 0; i < 50000; i++)
		assert_int_equal(buf_printf(&b, "user%d@example.com %0200d\n", (i * 7919) % 50000, i), 0);
	char *p = put("big", b.data, b.len);
	buf_free(&b);
	const char *err;
	assert_int_equal(table_compile(p, &err), 0);
	char *spec = xasprintf("lmdb:%s", p);
	struct table *t = open_ok(spec);
	char *v;
	assert_int_equal(table_lookup(t, "user7919@example.com", &v, &err), 1);
	assert_int_equal(strlen(v), 200);
	assert_string_equal(v + 190, "0000000001");
	free(v);
	table_free(&t);
	free(spec);
	free(p);
}

static void test_aliases(void **state)
{
	char *p = puts_file("aliases",
			    "# /etc/aliases\n"
			    "Postmaster: root\n"
			    "root:\talice, bob,\n"
			    "\tcarol\n"
			    "list: :include:/etc/postern/list.txt\n"
			    "pipe: \"|/usr/bin/handler -x\"\n"
			    "\"quoted name\": someone\n"
			    "nospace:x\n");
	const char *err;
	char *spec = xasprintf("lmdb:%s", p);
	assert_int_equal(table_compile_aliases(spec, &err), 0);
	struct table *t = open_ok(spec);
	static const struct kase c[] = {
		{ "postmaster", "root" },
		{ "root", "alice, bob, carol" },
		{ "list", ":include:/etc/postern/list.txt" },
		{ "pipe", "\"|/usr/bin/handler -x\"" },
		{ "quoted name", "someone" },
		{ "nospace", "x" },
		{ "alice", NULL },
	};
	check_cases(t, c, ARRAY_LEN(c));
	table_free(&t);
	free(spec);
	free(p);
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "novalue:\n", "al:1: empty alias value" },
		{ "no colon here\n", "al:1: expected \"name: value\"" },
		{ ": x\n", "al:1: expected \"name: value\"" },
		{ "\"open: x\n", "al:1: unterminated quoted name" },
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		p = puts_file("al", bad[i].text);
		assert_int_equal(table_compile_aliases(p, &err), -1);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("case %zu: %s", i, err);
		free(p);
	}
}

static void test_regexp(void **state)
{
	char *p = puts_file("re",
			    "# regexp table\n"
			    "/^[0-9]{1,3}(\\.[0-9]{1,3}){3}$/   dotted-quad\n"
			    "/^[[:digit:]]+[]x]$/   bracket\n"
			    "/^(.*)\\+(.*)@example\\.com$/   $1@example.com ext=$2 ${2}$$\n"
			    "/^CaseSensitive$/i   exact-case\n"
			    "!/@/   no-at-sign\n"
			    "if /@example\\.org$/\n"
			    "/^admin@/   org-admin\n"
			    "if !/^x/\n"
			    "/^(b)(o)(b)@/   $3$2$1\n"
			    "endif\n"
			    "endif\n"
			    "|a/b|   has-slash\n"
			    "/^x\\/y/   escaped-slash\n"
			    "/^(a)|(z)$/   [$2]\n"
			    "/^last$/   continued\n"
			    "  result\n");
	char *spec = xasprintf("regexp:%s", p);
	struct table *t = open_ok(spec);
	static const struct kase c[] = {
		{ "user+tag@example.com", "user@example.com ext=tag tag$" },
		{ "USER+TAG@EXAMPLE.COM", "USER@example.com ext=TAG TAG$" },
		{ "CaseSensitive", "exact-case" },
		{ "casesensitive", "no-at-sign" },
		{ "admin@example.org", "org-admin" },
		{ "bob@example.org", "bob" },
		{ "bob@example.net", NULL },
		{ "xbob@example.org", NULL },
		{ "a/b@q", "has-slash" },
		{ "x/y@q", "escaped-slash" },
		{ "a@q", "[]" },
		{ "last", "no-at-sign" },
		{ "192.0.2.1", "dotted-quad" },
		{ "12]", "bracket" },
	};
	check_cases(t, c, ARRAY_LEN(c));
	table_free(&t);
	free(spec);
	free(p);
}

static void test_pcre(void **state)
{
	char *p = puts_file("pcre",
			    "/^(?!postmaster)(\\w+)@local\\.test$/   user=$1\n"
			    "/^Exact$/i   exact\n"
			    "/^multi$/m   multi\n"
			    "if /\\.org$/\n"
			    "/^(\\w+)\\d@/   digit-$1\n"
			    "endif\n"
			    "/^(a+)+$/   nested\n");
	char *spec = xasprintf("pcre:%s", p);
	struct table *t = open_ok(spec);
	static const struct kase c[] = {
		{ "alice@local.test", "user=alice" },
		{ "ALICE@LOCAL.TEST", "user=ALICE" },
		{ "postmaster@local.test", NULL },
		{ "Exact", "exact" },
		{ "exact", NULL },
		{ "x\nmulti", "multi" },
		{ "bob7@x.org", "digit-bob" },
		{ "bob7@x.com", NULL },
		{ "aaaa", "nested" },
	};
	check_cases(t, c, ARRAY_LEN(c));
	/* catastrophic backtracking hits the match limit: an error, quickly */
	char *v = NULL;
	const char *err;
	time_t t0 = time(NULL);
	int rc = table_lookup(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", &v, &err);
	assert_true(rc == -1 || rc == 0);
	assert_true(time(NULL) - t0 < 10);
	free(v);
	table_free(&t);
	free(spec);
	free(p);
}

static void test_pattern_errors(void **state)
{
	static const struct {
		const char *type, *text, *want;
	} bad[] = {
		{ "regexp", "/abc   result\n", "pat:1: unterminated pattern (missing closing delimiter)" },
		{ "regexp", "/abc/\n", "pat:1: missing result after pattern" },
		{ "regexp", "/(abc/ x\n", "pat:1: bad regular expression" },
		{ "regexp", "/abc/q x\n", "pat:1: unknown pattern flag 'q'" },
		{ "regexp", "abc x\n", "pat:1: expected a pattern such as /regexp/" },
		{ "regexp", "endif\n", "pat:1: endif without if" },
		{ "regexp", "/a/ b\nif /x/\n/y/ z\n", "pat:2: if without endif" },
		{ "regexp", "if /x/ y\nendif\n", "pat:1: text after if pattern" },
		{ "regexp", "if /x/\nendif x\n", "pat:2: text after endif" },
		{ "regexp", "!/(x)/ $1\n", "pat:1: $number in the result of a negated pattern" },
		{ "regexp", "/a++/ x\n", "pat:1: bad regular expression: repetition operator after a repetition operator" },
		{ "regexp", "/(.\\f)+++++$/ x\n", "pat:1: bad regular expression: repetition operator after a repetition operator" },
		{ "regexp", "/((a{99}){99}){99}/ x\n", "pat:1: bad regular expression: pattern too large after repetition" },
		{ "regexp", "/a{1,30000}/ x\n", "pat:1: bad regular expression: pattern too large after repetition" },
		{ "pcre", "/(?<bad/ x\n", "pat:1: bad PCRE at offset" },
		{ "pcre", "/a/Z x\n", "pat:1: unknown pattern flag 'Z'" },
		{ "cidr", "10.0.0.0/8\n", "pat:1: missing result after network" },
		{ "cidr", "10.1.0.0/8 x\n", "pat:1: non-null host address bits" },
		{ "cidr", "10.0.0.0/33 x\n", "pat:1: prefix length too large" },
		{ "cidr", "[::]/129 x\n", "pat:1: prefix length too large" },
		{ "cidr", "10.0.0.0/ x\n", "pat:1: bad prefix length" },
		{ "cidr", "10.0.0.0/a x\n", "pat:1: bad prefix length" },
		{ "cidr", "300.0.0.0/8 x\n", "pat:1: bad IP address" },
		{ "cidr", "example.com x\n", "pat:1: bad IP address" },
		{ "cidr", "endif\n", "pat:1: endif without if" },
		{ "cidr", "if 10.0.0.0/8\n", "pat:1: if without endif" },
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char *p = puts_file("pat", bad[i].text);
		char *spec = xasprintf("%s:%s", bad[i].type, p);
		open_fails(spec, bad[i].want);
		free(spec);
		free(p);
	}
	char *p = put("patnul", "/a/ b\0c\n", 8);
	char *spec = xasprintf("regexp:%s", p);
	open_fails(spec, "patnul:1: NUL byte in line");
	free(spec);
	free(p);
	open_fails("regexp:", "missing file name");
	open_fails("pcre:/nonexistent/file", "/nonexistent/file: No such file or directory");
	open_fails("cidr:/nonexistent/file", "/nonexistent/file: No such file or directory");
}

static void test_cidr(void **state)
{
	char *p = puts_file("cidr",
			    "# first match wins\n"
			    "192.168.1.0/24   lan\n"
			    "192.168.0.0/16   site\n"
			    "10.0.0.1         host\n"
			    "!10.0.0.0/8      not-ten\n"
			    "[2001:db8::]/32  v6-doc\n"
			    "2001:db9::/126   v6-small\n"
			    "if 10.20.0.0/16\n"
			    "10.20.30.0/24    nested\n"
			    "endif\n"
			    "0.0.0.0/0        any-v4\n");
	char *spec = xasprintf("cidr:%s", p);
	struct table *t = open_ok(spec);
	static const struct kase c[] = {
		{ "192.168.1.0", "lan" },
		{ "192.168.1.255", "lan" },
		{ "192.168.2.0", "site" },
		{ "192.167.255.255", "not-ten" },
		{ "192.169.0.0", "not-ten" },
		{ "10.0.0.1", "host" },
		{ "10.0.0.2", "any-v4" },
		{ "10.20.30.40", "nested" },
		{ "10.20.31.1", "any-v4" },
		{ "2001:db8::1", "v6-doc" },
		{ "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "v6-doc" },
		{ "2001:db7:ffff::", NULL },
		{ "2001:db9::3", "v6-small" },
		{ "2001:db9::4", NULL },
		{ "[2001:db8::5]", "v6-doc" },
		{ "::ffff:192.168.1.7", "lan" },
		{ "not an address", NULL },
		{ "", NULL },
		{ "192.168.1.1/24", NULL },
	};
	check_cases(t, c, ARRAY_LEN(c));
	table_free(&t);
	free(spec);
	free(p);
}

static void test_unix(void **state)
{
	struct table *t = open_ok("unix:passwd.byname");
	char *v;
	const char *err;
	assert_int_equal(table_lookup(t, "root", &v, &err), 1);
	assert_true(strncmp(v, "root:", 5) == 0);
	assert_non_null(strstr(v, ":0:0:"));
	free(v);
	assert_int_equal(table_lookup(t, "ROOT", &v, &err), 1); /* keys fold */
	free(v);
	assert_int_equal(table_lookup(t, "no-such-user-here-x", &v, &err), 0);
	table_free(&t);
	open_fails("unix:group.byname", "only unix:passwd.byname");
}

static void test_list(void **state)
{
	const char *err;
	struct table_list *l = table_list_open("inline:{ a=1 }, inline:{ a=2, b=2 }\n static:{ fall back }", &err);
	assert_non_null(l);
	assert_int_equal(table_list_count(l), 3);
	char *v;
	assert_int_equal(table_list_lookup(l, "a", &v, &err), 1);
	assert_string_equal(v, "1");
	free(v);
	assert_int_equal(table_list_lookup(l, "B", &v, &err), 1);
	assert_string_equal(v, "2");
	free(v);
	assert_int_equal(table_list_lookup(l, "zz", &v, &err), 1);
	assert_string_equal(v, "fall back");
	free(v);
	table_list_free(&l);
	assert_null(l);
	l = table_list_open("", &err);
	assert_int_equal(table_list_count(l), 0);
	assert_int_equal(table_list_lookup(l, "a", &v, &err), 0);
	table_list_free(&l);
	assert_null(table_list_open("inline:{ a=1 }, bogus:x", &err));
	assert_non_null(strstr(err, "unknown table type \"bogus\""));
	assert_null(table_list_open("inline:{ a=1 ", &err));
	assert_non_null(strstr(err, "unbalanced"));
	/* an error in an earlier table stops the search */
	char *p = puts_file("gone", "a x\n");
	assert_int_equal(table_compile(p, &err), 0);
	char *list = xasprintf("lmdb:%s static:fallback", p);
	l = table_list_open(list, &err);
	assert_non_null(l);
	char *db = xasprintf("%s.lmdb", p);
	assert_int_equal(unlink(db), 0);
	assert_int_equal(table_list_lookup(l, "a", &v, &err), -1);
	table_list_free(&l);
	free(db);
	free(list);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inline_static),
		cmocka_unit_test(test_texthash),
		cmocka_unit_test(test_lmdb),
		cmocka_unit_test(test_lmdb_many),
		cmocka_unit_test(test_aliases),
		cmocka_unit_test(test_regexp),
		cmocka_unit_test(test_pcre),
		cmocka_unit_test(test_pattern_errors),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_unix),
		cmocka_unit_test(test_list),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
