/*
 * smtpd_data.c - DATA/BDAT content state machine (see smtpd_data.h).
 *
 * Purpose: turn client bytes into stored content and find the end of DATA.
 * Owns: nothing but its struct. Never: does I/O or logs; ends DATA on
 * anything but CR LF . CR LF where the first CR LF was a real one
 * (SMTP smuggling, CVE-2023-51764: LF.LF, LF.CRLF, CRLF.LF, CR.CR never end
 * a message); lets output pass max_size.
 * Limits: message_size_limit (max_size); header_size_limit per logical
 * header (header_limit: the excess is discarded, Postfix's meaning);
 * Message-ID kept up to SMTPD_DATA_MSGID_MAX bytes.
 * Tests: tests/unit/smtpd/smtpd_data_test.c, tests/fuzz/smtpd_data_fuzz.c.
 */
#include <strings.h>

#include "mta/smtpd/smtpd_data.h"
#include "lib/common.h"

enum smtpd_bare_lf smtpd_data_bare_lf_mode(const char *word)
{
	if (word != NULL && strcasecmp(word, "reject") == 0)
		return SMTPD_BARE_LF_REJECT;
	if (word != NULL && strcasecmp(word, "no") == 0)
		return SMTPD_BARE_LF_ALLOW;
	return SMTPD_BARE_LF_NORMALIZE;
}

void smtpd_data_init(struct smtpd_data *d, enum smtpd_bare_lf mode, bool bdat, uint64_t max_size)
{
	memset(d, 0, sizeof(*d));
	d->state = SMTPD_DS_BOL;
	d->bare_lf = mode;
	d->bdat = bdat;
	d->bol_after_crlf = true; /* the DATA command line itself ended in CRLF */
	d->max_size = max_size;
	d->in_header = true;
}

void smtpd_data_header_limit(struct smtpd_data *d, uint64_t limit)
{
	d->header_limit = limit;
}

static void smtpd_data_out(struct smtpd_data *d, struct buf *out, const char *p, size_t n)
{
	d->size += n;
	if (d->max_size != 0 && d->size > d->max_size)
		d->too_big = true;
	if (d->too_big)
		return; /* keep reading to the end, store nothing more */
	CHECK(buf_append(out, p, n) == 0);
}

/* Does the current line start like a header field ("Name:" or the
 * obsolete "Name :")? Only the kept first bytes (hline) are looked at. */
static bool smtpd_data_hline_is_field(const struct smtpd_data *d)
{
	size_t i = 0;
	while (i < d->hline_len && (unsigned char)d->hline[i] > ' ' && d->hline[i] != 0x7f &&
	       d->hline[i] != ':')
		i++;
	if (i == 0)
		return false;
	while (i < d->hline_len && (d->hline[i] == ' ' || d->hline[i] == '\t'))
		i++;
	return i < d->hline_len && d->hline[i] == ':';
}

/* Bytes inside a line (no line end). */
static void smtpd_data_bytes(struct smtpd_data *d, struct buf *out, const char *p, size_t n)
{
	if (n == 0)
		return;
	if (!d->saw_nul && memchr(p, '\0', n) != NULL)
		d->saw_nul = true;
	if (d->in_header) {
		bool bol = d->hline_len == 0; /* the first bytes of a line */
		size_t room = sizeof(d->hline) - d->hline_len;
		size_t k = n < room ? n : room;
		memcpy(d->hline + d->hline_len, p, k);
		d->hline_len += k;
		if (d->header_limit != 0) {
			if (bol && (p[0] == ' ' || p[0] == '\t')) {
				/* a continuation: kept while its fold and first
				 * byte fit, so a kept line is never empty (an
				 * empty line would end the header block) */
				if (d->hdr_cut || d->hdr_len + 1 >= d->header_limit) {
					d->hdr_cut = d->line_drop = true;
				} else {
					d->hdr_len++;
				}
			} else if (bol) {
				d->hdr_len = 0; /* a new header, or the body's first line */
				d->hdr_cut = false;
			}
			if (d->line_drop) {
				d->header_truncated = true;
				return;
			}
			uint64_t left = d->hdr_len < d->header_limit ? d->header_limit - d->hdr_len : 0;
			bool cont = d->hline[0] == ' ' || d->hline[0] == '\t';
			if (n > left && (cont || smtpd_data_hline_is_field(d))) {
				/* Postfix: "If a header is larger, the excess is
				 * discarded"; the line still ends here. A first
				 * line that is no header field is the body's, and
				 * is not cut (Postfix's is_header) */
				n = (size_t)left;
				d->hdr_cut = d->header_truncated = true;
			}
			d->hdr_len += n;
			if (n == 0)
				return;
		}
		d->header_bytes += n;
	}
	smtpd_data_out(d, out, p, n);
}

static void smtpd_data_msgid_add(struct smtpd_data *d, const char *p, size_t n)
{
	while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	size_t room = SMTPD_DATA_MSGID_MAX - d->msgid_len;
	if (n > room)
		n = room;
	memcpy(d->msgid + d->msgid_len, p, n);
	d->msgid_len += n;
	d->msgid[d->msgid_len] = '\0';
}

/* A header line is complete: look at it. */
static void smtpd_data_header_line(struct smtpd_data *d)
{
	const char *h = d->hline;
	size_t n = d->hline_len;
	if (n == 0) {
		d->in_header = false; /* the empty line between header and body */
		if (d->hdr_msgid)
			d->msgid_done = true;
		return;
	}
	if (h[0] == ' ' || h[0] == '\t') {
		if (d->hdr_msgid)
			smtpd_data_msgid_add(d, h, n);
		return;
	}
	if (d->hdr_msgid) {
		d->hdr_msgid = false;
		d->msgid_done = true;
	}
	const char *colon = memchr(h, ':', n);
	if (colon == NULL) {
		/* not a header field: the body started without a blank line */
		d->in_header = false;
		return;
	}
	size_t name_len = (size_t)(colon - h);
	if (name_len == 8 && strncasecmp(h, "Received", 8) == 0)
		d->received++;
	else if (name_len == 10 && strncasecmp(h, "Message-ID", 10) == 0 && !d->msgid_done &&
		 d->msgid_len == 0) {
		d->hdr_msgid = true;
		smtpd_data_msgid_add(d, colon + 1, n - name_len - 1);
	}
}

/* End of a content line: store CRLF. */
static void smtpd_data_eol(struct smtpd_data *d, struct buf *out, bool real_crlf)
{
	bool drop = false;
	if (d->in_header) {
		drop = d->line_drop;
		d->line_drop = false;
		if (!drop)
			d->header_bytes += 2;
		smtpd_data_header_line(d);
		d->hline_len = 0;
	}
	if (!drop)
		smtpd_data_out(d, out, "\r\n", 2);
	d->bol_after_crlf = real_crlf;
	d->state = SMTPD_DS_BOL;
}

enum smtpd_data_result smtpd_data_feed(struct smtpd_data *d, const char *p, size_t n,
				       struct buf *out, size_t *used)
{
	size_t i = 0;
	while (i < n) {
		char c = p[i];
		switch (d->state) {
		case SMTPD_DS_BOL:
			if (c == '.' && !d->bdat) {
				d->state = SMTPD_DS_DOT;
				i++;
			} else {
				d->state = SMTPD_DS_MID;
			}
			break;
		case SMTPD_DS_DOT:
			if (c == '\r') {
				d->state = SMTPD_DS_DOT_CR;
				i++;
			} else if (c == '\n') {
				/* ".\n": bare LF. Never the end of DATA; the lone
				 * dot is content (the next hop dot-stuffs it). */
				d->saw_bare_lf = true;
				smtpd_data_bytes(d, out, ".", 1);
				smtpd_data_eol(d, out, false);
				i++;
			} else {
				d->state = SMTPD_DS_MID; /* dot-unstuffing: drop it */
			}
			break;
		case SMTPD_DS_DOT_CR:
			if (c == '\n' && d->bol_after_crlf) {
				*used = i + 1;
				return SMTPD_DATA_END; /* CR LF . CR LF */
			}
			if (c == '\n') {
				/* LF . CR LF: the line before ended in a bare LF, so
				 * this "." is content, not the end (smuggling). */
				smtpd_data_bytes(d, out, ".", 1);
				smtpd_data_eol(d, out, true);
				i++;
			} else {
				/* ".\r" then more: an unstuffed line starting with a
				 * bare CR */
				d->saw_bare_cr = true;
				smtpd_data_bytes(d, out, "\r", 1);
				d->state = SMTPD_DS_MID;
			}
			break;
		case SMTPD_DS_MID: {
			size_t s = i;
			while (i < n && p[i] != '\r' && p[i] != '\n')
				i++;
			smtpd_data_bytes(d, out, p + s, i - s);
			if (i < n && p[i] == '\r') {
				d->state = SMTPD_DS_CR;
				i++;
			} else if (i < n) {
				d->saw_bare_lf = true; /* bare LF ends a line */
				smtpd_data_eol(d, out, false);
				i++;
			}
			break;
		}
		case SMTPD_DS_CR:
			if (c == '\n') {
				smtpd_data_eol(d, out, true);
				i++;
			} else {
				d->saw_bare_cr = true; /* kept as a data byte */
				smtpd_data_bytes(d, out, "\r", 1);
				d->state = SMTPD_DS_MID;
			}
			break;
		}
	}
	*used = n;
	return SMTPD_DATA_MORE;
}

void smtpd_data_finish(struct smtpd_data *d, struct buf *out)
{
	if (d->state == SMTPD_DS_CR) {
		d->saw_bare_cr = true;
		smtpd_data_bytes(d, out, "\r", 1);
		d->state = SMTPD_DS_MID;
	}
	if (d->hdr_msgid)
		d->msgid_done = true;
}
