/*
 * master_child.c - starting, supervising and restarting queue and smtpd.
 *
 * Purpose: fork/exec the children with their descriptors in the places
 * ipc_proto.h fixes, as mail_owner when master is root, and restart one that
 * dies. Owns: the child records and their master channels.
 * Never: restarts a child faster than once per MASTER_RESTART_DELAY when it
 * keeps dying young; trusts a message from a child (malformed closes it).
 * Tests: tests/integration/test_master.py.
 */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mta/master/master_int.h"
#include "mta/ipc/ipc_proto.h"
#include "lib/log.h"
#include "lib/common.h"

#define MASTER_RESTART_DELAY 1 /* seconds before restarting a child that died young */
#define MASTER_YOUNG 5         /* a child younger than this at death is throttled */
#define MASTER_FD_BASE 3       /* first descriptor a child receives */

static const char *master_child_name(enum master_child_kind k)
{
	return k == MASTER_CHILD_QUEUE ? "postern-queue" : "postern-smtpd";
}

void master_child_become(const struct master *m, uid_t uid, gid_t gid)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (!m->root)
		return;
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		log_error("cannot switch to uid %lu gid %lu: %s", (unsigned long)uid,
			  (unsigned long)gid, strerror(errno));
		_exit(75);
	}
	if (setuid(0) == 0) {
		log_error("privileges were not dropped");
		_exit(75);
	}
}

/* In the forked child: put fds[i] at MASTER_FD_BASE + i, close the rest. */
static void master_child_place_fds(const int *fds, size_t n)
{
	int tmp[64];
	CHECK(n <= ARRAY_LEN(tmp));
	/* first move everything out of the way, then into place */
	for (size_t i = 0; i < n; i++) {
		tmp[i] = fcntl(fds[i], F_DUPFD, 100);
		if (tmp[i] < 0)
			_exit(71);
	}
	for (size_t i = 0; i < n; i++) {
		if (dup2(tmp[i], MASTER_FD_BASE + (int)i) < 0)
			_exit(71);
		/* dup2 clears close-on-exec on the new descriptor */
	}
	close_range(MASTER_FD_BASE + (unsigned)n, ~0U, 0);
}

static void master_child_on_close(struct ipc_chan *chan, const char *reason, void *ctx);
static void master_child_on_msg(struct ipc_chan *chan, struct ipc_msg *msg, void *ctx);

static struct master_child *master_child_new(struct master *m, enum master_child_kind kind, size_t svc)
{
	struct master_child *c = xcalloc(1, sizeof(*c));
	c->kind = kind;
	c->svc = svc;
	c->next = m->children;
	m->children = c;
	return c;
}

/* fork + exec prog with fds placed; returns pid or -1. */
static pid_t master_child_exec(struct master *m, const char *prog, char **argv, const int *fds,
			       size_t nfds, char **envp)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_warning("fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0)
		return pid;
	/* child */
	master_child_become(m, m->owner_uid, m->owner_gid);
	master_child_place_fds(fds, nfds);
	execve(prog, argv, envp);
	/* no logging here: the log descriptor may now be one of the placed
	 * ones; master logs the exit status 71 */
	_exit(71);
}

/* The environment children get: nothing inherited but what they need. */
static char **master_child_env(const char *listen_fds, bool submit)
{
	static const char *keep[] = { "TZ", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
				      "POSTERN_SMTPD_DEBUG" };
	char **env = xcalloc(ARRAY_LEN(keep) + 4, sizeof(char *));
	size_t n = 0;
	env[n++] = xstrdup("PATH=/usr/bin:/bin");
	for (size_t i = 0; i < ARRAY_LEN(keep); i++) {
		const char *v = getenv(keep[i]);
		if (v)
			env[n++] = xasprintf("%s=%s", keep[i], v);
	}
	if (submit) /* the submit service: its one socket is a unix listener */
		env[n++] = xasprintf("POSTERN_SUBMIT_FD=%d", MASTER_FD_BASE + 2);
	else if (listen_fds)
		env[n++] = xasprintf("POSTERN_LISTEN_FDS=%s", listen_fds);
	return env;
}

static void master_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static int master_child_start_queue(struct master *m)
{
	int sv[2];
	if (ipc_socketpair(sv) < 0) {
		log_warning("socketpair: %s", strerror(errno));
		return -1;
	}
	char *prog = xasprintf("%s/postern-queue", m->cfg->daemon_directory);
	char *argv[] = { "postern-queue", "-c", m->confdir, NULL };
	char **env = master_child_env(NULL, false);
	pid_t pid = master_child_exec(m, prog, argv, &sv[1], 1, env);
	master_strv_free(env);
	free(prog);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -1;
	}
	struct master_child *c = master_child_new(m, MASTER_CHILD_QUEUE, 0);
	c->pid = pid;
	c->started = time(NULL);
	c->chan = ipc_chan_new(m->base, sv[0], "queue", master_child_on_msg, master_child_on_close, m);
	m->queue = c;
	/* first thing the new queue reads: what became of its predecessor's
	 * deliveries */
	master_deliver_forward_orphans(m);
	return 0;
}

int master_child_start_smtpd(struct master *m, size_t svc)
{
	if (m->queue == NULL || m->queue->chan == NULL)
		return -1;
	int toq[2], tom[2];
	if (ipc_socketpair(toq) < 0)
		return -1;
	if (ipc_socketpair(tom) < 0) {
		close(toq[0]);
		close(toq[1]);
		return -1;
	}
	int fds[64];
	size_t n = 0;
	fds[n++] = tom[1];
	fds[n++] = toq[1];
	size_t nlisten = 0;
	for (size_t i = 0; i < m->nls && n < ARRAY_LEN(fds); i++)
		if (m->ls[i].svc == svc) {
			fds[n++] = m->ls[i].fd;
			nlisten++;
		}
	const struct cfg_service *s = &m->svcs[svc];
	size_t argc = 0;
	char **argv = xcalloc(6 + 2 * s->n_overrides + 1, sizeof(char *));
	/* the submit service shows as postern-submit in ps (same program) */
	argv[argc++] = xstrdup(svc == m->submit_svc ? "postern-submit" : "postern-smtpd");
	argv[argc++] = xstrdup("-c");
	argv[argc++] = xstrdup(m->confdir);
	argv[argc++] = xstrdup("-n");
	argv[argc++] = xstrdup(s->endpoint);
	for (size_t i = 0; i < s->n_overrides; i++) {
		argv[argc++] = xstrdup("-o");
		argv[argc++] = xasprintf("%s=%s", s->override_names[i], s->override_values[i]);
	}
	char count[16];
	snprintf(count, sizeof(count), "%zu", nlisten);
	char **env = master_child_env(count, svc == m->submit_svc && nlisten == 1);
	char *prog = xasprintf("%s/postern-smtpd", m->cfg->daemon_directory);
	pid_t pid = master_child_exec(m, prog, argv, fds, n, env);
	free(prog);
	master_strv_free(env);
	master_strv_free(argv);
	close(toq[1]);
	close(tom[1]);
	if (pid < 0) {
		close(toq[0]);
		close(tom[0]);
		return -1;
	}
	struct master_child *c = master_child_new(m, MASTER_CHILD_SMTPD, svc);
	c->pid = pid;
	c->started = time(NULL);
	char name[64];
	snprintf(name, sizeof(name), "smtpd[%ld]", (long)pid);
	c->chan = ipc_chan_new(m->base, tom[0], name, master_child_on_msg, master_child_on_close, m);
	/* hand the queue its end of the new smtpd's channel */
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_M_CLIENT, 0);
	ipc_put_cstr(&msg, name);
	ipc_msg_set_fd(&msg, toq[0]);
	if (ipc_chan_send(m->queue->chan, &msg) < 0)
		log_warning("cannot hand %s to the queue", name);
	ipc_msg_free(&msg);
	return 0;
}

int master_child_start_all(struct master *m)
{
	if (master_child_start_queue(m) < 0)
		return -1;
	for (size_t i = 0; i < m->nsvc; i++)
		if (master_child_start_smtpd(m, i) < 0)
			return -1;
	return 0;
}

static void master_child_forget(struct master *m, struct master_child *c)
{
	for (struct master_child **pp = &m->children; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	if (m->queue == c)
		m->queue = NULL;
	ipc_chan_free(&c->chan);
	free(c);
}

static void master_child_on_restart_timer(evutil_socket_t fd, short what, void *arg)
{
	master_child_restart_due(arg);
}

void master_child_restart_due(struct master *m)
{
	if (m->stopping)
		return;
	if (m->queue == NULL) {
		/* the smtpd processes lost their queue channel: replace them too */
		for (struct master_child *c = m->children; c; c = c->next)
			if (c->kind == MASTER_CHILD_SMTPD && c->pid > 0 && !c->draining) {
				c->draining = true;
				kill(c->pid, SIGTERM);
			}
		if (master_child_start_all(m) < 0)
			log_warning("restart failed; retrying");
		return;
	}
	/* restart each service that has no live, non-draining smtpd */
	for (size_t i = 0; i < m->nsvc; i++) {
		bool have = false;
		for (struct master_child *c = m->children; c; c = c->next)
			if (c->kind == MASTER_CHILD_SMTPD && c->svc == i && c->pid > 0 && !c->draining)
				have = true;
		if (!have)
			master_child_start_smtpd(m, i);
	}
}

static void master_child_schedule_restart(struct master *m, bool throttle)
{
	if (m->restart_timer == NULL)
		m->restart_timer = evtimer_new(m->base, master_child_on_restart_timer, m);
	struct timeval tv = { throttle ? MASTER_RESTART_DELAY : 0, 0 };
	evtimer_add(m->restart_timer, &tv);
}

bool master_child_reaped(struct master *m, pid_t pid, int status)
{
	struct master_child *c;
	for (c = m->children; c; c = c->next)
		if (c->pid == pid)
			break;
	if (c == NULL)
		return false;
	bool expected = c->draining || m->stopping;
	if (!expected) {
		if (WIFSIGNALED(status))
			log_warning("process %s/%s pid %ld killed by signal %d",
				    m->cfg->daemon_directory, master_child_name(c->kind), (long)pid,
				    WTERMSIG(status));
		else
			log_warning("process %s/%s pid %ld exit status %d", m->cfg->daemon_directory,
				    master_child_name(c->kind), (long)pid, WEXITSTATUS(status));
	}
	bool young = time(NULL) - c->started < MASTER_YOUNG;
	enum master_child_kind kind = c->kind;
	master_child_forget(m, c);
	if (!expected || kind == MASTER_CHILD_QUEUE) {
		if (!m->stopping)
			master_child_schedule_restart(m, young);
	}
	return true;
}

void master_child_signal(struct master *m, int kind, int sig)
{
	for (struct master_child *c = m->children; c; c = c->next)
		if (c->pid > 0 && (kind < 0 || (int)c->kind == kind))
			kill(c->pid, sig);
}

size_t master_child_count(const struct master *m, int kind)
{
	size_t n = 0;
	for (const struct master_child *c = m->children; c; c = c->next)
		if (c->pid > 0 && (kind < 0 || (int)c->kind == kind))
			n++;
	return n;
}

static void master_child_on_close(struct ipc_chan *chan, const char *reason, void *ctx)
{
	struct master *m = ctx;
	for (struct master_child *c = m->children; c; c = c->next)
		if (c->chan == chan) {
			/* the exit is noticed through SIGCHLD; a live child that
			 * sent garbage is killed so that it is restarted */
			if (strcmp(reason, "peer closed") != 0) {
				log_warning("%s: %s; restarting it", ipc_chan_name(chan), reason);
				kill(c->pid, SIGKILL);
			}
			ipc_chan_free(&c->chan);
			return;
		}
}

static void master_child_on_msg(struct ipc_chan *chan, struct ipc_msg *msg, void *ctx)
{
	struct master *m = ctx;
	if (m->queue && m->queue->chan == chan && msg->type == IPC_M_DELIVER) {
		master_deliver_request(m, msg);
		return;
	}
	log_warning("%s: unexpected message type %u; restarting it", ipc_chan_name(chan),
		    (unsigned)msg->type);
	for (struct master_child *c = m->children; c; c = c->next)
		if (c->chan == chan) {
			kill(c->pid, SIGKILL);
			ipc_chan_free(&c->chan);
			return;
		}
}
