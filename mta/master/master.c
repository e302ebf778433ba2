/*
 * master.c - Postern's supervising process: set-up, signals, the loop.
 *
 * Purpose: turn main.cf + master.cf into running children and keep them
 * running. Owns: the listening sockets, the pid file and its lock, the
 * children's lifecycle, reload and stop. Never: reads network input (the
 * listening sockets are only passed on); runs a delivery as root.
 * Limits: stop waits at most MASTER_STOP_GRACE seconds for children.
 * Tests: tests/integration/test_master.py, tests/integration/test_e2e.py.
 */
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mta/master/master.h"
#include "mta/master/master_int.h"
#include "mta/ipc/ipc_proto.h"
#include "lib/log.h"
#include "lib/common.h"

#define MASTER_STOP_GRACE 10 /* seconds from SIGTERM to SIGKILL of children */

static int master_ready_fd = -1;

/* Tell the waiting `postern start` how start-up went (once). */
static void master_ready(const char *text)
{
	if (master_ready_fd < 0)
		return;
	char line[512];
	int n = snprintf(line, sizeof(line), "%s\n", text);
	if (n > 0 && write(master_ready_fd, line, (size_t)n) < 0) {
		/* the starter went away; nothing to tell */
	}
	close(master_ready_fd);
	master_ready_fd = -1;
}

char *master_pid_path(const char *confdir, const char **error_r)
{
	struct cfg *cfg = cfg_load(confdir, error_r);
	if (cfg == NULL)
		return NULL;
	char *p = xasprintf("%s/pid/master.pid", cfg->queue_directory);
	cfg_free(&cfg);
	return p;
}

long master_running_pid(const char *confdir, const char **error_r)
{
	char *path = master_pid_path(confdir, error_r);
	if (path == NULL)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	if (fd < 0)
		return 0;
	long pid = 0;
	/* the lock, not the file's existence, says whether a master runs */
	if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
		char text[32] = { 0 };
		ssize_t n = read(fd, text, sizeof(text) - 1);
		if (n > 0)
			pid = strtol(text, NULL, 10);
		if (pid <= 0)
			pid = 0;
	}
	close(fd);
	return pid;
}

/* Create dir (mode) if missing; chown to the owner when we are root. */
static int master_mkdir(const struct master *m, const char *dir, mode_t mode, bool owned,
			const char **error_r)
{
	if (mkdir(dir, mode) < 0 && errno != EEXIST) {
		*error_r = xasprintf("mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	struct stat st;
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*error_r = xasprintf("%s: not a directory", dir);
		return -1;
	}
	if (m->root && owned && (st.st_uid != m->owner_uid || st.st_gid != m->owner_gid) &&
	    chown(dir, m->owner_uid, m->owner_gid) < 0) {
		*error_r = xasprintf("chown %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Take the pid file lock; fails when another master holds it. */
static int master_pid_lock(struct master *m, const char **error_r)
{
	char *dir = xasprintf("%s/pid", m->cfg->queue_directory);
	int r = master_mkdir(m, dir, 0755, false, error_r);
	free(dir);
	if (r < 0)
		return -1;
	char *path = xasprintf("%s/pid/master.pid", m->cfg->queue_directory);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		*error_r = xasprintf("open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		*error_r = xasprintf("the Postern mail system is already running (%s locked)", path);
		free(path);
		close(fd);
		return -1;
	}
	free(path);
	char text[32];
	int n = snprintf(text, sizeof(text), "%10ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n) {
		*error_r = xasprintf("write pid file: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return 0; /* fd stays open: the lock lives as long as we do */
}

/* Bind one listening socket for addr:port. */
static int master_bind(const char *host, int port, int family, const char **error_r)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int e = getaddrinfo(host, portstr, &hints, &res);
	if (e != 0) {
		*error_r = xasprintf("%s:%d: %s", host ? host : "*", port, gai_strerror(e));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		*error_r = xasprintf("bind %s port %d: %s", host ? host : "*", port, strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

static void master_add_listener(struct master *m, size_t svc, int fd)
{
	m->ls = xreallocarray(m->ls, m->nls + 1, sizeof(*m->ls));
	m->ls[m->nls].svc = svc;
	m->ls[m->nls].fd = fd;
	m->nls++;
}

/* Bind every service's sockets: its own host, or each inet_interfaces entry. */
static int master_listen_all(struct master *m, const char **error_r)
{
	for (size_t i = 0; i < m->nsvc; i++) {
		const struct cfg_service *s = &m->svcs[i];
		if (s->host != NULL) {
			int fd = master_bind(s->host, s->port, AF_UNSPEC, error_r);
			if (fd < 0)
				return -1;
			master_add_listener(m, i, fd);
			continue;
		}
		char *list = xstrdup(m->cfg->inet_interfaces);
		char *save = NULL;
		bool v4 = strcmp(m->cfg->inet_protocols, "ipv6") != 0;
		bool v6 = strcmp(m->cfg->inet_protocols, "ipv4") != 0;
		for (char *w = strtok_r(list, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
			const char *hosts[2] = { w, NULL };
			if (strcmp(w, "all") == 0) {
				hosts[0] = v4 ? "0.0.0.0" : NULL;
				hosts[1] = v6 ? "::" : NULL;
			} else if (strcmp(w, "loopback-only") == 0) {
				hosts[0] = v4 ? "127.0.0.1" : NULL;
				hosts[1] = v6 ? "::1" : NULL;
			}
			for (int k = 0; k < 2; k++) {
				if (hosts[k] == NULL)
					continue;
				int fd = master_bind(hosts[k], s->port, AF_UNSPEC, error_r);
				if (fd < 0) {
					free(list);
					return -1;
				}
				master_add_listener(m, i, fd);
			}
		}
		free(list);
	}
	return 0;
}

static void master_reap(struct master *m)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (!master_deliver_reaped(m, pid, status) && !master_child_reaped(m, pid, status))
			log_warning("unknown child %ld exited", (long)pid);
	}
	if (m->stopping) {
		/* smtpd first (sessions finish), then the queue, then we leave */
		if (master_child_count(m, MASTER_CHILD_SMTPD) == 0 && m->queue != NULL &&
		    m->queue->pid > 0 && !m->queue->draining) {
			m->queue->draining = true;
			kill(m->queue->pid, SIGTERM);
		}
		if (master_child_count(m, -1) == 0 && master_deliver_count(m) == 0)
			event_base_loopexit(m->base, NULL);
	}
}

static void master_on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	master_reap(arg);
}

static void master_on_stop_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	log_warning("children still running %d seconds after stop; killing them",
		    MASTER_STOP_GRACE);
	master_child_signal(m, -1, SIGKILL);
	master_deliver_kill_all(m);
}

static void master_on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	if (m->stopping)
		return;
	m->stopping = true;
	log_info("terminating on signal %d", (int)sig);
	master_ldaw_stop(m, false); /* idle delivery workers exit now */
	for (size_t i = 0; i < m->nls; i++)
		close(m->ls[i].fd);
	m->nls = 0;
	for (struct master_child *c = m->children; c; c = c->next)
		if (c->kind == MASTER_CHILD_SMTPD && c->pid > 0) {
			c->draining = true;
			kill(c->pid, SIGTERM);
		}
	m->stop_timer = evtimer_new(m->base, master_on_stop_deadline, m);
	struct timeval tv = { MASTER_STOP_GRACE, 0 };
	evtimer_add(m->stop_timer, &tv);
	master_reap(m);
}

/* SIGHUP: new main.cf for everyone; sessions in progress continue in the old
 * smtpd processes, which stop listening and exit when their sessions end. */
static void master_on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	const char *err = NULL;
	if (m->stopping)
		return;
	struct cfg *cfg = cfg_load(m->confdir, &err);
	if (cfg == NULL) {
		log_warning("reload failed, keeping the running configuration: %s", err);
		return;
	}
	if (*cfg->daemon_directory == '\0' && cfg_override(cfg, "daemon_directory", m->self_dir, &err) < 0)
		log_warning("daemon_directory: %s", err);
	cfg_free(&m->cfg);
	m->cfg = cfg;
	master_ldaw_stop(m, false); /* new workers see the new configuration */
	log_info("reload -- version %s, configuration %s", POSTERN_VERSION, m->confdir);
	if (m->queue && m->queue->chan) {
		struct ipc_msg msg;
		ipc_msg_init(&msg, IPC_M_RELOAD, 0);
		ipc_chan_send(m->queue->chan, &msg);
		ipc_msg_free(&msg);
	}
	/* replace every smtpd: start the new one before the old one drains */
	struct master_child *old = NULL;
	for (struct master_child *c = m->children; c; c = c->next)
		if (c->kind == MASTER_CHILD_SMTPD && c->pid > 0 && !c->draining) {
			c->draining = true;
			c->started = -1; /* marks "replace me" for the loop below */
		}
	for (size_t i = 0; i < m->nsvc; i++)
		master_child_start_smtpd(m, i);
	for (old = m->children; old; old = old->next)
		if (old->kind == MASTER_CHILD_SMTPD && old->started == -1) {
			kill(old->pid, SIGTERM);
		}
}

/* SIGUSR1: flush the deferred queue now (postern flush without a socket). */
static void master_on_sigusr1(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	if (m->queue && m->queue->chan) {
		struct ipc_msg msg;
		ipc_msg_init(&msg, IPC_M_FLUSH, 0);
		ipc_chan_send(m->queue->chan, &msg);
		ipc_msg_free(&msg);
	}
}

/* Started as root, let the children (mail_owner) append to maillog_file:
 * a file we own gets mail_owner's group and mode 0660. A file someone else
 * owns is left as the administrator set it. */
static int master_log_shared(const struct master *m, const char **error_r)
{
	const char *path = m->cfg->maillog_file;
	if (!m->root || *path == '\0' || strcmp(path, "-") == 0)
		return 0;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0) {
		*error_r = xasprintf("maillog_file %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0 &&
	    (fchown(fd, 0, m->owner_gid) < 0 || fchmod(fd, 0660) < 0))
		log_warning("maillog_file %s: cannot share with %s: %s", path, m->cfg->mail_owner,
			    strerror(errno));
	close(fd);
	return 0;
}

static int master_setup(struct master *m, const char **error_r)
{
	m->cfg = cfg_load(m->confdir, error_r);
	if (m->cfg == NULL)
		return -1;
	if (*m->cfg->daemon_directory == '\0' &&
	    cfg_override(m->cfg, "daemon_directory", m->self_dir, error_r) < 0)
		return -1;
	if (*m->cfg->command_directory == '\0' &&
	    cfg_override(m->cfg, "command_directory", m->self_dir, error_r) < 0)
		return -1;
	const char *lerr = NULL;
	if (log_open("master", m->cfg->maillog_file, &lerr) < 0) {
		*error_r = xasprintf("maillog_file %s: %s", m->cfg->maillog_file, lerr);
		return -1;
	}
	if (cfg_master_load(m->confdir, &m->svcs, &m->nsvc, error_r) < 0)
		return -1;
	m->root = geteuid() == 0;
	if (m->root) {
		struct passwd *pw = getpwnam(m->cfg->mail_owner);
		if (pw == NULL) {
			*error_r = xasprintf("mail_owner %s: no such user", m->cfg->mail_owner);
			return -1;
		}
		if (pw->pw_uid == 0) {
			*error_r = xasprintf("mail_owner %s must not be root", m->cfg->mail_owner);
			return -1;
		}
		m->owner_uid = pw->pw_uid;
		m->owner_gid = pw->pw_gid;
	} else {
		m->owner_uid = getuid();
		m->owner_gid = getgid();
	}
	if (master_log_shared(m, error_r) < 0)
		return -1;
	if (master_mkdir(m, m->cfg->queue_directory, 0755, true, error_r) < 0)
		return -1;
	if (master_pid_lock(m, error_r) < 0)
		return -1;
	if (master_listen_all(m, error_r) < 0)
		return -1;
	if (master_submit_listen(m, error_r) < 0)
		return -1;
	return 0;
}

int master_run(const char *confdir, const char *self_dir, int ready_fd)
{
	struct master m = { 0 };
	const char *err = NULL;

	master_ready_fd = ready_fd;
	m.confdir = xstrdup(confdir);
	m.self_dir = xstrdup(self_dir);
	signal(SIGPIPE, SIG_IGN);
	if (master_setup(&m, &err) < 0) {
		log_error("%s", err);
		char *line = xasprintf("error: %s", err);
		master_ready(line);
		free(line);
		return 1;
	}
	m.base = event_base_new();
	struct event *ev_chld = evsignal_new(m.base, SIGCHLD, master_on_sigchld, &m);
	struct event *ev_term = evsignal_new(m.base, SIGTERM, master_on_sigterm, &m);
	struct event *ev_int = evsignal_new(m.base, SIGINT, master_on_sigterm, &m);
	struct event *ev_hup = evsignal_new(m.base, SIGHUP, master_on_sighup, &m);
	struct event *ev_usr1 = evsignal_new(m.base, SIGUSR1, master_on_sigusr1, &m);
	event_add(ev_chld, NULL);
	event_add(ev_term, NULL);
	event_add(ev_int, NULL);
	event_add(ev_hup, NULL);
	event_add(ev_usr1, NULL);
	if (master_child_start_all(&m) < 0) {
		master_ready("error: cannot start the queue and smtpd processes (see the log)");
		master_child_signal(&m, -1, SIGKILL);
		return 1;
	}
	log_info("daemon started -- version %s, configuration %s", POSTERN_VERSION, confdir);
	master_ready("ok");
	event_base_dispatch(m.base);
	log_info("master exit");
	event_free(ev_chld);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(ev_usr1);
	if (m.stop_timer)
		event_free(m.stop_timer);
	if (m.restart_timer)
		event_free(m.restart_timer);
	master_deliver_free_orphans(&m);
	while (m.children) {
		struct master_child *c = m.children;
		m.children = c->next;
		ipc_chan_free(&c->chan);
		free(c);
	}
	event_base_free(m.base);
	cfg_master_free(&m.svcs, m.nsvc);
	cfg_free(&m.cfg);
	free(m.ls);
	free(m.confdir);
	free(m.self_dir);
	return 0;
}
