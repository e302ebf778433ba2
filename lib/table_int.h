/*
 * table_int.h - the backend contract behind lib/table.h (lib/table*.c only).
 *
 * A backend fills struct table_ops. open() gets the part of the spec after
 * "type:" and sets t->priv; lookup() gets the key already folded to
 * lowercase when the backend declared fold; close() frees t->priv.
 */
#ifndef POSTERN_TABLE_INT_H
#define POSTERN_TABLE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/table.h"

#define TABLE_LINE_MAX (64 * 1024)        /* longest logical line of a table file */
#define TABLE_FILE_MAX (256 * 1024 * 1024) /* largest table source file */

struct table;

struct table_ops {
	const char *type; /* "texthash" */
	bool fold;        /* lowercase keys before lookup */
	int (*open)(struct table *t, const char *name, const char **error_r);
	int (*lookup)(struct table *t, const char *key, char **value_r, const char **error_r);
	void (*close)(struct table *t);
};

struct table {
	const struct table_ops *ops; /* backend */
	char *spec;                  /* full spec as opened */
	void *priv;                  /* backend state */
};

extern const struct table_ops table_inline_ops, table_static_ops, table_texthash_ops,
	table_lmdb_ops, table_regexp_ops, table_pcre_ops, table_cidr_ops, table_unix_ops;

/* When true, table_open logs no warnings (hash: aliasing, duplicate keys):
 * set by cfg_check, which reports problems itself. */
extern bool table_quiet;

/* Format into the module's error buffer and return it. */
const char *table_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Owned lowercase copy. */
char *table_fold(const char *s);

/*
 * Walk the logical lines of a table file: '#' lines (first non-blank) and
 * blank lines are skipped, a line starting with whitespace continues the
 * previous one (joined with one space). fn gets the logical line (NUL-
 * terminated, trailing whitespace removed) and the line number where it
 * starts; fn returns 0 or -1 (stop; fn has set *error_r). A NUL byte, an
 * over-long line or a leading continuation line is an error "PATH:LINE: ...".
 */
int table_lines(const char *path, const char *text, size_t len,
		int (*fn)(void *ctx, char *line, int lineno, const char **error_r), void *ctx,
		const char **error_r);

/* In-memory key -> value store, keys unique (first one wins). */
struct table_kv {
	char **keys;   /* owned */
	char **vals;   /* owned */
	int *lines;    /* source line of each pair */
	size_t n, cap; /* used / allocated */
	bool sorted;   /* table_kv_finish done */
};
void table_kv_add(struct table_kv *kv, const char *key, const char *val, int line);
/* Sort; duplicates keep the first added and are reported through dup(). */
void table_kv_finish(struct table_kv *kv, void (*dup)(void *ctx, const char *key, int line, int first_line),
		     void *ctx);
/* Borrowed value or NULL. */
const char *table_kv_get(const struct table_kv *kv, const char *key);
void table_kv_free(struct table_kv *kv);

/* Parse a Postfix text table ("key value" lines) from path into kv (keys
 * folded). 0, or -1 with *error_r "PATH:LINE: reason". */
int table_text_load(const char *path, struct table_kv *kv, const char **error_r);

/* Parse aliases(5) format from path into kv. Same convention. */
int table_aliases_load(const char *path, struct table_kv *kv, const char **error_r);

/* Write kv into path.lmdb atomically. 0 or -1 with *error_r. */
int table_lmdb_write(const char *path, const struct table_kv *kv, const char **error_r);

/* Pattern-table helpers shared by regexp: and pcre: (table_pattern.c). */
struct table_pattern_ops {
	/* compile pattern with the backend's default flags toggled by flags;
	 * returns an owned matcher or NULL with *error_r */
	void *(*compile)(const char *pattern, const char *flags, const char **error_r);
	/* match subject; returns 1 with ovec filled (start,end pairs, -1 for
	 * unset; n pairs = 10), 0 no match, -1 error */
	int (*match)(void *m, const char *subject, long ovec[20]);
	void (*free)(void *m);
	const char *flag_chars; /* accepted flag letters */
};
void *table_pattern_open(const char *path, const struct table_pattern_ops *ops, const char **error_r);
int table_pattern_lookup(void *pt, const char *key, char **value_r, const char **error_r);
void table_pattern_close(void *pt);

#endif
