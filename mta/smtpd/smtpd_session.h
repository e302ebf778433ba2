/*
 * smtpd_session.h - one SMTP session on the event loop, and the process-
 * wide state the sessions share (struct smtpd_server).
 *
 * A session owns its bufferevent, its transaction and its timer. Replies
 * leave in command order because commands are executed one at a time: a
 * command that waits for the queue (DATA, BDAT, end of data) stops input
 * processing until the queue answers. Queue replies find their session by
 * ID (smtpd_server_find), never by a stored pointer.
 *
 * Tests: tests/integration/test_smtpd_*.py.
 */
#ifndef POSTERN_SMTPD_SESSION_H
#define POSTERN_SMTPD_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/addr.h"
#include "mta/ipc/ipc_chan.h"
#include "mta/smtpd/smtpd_cmd.h"
#include "mta/smtpd/smtpd_conf.h"
#include "mta/smtpd/smtpd_data.h"

enum smtpd_state {
	SMTPD_ST_DNS,         /* naming the client; no connection set up yet */
	SMTPD_ST_CMD,         /* reading commands */
	SMTPD_ST_WAIT_OPEN,   /* DATA/BDAT sent IPC_Q_OPEN, waiting for the fd */
	SMTPD_ST_DATA,        /* reading DATA content */
	SMTPD_ST_BDAT,        /* reading a BDAT chunk into the message */
	SMTPD_ST_BDAT_SKIP,   /* reading and discarding a refused BDAT chunk */
	SMTPD_ST_WAIT_COMMIT, /* content complete, waiting for IPC_Q_COMMITTED */
	SMTPD_ST_TLS,         /* TLS handshake in progress */
	SMTPD_ST_MILTER,      /* waiting for the milter chain (smtpd_milter.c) */
	SMTPD_ST_CLOSING,     /* last reply being flushed, then free */
};

/* What the pending milter call of a session finishes. */
enum smtpd_milter_wait {
	SMTPD_MW_NONE,    /* no call pending */
	SMTPD_MW_CONNECT, /* greeting waits */
	SMTPD_MW_HELO,    /* HELO/EHLO reply waits */
	SMTPD_MW_MAIL,    /* MAIL reply waits */
	SMTPD_MW_RCPT,    /* RCPT reply waits */
	SMTPD_MW_DATA,    /* 354 (or the BDAT chunk) waits; queue file open */
	SMTPD_MW_EOM,     /* end-of-data reply and the commit wait */
	SMTPD_MW_UNKNOWN, /* the reply to an unknown command waits */
	SMTPD_MW_RCPT_REJ, /* smtpd's own RCPT refusal waits (SMFIP_RCPT_REJ milters) */
};

/* Name of a state for logs ("DATA", ...). */
const char *smtpd_state_name(enum smtpd_state st);

struct smtpd_rcpt {
	char *addr;       /* recipient as sent to the queue (owned) */
	char *orcpt;      /* DSN ORCPT "type;addr" or "" (owned) */
	unsigned notify;  /* IPC_QN_* */
};

/* Command counters for the disconnect line: ok and total per verb. */
struct smtpd_counts {
	unsigned ok[SMTPD_V__COUNT];    /* commands answered 2xx/3xx */
	unsigned total[SMTPD_V__COUNT]; /* commands received */
};

struct smtpd_server;
struct milter_chain;

struct smtpd_session {
	uint32_t id;                 /* unique in the process; IPC reqid */
	struct smtpd_session *hnext; /* hash chain in server->sessions */
	struct smtpd_server *srv;    /* the process (outlives every session) */
	struct smtpd_conf *conf;     /* configuration reference */
	struct bufferevent *bev;     /* the connection (maybe a TLS filter) */
	struct event *timer;         /* idle / per-command deadline */
	struct event *sleep_timer;   /* smtpd_error_sleep_time tarpit, made on first use */
	bool sleeping;               /* tarpit: input waits for sleep_timer */
	bool tarpitted;              /* this command already waited */
	enum smtpd_state state;      /* see enum */
	struct sockaddr_storage peer; /* client address */
	char addr[64];               /* client address text */
	unsigned port;               /* client port */
	char name[256];              /* forward-confirmed host name or "unknown" */
	char namaddr[330];           /* "name[addr]" for logs */
	int pending_fd;              /* the socket while the name is looked up */
	bool implicit_tls;           /* accepted on an implicit-TLS listener */
	bool trusted;                /* client in mynetworks */
	bool event_exempt;           /* in smtpd_client_event_limit_exceptions */
	bool bare_lf_exempt;         /* in smtpd_forbid_bare_newline_exclusions */
	bool tls;                    /* TLS is active */
	bool greeted;                /* greeting queued */
	bool esmtp;                  /* EHLO (not HELO) was used */
	bool pipelining_ok;          /* PIPELINING was announced */
	bool ext_dsn;                /* DSN was announced */
	bool ext_utf8;               /* SMTPUTF8 was announced */
	bool ext_chunking;           /* CHUNKING was announced */
	bool ill_pipelining;         /* a pipelining violation was logged */
	bool saw_bare_lf;            /* a bare LF was seen in this session */
	bool counted;                /* counted in the per-IP table */
	unsigned conn_count;         /* sessions from addr when this one began ({client_connections}) */
	bool peer_eof;               /* the client closed its sending side */
	bool skip_to_eol;            /* discarding the rest of an overlong line */
	unsigned close_polls;        /* CLOSING: output drain checks so far */
	char *helo;                  /* HELO/EHLO argument (owned, sanitised) */
	const char *last_cmd;        /* "CONNECT", "EHLO", "DATA", ... for logs */
	unsigned errors;             /* error count (smtpd_hard_error_limit) */
	unsigned junk;               /* NOOP/VRFY/RSET/ETRN seen (smtpd_junk_command_limit) */
	struct smtpd_counts counts;  /* for the disconnect line */
	/* transaction */
	bool in_mail;                /* MAIL accepted */
	char *sender;                /* MAIL FROM address ("" null), owned */
	struct smtpd_mail_params mail; /* MAIL parameters */
	struct smtpd_rcpt *rcpts;    /* accepted recipients */
	size_t n_rcpts, cap_rcpts;   /* count and capacity */
	unsigned rcpt_tries;         /* RCPT commands in this transaction */
	bool bdat_used;              /* BDAT seen in this transaction */
	bool bdat_bad;               /* the BDAT transaction failed: skip chunks */
	bool bdat_last;              /* current chunk is LAST */
	uint64_t bdat_left;          /* bytes of the current chunk still to read */
	char qid[32];                /* queue ID once opened, "" before */
	int content_fd;              /* content file, -1 when none */
	bool write_error;            /* a write to content_fd failed */
	struct buf content;          /* content waiting to be written */
	struct smtpd_data data;      /* content state machine */
	int64_t arrival_us;          /* time of DATA/first BDAT */
	struct timeval data_start;   /* for smtpd_data_min_rate */
	uint64_t data_bytes;         /* raw bytes received in DATA/BDAT */
	size_t header_len;           /* bytes of our Received header */
	char *skip_reply;            /* BDAT_SKIP: reply once the chunk is read */
	char queue_error[256];       /* IPC_Q_ERROR text that arrived mid-DATA */
	/* milters (smtpd_milter.c) */
	struct milter_chain *milters; /* the session's chain, NULL without smtpd_milters */
	enum smtpd_milter_wait mwait; /* what the pending chain call finishes */
	bool milter_tx;              /* the milters saw MAIL of this transaction */
	bool milter_ehlo;            /* the pending HELO call is for EHLO */
	bool milter_conn_refused;    /* the milters refused CONNECT (HELO still answered) */
	bool milter_map_fail;        /* smtpd_milter_maps failed: commands get 451 4.3.0 */
	struct smtpd_rcpt mrcpt;     /* the RCPT waiting for the milters (addr owned) */
	char *mrcpt_reply;           /* MW_RCPT_REJ: smtpd's refusal, sent after the verdict */
	char *hold_reason;           /* milter quarantine of this message, or NULL */
	char daemon_addr[64];        /* local address of the connection ({daemon_addr}) */
	unsigned daemon_port;        /* and port */
};

struct smtpd_server {
	struct event_base *base;      /* the one loop */
	struct smtpd_conf *conf;      /* current configuration */
	struct ipc_chan *queue;       /* channel to the queue; NULL once closed */
	struct ipc_chan *master;      /* channel to master */
	struct evconnlistener **listeners; /* one per inherited socket */
	bool *listener_tls;           /* implicit TLS per listener */
	size_t n_listeners;           /* entries */
	struct smtpd_session **sessions; /* hash of sessions by id */
	size_t n_buckets;             /* power of two */
	size_t n_sessions;            /* live sessions */
	uint32_t next_id;             /* next session id */
	struct smtpd_ipcount **ipcount; /* per-client-address session counts */
	size_t n_ipbuckets;           /* power of two */
	struct smtpd_iprate **iprate; /* per-client-address connection rates */
	size_t n_rate_buckets;        /* power of two */
	size_t n_rates;               /* entries in iprate */
	size_t rate_adds;             /* new entries since the last sweep */
	bool draining;                /* SIGTERM or queue gone: no new sessions */
	bool debug;                   /* POSTERN_SMTPD_DEBUG */
};

/* Start a session on an accepted socket (owns fd). */
void smtpd_session_start(struct smtpd_server *srv, int fd, const struct sockaddr *sa, int salen,
			 bool implicit_tls);


/* ---- shared between smtpd_session.c and smtpd_verbs.c ---- */

/* Every state change goes through here (logged with POSTERN_SMTPD_DEBUG). */
void smtpd_session_enter(struct smtpd_session *s, enum smtpd_state st);

/* Execute one command line (without line end). May change s->state. */
void smtpd_verbs_run(struct smtpd_session *s, struct str line);
/* HELO/EHLO accepted (after the milters): remember name, reply. */
void smtpd_verbs_helo_ok(struct smtpd_session *s, const char *name, bool ehlo);
/* Append an accepted recipient (rcpt owned, taken). */
void smtpd_verbs_rcpt_add(struct smtpd_session *s, char *rcpt, const char *orcpt, unsigned notify);
/* Forget the transaction (IPC_Q_ABORT when a queue file exists). */
void smtpd_session_reset(struct smtpd_session *s);
/* Stop reading; free the session once the queued output is written. */
void smtpd_session_close(struct smtpd_session *s);
/* Continue with buffered input after a wait (queue reply, TLS). */
void smtpd_session_resume(struct smtpd_session *s);
/* Reply 421 4.4.2 timeout, abandon the transaction, close. */
void smtpd_session_timeout(struct smtpd_session *s);
/* (Re)start the idle / per-command deadline (smtpd_timeout). */
void smtpd_session_arm(struct smtpd_session *s);
/* Connection set up (and the milters' CONNECT passed): TLS handshake or
 * greeting. */
void smtpd_session_greet_go(struct smtpd_session *s);
/* STARTTLS accepted: send 220 and start the handshake. */
void smtpd_session_starttls(struct smtpd_session *s);

/* Draining: close (421) every session between transactions; with force,
 * every session not waiting for the queue (its transaction is dropped). */
void smtpd_session_drain_all(struct smtpd_server *srv, bool force);

/* Session table. */
struct smtpd_session *smtpd_server_find(struct smtpd_server *srv, uint32_t id);

/* Called when the last session ended while draining. */
void smtpd_server_maybe_exit(struct smtpd_server *srv);

#endif
