/*
 * smtpd_milter.h - smtpd's side of the milter chain (smtpd_milters): one
 * chain per session (mta/milter/milter_chain.h) on the session's loop,
 * asked at CONNECT, HELO, MAIL, RCPT, DATA and END-OF-MESSAGE, with ABORT
 * when a transaction is reset and QUIT when the session ends.
 *
 * Each asynchronous stage puts the session in SMTPD_ST_MILTER (input is not
 * processed meanwhile; other sessions run on), and the verdict finishes the
 * command: the reply, the log line (milter_log_verdict), and for the end of
 * message the edits: headers/body rewritten in the content file we still
 * hold, sender and recipients changed before the envelope goes to the queue.
 *
 * Tests: tests/integration/test_smtpd_milter*.py, tests/interop/test_postern_milter*.py.
 */
#ifndef POSTERN_SMTPD_MILTER_H
#define POSTERN_SMTPD_MILTER_H

#include "mta/smtpd/smtpd_cmd.h"
#include "mta/smtpd/smtpd_session.h"

/* Does this session filter mail (smtpd_milters not empty)? */
bool smtpd_milter_active(const struct smtpd_session *s);

struct milter_verdict;
/* Check an address a milter gave ("<a@b>" or bare) for the envelope: the
 * address to store (owned), or NULL to refuse it. sender: it replaces
 * the sender ("" = null sender allowed). */
typedef char *smtpd_milter_addr_fn(const char *given, bool sender, void *ctx);
/* smtpd's check: printable, no blanks or brackets, brackets removed. */
char *smtpd_milter_addr(const char *given, bool sender, void *ctx);
/* The chain's envelope (v, END-OF-MESSAGE) replaces the one we hold, for
 * SMTP and local submission alike: deleted recipients go (freed), added
 * ones come with the NOTIFY/ORCPT of their ESMTP arguments (others logged
 * and ignored, as Postfix does), a changed sender replaces *sender when fn
 * accepts it. qid names the message in log lines. Returns the recipients
 * left. */
size_t smtpd_milter_apply_envelope(const char *qid, const struct milter_verdict *v, char **sender,
				   struct smtpd_rcpt **rcpts, size_t *n_rcpts, size_t *cap_rcpts,
				   smtpd_milter_addr_fn *fn, void *ctx);

/* New session, client named: create the chain of the milters for the
 * client (smtpd_milter_maps' value for its address, else smtpd_milters)
 * and send CONNECT. Returns true when the greeting waits for the verdict
 * (state MILTER); false when there are no milters (greet now). On a milter
 * configuration error the session is answered 421 and closed (true); when
 * smtpd_milter_maps cannot be read, s->milter_map_fail is set and false
 * returned (greet; every command but QUIT then gets 451 4.3.0). */
bool smtpd_milter_connect(struct smtpd_session *s);

/* HELO/EHLO name accepted by smtpd (name sanitised for logs and headers,
 * milter_name what the milters get: the name as sent when it is clean
 * UTF-8): ask the milters; the reply follows the verdict. */
void smtpd_milter_helo(struct smtpd_session *s, const char *name, const char *milter_name,
		       bool ehlo);

/* MAIL accepted by smtpd's checks (s->sender, s->mail set, in_mail still
 * false): ask the milters with the command's parameters. */
void smtpd_milter_mail(struct smtpd_session *s, const struct smtpd_cmd *cmd);

/* RCPT accepted by smtpd's checks: rcpt (owned, taken) waits in the
 * session until the milters answer. */
void smtpd_milter_rcpt(struct smtpd_session *s, const struct smtpd_cmd *cmd, char *rcpt,
		       const char *orcpt, unsigned notify);

/* An unknown command (the whole line, sanitised): the milters may reply
 * to it; otherwise 502 as without milters. */
void smtpd_milter_unknown(struct smtpd_session *s, const char *line);

/* RCPT refused by smtpd with reply: shown to the milters that negotiated
 * SMFIP_RCPT_REJ; the reply is sent after their verdict (SHUTDOWN aside,
 * they cannot change it). rcpt owned, taken. */
void smtpd_milter_rcpt_rejected(struct smtpd_session *s, const struct smtpd_cmd *cmd, char *rcpt,
				const char *reply);

/* The queue file is open (qid, content_fd set): DATA event. */
void smtpd_milter_data(struct smtpd_session *s);

/* Content complete and checked: run the content through the chain.
 * Returns true when the commit waits for the verdict (state MILTER);
 * false when the message needs no filtering (commit now). */
bool smtpd_milter_eom(struct smtpd_session *s);

/* The transaction is reset (RSET, HELO, end of message, failure): ABORT
 * the milters' message; a pending call is cancelled (the chain is freed). */
void smtpd_milter_reset(struct smtpd_session *s);

/* The session ends: QUIT and free the chain. */
void smtpd_milter_free(struct smtpd_session *s);

#endif
