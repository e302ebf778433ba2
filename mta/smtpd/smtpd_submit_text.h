/*
 * smtpd_submit_text.h - a locally submitted message (sendmail's input) made
 * into queue content, as Postfix's cleanup does for local mail.
 *
 * Input: the bytes sendmail(1) read, LF or CRLF line ends, not dot-stuffed.
 * Output: CRLF lines; a leading mbox "From " / ">From " line dropped; the
 * headers of message_drop_headers (Bcc, Resent-Bcc, Content-Length,
 * Return-Path) removed with their continuation lines; From:, Date: and
 * Message-ID: appended to the header block when missing; a blank line put
 * between headers and body when the body began without one.
 *
 * Pure: no I/O, no logging, no clock (the caller passes the values).
 * Tests: tests/unit/smtpd/smtpd_submit_text_test.c,
 * tests/fuzz/smtpd_submit_text_fuzz.c.
 */
#ifndef POSTERN_SMTPD_SUBMIT_TEXT_H
#define POSTERN_SMTPD_SUBMIT_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

#define SMTPD_SUBMIT_MSGID_MAX 998 /* longest Message-ID value kept for logs */

/* What to put into headers the message lacks (all NUL-terminated, borrowed). */
struct smtpd_submit_fill {
	const char *from;     /* "addr" for From: ("" = null sender: no From: added) */
	const char *fullname; /* phrase for From: ("" none); quoted when needed */
	const char *date;     /* RFC 5322 date-time for Date: */
	const char *msgid;    /* "<id@host>" for Message-ID: */
};

/* What the conversion found. */
struct smtpd_submit_info {
	bool added_from;    /* From: was added */
	bool added_date;    /* Date: was added */
	bool added_msgid;   /* Message-ID: was added */
	bool saw_nul;       /* a NUL byte was in the input */
	unsigned dropped;   /* headers removed (Bcc ...) */
	unsigned received;  /* Received: headers (for hopcount_limit) */
	char msgid[SMTPD_SUBMIT_MSGID_MAX + 1]; /* Message-ID value, trimmed
	                                         * ("" none), bytes as in the
	                                         * message: escape before logging */
};

/* Length of the header name when the line p[0..n) starts "name:" (RFC 5322
 * ftext, blanks allowed before the colon as Postfix does), else 0. Also
 * used by sendmail -t (mta/cli/sendmail_hdr.c). */
size_t smtpd_submit_text_hname(const char *p, size_t n);

/*
 * Convert in[0..len) into out (appended). Returns 0, or -1 when out's
 * maximum would be passed (out then holds a partial result). info is
 * filled in either case.
 */
int smtpd_submit_text_convert(const char *in, size_t len, const struct smtpd_submit_fill *fill,
			      struct buf *out, struct smtpd_submit_info *info);

#endif
