/*
 * queue_main.c - postern-queue: the event loop and the IPC dispatch.
 *
 * Purpose: accept messages from smtpd over typed IPC (open, sender,
 * recipients, commit) and take orders from master (new smtpd channels,
 * delivery results, reload, flush).
 * Owns: the smtpd channels and their open transactions.
 * Never: trusts an smtpd: every field is checked (length, characters,
 * recipient count, that a queue ID belongs to the channel using it); a
 * violation closes that channel and discards its uncommitted files.
 * Never answers IPC_Q_COMMITTED before the commit is durable.
 * Limits: smtpd_recipient_limit (capped at QFILE_RCPT_MAX) recipients per
 * message, QUEUE_ADDR_MAX bytes per address, QUEUE_CLIENT_TXN_MAX open
 * transactions per smtpd channel.
 * Start-up: postern-queue -c CONFDIR, fd 3 = channel to master.
 * Tests: tests/integration/test_queue_accept.py (this process on its own),
 * tests/unit/queue/.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mta/queue/queue_int.h"
#include "mta/queue/queue_log.h"
#include "mta/ipc/ipc_proto.h"
#include "lib/log.h"
#include "lib/common.h"

#define QUEUE_ADDR_MAX 2048        /* longest address, orcpt or envid */
#define QUEUE_TEXT_MAX 1024        /* longest client name, helo, message-id */
#define QUEUE_CLIENT_TXN_MAX 20000 /* open transactions per smtpd channel */
#define QUEUE_MASTER_FD 3

struct queue_client {
	struct queue_client *next; /* list of channels */
	uint64_t id;               /* never reused; transactions refer to it */
	struct ipc_chan *chan;     /* the smtpd channel */
	size_t ntxn;               /* open transactions */
};

struct queue_txn {
	uint64_t client_id;  /* owner, 0 once the owner is gone */
	int content_fd;      /* our descriptor of content/QID, or -1 */
	bool have_sender;    /* IPC_Q_SENDER seen */
	bool committing;     /* handed to the store */
	uint32_t reqid;      /* of the commit, echoed in the reply */
	char *hold;          /* IPC_QC_HOLD: committed into hold/ for this reason */
	size_t rcpt_cap;     /* allocated recipients */
	struct qfile_env env; /* being built */
};

static struct queue queue_g;
static struct queue_client *clients;
static uint64_t next_client_id = 1;
static struct queue_map txns; /* queue ID value -> struct queue_txn */

static struct queue_client *client_find(uint64_t id)
{
	for (struct queue_client *c = clients; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void txn_free(struct queue_txn *t)
{
	if (t->content_fd >= 0)
		close(t->content_fd);
	qfile_env_free(&t->env);
	free(t->hold);
	free(t);
}

/* Drop an uncommitted transaction and its content file. */
static void txn_discard(struct queue *q, struct queue_txn *t)
{
	queue_map_del(&txns, qfile_id_value(t->env.qid));
	queue_store_discard(q, t->env.qid);
	struct queue_client *c = client_find(t->client_id);
	if (c)
		c->ntxn--;
	txn_free(t);
}

static void client_close(struct queue *q, struct queue_client *c, const char *why)
{
	if (why)
		log_warning("closing channel %s: %s", ipc_chan_name(c->chan), why);
	/* uncommitted transactions die with their channel; commits in flight
	 * complete (they may already be durable) */
	size_t n = 0;
	struct queue_txn **mine = xcalloc(c->ntxn + 1, sizeof(*mine));
	for (size_t i = 0; i < txns.cap && n < c->ntxn; i++) {
		struct queue_txn *t = txns.keys[i] ? txns.vals[i] : NULL;
		if (t != NULL && t->client_id == c->id)
			mine[n++] = t;
	}
	for (size_t i = 0; i < n; i++) {
		if (mine[i]->committing)
			mine[i]->client_id = 0;
		else
			txn_discard(q, mine[i]);
	}
	free(mine);
	for (struct queue_client **p = &clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	ipc_chan_free(&c->chan);
	free(c);
}

static void reply_error(struct queue_client *c, uint32_t reqid, const char *qid, const char *text)
{
	struct ipc_msg m;
	ipc_msg_init(&m, IPC_Q_ERROR, reqid);
	ipc_put_cstr(&m, qid);
	ipc_put_cstr(&m, text);
	ipc_chan_send(c->chan, &m);
	ipc_msg_free(&m);
}

/* Printable text without control characters (UTF-8 allowed). */
static bool text_ok(const char *s, size_t max, bool empty_ok)
{
	size_t n = strlen(s);
	if (n > max || (!empty_ok && n == 0))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

static void on_open(struct queue *q, struct queue_client *c, struct ipc_msg *m)
{
	if (!ipc_get_end(m)) {
		client_close(q, c, "malformed IPC_Q_OPEN");
		return;
	}
	if (c->ntxn >= QUEUE_CLIENT_TXN_MAX) {
		reply_error(c, m->reqid, "", "452 4.3.1 Insufficient system resources");
		return;
	}
	struct queue_txn *t = xcalloc(1, sizeof(*t));
	t->client_id = c->id;
	t->content_fd = queue_store_create_content(q, t->env.qid);
	if (t->content_fd < 0) {
		log_warning("cannot create a queue file: %s", strerror(errno));
		free(t);
		reply_error(c, m->reqid, "", "451 4.3.0 Error: queue file write error");
		return;
	}
	queue_map_put(&txns, qfile_id_value(t->env.qid), t);
	c->ntxn++;
	struct ipc_msg r;
	ipc_msg_init(&r, IPC_Q_OPENED, m->reqid);
	ipc_put_cstr(&r, t->env.qid);
	r.fd = t->content_fd; /* ipc_chan_send duplicates it */
	int rc = ipc_chan_send(c->chan, &r);
	r.fd = -1;
	ipc_msg_free(&r);
	if (rc < 0)
		txn_discard(q, t);
}

/* The open transaction qid of channel c, or NULL (and the channel closed). */
static struct queue_txn *txn_of(struct queue *q, struct queue_client *c, const char *qid,
				const char *what)
{
	struct queue_txn *t = qfile_id_valid(qid) ? queue_map_get(&txns, qfile_id_value(qid)) : NULL;
	if (t == NULL || t->client_id != c->id || t->committing) {
		char *why = xasprintf("%s for a queue ID this channel does not own", what);
		client_close(q, c, why);
		free(why);
		return NULL;
	}
	return t;
}

static void on_sender(struct queue *q, struct queue_client *c, struct ipc_msg *m)
{
	char *qid = NULL, *sender = NULL, *envid = NULL;
	uint32_t flags = 0;
	if (!ipc_get_cstr(m, &qid) || !ipc_get_cstr(m, &sender) || !ipc_get_u32(m, &flags) ||
	    !ipc_get_cstr(m, &envid) || !ipc_get_end(m) || !text_ok(sender, QUEUE_ADDR_MAX, true) ||
	    !text_ok(envid, QUEUE_ADDR_MAX, true)) {
		client_close(q, c, "malformed IPC_Q_SENDER");
		goto done;
	}
	struct queue_txn *t = txn_of(q, c, qid, "IPC_Q_SENDER");
	if (t == NULL)
		goto done;
	if (t->have_sender) {
		client_close(q, c, "second IPC_Q_SENDER");
		goto done;
	}
	t->have_sender = true;
	t->env.sender = sender;
	t->env.envid = envid;
	t->env.flags = flags;
	sender = envid = NULL;
done:
	free(qid);
	free(sender);
	free(envid);
}

static size_t rcpt_limit(const struct queue *q)
{
	long long l = q->cfg->smtpd_recipient_limit;
	return l > 0 && l < QFILE_RCPT_MAX ? (size_t)l : QFILE_RCPT_MAX;
}

static void on_rcpt(struct queue *q, struct queue_client *c, struct ipc_msg *m)
{
	char *qid = NULL, *rcpt = NULL, *orcpt = NULL;
	uint32_t notify = 0;
	if (!ipc_get_cstr(m, &qid) || !ipc_get_cstr(m, &rcpt) || !ipc_get_cstr(m, &orcpt) ||
	    !ipc_get_u32(m, &notify) || !ipc_get_end(m) || !text_ok(rcpt, QUEUE_ADDR_MAX, false) ||
	    !text_ok(orcpt, QUEUE_ADDR_MAX, true)) {
		client_close(q, c, "malformed IPC_Q_RCPT");
		goto done;
	}
	struct queue_txn *t = txn_of(q, c, qid, "IPC_Q_RCPT");
	if (t == NULL)
		goto done;
	if (!t->have_sender) {
		client_close(q, c, "IPC_Q_RCPT before IPC_Q_SENDER");
		goto done;
	}
	if (t->env.nrcpt >= rcpt_limit(q)) {
		client_close(q, c, "too many recipients");
		goto done;
	}
	if (t->env.nrcpt == t->rcpt_cap) {
		t->rcpt_cap = t->rcpt_cap ? t->rcpt_cap * 2 : 4;
		t->env.rcpt = xreallocarray(t->env.rcpt, t->rcpt_cap, sizeof(*t->env.rcpt));
	}
	struct qfile_rcpt *r = &t->env.rcpt[t->env.nrcpt++];
	memset(r, 0, sizeof(*r));
	r->addr = rcpt;
	r->orcpt = orcpt;
	r->notify = notify;
	r->dsn = xstrdup("");
	r->reason = xstrdup("");
	rcpt = orcpt = NULL;
done:
	free(qid);
	free(rcpt);
	free(orcpt);
}

static void on_abort(struct queue *q, struct queue_client *c, struct ipc_msg *m)
{
	char *qid = NULL;
	if (!ipc_get_cstr(m, &qid) || !ipc_get_end(m)) {
		client_close(q, c, "malformed IPC_Q_ABORT");
		free(qid);
		return;
	}
	struct queue_txn *t = txn_of(q, c, qid, "IPC_Q_ABORT");
	if (t)
		txn_discard(q, t);
	free(qid);
}

static void commit_done(struct queue *q, int err, void *ctx)
{
	struct queue_txn *t = ctx;
	struct queue_client *c = client_find(t->client_id);
	queue_map_del(&txns, qfile_id_value(t->env.qid));
	if (c)
		c->ntxn--;
	if (err != 0) {
		log_warning("%s: queue file write error: %s", t->env.qid, strerror(err));
		if (c)
			reply_error(c, t->reqid, t->env.qid, "451 4.3.0 Error: queue file write error");
		txn_free(t);
		return;
	}
	if (c) {
		struct ipc_msg m;
		ipc_msg_init(&m, IPC_Q_COMMITTED, t->reqid);
		ipc_put_cstr(&m, t->env.qid);
		ipc_chan_send(c->chan, &m);
		ipc_msg_free(&m);
	}
	struct buf line;
	buf_init(&line, 8 * QUEUE_ADDR_MAX);
	queue_log_from(&line, t->env.qid, t->env.sender, (unsigned long long)t->env.size,
		       t->env.nrcpt);
	log_info("%s", buf_cstr(&line));
	buf_free(&line);
	if (t->hold != NULL)
		/* quarantined by a milter: kept, never delivered until released */
		log_info("%s: hold: %s", t->env.qid, t->hold);
	else
		queue_sched_add(q, &t->env);
	txn_free(t);
}

static void on_commit(struct queue *q, struct queue_client *c, struct ipc_msg *m)
{
	char *qid = NULL, *name = NULL, *addr = NULL, *helo = NULL, *proto = NULL, *msgid = NULL;
	char *hold = NULL;
	uint64_t size = 0;
	int64_t arrival = 0;
	uint32_t port = 0, flags = 0;
	if (!ipc_get_cstr(m, &qid) || !ipc_get_u64(m, &size) || !ipc_get_i64(m, &arrival) ||
	    !ipc_get_cstr(m, &name) || !ipc_get_cstr(m, &addr) || !ipc_get_u32(m, &port) ||
	    !ipc_get_cstr(m, &helo) || !ipc_get_cstr(m, &proto) || !ipc_get_cstr(m, &msgid) ||
	    !ipc_get_u32(m, &flags) || !ipc_get_cstr(m, &hold) || (flags & ~(uint32_t)IPC_QC_HOLD) ||
	    !text_ok(hold, QUEUE_TEXT_MAX, true) ||
	    !ipc_get_end(m) || !text_ok(name, QUEUE_TEXT_MAX, true) ||
	    !text_ok(addr, QUEUE_TEXT_MAX, true) || !text_ok(helo, QUEUE_TEXT_MAX, true) ||
	    !text_ok(proto, 64, true) || !text_ok(msgid, QUEUE_TEXT_MAX, true) || port > 65535) {
		client_close(q, c, "malformed IPC_Q_COMMIT");
		goto done;
	}
	struct queue_txn *t = txn_of(q, c, qid, "IPC_Q_COMMIT");
	if (t == NULL)
		goto done;
	if (!t->have_sender || t->env.nrcpt == 0) {
		client_close(q, c, "IPC_Q_COMMIT without sender or recipients");
		goto done;
	}
	struct stat st;
	if (fstat(t->content_fd, &st) < 0 || (uint64_t)st.st_size != size) {
		/* the content is not what smtpd says it wrote: refuse it */
		log_warning("%s: content size %lld does not match the %llu bytes announced by %s",
			    t->env.qid, (long long)st.st_size, (unsigned long long)size,
			    ipc_chan_name(c->chan));
		char qidcopy[QFILE_ID_LEN + 1];
		memcpy(qidcopy, t->env.qid, sizeof(qidcopy));
		txn_discard(q, t); /* gone before smtpd hears of it */
		reply_error(c, m->reqid, qidcopy, "451 4.3.0 Error: queue file write error");
		goto done;
	}
	int64_t now = queue_now_us();
	t->env.size = size;
	/* smtpd's clock is ours; a value far off is replaced, not trusted */
	t->env.arrival = arrival > 0 && arrival <= now + 60000000 ? arrival : now;
	t->env.client_name = name;
	t->env.client_addr = addr;
	t->env.client_port = port;
	t->env.helo = helo;
	t->env.protocol = proto;
	t->env.msgid = msgid;
	name = addr = helo = proto = msgid = NULL;
	if (flags & IPC_QC_HOLD) {
		t->hold = hold;
		hold = NULL;
	}
	t->committing = true;
	t->reqid = m->reqid;
	int fd = t->content_fd;
	t->content_fd = -1;
	queue_store_commit(q, fd, &t->env, t->hold ? QD_HOLD : QD_ACTIVE, commit_done, t);
done:
	free(hold);
	free(qid);
	free(name);
	free(addr);
	free(helo);
	free(proto);
	free(msgid);
}

static void client_on_msg(struct ipc_chan *chan, struct ipc_msg *m, void *ctx)
{
	struct queue *q = &queue_g;
	struct queue_client *c = client_find((uint64_t)(uintptr_t)ctx);
	if (c == NULL)
		return;
	if (m->fd >= 0 && m->type != 0) {
		/* smtpd never sends a descriptor to the queue */
		client_close(q, c, "unexpected descriptor");
		return;
	}
	switch (m->type) {
	case IPC_Q_OPEN:
		on_open(q, c, m);
		break;
	case IPC_Q_SENDER:
		on_sender(q, c, m);
		break;
	case IPC_Q_RCPT:
		on_rcpt(q, c, m);
		break;
	case IPC_Q_COMMIT:
		on_commit(q, c, m);
		break;
	case IPC_Q_ABORT:
		on_abort(q, c, m);
		break;
	default: {
		char *why = xasprintf("unexpected message type %u", m->type);
		client_close(q, c, why);
		free(why);
	}
	}
}

static void client_on_close(struct ipc_chan *chan, const char *reason, void *ctx)
{
	struct queue_client *c = client_find((uint64_t)(uintptr_t)ctx);
	if (c)
		client_close(&queue_g, c, strcmp(reason, "peer closed") == 0 ? NULL : reason);
}

static void on_client(struct queue *q, struct ipc_msg *m)
{
	char *name = NULL;
	int fd = ipc_msg_take_fd(m);
	if (!ipc_get_cstr(m, &name) || !ipc_get_end(m) || fd < 0) {
		log_warning("malformed IPC_M_CLIENT from master");
		if (fd >= 0)
			close(fd);
		free(name);
		return;
	}
	struct queue_client *c = xcalloc(1, sizeof(*c));
	c->id = next_client_id++;
	c->chan = ipc_chan_new(q->base, fd, name, client_on_msg, client_on_close,
			       (void *)(uintptr_t)c->id);
	c->next = clients;
	clients = c;
	free(name);
}

static void queue_reload(struct queue *q)
{
	const char *err = NULL;
	struct cfg *cfg = cfg_load(q->confdir, &err);
	if (cfg == NULL) {
		log_warning("reload: %s; keeping the previous configuration", err);
		return;
	}
	queue_local_free(&q->local);
	cfg_free(&q->cfg);
	q->cfg = cfg;
	if (log_open("queue", q->cfg->maillog_file, &err) < 0)
		log_warning("%s", err);
	queue_tables_flush();
	q->local = queue_local_new(q->cfg, queue_tables_lookup, NULL);
	log_info("reload: configuration reloaded");
}

static void master_on_msg(struct ipc_chan *chan, struct ipc_msg *m, void *ctx)
{
	struct queue *q = ctx;
	switch (m->type) {
	case IPC_M_CLIENT:
		on_client(q, m);
		break;
	case IPC_M_DELIVERED:
		queue_sched_delivered(q, m);
		break;
	case IPC_M_RELOAD:
		queue_reload(q);
		break;
	case IPC_M_FLUSH:
		queue_sched_scan_deferred(q, true);
		break;
	default:
		log_warning("unexpected message type %u from master", m->type);
	}
}

static void master_on_close(struct ipc_chan *chan, const char *reason, void *ctx)
{
	struct queue *q = ctx;
	log_info("master channel closed (%s): exiting", reason);
	q->stopping = true;
	event_base_loopbreak(q->base);
}

#define QUEUE_DRAIN_SECONDS 10 /* wait this long for running deliveries */

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	log_warning("stopping with %zu deliveries still running; they are retried at the next start",
		    queue_sched_running(q));
	event_base_loopbreak(q->base);
}

/* SIGTERM: start no new delivery, wait briefly for the running ones (so
 * their outcome is recorded and a restart does not repeat them), exit. */
static void on_sigterm(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	if (q->stopping)
		return;
	q->stopping = true;
	if (queue_sched_running(q) == 0) {
		event_base_loopbreak(q->base);
		return;
	}
	log_info("stopping: waiting for %zu running deliveries", queue_sched_running(q));
	struct timeval tv = { QUEUE_DRAIN_SECONDS, 0 };
	event_base_once(q->base, -1, EV_TIMEOUT, on_drain_timeout, q, &tv);
}

static NORETURN void usage(void)
{
	fprintf(stderr, "usage: postern-queue -c CONFDIR   (fd 3: channel to master)\n");
	exit(64);
}

int main(int argc, char **argv)
{
	struct queue *q = &queue_g;
	const char *confdir = "/etc/postern";
	const char *err = NULL;
	int ch;
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		if (ch == 'c')
			confdir = optarg;
		else
			usage();
	}
	if (optind != argc)
		usage();
	signal(SIGPIPE, SIG_IGN);
	umask(077);
	for (int d = 0; d < QD_COUNT; d++)
		q->dfd[d] = -1;
	q->confdir = xstrdup(confdir);
	q->cfg = cfg_load(confdir, &err);
	if (q->cfg == NULL)
		log_fatal("%s", err);
	if (log_open("queue", q->cfg->maillog_file, &err) < 0)
		log_warning("%s", err);
	struct stat st;
	if (fstat(QUEUE_MASTER_FD, &st) < 0 || !S_ISSOCK(st.st_mode))
		log_fatal("fd %d is not the channel to master", QUEUE_MASTER_FD);
	if (mkdir(q->cfg->queue_directory, 0700) < 0 && errno != EEXIST)
		log_fatal("mkdir %s: %s", q->cfg->queue_directory, strerror(errno));
	if (queue_store_open_dirs(q, &err) < 0)
		log_fatal("%s", err);
	queue_store_recover(q);

	q->base = event_base_new();
	if (q->base == NULL)
		log_fatal("cannot create the event loop");
	if (queue_store_start(q, &err) < 0)
		log_fatal("%s", err);
	q->local = queue_local_new(q->cfg, queue_tables_lookup, NULL);
	queue_sched_init(q);
	if (queue_ctl_listen(q, &err) < 0)
		log_fatal("%s", err);
	q->master = ipc_chan_new(q->base, QUEUE_MASTER_FD, "master", master_on_msg, master_on_close, q);
	struct event *sigterm = evsignal_new(q->base, SIGTERM, on_sigterm, q);
	struct event *sigint = evsignal_new(q->base, SIGINT, on_sigterm, q);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);

	queue_sched_scan_active(q);
	event_base_dispatch(q->base);

	/* finish the commits already taken: their replies are sent if the
	 * channels still live, and the messages stay queued either way */
	queue_store_stop(q);
	queue_ctl_close(q);
	while (clients)
		client_close(q, clients, NULL);
	queue_map_free(&txns);
	queue_sched_free(q);
	ipc_chan_free(&q->master);
	event_free(sigterm);
	event_free(sigint);
	queue_local_free(&q->local);
	queue_tables_flush();
	for (int d = 0; d < QD_COUNT; d++)
		if (q->dfd[d] >= 0)
			close(q->dfd[d]);
	event_base_free(q->base);
	cfg_free(&q->cfg);
	free(q->confdir);
	log_info("stopped");
	return 0;
}
