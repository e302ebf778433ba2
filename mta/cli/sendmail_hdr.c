/*
 * sendmail_hdr.c - recipients from the header for sendmail -t (see the header).
 *
 * Purpose: turn To/Cc/Bcc (or Resent-*) address lists into addresses.
 * Owns: nothing (pure).
 * Never: reads past len; accepts an address longer than SENDMAIL_HDR_ADDR_MAX.
 * Limits: SENDMAIL_HDR_ADDR_MAX per address; comment nesting 64.
 * Tests: tests/unit/mta/sendmail_hdr_test.c, tests/fuzz/sendmail_hdr_fuzz.c.
 */
#include "mta/cli/sendmail_hdr.h"
#include "mta/smtpd/smtpd_submit_text.h"
#include "lib/buf.h"
#include "lib/common.h"

#define SENDMAIL_HDR_NEST_MAX 64 /* comment nesting depth */

void sendmail_hdr_rcpts_free(struct sendmail_hdr_rcpts *out)
{
	for (size_t i = 0; i < out->n; i++)
		free(out->addr[i]);
	free(out->addr);
	out->addr = NULL;
	out->n = 0;
}

static void sendmail_hdr_push(struct sendmail_hdr_rcpts *out, const char *p, size_t n)
{
	out->addr = xreallocarray(out->addr, out->n + 1, sizeof(*out->addr));
	out->addr[out->n++] = xmemdup(p, n);
}

/* one list element: the angle address if any, else the bare text with
 * blanks removed */
static int sendmail_hdr_emit(struct sendmail_hdr_rcpts *out, struct buf *bare, struct buf *angle,
			     bool had_angle, const char **error_r)
{
	struct buf *b = had_angle ? angle : bare;
	if (b->len > SENDMAIL_HDR_ADDR_MAX) {
		*error_r = "address too long";
		return -1;
	}
	if (b->len > 0)
		sendmail_hdr_push(out, b->data, b->len);
	buf_reset(bare);
	buf_reset(angle);
	return 0;
}

int sendmail_hdr_addrlist(const char *v, size_t n, struct sendmail_hdr_rcpts *out,
			  const char **error_r)
{
	struct buf bare, angle;
	/* one byte over the limit is enough to know it is too long */
	buf_init(&bare, SENDMAIL_HDR_ADDR_MAX + 1);
	buf_init(&angle, SENDMAIL_HDR_ADDR_MAX + 1);
	bool in_angle = false, had_angle = false, quoted = false;
	int depth = 0, rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char c = v[i];
		if (depth > 0) { /* inside a comment */
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			if (depth > SENDMAIL_HDR_NEST_MAX) {
				*error_r = "comments nested too deep";
				rc = -1;
			}
			continue;
		}
		struct buf *b = in_angle ? &angle : &bare;
		if (quoted) {
			if (c == '\\' && i + 1 < n) {
				(void)(buf_putc(b, c) < 0 || buf_putc(b, v[++i]));
				continue;
			}
			if (c == '"')
				quoted = false;
			if (c != '\r' && c != '\n')
				(void)buf_putc(b, c);
			continue;
		}
		switch (c) {
		case '(':
			depth = 1;
			break;
		case '"':
			quoted = true;
			(void)buf_putc(b, c);
			break;
		case '<':
			if (in_angle) {
				*error_r = "nested '<'";
				rc = -1;
				break;
			}
			in_angle = had_angle = true;
			buf_reset(&angle);
			break;
		case '>':
			if (!in_angle) {
				*error_r = "unbalanced '>'";
				rc = -1;
				break;
			}
			in_angle = false;
			break;
		case ':':
			if (in_angle) { /* source route "<@a,@b:u@d>": keep the mailbox */
				buf_reset(&angle);
				break;
			}
			/* group "name: a, b;": the name is not an address */
			buf_reset(&bare);
			break;
		case ',':
			if (in_angle) { /* source route list */
				(void)buf_putc(&angle, c);
				break;
			}
			/* fall through */
		case ';':
			if (in_angle) {
				*error_r = "';' inside '<>'";
				rc = -1;
				break;
			}
			rc = sendmail_hdr_emit(out, &bare, &angle, had_angle, error_r);
			had_angle = false;
			break;
		case ' ':
		case '\t':
		case '\r':
		case '\n':
			break;
		default:
			(void)buf_putc(b, c);
			break;
		}
	}
	if (rc == 0 && (quoted || depth > 0 || in_angle)) {
		*error_r = quoted ? "unbalanced '\"'" : depth > 0 ? "unbalanced '('" : "unbalanced '<'";
		rc = -1;
	}
	if (rc == 0)
		rc = sendmail_hdr_emit(out, &bare, &angle, had_angle, error_r);
	buf_free(&bare);
	buf_free(&angle);
	return rc;
}

struct sendmail_hdr_field {
	const char *name; /* header name */
	bool resent;      /* a Resent- header */
};

static const struct sendmail_hdr_field sendmail_hdr_fields[] = {
	{ "to", false },        { "cc", false },        { "bcc", false },
	{ "resent-to", true },  { "resent-cc", true },  { "resent-bcc", true },
};

int sendmail_hdr_rcpts(const char *text, size_t len, struct sendmail_hdr_rcpts *out,
		       const char **error_r)
{
	/* two passes over the header block: is there any Resent- header,
	 * then collect from the chosen set */
	struct sendmail_hdr_rcpts plain = { 0 }, resent = { 0 };
	bool any_resent = false;
	size_t pos = 0;
	const char *hv = NULL; /* current header's value start */
	size_t hlen = 0;
	int which = -1; /* index into sendmail_hdr_fields, or -1 */
	int rc = 0;
	for (;;) {
		const char *line = text + pos;
		bool end = pos >= len;
		const char *nl = end ? NULL : memchr(line, '\n', len - pos);
		size_t n = end ? 0 : nl ? (size_t)(nl - line) : len - pos;
		bool cont = !end && n > 0 && (line[0] == ' ' || line[0] == '\t');
		if (!cont && which >= 0) {
			/* the previous header is complete: parse its value */
			struct sendmail_hdr_rcpts *dst = sendmail_hdr_fields[which].resent ? &resent : &plain;
			if (sendmail_hdr_addrlist(hv, hlen, dst, error_r) < 0) {
				rc = -1;
				break;
			}
			which = -1;
		}
		if (end)
			break;
		size_t eol = nl ? n + 1 : n;
		if (cont) {
			if (which >= 0)
				hlen += eol;
			pos += eol;
			continue;
		}
		size_t hn = smtpd_submit_text_hname(line, n > 0 && line[n - 1] == '\r' ? n - 1 : n);
		if (hn == 0)
			break; /* empty line or body: the header block ended */
		if (str_case_prefix((struct str){ line, hn }, "resent-"))
			any_resent = true;
		for (size_t i = 0; i < ARRAY_LEN(sendmail_hdr_fields); i++)
			if (str_case_eq((struct str){ line, hn }, str_of(sendmail_hdr_fields[i].name)))
				which = (int)i;
		if (which >= 0) {
			const char *colon = memchr(line, ':', n);
			hv = colon + 1;
			hlen = eol - (size_t)(hv - line);
		}
		pos += eol;
	}
	struct sendmail_hdr_rcpts *use = any_resent ? &resent : &plain;
	if (rc == 0) {
		for (size_t i = 0; i < use->n; i++) {
			out->addr = xreallocarray(out->addr, out->n + 1, sizeof(*out->addr));
			out->addr[out->n++] = use->addr[i];
			use->addr[i] = NULL;
		}
	}
	sendmail_hdr_rcpts_free(&plain);
	sendmail_hdr_rcpts_free(&resent);
	return rc;
}
