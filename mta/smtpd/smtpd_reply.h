/*
 * smtpd_reply.h - what smtpd says: SMTP replies to the client and the
 * Postfix-shaped log lines (the only place smtpd formats either), and the
 * Received: header (RFC 5321 §4.4).
 *
 * Tests: tests/integration/test_smtpd_log.py (golden log lines),
 * tests/integration/test_smtpd_*.py (replies).
 */
#ifndef POSTERN_SMTPD_REPLY_H
#define POSTERN_SMTPD_REPLY_H

#include "mta/smtpd/smtpd_session.h"

/* Queue one reply line (CRLF added). A 4xx/5xx reply other than 421
 * counts as an error of the session. Returns the reply code. */
int smtpd_reply(struct smtpd_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Queue a ready-made reply text (one line, no CRLF). */
int smtpd_reply_text(struct smtpd_session *s, const char *text);
/* A reply that may have several lines separated by CRLF (or LF), as a
 * milter gives it: each line sent as is. Returns the code. */
int smtpd_reply_lines(struct smtpd_session *s, const char *text);
/* The multi-line EHLO reply. */
void smtpd_reply_ehlo(struct smtpd_session *s);

/* "connect from unknown[127.0.0.1]" */
void smtpd_log_connect(struct smtpd_session *s);
/* "disconnect from unknown[127.0.0.1] ehlo=1 mail=1 ... commands=5" */
void smtpd_log_disconnect(struct smtpd_session *s);
/* "NOQUEUE: reject: RCPT from X: REPLY; from=<a> to=<b> proto=ESMTP helo=<h>"
 * (to NULL leaves out to=). */
void smtpd_log_reject(struct smtpd_session *s, const char *verb, const char *reply, const char *to);
/* "lost connection after DATA (123 bytes) from X", "timeout after ..." */
void smtpd_log_after(struct smtpd_session *s, const char *what);
/* "improper command pipelining after EHLO from X: <next input>" */
void smtpd_log_pipelining(struct smtpd_session *s, const char *cmd, const void *next, size_t n);

/* Protocol name for Received and the envelope: SMTP, ESMTP, ESMTPS,
 * UTF8SMTPS ... */
const char *smtpd_reply_protocol(const struct smtpd_session *s);
/* Append the Received: header for the current transaction to out. */
void smtpd_reply_received(struct smtpd_session *s, struct buf *out);

/* Copy peer text into out (size n) with every byte outside printable
 * ASCII replaced by '?': for HELO names in replies and headers. */
void smtpd_reply_sanitize(const char *p, size_t len, char *out, size_t n);

#endif
