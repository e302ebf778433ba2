/*
 * milter_chain.h - the milters of one SMTP session (or one local
 * submission), run in configuration order: the API smtpd and the local
 * submission path use.
 *
 * USAGE (one chain per session, on the session's event_base):
 *
 *   conf = milter_conf_from_cfg(cfg, cfg->smtpd_milters, NULL, &err);  (once, at start)
 *   ch = milter_chain_new(base, conf, cfg->message_size_limit, macro_fn, done_fn, ctx);
 *   milter_chain_connect(ch, "client.example", "192.0.2.1", 4567, '4');  -> done_fn
 *   milter_chain_helo(ch, "client.example");                             -> done_fn
 *   per message:
 *     milter_chain_mail(ch, "<a@example.net>", args, nargs);             -> done_fn
 *     milter_chain_rcpt(ch, "<b@example.org>", args, nargs);  (each)     -> done_fn
 *     milter_chain_rcpt_rejected(ch, rcpt, args, nargs, reply); (optional) -> done_fn
 *     milter_chain_data(ch);                                             -> done_fn
 *     milter_chain_header(ch, name, value, hidden) (each; synchronous)
 *     milter_chain_body(ch, bytes, n)               (any pieces; synchronous)
 *       or milter_chain_message(ch, whole message)  (synchronous)
 *     milter_chain_eom(ch);                                              -> done_fn
 *     milter_chain_abort(ch);   (after RSET, a failed transaction, or a new
 *                                HELO inside a transaction; synchronous)
 *   milter_chain_unknown(ch, "FOO bar");  (any time)                     -> done_fn
 *   milter_chain_free(&ch);   (sends QUIT; no callback afterwards)
 *
 * Every asynchronous call returns at once and calls done_fn exactly once,
 * later, from the event loop (never from inside the call). Only one call may
 * be pending at a time (CHECK). done_fn may call the next stage, or free the
 * chain. Freeing the chain cancels a pending call without a callback. The
 * process must ignore SIGPIPE (a milter may close at any time).
 *
 * As in Postfix, headers and body are not streamed: the chain keeps them,
 * and milter_chain_eom() runs each milter in turn over HEADER, EOH, BODY and
 * END-OF-MESSAGE, applies its edits to the kept message and envelope, and
 * hands the result to the next milter, which therefore sees the message as
 * the earlier milters left it.
 *
 * Verdicts (struct milter_verdict.type), combined over the milters:
 *   CONTINUE  go on (every milter said continue, or some accepted)
 *   ACCEPT    every milter accepted: none will be asked again for this
 *             message (at CONNECT/HELO: for the session); smtpd treats it as
 *             CONTINUE
 *   REJECT    reply with v->reply (5xx, possibly multi-line with CRLF);
 *             at CONNECT/HELO every later call returns the same verdict
 *   TEMPFAIL  reply with v->reply (4xx); same stickiness as REJECT
 *   DISCARD   say OK, then drop the message silently; every later call in
 *             this message returns DISCARD without asking the milters
 *   SHUTDOWN  reply with v->reply (421) and close the session; every later
 *             call returns SHUTDOWN
 * The first milter that does not continue decides (so any reject wins over
 * accept from an earlier milter); later milters are not asked. At RCPT a
 * reject concerns that recipient only. v->quarantine (independent of the
 * type) asks to put the message on hold with that reason (a 'q' reply, or a
 * failed milter whose default action is quarantine).
 *
 * Failed milters (see milter_client.h) get their default_action, with one
 * log line "warning: [QUEUEID: ]milter NAME: WHAT IT DID; default_action=X";
 * the failure sticks for the rest of the session (accept: the milter is
 * skipped; reject/tempfail/shutdown: that verdict at every later stage;
 * quarantine: skipped, and every message is held). A malformed reply text
 * or edit request answers 451 4.3.5 (421 4.3.5 with shutdown) instead, as
 * Postfix's "configuration problem".
 *
 * Macros: for each stage the chain sends the stage's macro list (the
 * filter's own list when it sent one in option negotiation, else conf's).
 * For each name it calls macro_fn(name without braces, ctx): "i", "j", "_",
 * "client_addr", "auth_authen"... A NULL answer falls back to conf (v,
 * daemon_name) and milter_macro_defaults; a macro still without value is not
 * sent. The returned string is copied at once (it need only stay valid until
 * the next macro_fn call); return NULL, not "", for "unknown".
 *
 * The kept message (header/body/message calls) belongs to the current
 * transaction: milter_chain_mail() and milter_chain_abort() empty it. Call
 * header/body only after DATA's verdict and before milter_chain_eom().
 *
 * Local submission (non_smtpd_milters), as Postfix: connect("localhost",
 * "127.0.0.1", 0, '4'), helo("localhost"), mail/rcpt with the bare address
 * (no angle brackets; "" for the null sender). Milters must not reject or
 * tempfail those recipients (Postfix then keeps the mail queued, 4.3.5):
 * the caller decides what a RCPT verdict means there.
 */
#ifndef POSTERN_MILTER_CHAIN_H
#define POSTERN_MILTER_CHAIN_H

#include <event2/event.h>

#include "mta/milter/milter_client.h"
#include "mta/milter/milter_conf.h"
#include "mta/milter/milter_msg.h"

enum milter_verdict_type {
	MILTER_VERDICT_CONTINUE, /* proceed */
	MILTER_VERDICT_ACCEPT,   /* proceed; no milter left to ask */
	MILTER_VERDICT_REJECT,   /* 5xx reply in reply */
	MILTER_VERDICT_TEMPFAIL, /* 4xx reply in reply */
	MILTER_VERDICT_DISCARD,  /* accept and drop the message */
	MILTER_VERDICT_SHUTDOWN, /* 421 reply in reply, then disconnect */
};

/* "continue", "accept", "reject", "tempfail", "discard", "shutdown". */
const char *milter_verdict_name(enum milter_verdict_type t);

/* One envelope recipient as the chain knows it. */
struct milter_rcpt {
	char *addr;   /* as given to milter_chain_rcpt or by the milter ("<b@d>") */
	char *args;   /* ESMTP arguments, space separated; NULL when none */
	bool added;   /* added by a milter (addrcpt / addrcpt_par) */
	bool deleted; /* deleted by a milter (delrcpt); smtpd must drop it */
};

/* The result of one call. Everything is owned by the chain and valid until
 * the next call on the chain (or its free). */
struct milter_verdict {
	enum milter_stage stage;       /* the stage of the call */
	enum milter_verdict_type type; /* combined verdict */
	const char *reply;             /* SMTP reply for REJECT/TEMPFAIL/SHUTDOWN, else NULL */
	const char *quarantine;        /* hold reason, or NULL */
	const char *milter;            /* endpoint name of the deciding milter, or NULL */
	/* END-OF-MESSAGE only (NULL / 0 / false at other stages): */
	const struct milter_msg *msg;  /* the message as the milters left it */
	bool headers_changed;          /* some header edit was applied */
	bool body_changed;             /* the body was replaced */
	const struct milter_mod *mods; /* every applied edit, in order, all milters */
	size_t n_mods;                 /* entries in mods */
	const char *sender;            /* envelope sender (as changed by chgfrom) */
	const char *sender_args;       /* its ESMTP arguments, or NULL */
	const struct milter_rcpt *rcpts; /* recipients, including added and deleted */
	size_t n_rcpts;                /* entries in rcpts */
};

struct milter_chain;

/* The verdict of the pending call. v and everything in it is owned by the
 * chain. May free the chain or make the next call. */
typedef void milter_chain_fn(struct milter_chain *ch, const struct milter_verdict *v, void *ctx);
/* Macro value for name (braces removed), or NULL when unknown. */
typedef const char *milter_macro_fn(const char *name, void *ctx);

/*
 * A chain over conf->milters (conf must outlive the chain; zero milters is
 * allowed: every call then answers CONTINUE). max_message bounds the kept
 * message (headers, and body separately; 0 = no limit, as for
 * message_size_limit). Nothing is connected until milter_chain_connect.
 */
struct milter_chain *milter_chain_new(struct event_base *base, const struct milter_conf *conf,
				      size_t max_message, milter_macro_fn *macro,
				      milter_chain_fn *done, void *ctx);
/* QUIT every open milter, free; *ch becomes NULL; no callback. Takes NULL. */
void milter_chain_free(struct milter_chain **ch);

/* Connect to every milter (in turn) and send CONNECT. host: verified client
 * name or "[addr]"; family '4', '6', 'L' (unix; addr = socket path, port 0)
 * or 'U' (unknown: no addr/port). Non-SMTP submissions: "localhost",
 * "127.0.0.1", 0, '4' as Postfix. */
void milter_chain_connect(struct milter_chain *ch, const char *host, const char *addr,
			  unsigned port, char family);
/* HELO/EHLO argument. A HELO inside a transaction: call abort first. */
void milter_chain_helo(struct milter_chain *ch, const char *helo);
/* MAIL FROM: sender exactly as in the command ("<a@b>", "<>"), args the
 * ESMTP parameters ("SIZE=100"). Starts a new message (the kept message and
 * envelope are reset). */
void milter_chain_mail(struct milter_chain *ch, const char *sender, const char *const *args,
		       size_t n_args);
/* RCPT TO of a recipient smtpd's own checks accepted; recorded in the
 * envelope unless the milters reject it. */
void milter_chain_rcpt(struct milter_chain *ch, const char *rcpt, const char *const *args,
		       size_t n_args);
/* A recipient smtpd itself rejected with reply ("550 5.1.1 <b@d>: User
 * unknown"), as Postfix does for milters that negotiated SMFIP_RCPT_REJ:
 * only those milters get the RCPT, with {rcpt_mailer}=error, {rcpt_host}=
 * the enhanced status code, {rcpt_addr}= the text after it. The verdict is
 * CONTINUE whatever they answer (SHUTDOWN excepted); the recipient is not
 * recorded. Calling it is optional: milters without RCPT_REJ never notice. */
void milter_chain_rcpt_rejected(struct milter_chain *ch, const char *rcpt,
				const char *const *args, size_t n_args, const char *reply);
/* DATA (or the first BDAT). */
void milter_chain_data(struct milter_chain *ch);
/* An SMTP command smtpd does not know, the whole line without CRLF. */
void milter_chain_unknown(struct milter_chain *ch, const char *line);

/* Keep one header: name without colon, value = everything after the colon
 * up to the end of its last line (leading space kept; folded lines joined
 * with CRLF or LF; no final line end). hidden: our own Received: header,
 * never shown to milters. Returns 0, or -1 past max_message. */
int milter_chain_header(struct milter_chain *ch, const char *name, const char *value,
			bool hidden);
/* Keep body bytes (CRLF line ends, not dot-stuffed). 0, or -1 past max_message. */
int milter_chain_body(struct milter_chain *ch, const void *p, size_t n);
/* Keep a whole message (headers, blank line, body; CRLF or LF). 0 or -1. */
int milter_chain_message(struct milter_chain *ch, const char *text, size_t len);
/* As milter_chain_message, and the first n_hidden headers of the message
 * (our own Received: header) are kept but never shown to milters nor
 * counted by CHGHEADER indices, as Postfix does. 0 or -1. */
int milter_chain_message_hide(struct milter_chain *ch, const char *text, size_t len,
			      size_t n_hidden);
/* Run the content stages and END-OF-MESSAGE through every milter. The
 * verdict carries the edited message, the edits and the envelope. */
void milter_chain_eom(struct milter_chain *ch);
/* Cancel the current message (sends ABORT to the milters that saw MAIL). */
void milter_chain_abort(struct milter_chain *ch);

#endif
