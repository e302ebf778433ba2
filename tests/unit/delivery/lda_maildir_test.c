/*
 * lda_maildir_test.c - Maildir unique names, sizes and the delivery steps.
 */
#include "tests/unit/unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery/lda_maildir.h"
#include "lib/common.h"

static void test_escape_host(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "mx1.example.org", "mx1.example.org" },
		{ "a/b:c", "a\\057b\\072c" },
		{ "x,S=1", "x\\054S=1" },
		{ "sp ace\\", "sp\\040ace\\134" },
		{ "nl\n", "nl\\012" },
		{ "", "" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char out[64];
		lda_maildir_escape_host(cases[i].in, out, sizeof(out));
		assert_string_equal(out, cases[i].out);
		assert_null(strchr(out, '/'));
		assert_null(strchr(out, ':'));
	}
	/* truncation never splits an escape */
	char small[6];
	lda_maildir_escape_host("ab/cd", small, sizeof(small));
	assert_string_equal(small, "ab");
}

static void test_vsize(void **state)
{
	static const struct {
		const char *in;
		size_t v;
	} cases[] = {
		{ "", 0 },          { "a", 1 },           { "a\n", 3 },         { "a\r\n", 3 },
		{ "\n\n", 4 },      { "a\rb\n", 5 },      { "x\r\r\n", 4 },     { "\n", 2 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		assert_int_equal(lda_maildir_vsize(cases[i].in, strlen(cases[i].in)), cases[i].v);
	/* the reference example: 10 lines, 236 octets with LF -> 246 */
	char msg[236];
	memset(msg, 'x', sizeof(msg));
	for (int i = 0; i < 10; i++)
		msg[23 * i + 22] = '\n';
	assert_int_equal(lda_maildir_vsize(msg, sizeof(msg)), 246);
}

static void test_name(void **state)
{
	char out[LDA_MAILDIR_NAME_MAX];
	struct timeval tv = { 1795393077, 587 };
	assert_int_equal(lda_maildir_name(out, sizeof(out), &tv, 24824, 1, "vm", 236, 246), 0);
	assert_string_equal(out, "1795393077.M587P24824Q1.vm,S=236,W=246");
	uint64_t s;
	assert_true(lda_maildir_name_size(out, &s));
	assert_int_equal(s, 236);
	char tiny[10];
	assert_int_equal(lda_maildir_name(tiny, sizeof(tiny), &tv, 1, 1, "h", 1, 1), -1);
}

static void test_name_size(void **state)
{
	static const struct {
		const char *name;
		bool ok;
		uint64_t size;
	} cases[] = {
		{ "1.M1P1.h,S=12,W=13:2,S", true, 12 },
		{ "1.M1P1.h,S=12:2,", true, 12 },
		{ "1.M1P1.h,W=13,S=7", true, 7 },
		{ "1.M1P1.h", false, 0 },
		{ "1.M1P1.h,S=", false, 0 },
		{ "1.M1P1.h,S=1x", false, 0 },
		{ "1.M1P1.h:2,S=5", false, 0 },
		{ "1.M1P1.h,S=99999999999999999999999", false, 0 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		uint64_t s = 0;
		assert_int_equal(lda_maildir_name_size(cases[i].name, &s), cases[i].ok);
		if (cases[i].ok)
			assert_int_equal(s, cases[i].size);
	}
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_deliver(void **state)
{
	char tmpl[] = "/tmp/lda_maildir_test.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *root = xasprintf("%s/Maildir", tmpl);
	struct lda_status st = { 0 };
	int rootfd, boxfd;
	assert_int_equal(lda_maildir_open(root, "Work.2024", getuid(), &rootfd, &boxfd, &st), 0);
	const char text[] = "Subject: x\n\nhello\n";
	char *name = NULL;
	char *box = xasprintf("%s/.Work.2024", root);
	bool dup = true;
	assert_int_equal(lda_maildir_deliver(boxfd, box, (struct str){ text, sizeof(text) - 1 }, true,
					     NULL, &name, &dup, &st), 0);
	assert_false(dup);
	char *want = xasprintf(",S=%zu,W=%zu", sizeof(text) - 1, sizeof(text) - 1 + 3);
	assert_non_null(strstr(name, want));
	char *path = xasprintf("%s/new/%s", box, name);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, sizeof(text) - 1);
	assert_int_equal(sb.st_mode & 0777, 0600);
	char *tmpdir = xasprintf("%s/tmp", box);
	assert_int_equal(count_files(tmpdir), 0);
	char *marker = xasprintf("%s/maildirfolder", box);
	assert_int_equal(stat(marker, &sb), 0);
	assert_int_equal(stat(root, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	close(rootfd);
	close(boxfd);
	char *cmd = xasprintf("rm -rf %s", tmpl);
	assert_int_equal(system(cmd), 0);
	free(cmd), free(marker), free(tmpdir), free(path), free(want), free(box), free(name),
		free(root);
}

/* Two attempts of one delivery (same --delivery-id) leave one message. */
static void test_delivery_id_dedupes(void **state)
{
	char tmpl[] = "/tmp/lda_maildir_test.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *root = xasprintf("%s/Maildir", tmpl);
	struct lda_status st = { 0 };
	int rootfd, boxfd;
	assert_int_equal(lda_maildir_open(root, NULL, getuid(), &rootfd, &boxfd, &st), 0);
	const char text[] = "Subject: once\n\nbody\n";
	char *name1 = NULL, *name2 = NULL, *name3 = NULL;
	bool dup = true;
	struct str msg = { text, sizeof(text) - 1 };
	assert_int_equal(lda_maildir_deliver(boxfd, root, msg, true, "1795393077.0660F60B9E6FDF_0",
					     &name1, &dup, &st), 0);
	assert_false(dup);
	assert_true(strncmp(name1, "1795393077.D0660F60B9E6FDF_0.", 29) == 0);
	assert_int_equal(lda_maildir_deliver(boxfd, root, msg, true, "1795393077.0660F60B9E6FDF_0",
					     &name2, &dup, &st), 0);
	assert_true(dup);
	assert_string_equal(name1, name2);
	/* another recipient index is another delivery */
	assert_int_equal(lda_maildir_deliver(boxfd, root, msg, true, "1795393077.0660F60B9E6FDF_1",
					     &name3, &dup, &st), 0);
	assert_false(dup);
	char *newdir = xasprintf("%s/new", root), *tmpdir = xasprintf("%s/tmp", root);
	assert_int_equal(count_files(newdir), 2);
	assert_int_equal(count_files(tmpdir), 0);
	static const char *bad[] = { "", "1.", ".x", "x.y", "1.a/b", "1.a:b", "1234567890123.a",
				     "1.a.b", "1.a-b" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		assert_false(lda_maildir_delivery_id_valid(bad[i]));
	assert_true(lda_maildir_delivery_id_valid("0.A_z9"));
	close(rootfd);
	close(boxfd);
	char *cmd = xasprintf("rm -rf %s", tmpl);
	assert_int_equal(system(cmd), 0);
	free(cmd), free(newdir), free(tmpdir), free(root), free(name1), free(name2), free(name3);
}

static void test_refuses_symlinked_subdir(void **state)
{
	char tmpl[] = "/tmp/lda_maildir_test.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *root = xasprintf("%s/Maildir", tmpl);
	char *outside = xasprintf("%s/outside", tmpl);
	char *tmp = xasprintf("%s/tmp", root);
	assert_int_equal(mkdir(root, 0700), 0);
	assert_int_equal(mkdir(outside, 0700), 0);
	assert_int_equal(symlink(outside, tmp), 0);
	struct lda_status st = { 0 };
	int rootfd, boxfd;
	assert_int_equal(lda_maildir_open(root, NULL, getuid(), &rootfd, &boxfd, &st), -1);
	assert_int_equal(st.ex, 77);
	assert_string_equal(st.dsn, "5.7.1");
	assert_int_equal(count_files(outside), 0);
	/* the maildir itself as a symlink */
	char *link2 = xasprintf("%s/M2", tmpl);
	assert_int_equal(symlink(outside, link2), 0);
	assert_int_equal(lda_maildir_open(link2, NULL, getuid(), &rootfd, &boxfd, &st), -1);
	assert_int_equal(st.ex, 77);
	assert_int_equal(count_files(outside), 0);
	char *cmd = xasprintf("rm -rf %s", tmpl);
	assert_int_equal(system(cmd), 0);
	free(cmd), free(link2), free(tmp), free(outside), free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_host),
		cmocka_unit_test(test_vsize),
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_name_size),
		cmocka_unit_test(test_deliver),
		cmocka_unit_test(test_delivery_id_dedupes),
		cmocka_unit_test(test_refuses_symlinked_subdir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
