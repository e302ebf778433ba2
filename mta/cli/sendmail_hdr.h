/*
 * sendmail_hdr.h - recipients from a message's header for sendmail -t.
 *
 * RFC 5322 §3.6.3: To:, Cc:, Bcc:, or, when any Resent-* header is present
 * (§3.6.6), only Resent-To:, Resent-Cc:, Resent-Bcc:. Address lists are
 * parsed with display names, comments, quoted strings, angle addresses and
 * groups ("undisclosed-recipients:;" yields nothing).
 *
 * Pure: no I/O, no logging. Tests: tests/unit/mta/sendmail_hdr_test.c,
 * tests/fuzz/sendmail_hdr_fuzz.c.
 */
#ifndef POSTERN_SENDMAIL_HDR_H
#define POSTERN_SENDMAIL_HDR_H

#include <stddef.h>

#define SENDMAIL_HDR_ADDR_MAX 998 /* longest address kept (longer ones are an error) */

/* Collected recipients (owned strings). */
struct sendmail_hdr_rcpts {
	char **addr; /* owned array of owned "local@domain" (as written) */
	size_t n;    /* entries */
};

/*
 * Scan the header block at the start of text[0..len) (LF or CRLF lines; it
 * ends at the first empty line, at a line that is not "name:" or a
 * continuation, or at len) and append every recipient address to out.
 * Returns 0, or -1 with *error_r (static) when an address list cannot be
 * parsed (unbalanced quote, bracket or comment, address too long).
 */
int sendmail_hdr_rcpts(const char *text, size_t len, struct sendmail_hdr_rcpts *out,
		       const char **error_r);

/*
 * Append the addresses of one address-list header value (unfolded or not)
 * to out. 0, or -1 with *error_r as above.
 */
int sendmail_hdr_addrlist(const char *v, size_t n, struct sendmail_hdr_rcpts *out,
			  const char **error_r);

/* Free the collected addresses; out is empty afterwards. */
void sendmail_hdr_rcpts_free(struct sendmail_hdr_rcpts *out);

#endif
