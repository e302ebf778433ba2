/*
 * queue_int.h - shared state of the postern-queue process (internal).
 *
 * The queue process is the only writer of queue_directory. Its tree:
 *
 *   content/QID    message content, created O_EXCL 0600 by the queue and
 *                  written by smtpd through the descriptor it was handed
 *   incoming/QID   envelope being written (temporary; garbage after a crash)
 *   active/QID     committed envelope, being delivered now
 *   deferred/QID   envelope waiting for a retry; mtime = next attempt time
 *   hold/QID       held by the administrator, or a failed recipient awaits
 *                  its bounce notice (bounces come with the outbound issue)
 *   corrupt/QID    envelope that could not be parsed: kept, never deleted
 *   private/control  unix socket for the postern CLI (queue_ctl.c)
 *   spare/NAME     envelope files of removed messages, kept to be
 *                  overwritten by the next commits (no inode to allocate
 *                  or free per message); garbage, cleared at start-up
 *
 * A message exists (is committed) exactly when its envelope is in active/,
 * deferred/ or hold/. Subdirectories are mode 0700; files 0600.
 */
#ifndef POSTERN_QUEUE_INT_H
#define POSTERN_QUEUE_INT_H

#include <pthread.h>
#include <event2/event.h>

#include "lib/cfg.h"
#include "lib/qfile.h"
#include "mta/ipc/ipc_chan.h"
#include "mta/queue/queue_local.h"

enum queue_dir {
	QD_CONTENT,  /* content/ */
	QD_INCOMING, /* incoming/ */
	QD_ACTIVE,   /* active/ */
	QD_DEFERRED, /* deferred/ */
	QD_HOLD,     /* hold/ */
	QD_CORRUPT,  /* corrupt/ */
	QD_PRIVATE,  /* private/ */
	QD_SPARE,    /* spare/: envelope files kept for reuse (queue_store.c) */
	QD_COUNT
};

/* Name of a queue subdirectory ("active"). */
const char *queue_dir_name(enum queue_dir d);

/* u64-keyed open-addressing map (queue ID values, request IDs). */
struct queue_map {
	uint64_t *keys; /* 0 = empty slot */
	void **vals;    /* values */
	size_t cap;     /* power of two */
	size_t n;       /* entries */
};
void *queue_map_get(const struct queue_map *m, uint64_t key);
void queue_map_put(struct queue_map *m, uint64_t key, void *val); /* key != 0, not present */
void *queue_map_del(struct queue_map *m, uint64_t key);           /* returns the value or NULL */
void queue_map_free(struct queue_map *m);

struct queue_store;
struct queue_sched;

struct queue {
	struct cfg *cfg;            /* effective configuration; owned */
	char *confdir;              /* -c argument; owned */
	struct event_base *base;    /* the one loop */
	struct ipc_chan *master;    /* channel to master (fd 3) */
	int dfd[QD_COUNT];          /* open subdirectories */
	uint64_t last_id;           /* last queue ID value handed out */
	struct queue_store *store;  /* durable writes (queue_store.c) */
	struct queue_sched *sched;  /* delivery scheduling (queue_sched.c) */
	struct queue_local *local;  /* recipient resolution (queue_local.c) */
	struct queue_ctl *ctl;      /* control socket (queue_ctl.c) */
	bool stopping;              /* SIGTERM received */
};

/* ---- queue_store.c: files, directories, group commit ---- */

/* Completion of a durable write, called on the loop thread. err is 0 or an
 * errno value. */
typedef void queue_store_done_fn(struct queue *q, int err, void *ctx);

/* Create the subdirectories (0700) under queue_directory and open them.
 * Returns 0, or -1 with *error_r. */
int queue_store_open_dirs(struct queue *q, const char **error_r);
/* Start the commit worker thread. Returns 0 or -1 with *error_r. */
int queue_store_start(struct queue *q, const char **error_r);
/* Stop the worker after the jobs already queued (blocks until then). */
void queue_store_stop(struct queue *q);
/* Create content/QID for a new queue ID. Returns the read/write fd (the
 * caller owns it) and fills qid, or -1 with errno. */
int queue_store_create_content(struct queue *q, char qid[QFILE_ID_LEN + 1]);
/* Group commit: make content_fd durable, write env as incoming/QID, fsync,
 * rename to active/QID, fsync the touched directories once per batch; then
 * done(q, err, ctx) on the loop. Takes ownership of content_fd. */
void queue_store_commit(struct queue *q, int content_fd, const struct qfile_env *env,
			enum queue_dir target, queue_store_done_fn *done, void *ctx);
/* Append bytes (status records) to the envelope dir/QID and fsync it, first
 * truncating the file to keep_len bytes when keep_len >= 0 (a torn tail);
 * then done(q, err, ctx) on the loop. */
void queue_store_append(struct queue *q, enum queue_dir dir, const char *qid, struct buf *bytes,
			long long keep_len, queue_store_done_fn *done, void *ctx);
/* Remove a message: envelope first (kept in spare/ for reuse while there
 * are fewer than QUEUE_SPARE_MAX), then content. Logs "QID: removed". */
void queue_store_remove(struct queue *q, enum queue_dir dir, const char *qid);
/* Remove an uncommitted content file (no log line). */
void queue_store_discard(struct queue *q, const char *qid);
/* Move the envelope between directories. Returns 0 or -1 with errno. */
int queue_store_move(struct queue *q, enum queue_dir from, enum queue_dir to, const char *qid);
/* Move an unparsable envelope (and its content, as QID.content) to corrupt/
 * with a log line naming reason. */
void queue_store_corrupt(struct queue *q, enum queue_dir from, const char *qid, const char *reason);
/* Read and parse dir/QID. Returns 0; or -1 with *error_r (errno ENOENT when
 * the file is gone, EINVAL when it is corrupt). */
int queue_store_load(struct queue *q, enum queue_dir dir, const char *qid, struct qfile_env *env,
		     const char **error_r);
/* Start-up recovery: clear incoming/ and spare/, remove content without an envelope,
 * raise q->last_id above every ID present. Logs what it removes. */
void queue_store_recover(struct queue *q);

/* ---- queue_sched.c: active/deferred, deliveries, backoff ---- */

/* Create the scheduler (timers for queue_run_delay). */
void queue_sched_init(struct queue *q);
/* Free everything (at exit). */
void queue_sched_free(struct queue *q);
/* A message was just committed to active/: take env (moved; *env zeroed). */
void queue_sched_add(struct queue *q, struct qfile_env *env);
/* Load every envelope in active/ (start-up) and scan deferred/ now. */
void queue_sched_scan_active(struct queue *q);
/* Move deferred messages whose time has come (or all, when force) to active. */
void queue_sched_scan_deferred(struct queue *q, bool force);
/* IPC_M_DELIVERED from master. */
void queue_sched_delivered(struct queue *q, struct ipc_msg *m);
/* Control operations; each returns 0, or -1 with *error_r. */
int queue_sched_hold(struct queue *q, const char *qid, const char **error_r);
int queue_sched_release(struct queue *q, const char *qid, const char **error_r);
int queue_sched_requeue(struct queue *q, const char *qid, const char **error_r);
int queue_sched_delete(struct queue *q, const char *qid, const char **error_r);
/* Messages in memory (for tests and status). */
size_t queue_sched_active_count(const struct queue *q);
/* Deliveries running at master. */
size_t queue_sched_running(const struct queue *q);

/* ---- queue_ctl.c: control socket ---- */
struct queue_ctl;
/* Listen on private/control. Returns 0 or -1 with *error_r. */
int queue_ctl_listen(struct queue *q, const char **error_r);
/* Close the socket and every connection. */
void queue_ctl_close(struct queue *q);

/* Microseconds since the epoch. */
int64_t queue_now_us(void);

#endif
