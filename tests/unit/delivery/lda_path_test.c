/*
 * lda_path_test.c - user, folder and home_mailbox names that could escape
 * the mailbox are refused; error mapping of lda_status.
 */
#include "tests/unit/unit.h"

#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "delivery/lda_path.h"
#include "delivery/lda_status.h"
#include "lib/common.h"

static void test_names(void **state)
{
	static const struct {
		const char *in;
		bool name, folder;
	} cases[] = {
		{ "alice", true, true },
		{ "a.b", true, true },
		{ "Archive.2024", true, true },
		{ "", false, false },
		{ ".", false, false },
		{ "..", false, false },
		{ "a/b", false, false },
		{ "../etc", false, false },
		{ "a..b", false, false },
		{ ".hidden", true, false },
		{ "trail.", true, false },
		{ "tab\there", false, false },
		{ "nl\n", false, false },
		{ "del\x7f", false, false },
		{ "utf8-\xc3\xa9", true, true },
		{ "/abs", false, false },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		if (lda_path_name_ok(cases[i].in) != cases[i].name)
			fail_msg("name \"%s\"", cases[i].in);
		if (lda_path_folder_ok(cases[i].in) != cases[i].folder)
			fail_msg("folder \"%s\"", cases[i].in);
	}
	char longname[LDA_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(lda_path_name_ok(longname));
	longname[LDA_NAME_MAX] = '\0';
	assert_true(lda_path_name_ok(longname));
	assert_true(lda_path_folder_is_inbox(NULL));
	assert_true(lda_path_folder_is_inbox(""));
	assert_true(lda_path_folder_is_inbox("inbox"));
	assert_false(lda_path_folder_is_inbox("INBOX.x"));
}

static void test_mutf7(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL: refused */
	} cases[] = {
		{ "Archive", "Archive" },
		{ "Caf\xc3\xa9", "Caf&AOk-" },
		{ "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "&ZeVnLIqe-" },
		{ "A&B", "A&-B" },
		{ "\xf0\x9f\x98\x80", "&2D3eAA-" },             /* U+1F600, a surrogate pair */
		{ "a\xc3\xa9" "b\xc3\xa9", "a&AOk-b&AOk-" },
		{ "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		  "~peter/mail/&U,BTFw-/&ZeVnLIqe-" },                /* RFC 3501's example */
		{ "\xc3", NULL },                                   /* truncated */
		{ "\xc0\xaf", NULL },                               /* overlong '/' */
		{ "\xe0\x80\xaf", NULL },                           /* overlong '/' */
		{ "\xed\xa0\x80", NULL },                           /* UTF-16 surrogate */
		{ "\xf4\x90\x80\x80", NULL },                       /* > U+10FFFF */
		{ "\xff", NULL },
		{ "", "" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *r = lda_path_folder_mutf7(cases[i].in);
		if (cases[i].out == NULL) {
			if (r != NULL)
				fail_msg("case %zu accepted as %s", i, r);
			continue;
		}
		if (r == NULL || strcmp(r, cases[i].out) != 0)
			fail_msg("case %zu: %s, want %s", i, r ? r : "(null)", cases[i].out);
		free(r);
	}
}

static void test_relative(void **state)
{
	static const struct {
		const char *in;
		bool ok;
	} cases[] = {
		{ "Maildir/", true },    { "Mailbox", true },       { "mail/inbox", true },
		{ ".maildir/", true },   { "/var/mail/x", false },  { "../x", false },
		{ "a/../b", false },     { "a/./b", false },        { "a//b", false },
		{ "", false },           { "..", false },           { "a/..", false },
		{ "a\nb", false },       { "x/", true },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		if (lda_path_relative_ok(cases[i].in) != cases[i].ok)
			fail_msg("\"%s\"", cases[i].in);
	static const struct {
		const char *in;
		bool ok;
	} targets[] = {
		{ "/srv/mail/bob/Maildir", true }, { "Maildir", true },      { "/a/./b", true },
		{ "/srv/mail/../etc", false },     { "../x", false },        { "/a/..", false },
		{ "..", false },                   { "/a/..b/c", true },     { "/a/b\n", false },
		{ "", false },                     { "/a//b/", true },
	};
	for (size_t i = 0; i < ARRAY_LEN(targets); i++)
		if (lda_path_target_ok(targets[i].in) != targets[i].ok)
			fail_msg("target \"%s\"", targets[i].in);
	char *j = lda_path_join("/a/", "b");
	assert_string_equal(j, "/a/b");
	free(j);
	j = lda_path_join("/a", "b");
	assert_string_equal(j, "/a/b");
	free(j);
}

static void test_check_stat(void **state)
{
	struct lda_status st = { 0 };
	struct stat sb = { 0 };
	sb.st_mode = S_IFREG | 0600;
	sb.st_uid = 1000;
	sb.st_nlink = 1;
	assert_int_equal(lda_path_check_stat(&sb, S_IFREG, 1000, "m", &st), 0);
	sb.st_nlink = 2;
	assert_int_equal(lda_path_check_stat(&sb, S_IFREG, 1000, "m", &st), -1);
	assert_int_equal(st.ex, EX_NOPERM);
	sb.st_nlink = 1;
	assert_int_equal(lda_path_check_stat(&sb, S_IFREG, 1001, "m", &st), -1);
	sb.st_mode = S_IFLNK | 0777;
	assert_int_equal(lda_path_check_stat(&sb, S_IFREG, 1000, "m", &st), -1);
	assert_string_equal(st.dsn, "5.7.1");
	sb.st_mode = S_IFDIR | 0700;
	sb.st_nlink = 5; /* directories may have many links */
	assert_int_equal(lda_path_check_stat(&sb, S_IFDIR, 1000, "d", &st), 0);
	assert_int_equal(lda_path_check_stat(&sb, S_IFREG, 1000, "d", &st), -1);
}

static void test_status(void **state)
{
	static const struct {
		int err;
		bool tempfail;
		int ex;
		const char *dsn;
	} cases[] = {
		{ ENOSPC, true, EX_TEMPFAIL, "4.3.1" }, { EDQUOT, true, EX_TEMPFAIL, "4.2.2" },
		{ EDQUOT, false, EX_NOPERM, "5.2.2" },  { EIO, true, EX_TEMPFAIL, "4.3.0" },
		{ EACCES, true, EX_NOPERM, "5.2.0" },   { ELOOP, true, EX_NOPERM, "5.2.0" },
		{ ENOTDIR, true, EX_CANTCREAT, "5.2.0" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct lda_status st = { 0 };
		assert_int_equal(lda_status_fail_errno(&st, cases[i].err, cases[i].tempfail, "x"), -1);
		assert_int_equal(st.ex, cases[i].ex);
		assert_string_equal(st.dsn, cases[i].dsn);
	}
	struct lda_status st = { 0 };
	lda_status_fail(&st, 75, "4.0.0", "bad\nline\x01 here");
	assert_string_equal(st.text, "bad?line? here");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_mutf7),
		cmocka_unit_test(test_relative),
		cmocka_unit_test(test_check_stat),
		cmocka_unit_test(test_status),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
