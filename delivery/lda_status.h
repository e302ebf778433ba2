/*
 * lda_status.h - how postern-lda reports one delivery's outcome.
 *
 * Every delivery step fills a struct lda_status instead of exiting: a
 * sysexits.h code for the calling MTA plus an RFC 3463 enhanced status code
 * and one line of text. lda_main prints "<dsn> <text>" on stderr and exits
 * with the code. Nothing here blocks or allocates.
 */
#ifndef POSTERN_LDA_STATUS_H
#define POSTERN_LDA_STATUS_H

#include "lib/common.h"

#define LDA_STATUS_TEXT_MAX 400

struct lda_status {
	int ex;                          /* sysexits.h code; EX_OK (0) until a failure */
	char dsn[16];                    /* enhanced status "4.2.2"; "" while ex == 0 */
	char text[LDA_STATUS_TEXT_MAX];  /* printable reason, no newline */
};

/* Record a failure: exit code ex, enhanced status dsn ("5.1.1"), formatted
 * text. Bytes outside printable ASCII in the text become '?'. Always
 * returns -1 so callers can write "return lda_status_fail(...)". */
int lda_status_fail(struct lda_status *st, int ex, const char *dsn, const char *fmt, ...)
	PRINTF_LIKE(4, 5);

/* Record a failure caused by errno value err while doing what (e.g.
 * "create /home/u/Maildir/tmp/x"): ENOSPC and transient errors give
 * EX_TEMPFAIL 4.x.x, EDQUOT/EFBIG a "mailbox full" 4.2.2 (5.2.2 when
 * quota_tempfail is false), EACCES/EPERM/EROFS/ELOOP EX_NOPERM 5.2.0,
 * anything else EX_CANTCREAT 5.2.0. Returns -1. */
int lda_status_fail_errno(struct lda_status *st, int err, bool quota_tempfail, const char *what);

/* True for the errno values lda_status_fail_errno treats as temporary. */
bool lda_status_errno_temporary(int err);

#endif
