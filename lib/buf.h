/*
 * buf.h - the two length-carrying byte types of the tree.
 *
 * struct str is a borrowed view (pointer + length) into bytes someone else
 * owns. struct buf is an owned, growable byte buffer with a hard maximum fixed
 * at creation: appending past it fails instead of growing, so every limit
 * (SMTP line, message size, IPC message) is checked before memory is spent.
 * Both are binary-safe; buf keeps a NUL after the data as a safety net only.
 */
#ifndef POSTERN_BUF_H
#define POSTERN_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct str {
	const char *p; /* first byte; may be NULL when len == 0 */
	size_t len;    /* number of bytes */
};

#define STR_LIT(s) ((struct str){ (s), sizeof(s) - 1 })

/* View of a NUL-terminated string (NULL gives the empty view). */
struct str str_of(const char *s);
/* True when the two views hold the same bytes. */
bool str_eq(struct str a, struct str b);
/* ASCII case-insensitive equality. */
bool str_case_eq(struct str a, struct str b);
/* True when a starts with prefix (ASCII case-insensitive). */
bool str_case_prefix(struct str a, const char *prefix);
/* Owned NUL-terminated copy of the view (xmemdup). */
char *str_dup(struct str s);

struct buf {
	char *data;  /* owned; NUL after len; NULL until first append */
	size_t len;  /* bytes in use */
	size_t cap;  /* bytes allocated, excluding the trailing NUL */
	size_t max;  /* hard maximum for len, fixed at buf_init */
};

/* Initialise an empty buffer that may hold at most max bytes. Allocates
 * nothing yet. */
void buf_init(struct buf *b, size_t max);
/* Release the memory; the buffer is empty afterwards and may be reused. */
void buf_free(struct buf *b);
/* Forget the content, keep the memory. */
void buf_reset(struct buf *b);
/* Append n bytes. Returns 0, or -1 (nothing appended) when len would pass max. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Append a NUL-terminated string; same convention as buf_append. */
int buf_puts(struct buf *b, const char *s);
/* Append one byte; same convention. */
int buf_putc(struct buf *b, char c);
/* Append formatted text; -1 and nothing appended when it would pass max. */
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Remove the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Shorten to n bytes (n <= len). */
void buf_truncate(struct buf *b, size_t n);
/* View of the whole content. */
struct str buf_str(const struct buf *b);
/* The content as a NUL-terminated string (never NULL; "" when empty). */
const char *buf_cstr(const struct buf *b);

/*
 * Append bytes to b with every byte outside printable ASCII (and backslash)
 * written as \ooo, stopping at limit input bytes (then "..." is appended).
 * This is the only way peer text reaches a log line. Returns as buf_append.
 */
int buf_escape(struct buf *b, const void *p, size_t n, size_t limit);

#endif
