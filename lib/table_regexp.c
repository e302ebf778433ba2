/*
 * table_regexp.c - regexp: tables with POSIX extended regular expressions.
 *
 * Purpose: the POSIX regex engine for the regexp_table(5) syntax of
 * table_pattern.c. Flags (each toggles Postfix's default): i case
 * (default: case-insensitive), x extended syntax (default: on),
 * m newline-sensitive (default: off).
 * Owns: the compiled regex_t of each rule.
 * Never: reads files itself; hands glibc's regcomp a pattern whose compiled
 * size explodes (stacked repetitions such as "a++", which POSIX leaves
 * undefined, or nested bounded repetitions such as "((a{99}){99}){99}")
 * (regexp_size_ok refuses them).
 * Limits: REGEXP_SIZE_MAX estimated pattern nodes, REGEXP_GROUPS_MAX nested groups.
 * Tests: tests/unit/lib/table_test.c.
 */
#include <ctype.h>
#include <regex.h>

#include "lib/table.h"
#include "lib/table_int.h"
#include "lib/common.h"

#define REGEXP_SIZE_MAX 20000
#define REGEXP_GROUPS_MAX 64

/*
 * Estimate how many nodes glibc builds for pattern (it copies a repeated
 * atom once per repetition) and refuse stacked repetition operators. The
 * estimate is an upper bound per sequence: a bounded repetition multiplies
 * the cost of the atom before it by its largest count.
 */
static int regexp_size_ok(const char *p, const char **why)
{
	double seq_stack[REGEXP_GROUPS_MAX];
	int depth = 0;
	double seq = 0, last = 0;
	bool rep = false; /* the previous token was a repetition operator */
	while (*p) {
		char c = *p;
		if (c == '*' || c == '+' || c == '?' || (c == '{' && isdigit((unsigned char)p[1]))) {
			if (rep) {
				*why = "repetition operator after a repetition operator";
				return -1;
			}
			rep = true;
			if (c != '{') {
				p++;
				continue;
			}
			long m = 0, n = -1;
			p++;
			while (isdigit((unsigned char)*p) && m < 100000)
				m = m * 10 + (*p++ - '0');
			if (*p == ',') {
				p++;
				n = isdigit((unsigned char)*p) ? 0 : m + 1;
				while (isdigit((unsigned char)*p) && n < 100000)
					n = n * 10 + (*p++ - '0');
			}
			if (*p == '}')
				p++;
			double f = (double)(n > m ? n : m);
			if (f < 1)
				f = 1;
			seq += last * (f - 1);
			last *= f;
			if (seq > REGEXP_SIZE_MAX) {
				*why = "pattern too large after repetition";
				return -1;
			}
			continue;
		}
		rep = false;
		if (c == '\\' && p[1] != 0) {
			p += 2;
			seq += last = 1;
			continue;
		}
		if (c == '[') {
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p && *p != ']') {
				if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
					char t = p[1];
					p += 2;
					while (*p && !(*p == t && p[1] == ']'))
						p++;
					if (*p)
						p += 2;
					continue;
				}
				p++;
			}
			if (*p)
				p++;
			seq += last = 1;
			continue;
		}
		if (c == '(') {
			if (depth == REGEXP_GROUPS_MAX) {
				*why = "too many nested groups";
				return -1;
			}
			seq_stack[depth++] = seq;
			seq = last = 0;
			p++;
			continue;
		}
		if (c == ')' && depth > 0) {
			double g = seq;
			seq = seq_stack[--depth];
			last = g;
			seq += g;
			p++;
			continue;
		}
		if (c == '|') {
			last = 0;
			p++;
			continue;
		}
		seq += last = 1;
		p++;
	}
	while (depth > 0)
		seq += seq_stack[--depth];
	if (seq > REGEXP_SIZE_MAX) {
		*why = "pattern too large after repetition";
		return -1;
	}
	return 0;
}

static void *regexp_compile(const char *pattern, const char *flags, const char **error_r)
{
	int cflags = REG_EXTENDED | REG_ICASE;
	for (const char *f = flags; *f; f++) {
		if (*f == 'i')
			cflags ^= REG_ICASE;
		else if (*f == 'x')
			cflags ^= REG_EXTENDED;
		else if (*f == 'm')
			cflags ^= REG_NEWLINE;
	}
	const char *why;
	if (regexp_size_ok(pattern, &why) < 0) {
		*error_r = table_error_set("bad regular expression: %s", why);
		return NULL;
	}
	regex_t *re = xmalloc(sizeof(*re));
	int rc = regcomp(re, pattern, cflags);
	if (rc != 0) {
		char msg[200];
		regerror(rc, re, msg, sizeof(msg));
		*error_r = table_error_set("bad regular expression: %s", msg);
		free(re);
		return NULL;
	}
	return re;
}

static int regexp_match(void *m, const char *subject, long ovec[20])
{
	regmatch_t pm[10];
	int rc = regexec(m, subject, 10, pm, 0);
	if (rc == REG_NOMATCH)
		return 0;
	if (rc != 0)
		return -1;
	for (int i = 0; i < 10; i++) {
		ovec[2 * i] = pm[i].rm_so;
		ovec[2 * i + 1] = pm[i].rm_eo;
	}
	return 1;
}

static void regexp_free(void *m)
{
	regfree(m);
	free(m);
}

static const struct table_pattern_ops regexp_engine = { regexp_compile, regexp_match, regexp_free,
							"imx" };

static int regexp_open(struct table *t, const char *name, const char **error_r)
{
	t->priv = table_pattern_open(name, &regexp_engine, error_r);
	return t->priv ? 0 : -1;
}

static int regexp_lookup(struct table *t, const char *key, char **value_r, const char **error_r)
{
	return table_pattern_lookup(t->priv, key, value_r, error_r);
}

static void regexp_close(struct table *t)
{
	table_pattern_close(t->priv);
}

const struct table_ops table_regexp_ops = { "regexp", false, regexp_open, regexp_lookup, regexp_close };
