/*
 * milter_client.h - one non-blocking connection to one milter, on a libevent
 * event_base. Used by milter_chain.c; smtpd uses the chain, not this.
 *
 * Life: milter_client_new -> milter_client_open (connect + option
 * negotiation, reported through the callback; or an idle connection kept
 * from an earlier session, see milter_client.c) -> milter_client_event per
 * stage (each reported through the callback exactly once) ->
 * milter_client_quit (QUIT, or QUIT_NC keeping the connection) ->
 * milter_client_free.
 *
 * Every failure of the milter (refused or timed-out connection, hang past
 * the stage's timeout, connection closed mid-reply, zero-length, oversized
 * or unknown packet, a reply illegal at the stage, data sent while nothing
 * was asked) makes the client "failed": the connection is closed and the
 * pending request (or the next one, when the failure happened between
 * requests) completes with result->fault set to one line saying what the
 * milter did. A failed client completes every later request the same way
 * (fault set) without I/O. The client never logs: its owner writes the one
 * log line.
 *
 * Timeouts: connect_timeout for connect + OPTNEG; command_timeout for
 * CONNECT HELO MAIL RCPT DATA UNKNOWN; content_timeout for HEADER EOH BODY
 * END-OF-MESSAGE. A 'p' (progress) reply re-arms the timeout.
 */
#ifndef POSTERN_MILTER_CLIENT_H
#define POSTERN_MILTER_CLIENT_H

#include <event2/event.h>

#include "mta/milter/milter_conf.h"
#include "mta/milter/milter_proto.h"

/* One modification received at END-OF-MESSAGE, in the milter's own form
 * (values as sent by the filter; milter_msg converts them). */
struct milter_mod {
	enum milter_reply_type type; /* MILTER_R_ADDHEADER ... MILTER_R_REPLBODY */
	uint32_t index;              /* insheader / chgheader index */
	char *name;                  /* header name, or NULL */
	char *value;                 /* header value as sent (CRLF kept), or NULL */
	size_t value_len;            /* bytes in value */
	char *addr;                  /* address as sent ("<a@b>"), or NULL */
	char *args;                  /* ESMTP arguments, or NULL when absent */
	struct buf body;             /* replbody: consecutive 'b' chunks joined */
};

/* Free the strings of n mods and the array; *mods becomes NULL. */
void milter_mods_free(struct milter_mod **mods, size_t n);

/* What one request ended with. Owned by the client; valid during the
 * callback only (copy what you keep). */
struct milter_result {
	enum milter_reply_type type; /* final reply; CONTINUE when none was expected */
	const char *text;            /* REPLYCODE: normalised reply text; else NULL */
	const char *quarantine;      /* reason of a 'q' seen during this request, or NULL */
	struct milter_mod *mods;     /* END-OF-MESSAGE edits in arrival order */
	size_t n_mods;               /* entries in mods */
	const char *fault;           /* non-NULL: the milter failed; what it did */
	bool fault_config;           /* the fault was a malformed reply text or edit
				      * request (Postfix: configuration problem) */
};

struct milter_client;

/* Called once per open/event request, from the event loop (never from inside
 * milter_client_open/_event). The callee may free the client. */
typedef void milter_client_fn(struct milter_client *c, const struct milter_result *r,
			      void *ctx);

/* A client for endpoint ep (copied). max_body bounds a replacement body
 * (REPLBODY chunks joined): more is a fault. Does no I/O yet. */
struct milter_client *milter_client_new(struct event_base *base, const struct milter_endpoint *ep,
					size_t max_body, milter_client_fn *cb, void *ctx);
/* Close the connection, cancel any pending request without calling back,
 * free; *c becomes NULL. Takes NULL. */
void milter_client_free(struct milter_client **c);

/* Connect and negotiate (version from ep->protocol); calls back with
 * CONTINUE when ready or with a fault. */
void milter_client_open(struct milter_client *c);

/* Send packets (the macro 'D' packet and the event packet, already encoded)
 * for stage; wait for the reply unless the filter negotiated no reply for the
 * stage (SMFIP_NR_*). Calls back once. Only one request at a time (a second
 * one while one is pending is a caller bug: CHECK). */
void milter_client_event(struct milter_client *c, enum milter_stage stage,
			 const struct buf *packets);

/* Send packets that are never answered (ABORT, QUIT); no callback. A failed
 * client ignores them. */
void milter_client_send_only(struct milter_client *c, const struct buf *packets);

/* Say QUIT (best effort, never blocks) and close the connection. The client
 * stays usable only for milter_client_free. */
void milter_client_quit(struct milter_client *c);

/* Close every idle connection kept for reuse (QUIT_NC, milter_client.c)
 * and forget which filters refused it; call before freeing the event
 * base. */
void milter_client_idle_clear(void);

/* Negotiated options (valid after a successful open). */
const struct milter_neg *milter_client_neg(const struct milter_client *c);
/* The endpoint this client serves. */
const struct milter_endpoint *milter_client_endpoint(const struct milter_client *c);
/* True once the milter failed. */
bool milter_client_failed(const struct milter_client *c);
/* True when the filter will answer this stage (not NR_* negotiated). */
bool milter_client_wants_reply(const struct milter_client *c, enum milter_stage stage);

#endif
