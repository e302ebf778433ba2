/*
 * queue_store_test.c - the store: a batch of commits made durable and read
 * back, status appends (and a torn tail cut before the next append),
 * corrupt files moved aside, start-up recovery of interrupted work, spare
 * envelope files reused by later commits.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/unit.h"

#include "mta/queue/queue_int.h"
#include "lib/common.h"

static char tmpdir[] = "/tmp/queue_store_test.XXXXXX";
static struct queue q;
static int done_count, done_errors;

static void on_done(struct queue *qq, int err, void *ctx)
{
	done_count++;
	if (err != 0)
		done_errors++;
}

static void run_until(int count)
{
	while (done_count < count)
		event_base_loop(q.base, EVLOOP_ONCE);
}

static void make_env(struct qfile_env *e, const char *qid, const char *rcpt)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->qid, qid, QFILE_ID_LEN + 1);
	e->arrival = 1700000000000000LL;
	e->sender = xstrdup("a@example.org");
	e->envid = xstrdup("");
	e->client_name = xstrdup("c");
	e->client_addr = xstrdup("127.0.0.1");
	e->helo = xstrdup("h");
	e->protocol = xstrdup("ESMTP");
	e->msgid = xstrdup("");
	e->nrcpt = 2;
	e->rcpt = xcalloc(2, sizeof(*e->rcpt));
	e->rcpt[0].addr = xstrdup(rcpt);
	e->rcpt[0].orcpt = xstrdup("");
	e->rcpt[1].addr = xstrdup("second@virt.test");
	e->rcpt[1].orcpt = xstrdup("");
}

static int setup(void **state)
{
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	char *text = xasprintf("queue_directory = %s/queue\n", tmpdir);
	char *qd = xasprintf("%s/queue", tmpdir);
	mkdir(qd, 0700);
	const char *err = NULL;
	q.cfg = cfg_parse_text(tmpdir, "main.cf", text, strlen(text), &err);
	free(text);
	free(qd);
	if (q.cfg == NULL)
		return -1;
	for (int d = 0; d < QD_COUNT; d++)
		q.dfd[d] = -1;
	q.base = event_base_new();
	if (queue_store_open_dirs(&q, &err) < 0 || queue_store_start(&q, &err) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	queue_store_stop(&q);
	for (int d = 0; d < QD_COUNT; d++)
		close(q.dfd[d]);
	event_base_free(q.base);
	cfg_free(&q.cfg);
	char *cmd = xasprintf("rm -rf %s", tmpdir);
	int rc = system(cmd);
	free(cmd);
	return rc == 0 ? 0 : -1;
}

#define N 50

static void test_commit_batch_and_reread(void **state)
{
	char ids[N][QFILE_ID_LEN + 1];
	done_count = done_errors = 0;
	for (int i = 0; i < N; i++) {
		int fd = queue_store_create_content(&q, ids[i]);
		assert_true(fd >= 0);
		char body[64];
		int n = snprintf(body, sizeof(body), "message %d\r\n", i);
		assert_int_equal(write(fd, body, (size_t)n), n);
		struct qfile_env e;
		char rcpt[64];
		snprintf(rcpt, sizeof(rcpt), "r%d@virt.test", i);
		make_env(&e, ids[i], rcpt);
		e.size = (uint64_t)n;
		queue_store_commit(&q, fd, &e, QD_ACTIVE, on_done, NULL);
		qfile_env_free(&e);
		if (i > 0)
			assert_true(strcmp(ids[i - 1], ids[i]) < 0);
	}
	run_until(N);
	assert_int_equal(done_errors, 0);
	for (int i = 0; i < N; i++) {
		struct qfile_env e;
		const char *err = NULL;
		assert_int_equal(queue_store_load(&q, QD_ACTIVE, ids[i], &e, &err), 0);
		char rcpt[64];
		snprintf(rcpt, sizeof(rcpt), "r%d@virt.test", i);
		assert_string_equal(e.rcpt[0].addr, rcpt);
		assert_int_equal(e.nrcpt, 2);
		qfile_env_free(&e);
		struct stat st;
		assert_int_equal(fstatat(q.dfd[QD_INCOMING], ids[i], &st, 0), -1);
	}
}

static void test_status_append_and_torn_tail(void **state)
{
	char qid[QFILE_ID_LEN + 1];
	done_count = done_errors = 0;
	int fd = queue_store_create_content(&q, qid);
	struct qfile_env e;
	make_env(&e, qid, "x@virt.test");
	queue_store_commit(&q, fd, &e, QD_ACTIVE, on_done, NULL);
	qfile_env_free(&e);
	run_until(1);

	struct buf b;
	const char *err = NULL;
	buf_init(&b, QFILE_REC_MAX);
	qfile_encode_status(&b, 0, QFILE_RS_SENT, 1, "", "2.0.0", "delivered to maildir", &err);
	queue_store_append(&q, QD_ACTIVE, qid, &b, -1, on_done, NULL);
	run_until(2);

	/* a crash in the middle of the next append leaves half a record */
	int afd = openat(q.dfd[QD_ACTIVE], qid, O_WRONLY | O_APPEND);
	assert_int_equal(write(afd, "D\x40\0\0\0partial", 12), 12);
	close(afd);
	assert_int_equal(queue_store_load(&q, QD_ACTIVE, qid, &e, &err), 0);
	assert_int_equal(e.rcpt[0].state, QFILE_RS_SENT);
	assert_int_equal(e.rcpt[1].state, QFILE_RS_PENDING);
	long long keep = (long long)e.valid_len;
	qfile_env_free(&e);

	/* the next append cuts the torn tail first, then the file reads whole */
	qfile_encode_status(&b, 1, QFILE_RS_DEFERRED, 2, "", "4.3.0", "later", &err);
	queue_store_append(&q, QD_ACTIVE, qid, &b, keep, on_done, NULL);
	run_until(3);
	assert_int_equal(done_errors, 0);
	assert_int_equal(queue_store_load(&q, QD_ACTIVE, qid, &e, &err), 0);
	assert_int_equal(e.rcpt[1].state, QFILE_RS_DEFERRED);
	assert_string_equal(e.rcpt[1].reason, "later");
	qfile_env_free(&e);
	buf_free(&b);
}

/* Appends to one file keep their order even inside one parallel batch:
 * a recipient's final record after all its per-target records. */
static void test_appends_keep_order(void **state)
{
	char qid[QFILE_ID_LEN + 1];
	done_count = done_errors = 0;
	int fd = queue_store_create_content(&q, qid);
	struct qfile_env e;
	make_env(&e, qid, "list@virt.test");
	queue_store_commit(&q, fd, &e, QD_ACTIVE, on_done, NULL);
	qfile_env_free(&e);
	run_until(1);
	struct buf b;
	const char *err = NULL;
	buf_init(&b, QFILE_REC_MAX);
	for (int i = 0; i < 30; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		qfile_encode_attempt(&b, 0, (uint32_t)i + 1, 1, key, &err);
		queue_store_append(&q, QD_ACTIVE, qid, &b, -1, on_done, NULL);
		qfile_encode_status(&b, 0, QFILE_RS_SENT, 2, key, "2.0.0", "ok", &err);
		queue_store_append(&q, QD_ACTIVE, qid, &b, -1, on_done, NULL);
	}
	qfile_encode_status(&b, 0, QFILE_RS_SENT, 3, "", "2.0.0", "all", &err);
	queue_store_append(&q, QD_ACTIVE, qid, &b, -1, on_done, NULL);
	buf_free(&b);
	run_until(62);
	assert_int_equal(done_errors, 0);
	assert_int_equal(queue_store_load(&q, QD_ACTIVE, qid, &e, &err), 0);
	assert_int_equal(e.rcpt[0].state, QFILE_RS_SENT);
	assert_int_equal(e.rcpt[0].ndone, 30);
	assert_int_equal(e.rcpt[0].natt, 0);
	assert_string_equal(e.rcpt[0].done[29], "k29");
	qfile_env_free(&e);
}

static void test_corrupt_and_recover(void **state)
{
	/* an envelope that does not parse moves to corrupt/, with its content */
	char qid[QFILE_ID_LEN + 1];
	int fd = queue_store_create_content(&q, qid);
	close(fd);
	int efd = openat(q.dfd[QD_DEFERRED], qid, O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write(efd, "V\x04\0\0\0junkjunk", 13), 13);
	close(efd);
	struct qfile_env e;
	const char *err = NULL;
	assert_int_equal(queue_store_load(&q, QD_DEFERRED, qid, &e, &err), -1);
	assert_int_equal(errno, EINVAL);
	queue_store_corrupt(&q, QD_DEFERRED, qid, err);
	struct stat st;
	assert_int_equal(fstatat(q.dfd[QD_CORRUPT], qid, &st, 0), 0);
	char cname[64];
	snprintf(cname, sizeof(cname), "%s.content", qid);
	assert_int_equal(fstatat(q.dfd[QD_CORRUPT], cname, &st, 0), 0);

	/* recovery: incoming/ is cleared, content without envelope removed,
	 * IDs continue above everything present */
	char orphan[QFILE_ID_LEN + 1];
	fd = queue_store_create_content(&q, orphan);
	close(fd);
	int ifd = openat(q.dfd[QD_INCOMING], orphan, O_WRONLY | O_CREAT, 0600);
	close(ifd);
	uint64_t before = q.last_id;
	q.last_id = 0;
	queue_store_recover(&q);
	assert_true(q.last_id >= before - 1);
	assert_int_equal(fstatat(q.dfd[QD_CONTENT], orphan, &st, 0), -1);
	assert_int_equal(fstatat(q.dfd[QD_INCOMING], orphan, &st, 0), -1);
	char next[QFILE_ID_LEN + 1];
	fd = queue_store_create_content(&q, next);
	close(fd);
	assert_true(strcmp(next, orphan) > 0);
}

static size_t count_entries(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY);
	DIR *d = fdopendir(fd);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* A removed message's envelope is kept in spare/ and the next commit
 * writes over it: same inode, exactly the new bytes (a longer old file is
 * cut), nothing left in spare/; recovery clears spare/. */
static void test_spare_envelopes(void **state)
{
	char a[QFILE_ID_LEN + 1], b[QFILE_ID_LEN + 1], c[QFILE_ID_LEN + 1];
	struct qfile_env e;
	struct stat st;
	const char *err = NULL;
	done_count = done_errors = 0;
	size_t spare0 = count_entries(q.dfd[QD_SPARE]);

	/* a with a long recipient list: a big envelope file */
	int fd = queue_store_create_content(&q, a);
	make_env(&e, a, "first@virt.test");
	free(e.rcpt[1].addr);
	char *longaddr = xmalloc(3001);
	memset(longaddr, 'l', 2990);
	memcpy(longaddr + 2990, "@virt.test", 11);
	e.rcpt[1].addr = longaddr;
	queue_store_commit(&q, fd, &e, QD_ACTIVE, on_done, NULL);
	qfile_env_free(&e);
	run_until(1);
	assert_int_equal(fstatat(q.dfd[QD_ACTIVE], a, &st, 0), 0);
	ino_t ino_a = st.st_ino;
	off_t size_a = st.st_size;
	queue_store_remove(&q, QD_ACTIVE, a);
	assert_int_equal(fstatat(q.dfd[QD_ACTIVE], a, &st, 0), -1);
	assert_int_equal(fstatat(q.dfd[QD_CONTENT], a, &st, 0), -1);
	/* the envelope and the content file, both kept for reuse */
	assert_int_equal(count_entries(q.dfd[QD_SPARE]), spare0 + 2);

	/* b, a small envelope, lands in a's inode */
	fd = queue_store_create_content(&q, b);
	make_env(&e, b, "second@virt.test");
	queue_store_commit(&q, fd, &e, QD_ACTIVE, on_done, NULL);
	qfile_env_free(&e);
	run_until(2);
	assert_int_equal(done_errors, 0);
	assert_int_equal(fstatat(q.dfd[QD_ACTIVE], b, &st, 0), 0);
	assert_true(st.st_ino == ino_a);
	assert_true(st.st_size < size_a);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(count_entries(q.dfd[QD_SPARE]), spare0);
	assert_int_equal(queue_store_load(&q, QD_ACTIVE, b, &e, &err), 0);
	assert_string_equal(e.rcpt[0].addr, "second@virt.test");
	assert_string_equal(e.rcpt[1].addr, "second@virt.test");
	assert_int_equal(e.valid_len, (size_t)st.st_size);
	qfile_env_free(&e);

	/* a spare that vanished is replaced by a new file */
	queue_store_remove(&q, QD_ACTIVE, b);
	/* the envelope and the content file, both kept for reuse */
	assert_int_equal(count_entries(q.dfd[QD_SPARE]), spare0 + 2);
	int sfd = openat(q.dfd[QD_SPARE], ".", O_RDONLY | O_DIRECTORY);
	DIR *d = fdopendir(sfd);
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(q.dfd[QD_SPARE], de->d_name, 0);
	closedir(d);
	fd = queue_store_create_content(&q, c);
	make_env(&e, c, "third@virt.test");
	queue_store_commit(&q, fd, &e, QD_ACTIVE, on_done, NULL);
	qfile_env_free(&e);
	run_until(3);
	assert_int_equal(done_errors, 0);
	assert_int_equal(queue_store_load(&q, QD_ACTIVE, c, &e, &err), 0);
	assert_string_equal(e.rcpt[0].addr, "third@virt.test");
	qfile_env_free(&e);

	/* recovery clears spare/ */
	queue_store_remove(&q, QD_ACTIVE, c);
	assert_true(count_entries(q.dfd[QD_SPARE]) > 0);
	queue_store_recover(&q);
	assert_int_equal(count_entries(q.dfd[QD_SPARE]), 0);
}

static void test_map(void **state)
{
	struct queue_map m = { 0 };
	for (uint64_t k = 1; k <= 5000; k++)
		queue_map_put(&m, k * 7919, (void *)(uintptr_t)k);
	for (uint64_t k = 1; k <= 5000; k += 2)
		assert_true(queue_map_del(&m, k * 7919) == (void *)(uintptr_t)k);
	for (uint64_t k = 1; k <= 5000; k++)
		assert_true(queue_map_get(&m, k * 7919) == (k % 2 ? NULL : (void *)(uintptr_t)k));
	assert_int_equal(m.n, 2500);
	assert_null(queue_map_del(&m, 12345));
	queue_map_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit_batch_and_reread),
		cmocka_unit_test(test_status_append_and_torn_tail),
		cmocka_unit_test(test_appends_keep_order),
		cmocka_unit_test(test_corrupt_and_recover),
		cmocka_unit_test(test_spare_envelopes),
		cmocka_unit_test(test_map),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
