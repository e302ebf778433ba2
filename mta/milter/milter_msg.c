/*
 * milter_msg.c - header list and body edited by a milter chain (milter_msg.h).
 *
 * Purpose: hold a message between milters and apply header/body edits.
 * Owns: header strings and the body buffer.
 * Never: performs I/O; trusts an index (every index is clamped).
 * Limits: body and total header text each <= the maximum given at init.
 * Tests: tests/unit/milter/milter_msg_test.c.
 */
#include <strings.h>

#include "mta/milter/milter_msg.h"
#include "lib/common.h"

void milter_msg_init(struct milter_msg *m, size_t max)
{
	memset(m, 0, sizeof(*m));
	buf_init(&m->body, max);
}

void milter_msg_free(struct milter_msg *m)
{
	size_t max = m->body.max;
	for (size_t i = 0; i < m->n; i++) {
		free(m->hdrs[i].name);
		free(m->hdrs[i].value);
	}
	free(m->hdrs);
	buf_free(&m->body);
	milter_msg_init(m, max);
}

static int milter_msg_account(struct milter_msg *m, size_t name_len, size_t value_len)
{
	size_t add, total;
	if (!size_add(name_len, value_len, &add) || !size_add(m->header_bytes, add, &total) ||
	    total > m->body.max)
		return -1;
	m->header_bytes = total;
	return 0;
}

static int milter_msg_insert_at(struct milter_msg *m, size_t pos, char *name, char *value,
				bool hidden)
{
	if (milter_msg_account(m, strlen(name), strlen(value)) < 0) {
		free(name);
		free(value);
		return -1;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->hdrs = xreallocarray(m->hdrs, m->cap, sizeof(*m->hdrs));
	}
	if (pos > m->n)
		pos = m->n;
	memmove(m->hdrs + pos + 1, m->hdrs + pos, (m->n - pos) * sizeof(*m->hdrs));
	m->hdrs[pos] = (struct milter_hdr){ name, value, hidden };
	m->n++;
	return 0;
}

int milter_msg_add(struct milter_msg *m, const char *name, size_t name_len, const char *value,
		   size_t value_len, bool hidden)
{
	return milter_msg_insert_at(m, m->n, xmemdup(name, name_len), xmemdup(value, value_len),
				    hidden);
}

int milter_msg_body_append(struct milter_msg *m, const void *p, size_t n)
{
	return buf_append(&m->body, p, n);
}

int milter_msg_parse(struct milter_msg *m, const char *text, size_t len, const char **error_r)
{
	size_t pos = 0;
	struct buf val;
	buf_init(&val, m->body.max);
	/* header block */
	while (pos < len) {
		size_t eol = pos;
		while (eol < len && text[eol] != '\n')
			eol++;
		size_t next = eol < len ? eol + 1 : eol;
		size_t end = (eol > pos && text[eol - 1] == '\r') ? eol - 1 : eol;
		if (end == pos) { /* blank line: body follows */
			pos = next;
			break;
		}
		const char *colon = memchr(text + pos, ':', end - pos);
		if (colon == NULL || text[pos] == ' ' || text[pos] == '\t')
			break; /* not a header: the body starts here */
		size_t name_len = (size_t)(colon - (text + pos));
		buf_reset(&val);
		if (buf_append(&val, colon + 1, end - (size_t)(colon + 1 - text)) < 0)
			goto toolong;
		pos = next;
		/* continuation lines */
		while (pos < len && (text[pos] == ' ' || text[pos] == '\t')) {
			eol = pos;
			while (eol < len && text[eol] != '\n')
				eol++;
			next = eol < len ? eol + 1 : eol;
			end = (eol > pos && text[eol - 1] == '\r') ? eol - 1 : eol;
			if (buf_putc(&val, '\n') < 0 || buf_append(&val, text + pos, end - pos) < 0)
				goto toolong;
			pos = next;
		}
		/* trailing blanks of the name are kept as written: Postfix
		 * sends the name up to the colon */
		if (milter_msg_add(m, text + (colon - name_len - text), name_len, val.data ? val.data : "",
				   val.len, false) < 0)
			goto toolong;
	}
	/* body with CRLF line ends */
	while (pos < len) {
		size_t eol = pos;
		while (eol < len && text[eol] != '\n')
			eol++;
		size_t end = (eol > pos && text[eol - 1] == '\r') ? eol - 1 : eol;
		if (buf_append(&m->body, text + pos, end - pos) < 0 ||
		    (eol < len && buf_append(&m->body, "\r\n", 2) < 0))
			goto toolong;
		pos = eol < len ? eol + 1 : eol;
	}
	buf_free(&val);
	return 0;
toolong:
	buf_free(&val);
	*error_r = "message too large";
	return -1;
}

int milter_msg_chgheader(struct milter_msg *m, const char *name, uint32_t index,
			 const char *value)
{
	uint32_t seen = 0;
	if (index == 0)
		index = 1; /* as Postfix */
	for (size_t i = 0; i < m->n; i++) {
		if (m->hdrs[i].hidden || strcasecmp(m->hdrs[i].name, name) != 0)
			continue;
		if (++seen != index)
			continue;
		m->header_bytes -= strlen(m->hdrs[i].value);
		if (*value == 0 || strcmp(value, " ") == 0) {
			m->header_bytes -= strlen(m->hdrs[i].name);
			free(m->hdrs[i].name);
			free(m->hdrs[i].value);
			memmove(m->hdrs + i, m->hdrs + i + 1, (m->n - i - 1) * sizeof(*m->hdrs));
			m->n--;
			return 0;
		}
		if (milter_msg_account(m, 0, strlen(value)) < 0) {
			m->header_bytes += strlen(m->hdrs[i].value);
			return -1;
		}
		free(m->hdrs[i].value);
		m->hdrs[i].value = xstrdup(value);
		return 0;
	}
	if (*value == 0 || strcmp(value, " ") == 0)
		return 0;
	return milter_msg_insert_at(m, m->n, xstrdup(name), xstrdup(value), false);
}

int milter_msg_insheader(struct milter_msg *m, uint32_t index, const char *name,
			 const char *value)
{
	return milter_msg_insert_at(m, index, xstrdup(name), xstrdup(value), false);
}

char *milter_msg_value_in(const char *value, size_t len, bool leadspc)
{
	char *out = xmalloc(len + 2), *o = out;
	if (!leadspc)
		*o++ = ' ';
	for (size_t i = 0; i < len; i++) {
		if (value[i] == '\r' && i + 1 < len && value[i + 1] == '\n')
			continue;
		*o++ = value[i];
	}
	*o = 0;
	return out;
}

const char *milter_msg_value_out(const char *v, bool leadspc)
{
	if (!leadspc && v[0] == ' ')
		return v + 1;
	return v;
}

int milter_msg_render(const struct milter_msg *m, struct buf *out)
{
	for (size_t i = 0; i < m->n; i++) {
		const char *v = m->hdrs[i].value;
		if (buf_puts(out, m->hdrs[i].name) < 0 || buf_putc(out, ':') < 0)
			return -1;
		for (; *v; v++) {
			if (*v == '\n') {
				/* a line end inside a value only ever starts a
				 * continuation line: a milter's value with a bare
				 * line end (or one at its end) cannot start a new
				 * header or end the header block */
				if (v[1] == '\0')
					continue;
				if (buf_append(out, "\r\n", 2) < 0)
					return -1;
				if (v[1] != ' ' && v[1] != '\t' && buf_putc(out, '\t') < 0)
					return -1;
			} else if (*v == '\r') {
				continue;
			} else if (buf_putc(out, *v) < 0) {
				return -1;
			}
		}
		if (buf_append(out, "\r\n", 2) < 0)
			return -1;
	}
	if (buf_append(out, "\r\n", 2) < 0)
		return -1;
	return buf_append(out, m->body.data, m->body.len);
}
