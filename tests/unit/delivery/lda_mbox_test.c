/*
 * lda_mbox_test.c - From_ lines, mboxrd quoting, dotlock records, and the
 * append that is whole or absent.
 */
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "delivery/lda_mbox.h"
#include "lib/common.h"

static void test_quote(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", "\n\n" },
		{ "a\n", "a\n\n" },
		{ "a", "a\n\n" },
		{ "From me\n", ">From me\n\n" },
		{ ">From me\n", ">>From me\n\n" },
		{ ">>>From me\n", ">>>>From me\n\n" },
		{ "x\nFrom \n", "x\n>From \n\n" },
		{ "From\n", "From\n\n" },          /* no space: not a separator */
		{ "from x\n", "from x\n\n" },      /* case matters */
		{ " From x\n", " From x\n\n" },
		{ ">Fromx\n", ">Fromx\n\n" },
		{ "a\nFrom x", "a\n>From x\n\n" }, /* last line without LF */
		{ "From x\r\nFrom y\n", ">From x\r\n>From y\n\n" },
		{ ">\n>>\n", ">\n>>\n\n" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct buf b;
		buf_init(&b, 1000);
		assert_int_equal(lda_mbox_quote(&b, cases[i].in, strlen(cases[i].in)), 0);
		assert_string_equal(buf_cstr(&b), cases[i].out);
		buf_free(&b);
	}
	/* binary: NUL bytes survive */
	struct buf b;
	buf_init(&b, 1000);
	assert_int_equal(lda_mbox_quote(&b, "a\0b\n", 4), 0);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "a\0b\n\n", 5);
	buf_free(&b);
	/* maximum honoured */
	buf_init(&b, 3);
	assert_int_equal(lda_mbox_quote(&b, "From x\n", 7), -1);
	buf_free(&b);
}

static void test_from_line(void **state)
{
	setenv("TZ", "UTC", 1);
	tzset();
	struct buf b;
	buf_init(&b, 1000);
	assert_int_equal(lda_mbox_from_line(&b, "alice@example.net", 1704099900), 0);
	assert_string_equal(buf_cstr(&b), "From alice@example.net Mon Jan  1 09:05:00 2024\n");
	buf_reset(&b);
	assert_int_equal(lda_mbox_from_line(&b, "", 1704099900), 0);
	assert_string_equal(buf_cstr(&b), "From MAILER-DAEMON Mon Jan  1 09:05:00 2024\n");
	buf_reset(&b);
	assert_int_equal(lda_mbox_from_line(&b, NULL, 1735689599), 0);
	assert_string_equal(buf_cstr(&b), "From MAILER-DAEMON Tue Dec 31 23:59:59 2024\n");
	buf_free(&b);
}

static void test_parse_lock(void **state)
{
	static const struct {
		const char *in;
		bool ok;
		long pid;
		uint64_t size;
	} cases[] = {
		{ "123 456\n", true, 123, 456 },
		{ "1 0\n", true, 1, 0 },
		{ "0 5\n", false, 0, 0 },
		{ "123 456", false, 0, 0 },
		{ "123  456\n", false, 0, 0 },
		{ "abc 1\n", false, 0, 0 },
		{ "", false, 0, 0 },
		{ "12 99999999999999999999999\n", false, 0, 0 },
		{ "1234567890123 1\n", false, 0, 0 },
		{ "12 3\nx", false, 0, 0 },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		long pid = 0;
		uint64_t size = 0;
		assert_int_equal(lda_mbox_parse_lock(cases[i].in, strlen(cases[i].in), &pid, &size),
				 cases[i].ok);
		if (cases[i].ok) {
			assert_int_equal(pid, cases[i].pid);
			assert_int_equal(size, cases[i].size);
		}
	}
}

static char *slurp(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *p = xmalloc(1 << 16);
	*n = fread(p, 1, 1 << 16, f);
	fclose(f);
	return p;
}

static void test_deliver_and_recover(void **state)
{
	char tmpl[] = "/tmp/lda_mbox_test.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *path = xasprintf("%s/mbox", tmpl);
	char *lock = xasprintf("%s/mbox.lock", tmpl);
	struct lda_status st = { 0 };
	const char m1[] = "Subject: one\n\nFrom here\n";
	assert_int_equal(lda_mbox_deliver(path, (struct str){ m1, sizeof(m1) - 1 }, "a@b", getuid(),
					  5, true, &st), 0);
	size_t n1;
	char *c1 = slurp(path, &n1);
	assert_true(n1 > 0 && memcmp(c1, "From a@b ", 9) == 0);
	assert_non_null(memmem(c1, n1, "\n>From here\n\n", 13));
	struct stat sb;
	assert_int_equal(lstat(lock, &sb), -1); /* dotlock removed */

	/* a killed postern-lda: dotlock with a dead pid, partial message after
	 * the recorded size -> the next delivery cuts it off */
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "From x@y Mon", 12), 12);
	close(fd);
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child); /* a pid that is gone */
	fd = open(lock, O_WRONLY | O_CREAT | O_EXCL, 0600);
	char *rec = xasprintf("%ld %zu\n", (long)child, n1);
	assert_int_equal(write(fd, rec, strlen(rec)), (ssize_t)strlen(rec));
	close(fd);
	const char m2[] = "Subject: two\n\nbody\n";
	assert_int_equal(lda_mbox_deliver(path, (struct str){ m2, sizeof(m2) - 1 }, "", getuid(), 5,
					  true, &st), 0);
	size_t n2;
	char *c2 = slurp(path, &n2);
	assert_memory_equal(c2, c1, n1);
	assert_true(memcmp(c2 + n1, "From MAILER-DAEMON ", 19) == 0);
	assert_null(memmem(c2, n2, "From x@y Mon", 12));

	/* the same, but a writer that ignores dotlocks appended a whole message
	 * after the partial one: cutting back would lose it, so nothing is cut */
	fd = open(path, O_WRONLY | O_APPEND);
	assert_int_equal(write(fd, "From x@y Mon", 12), 12);
	static const char foreign[] = "\n\nFrom z@w Mon Jan  1 09:05:00 2024\nSubject: f\n\nkeep me\n\n";
	assert_int_equal(write(fd, foreign, sizeof(foreign) - 1), (ssize_t)sizeof(foreign) - 1);
	close(fd);
	fd = open(lock, O_WRONLY | O_CREAT | O_EXCL, 0600);
	free(rec);
	rec = xasprintf("%ld %zu\n", (long)child, n2);
	assert_int_equal(write(fd, rec, strlen(rec)), (ssize_t)strlen(rec));
	close(fd);
	assert_int_equal(lda_mbox_deliver(path, (struct str){ m2, sizeof(m2) - 1 }, "", getuid(), 5,
					  true, &st), 0);
	size_t nf;
	char *cf = slurp(path, &nf);
	assert_non_null(memmem(cf, nf, "keep me\n", 8));
	assert_true(nf > n2 + sizeof(foreign));
	free(cf);
	free(c2);
	c2 = slurp(path, &n2);

	/* a foreign fresh dotlock that never goes away: bounded wait, 4.2.0 */
	fd = open(lock, O_WRONLY | O_CREAT | O_EXCL, 0600);
	close(fd);
	assert_int_equal(lda_mbox_deliver(path, (struct str){ m2, sizeof(m2) - 1 }, "", getuid(), 1,
					  true, &st), -1);
	assert_int_equal(st.ex, 75);
	assert_string_equal(st.dsn, "4.2.0");
	size_t n3;
	char *c3 = slurp(path, &n3);
	assert_int_equal(n3, n2);
	unlink(lock);

	/* a hard-linked mbox is refused */
	char *other = xasprintf("%s/other", tmpl);
	assert_int_equal(link(path, other), 0);
	assert_int_equal(lda_mbox_deliver(path, (struct str){ m2, sizeof(m2) - 1 }, "", getuid(), 1,
					  true, &st), -1);
	assert_int_equal(st.ex, 77);
	char *cmd = xasprintf("rm -rf %s", tmpl);
	assert_int_equal(system(cmd), 0);
	free(cmd), free(other), free(c3), free(c2), free(rec), free(c1), free(lock), free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_from_line),
		cmocka_unit_test(test_parse_lock),
		cmocka_unit_test(test_deliver_and_recover),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
