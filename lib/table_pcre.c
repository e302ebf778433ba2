/*
 * table_pcre.c - pcre: tables with PCRE2.
 *
 * Purpose: the PCRE2 engine for the pcre_table(5) syntax of table_pattern.c.
 * Flags (each toggles Postfix's default): i case (default: caseless),
 * m multiline, s dotall, x extended, A anchored, E dollar-end-only,
 * U ungreedy, X (accepted, no effect in PCRE2).
 * Owns: the compiled pcre2_code and match data of each rule.
 * Never: lets a pathological pattern run unbounded (match limit).
 * Limits: PCRE_MATCH_LIMIT backtracking steps per rule and key.
 * Tests: tests/unit/lib/table_test.c.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "lib/table.h"
#include "lib/table_int.h"
#include "lib/common.h"

#define PCRE_MATCH_LIMIT 1000000

struct pcre_rule {
	pcre2_code *code;          /* compiled pattern */
	pcre2_match_data *md;      /* match data sized for the pattern */
	pcre2_match_context *mctx; /* carries the match limit */
};

static void *pcre_compile_rule(const char *pattern, const char *flags, const char **error_r)
{
	uint32_t opts = PCRE2_CASELESS;
	for (const char *f = flags; *f; f++) {
		switch (*f) {
		case 'i': opts ^= PCRE2_CASELESS; break;
		case 'm': opts ^= PCRE2_MULTILINE; break;
		case 's': opts ^= PCRE2_DOTALL; break;
		case 'x': opts ^= PCRE2_EXTENDED; break;
		case 'A': opts ^= PCRE2_ANCHORED; break;
		case 'E': opts ^= PCRE2_DOLLAR_ENDONLY; break;
		case 'U': opts ^= PCRE2_UNGREEDY; break;
		default: break;
		}
	}
	int err;
	PCRE2_SIZE off;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &err, &off, NULL);
	if (code == NULL) {
		PCRE2_UCHAR msg[200];
		pcre2_get_error_message(err, msg, sizeof(msg));
		*error_r = table_error_set("bad PCRE at offset %zu: %s", (size_t)off, (char *)msg);
		return NULL;
	}
	struct pcre_rule *r = xcalloc(1, sizeof(*r));
	r->code = code;
	r->md = pcre2_match_data_create(10, NULL);
	r->mctx = pcre2_match_context_create(NULL);
	CHECK(r->md != NULL && r->mctx != NULL);
	pcre2_set_match_limit(r->mctx, PCRE_MATCH_LIMIT);
	return r;
}

static int pcre_match_rule(void *m, const char *subject, long ovec[20])
{
	struct pcre_rule *r = m;
	int rc = pcre2_match(r->code, (PCRE2_SPTR)subject, strlen(subject), 0, 0, r->md, r->mctx);
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc < 0)
		return -1;
	if (rc == 0)
		rc = 10; /* more groups than the ovector holds: the first 10 are set */
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
	uint32_t pairs = pcre2_get_ovector_count(r->md);
	for (uint32_t i = 0; i < pairs && i < 10; i++) {
		if ((int)i >= rc || ov[2 * i] == PCRE2_UNSET)
			continue;
		ovec[2 * i] = (long)ov[2 * i];
		ovec[2 * i + 1] = (long)ov[2 * i + 1];
	}
	return 1;
}

static void pcre_free_rule(void *m)
{
	struct pcre_rule *r = m;
	pcre2_match_context_free(r->mctx);
	pcre2_match_data_free(r->md);
	pcre2_code_free(r->code);
	free(r);
}

static const struct table_pattern_ops pcre_engine = { pcre_compile_rule, pcre_match_rule,
						      pcre_free_rule, "imsxAEUX" };

static int pcre_open(struct table *t, const char *name, const char **error_r)
{
	t->priv = table_pattern_open(name, &pcre_engine, error_r);
	return t->priv ? 0 : -1;
}

static int pcre_lookup(struct table *t, const char *key, char **value_r, const char **error_r)
{
	return table_pattern_lookup(t->priv, key, value_r, error_r);
}

static void pcre_close(struct table *t)
{
	table_pattern_close(t->priv);
}

const struct table_ops table_pcre_ops = { "pcre", false, pcre_open, pcre_lookup, pcre_close };
