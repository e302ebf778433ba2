/*
 * mem.c - allocation helpers that abort instead of failing.
 *
 * Purpose: one place where out-of-memory becomes an abort with a message.
 * Owns: nothing. Never: returns NULL.
 * Tests: tests/unit/lib/buf_test.c (indirectly).
 */
#include "lib/log.h"
#include "lib/common.h"

static NORETURN void mem_out(size_t size)
{
	log_panic("out of memory allocating %zu bytes", size);
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);
	if (p == NULL)
		mem_out(size);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		mem_out(n * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);
	if (p == NULL)
		mem_out(size);
	return p;
}

void *xreallocarray(void *ptr, size_t n, size_t size)
{
	size_t total;
	if (!size_mul(n, size, &total))
		log_panic("allocation size overflow (%zu x %zu)", n, size);
	return xrealloc(ptr, total);
}

char *xstrdup(const char *s)
{
	if (s == NULL)
		return NULL;
	return xmemdup(s, strlen(s));
}

char *xmemdup(const void *p, size_t n)
{
	size_t total;
	if (!size_add(n, 1, &total))
		log_panic("allocation size overflow");
	char *d = xmalloc(total);
	if (n > 0)
		memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		mem_out(0);
	return s;
}

void common_check_failed(const char *file, int line, const char *cond)
{
	log_panic("CHECK failed at %s:%d: %s", file, line, cond);
}
