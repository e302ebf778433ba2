/*
 * table.c - lookup tables: "type:name" dispatch, table lists, compile, and
 * the helpers every backend shares (lines, in-memory key/value store).
 *
 * Purpose: one interface (lib/table.h) over the backends in lib/table_*.c.
 * Owns: struct table and struct table_list and what they point to.
 * Never: exits or logs peer data; table files are trusted no more than
 * main.cf (NUL bytes, over-long lines, unbalanced braces are errors).
 * Limits: TABLE_LINE_MAX per logical line, TABLE_FILE_MAX per file.
 * Tests: tests/unit/lib/table_test.c, tests/fuzz/table_fuzz.c.
 */
#include <ctype.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/lines.h"
#include "lib/table.h"
#include "lib/table_int.h"
#include "lib/fileio.h"
#include "lib/common.h"

static char table_errbuf[1024];

bool table_quiet;

const char *table_error_set(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(table_errbuf, sizeof(table_errbuf), fmt, ap);
	va_end(ap);
	return table_errbuf;
}

char *table_fold(const char *s)
{
	char *r = xstrdup(s);
	for (char *p = r; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

struct table_lines_ctx {
	const char *path;
	int (*fn)(void *ctx, char *line, int lineno, const char **error_r);
	void *ctx;
	const char **error_r;
};

/* One logical line, trailing whitespace cut, as a string the callback may
 * change. */
static int table_lines_line(void *ctx, const char *line, size_t len, int lineno)
{
	struct table_lines_ctx *c = ctx;
	while (len > 0 && isspace((unsigned char)line[len - 1]))
		len--;
	char *copy = xmemdup(line, len);
	int rc = c->fn(c->ctx, copy, lineno, c->error_r);
	free(copy);
	return rc;
}

/* the first problem ends the table */
static int table_lines_problem(void *ctx, enum lines_problem p, int lineno)
{
	struct table_lines_ctx *c = ctx;
	if (p == LINES_TOO_LONG)
		*c->error_r = table_error_set("%s:%d: %s %d bytes", c->path, lineno,
					      lines_problem_text(p), TABLE_LINE_MAX);
	else
		*c->error_r = table_error_set("%s:%d: %s", c->path, lineno, lines_problem_text(p));
	return -1;
}

int table_lines(const char *path, const char *text, size_t len,
		int (*fn)(void *ctx, char *line, int lineno, const char **error_r), void *ctx,
		const char **error_r)
{
	static const struct lines_ops ops = { table_lines_line, table_lines_problem };
	struct table_lines_ctx c = { path, fn, ctx, error_r };
	return lines_logical(text, len, TABLE_LINE_MAX, &ops, &c) < 0 ? -1 : 0;
}

/* ---- in-memory key/value store ---- */

void table_kv_add(struct table_kv *kv, const char *key, const char *val, int line)
{
	if (kv->n == kv->cap) {
		kv->cap = kv->cap ? kv->cap * 2 : 16;
		kv->keys = xreallocarray(kv->keys, kv->cap, sizeof(char *));
		kv->vals = xreallocarray(kv->vals, kv->cap, sizeof(char *));
		kv->lines = xreallocarray(kv->lines, kv->cap, sizeof(int));
	}
	kv->keys[kv->n] = xstrdup(key);
	kv->vals[kv->n] = xstrdup(val);
	kv->lines[kv->n] = line;
	kv->n++;
	kv->sorted = false;
}

struct table_kv_ref {
	const struct table_kv *kv; /* not used by the comparison; for clarity */
	size_t idx;                /* insertion order */
	const char *key;           /* borrowed */
};

static int table_kv_cmp(const void *a, const void *b)
{
	const struct table_kv_ref *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void table_kv_finish(struct table_kv *kv, void (*dup)(void *ctx, const char *key, int line, int first_line),
		     void *ctx)
{
	if (kv->n == 0) {
		kv->sorted = true;
		return;
	}
	struct table_kv_ref *refs = xcalloc(kv->n, sizeof(*refs));
	for (size_t i = 0; i < kv->n; i++)
		refs[i] = (struct table_kv_ref){ kv, i, kv->keys[i] };
	qsort(refs, kv->n, sizeof(*refs), table_kv_cmp);
	char **keys = xcalloc(kv->n, sizeof(char *));
	char **vals = xcalloc(kv->n, sizeof(char *));
	int *lines = xcalloc(kv->n, sizeof(int));
	size_t m = 0;
	for (size_t i = 0; i < kv->n; i++) {
		size_t k = refs[i].idx;
		if (m > 0 && strcmp(keys[m - 1], kv->keys[k]) == 0) {
			if (dup)
				dup(ctx, kv->keys[k], kv->lines[k], lines[m - 1]);
			free(kv->keys[k]);
			free(kv->vals[k]);
			continue;
		}
		keys[m] = kv->keys[k];
		vals[m] = kv->vals[k];
		lines[m] = kv->lines[k];
		m++;
	}
	free(refs);
	free(kv->keys);
	free(kv->vals);
	free(kv->lines);
	kv->keys = keys;
	kv->vals = vals;
	kv->lines = lines;
	kv->n = kv->cap = m;
	if (m == 0) {
		kv->cap = 0;
	}
	kv->sorted = true;
}

const char *table_kv_get(const struct table_kv *kv, const char *key)
{
	CHECK(kv->sorted);
	size_t lo = 0, hi = kv->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, kv->keys[mid]);
		if (c == 0)
			return kv->vals[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

void table_kv_free(struct table_kv *kv)
{
	for (size_t i = 0; i < kv->n; i++) {
		free(kv->keys[i]);
		free(kv->vals[i]);
	}
	free(kv->keys);
	free(kv->vals);
	free(kv->lines);
	memset(kv, 0, sizeof(*kv));
}

/* ---- dispatch ---- */

static const struct table_ops *const table_backends[] = {
	&table_inline_ops, &table_static_ops, &table_texthash_ops, &table_lmdb_ops,
	&table_regexp_ops, &table_pcre_ops,   &table_cidr_ops,     &table_unix_ops,
};

/* Split spec into backend and name; hash: and btree: map to lmdb. */
static const struct table_ops *table_backend(const char *spec, const char **name_r,
					     const char **error_r)
{
	while (strncmp(spec, "proxy:", 6) == 0)
		spec += 6; /* no proxymap in Postern: each process opens its tables */
	const char *colon = strchr(spec, ':');
	if (colon == NULL || colon == spec) {
		*error_r = table_error_set("%.200s: missing table type (expected type:name)", spec);
		return NULL;
	}
	size_t tl = (size_t)(colon - spec);
	*name_r = colon + 1;
	if ((tl == 4 && memcmp(spec, "hash", 4) == 0) || (tl == 5 && memcmp(spec, "btree", 5) == 0)) {
		if (!table_quiet)
			log_warning("%.200s: %.*s: tables are read as lmdb:%s (compile with postern map)",
				    spec, (int)tl, spec, colon + 1);
		return &table_lmdb_ops;
	}
	for (size_t i = 0; i < ARRAY_LEN(table_backends); i++)
		if (strlen(table_backends[i]->type) == tl &&
		    memcmp(table_backends[i]->type, spec, tl) == 0)
			return table_backends[i];
	*error_r = table_error_set("%.200s: unknown table type \"%.*s\"", spec, (int)(tl > 40 ? 40 : tl),
				   spec);
	return NULL;
}

struct table *table_open(const char *spec, const char **error_r)
{
	const char *name;
	const struct table_ops *ops = table_backend(spec, &name, error_r);
	if (ops == NULL)
		return NULL;
	struct table *t = xcalloc(1, sizeof(*t));
	t->ops = ops;
	t->spec = xstrdup(spec);
	if (ops->open(t, name, error_r) < 0) {
		free(t->spec);
		free(t);
		return NULL;
	}
	return t;
}

int table_lookup(struct table *t, const char *key, char **value_r, const char **error_r)
{
	*value_r = NULL;
	if (!t->ops->fold)
		return t->ops->lookup(t, key, value_r, error_r);
	char *k = table_fold(key);
	int rc = t->ops->lookup(t, k, value_r, error_r);
	free(k);
	return rc;
}

const char *table_spec(const struct table *t)
{
	return t->spec;
}

void table_free(struct table **tp)
{
	if (tp == NULL || *tp == NULL)
		return;
	struct table *t = *tp;
	t->ops->close(t);
	free(t->spec);
	free(t);
	*tp = NULL;
}

/* ---- lists ---- */

struct table_list {
	struct table **t; /* owned tables in order */
	size_t n;         /* count */
};

struct table_list *table_list_open(const char *list, const char **error_r)
{
	struct table_list *l = xcalloc(1, sizeof(*l));
	const char *p = list ? list : "";
	size_t cap = 0;
	for (;;) {
		p += strspn(p, ", \t\r\n");
		if (*p == 0)
			break;
		/* a spec runs to the next separator outside braces */
		const char *q = p;
		int level = 0;
		while (*q) {
			if (*q == '{')
				level++;
			else if (*q == '}' && level > 0)
				level--;
			else if (level == 0 && strchr(", \t\r\n", *q) != NULL)
				break;
			q++;
		}
		if (level != 0) {
			*error_r = table_error_set("%.200s: unbalanced \"{\"", p);
			table_list_free(&l);
			return NULL;
		}
		char *spec = xmemdup(p, (size_t)(q - p));
		struct table *t = table_open(spec, error_r);
		free(spec);
		if (t == NULL) {
			table_list_free(&l);
			return NULL;
		}
		if (l->n == cap) {
			cap = cap ? cap * 2 : 4;
			l->t = xreallocarray(l->t, cap, sizeof(*l->t));
		}
		l->t[l->n++] = t;
		p = q;
	}
	return l;
}

int table_list_lookup(struct table_list *l, const char *key, char **value_r, const char **error_r)
{
	*value_r = NULL;
	for (size_t i = 0; l != NULL && i < l->n; i++) {
		int rc = table_lookup(l->t[i], key, value_r, error_r);
		if (rc != 0)
			return rc;
	}
	return 0;
}

size_t table_list_count(const struct table_list *l)
{
	return l ? l->n : 0;
}

void table_list_free(struct table_list **lp)
{
	if (lp == NULL || *lp == NULL)
		return;
	struct table_list *l = *lp;
	for (size_t i = 0; i < l->n; i++)
		table_free(&l->t[i]);
	free(l->t);
	free(l);
	*lp = NULL;
}

/* ---- compile (postmap, newaliases) ---- */

struct table_dup_ctx {
	const char *path; /* source file */
};

static void table_compile_dup(void *vctx, const char *key, int line, int first_line)
{
	struct table_dup_ctx *ctx = vctx;
	if (!table_quiet)
		log_warning("%s:%d: duplicate key \"%.100s\" ignored (first at line %d)", ctx->path, line, key,
		    first_line);
}

static int table_compile_common(const char *spec, bool aliases, const char **error_r)
{
	while (strncmp(spec, "proxy:", 6) == 0)
		spec += 6;
	const char *path = spec;
	bool check_only = false;
	const char *colon = strchr(spec, ':');
	if (colon != NULL && spec[0] != '/') {
		size_t tl = (size_t)(colon - spec);
		path = colon + 1;
		if (tl == 8 && memcmp(spec, "texthash", 8) == 0)
			check_only = true;
		else if (!((tl == 4 && memcmp(spec, "lmdb", 4) == 0) ||
			   (tl == 4 && memcmp(spec, "hash", 4) == 0) ||
			   (tl == 5 && memcmp(spec, "btree", 5) == 0))) {
			*error_r = table_error_set("%.200s: cannot compile table type \"%.*s\" (lmdb or texthash)",
						   spec, (int)(tl > 40 ? 40 : tl), spec);
			return -1;
		}
	}
	if (*path == 0) {
		*error_r = table_error_set("%.200s: missing file name", spec);
		return -1;
	}
	struct table_kv kv = { 0 };
	int rc = aliases ? table_aliases_load(path, &kv, error_r) : table_text_load(path, &kv, error_r);
	if (rc == 0) {
		struct table_dup_ctx ctx = { path };
		table_kv_finish(&kv, table_compile_dup, &ctx);
		if (!check_only)
			rc = table_lmdb_write(path, &kv, error_r);
	}
	table_kv_free(&kv);
	return rc;
}

int table_compile(const char *spec, const char **error_r)
{
	return table_compile_common(spec, false, error_r);
}

int table_compile_aliases(const char *spec, const char **error_r)
{
	return table_compile_common(spec, true, error_r);
}
