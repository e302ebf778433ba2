/*
 * table_pattern.c - the file syntax shared by regexp: and pcre: tables.
 *
 * Purpose: parse regexp_table(5) / pcre_table(5) files ("/re/flags result",
 * "!/re/ result", "if /re/" ... "endif") and evaluate them first-match-wins
 * with $1..$9 substitution; the regex engine is a backend's.
 * Owns: the rule list of an open pattern table.
 * Never: keeps the file open; lets a negated rule use $n (nothing matched).
 * Limits: TABLE_LINE_MAX per logical line, if/endif nesting of 100.
 * Tests: tests/unit/lib/table_test.c.
 */
#include <ctype.h>

#include "lib/buf.h"
#include "lib/table.h"
#include "lib/table_int.h"
#include "lib/fileio.h"
#include "lib/common.h"

#define PATTERN_NEST_MAX 100
#define PATTERN_RESULT_MAX (64 * 1024)

enum pattern_kind {
	PATTERN_MATCH, /* /re/ result */
	PATTERN_IF,    /* if /re/ */
	PATTERN_ENDIF, /* endif */
};

struct pattern_rule {
	enum pattern_kind kind; /* what the line is */
	bool negate;            /* "!/re/" */
	void *m;                /* compiled pattern (MATCH, IF) */
	char *result;           /* MATCH: result template */
	size_t skip_to;         /* IF: index of its ENDIF */
	int line;               /* source line */
};

struct pattern_table {
	const struct table_pattern_ops *ops; /* engine */
	struct pattern_rule *r;              /* rules in file order */
	size_t n, cap;                       /* used / allocated */
	size_t stack[PATTERN_NEST_MAX];      /* open IFs while parsing */
	size_t depth;                        /* entries in stack */
	const char *path;                    /* while parsing */
};

/* Parse "<d>pattern<d>flags" at *pp; sets pattern (owned) and flags
 * (owned), advances *pp past the flags. */
static int pattern_parse_re(const char **pp, char **pat_r, char **flags_r, const char **why)
{
	const char *p = *pp;
	char d = *p;
	if (d == 0 || isspace((unsigned char)d) || isalnum((unsigned char)d) || d == '\\') {
		*why = "expected a pattern such as /regexp/";
		return -1;
	}
	p++;
	struct buf b;
	buf_init(&b, TABLE_LINE_MAX);
	for (;;) {
		if (*p == 0) {
			buf_free(&b);
			*why = "unterminated pattern (missing closing delimiter)";
			return -1;
		}
		if (*p == d)
			break;
		if (*p == '\\' && p[1] == d) {
			/* an escaped delimiter is the delimiter character itself */
			(void)buf_putc(&b, d);
			p += 2;
			continue;
		}
		if (*p == '\\' && p[1] != 0) {
			(void)buf_append(&b, p, 2);
			p += 2;
			continue;
		}
		(void)buf_putc(&b, *p++);
	}
	p++;
	const char *fs = p;
	while (*p && !isspace((unsigned char)*p))
		p++;
	*pat_r = xstrdup(buf_cstr(&b));
	buf_free(&b);
	*flags_r = xmemdup(fs, (size_t)(p - fs));
	*pp = p;
	return 0;
}

static int pattern_line(void *vctx, char *line, int lineno, const char **error_r)
{
	struct pattern_table *pt = vctx;
	const char *p = line;
	struct pattern_rule rule = { PATTERN_MATCH, false, NULL, NULL, 0, lineno };
	const char *why = NULL;

	if (strncmp(p, "endif", 5) == 0 && (p[5] == 0 || isspace((unsigned char)p[5]))) {
		if (pt->depth == 0) {
			*error_r = table_error_set("%s:%d: endif without if", pt->path, lineno);
			return -1;
		}
		p += 5;
		while (isspace((unsigned char)*p))
			p++;
		if (*p != 0) {
			*error_r = table_error_set("%s:%d: text after endif", pt->path, lineno);
			return -1;
		}
		rule.kind = PATTERN_ENDIF;
		pt->r[pt->stack[--pt->depth]].skip_to = pt->n;
		goto add;
	}
	if (strncmp(p, "if", 2) == 0 && isspace((unsigned char)p[2])) {
		rule.kind = PATTERN_IF;
		p += 2;
		while (isspace((unsigned char)*p))
			p++;
	}
	if (*p == '!') {
		rule.negate = true;
		p++;
	}
	char *pat, *flags;
	if (pattern_parse_re(&p, &pat, &flags, &why) < 0) {
		*error_r = table_error_set("%s:%d: %s", pt->path, lineno, why);
		return -1;
	}
	for (const char *f = flags; *f; f++) {
		if (strchr(pt->ops->flag_chars, *f) == NULL) {
			*error_r = table_error_set("%s:%d: unknown pattern flag '%c'", pt->path, lineno, *f);
			free(pat);
			free(flags);
			return -1;
		}
	}
	rule.m = pt->ops->compile(pat, flags, &why);
	free(pat);
	free(flags);
	if (rule.m == NULL) {
		/* why lives in the error buffer we are about to write */
		char reason[400];
		snprintf(reason, sizeof(reason), "%s", why);
		*error_r = table_error_set("%s:%d: %s", pt->path, lineno, reason);
		return -1;
	}
	while (isspace((unsigned char)*p))
		p++;
	if (rule.kind == PATTERN_IF) {
		if (*p != 0) {
			*error_r = table_error_set("%s:%d: text after if pattern", pt->path, lineno);
			goto fail;
		}
		if (pt->depth == PATTERN_NEST_MAX) {
			*error_r = table_error_set("%s:%d: if nested deeper than %d", pt->path, lineno,
						   PATTERN_NEST_MAX);
			goto fail;
		}
		pt->stack[pt->depth++] = pt->n;
	} else {
		if (*p == 0) {
			*error_r = table_error_set("%s:%d: missing result after pattern", pt->path, lineno);
			goto fail;
		}
		if (rule.negate) {
			for (const char *q = p; *q; q++) {
				if (*q == '$' && (isdigit((unsigned char)q[1]) || q[1] == '{')) {
					*error_r = table_error_set(
						"%s:%d: $number in the result of a negated pattern", pt->path, lineno);
					goto fail;
				}
				if (*q == '$' && q[1] == '$')
					q++;
			}
		}
		rule.result = xstrdup(p);
	}
add:
	if (pt->n == pt->cap) {
		pt->cap = pt->cap ? pt->cap * 2 : 16;
		pt->r = xreallocarray(pt->r, pt->cap, sizeof(*pt->r));
	}
	pt->r[pt->n++] = rule;
	return 0;
fail:
	pt->ops->free(rule.m);
	return -1;
}

void table_pattern_close(void *vpt)
{
	struct pattern_table *pt = vpt;
	if (pt == NULL)
		return;
	for (size_t i = 0; i < pt->n; i++) {
		if (pt->r[i].m)
			pt->ops->free(pt->r[i].m);
		free(pt->r[i].result);
	}
	free(pt->r);
	free(pt);
}

void *table_pattern_open(const char *path, const struct table_pattern_ops *ops, const char **error_r)
{
	char *data;
	size_t len;
	if (*path == 0) {
		*error_r = table_error_set("missing file name");
		return NULL;
	}
	if (file_read_text(path, TABLE_FILE_MAX, &data, &len) < 0) {
		*error_r = table_error_set("%s: %s", path, strerror(errno));
		return NULL;
	}
	struct pattern_table *pt = xcalloc(1, sizeof(*pt));
	pt->ops = ops;
	pt->path = path;
	int rc = table_lines(path, data, len, pattern_line, pt, error_r);
	free(data);
	if (rc == 0 && pt->depth > 0) {
		*error_r = table_error_set("%s:%d: if without endif", path, pt->r[pt->stack[pt->depth - 1]].line);
		rc = -1;
	}
	pt->path = NULL;
	if (rc < 0) {
		table_pattern_close(pt);
		return NULL;
	}
	return pt;
}

/* Expand $1..$9, ${n} and $$ of tmpl with the groups of key. */
static char *pattern_subst(const char *tmpl, const char *key, const long ovec[20])
{
	struct buf b;
	buf_init(&b, PATTERN_RESULT_MAX);
	for (const char *p = tmpl; *p; p++) {
		int n = -1;
		if (*p == '$' && p[1] == '$') {
			(void)buf_putc(&b, '$');
			p++;
			continue;
		}
		if (*p == '$' && isdigit((unsigned char)p[1])) {
			n = p[1] - '0';
			p++;
		} else if (*p == '$' && p[1] == '{' && isdigit((unsigned char)p[2]) && p[3] == '}') {
			n = p[2] - '0';
			p += 3;
		}
		if (n < 0) {
			(void)buf_putc(&b, *p);
			continue;
		}
		if (ovec[2 * n] >= 0 && ovec[2 * n + 1] >= ovec[2 * n])
			(void)buf_append(&b, key + ovec[2 * n], (size_t)(ovec[2 * n + 1] - ovec[2 * n]));
	}
	char *r = xstrdup(buf_cstr(&b));
	buf_free(&b);
	return r;
}

int table_pattern_lookup(void *vpt, const char *key, char **value_r, const char **error_r)
{
	struct pattern_table *pt = vpt;
	long ovec[20];
	for (size_t i = 0; i < pt->n; i++) {
		struct pattern_rule *r = &pt->r[i];
		if (r->kind == PATTERN_ENDIF)
			continue;
		for (int j = 0; j < 20; j++)
			ovec[j] = -1;
		int m = pt->ops->match(r->m, key, ovec);
		if (m < 0) {
			*error_r = table_error_set("line %d: pattern match failed (resource limit)", r->line);
			return -1;
		}
		bool hit = (m == 1) != r->negate;
		if (r->kind == PATTERN_IF) {
			if (!hit)
				i = r->skip_to; /* continue after the matching endif */
			continue;
		}
		if (hit) {
			*value_r = pattern_subst(r->result, key, ovec);
			return 1;
		}
	}
	return 0;
}
