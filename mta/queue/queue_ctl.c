/*
 * queue_ctl.c - the control socket: server side in postern-queue, client
 * side for the postern CLI (see queue_ctl.h).
 *
 * Purpose: let the administrator flush, delete, hold, release and requeue
 * without writing the queue from any other process.
 * Owns: the listening socket and its connections (server); one connection
 * per request (client).
 * Never: acts for a peer whose uid is neither 0 nor ours; accepts an ID
 * that is not exactly a queue ID (so no request can name another path).
 * Limits: QUEUE_CTL_CONN_MAX connections at once.
 * Tests: tests/integration/test_queue_ctl.py.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mta/queue/queue_ctl.h"
#include "mta/queue/queue_int.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/fileio.h"
#include "lib/common.h"

#define QUEUE_CTL_CONN_MAX 64

struct queue_ctl_conn {
	struct queue_ctl_conn *next;
	uint64_t id;
	struct ipc_chan *chan;
};

struct queue_ctl;
static struct queue_ctl *ctl_g; /* the one control socket of this process */

struct queue_ctl {
	int fd;                       /* listening socket */
	struct event *ev;             /* accept */
	struct queue_ctl_conn *conns; /* open connections */
	size_t nconns;
	uint64_t next_id;
	struct queue *q;
};

static struct queue_ctl_conn *conn_find(struct queue_ctl *c, uint64_t id)
{
	for (struct queue_ctl_conn *k = c->conns; k; k = k->next)
		if (k->id == id)
			return k;
	return NULL;
}

static void conn_close(struct queue_ctl *c, struct queue_ctl_conn *k)
{
	for (struct queue_ctl_conn **p = &c->conns; *p; p = &(*p)->next)
		if (*p == k) {
			*p = k->next;
			break;
		}
	c->nconns--;
	ipc_chan_free(&k->chan);
	free(k);
}

typedef int ctl_op_fn(struct queue *q, const char *qid, const char **error_r);

/* Apply op to every message of the listed directories (for ALL). */
static size_t ctl_all(struct queue *q, ctl_op_fn *op, const enum queue_dir *dirs, size_t ndirs)
{
	size_t n = 0, cap = 0, done = 0;
	char (*ids)[QFILE_ID_LEN + 1] = NULL;
	for (size_t k = 0; k < ndirs; k++) {
		DIR *d = file_opendir_at(q->dfd[dirs[k]], ".", 0);
		if (d == NULL)
			continue;
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (!qfile_id_valid(e->d_name))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				ids = xreallocarray(ids, cap, sizeof(*ids));
			}
			memcpy(ids[n++], e->d_name, QFILE_ID_LEN + 1);
		}
		closedir(d);
	}
	for (size_t i = 0; i < n; i++) {
		const char *err = NULL;
		if (op(q, ids[i], &err) == 0)
			done++;
	}
	free(ids);
	return done;
}

static int ctl_delete_logged(struct queue *q, const char *qid, const char **error_r)
{
	return queue_sched_delete(q, qid, error_r);
}

/* Carry out one request; the reply text goes to out. Returns 0 or 1. */
static int ctl_do(struct queue *q, const char *verb, const char *id, struct buf *out)
{
	static const enum queue_dir all_dirs[] = { QD_ACTIVE, QD_DEFERRED, QD_HOLD };
	static const enum queue_dir held[] = { QD_HOLD };
	static const enum queue_dir waiting[] = { QD_DEFERRED, QD_HOLD };
	static const enum queue_dir not_held[] = { QD_ACTIVE, QD_DEFERRED };
	struct {
		const char *verb;
		ctl_op_fn *op;
		const enum queue_dir *dirs;
		size_t ndirs;
		const char *done;
	} ops[] = {
		{ "delete", ctl_delete_logged, all_dirs, 3, "deleted" },
		{ "hold", queue_sched_hold, not_held, 2, "placed on hold" },
		{ "release", queue_sched_release, held, 1, "released from hold" },
		{ "requeue", queue_sched_requeue, waiting, 2, "requeued" },
	};
	if (strcmp(verb, "flush") == 0) {
		queue_sched_scan_deferred(q, true);
		buf_puts(out, "flush requested");
		return 0;
	}
	for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
		if (strcmp(verb, ops[i].verb) != 0)
			continue;
		if (strcmp(id, "ALL") == 0) {
			size_t n = ctl_all(q, ops[i].op, ops[i].dirs, ops[i].ndirs);
			buf_printf(out, "%zu message%s %s", n, n == 1 ? "" : "s", ops[i].done);
			if (strcmp(verb, "delete") == 0)
				log_info("delete ALL: %zu messages deleted", n);
			return 0;
		}
		if (!qfile_id_valid(id)) {
			buf_puts(out, "not a queue ID: ");
			buf_escape(out, id, strlen(id), 64);
			return 1;
		}
		const char *err = NULL;
		if (ops[i].op(q, id, &err) < 0) {
			buf_printf(out, "%s: %s", id, err);
			return 1;
		}
		buf_printf(out, "%s: %s", id, ops[i].done);
		return 0;
	}
	buf_puts(out, "unknown request: ");
	buf_escape(out, verb, strlen(verb), 64);
	return 1;
}

static void conn_on_msg(struct ipc_chan *chan, struct ipc_msg *m, void *ctx)
{
	struct queue_ctl *c = ctl_g;
	struct queue_ctl_conn *k = conn_find(c, (uint64_t)(uintptr_t)ctx);
	if (k == NULL)
		return;
	char *verb = NULL, *id = NULL;
	if (m->type != QUEUE_CTL_REQUEST || m->fd >= 0 || !ipc_get_cstr(m, &verb) ||
	    !ipc_get_cstr(m, &id) || !ipc_get_end(m)) {
		log_warning("malformed control request");
		free(verb);
		free(id);
		conn_close(c, k);
		return;
	}
	struct buf text;
	buf_init(&text, 4096);
	int status = ctl_do(c->q, verb, id, &text);
	struct ipc_msg r;
	ipc_msg_init(&r, QUEUE_CTL_REPLY, m->reqid);
	ipc_put_u32(&r, (uint32_t)status);
	ipc_put_cstr(&r, buf_cstr(&text));
	ipc_chan_send(k->chan, &r);
	ipc_msg_free(&r);
	buf_free(&text);
	free(verb);
	free(id);
}

static void conn_on_close(struct ipc_chan *chan, const char *reason, void *ctx)
{
	struct queue_ctl *c = ctl_g;
	struct queue_ctl_conn *k = conn_find(c, (uint64_t)(uintptr_t)ctx);
	if (k)
		conn_close(c, k);
}

static void ctl_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct queue_ctl *c = arg;
	int s = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (s < 0)
		return;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		log_warning("control connection from uid %d refused", (int)cred.uid);
		close(s);
		return;
	}
	if (c->nconns >= QUEUE_CTL_CONN_MAX) {
		close(s);
		return;
	}
	struct queue_ctl_conn *k = xcalloc(1, sizeof(*k));
	k->id = ++c->next_id;
	k->chan = ipc_chan_new(c->q->base, s, "control", conn_on_msg, conn_on_close,
			       (void *)(uintptr_t)k->id);
	k->next = c->conns;
	c->conns = k;
	c->nconns++;
}

int queue_ctl_listen(struct queue *q, const char **error_r)
{
	static char why[512];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *path = queue_ctl_path(q->cfg);
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(why, sizeof(why), "control socket path too long: %s", path);
		free(path);
		*error_r = why;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		free(path);
		*error_r = why;
		return -1;
	}
	unlinkat(q->dfd[QD_PRIVATE], QUEUE_CTL_NAME, 0); /* a stale socket */
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc < 0 || listen(fd, 16) < 0) {
		snprintf(why, sizeof(why), "bind %s: %s", path, strerror(errno));
		close(fd);
		free(path);
		*error_r = why;
		return -1;
	}
	fchmodat(q->dfd[QD_PRIVATE], QUEUE_CTL_NAME, 0600, 0);
	free(path);
	struct queue_ctl *c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->q = q;
	c->ev = event_new(q->base, fd, EV_READ | EV_PERSIST, ctl_on_accept, c);
	event_add(c->ev, NULL);
	q->ctl = c;
	ctl_g = c;
	return 0;
}

void queue_ctl_close(struct queue *q)
{
	struct queue_ctl *c = q->ctl;
	if (c == NULL)
		return;
	while (c->conns)
		conn_close(c, c->conns);
	event_free(c->ev);
	close(c->fd);
	unlinkat(q->dfd[QD_PRIVATE], QUEUE_CTL_NAME, 0);
	free(c);
	q->ctl = NULL;
	ctl_g = NULL;
}

