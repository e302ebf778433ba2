/*
 * lda_mbox.h - mboxrd delivery with Debian-order locking.
 *
 * A message is appended as "From <sender> <asctime date>", the message with
 * mboxrd quoting (a '>' before every line matching ^>*From ), and an empty
 * line. Locks: fcntl() write lock, then the dotlock "<mbox>.lock" (Debian
 * Policy 11.6 and Dovecot on Debian), each waited for at most the lock
 * timeout. The dotlock records "<pid> <size before append>" so that if this
 * process is killed mid-append, the next postern-lda that takes the lock
 * cuts the partial message off (unless other mail was appended after it). On any error the mbox is truncated back to
 * its size before the append. Blocks for up to the lock timeout.
 */
#ifndef POSTERN_LDA_MBOX_H
#define POSTERN_LDA_MBOX_H

#include <time.h>

#include "delivery/lda_status.h"
#include "lib/buf.h"
#include "lib/common.h"

#define LDA_MBOX_STALE_SECS 300 /* foreign dotlock older than this is broken */

/* Append "From <sender> <date>\n" for time t (local time, asctime form);
 * a NULL or empty sender is written MAILER-DAEMON. Returns as buf_append. */
int lda_mbox_from_line(struct buf *out, const char *sender, time_t t);

/* Append msg with mboxrd quoting, a final LF if msg lacks one, and the
 * empty line that ends an mbox message. Returns as buf_append. */
int lda_mbox_quote(struct buf *out, const char *p, size_t n);

/* Parse a dotlock written by postern-lda: "<pid> <size>\n". Returns true and
 * fills *pid_r / *size_r when it has that form. */
bool lda_mbox_parse_lock(const char *p, size_t n, long *pid_r, uint64_t *size_r);

/* Deliver msg (final message bytes, LF line ends, not yet quoted) to the
 * mbox at path as uid, sender in the From_ line, waiting at most
 * lock_timeout seconds for the locks. Returns 0, or -1 with st filled
 * (lock timeout 4.2.0 EX_TEMPFAIL; file errors per lda_status_fail_errno) and the
 * mbox back at its original size. */
int lda_mbox_deliver(const char *path, struct str msg, const char *sender, uid_t uid,
		     unsigned lock_timeout, bool quota_tempfail, struct lda_status *st);

#endif
