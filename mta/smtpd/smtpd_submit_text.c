/*
 * smtpd_submit_text.c - sendmail input to queue content (see the header).
 *
 * Purpose: one pass over a locally submitted message, line by line.
 * Owns: nothing (pure).
 * Never: reads past len; trusts a header to be well-formed (a line that is
 * not "name:" ends the header block, as in Postfix).
 * Limits: out's maximum (the caller's message_size_limit plus room for
 * the headers added here).
 * Tests: tests/unit/smtpd/smtpd_submit_text_test.c, tests/fuzz/smtpd_submit_text_fuzz.c.
 */
#include "mta/smtpd/smtpd_submit_text.h"
#include "lib/common.h"

size_t smtpd_submit_text_hname(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] > 32 && p[i] < 127 && p[i] != ':')
		i++;
	size_t name = i;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return name > 0 && i < n && p[i] == ':' ? name : 0;
}

static bool smtpd_submit_text_is(const char *p, size_t n, const char *name)
{
	return str_case_eq((struct str){ p, n }, str_of(name));
}

/* Postfix message_drop_headers default */
static bool smtpd_submit_text_dropped(const char *p, size_t n)
{
	static const char *const drop[] = { "bcc", "resent-bcc", "content-length", "return-path" };
	for (size_t i = 0; i < ARRAY_LEN(drop); i++)
		if (smtpd_submit_text_is(p, n, drop[i]))
			return true;
	return false;
}

/* phrase for From: as an atom sequence, or quoted when it holds specials */
static int smtpd_submit_text_phrase(struct buf *out, const char *s)
{
	bool plain = true;
	for (const char *q = s; *q; q++)
		if (strchr("()<>[]:;@\\,.\"", *q) != NULL || (unsigned char)*q < 32)
			plain = false;
	if (plain)
		return buf_puts(out, s);
	int r = buf_putc(out, '"');
	for (const char *q = s; *q && r == 0; q++) {
		if ((unsigned char)*q < 32)
			continue; /* no line breaks or controls in a header */
		if (*q == '"' || *q == '\\')
			r = buf_putc(out, '\\');
		if (r == 0)
			r = buf_putc(out, *q);
	}
	return r == 0 ? buf_putc(out, '"') : r;
}

static int smtpd_submit_text_fill(struct buf *out, const struct smtpd_submit_fill *f,
				  struct smtpd_submit_info *info, bool have_from, bool have_date,
				  bool have_msgid)
{
	int r = 0;
	if (!have_from && f->from[0] != '\0') {
		r |= buf_puts(out, "From: ");
		if (f->fullname[0] != '\0') {
			r |= smtpd_submit_text_phrase(out, f->fullname);
			r |= buf_printf(out, " <%s>\r\n", f->from);
		} else {
			r |= buf_printf(out, "%s\r\n", f->from);
		}
		info->added_from = true;
	}
	if (!have_date) {
		r |= buf_printf(out, "Date: %s\r\n", f->date);
		info->added_date = true;
	}
	if (!have_msgid) {
		r |= buf_printf(out, "Message-ID: %s\r\n", f->msgid);
		info->added_msgid = true;
	}
	return r < 0 ? -1 : 0;
}

/* keep the Message-ID value for the log line: blanks trimmed, first line */
static void smtpd_submit_text_keep_msgid(struct smtpd_submit_info *info, const char *p, size_t n)
{
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	if (n > SMTPD_SUBMIT_MSGID_MAX)
		n = SMTPD_SUBMIT_MSGID_MAX;
	memcpy(info->msgid, p, n);
	info->msgid[n] = '\0';
}

int smtpd_submit_text_convert(const char *in, size_t len, const struct smtpd_submit_fill *fill,
			      struct buf *out, struct smtpd_submit_info *info)
{
	memset(info, 0, sizeof(*info));
	if (len > 0 && memchr(in, '\0', len) != NULL)
		info->saw_nul = true;
	bool top = true, headers = true, dropping = false;
	bool have_from = false, have_date = false, have_msgid = false;
	size_t pos = 0;
	while (pos < len) {
		const char *line = in + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		pos += nl ? n + 1 : n;
		if (n > 0 && line[n - 1] == '\r')
			n--; /* CRLF and LF input alike (sendmail_fix_line_endings) */
		if (top && ((n >= 5 && memcmp(line, "From ", 5) == 0) ||
			    (n >= 6 && memcmp(line, ">From ", 6) == 0)))
			continue; /* mbox envelope line(s) on top */
		top = false;
		if (headers) {
			if (n > 0 && (line[0] == ' ' || line[0] == '\t')) {
				if (dropping) /* continuation of a dropped header */
					continue;
			} else {
				size_t hn = smtpd_submit_text_hname(line, n);
				if (hn == 0) {
					/* end of headers: the empty line, or (no blank
					 * line) the first body line */
					headers = false;
					dropping = false;
					if (smtpd_submit_text_fill(out, fill, info, have_from, have_date,
								   have_msgid) < 0)
						return -1;
					if (n > 0 && buf_puts(out, "\r\n") < 0)
						return -1;
				} else if (smtpd_submit_text_dropped(line, hn)) {
					dropping = true;
					info->dropped++;
					continue;
				} else {
					dropping = false;
					if (smtpd_submit_text_is(line, hn, "from"))
						have_from = true;
					else if (smtpd_submit_text_is(line, hn, "date"))
						have_date = true;
					else if (smtpd_submit_text_is(line, hn, "received"))
						info->received++;
					else if (smtpd_submit_text_is(line, hn, "message-id") && !have_msgid) {
						have_msgid = true;
						const char *colon = memchr(line, ':', n);
						smtpd_submit_text_keep_msgid(info, colon + 1,
									     n - (size_t)(colon + 1 - line));
					}
				}
			}
		}
		if (buf_append(out, line, n) < 0 || buf_puts(out, "\r\n") < 0)
			return -1;
	}
	if (headers) {
		/* only headers (or nothing at all): add ours, then the
		 * empty body's separator */
		if (smtpd_submit_text_fill(out, fill, info, have_from, have_date, have_msgid) < 0 ||
		    buf_puts(out, "\r\n") < 0)
			return -1;
	}
	if (info->msgid[0] == '\0' && info->added_msgid)
		smtpd_submit_text_keep_msgid(info, fill->msgid, strlen(fill->msgid));
	return 0;
}
