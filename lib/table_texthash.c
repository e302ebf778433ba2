/*
 * table_texthash.c - texthash: tables, and the text and aliases(5) source
 * formats that postern map compiles.
 *
 * Purpose: read "key value" text tables (Postfix texthash / postmap source)
 * and aliases(5) files into an in-memory sorted key/value store.
 * Owns: the store of an open texthash: table.
 * Never: writes files; keeps a file open after open().
 * Limits: TABLE_LINE_MAX per logical line, TABLE_FILE_MAX per file.
 * Tests: tests/unit/lib/table_test.c.
 */
#include <ctype.h>

#include "lib/log.h"
#include "lib/table.h"
#include "lib/table_int.h"
#include "lib/fileio.h"
#include "lib/common.h"

struct text_ctx {
	const char *path;     /* for messages */
	struct table_kv *kv;  /* destination */
};

/* "key whitespace value": the key ends at the first blank, the value is the
 * rest without surrounding blanks (Postfix postmap(1) source format). */
static int text_line(void *vctx, char *line, int lineno, const char **error_r)
{
	struct text_ctx *ctx = vctx;
	char *p = line;
	while (*p && !isspace((unsigned char)*p))
		p++;
	if (*p == 0) {
		*error_r = table_error_set("%s:%d: expected \"key whitespace value\"", ctx->path, lineno);
		return -1;
	}
	*p++ = 0;
	while (isspace((unsigned char)*p))
		p++;
	char *k = table_fold(line);
	table_kv_add(ctx->kv, k, p, lineno);
	free(k);
	return 0;
}

static int text_load_with(const char *path, struct table_kv *kv,
			  int (*fn)(void *, char *, int, const char **), const char **error_r)
{
	char *data;
	size_t len;
	if (file_read_text(path, TABLE_FILE_MAX, &data, &len) < 0) {
		*error_r = table_error_set("%s: %s", path, strerror(errno));
		return -1;
	}
	struct text_ctx ctx = { path, kv };
	int rc = table_lines(path, data, len, fn, &ctx, error_r);
	free(data);
	return rc;
}

int table_text_load(const char *path, struct table_kv *kv, const char **error_r)
{
	return text_load_with(path, kv, text_line, error_r);
}

/* aliases(5): "name: value, value"; name may be "quoted". */
static int alias_line(void *vctx, char *line, int lineno, const char **error_r)
{
	struct text_ctx *ctx = vctx;
	char *p = line, *ks, *ke;
	if (*p == '"') {
		ks = ++p;
		while (*p && *p != '"') {
			if (*p == '\\' && p[1])
				p++;
			p++;
		}
		if (*p != '"') {
			*error_r = table_error_set("%s:%d: unterminated quoted name", ctx->path, lineno);
			return -1;
		}
		ke = p++;
		while (*p == ' ' || *p == '\t')
			p++;
	} else {
		ks = p;
		while (*p && *p != ':' && !isspace((unsigned char)*p))
			p++;
		ke = p;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	if (*p != ':' || ke == ks) {
		*error_r = table_error_set("%s:%d: expected \"name: value\"", ctx->path, lineno);
		return -1;
	}
	p++;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == 0) {
		*error_r = table_error_set("%s:%d: empty alias value", ctx->path, lineno);
		return -1;
	}
	*ke = 0;
	char *k = table_fold(ks);
	table_kv_add(ctx->kv, k, p, lineno);
	free(k);
	return 0;
}

int table_aliases_load(const char *path, struct table_kv *kv, const char **error_r)
{
	return text_load_with(path, kv, alias_line, error_r);
}

static void texthash_dup(void *vctx, const char *key, int line, int first_line)
{
	if (!table_quiet)
		log_warning("%s:%d: duplicate key \"%.100s\" ignored (first at line %d)", (const char *)vctx,
		    line, key, first_line);
}

static int texthash_open(struct table *t, const char *name, const char **error_r)
{
	struct table_kv *kv = xcalloc(1, sizeof(*kv));
	if (table_text_load(name, kv, error_r) < 0) {
		table_kv_free(kv);
		free(kv);
		return -1;
	}
	table_kv_finish(kv, texthash_dup, (void *)name);
	t->priv = kv;
	return 0;
}

static int texthash_lookup(struct table *t, const char *key, char **value_r, const char **error_r)
{
	const char *v = table_kv_get(t->priv, key);
	if (v == NULL)
		return 0;
	*value_r = xstrdup(v);
	return 1;
}

static void texthash_close(struct table *t)
{
	table_kv_free(t->priv);
	free(t->priv);
}

const struct table_ops table_texthash_ops = { "texthash", true, texthash_open, texthash_lookup,
					      texthash_close };
