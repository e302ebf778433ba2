/*
 * queue_sched.c - delivery scheduling: active and deferred queues, backoff,
 * lifetime, local deliveries through master.
 *
 * Purpose: get every committed recipient delivered exactly once, or
 * deferred with backoff, or failed with a reason.
 * Owns: the messages in the active queue (in memory) and the deliveries in
 * flight; deferred messages live only on disk (deferred/QID, whose mtime is
 * the time of the next attempt, as in Postfix).
 * Never: starts a new attempt for a recipient before the outcome of the
 * previous one is fsynced (status records go through the store worker and
 * the message is only moved on once they are durable); deletes a message
 * with a recipient whose delivery is running.
 *
 * One attempt of a message: resolve every unfinished recipient into targets
 * (queue_local.c), skip targets a status record already marks finished,
 * queue the deliveries (at most the concurrency limit run at once), log
 * and record each result, and when nothing is outstanding: remove the
 * message (all sent), move it to hold/ (some recipient failed: the bounce
 * notice comes with the outbound issue), or to deferred/ with its next
 * attempt at now + clamp(age, minimal_backoff_time, maximal_backoff_time)
 * (Postfix's rule). A message older than maximal_queue_lifetime that still
 * defers has its remaining recipients failed ("expired").
 * Concurrency: at most local_destination_concurrency_limit deliveries run
 * at once (in all; Postfix applies its limit per recipient).
 *
 * Crashes: before a delivery is handed to master an ATTEMPT record (target,
 * request ID) is fsynced. Request IDs start at a random value per process,
 * so they never match an earlier instance's. After a restart a target with
 * an open ATTEMPT is not delivered again at once: we wait (QUEUE_ORPHAN_WAIT,
 * at most command_time_limit + 5 s) for the result master forwards to the
 * new instance, and record it; only if none comes is it delivered again.
 * Tests: tests/unit/queue/queue_sched_test.c (backoff), 
 * tests/integration/test_queue_deliver.py.
 */
#include <dirent.h>
#include <sys/random.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mta/queue/queue_int.h"
#include "mta/queue/queue_log.h"
#include "mta/queue/queue_policy.h"
#include "mta/ipc/ipc_proto.h"
#include "lib/log.h"
#include "lib/fileio.h"
#include "lib/common.h"

struct sched_run {
	size_t outstanding; /* targets not finished in this attempt */
	bool multi;         /* more than one target: record each one */
	bool deferred;      /* some target deferred */
	bool bounced;       /* some target failed */
	char *dsn;          /* first failure's status code; owned */
	char *reason;       /* first failure's text; owned */
};

struct queue_msg {
	struct qfile_env env;   /* the envelope; recipient states kept current */
	enum queue_dir where;   /* directory of the envelope file */
	int64_t active_since;   /* entry into this attempt (us) */
	size_t pending;         /* deliveries + store writes outstanding */
	struct sched_run *run;  /* per recipient, this attempt */
	long long keep_len;     /* truncate a torn tail before the next append */
	bool hold_req;          /* move to hold/ when the attempt ends */
	bool delete_req;        /* remove when the attempt ends */
	bool expired;           /* lifetime passed: remaining recipients failed */
};

struct queue_dlv {
	struct queue_dlv *next;  /* waiting FIFO */
	uint32_t reqid;          /* IPC_M_DELIVER request ID */
	struct queue_msg *msg;   /* kept alive by msg->pending */
	size_t rcpt;             /* recipient index */
	struct queue_target t;   /* what to run; owned */
	int64_t start;           /* sent to master (us) */
	struct event *orphan;    /* started by an earlier instance: wait timer */
	struct queue *q;         /* for the timer */
};

struct queue_sched {
	struct queue_map msgs;   /* queue ID value -> struct queue_msg */
	struct queue_map dlvs;   /* reqid -> struct queue_dlv in flight */
	struct queue_dlv *wait_head, **wait_tail;
	size_t running;          /* deliveries at master */
	uint32_t next_reqid;
	struct event *scan;      /* queue_run_delay timer */
};

static struct queue_sched *S(struct queue *q)
{
	return q->sched;
}

static long long sched_limit(const struct queue *q)
{
	return q->cfg->local_destination_concurrency_limit > 0
		       ? q->cfg->local_destination_concurrency_limit
		       : 1;
}

static void sched_on_scan(evutil_socket_t fd, short what, void *arg);

static void sched_arm_scan(struct queue *q)
{
	long long d = q->cfg->queue_run_delay > 0 ? q->cfg->queue_run_delay : 300;
	struct timeval tv = { (time_t)d, 0 };
	evtimer_add(S(q)->scan, &tv);
}

void queue_sched_init(struct queue *q)
{
	struct queue_sched *s = xcalloc(1, sizeof(*s));
	s->wait_tail = &s->wait_head;
	/* request IDs differ from those of an earlier instance, whose late
	 * results master may still forward to us */
	uint32_t seed = 0;
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint32_t)queue_now_us();
	s->next_reqid = seed | 1;
	q->sched = s;
	s->scan = evtimer_new(q->base, sched_on_scan, q);
	sched_arm_scan(q);
}

static void dlv_free(struct queue_dlv *d)
{
	if (d->orphan)
		event_free(d->orphan);
	queue_target_clear(&d->t);
	free(d);
}

static void msg_free(struct queue *q, struct queue_msg *m)
{
	queue_map_del(&S(q)->msgs, qfile_id_value(m->env.qid));
	for (size_t i = 0; m->run && i < m->env.nrcpt; i++) {
		free(m->run[i].dsn);
		free(m->run[i].reason);
	}
	free(m->run);
	qfile_env_free(&m->env);
	free(m);
}

void queue_sched_free(struct queue *q)
{
	struct queue_sched *s = S(q);
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->dlvs.cap; i++)
		if (s->dlvs.keys[i]) {
			dlv_free(s->dlvs.vals[i]);
		}
	while (s->wait_head) {
		struct queue_dlv *d = s->wait_head;
		s->wait_head = d->next;
		dlv_free(d);
	}
	for (size_t i = 0; i < s->msgs.cap; i++)
		if (s->msgs.keys && s->msgs.keys[i]) {
			struct queue_msg *m = s->msgs.vals[i];
			for (size_t k = 0; m->run && k < m->env.nrcpt; k++) {
				free(m->run[k].dsn);
				free(m->run[k].reason);
			}
			free(m->run);
			qfile_env_free(&m->env);
			free(m);
		}
	queue_map_free(&s->msgs);
	queue_map_free(&s->dlvs);
	event_free(s->scan);
	free(s);
	q->sched = NULL;
}

size_t queue_sched_active_count(const struct queue *q)
{
	return q->sched ? q->sched->msgs.n : 0;
}

size_t queue_sched_running(const struct queue *q)
{
	return q->sched ? q->sched->running : 0;
}

static void sched_maybe_finish(struct queue *q, struct queue_msg *m);

static void append_done(struct queue *q, int err, void *ctx)
{
	struct queue_msg *m = ctx;
	if (err != 0)
		log_warning("%s: cannot record delivery status: %s", m->env.qid, strerror(err));
	m->pending--;
	sched_maybe_finish(q, m);
}

/* Record a status durably (through the worker); m->pending covers it. */
static void record_status(struct queue *q, struct queue_msg *m, size_t idx, enum qfile_rstate st,
			  const char *target, const char *dsn, const char *reason)
{
	struct buf b;
	const char *err = NULL;
	buf_init(&b, QFILE_REC_MAX + 64);
	if (qfile_encode_status(&b, (uint32_t)idx, st, queue_now_us(), target, dsn, reason, &err) < 0) {
		/* an over-long reason is cut, never dropped */
		buf_reset(&b);
		qfile_encode_status(&b, (uint32_t)idx, st, queue_now_us(), target, dsn, "", &err);
	}
	m->pending++;
	queue_store_append(q, m->where, m->env.qid, &b, m->keep_len, append_done, m);
	m->keep_len = -1;
	buf_free(&b);
}

static void set_owned(char **p, const char *v)
{
	free(*p);
	*p = xstrdup(v);
}

/* One target finished (or was decided without running anything). */
static void sched_result(struct queue *q, struct queue_msg *m, size_t idx,
			 const struct queue_target *t, int64_t start, int64_t end, int state,
			 const char *dsn, const char *text)
{
	struct qfile_rcpt *r = &m->env.rcpt[idx];
	struct sched_run *run = &m->run[idx];
	const char *status = state == QFILE_RS_SENT ? "sent" : state == QFILE_RS_BOUNCED ? "bounced"
											: "deferred";
	struct buf line;
	buf_init(&line, 8192);
	queue_log_delivery(&line, m->env.qid, t->final, r->addr, t->relay, m->env.arrival,
			   m->active_since, start, end, dsn, status, text);
	log_info("%s", buf_cstr(&line));
	buf_free(&line);

	if (state != QFILE_RS_SENT && run->reason == NULL) {
		run->dsn = xstrdup(dsn);
		run->reason = xstrdup(text);
	}
	if (state == QFILE_RS_DEFERRED) {
		run->deferred = true;
		/* the first deferral reason wins over an earlier bounce's for the
		 * listing: the recipient is still queued */
		set_owned(&run->dsn, dsn);
		set_owned(&run->reason, text);
	} else if (state == QFILE_RS_BOUNCED) {
		run->bounced = true;
	}
	if (run->multi && state != QFILE_RS_DEFERRED)
		record_status(q, m, idx, (enum qfile_rstate)state, t->key, dsn, text);
	CHECK(run->outstanding > 0);
	if (--run->outstanding > 0)
		return;
	enum qfile_rstate fin = run->deferred  ? QFILE_RS_DEFERRED
				: run->bounced ? QFILE_RS_BOUNCED
					       : QFILE_RS_SENT;
	const char *fdsn = fin == QFILE_RS_SENT ? dsn : run->dsn;
	const char *ftext = fin == QFILE_RS_SENT ? text : run->reason;
	record_status(q, m, idx, fin, "", fdsn, ftext);
	r->state = fin;
	set_owned(&r->dsn, fdsn);
	set_owned(&r->reason, ftext);
}

static void sched_dispatch(struct queue *q);

static bool target_done(const struct qfile_rcpt *r, const char *key)
{
	for (size_t i = 0; i < r->ndone; i++)
		if (strcmp(r->done[i], key) == 0)
			return true;
	return false;
}

/* The delivery of target key started by an earlier instance whose outcome
 * was never recorded, or NULL. */
static const struct qfile_attempt *open_attempt(const struct qfile_rcpt *r, const char *key)
{
	for (size_t i = 0; i < r->natt; i++)
		if (strcmp(r->att[i].target, key) == 0)
			return &r->att[i];
	return NULL;
}

static void sched_orphan_timeout(evutil_socket_t fd, short what, void *arg);

/*
 * A delivery that an earlier instance handed to master may still finish:
 * master forwards its result to us with the request ID of the ATTEMPT
 * record. Wait for it (up to QUEUE_ORPHAN_WAIT seconds) instead of
 * delivering again, so a crash does not duplicate it. Takes the target
 * (moved out of *t). Returns false when the ID is taken (then deliver anew).
 */
#define QUEUE_ORPHAN_WAIT 30

static bool sched_adopt(struct queue *q, struct queue_msg *m, size_t idx, struct queue_target *t,
			uint32_t reqid)
{
	struct queue_sched *s = S(q);
	if (reqid == 0 || queue_map_get(&s->dlvs, reqid) != NULL)
		return false;
	struct queue_dlv *d = xcalloc(1, sizeof(*d));
	d->msg = m;
	d->rcpt = idx;
	d->t = *t;
	memset(t, 0, sizeof(*t));
	d->reqid = reqid;
	d->start = queue_now_us();
	d->q = q;
	d->orphan = evtimer_new(q->base, sched_orphan_timeout, d);
	long long wait = q->cfg->command_time_limit + 5;
	struct timeval tv = { (time_t)(wait < QUEUE_ORPHAN_WAIT ? wait : QUEUE_ORPHAN_WAIT), 0 };
	evtimer_add(d->orphan, &tv);
	queue_map_put(&s->dlvs, reqid, d);
	s->running++;
	log_info("%s: waiting for the outcome of a delivery to <%s> started before a restart",
		 m->env.qid, d->t.final);
	return true;
}

/* No late result came: deliver again (the earlier one most likely never
 * ran, or its result was lost with master). */
static void sched_orphan_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct queue_dlv *d = arg;
	struct queue *q = d->q;
	struct queue_sched *s = S(q);
	queue_map_del(&s->dlvs, d->reqid);
	s->running--;
	event_free(d->orphan);
	d->orphan = NULL;
	d->reqid = 0;
	/* to the front of the queue: it has waited long enough */
	d->next = s->wait_head;
	s->wait_head = d;
	if (s->wait_tail == &s->wait_head)
		s->wait_tail = &d->next;
	sched_dispatch(q);
}

/* Start one attempt of an in-memory message. */
static void sched_attempt(struct queue *q, struct queue_msg *m)
{
	struct queue_sched *s = S(q);
	m->active_since = queue_now_us();
	m->pending++; /* guard: nothing finishes while we are queueing */
	if (m->run == NULL)
		m->run = xcalloc(m->env.nrcpt, sizeof(*m->run));
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		struct qfile_rcpt *r = &m->env.rcpt[i];
		struct sched_run *run = &m->run[i];
		free(run->dsn);
		free(run->reason);
		memset(run, 0, sizeof(*run));
		if (r->state == QFILE_RS_SENT || r->state == QFILE_RS_BOUNCED)
			continue;
		struct queue_targets ts;
		queue_local_resolve(q->local, r->addr, &ts);
		size_t todo = 0;
		for (size_t k = 0; k < ts.n; k++)
			if (!target_done(r, ts.v[k].key))
				todo++;
		run->multi = ts.n > 1;
		if (todo == 0) {
			/* every target finished before a restart: close the recipient */
			run->outstanding = 0;
			record_status(q, m, i, QFILE_RS_SENT, "", "2.0.0", "delivered");
			r->state = QFILE_RS_SENT;
			queue_targets_free(&ts);
			continue;
		}
		run->outstanding = todo;
		for (size_t k = 0; k < ts.n; k++) {
			struct queue_target *t = &ts.v[k];
			if (target_done(r, t->key))
				continue;
			const struct qfile_attempt *att = open_attempt(r, t->key);
			if (att != NULL && (t->kind == QT_MAILDIR || t->kind == QT_MBOX || t->kind == QT_PIPE) &&
			    sched_adopt(q, m, i, t, att->reqid)) {
				m->pending++;
				continue;
			}
			if (t->kind == QT_BOUNCE || t->kind == QT_DEFER) {
				int64_t now = queue_now_us();
				sched_result(q, m, i, t, now, now,
					     t->kind == QT_BOUNCE ? QFILE_RS_BOUNCED : QFILE_RS_DEFERRED,
					     t->dsn, t->reason);
				continue;
			}
			struct queue_dlv *d = xcalloc(1, sizeof(*d));
			d->msg = m;
			d->rcpt = i;
			d->t = *t;
			memset(t, 0, sizeof(*t)); /* moved */
			*s->wait_tail = d;
			s->wait_tail = &d->next;
			m->pending++;
		}
		queue_targets_free(&ts);
	}
	m->pending--;
	sched_dispatch(q);
	sched_maybe_finish(q, m);
}

static void put_env(struct ipc_msg *im, size_t *n, const char *name, const char *value)
{
	char *kv = xasprintf("%s=%s", name, value);
	ipc_put_cstr(im, kv);
	free(kv);
	(*n)++;
}

/* Send one delivery to master. Returns 0, or -1 with *why. */
static int sched_send(struct queue *q, struct queue_dlv *d, const char **why)
{
	struct queue_msg *m = d->msg;
	struct queue_target *t = &d->t;
	int fd = openat(q->dfd[QD_CONTENT], m->env.qid, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		*why = "cannot open the message content";
		return -1;
	}
	struct ipc_msg im;
	ipc_msg_init(&im, IPC_M_DELIVER, d->reqid);
	ipc_put_u32(&im, t->kind == QT_PIPE ? IPC_MD_PIPE : IPC_MD_LDA);
	ipc_put_u32(&im, t->uid);
	ipc_put_u32(&im, t->gid);
	ipc_put_cstr(&im, t->home);
	const char *orig = m->env.rcpt[d->rcpt].addr;
	if (t->kind == QT_PIPE) {
		ipc_put_u32(&im, 2);
		ipc_put_cstr(&im, "sh");
		ipc_put_cstr(&im, t->path);
		size_t n = 0;
		ipc_put_u32(&im, 7);
		put_env(&im, &n, "PATH", "/usr/bin:/bin");
		put_env(&im, &n, "SHELL", "/bin/sh");
		put_env(&im, &n, "HOME", t->home);
		put_env(&im, &n, "SENDER", m->env.sender);
		put_env(&im, &n, "RECIPIENT", t->final);
		put_env(&im, &n, "ORIGINAL_RECIPIENT", orig);
		put_env(&im, &n, "QUEUE_ID", m->env.qid);
		CHECK(n == 7);
	} else {
		/* the same for every attempt of this delivery, so that postern-lda
		 * finds the copy of an attempt whose success a crash hid from us */
		uint32_t h = qfile_crc32(0, t->final, strlen(t->final));
		h = qfile_crc32(h, t->path, strlen(t->path) + 1);
		char dlvid[96];
		snprintf(dlvid, sizeof(dlvid), "%lld.%s_%zu_%08X",
			 (long long)(m->env.arrival / 1000000), m->env.qid, d->rcpt, h);
		const char *args[] = { "postern-lda", "-f", m->env.sender, "-a", orig, "-r", t->final,
				       "-d", t->user[0] ? t->user : t->final,
				       t->kind == QT_MAILDIR ? "--maildir" : "--mbox", t->path, "-e",
				       "--delivery-id", dlvid };
		ipc_put_u32(&im, ARRAY_LEN(args));
		for (size_t i = 0; i < ARRAY_LEN(args); i++)
			ipc_put_cstr(&im, args[i]);
		ipc_put_u32(&im, 1);
		ipc_put_cstr(&im, "PATH=/usr/bin:/bin");
	}
	ipc_msg_set_fd(&im, fd);
	int rc = im.bad ? -1 : ipc_chan_send(q->master, &im);
	ipc_msg_free(&im);
	if (rc < 0)
		*why = "cannot reach master to run the delivery";
	return rc;
}

/* A delivery that could not be handed to master: deferred. */
static void sched_send_failed(struct queue *q, struct queue_dlv *d, const char *why)
{
	struct queue_sched *s = S(q);
	struct queue_msg *m = d->msg;
	queue_map_del(&s->dlvs, d->reqid);
	s->running--;
	sched_result(q, m, d->rcpt, &d->t, d->start, queue_now_us(), QFILE_RS_DEFERRED, "4.3.0", why);
	dlv_free(d);
	m->pending--;
	sched_maybe_finish(q, m);
}

static void sched_attempt_recorded(struct queue *q, int err, void *ctx)
{
	struct queue_dlv *d = ctx;
	const char *why = NULL;
	if (err != 0) {
		sched_send_failed(q, d, "cannot record the delivery attempt");
		sched_dispatch(q);
		return;
	}
	if (q->master == NULL || sched_send(q, d, &why) < 0) {
		sched_send_failed(q, d, why ? why : "master unavailable");
		sched_dispatch(q);
	}
}

static void sched_dispatch(struct queue *q)
{
	struct queue_sched *s = S(q);
	long long limit = sched_limit(q);
	while (s->wait_head && (long long)s->running < limit && !q->stopping) {
		struct queue_dlv *d = s->wait_head;
		s->wait_head = d->next;
		if (s->wait_head == NULL)
			s->wait_tail = &s->wait_head;
		d->next = NULL;
		if (d->msg->delete_req || d->msg->hold_req) {
			/* not started: the recipient stays as it was */
			struct queue_msg *m = d->msg;
			dlv_free(d);
			m->pending--;
			sched_maybe_finish(q, m);
			continue;
		}
		do
			d->reqid = s->next_reqid++;
		while (d->reqid == 0 || queue_map_get(&s->dlvs, d->reqid) != NULL);
		d->start = queue_now_us();
		queue_map_put(&s->dlvs, d->reqid, d);
		s->running++;
		/* the ATTEMPT record is durable before master hears of it */
		struct buf b;
		const char *err = NULL;
		struct queue_msg *m = d->msg;
		buf_init(&b, QFILE_REC_MAX + 64);
		if (qfile_encode_attempt(&b, (uint32_t)d->rcpt, d->reqid, d->start, d->t.key, &err) < 0) {
			buf_free(&b);
			sched_attempt_recorded(q, EINVAL, d);
			continue;
		}
		queue_store_append(q, m->where, m->env.qid, &b, m->keep_len, sched_attempt_recorded, d);
		m->keep_len = -1;
		buf_free(&b);
	}
}

void queue_sched_delivered(struct queue *q, struct ipc_msg *im)
{
	struct queue_sched *s = S(q);
	int64_t status = 0;
	char *out = NULL;
	if (!ipc_get_i64(im, &status) || !ipc_get_cstr(im, &out) || !ipc_get_end(im)) {
		log_warning("malformed IPC_M_DELIVERED from master");
		free(out);
		return;
	}
	struct queue_dlv *d = queue_map_del(&s->dlvs, im->reqid);
	if (d == NULL) {
		/* a result forwarded from before a restart whose outcome is
		 * already on record (or whose message is gone): nothing to do */
		log_info("late delivery result for request %u ignored (no delivery waits for it)",
			 im->reqid);
		free(out);
		return;
	}
	s->running--;
	struct queue_msg *m = d->msg;
	struct queue_target *t = &d->t;
	int64_t end = queue_now_us();
	char dsn[16] = "";
	bool defer = false;
	struct buf text;
	buf_init(&text, 4096);
	if (status == 0) {
		if (t->kind == QT_PIPE)
			buf_printf(&text, "delivered to command: %s", t->path);
		else if (strcmp(t->what, "file") == 0)
			buf_printf(&text, "delivered to file: %s", t->path);
		else
			buf_printf(&text, "delivered to %s", t->what);
		sched_result(q, m, d->rcpt, t, d->start, end, QFILE_RS_SENT, "2.0.0", buf_cstr(&text));
	} else {
		const char *rest = queue_policy_map_status(status, t->kind == QT_PIPE, out, dsn, &defer);
		if (t->kind == QT_PIPE) {
			if (status < 0)
				buf_printf(&text, "Command killed by signal %lld: \"%s\"", (long long)-status,
					   t->path);
			else
				buf_printf(&text, "Command died with status %lld: \"%s\"", (long long)status,
					   t->path);
			if (*rest)
				buf_printf(&text, ". Command output: %s", rest);
		} else if (*rest) {
			buf_puts(&text, rest);
		} else if (status < 0) {
			buf_printf(&text, "delivery agent killed by signal %lld", (long long)-status);
		} else {
			buf_printf(&text, "delivery agent failed with status %lld", (long long)status);
		}
		if (q->cfg->soft_bounce)
			defer = true, dsn[0] = '4';
		sched_result(q, m, d->rcpt, t, d->start, end, defer ? QFILE_RS_DEFERRED : QFILE_RS_BOUNCED,
			     dsn, buf_cstr(&text));
	}
	buf_free(&text);
	free(out);
	dlv_free(d);
	m->pending--;
	sched_maybe_finish(q, m);
	sched_dispatch(q);
	if (q->stopping && s->running == 0) /* SIGTERM was waiting for us */
		event_base_loopbreak(q->base);
}

static void set_next_attempt(struct queue *q, enum queue_dir dir, const char *qid, int64_t when_s)
{
	struct timespec ts[2] = { { (time_t)when_s, 0 }, { (time_t)when_s, 0 } };
	utimensat(q->dfd[dir], qid, ts, AT_SYMLINK_NOFOLLOW);
}

static void sched_maybe_finish(struct queue *q, struct queue_msg *m)
{
	if (m->pending > 0)
		return;
	const char *qid = m->env.qid;
	if (m->delete_req) {
		queue_store_remove(q, m->where, qid);
		msg_free(q, m);
		return;
	}
	size_t open = 0, bounced = 0;
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		enum qfile_rstate st = m->env.rcpt[i].state;
		if (st == QFILE_RS_BOUNCED)
			bounced++;
		else if (st != QFILE_RS_SENT)
			open++;
	}
	int64_t now = queue_now_us();
	int64_t age_s = (now - m->env.arrival) / 1000000;
	if (open > 0 && !m->expired && q->cfg->maximal_queue_lifetime >= 0 &&
	    age_s >= q->cfg->maximal_queue_lifetime) {
		/* too old: the remaining recipients fail (bounce notice later) */
		m->expired = true;
		struct buf line;
		buf_init(&line, 8192);
		queue_log_expired(&line, qid, m->env.sender);
		log_info("%s", buf_cstr(&line));
		buf_free(&line);
		for (size_t i = 0; i < m->env.nrcpt; i++) {
			struct qfile_rcpt *r = &m->env.rcpt[i];
			if (r->state == QFILE_RS_SENT || r->state == QFILE_RS_BOUNCED)
				continue;
			char *why = xasprintf("message expired: %s", r->reason[0] ? r->reason : "undeliverable");
			record_status(q, m, i, QFILE_RS_BOUNCED, "", "4.4.7", why);
			r->state = QFILE_RS_BOUNCED;
			set_owned(&r->reason, why);
			free(why);
		}
		return; /* back here once the records are durable */
	}
	if (open > 0) {
		enum queue_dir to = m->hold_req ? QD_HOLD : QD_DEFERRED;
		if (queue_store_move(q, m->where, to, qid) < 0)
			log_warning("%s: cannot move to %s/: %s", qid, queue_dir_name(to), strerror(errno));
		else if (to == QD_DEFERRED)
			set_next_attempt(q, to, qid,
					 now / 1000000 + queue_policy_backoff(age_s, q->cfg->minimal_backoff_time,
									     q->cfg->maximal_backoff_time));
		msg_free(q, m);
		return;
	}
	if (bounced > 0) {
		if (queue_store_move(q, m->where, QD_HOLD, qid) < 0)
			log_warning("%s: cannot move to hold/: %s", qid, strerror(errno));
		else if (bounced > 0)
			log_info("%s: hold: %zu failed recipient%s; the bounce notice waits in hold/", qid,
				 bounced, bounced == 1 ? "" : "s");
		msg_free(q, m);
		return;
	}
	queue_store_remove(q, m->where, qid);
	msg_free(q, m);
}

/* Take a parsed envelope into memory and start it. */
static void sched_start(struct queue *q, struct qfile_env *env, enum queue_dir where, long long keep_len)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	m->env = *env;
	memset(env, 0, sizeof(*env));
	m->where = where;
	m->keep_len = keep_len;
	queue_map_put(&S(q)->msgs, qfile_id_value(m->env.qid), m);
	sched_attempt(q, m);
}

void queue_sched_add(struct queue *q, struct qfile_env *env)
{
	if (q->stopping || queue_map_get(&S(q)->msgs, qfile_id_value(env->qid)) != NULL) {
		/* it is on disk in active/: the next start picks it up */
		qfile_env_free(env);
		return;
	}
	sched_start(q, env, QD_ACTIVE, -1);
}

/* Load dir/QID and start it from active/ (moving it there first). */
static void sched_load(struct queue *q, enum queue_dir dir, const char *qid)
{
	if (!qfile_id_valid(qid)) {
		log_warning("unexpected file %s/%s left alone", queue_dir_name(dir), qid);
		return;
	}
	if (queue_map_get(&S(q)->msgs, qfile_id_value(qid)) != NULL)
		return;
	struct qfile_env env;
	const char *err = NULL;
	if (queue_store_load(q, dir, qid, &env, &err) < 0) {
		if (errno != ENOENT)
			queue_store_corrupt(q, dir, qid, err);
		return;
	}
	struct stat st;
	long long keep = -1;
	if (fstatat(q->dfd[dir], qid, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (uint64_t)st.st_size != env.valid_len)
		keep = (long long)env.valid_len; /* torn status append: cut it */
	if (dir != QD_ACTIVE && queue_store_move(q, dir, QD_ACTIVE, qid) < 0) {
		log_warning("%s: cannot move to active/: %s", qid, strerror(errno));
		qfile_env_free(&env);
		return;
	}
	sched_start(q, &env, QD_ACTIVE, keep);
}

#define QUEUE_ACTIVE_MAX 20000 /* messages in memory fed from deferred/ */

static int sched_id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void scan_dir(struct queue *q, enum queue_dir d, bool due_only, bool force)
{
	DIR *dir = file_opendir_at(q->dfd[d], ".", 0);
	if (dir == NULL) {
		log_warning("cannot scan %s/: %s", queue_dir_name(d), strerror(errno));
		return;
	}
	/* collect first: loading renames entries of this very directory */
	size_t n = 0, cap = 0;
	char (*ids)[QFILE_ID_LEN + 1] = NULL;
	time_t now = time(NULL);
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (due_only && !force) {
			struct stat st;
			if (fstatat(q->dfd[d], e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    st.st_mtime > now)
				continue;
		}
		if (!qfile_id_valid(e->d_name)) {
			log_warning("unexpected file %s/%s left alone", queue_dir_name(d), e->d_name);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			ids = xreallocarray(ids, cap, sizeof(*ids));
		}
		memcpy(ids[n++], e->d_name, QFILE_ID_LEN + 1);
	}
	closedir(dir);
	/* oldest first (IDs sort by arrival); the deferred queue feeds the
	 * active one only up to QUEUE_ACTIVE_MAX messages in memory, as
	 * Postfix's qmgr_message_active_limit: the rest wait for a later scan */
	if (n > 1)
		qsort(ids, n, sizeof(*ids), sched_id_cmp);
	for (size_t i = 0; i < n; i++) {
		if (d != QD_ACTIVE && S(q)->msgs.n >= QUEUE_ACTIVE_MAX)
			break;
		sched_load(q, d, ids[i]);
	}
	free(ids);
}

void queue_sched_scan_active(struct queue *q)
{
	scan_dir(q, QD_ACTIVE, false, false);
	scan_dir(q, QD_DEFERRED, true, false);
}

void queue_sched_scan_deferred(struct queue *q, bool force)
{
	scan_dir(q, QD_DEFERRED, true, force);
}

static void sched_on_scan(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	queue_sched_scan_deferred(q, false);
	sched_arm_scan(q);
}

/* ---- control operations ---- */

static enum queue_dir find_dir(struct queue *q, const char *qid)
{
	static const enum queue_dir dirs[] = { QD_ACTIVE, QD_DEFERRED, QD_HOLD };
	struct stat st;
	for (size_t i = 0; i < ARRAY_LEN(dirs); i++)
		if (fstatat(q->dfd[dirs[i]], qid, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return dirs[i];
	return QD_COUNT;
}

int queue_sched_hold(struct queue *q, const char *qid, const char **error_r)
{
	struct queue_msg *m = queue_map_get(&S(q)->msgs, qfile_id_value(qid));
	if (m != NULL) {
		m->hold_req = true; /* when its running deliveries end */
		return 0;
	}
	enum queue_dir d = find_dir(q, qid);
	if (d == QD_COUNT) {
		*error_r = "no such message";
		return -1;
	}
	if (d != QD_HOLD && queue_store_move(q, d, QD_HOLD, qid) < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	log_info("%s: placed on hold", qid);
	return 0;
}

int queue_sched_release(struct queue *q, const char *qid, const char **error_r)
{
	struct stat st;
	if (fstatat(q->dfd[QD_HOLD], qid, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		*error_r = "no such message on hold";
		return -1;
	}
	if (queue_store_move(q, QD_HOLD, QD_DEFERRED, qid) < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	set_next_attempt(q, QD_DEFERRED, qid, time(NULL));
	log_info("%s: released from hold", qid);
	sched_load(q, QD_DEFERRED, qid);
	return 0;
}

int queue_sched_requeue(struct queue *q, const char *qid, const char **error_r)
{
	if (queue_map_get(&S(q)->msgs, qfile_id_value(qid)) != NULL)
		return 0; /* already being delivered */
	enum queue_dir d = find_dir(q, qid);
	if (d == QD_COUNT) {
		*error_r = "no such message";
		return -1;
	}
	log_info("%s: requeued", qid);
	sched_load(q, d, qid);
	return 0;
}

int queue_sched_delete(struct queue *q, const char *qid, const char **error_r)
{
	struct queue_msg *m = queue_map_get(&S(q)->msgs, qfile_id_value(qid));
	if (m != NULL) {
		m->delete_req = true;
		sched_maybe_finish(q, m);
		return 0;
	}
	enum queue_dir d = find_dir(q, qid);
	if (d == QD_COUNT) {
		*error_r = "no such message";
		return -1;
	}
	queue_store_remove(q, d, qid);
	return 0;
}
