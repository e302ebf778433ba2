/*
 * common.h - what every Postern source file includes, last among its includes.
 *
 * Purpose: the few macros and allocation helpers the whole tree shares, and the
 * poisoning of C library functions that have no length argument or that hide
 * errors (STYLE.md). Because poisoning rejects any later mention of a name,
 * include this header after all system and library headers.
 */
#ifndef POSTERN_COMMON_H
#define POSTERN_COMMON_H

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define NORETURN __attribute__((noreturn))
#else
#define PRINTF_LIKE(f, a)
#define NORETURN
#endif

/* Always-on invariant check: a false condition is our own bug, never a
 * peer's doing, so it aborts with the location (log_panic). */
#define CHECK(cond)                                                              \
	do {                                                                     \
		if (!(cond))                                                     \
			common_check_failed(__FILE__, __LINE__, #cond);          \
	} while (0)

/* Called by CHECK(); writes the failed condition to the log and aborts. */
NORETURN void common_check_failed(const char *file, int line, const char *cond);

/* Allocation that aborts on failure ("x" prefix). Sizes are size_t;
 * xcalloc and xreallocarray check the multiplication for overflow. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t n, size_t size);
/* Owned copy of a NUL-terminated string (NULL gives NULL). */
char *xstrdup(const char *s);
/* Owned NUL-terminated copy of n bytes (which may hold NULs). */
char *xmemdup(const void *p, size_t n);
/* Owned formatted string. */
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Overflow-checked size arithmetic for sizes taken from a peer or a file:
 * return false (and leave *r unspecified) on overflow. */
static inline bool size_add(size_t a, size_t b, size_t *r)
{
	return !__builtin_add_overflow(a, b, r);
}
static inline bool size_mul(size_t a, size_t b, size_t *r)
{
	return !__builtin_mul_overflow(a, b, r);
}

/* Unbounded or error-hiding C library functions are never used. */
#ifndef POSTERN_NO_POISON
#pragma GCC poison strcpy strcat sprintf vsprintf gets strtok strncpy strncat atoi atol
#endif

#endif
