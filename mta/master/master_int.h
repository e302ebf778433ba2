/*
 * master_int.h - state shared by the files of the master program only
 * (master.c: set-up, signals, loop; master_child.c: children;
 * master_deliver.c: local delivery runs). Not a public interface.
 */
#ifndef POSTERN_MASTER_INT_H
#define POSTERN_MASTER_INT_H

#include <sys/types.h>
#include <time.h>
#include <event2/event.h>

#include "lib/cfg.h"
#include "mta/ipc/ipc_chan.h"

enum master_child_kind {
	MASTER_CHILD_QUEUE, /* postern-queue */
	MASTER_CHILD_SMTPD, /* postern-smtpd for one master.cf service */
};

struct master_child {
	enum master_child_kind kind; /* what runs there */
	size_t svc;                  /* service index (smtpd only) */
	pid_t pid;                   /* 0 when not running */
	struct ipc_chan *chan;       /* our end of its fd 3 */
	time_t started;              /* for restart throttling */
	bool draining;               /* told to stop; do not restart on exit */
	struct master_child *next;   /* list of all children */
};

struct master_listener {
	size_t svc; /* service index it belongs to */
	int fd;     /* listening socket */
};

struct master_delivery;
struct master_result;
struct master_ldaw;

struct master {
	struct event_base *base;       /* the only loop */
	char *confdir;                 /* -c */
	char *self_dir;                /* directory of the postern binary */
	struct cfg *cfg;               /* current main.cf */
	struct cfg_service *svcs;      /* current master.cf smtpd services */
	size_t nsvc;
	struct master_listener *ls;    /* bound sockets */
	size_t nls;
	struct master_child *children; /* every child we started and still track */
	struct master_child *queue;    /* the running queue child, or NULL */
	struct master_delivery *deliveries; /* running local deliveries */
	struct master_result *orphans; /* results that found no queue to take them */
	struct master_ldaw *ldaws;     /* postern-lda workers (master_ldaw.c) */
	size_t submit_svc;             /* index of the "submit" service in svcs */
	bool root;                     /* started as root: children drop to mail_owner */
	uid_t owner_uid;               /* mail_owner (or our own uid) */
	gid_t owner_gid;
	bool stopping;                 /* SIGTERM seen */
	struct event *restart_timer;   /* pending throttled restarts */
	struct event *stop_timer;      /* hard deadline while stopping */
};

/* master_child.c */
/* Start (or restart) the queue, then every smtpd. Returns 0 or -1 (logged). */
int master_child_start_all(struct master *m);
/* Start the smtpd of service svc, connected to the running queue. */
int master_child_start_smtpd(struct master *m, size_t svc);
/* A child exited: restart or forget it. Returns true when pid was a child. */
bool master_child_reaped(struct master *m, pid_t pid, int status);
/* Send sig to every child (of the kind, or all when kind < 0). */
void master_child_signal(struct master *m, int kind, int sig);
/* Number of children still running (of the kind, or all when kind < 0). */
size_t master_child_count(const struct master *m, int kind);
/* In a forked child: empty signal mask, SIGPIPE default, then (only when
 * master runs as root) uid and gid with gid as the only group; _exit(75)
 * with a log line when the switch fails or could be undone. */
void master_child_become(const struct master *m, uid_t uid, gid_t gid);
/* Restart children whose throttle delay passed. */
void master_child_restart_due(struct master *m);

/* master_deliver.c */
/* Handle IPC_M_DELIVER from the queue. */
void master_deliver_request(struct master *m, struct ipc_msg *msg);
/* A child exited: if it was a delivery, finish it. True when it was. */
bool master_deliver_reaped(struct master *m, pid_t pid, int status);
/* Kill every running delivery (stop). */
void master_deliver_kill_all(struct master *m);
size_t master_deliver_count(const struct master *m);
/* Hand results kept while no queue ran to the queue just started. */
void master_deliver_forward_orphans(struct master *m);
/* Free every kept result (at exit). */
void master_deliver_free_orphans(struct master *m);
/* Send IPC_M_DELIVERED for reqid to the queue (kept for a restarted queue
 * when none runs). text is a printable line. */
void master_deliver_reply(struct master *m, uint32_t reqid, int64_t status, const char *text);
/* While stopping: leave the loop once no child, delivery or worker is left. */
void master_deliver_maybe_exit(struct master *m);

/* master_submit.c */
/* Bind $queue_directory/public/submit and append the "submit" smtpd
 * service (svcs[submit_svc]) with that socket as its only listener.
 * Returns 0 or -1 with *error_r (owned). */
int master_submit_listen(struct master *m, const char **error_r);

/* master_ldaw.c: long-lived postern-lda workers per uid/gid */
/* Hand an IPC_MD_LDA delivery (args as requested, args[0] ignored) to an
 * idle worker of uid/gid, starting one when none is idle. Takes msg_fd
 * (closed on every path). Returns 0 (IPC_M_DELIVERED follows, always), or
 * -1 with *why_r when nothing was started (the caller answers). */
int master_ldaw_submit(struct master *m, uint32_t reqid, uid_t uid, gid_t gid, const char *cwd,
		       char **args, size_t argc, int msg_fd, const char **why_r);
/* A child exited: if it was a worker, forget it (answering its request
 * when it was busy). True when it was. */
bool master_ldaw_reaped(struct master *m, pid_t pid, int status);
/* Workers alive (busy ones only when busy_only). */
size_t master_ldaw_count(const struct master *m, bool busy_only);
/* Close idle workers and retire busy ones after their answer; with
 * kill_busy, kill busy ones now (their deliveries are deferred). */
void master_ldaw_stop(struct master *m, bool kill_busy);

#endif
