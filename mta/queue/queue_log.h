/*
 * queue_log.h - the queue's Postfix-shaped delivery log lines.
 *
 * One module produces them so golden tests pin their shape:
 *   QID: to=<rcpt>, orig_to=<orig>, relay=local, delay=1.2,
 *        delays=0.01/0/0/1.2, dsn=2.0.0, status=sent (delivered to maildir)
 * delay is the time since arrival; delays are a/b/c/d as in Postfix: before
 * the active queue, in the active queue, connection setup (always 0 for
 * local delivery), delivery. Numbers have Postfix's format: at most two
 * significant digits after the point, trailing zeros dropped ("0", "0.01",
 * "1.2", "22"). orig_to appears only when it differs from to. Addresses go
 * through buf_escape; reason text keeps printable ASCII and escapes the rest.
 * Pure functions. Tests: tests/unit/queue/queue_log_test.c.
 */
#ifndef POSTERN_QUEUE_LOG_H
#define POSTERN_QUEUE_LOG_H

#include <stdint.h>

#include "lib/buf.h"

/* Append a duration (microseconds; negative counts as 0) in Postfix's form. */
void queue_log_duration(struct buf *out, int64_t us);

/* Append the delivery line (without the log prefix). Times are microseconds
 * since the epoch: arrival, entry into the active queue, start and end of
 * the delivery. status is "sent", "deferred" or "bounced". */
void queue_log_delivery(struct buf *out, const char *qid, const char *to, const char *orig_to,
			const char *relay, int64_t arrival, int64_t active, int64_t start,
			int64_t end, const char *dsn, const char *status, const char *text);

/* Append "QID: from=<sender>, size=N, nrcpt=N (queue active)", the line
 * Postfix's qmgr writes when a message enters the active queue. */
void queue_log_from(struct buf *out, const char *qid, const char *sender, unsigned long long size,
		    size_t nrcpt);

/* Append "QID: from=<sender>, status=expired, returned to sender". */
void queue_log_expired(struct buf *out, const char *qid, const char *sender);

/* Append s with bytes outside printable ASCII written as \ooo (backslash
 * itself is kept: text reaching here was escaped once already). */
void queue_log_text(struct buf *out, const char *s, size_t limit);

#endif
