/*
 * filter_cfg.c - key-value configuration files (see filter_cfg.h).
 *
 * Purpose: turn a config file into (key, value, line) entries.
 * Owns: the entries and their strings. Never: logs, exits, follows includes.
 * Limits: FILTER_CFG_MAX_BYTES per file, FILTER_CFG_MAX_LINE per line.
 * Tests: tests/unit/filters/filter_cfg_test.c, tests/fuzz/filter_cfg_fuzz.c.
 */
#include <strings.h>

#include "filters/common/filter_cfg.h"
#include "lib/buf.h"
#include "lib/common.h"

static __thread char cfg_error[512];

static const char *cfg_err(const char *fmt, ...) PRINTF_LIKE(1, 2);
static const char *cfg_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cfg_error, sizeof(cfg_error), fmt, ap);
	va_end(ap);
	return cfg_error;
}

static bool cfg_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Add one line's entry; returns 0 or -1 with *error_r. */
static int cfg_line(struct filter_cfg *cfg, const char *p, size_t len, int lineno,
		    const char **error_r)
{
	size_t i = 0;
	while (i < len && cfg_blank(p[i]))
		i++;
	if (i == len || p[i] == '#')
		return 0;
	size_t ks = i;
	while (i < len && !cfg_blank(p[i]))
		i++;
	size_t ke = i;
	for (size_t k = ks; k < ke; k++) {
		unsigned char c = (unsigned char)p[k];
		/* printable ASCII: table files (KeyTable) use names with '.' */
		if (c <= 0x20 || c >= 0x7f) {
			*error_r = cfg_err("%s line %d: bad character in key",
					   cfg->path, lineno);
			return -1;
		}
	}
	while (i < len && cfg_blank(p[i]))
		i++;
	size_t vs = i, ve = i;
	/* a '#' after white space starts a comment (opendkim does the same) */
	for (; i < len; i++) {
		if (p[i] == '#' && i > vs && cfg_blank(p[i - 1]))
			break;
		if (!cfg_blank(p[i]))
			ve = i + 1;
	}
	for (size_t k = vs; k < ve; k++) {
		unsigned char c = (unsigned char)p[k];
		if (c < 0x20 && c != '\t') {
			*error_r = cfg_err("%s line %d: control character in value",
					   cfg->path, lineno);
			return -1;
		}
	}
	if (cfg->n % 16 == 0)
		cfg->v = xreallocarray(cfg->v, cfg->n + 16, sizeof(*cfg->v));
	struct filter_cfg_entry *e = &cfg->v[cfg->n++];
	e->key = xmemdup(p + ks, ke - ks);
	e->value = xmemdup(p + vs, ve - vs);
	e->line = lineno;
	return 0;
}

static int cfg_parse_as(const char *path, const char *text, size_t len,
			struct filter_cfg **cfg_r, const char **error_r)
{
	struct filter_cfg *cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	if (len > FILTER_CFG_MAX_BYTES) {
		*error_r = cfg_err("%s: larger than %d bytes", path, FILTER_CFG_MAX_BYTES);
		goto fail;
	}
	if (len > 0 && memchr(text, '\0', len) != NULL) {
		*error_r = cfg_err("%s: NUL byte in file", path);
		goto fail;
	}
	int lineno = 0;
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		lineno++;
		if (end - pos > FILTER_CFG_MAX_LINE) {
			*error_r = cfg_err("%s line %d: longer than %d bytes", path, lineno,
					   FILTER_CFG_MAX_LINE);
			goto fail;
		}
		if (cfg_line(cfg, text + pos, end - pos, lineno, error_r) < 0)
			goto fail;
		pos = end + 1;
	}
	*cfg_r = cfg;
	return 0;
fail:
	filter_cfg_free(&cfg);
	return -1;
}

int filter_cfg_parse(const char *text, size_t len, struct filter_cfg **cfg_r,
		     const char **error_r)
{
	return cfg_parse_as("(string)", text, len, cfg_r, error_r);
}

int filter_cfg_load(const char *path, struct filter_cfg **cfg_r, const char **error_r)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		*error_r = cfg_err("%s: %s", path, strerror(errno));
		return -1;
	}
	struct buf b;
	buf_init(&b, FILTER_CFG_MAX_BYTES + 1);
	char chunk[4096];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&b, chunk, n) < 0) {
			*error_r = cfg_err("%s: larger than %d bytes", path, FILTER_CFG_MAX_BYTES);
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		*error_r = cfg_err("%s: read error", path);
		rc = -1;
	}
	fclose(f);
	if (rc == 0)
		rc = cfg_parse_as(path, b.data ? b.data : "", b.len, cfg_r, error_r);
	buf_free(&b);
	return rc;
}

void filter_cfg_free(struct filter_cfg **cfgp)
{
	struct filter_cfg *cfg = *cfgp;
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->n; i++) {
		free(cfg->v[i].key);
		free(cfg->v[i].value);
	}
	free(cfg->v);
	free(cfg->path);
	free(cfg);
	*cfgp = NULL;
}

static const struct filter_cfg_entry *cfg_find(const struct filter_cfg *cfg, const char *key)
{
	for (size_t i = cfg->n; i > 0; i--)
		if (strcasecmp(cfg->v[i - 1].key, key) == 0)
			return &cfg->v[i - 1];
	return NULL;
}

const char *filter_cfg_get(const struct filter_cfg *cfg, const char *key)
{
	const struct filter_cfg_entry *e = cfg_find(cfg, key);
	return e ? e->value : NULL;
}

int filter_cfg_bool(const struct filter_cfg *cfg, const char *key, bool def, bool *r,
		    const char **error_r)
{
	const struct filter_cfg_entry *e = cfg_find(cfg, key);
	if (e == NULL) {
		*r = def;
		return 0;
	}
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(e->value, yes[i]) == 0) {
			*r = true;
			return 0;
		}
		if (strcasecmp(e->value, no[i]) == 0) {
			*r = false;
			return 0;
		}
	}
	*error_r = cfg_err("%s line %d: %s wants yes or no", cfg->path, e->line, e->key);
	return -1;
}

int filter_cfg_uint(const struct filter_cfg *cfg, const char *key, unsigned long def,
		    unsigned long min, unsigned long max, unsigned long *r,
		    const char **error_r)
{
	const struct filter_cfg_entry *e = cfg_find(cfg, key);
	if (e == NULL) {
		*r = def;
		return 0;
	}
	const char *s = e->value;
	if (*s < '0' || *s > '9')
		goto bad;
	errno = 0;
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		goto bad;
	*r = v;
	return 0;
bad:
	*error_r = cfg_err("%s line %d: %s wants a number from %lu to %lu", cfg->path,
			   e->line, e->key, min, max);
	return -1;
}

static bool cfg_in(const char *const *list, const char *key)
{
	for (; list && *list; list++)
		if (strcasecmp(*list, key) == 0)
			return true;
	return false;
}

int filter_cfg_check_keys(const struct filter_cfg *cfg, const char *const *common,
			  const char *const *own, const char **error_r)
{
	for (size_t i = 0; i < cfg->n; i++) {
		if (!cfg_in(common, cfg->v[i].key) && !cfg_in(own, cfg->v[i].key)) {
			*error_r = cfg_err("%s line %d: unknown setting %s", cfg->path,
					   cfg->v[i].line, cfg->v[i].key);
			return -1;
		}
	}
	return 0;
}
