/*
 * buf.c - owned bounded buffers and borrowed views (see buf.h).
 *
 * Owns: the memory of each struct buf. Never: grows a buffer past its max.
 * Limits: the max given to buf_init. Tests: tests/unit/lib/buf_test.c.
 */
#include <ctype.h>

#include "lib/buf.h"
#include "lib/common.h"

struct str str_of(const char *s)
{
	return (struct str){ s, s ? strlen(s) : 0 };
}

bool str_eq(struct str a, struct str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool str_case_eq(struct str a, struct str b)
{
	return a.len == b.len && (a.len == 0 || strncasecmp(a.p, b.p, a.len) == 0);
}

bool str_case_prefix(struct str a, const char *prefix)
{
	size_t n = strlen(prefix);
	return a.len >= n && strncasecmp(a.p, prefix, n) == 0;
}

char *str_dup(struct str s)
{
	return xmemdup(s.p, s.len);
}

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* Make room for n more bytes; -1 when that would pass max. */
static int buf_reserve(struct buf *b, size_t n)
{
	size_t need;
	if (!size_add(b->len, n, &need) || need > b->max)
		return -1;
	if (need <= b->cap && b->data != NULL)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > b->max)
		cap = b->max;
	b->data = xrealloc(b->data, cap + 1);
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) < 0)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || buf_reserve(b, (size_t)n) < 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void buf_consume(struct buf *b, size_t n)
{
	CHECK(n <= b->len);
	if (n == 0)
		return;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void buf_truncate(struct buf *b, size_t n)
{
	CHECK(n <= b->len);
	b->len = n;
	if (b->data)
		b->data[n] = '\0';
}

struct str buf_str(const struct buf *b)
{
	return (struct str){ b->data, b->len };
}

const char *buf_cstr(const struct buf *b)
{
	return b->data ? b->data : "";
}

int buf_escape(struct buf *b, const void *p, size_t n, size_t limit)
{
	const unsigned char *s = p;
	size_t take = n < limit ? n : limit;
	for (size_t i = 0; i < take; i++) {
		unsigned char c = s[i];
		int r;
		if (c >= 0x20 && c < 0x7f && c != '\\')
			r = buf_putc(b, (char)c);
		else
			r = buf_printf(b, "\\%03o", c);
		if (r < 0)
			return -1;
	}
	if (take < n)
		return buf_puts(b, "...");
	return 0;
}
