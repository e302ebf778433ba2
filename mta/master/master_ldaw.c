/*
 * master_ldaw.c - long-lived postern-lda workers, one pool per uid/gid.
 *
 * Purpose: run IPC_MD_LDA deliveries without a fork of master and an exec
 *   per message. A worker (`postern-lda --worker`, delivery/lda_worker.h) is
 *   started like a one-shot delivery used to be (fork, setgroups/setgid/
 *   setuid to the recipient, nice 10, exec) and then takes one request at a
 *   time over a SEQPACKET socketpair: argv + the message descriptor in, exit
 *   status + status line back, the delivery done inside the worker. Every
 *   delivery runs as the recipient's uid, never root, and a worker only
 *   ever serves the one uid/gid it was started as.
 * Owns: the workers, their sockets, their per-request timers.
 * Never: gives a worker a request for another uid/gid than the one it runs
 *   as; trusts a worker's reply beyond its checked fields (the text is
 *   escaped before it reaches a log); loses a request: a worker that dies,
 *   answers garbage or overruns command_time_limit is killed with its
 *   process group and the delivery is answered 75 / by signal (the queue
 *   defers it).
 * Limits: MASTER_LDAW_MAX_USE requests per worker, MASTER_LDAW_IDLE
 *   seconds idle, MASTER_LDAW_IDLE_MAX idle workers in all,
 *   command_time_limit per request. Concurrency is the queue's
 *   (local_destination_concurrency_limit): at most that many busy workers.
 * Tests: tests/integration/test_e2e.py, test_queue_deliver.py (every Maildir
 *   and mbox delivery), tests/integration/test_ldaw.py (crash, time limit,
 *   reuse, uid).
 */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mta/master/master_int.h"
#include "delivery/lda_worker.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/common.h"

#define MASTER_LDAW_MAX_USE 1000 /* requests before a worker is replaced */
#define MASTER_LDAW_IDLE 60      /* seconds an idle worker is kept */
#define MASTER_LDAW_NICE 10      /* as one-shot deliveries */
#define MASTER_LDAW_IDLE_MAX 32  /* idle workers kept, all uids together */

struct master_ldaw {
	struct master_ldaw *next; /* list in struct master */
	uid_t uid;                /* it runs as */
	gid_t gid;
	pid_t pid;                /* 0 once reaped */
	int sock;                 /* our end; -1 once closed */
	struct event *ev;         /* sock readable */
	struct event *timer;      /* busy: time limit; idle: idle limit */
	bool busy;                /* a request is out */
	uint32_t reqid;           /* the queue's request ID it serves */
	unsigned uses;            /* requests sent */
	struct master *m;
};

static void master_ldaw_on_read(evutil_socket_t fd, short what, void *arg);
static void master_ldaw_on_timer(evutil_socket_t fd, short what, void *arg);

/* Close our end (the worker exits at end of input); keep the entry until
 * the process is reaped. */
static void master_ldaw_close(struct master_ldaw *w)
{
	if (w->ev) {
		event_free(w->ev);
		w->ev = NULL;
	}
	if (w->timer) {
		event_free(w->timer);
		w->timer = NULL;
	}
	if (w->sock >= 0) {
		close(w->sock);
		w->sock = -1;
	}
}

/* Forget a worker whose process was reaped. */
static void master_ldaw_unlink(struct master_ldaw *w)
{
	struct master *m = w->m;
	master_ldaw_close(w);
	for (struct master_ldaw **pp = &m->ldaws; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	free(w);
	master_deliver_maybe_exit(m);
}

/* The worker failed its request (or must be stopped): answer the queue,
 * kill it and everything it started. */
static void master_ldaw_fail(struct master_ldaw *w, int64_t status, const char *text)
{
	if (w->busy) {
		w->busy = false;
		master_deliver_reply(w->m, w->reqid, status, text);
	}
	master_ldaw_close(w);
	/* its process group: the delivery too (the entry stays until the
	 * worker is reaped, so the group ID cannot have been reused) */
	kill(-w->pid, SIGKILL);
}

static void master_ldaw_arm(struct master_ldaw *w, long long seconds)
{
	if (seconds <= 0) {
		evtimer_del(w->timer);
		return;
	}
	struct timeval tv = { (time_t)seconds, 0 };
	evtimer_add(w->timer, &tv);
}

static struct master_ldaw *master_ldaw_spawn(struct master *m, uid_t uid, gid_t gid)
{
	int sv[2];
	if (ipc_socketpair(sv) < 0)
		return NULL;
	char *prog = xasprintf("%s/postern-lda", m->cfg->daemon_directory);
	char *argv[] = { "postern-lda", LDA_WORKER_FLAG, NULL };
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	pid_t pid = fork();
	if (pid == 0) {
		/* its own process group: a time limit kills the delivery too */
		setpgid(0, 0);
		master_child_become(m, uid, gid);
		int null = open("/dev/null", O_RDWR);
		if (null < 0 || dup2(sv[1], 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(71);
		close_range(3, ~0U, 0);
		if (setpriority(PRIO_PROCESS, 0, MASTER_LDAW_NICE) < 0) {
			/* not fatal: deliver at normal priority */
		}
		if (chdir("/") < 0)
			_exit(71);
		execve(prog, argv, envp);
		_exit(71);
	}
	free(prog);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return NULL;
	}
	setpgid(pid, pid); /* either side may win the race; both ask the same */
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	struct master_ldaw *w = xcalloc(1, sizeof(*w));
	w->m = m;
	w->uid = uid;
	w->gid = gid;
	w->pid = pid;
	w->sock = sv[0];
	w->ev = event_new(m->base, w->sock, EV_READ | EV_PERSIST, master_ldaw_on_read, w);
	event_add(w->ev, NULL);
	w->timer = evtimer_new(m->base, master_ldaw_on_timer, w);
	w->next = m->ldaws;
	m->ldaws = w;
	return w;
}

int master_ldaw_submit(struct master *m, uint32_t reqid, uid_t uid, gid_t gid, const char *cwd,
		       char **args, size_t argc, int msg_fd, const char **why_r)
{
	struct master_ldaw *w = NULL;
	if (argc < 1 || argc > LDA_WORKER_ARGS_MAX) {
		close(msg_fd);
		*why_r = "malformed delivery arguments";
		return -1;
	}
	for (struct master_ldaw *c = m->ldaws; c; c = c->next)
		if (!c->busy && c->sock >= 0 && c->uid == uid && c->gid == gid) {
			w = c;
			break;
		}
	if (w == NULL) {
		/* many recipients with uids of their own: keep few idle workers */
		size_t idle = 0;
		struct master_ldaw *victim = NULL;
		for (struct master_ldaw *c = m->ldaws; c; c = c->next)
			if (!c->busy && c->sock >= 0) {
				idle++;
				victim = c; /* the list is newest first: the oldest */
			}
		if (idle >= MASTER_LDAW_IDLE_MAX)
			master_ldaw_close(victim);
	}
	if (w == NULL && (w = master_ldaw_spawn(m, uid, gid)) == NULL) {
		close(msg_fd);
		*why_r = "cannot start a delivery worker";
		return -1;
	}
	struct ipc_msg msg;
	ipc_msg_init(&msg, LDA_WORKER_REQ, reqid);
	ipc_msg_set_fd(&msg, msg_fd); /* ours now, closed by ipc_msg_free */
	ipc_put_u32(&msg, (uint32_t)argc);
	ipc_put_cstr(&msg, "postern-lda");
	for (size_t i = 1; i < argc; i++)
		ipc_put_cstr(&msg, args[i]);
	ipc_put_cstr(&msg, cwd);
	/* the worker is idle, so its socket buffer is empty: no EAGAIN */
	int rc = ipc_send(w->sock, &msg);
	int err = errno;
	ipc_msg_free(&msg);
	if (rc < 0) {
		log_warning("delivery worker %ld: cannot send a request: %s", (long)w->pid,
			    strerror(err));
		master_ldaw_fail(w, 0, "");
		*why_r = "cannot reach the delivery worker";
		return -1;
	}
	w->busy = true;
	w->reqid = reqid;
	w->uses++;
	master_ldaw_arm(w, m->cfg->command_time_limit);
	return 0;
}

static void master_ldaw_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct master_ldaw *w = arg;
	if (w->busy)
		master_ldaw_fail(w, 75, "4.3.0 command time limit exceeded");
	else
		master_ldaw_close(w); /* idle too long: it exits at end of input */
}

static void master_ldaw_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct master_ldaw *w = arg;
	struct ipc_msg msg;
	const char *err = NULL;
	int r = ipc_recv(w->sock, &msg, &err);
	if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
		ipc_msg_free(&msg);
		return;
	}
	int64_t status = 0;
	struct str text = { 0 };
	if (r <= 0 || msg.type != LDA_WORKER_DONE || !w->busy || msg.reqid != w->reqid ||
	    msg.fd >= 0 || !ipc_get_i64(&msg, &status) || !ipc_get_str(&msg, &text) ||
	    !ipc_get_end(&msg)) {
		if (r != 0 || w->busy)
			log_warning("delivery worker %ld (uid %lu): %s", (long)w->pid,
				    (unsigned long)w->uid,
				    r == 0 ? "exited during a delivery" : "malformed reply");
		ipc_msg_free(&msg);
		master_ldaw_fail(w, 75, "4.3.0 delivery worker failed");
		return;
	}
	/* first line only, printable-escaped: the worker is less trusted */
	size_t n = 0;
	while (n < text.len && text.p[n] != '\n')
		n++;
	struct buf line;
	buf_init(&line, LDA_WORKER_OUTPUT_MAX * 4 + 64);
	buf_escape(&line, text.p, n, LDA_WORKER_OUTPUT_MAX);
	w->busy = false;
	master_deliver_reply(w->m, w->reqid, status, buf_cstr(&line));
	buf_free(&line);
	ipc_msg_free(&msg);
	if (w->uses >= MASTER_LDAW_MAX_USE || w->m->stopping)
		master_ldaw_close(w);
	else
		master_ldaw_arm(w, MASTER_LDAW_IDLE);
	master_deliver_maybe_exit(w->m);
}

bool master_ldaw_reaped(struct master *m, pid_t pid, int status)
{
	for (struct master_ldaw *w = m->ldaws; w; w = w->next) {
		if (w->pid != pid)
			continue;
		w->pid = 0;
		if (w->busy) {
			/* died before answering: defer (the queue retries; the
			 * delivery ID keeps a Maildir copy from being doubled) */
			log_warning("delivery worker %ld (uid %lu) died during a delivery", (long)pid,
				    (unsigned long)w->uid);
			w->busy = false;
			master_deliver_reply(m, w->reqid,
					     WIFSIGNALED(status) ? -(int64_t)WTERMSIG(status) : 75,
					     "4.3.0 delivery worker died");
		}
		master_ldaw_unlink(w);
		return true;
	}
	return false;
}

size_t master_ldaw_count(const struct master *m, bool busy_only)
{
	size_t n = 0;
	for (const struct master_ldaw *w = m->ldaws; w; w = w->next)
		if (!busy_only || w->busy)
			n++;
	return n;
}

void master_ldaw_stop(struct master *m, bool kill_busy)
{
	for (struct master_ldaw *w = m->ldaws; w; w = w->next) {
		if (w->busy && kill_busy)
			master_ldaw_fail(w, 75, "4.3.0 mail system is stopping");
		else if (w->busy)
			w->uses = MASTER_LDAW_MAX_USE; /* closed once it answers */
		else
			master_ldaw_close(w); /* it exits at end of input */
	}
}
