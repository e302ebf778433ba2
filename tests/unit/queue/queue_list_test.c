/*
 * queue_list_test.c - postqueue -p / -j listings and show ID against golden
 * files, over a queue tree built here (with a corrupt file, a stray name
 * and a deferred reason), and the tree check.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/unit.h"

#include "lib/cfg.h"
#include "lib/qfile.h"
#include "mta/queue/queue_list.h"
#include "lib/common.h"

static char tmpdir[] = "/tmp/queue_list_test.XXXXXX";
static struct cfg *cfg;

static void put_file(const char *rel, const void *data, size_t n)
{
	char *path = xasprintf("%s/queue/%s", tmpdir, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
	free(path);
}

static void put_msg(const char *dir, const char *qid, int64_t arrival, uint64_t size,
		    const char *sender, const char **rcpts, size_t n, const char *deferred_reason)
{
	struct qfile_env e = { 0 };
	memcpy(e.qid, qid, QFILE_ID_LEN + 1);
	e.arrival = arrival;
	e.size = size;
	e.sender = (char *)sender;
	e.envid = e.client_name = e.client_addr = e.helo = e.protocol = e.msgid = (char *)"";
	struct qfile_rcpt r[8] = { 0 };
	for (size_t i = 0; i < n; i++) {
		r[i].addr = (char *)rcpts[i];
		r[i].orcpt = (char *)"";
	}
	e.rcpt = r;
	e.nrcpt = n;
	struct buf b;
	const char *err = NULL;
	buf_init(&b, QFILE_FILE_MAX);
	assert_int_equal(qfile_encode_env(&e, &b, &err), 0);
	if (deferred_reason) {
		assert_int_equal(qfile_encode_status(&b, 0, QFILE_RS_SENT, 1, "", "2.0.0", "ok", &err), 0);
		for (size_t i = 1; i < n; i++)
			assert_int_equal(qfile_encode_status(&b, (uint32_t)i, QFILE_RS_DEFERRED, 1, "",
							     "4.3.0", deferred_reason, &err), 0);
	}
	char *rel = xasprintf("%s/%s", dir, qid);
	put_file(rel, b.data, b.len);
	free(rel);
	char *crel = xasprintf("content/%s", qid);
	const char *content = "Received: from x\r\nSubject: =?utf-8?q?hi?= \x1b[31mred\r\n\r\nbody\r\n";
	put_file(crel, content, strlen(content));
	free(crel);
	buf_free(&b);
}

static char *golden(const char *name)
{
	char *path = xasprintf("%s/%s", QUEUE_GOLDEN, name);
	struct buf b;
	assert_int_equal(qfile_read_file(AT_FDCWD, path, &b), 0);
	free(path);
	char *s = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return s;
}

/* Compare with golden/name; QUEUE_GOLDEN_WRITE=1 rewrites the file instead
 * (then review the diff before committing it). */
static void check_golden(const char *name, const char *out)
{
	if (getenv("QUEUE_GOLDEN_WRITE")) {
		char *path = xasprintf("%s/%s", QUEUE_GOLDEN, name);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs(out, f);
		fclose(f);
		free(path);
		return;
	}
	char *want = golden(name);
	assert_string_equal(out, want);
	free(want);
}

static int setup(void **state)
{
	setenv("TZ", "UTC", 1);
	tzset();
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	char *q = xasprintf("%s/queue", tmpdir);
	mkdir(q, 0700);
	static const char *dirs[] = { "content", "incoming", "active", "deferred", "hold", "corrupt",
				      "private" };
	for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
		char *d = xasprintf("%s/%s", q, dirs[i]);
		mkdir(d, 0700);
		free(d);
	}
	char *text = xasprintf("queue_directory = %s\n", q);
	const char *err = NULL;
	cfg = cfg_parse_text(tmpdir, "main.cf", text, strlen(text), &err);
	free(text);
	free(q);
	if (cfg == NULL)
		return -1;
	const char *r1[] = { "ann@virt.test" };
	const char *r2[] = { "done@virt.test", "x@remote.example", "y@remote.example" };
	const char *r3[] = { "held@virt.test" };
	put_msg("active", "0660F5C599FAD5", 1700000000000000LL, 1234, "alice@example.org", r1, 1, NULL);
	put_msg("deferred", "0660F5C599FAD6", 1700000100000000LL, 70000, "", r2, 3,
		"no outbound transport yet");
	put_msg("hold", "0660F5C599FAD7", 1700000200000000LL, 10, "bob@example.org", r3, 1, NULL);
	put_file("active/0660F5C599FAD8", "garbage", 7);   /* corrupt: reported, skipped */
	put_file("deferred/not-an-id", "x", 1);            /* stray: ignored */
	return 0;
}

static int teardown(void **state)
{
	cfg_free(&cfg);
	char *cmd = xasprintf("rm -rf %s", tmpdir);
	int rc = system(cmd);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

static char *capture(bool json)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	const char *err = NULL;
	assert_int_equal(queue_list_print(cfg, json, f, &err), 0);
	fclose(f);
	return out;
}

static void test_postqueue_p(void **state)
{
	char *out = capture(false);
	check_golden("queue_list_p.ref", out);
	free(out);
}

static void test_postqueue_j(void **state)
{
	char *out = capture(true);
	check_golden("queue_list_j.ref", out);
	free(out);
}

static void test_show(void **state)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	const char *err = NULL;
	assert_int_equal(queue_show(cfg, "0660F5C599FAD6", f, &err), 0);
	fclose(f);
	check_golden("queue_show.ref", out);
	free(out);
	f = open_memstream(&out, &n);
	assert_int_equal(queue_show(cfg, "0660F5C599FAFF", f, &err), 1);
	assert_int_equal(queue_show(cfg, "../../etc/pass", f, &err), -1);
	assert_int_equal(queue_show(cfg, "0660F5C599FAD8", f, &err), -1);
	fclose(f);
	free(out);
}

static void test_check(void **state)
{
	struct buf r;
	buf_init(&r, 1 << 20);
	assert_int_equal(queue_list_check(cfg, &r), 2);
	assert_non_null(strstr(buf_cstr(&r), "/queue/active/0660F5C599FAD8: corrupt queue file"));
	assert_non_null(strstr(buf_cstr(&r), "/queue/deferred/not-an-id: not a queue file name"));
	buf_free(&r);
}

static void test_empty(void **state)
{
	char *text = xasprintf("queue_directory = %s/empty\n", tmpdir);
	char *d = xasprintf("%s/empty", tmpdir);
	mkdir(d, 0700);
	const char *err = NULL;
	struct cfg *c = cfg_parse_text(tmpdir, "main.cf", text, strlen(text), &err);
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	assert_int_equal(queue_list_print(c, false, f, &err), 0);
	fclose(f);
	assert_string_equal(out, "Mail queue is empty\n");
	free(out);
	cfg_free(&c);
	free(text);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_postqueue_p), cmocka_unit_test(test_postqueue_j),
		cmocka_unit_test(test_show),        cmocka_unit_test(test_check),
		cmocka_unit_test(test_empty),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
