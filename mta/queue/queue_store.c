/*
 * queue_store.c - queue files, directories and the group commit.
 *
 * Purpose: everything that makes a queue file durable, and nothing else.
 * Owns: the subdirectories of queue_directory, the commit worker thread and
 * its job lists.
 * Never: acknowledges a commit before the content, the envelope and both
 * directory entries are fsynced; deletes a corrupt envelope; logs from the
 * worker thread (results return to the loop).
 *
 * Group commit: the loop thread appends commit and status-append jobs to a
 * pending list and wakes the worker. The worker takes the WHOLE list at
 * once and, for that batch: writes every envelope (over a spare file, or
 * as incoming/QID) and every status append, makes them and the content
 * files durable with one syncfs() plus an fsync of content/ (whose entries
 * were made at IPC_Q_OPEN), then renames the envelopes into active/. A
 * second thread fsyncs active/ once for all the commits renamed so far
 * while the first already works on the next batch (a two-stage pipeline):
 * three device flushes per batch, however many messages it holds. While
 * it works the loop keeps accepting, so everything that arrived during one
 * flush shares the next one: under load the flushes per message fall with
 * the number of sessions.
 * The worker hands finished jobs back through an eventfd; the loop then
 * sends IPC_Q_COMMITTED (or IPC_Q_ERROR) and schedules delivery.
 *
 * Limits: none of its own (IPC and qfile limits apply before a job exists).
 * Tests: tests/unit/queue/queue_store_test.c, tests/integration/test_queue_*.py.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mta/queue/queue_int.h"
#include "lib/log.h"
#include "lib/fileio.h"
#include "lib/common.h"

static const char *const queue_dir_names[QD_COUNT] = {
	"content", "incoming", "active", "deferred", "hold", "corrupt", "private", "spare",
};

const char *queue_dir_name(enum queue_dir d)
{
	return d < QD_COUNT ? queue_dir_names[d] : "?";
}

int64_t queue_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- u64 map (linear probing, backward-shift deletion) ---- */

static size_t map_slot(uint64_t key, size_t cap)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (size_t)key & (cap - 1);
}

void *queue_map_get(const struct queue_map *m, uint64_t key)
{
	if (m->cap == 0 || key == 0)
		return NULL;
	for (size_t i = map_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == 0)
			return NULL;
		if (m->keys[i] == key)
			return m->vals[i];
	}
}

static void map_insert(struct queue_map *m, uint64_t key, void *val)
{
	size_t i = map_slot(key, m->cap);
	while (m->keys[i] != 0)
		i = (i + 1) & (m->cap - 1);
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
}

void queue_map_put(struct queue_map *m, uint64_t key, void *val)
{
	CHECK(key != 0);
	if ((m->n + 1) * 2 > m->cap) {
		struct queue_map old = *m;
		m->cap = old.cap ? old.cap * 2 : 64;
		m->keys = xcalloc(m->cap, sizeof(*m->keys));
		m->vals = xcalloc(m->cap, sizeof(*m->vals));
		m->n = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.keys[i] != 0)
				map_insert(m, old.keys[i], old.vals[i]);
		free(old.keys);
		free(old.vals);
	}
	map_insert(m, key, val);
}

void *queue_map_del(struct queue_map *m, uint64_t key)
{
	if (m->cap == 0 || key == 0)
		return NULL;
	size_t i = map_slot(key, m->cap);
	while (m->keys[i] != key) {
		if (m->keys[i] == 0)
			return NULL;
		i = (i + 1) & (m->cap - 1);
	}
	void *val = m->vals[i];
	m->keys[i] = 0;
	m->n--;
	/* shift back the entries of the probe run that follows */
	for (size_t j = (i + 1) & (m->cap - 1); m->keys[j] != 0; j = (j + 1) & (m->cap - 1)) {
		size_t home = map_slot(m->keys[j], m->cap);
		bool movable = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
		if (movable) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			m->keys[j] = 0;
			i = j;
		}
	}
	return val;
}

void queue_map_free(struct queue_map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* ---- directories ---- */

int queue_store_open_dirs(struct queue *q, const char **error_r)
{
	static char why[512];
	int root = open(q->cfg->queue_directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		snprintf(why, sizeof(why), "open %s: %s", q->cfg->queue_directory, strerror(errno));
		*error_r = why;
		return -1;
	}
	for (int d = 0; d < QD_COUNT; d++) {
		if (mkdirat(root, queue_dir_names[d], 0700) < 0 && errno != EEXIST) {
			snprintf(why, sizeof(why), "mkdir %s/%s: %s", q->cfg->queue_directory,
				 queue_dir_names[d], strerror(errno));
			close(root);
			*error_r = why;
			return -1;
		}
		q->dfd[d] = openat(root, queue_dir_names[d], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (q->dfd[d] < 0) {
			snprintf(why, sizeof(why), "open %s/%s: %s", q->cfg->queue_directory,
				 queue_dir_names[d], strerror(errno));
			close(root);
			*error_r = why;
			return -1;
		}
	}
	/* the new entries themselves must survive a crash */
	fsync(root);
	close(root);
	return 0;
}

/* ---- the worker ---- */

enum store_kind {
	STORE_COMMIT, /* content fsync + envelope + rename */
	STORE_APPEND, /* status records */
};

struct store_job {
	struct store_job *next;  /* list link */
	enum store_kind kind;
	char qid[QFILE_ID_LEN + 1];
	int content_fd;          /* COMMIT: owned */
	enum queue_dir dir;      /* APPEND: where the envelope is; COMMIT: where it
	                          * goes (active/, or hold/ for a quarantine) */
	long long keep_len;      /* APPEND: truncate to this first (>= 0) */
	struct buf bytes;        /* envelope or status records */
	bool spare;              /* COMMIT: envelope written over spare/<spare_name> */
	char spare_name[16];     /* its name */
	int err;                 /* result: 0 or errno */
	int content_err;         /* COMMIT: result of the content fsync */
	queue_store_done_fn *done;
	void *ctx;
};

struct queue_store {
	pthread_t thread;        /* stage 1: file writes and fsyncs, renames */
	pthread_t dirsync;       /* stage 2: fsync of active/, then done */
	pthread_mutex_t lock;    /* guards the three lists and the flags */
	pthread_cond_t wake;     /* stage 1 has work */
	pthread_cond_t wake2;    /* stage 2 has work */
	struct store_job *pending, **pending_tail; /* loop -> stage 1 */
	struct store_job *renamed, **renamed_tail; /* stage 1 -> stage 2 */
	struct store_job *finished, **finished_tail; /* -> loop */
	bool stop;               /* stage 1: finish the pending jobs, then exit */
	bool stop2;              /* stage 2: likewise, once stage 1 has exited */
	bool running;
	int efd;                 /* eventfd: finished jobs waiting */
	struct event *ev;        /* on efd */
	const int *dfd;          /* q->dfd (directory fds never change) */
	unsigned long batches;   /* statistics: batches and jobs flushed */
	unsigned long jobs;
	/* spare envelope files (loop thread only): names in spare/ */
	uint32_t *spares;        /* stack of name numbers */
	size_t nspare;
	uint32_t spare_seq;      /* next name number */
	unsigned long reused;    /* statistics: commits over a spare file */
	/* spare content files (loop thread only): names "C%08X" in spare/ */
	uint32_t *cspares;
	size_t ncspare;
	unsigned long creused;   /* statistics: content files reused */
};

/* Spare content files (loop thread only), kept like spare envelopes: every
 * new file on a busy queue costs an inode allocation, which ext4 makes slow
 * after many deletions. A content file was handed out (smtpd wrote it, LDA
 * workers and |commands read it), so it is reused only when a write lease
 * proves that no other process holds it open any more: a descriptor kept by
 * anyone would otherwise show them the next message. */
#define QUEUE_CSPARE_MAX 1024

static void cspare_name(char name[16], uint32_t n)
{
	snprintf(name, 16, "C%08X", n);
}

/* Rename content/qid to spare/ for reuse; false if there is no room. */
static bool store_keep_content(struct queue *q, const char *qid)
{
	struct queue_store *s = q->store;
	if (s == NULL || s->ncspare >= QUEUE_CSPARE_MAX)
		return false;
	if (s->cspares == NULL)
		s->cspares = xcalloc(QUEUE_CSPARE_MAX, sizeof(*s->cspares));
	char name[16];
	uint32_t n = s->spare_seq++;
	cspare_name(name, n);
	if (renameat(q->dfd[QD_CONTENT], qid, q->dfd[QD_SPARE], name) < 0)
		return false;
	s->cspares[s->ncspare++] = n;
	return true;
}

/* A spare content file nobody else has open, truncated and renamed to a new
 * content/QID; -1 if there is none. */
static int store_reuse_content(struct queue *q, char qid[QFILE_ID_LEN + 1])
{
	struct queue_store *s = q->store;
	while (s != NULL && s->ncspare > 0) {
		char name[16];
		cspare_name(name, s->cspares[--s->ncspare]);
		int fd = openat(q->dfd[QD_SPARE], name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		/* F_WRLCK is granted only when ours is the file's sole open
		 * description; nobody without the path can open it after */
		bool alone = fcntl(fd, F_SETLEASE, F_WRLCK) == 0;
		if (alone)
			(void)fcntl(fd, F_SETLEASE, F_UNLCK);
		if (alone && ftruncate(fd, 0) == 0) {
			for (int tries = 0; tries < 1000; tries++) {
				qfile_id_next(queue_now_us(), &q->last_id, qid);
				if (renameat2(q->dfd[QD_SPARE], name, q->dfd[QD_CONTENT], qid,
					      RENAME_NOREPLACE) == 0) {
					s->creused++;
					return fd;
				}
				if (errno != EEXIST)
					break;
			}
		}
		close(fd);
		unlinkat(q->dfd[QD_SPARE], name, 0);
	}
	return -1;
}

int queue_store_create_content(struct queue *q, char qid[QFILE_ID_LEN + 1])
{
	int reused = store_reuse_content(q, qid);
	if (reused >= 0)
		return reused;
	for (int tries = 0; tries < 1000; tries++) {
		qfile_id_next(queue_now_us(), &q->last_id, qid);
		int fd = openat(q->dfd[QD_CONTENT], qid, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
				0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

/* The envelope half of a commit (the content fsync runs beside it, as its
 * own task: both must be done before the rename, neither waits for the
 * other). */
static void store_do_commit_envelope(struct queue_store *s, struct store_job *j)
{
	int fd = -1;
	if (j->spare) {
		/* overwrite a spare envelope in place: its inode and block
		 * are reused (no allocation, no free, no discard) */
		fd = openat(s->dfd[QD_SPARE], j->spare_name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			j->spare = false; /* gone: make a new one */
	}
	if (fd < 0)
		fd = openat(s->dfd[QD_INCOMING], j->qid,
			    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		j->err = errno;
		return;
	}
	if (file_write_all(fd, j->bytes.data, j->bytes.len) < 0 ||
	    (j->spare && ftruncate(fd, (off_t)j->bytes.len) < 0))
		j->err = errno;
	close(fd);
}

static void store_do_append(struct queue_store *s, struct store_job *j)
{
	int fd = openat(s->dfd[j->dir], j->qid, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		j->err = errno;
		return;
	}
	if (j->keep_len >= 0 && ftruncate(fd, (off_t)j->keep_len) < 0)
		j->err = errno;
	else if (lseek(fd, 0, SEEK_END) < 0 || file_write_all(fd, j->bytes.data, j->bytes.len) < 0)
		j->err = errno;
	close(fd);
}

/* The files of a batch: every envelope and status append written in
 * submission order (a recipient's per-target record precedes its final
 * one), then one syncfs() makes every dirty page, inode and directory
 * block of the file system durable with one device cache flush, content
 * files included, where an fsync() per file would pay a flush each on ext4
 * without a journal. Measured on such a file system, syncfs was faster
 * than concurrent per-file fsyncs at every load, a single session
 * included (677 against 569 msg/s; 1,247 against 982 with 4 sessions).
 * The price: syncfs() also writes whatever else is dirty on that file
 * system, so a queue_directory on a file system of its own is best under
 * heavy unrelated writes. */
static int store_files_sync(struct queue_store *s, struct store_job *list)
{
	for (struct store_job *j = list; j; j = j->next) {
		if (j->kind == STORE_COMMIT)
			store_do_commit_envelope(s, j);
		else
			store_do_append(s, j);
	}
	int err = syncfs(s->dfd[QD_CONTENT]) < 0 ? errno : 0;
	/* syncfs() flushes the device cache before its last wait for metadata
	 * blocks (directory entries): an fsync of content/ (whose entries were
	 * made at IPC_Q_OPEN and are the ones that matter) flushes after */
	if (err == 0 && fsync(s->dfd[QD_CONTENT]) < 0)
		err = errno;
	for (struct store_job *j = list; j && err != 0; j = j->next) {
		if (j->kind == STORE_COMMIT)
			j->content_err = err;
		else if (j->err == 0)
			j->err = err;
	}
	return err;
}

/* One batch: files first, then renames, then one fsync per
 * touched directory for the whole batch. */
static void store_do_batch(struct queue_store *s, struct store_job *list)
{
	bool commits = false;
	int err = store_files_sync(s, list);
	for (struct store_job *j = list; j; j = j->next) {
		if (j->kind == STORE_COMMIT && j->err == 0)
			j->err = j->content_err; /* content not durable: no commit */
		if (j->kind != STORE_COMMIT || j->err != 0)
			continue;
		/* the commit point: the complete, fsynced envelope gets its name */
		if (j->spare ? renameat(s->dfd[QD_SPARE], j->spare_name, s->dfd[j->dir], j->qid) < 0
			     : renameat(s->dfd[QD_INCOMING], j->qid, s->dfd[j->dir], j->qid) < 0)
			j->err = errno;
		else
			commits = true;
	}
	/* content/ could not be synced: no commit of this batch is durable */
	for (struct store_job *j = list; j && err != 0; j = j->next)
		if (j->kind == STORE_COMMIT && j->err == 0) {
			unlinkat(s->dfd[j->dir], j->qid, 0);
			j->err = err;
		}
	(void)commits;
}

/* Move a list to the tail of another (lock held). */
static void store_splice(struct store_job ***tail, struct store_job *list)
{
	while (list) {
		struct store_job *next = list->next;
		list->next = NULL;
		**tail = list;
		*tail = &list->next;
		list = next;
	}
}

static void store_notify(struct queue_store *s)
{
	uint64_t one = 1;
	if (write(s->efd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow in practice; the loop drains it */
	}
}

/* Stage 2: one fsync of active/ for every renamed commit waiting (those of
 * one or more batches), while stage 1 already works on the next batch. */
static void *store_dirsync_thread(void *arg)
{
	struct queue_store *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->renamed == NULL && !s->stop2)
			pthread_cond_wait(&s->wake2, &s->lock);
		if (s->renamed == NULL && s->stop2)
			break;
		struct store_job *list = s->renamed;
		s->renamed = NULL;
		s->renamed_tail = &s->renamed;
		pthread_mutex_unlock(&s->lock);

		int err = fsync(s->dfd[QD_ACTIVE]) < 0 ? errno : 0;
		for (struct store_job *j = list; j && err == 0; j = j->next)
			if (j->kind == STORE_COMMIT && j->dir == QD_HOLD) {
				/* a quarantined message in this batch: hold/ too */
				err = fsync(s->dfd[QD_HOLD]) < 0 ? errno : 0;
				break;
			}
		for (struct store_job *j = list; j && err != 0; j = j->next) {
			/* not known durable: withdraw it so it is never delivered */
			unlinkat(s->dfd[j->kind == STORE_COMMIT ? j->dir : QD_ACTIVE], j->qid, 0);
			j->err = err;
		}

		pthread_mutex_lock(&s->lock);
		for (struct store_job *j = list; j; j = j->next)
			s->jobs++;
		store_splice(&s->finished_tail, list);
		store_notify(s);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void *store_thread(void *arg)
{
	struct queue_store *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->pending == NULL && !s->stop)
			pthread_cond_wait(&s->wake, &s->lock);
		if (s->pending == NULL && s->stop)
			break;
		struct store_job *list = s->pending;
		s->pending = NULL;
		s->pending_tail = &s->pending;
		pthread_mutex_unlock(&s->lock);

		store_do_batch(s, list);

		/* renamed commits still need the directory fsync (stage 2);
		 * status appends and failures are done */
		struct store_job *done = NULL, **done_tail = &done;
		struct store_job *sync = NULL, **sync_tail = &sync;
		for (struct store_job *j = list; j;) {
			struct store_job *next = j->next;
			j->next = NULL;
			if (j->kind == STORE_COMMIT && j->err == 0) {
				*sync_tail = j;
				sync_tail = &j->next;
			} else {
				*done_tail = j;
				done_tail = &j->next;
			}
			j = next;
		}
		pthread_mutex_lock(&s->lock);
		s->batches++;
		for (struct store_job *j = done; j; j = j->next)
			s->jobs++;
		if (done) {
			store_splice(&s->finished_tail, done);
			store_notify(s);
		}
		if (sync) {
			store_splice(&s->renamed_tail, sync);
			pthread_cond_signal(&s->wake2);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void store_job_free(struct store_job *j)
{
	if (j->content_fd >= 0)
		close(j->content_fd);
	buf_free(&j->bytes);
	free(j);
}

static void store_on_finished(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	struct queue_store *s = q->store;
	uint64_t n;
	if (read(s->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warning("eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&s->lock);
	struct store_job *list = s->finished;
	s->finished = NULL;
	s->finished_tail = &s->finished;
	pthread_mutex_unlock(&s->lock);
	while (list) {
		struct store_job *j = list;
		list = j->next;
		if (j->kind == STORE_COMMIT && j->err != 0) {
			if (j->spare)
				unlinkat(q->dfd[QD_SPARE], j->spare_name, 0);
			unlinkat(q->dfd[QD_INCOMING], j->qid, 0);
			unlinkat(q->dfd[QD_CONTENT], j->qid, 0);
		}
		j->done(q, j->err, j->ctx);
		store_job_free(j);
	}
}

int queue_store_start(struct queue *q, const char **error_r)
{
	struct queue_store *s = xcalloc(1, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->wake2, NULL);
	s->pending_tail = &s->pending;
	s->renamed_tail = &s->renamed;
	s->finished_tail = &s->finished;
	s->dfd = q->dfd;
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->efd < 0) {
		*error_r = "eventfd failed";
		free(s);
		return -1;
	}
	s->ev = event_new(q->base, s->efd, EV_READ | EV_PERSIST, store_on_finished, q);
	event_add(s->ev, NULL);
	if (pthread_create(&s->dirsync, NULL, store_dirsync_thread, s) != 0) {
		*error_r = "cannot start the commit threads";
		event_free(s->ev);
		close(s->efd);
		free(s);
		return -1;
	}
	if (pthread_create(&s->thread, NULL, store_thread, s) != 0) {
		pthread_mutex_lock(&s->lock);
		s->stop2 = true;
		pthread_cond_signal(&s->wake2);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->dirsync, NULL);
		*error_r = "cannot start the commit threads";
		event_free(s->ev);
		close(s->efd);
		free(s);
		return -1;
	}
	s->running = true;
	q->store = s;
	return 0;
}

void queue_store_stop(struct queue *q)
{
	struct queue_store *s = q->store;
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&s->lock);
	s->stop2 = true;
	pthread_cond_signal(&s->wake2);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->dirsync, NULL);
	/* deliver the last results (replies may still be queued) */
	store_on_finished(s->efd, EV_READ, q);
	log_info("store: %lu durable writes in %lu group commits, %lu envelopes over spare files, "
		 "%lu content files reused",
		 s->jobs, s->batches, s->reused, s->creused);
	free(s->spares);
	free(s->cspares);
	event_free(s->ev);
	close(s->efd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->wake2);
	free(s);
	q->store = NULL;
}

static void store_submit(struct queue *q, struct store_job *j)
{
	struct queue_store *s = q->store;
	pthread_mutex_lock(&s->lock);
	*s->pending_tail = j;
	s->pending_tail = &j->next;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

void queue_store_commit(struct queue *q, int content_fd, const struct qfile_env *env,
			enum queue_dir target, queue_store_done_fn *done, void *ctx)
{
	struct store_job *j = xcalloc(1, sizeof(*j));
	const char *err = NULL;
	CHECK(target == QD_ACTIVE || target == QD_HOLD);
	j->kind = STORE_COMMIT;
	j->dir = target;
	memcpy(j->qid, env->qid, sizeof(j->qid));
	j->content_fd = content_fd;
	j->done = done;
	j->ctx = ctx;
	buf_init(&j->bytes, QFILE_FILE_MAX);
	struct queue_store *st = q->store;
	if (st->nspare > 0) {
		j->spare = true;
		snprintf(j->spare_name, sizeof(j->spare_name), "%08X", st->spares[--st->nspare]);
		st->reused++;
	}
	if (qfile_encode_env(env, &j->bytes, &err) < 0) {
		/* validated before; a failure here is answered like an I/O error */
		log_warning("%s: cannot encode envelope: %s", env->qid, err);
		j->err = EINVAL;
		struct queue_store *s = q->store;
		pthread_mutex_lock(&s->lock);
		*s->finished_tail = j;
		s->finished_tail = &j->next;
		pthread_mutex_unlock(&s->lock);
		event_active(s->ev, EV_READ, 0);
		return;
	}
	store_submit(q, j);
}

void queue_store_append(struct queue *q, enum queue_dir dir, const char *qid, struct buf *bytes,
			long long keep_len, queue_store_done_fn *done, void *ctx)
{
	struct store_job *j = xcalloc(1, sizeof(*j));
	j->kind = STORE_APPEND;
	memcpy(j->qid, qid, QFILE_ID_LEN + 1);
	j->content_fd = -1;
	j->dir = dir;
	j->keep_len = keep_len;
	j->bytes = *bytes; /* take the buffer */
	buf_init(bytes, bytes->max);
	j->done = done;
	j->ctx = ctx;
	store_submit(q, j);
}

/* ---- plain file operations (loop thread) ---- */

/* Spare envelope files kept for reuse: enough for the commits of a few
 * busy batches; beyond that removal unlinks as before. */
#define QUEUE_SPARE_MAX 1024

/* Take the envelope dir/qid out of the queue by renaming it to spare/ for
 * a later commit to overwrite. Returns false when there is no room (or it
 * failed): unlink it then. Only the queue process ever opens an envelope
 * (smtpd writes content only), so a reused inode reaches no other process. */
static bool store_keep_spare(struct queue *q, enum queue_dir dir, const char *qid)
{
	struct queue_store *s = q->store;
	if (s == NULL || s->nspare >= QUEUE_SPARE_MAX)
		return false;
	if (s->spares == NULL)
		s->spares = xcalloc(QUEUE_SPARE_MAX, sizeof(*s->spares));
	uint32_t n = s->spare_seq++;
	char name[16];
	snprintf(name, sizeof(name), "%08X", n);
	if (renameat(q->dfd[dir], qid, q->dfd[QD_SPARE], name) < 0)
		return false;
	s->spares[s->nspare++] = n;
	return true;
}

void queue_store_remove(struct queue *q, enum queue_dir dir, const char *qid)
{
	/* envelope first: content without an envelope is garbage at restart */
	if (!store_keep_spare(q, dir, qid) && unlinkat(q->dfd[dir], qid, 0) < 0 && errno != ENOENT)
		log_warning("%s: remove %s/%s: %s", qid, queue_dir_name(dir), qid, strerror(errno));
	if (!store_keep_content(q, qid) && unlinkat(q->dfd[QD_CONTENT], qid, 0) < 0 &&
	    errno != ENOENT)
		log_warning("%s: remove content/%s: %s", qid, qid, strerror(errno));
	log_info("%s: removed", qid);
}

void queue_store_discard(struct queue *q, const char *qid)
{
	if (!store_keep_content(q, qid))
		unlinkat(q->dfd[QD_CONTENT], qid, 0);
}

int queue_store_move(struct queue *q, enum queue_dir from, enum queue_dir to, const char *qid)
{
	if (from == to)
		return 0;
	return renameat(q->dfd[from], qid, q->dfd[to], qid);
}

void queue_store_corrupt(struct queue *q, enum queue_dir from, const char *qid, const char *reason)
{
	char cname[QFILE_ID_LEN + 16];
	snprintf(cname, sizeof(cname), "%s.content", qid);
	if (renameat(q->dfd[from], qid, q->dfd[QD_CORRUPT], qid) < 0) {
		log_warning("%s: cannot move corrupt queue file %s/%s to corrupt/: %s", qid,
			    queue_dir_name(from), qid, strerror(errno));
		return;
	}
	renameat(q->dfd[QD_CONTENT], qid, q->dfd[QD_CORRUPT], cname);
	fsync(q->dfd[QD_CORRUPT]);
	log_warning("%s: corrupt queue file %s/%s (%s): moved to corrupt/", qid, queue_dir_name(from),
		    qid, reason);
}

int queue_store_load(struct queue *q, enum queue_dir dir, const char *qid, struct qfile_env *env,
		     const char **error_r)
{
	struct buf b;
	if (qfile_read_file(q->dfd[dir], qid, &b) < 0) {
		*error_r = errno == EFBIG ? "file too large" : strerror(errno);
		if (errno != ENOENT)
			errno = errno == EFBIG ? EINVAL : errno;
		return -1;
	}
	int rc = qfile_parse(b.data, b.len, env, error_r);
	if (rc == 0 && strcmp(env->qid, qid) != 0) {
		qfile_env_free(env);
		*error_r = "queue ID record does not match the file name";
		rc = -1;
	}
	buf_free(&b);
	if (rc < 0)
		errno = EINVAL;
	return rc;
}

/* Call fn for every queue-ID-named entry of dir; other names are reported. */
static void store_each(struct queue *q, enum queue_dir d, void (*fn)(struct queue *, enum queue_dir,
								     const char *))
{
	DIR *dir = file_opendir_at(q->dfd[d], ".", 0);
	if (dir == NULL) {
		log_warning("cannot scan %s/: %s", queue_dir_name(d), strerror(errno));
		return;
	}
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		fn(q, d, e->d_name);
	}
	closedir(dir);
}

static void recover_incoming(struct queue *q, enum queue_dir d, const char *name)
{
	/* an envelope that was never renamed was never acknowledged */
	unlinkat(q->dfd[d], name, 0);
}

static void recover_ids(struct queue *q, enum queue_dir d, const char *name)
{
	uint64_t v = qfile_id_value(name);
	if (v > q->last_id)
		q->last_id = v;
}

static void recover_content(struct queue *q, enum queue_dir d, const char *name)
{
	if (!qfile_id_valid(name)) {
		log_warning("unexpected file content/%s left alone", name);
		return;
	}
	recover_ids(q, d, name);
	struct stat st;
	for (int k = QD_ACTIVE; k <= QD_HOLD; k++)
		if (fstatat(q->dfd[k], name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return;
	/* content without a committed envelope: a transaction that never
	 * committed (or a message whose removal was interrupted) */
	if (unlinkat(q->dfd[d], name, 0) == 0)
		log_info("%s: removed uncommitted content", name);
}

void queue_store_recover(struct queue *q)
{
	store_each(q, QD_INCOMING, recover_incoming);
	store_each(q, QD_SPARE, recover_incoming); /* spare envelopes: garbage too */
	for (int k = QD_ACTIVE; k <= QD_CORRUPT; k++)
		store_each(q, (enum queue_dir)k, recover_ids);
	store_each(q, QD_CONTENT, recover_content);
}
