/*
 * master_deliver.c - running postern-lda (or an alias |command) for the queue.
 *
 * Purpose: the one privileged step of local delivery: fork, switch to the
 * recipient's uid/gid, exec, and report the exit status and the first line of
 * output. IPC_MD_LDA requests go to a long-lived postern-lda worker of that
 * uid/gid (master_ldaw.c); IPC_MD_PIPE commands are forked here, one each.
 * Owns: the running commands and their output pipes, the results kept for
 * a restarted queue.
 * Never: runs a delivery as uid 0; runs any program but postern-lda from
 * daemon_directory or /bin/sh -c for IPC_MD_PIPE; trusts the request beyond
 * what it checks here (the queue is less trusted than master).
 * Limits: command_time_limit per delivery; 512 bytes of output kept.
 * Tests: tests/integration/test_e2e.py (deliveries), test_master.py.
 */
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mta/master/master_int.h"
#include "mta/ipc/ipc_proto.h"
#include "lib/log.h"
#include "lib/common.h"

#define DELIVER_OUTPUT_MAX 512
#define MASTER_DELIVER_NICE 10 /* priority of delivery processes */
#define DELIVER_ARGS_MAX 64

struct master_delivery {
	struct master_delivery *next; /* list in struct master */
	uint32_t reqid;               /* the queue's request ID */
	pid_t pid;                    /* child, 0 once reaped */
	int status;                   /* waitpid status once reaped */
	int out_fd;                   /* read end of the child's stdout+stderr, -1 at EOF */
	struct event *out_ev;         /* readable */
	struct event *timer;          /* command_time_limit */
	struct buf out;               /* first DELIVER_OUTPUT_MAX bytes */
	bool timed_out;               /* killed by the time limit */
	struct master *m;
};

/* A result that arrived while no queue ran. The queue recorded an ATTEMPT
 * before asking, and its successor waits for the result of that request
 * ID before delivering again: dropping it would deliver twice. */
struct master_result {
	struct master_result *next; /* FIFO */
	uint32_t reqid;             /* the earlier queue's request ID */
	int64_t status;             /* as in IPC_M_DELIVERED */
	char *text;
};

#define MASTER_ORPHANS_MAX 10000 /* bound on results kept for a dead queue */

static size_t master_orphan_count(const struct master *m)
{
	size_t n = 0;
	for (const struct master_result *r = m->orphans; r; r = r->next)
		n++;
	return n;
}

void master_deliver_reply(struct master *m, uint32_t reqid, int64_t status, const char *text)
{
	if (m->queue == NULL || m->queue->chan == NULL) {
		if (master_orphan_count(m) >= MASTER_ORPHANS_MAX) {
			log_warning("dropping delivery result %u: no queue process", reqid);
			return;
		}
		struct master_result *r = xcalloc(1, sizeof(*r)), **pp = &m->orphans;
		r->reqid = reqid;
		r->status = status;
		r->text = xstrdup(text);
		while (*pp)
			pp = &(*pp)->next;
		*pp = r;
		return;
	}
	struct ipc_msg msg;
	ipc_msg_init(&msg, IPC_M_DELIVERED, reqid);
	ipc_put_i64(&msg, status);
	ipc_put_cstr(&msg, text);
	ipc_chan_send(m->queue->chan, &msg);
	ipc_msg_free(&msg);
}

static void master_deliver_finish(struct master_delivery *d)
{
	struct master *m = d->m;
	if (d->pid != 0 || d->out_fd >= 0)
		return; /* wait for both the exit and the end of output */
	int64_t status;
	struct buf line;
	buf_init(&line, DELIVER_OUTPUT_MAX * 4 + 64);
	/* first line of output, printable-escaped */
	size_t n = 0;
	while (n < d->out.len && d->out.data[n] != '\n')
		n++;
	if (d->timed_out) {
		status = 75;
		buf_puts(&line, "4.3.0 command time limit exceeded");
	} else if (WIFSIGNALED(d->status)) {
		status = -(int64_t)WTERMSIG(d->status);
		buf_escape(&line, d->out.data, n, DELIVER_OUTPUT_MAX);
	} else {
		status = WEXITSTATUS(d->status);
		buf_escape(&line, d->out.data, n, DELIVER_OUTPUT_MAX);
	}
	master_deliver_reply(m, d->reqid, status, buf_cstr(&line));
	buf_free(&line);
	for (struct master_delivery **pp = &m->deliveries; *pp; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	if (d->timer)
		event_free(d->timer);
	buf_free(&d->out);
	free(d);
	master_deliver_maybe_exit(m);
}

void master_deliver_maybe_exit(struct master *m)
{
	if (m->stopping && master_child_count(m, -1) == 0 && m->deliveries == NULL &&
	    m->ldaws == NULL)
		event_base_loopexit(m->base, NULL);
}

static void master_deliver_on_output(evutil_socket_t fd, short what, void *arg)
{
	struct master_delivery *d = arg;
	char tmp[4096];
	ssize_t r = read(d->out_fd, tmp, sizeof(tmp));
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r > 0) {
		size_t room = DELIVER_OUTPUT_MAX - d->out.len;
		buf_append(&d->out, tmp, (size_t)r < room ? (size_t)r : room);
		return;
	}
	event_free(d->out_ev);
	d->out_ev = NULL;
	close(d->out_fd);
	d->out_fd = -1;
	master_deliver_finish(d);
}

static void master_deliver_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct master_delivery *d = arg;
	if (d->pid > 0) {
		d->timed_out = true;
		kill(d->pid, SIGKILL);
	}
}

static void master_deliver_free_result(struct master_result *r)
{
	free(r->text);
	free(r);
}

void master_deliver_free_orphans(struct master *m)
{
	while (m->orphans) {
		struct master_result *r = m->orphans;
		m->orphans = r->next;
		master_deliver_free_result(r);
	}
}

void master_deliver_forward_orphans(struct master *m)
{
	while (m->orphans && m->queue && m->queue->chan) {
		struct master_result *r = m->orphans;
		m->orphans = r->next;
		master_deliver_reply(m, r->reqid, r->status, r->text);
		master_deliver_free_result(r);
	}
}

bool master_deliver_reaped(struct master *m, pid_t pid, int status)
{
	if (master_ldaw_reaped(m, pid, status))
		return true;
	for (struct master_delivery *d = m->deliveries; d; d = d->next)
		if (d->pid == pid) {
			d->pid = 0;
			d->status = status;
			master_deliver_finish(d);
			return true;
		}
	return false;
}

void master_deliver_kill_all(struct master *m)
{
	for (struct master_delivery *d = m->deliveries; d; d = d->next)
		if (d->pid > 0)
			kill(d->pid, SIGKILL);
	master_ldaw_stop(m, true);
}

size_t master_deliver_count(const struct master *m)
{
	size_t n = 0;
	for (const struct master_delivery *d = m->deliveries; d; d = d->next)
		n++;
	return n + master_ldaw_count(m, false);
}

void master_deliver_request(struct master *m, struct ipc_msg *msg)
{
	uint32_t kind = 0, uid = 0, gid = 0, argc = 0, envc = 0;
	char *cwd = NULL;
	char *args[DELIVER_ARGS_MAX] = { 0 }; /* as requested; args[0] ignored */
	char *envp[DELIVER_ARGS_MAX + 1] = { 0 };
	const char *exec_argv[DELIVER_ARGS_MAX + 1] = { 0 };
	char *prog = NULL;
	const char *why = NULL;

	if (!ipc_get_u32(msg, &kind) || !ipc_get_u32(msg, &uid) || !ipc_get_u32(msg, &gid) ||
	    !ipc_get_cstr(msg, &cwd) || !ipc_get_u32(msg, &argc) || argc > DELIVER_ARGS_MAX ||
	    argc < 1) {
		why = "malformed delivery request";
		goto out;
	}
	for (size_t i = 0; i < argc; i++)
		if (!ipc_get_cstr(msg, &args[i])) {
			why = "malformed delivery arguments";
			goto out;
		}
	if (!ipc_get_u32(msg, &envc) || envc > DELIVER_ARGS_MAX) {
		why = "malformed delivery environment";
		goto out;
	}
	for (size_t i = 0; i < envc; i++)
		if (!ipc_get_cstr(msg, &envp[i]) || strchr(envp[i], '=') == NULL) {
			why = "malformed delivery environment";
			goto out;
		}
	if (!ipc_get_end(msg) || msg->fd < 0) {
		why = "malformed delivery request";
		goto out;
	}
	if (m->root && (uid == 0 || gid == 0)) {
		why = "refusing to deliver as root";
		goto out;
	}
	if (kind == IPC_MD_LDA) {
		/* a long-lived postern-lda worker of that uid/gid runs it
		 * (master_ldaw.c); why is set when it could not */
		master_ldaw_submit(m, msg->reqid, uid, gid, cwd, args, argc, ipc_msg_take_fd(msg), &why);
		goto out;
	}
	if (kind == IPC_MD_PIPE && argc == 2) {
		prog = xstrdup("/bin/sh");
		exec_argv[0] = "sh";
		exec_argv[1] = "-c";
		exec_argv[2] = args[1];
	} else {
		why = "unknown delivery kind";
		goto out;
	}
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		why = "cannot create a pipe";
		goto out;
	}
	pid_t pid = fork();
	if (pid == 0) {
		master_child_become(m, uid, gid);
		if (dup2(msg->fd, 0) < 0 || dup2(pipefd[1], 1) < 0 || dup2(pipefd[1], 2) < 0)
			_exit(71);
		close_range(3, ~0U, 0);
		/* a waiting SMTP client comes before a mailbox write: deliveries
		 * yield the CPU to smtpd and the queue under load */
		if (setpriority(PRIO_PROCESS, 0, MASTER_DELIVER_NICE) < 0) {
			/* not fatal: deliver at normal priority */
		}
		if (*cwd && chdir(cwd) < 0 && chdir("/") < 0)
			_exit(71);
		execve(prog, (char **)exec_argv, envp);
		_exit(71);
	}
	close(pipefd[1]);
	if (pid < 0) {
		close(pipefd[0]);
		why = "cannot fork";
		goto out;
	}
	struct master_delivery *d = xcalloc(1, sizeof(*d));
	d->m = m;
	d->reqid = msg->reqid;
	d->pid = pid;
	d->out_fd = pipefd[0];
	fcntl(d->out_fd, F_SETFL, O_NONBLOCK);
	buf_init(&d->out, DELIVER_OUTPUT_MAX);
	d->out_ev = event_new(m->base, d->out_fd, EV_READ | EV_PERSIST, master_deliver_on_output, d);
	event_add(d->out_ev, NULL);
	if (m->cfg->command_time_limit > 0) {
		d->timer = evtimer_new(m->base, master_deliver_on_timeout, d);
		struct timeval tv = { (time_t)m->cfg->command_time_limit, 0 };
		evtimer_add(d->timer, &tv);
	}
	d->next = m->deliveries;
	m->deliveries = d;
out:
	if (why != NULL) {
		log_warning("queue: %s", why);
		master_deliver_reply(m, msg->reqid, 75, why);
	}
	free(prog);
	free(cwd);
	for (size_t i = 0; i < ARRAY_LEN(args); i++)
		free(args[i]);
	for (size_t i = 0; i < ARRAY_LEN(envp); i++)
		free(envp[i]);
}
