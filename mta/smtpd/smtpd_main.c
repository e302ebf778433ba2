/*
 * smtpd_main.c - postern-smtpd: start-up, listeners, signals.
 *
 * Purpose: the process master runs per master.cf smtpd service:
 *   postern-smtpd -c CONFDIR -n SERVICE [-o name=value ...]
 * with fd 3 = channel to master, fd 4 = channel to the queue, fds 5.. =
 * listening sockets (env POSTERN_LISTEN_FDS, POSTERN_TLS_WRAPPER lists the
 * indexes that use implicit TLS). One event loop holds every session.
 * Owns: the event base, the listeners, the channels, struct smtpd_server.
 * Never: opens queue files; runs as root (master drops privileges first);
 * exits while a session is still answering unless master forces it.
 * Limits: see smtpd_session.c.
 * Tests: tests/integration/test_smtpd_*.py.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "mta/smtpd/smtpd_conf.h"
#include "mta/smtpd/smtpd_dns.h"
#include "mta/smtpd/smtpd_queue.h"
#include "mta/smtpd/smtpd_session.h"
#include "mta/smtpd/smtpd_submit.h"
#include "lib/log.h"
#include "mta/milter/milter_client.h"
#include "lib/common.h"

#define SMTPD_FD_MASTER 3
#define SMTPD_FD_QUEUE 4
#define SMTPD_FD_LISTEN 5

static struct smtpd_server smtpd_srv;

static void smtpd_main_usage(void)
{
	fprintf(stderr, "usage: postern-smtpd -c CONFDIR -n SERVICE [-o name=value ...]\n");
	exit(64);
}

static void smtpd_main_stop_listening(struct smtpd_server *srv)
{
	for (size_t i = 0; i < srv->n_listeners; i++)
		if (srv->listeners[i])
			evconnlistener_disable(srv->listeners[i]);
}

void smtpd_server_maybe_exit(struct smtpd_server *srv)
{
	if (srv->draining) {
		smtpd_main_stop_listening(srv);
		if (srv->n_sessions == 0)
			event_base_loopexit(srv->base, NULL);
	}
}

static void smtpd_main_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
				 int salen, void *arg)
{
	struct smtpd_server *srv = &smtpd_srv;
	bool tls = false;
	for (size_t i = 0; i < srv->n_listeners; i++)
		if (srv->listeners[i] == l)
			tls = srv->listener_tls[i];
	smtpd_session_start(srv, fd, sa, salen, tls);
}

static void smtpd_main_on_accept_error(struct evconnlistener *l, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();
	log_warning("accept: %s", evutil_socket_error_to_string(e));
}

#define SMTPD_DRAIN_GRACE 10 /* seconds a transaction may take after SIGTERM */

static void smtpd_main_on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_server *srv = arg;
	smtpd_session_drain_all(srv, true);
	smtpd_server_maybe_exit(srv);
}

static void smtpd_main_on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct smtpd_server *srv = arg;
	static struct event *deadline;
	/* stop listening; idle sessions get 421 now, transactions in progress
	 * get SMTPD_DRAIN_GRACE seconds to finish */
	srv->draining = true;
	smtpd_session_drain_all(srv, false);
	if (deadline == NULL) {
		deadline = evtimer_new(srv->base, smtpd_main_on_drain_deadline, srv);
		struct timeval tv = { SMTPD_DRAIN_GRACE, 0 };
		evtimer_add(deadline, &tv);
	}
	smtpd_server_maybe_exit(srv);
}

static void smtpd_main_master_msg(struct ipc_chan *chan, struct ipc_msg *m, void *ctx)
{
	log_warning("unexpected message type %u from master; ignored", (unsigned)m->type);
}

static void smtpd_main_master_close(struct ipc_chan *chan, const char *reason, void *ctx)
{
	struct smtpd_server *srv = ctx;
	/* master is gone: finish what we have and leave */
	ipc_chan_free(&srv->master);
	srv->draining = true;
	smtpd_server_maybe_exit(srv);
}

static bool smtpd_main_index_listed(const char *list, size_t idx)
{
	if (list == NULL)
		return false;
	const char *p = list;
	while (*p) {
		char *end;
		unsigned long v = strtoul(p, &end, 10);
		if (end != p && v == idx)
			return true;
		p = *end ? end + 1 : end;
		if (end == p && *p == '\0')
			break;
	}
	return false;
}

static bool smtpd_main_fd_ok(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

int main(int argc, char **argv)
{
	const char *confdir = NULL, *service = "smtp";
	char **overrides = xcalloc((size_t)argc, sizeof(char *));
	size_t n_over = 0;
	int c;
	while ((c = getopt(argc, argv, "c:n:o:")) != -1) {
		switch (c) {
		case 'c':
			confdir = optarg;
			break;
		case 'n':
			service = optarg;
			break;
		case 'o':
			overrides[n_over++] = optarg;
			break;
		default:
			smtpd_main_usage();
		}
	}
	if (confdir == NULL || optind != argc)
		smtpd_main_usage();
	/* the "submit" service (local submission, smtpd_submit.c) has one
	 * unix listener and logs as postern/submit */
	const char *submit_fd = getenv("POSTERN_SUBMIT_FD");
	const char *process = submit_fd != NULL ? "submit" : "smtpd";
	log_set_process(process);
	signal(SIGPIPE, SIG_IGN);
	/* one descriptor per session: take all the kernel allows us */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	const char *err = NULL;
	struct smtpd_server *srv = &smtpd_srv;
	srv->conf = smtpd_conf_load(confdir, overrides, n_over, &err);
	if (srv->conf == NULL)
		log_fatal("%s", err);
	if (log_open(process, srv->conf->cfg->maillog_file, &err) < 0)
		log_warning("%s", err);
	if (srv->conf->tls_warning)
		log_warning("%s", srv->conf->tls_warning);
	if (srv->conf->milter_error)
		log_warning("%s", srv->conf->milter_error);
	srv->debug = getenv("POSTERN_SMTPD_DEBUG") != NULL;
	srv->next_id = (uint32_t)getpid() << 12 | 1;

	struct event_config *ec = event_config_new();
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
	srv->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (srv->base == NULL)
		log_fatal("cannot create the event loop");

	smtpd_dns_init(srv->base);
	if (!smtpd_main_fd_ok(SMTPD_FD_QUEUE))
		log_fatal("no queue channel on fd %d (postern-smtpd is started by master)",
			  SMTPD_FD_QUEUE);
	if (smtpd_main_fd_ok(SMTPD_FD_MASTER))
		srv->master = ipc_chan_new(srv->base, SMTPD_FD_MASTER, "master", smtpd_main_master_msg,
					   smtpd_main_master_close, srv);
	if (submit_fd != NULL) {
		int fd = (int)strtol(submit_fd, NULL, 10);
		if (fd < SMTPD_FD_LISTEN || !smtpd_main_fd_ok(fd))
			log_fatal("POSTERN_SUBMIT_FD=%s: no such descriptor", submit_fd);
		smtpd_submit_init(srv, SMTPD_FD_QUEUE, fd);
		goto run;
	}
	smtpd_queue_init(srv, SMTPD_FD_QUEUE, NULL);

	const char *nfds = getenv("POSTERN_LISTEN_FDS");
	size_t n = nfds ? strtoul(nfds, NULL, 10) : 0;
	if (n == 0 || n > 1000)
		log_fatal("POSTERN_LISTEN_FDS must name 1..1000 listening sockets");
	const char *wrap = getenv("POSTERN_TLS_WRAPPER");
	srv->listeners = xcalloc(n, sizeof(*srv->listeners));
	srv->listener_tls = xcalloc(n, sizeof(*srv->listener_tls));
	srv->n_listeners = n;
	for (size_t i = 0; i < n; i++) {
		int fd = SMTPD_FD_LISTEN + (int)i;
		if (!smtpd_main_fd_ok(fd))
			log_fatal("listening socket fd %d missing", fd);
		evutil_make_socket_nonblocking(fd);
		evutil_make_socket_closeonexec(fd);
		srv->listener_tls[i] = smtpd_main_index_listed(wrap, i);
		if (srv->listener_tls[i] && srv->conf->tls == NULL)
			log_fatal("implicit TLS on listener %zu needs smtpd_tls_cert_file", i);
		srv->listeners[i] = evconnlistener_new(srv->base, smtpd_main_on_accept, srv,
						       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1,
						       fd);
		if (srv->listeners[i] == NULL)
			log_fatal("cannot listen on fd %d", fd);
		evconnlistener_set_error_cb(srv->listeners[i], smtpd_main_on_accept_error);
	}

run:;
	struct event *sigterm = evsignal_new(srv->base, SIGTERM, smtpd_main_on_sigterm, srv);
	struct event *sigint = evsignal_new(srv->base, SIGINT, smtpd_main_on_sigterm, srv);
	struct event *sighup = evsignal_new(srv->base, SIGHUP, smtpd_main_on_sigterm, srv);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	/* master reloads by starting a new smtpd and draining this one */
	evsignal_add(sighup, NULL);

	if (srv->debug)
		log_info("service %s: %zu listener(s), ready", service, srv->n_listeners);
	event_base_dispatch(srv->base);

	for (size_t i = 0; i < srv->n_listeners; i++)
		if (srv->listeners[i])
			evconnlistener_free(srv->listeners[i]);
	free(srv->listeners);
	free(srv->listener_tls);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	smtpd_dns_shutdown();
	ipc_chan_free(&srv->queue);
	ipc_chan_free(&srv->master);
	free(srv->sessions);
	free(srv->ipcount);
	smtpd_conf_unref(&srv->conf);
	milter_client_idle_clear(); /* milter connections kept for reuse */
	event_base_free(srv->base);
	free(overrides);
	return 0;
}
