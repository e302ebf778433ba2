/*
 * lda_status.c - failure records with sysexits codes and enhanced status.
 *
 * Purpose: one mapping from errno and policy to (exit code, DSN, text), so the
 *   MTA that runs postern-lda can defer or bounce correctly (RFC 3463,
 *   sysexits.h, Postfix pipe_command rules; mailbox-formats.md §6).
 * Owns: nothing. Never: exits, logs, or lets a control byte into the text.
 * Tests: tests/unit/delivery/lda_status_test.c
 */
#include <sysexits.h>

#include "delivery/lda_status.h"
#include "lib/common.h"

static void lda_status_clean(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

int lda_status_fail(struct lda_status *st, int ex, const char *dsn, const char *fmt, ...)
{
	va_list ap;

	st->ex = ex;
	snprintf(st->dsn, sizeof(st->dsn), "%s", dsn);
	va_start(ap, fmt);
	vsnprintf(st->text, sizeof(st->text), fmt, ap);
	va_end(ap);
	lda_status_clean(st->text);
	return -1;
}

bool lda_status_errno_temporary(int err)
{
	switch (err) {
	case ENOSPC:
	case EIO:
	case EAGAIN:
	case EINTR:
	case ESTALE:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case ENOLCK:
	case ETIMEDOUT:
	case EBUSY:
	case EDQUOT:
	case EFBIG:
		return true;
	default:
		return false;
	}
}

int lda_status_fail_errno(struct lda_status *st, int err, bool quota_tempfail, const char *what)
{
	const char *msg = strerror(err);

	switch (err) {
	case ENOSPC:
		return lda_status_fail(st, EX_TEMPFAIL, "4.3.1", "mail system full: %s: %s", what, msg);
	case EDQUOT:
	case EFBIG:
		if (quota_tempfail)
			return lda_status_fail(st, EX_TEMPFAIL, "4.2.2", "mailbox full: %s: %s", what, msg);
		return lda_status_fail(st, EX_NOPERM, "5.2.2", "mailbox full: %s: %s", what, msg);
	case EACCES:
	case EPERM:
	case EROFS:
	case ELOOP:
		return lda_status_fail(st, EX_NOPERM, "5.2.0", "%s: %s", what, msg);
	default:
		if (lda_status_errno_temporary(err))
			return lda_status_fail(st, EX_TEMPFAIL, "4.3.0", "%s: %s", what, msg);
		return lda_status_fail(st, EX_CANTCREAT, "5.2.0", "%s: %s", what, msg);
	}
}
