/*
 * lda_headers.c - message input, envelope headers and the loop check.
 *
 * Purpose: turn the bytes on stdin into the bytes a mailbox stores, adding
 *   Return-Path, X-Original-To and Delivered-To, and refusing mail that
 *   already went through this recipient (Delivered-To loop, 5.4.6).
 * Owns: the buffers it fills. Never: rewrites the message except for
 *   CRLF -> LF and the removal of a leading From_ envelope line.
 * Limits: message size given by the caller; addresses 998 octets.
 * Tests: tests/unit/delivery/lda_headers_test.c, tests/integration/test_lda.py
 *
 * A caller that already prepends envelope headers (Postfix local(8) running
 * a mailbox_command writes "From ", Return-Path, X-Original-To and
 * Delivered-To) is recognised: the Return-Path/X-Original-To/Delivered-To
 * lines at the very top of the message are the caller's, are not counted as
 * a loop, and are not added a second time. A loop shows as a Delivered-To
 * further down (below a Received line added when the mail went round).
 */
#include <unistd.h>
#include <sysexits.h>

#include "delivery/lda_headers.h"
#include "lib/common.h"

int lda_headers_read(int fd, struct buf *raw, size_t max, struct lda_status *st)
{
	char chunk[65536];

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return lda_status_fail(st, EX_TEMPFAIL, "4.3.0", "cannot read message: %s",
					strerror(errno));
		if (n == 0)
			return 0;
		if (raw->len + (size_t)n > max || buf_append(raw, chunk, (size_t)n) < 0)
			return lda_status_fail(st, EX_DATAERR, "5.3.4",
					"message is larger than %zu octets", max);
	}
}

int lda_headers_crlf_to_lf(struct buf *out, const char *p, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (p[i] == '\r' && p[i + 1] == '\n') {
			if (buf_append(out, p + start, i - start) < 0)
				return -1;
			start = i + 1; /* the LF */
		}
	}
	return buf_append(out, p + start, n - start);
}

bool lda_headers_addr_ok(const char *addr)
{
	if (addr == NULL || strlen(addr) > 998)
		return false;
	for (const char *p = addr; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			return false;
	return true;
}

char *lda_headers_bare_addr(const char *addr)
{
	const char *b = addr;
	const char *e = addr + strlen(addr);
	while (b < e && (*b == ' ' || *b == '\t'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e - b >= 2 && *b == '<' && e[-1] == '>') {
		b++;
		e--;
	}
	return xmemdup(b, (size_t)(e - b));
}

/* One header field: name and the unfolded-enough value span (value may
 * contain folded line breaks; callers trim it). */
struct lda_hdr {
	struct str name;
	struct str value;
	size_t end; /* offset just past the field's last LF */
};

/* Parse the header field at off in msg; false at the end of the header
 * section (empty line, end of input, or a line that is not a field). */
static bool lda_headers_next(struct str msg, size_t off, struct lda_hdr *h)
{
	if (off >= msg.len || msg.p[off] == '\n')
		return false;
	const char *line = msg.p + off;
	size_t rest = msg.len - off;
	const char *colon = memchr(line, ':', rest);
	const char *nl = memchr(line, '\n', rest);
	if (colon == NULL || (nl != NULL && colon > nl) || colon == line)
		return false;
	for (const char *c = line; c < colon; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			return false; /* RFC 5322 2.2: printable, no space */
	h->name = (struct str){ line, (size_t)(colon - line) };
	size_t end = nl ? (size_t)(nl - msg.p) + 1 : msg.len;
	while (end < msg.len && (msg.p[end] == ' ' || msg.p[end] == '\t')) {
		const char *n2 = memchr(msg.p + end, '\n', msg.len - end);
		end = n2 ? (size_t)(n2 - msg.p) + 1 : msg.len;
	}
	h->value = (struct str){ colon + 1, (size_t)(msg.p + end - (colon + 1)) };
	h->end = end;
	return true;
}

/* True when a header value names addr (blanks, line breaks and one pair of
 * angle brackets ignored; ASCII case-insensitive as Postfix compares). */
static bool lda_headers_value_is(struct str v, const char *addr)
{
	const char *b = v.p;
	const char *e = v.p + v.len;
	while (b < e && (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		e--;
	if (e - b >= 2 && *b == '<' && e[-1] == '>') {
		b++;
		e--;
	}
	size_t n = strlen(addr);
	return (size_t)(e - b) == n && n > 0 && strncasecmp(b, addr, n) == 0;
}

void lda_headers_info_free(struct lda_headers_info *info)
{
	free(info->from_sender);
	info->from_sender = NULL;
}

int lda_headers_prepare(struct str input, const struct lda_headers_env *env, struct buf *out,
			struct lda_headers_info *info, struct lda_status *st)
{
	struct buf conv;
	size_t skip = 0;
	int ret = -1;

	memset(info, 0, sizeof(*info));
	/* A leading "From sender date" line is mbox envelope, not message
	 * (Postfix local(8) passes one to a mailbox_command; procmail and
	 * dovecot-lda drop it the same way). */
	if (input.len >= 5 && memcmp(input.p, "From ", 5) == 0) {
		const char *nl = memchr(input.p, '\n', input.len);
		skip = nl ? (size_t)(nl - input.p) + 1 : input.len;
		const char *s = input.p + 5;
		const char *se = s;
		while (se < input.p + skip && *se != ' ' && *se != '\t' && *se != '\r' && *se != '\n')
			se++;
		info->from_sender = xmemdup(s, (size_t)(se - s));
	}
	buf_init(&conv, out->max);
	if (lda_headers_crlf_to_lf(&conv, input.p + skip, input.len - skip) < 0) {
		lda_status_fail(st, EX_DATAERR, "5.3.4", "message is too large");
		goto out;
	}
	struct str msg = buf_str(&conv);
	char *rcpt = env->final_rcpt ? lda_headers_bare_addr(env->final_rcpt) : xstrdup("");
	bool caller_orig = false;
	bool in_caller_block = true;
	struct lda_hdr h;
	size_t off = 0;
	while (lda_headers_next(msg, off, &h)) {
		bool is_rp = str_case_eq(h.name, STR_LIT("Return-Path"));
		bool is_dt = str_case_eq(h.name, STR_LIT("Delivered-To"));
		bool is_xo = str_case_eq(h.name, STR_LIT("X-Original-To"));
		if (in_caller_block && !(is_rp || is_dt || is_xo))
			in_caller_block = false;
		if (is_dt && lda_headers_value_is(h.value, rcpt)) {
			if (!in_caller_block) {
				lda_status_fail(st, EX_DATAERR, "5.4.6", "mail forwarding loop for %s", rcpt);
				free(rcpt);
				goto out;
			}
			info->caller_delivered = true;
		}
		if (in_caller_block && is_rp)
			info->caller_return_path = true;
		if (in_caller_block && is_xo)
			caller_orig = true;
		off = h.end;
	}

	const char *sender = env->sender ? env->sender : info->from_sender;
	int r = 0;
	if (sender != NULL && !info->caller_return_path) {
		char *bare = lda_headers_bare_addr(sender);
		if (strcmp(bare, "MAILER-DAEMON") == 0 && env->sender == NULL)
			bare[0] = '\0';
		r |= buf_printf(out, "Return-Path: <%s>\n", bare);
		free(bare);
	}
	if (env->orig_rcpt != NULL && *env->orig_rcpt != '\0' && !caller_orig &&
	    !lda_headers_value_is(str_of(env->orig_rcpt), rcpt)) {
		char *bare = lda_headers_bare_addr(env->orig_rcpt);
		r |= buf_printf(out, "X-Original-To: %s\n", bare);
		free(bare);
	}
	if (*rcpt != '\0' && !info->caller_delivered)
		r |= buf_printf(out, "Delivered-To: %s\n", rcpt);
	free(rcpt);
	r |= buf_append(out, msg.p, msg.len);
	if (r < 0) {
		lda_status_fail(st, EX_DATAERR, "5.3.4", "message is too large");
		goto out;
	}
	ret = 0;
out:
	buf_free(&conv);
	return ret;
}
