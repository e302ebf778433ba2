/*
 * table_inline.c - inline:{ k=v, ... } and static:value tables.
 *
 * Purpose: tables whose content is the spec itself (Postfix inline_table(5)
 * and static:).
 * Owns: the parsed key/value pairs.
 * Never: reads files.
 * Tests: tests/unit/lib/table_test.c.
 */
#include <ctype.h>

#include "lib/table.h"
#include "lib/table_int.h"
#include "lib/common.h"

/* Trim blanks around [*s, *e). */
static void inline_trim(const char **s, const char **e)
{
	while (*s < *e && isspace((unsigned char)**s))
		(*s)++;
	while (*e > *s && isspace((unsigned char)(*e)[-1]))
		(*e)--;
}

/* "{ text }" -> text (borrowed range); -1 when name is not braced. */
static int inline_unbrace(const char *name, const char **s, const char **e)
{
	size_t len = strlen(name);
	const char *b = name, *z = name + len;
	inline_trim(&b, &z);
	if (z - b < 2 || *b != '{' || z[-1] != '}')
		return -1;
	b++;
	z--;
	int level = 0;
	for (const char *p = b; p < z; p++) {
		if (*p == '{')
			level++;
		else if (*p == '}' && --level < 0)
			return -1;
	}
	if (level != 0)
		return -1;
	*s = b;
	*e = z;
	return 0;
}

static int inline_open(struct table *t, const char *name, const char **error_r)
{
	const char *s, *e;
	if (inline_unbrace(name, &s, &e) < 0) {
		*error_r = table_error_set("%.200s: expected inline:{ key=value, ... }", t->spec);
		return -1;
	}
	struct table_kv *kv = xcalloc(1, sizeof(*kv));
	const char *p = s;
	while (p < e) {
		while (p < e && (isspace((unsigned char)*p) || *p == ','))
			p++;
		if (p >= e)
			break;
		const char *is, *ie;
		if (*p == '{') {
			int level = 0;
			const char *q = p;
			for (; q < e; q++) {
				if (*q == '{')
					level++;
				else if (*q == '}' && --level == 0)
					break;
			}
			is = p + 1;
			ie = q;
			p = q + 1;
		} else {
			is = p;
			while (p < e && !isspace((unsigned char)*p) && *p != ',')
				p++;
			ie = p;
		}
		inline_trim(&is, &ie);
		const char *eq = memchr(is, '=', (size_t)(ie - is));
		if (eq == NULL) {
			*error_r = table_error_set("%.200s: \"%.*s\": missing '=' (expected key=value)",
						   t->spec, (int)(ie - is > 100 ? 100 : ie - is), is);
			table_kv_free(kv);
			free(kv);
			return -1;
		}
		const char *ks = is, *ke = eq, *vs = eq + 1, *ve = ie;
		inline_trim(&ks, &ke);
		inline_trim(&vs, &ve);
		if (ks == ke) {
			*error_r = table_error_set("%.200s: empty key", t->spec);
			table_kv_free(kv);
			free(kv);
			return -1;
		}
		char *k = xmemdup(ks, (size_t)(ke - ks));
		char *kf = table_fold(k);
		char *v = xmemdup(vs, (size_t)(ve - vs));
		table_kv_add(kv, kf, v, 0);
		free(k);
		free(kf);
		free(v);
	}
	table_kv_finish(kv, NULL, NULL);
	t->priv = kv;
	return 0;
}

static int inline_lookup(struct table *t, const char *key, char **value_r, const char **error_r)
{
	const char *v = table_kv_get(t->priv, key);
	if (v == NULL)
		return 0;
	*value_r = xstrdup(v);
	return 1;
}

static void inline_close(struct table *t)
{
	table_kv_free(t->priv);
	free(t->priv);
}

const struct table_ops table_inline_ops = { "inline", true, inline_open, inline_lookup, inline_close };

static int static_open(struct table *t, const char *name, const char **error_r)
{
	const char *s, *e;
	if (strchr(name, '{') != NULL || strchr(name, '}') != NULL) {
		if (inline_unbrace(name, &s, &e) < 0) {
			*error_r = table_error_set("%.200s: expected static:value or static:{ value }", t->spec);
			return -1;
		}
		inline_trim(&s, &e);
		t->priv = xmemdup(s, (size_t)(e - s));
	} else {
		t->priv = xstrdup(name);
	}
	return 0;
}

static int static_lookup(struct table *t, const char *key, char **value_r, const char **error_r)
{
	*value_r = xstrdup(t->priv);
	return 1;
}

static void static_close(struct table *t)
{
	free(t->priv);
}

const struct table_ops table_static_ops = { "static", false, static_open, static_lookup, static_close };
