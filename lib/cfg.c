/*
 * cfg.c - main.cf: reading, $-expansion, defaults, conversion, printing.
 *
 * Purpose: turn CONFDIR/main.cf into a struct cfg whose fields are the
 * parameters of lib/cfg_params.h, expanded and converted, or name the first
 * (cfg_load) or every (cfg_check) problem as "FILE:LINE: reason".
 * Owns: the raw name/value entries read from main.cf or given by overrides,
 * and every string a struct cfg points to.
 * Never: exits, trusts main.cf to be well-formed (NUL bytes, huge lines,
 * reference loops and exponential expansion are errors), writes files.
 * Limits: a logical line of at most CFG_LINE_MAX bytes, a file of at most
 * CFG_FILE_MAX bytes, an expanded value of at most CFG_VALUE_MAX bytes,
 * reference nesting of at most CFG_DEPTH_MAX.
 * Tests: tests/unit/lib/cfg_test.c, tests/fuzz/cfg_fuzz.c.
 */
#include <ctype.h>
#include <pthread.h>
#include <strings.h>
#include <unistd.h>

#include "lib/cfg.h"
#include "lib/cfg_int.h"
#include "lib/log.h"
#include "lib/table.h"
#include "lib/table_int.h"
#include "lib/fileio.h"
#include "lib/common.h"

#define CFG_LINE_MAX (1024 * 1024)
#define CFG_FILE_MAX (16 * 1024 * 1024)
#define CFG_VALUE_MAX (1024 * 1024)
#define CFG_DEPTH_MAX 100

const struct cfg_param cfg_params[] = {
#define CFG_PARAM(type, field, def, extra, doc)                                                    \
	{ #field, CFG_T_##type, def, extra, doc, offsetof(struct cfg, field) },
#include "lib/cfg_params.h"
#undef CFG_PARAM
};
const size_t cfg_nparams = ARRAY_LEN(cfg_params);

/* One name = value from main.cf or an override. */
struct cfg_entry {
	char *name;     /* parameter name */
	char *raw;      /* value as written, continuation lines joined */
	int line;       /* main.cf line, 0 for an override */
	bool override;  /* set by cfg_override (-o) */
	/* evaluation state, reset by every evaluation */
	char *eff;      /* expanded value, owned */
	int state;      /* 0 not expanded, 1 expanding, 2 done */
	bool referenced; /* some value referred to it by $name */
};

struct cfg_priv {
	char *confdir;              /* config_directory */
	char *filename;             /* main.cf path for messages */
	struct cfg_entry *entries;  /* in file order, later ones win */
	size_t n, cap;              /* entries used / allocated */
	char *eff[ARRAY_LEN(cfg_params)]; /* expanded value of each parameter */
	int state[ARRAY_LEN(cfg_params)]; /* 0 not expanded, 1 expanding, 2 done */
	char *val[ARRAY_LEN(cfg_params)]; /* converted text the string fields point at */
	char *hostname;             /* gethostname() result, fetched once */
};

/* Error text handed out through error_r (valid until the next call). */
static char cfg_errbuf[1024];

const char *cfg_error_set(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cfg_errbuf, sizeof(cfg_errbuf), fmt, ap);
	va_end(ap);
	return cfg_errbuf;
}

const char *cfg_param_name(const struct cfg_param *p)
{
	/* a name that starts with a digit is spelt with a leading '_' in C */
	return p->cname[0] == '_' ? p->cname + 1 : p->cname;
}

/* The parameter table sorted by name, built once: a main.cf load looks up
 * every parameter and every $name reference, which a linear search made
 * quadratic in the table's size. */
static const struct cfg_param **cfg_by_name;
static pthread_once_t cfg_by_name_once = PTHREAD_ONCE_INIT;

static int cfg_param_cmp(const void *a, const void *b)
{
	return strcmp(cfg_param_name(*(const struct cfg_param *const *)a),
		      cfg_param_name(*(const struct cfg_param *const *)b));
}

static void cfg_by_name_build(void)
{
	const struct cfg_param **v = xcalloc(cfg_nparams, sizeof(*v));
	for (size_t i = 0; i < cfg_nparams; i++)
		v[i] = &cfg_params[i];
	qsort(v, cfg_nparams, sizeof(*v), cfg_param_cmp);
	cfg_by_name = v;
}

const struct cfg_param *cfg_param_find(const char *name)
{
	pthread_once(&cfg_by_name_once, cfg_by_name_build);
	size_t lo = 0, hi = cfg_nparams;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(cfg_param_name(cfg_by_name[mid]), name);
		if (c == 0)
			return cfg_by_name[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

bool cfg_is_known(const char *name)
{
	return name != NULL && cfg_param_find(name) != NULL;
}

static bool cfg_name_char(int c)
{
	return isalnum(c) || c == '_';
}

/* ---- conversion ---- */

/* Is word (len bytes) one of the '|'-separated words of set (any case)? */
static const char *cfg_word_in(const char *set, const char *word, size_t len)
{
	const char *p = set;
	for (;;) {
		const char *bar = strchr(p, '|');
		size_t wl = bar ? (size_t)(bar - p) : strlen(p);
		if (wl == len && strncasecmp(p, word, len) == 0)
			return p;
		if (bar == NULL)
			return NULL;
		p = bar + 1;
	}
}

static int cfg_parse_ll(const char *s, long long *r)
{
	if (*s == 0)
		return -1;
	long long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *s - '0', &v))
			return -1;
	}
	*r = v;
	return 0;
}

int cfg_parse_time(const char *s, const char *def_unit, long long *r)
{
	size_t len = strlen(s);
	if (len == 0)
		return -1;
	char unit = def_unit && *def_unit ? def_unit[0] : 's';
	char last = s[len - 1];
	char digits[32];
	if (!(last >= '0' && last <= '9')) {
		unit = (char)tolower((unsigned char)last);
		len--;
	}
	if (len == 0 || len >= sizeof(digits))
		return -1;
	memcpy(digits, s, len);
	digits[len] = 0;
	long long v, mul;
	if (cfg_parse_ll(digits, &v) < 0)
		return -1;
	switch (unit) {
	case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	case 'w': mul = 7 * 86400; break;
	default: return -1;
	}
	if (__builtin_mul_overflow(v, mul, r))
		return -1;
	return 0;
}

int cfg_parse_bool(const char *s, bool *r)
{
	if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*r = true;
	else if (strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*r = false;
	else
		return -1;
	return 0;
}

static const char *cfg_list_seps = ", \t\r\n";

/*
 * Convert value (expanded text) for parameter p and, when cfg is not NULL,
 * store it in the field (string fields point at value, which the caller
 * keeps alive; for ENUM a canonical word may replace *value). Returns 0, or
 * -1 with *reason_r (cfg_errbuf).
 */
int cfg_convert(const struct cfg_param *p, char **value, struct cfg *cfg, const char **reason_r)
{
	const char *v = *value;
	void *field = cfg ? (char *)cfg + p->offset : NULL;
	const char *name = cfg_param_name(p);
	long long ll;
	bool b;

	switch (p->type) {
	case CFG_T_STR:
	case CFG_T_RAW:
		break;
	case CFG_T_LIST:
		if (p->extra != NULL) {
			const char *s = v;
			while (*s) {
				size_t skip = strspn(s, cfg_list_seps);
				s += skip;
				size_t wl = strcspn(s, cfg_list_seps);
				if (wl == 0)
					break;
				if (cfg_word_in(p->extra, s, wl) == NULL) {
					*reason_r = cfg_error_set("bad value for %s: \"%.*s\" is not one of %s",
								  name, (int)(wl > 200 ? 200 : wl), s, p->extra);
					return -1;
				}
				s += wl;
			}
		}
		break;
	case CFG_T_ENUM: {
		const char *w = cfg_word_in(p->extra, v, strlen(v));
		if (w == NULL) {
			*reason_r = cfg_error_set("bad value for %s: \"%.200s\" (expected one of %s)",
						  name, v, p->extra[0] == '|' ? p->extra + 1 : p->extra);
			return -1;
		}
		/* store the canonical lowercase word so callers can strcmp */
		size_t wl = strcspn(w, "|");
		if (memcmp(w, v, wl) != 0) {
			char *canon = xmemdup(w, wl);
			free(*value);
			*value = canon;
		}
		break;
	}
	case CFG_T_INT:
	case CFG_T_SIZE:
		if (cfg_parse_ll(v, &ll) < 0) {
			*reason_r = cfg_error_set("bad %s value for %s: \"%.200s\"",
						  p->type == CFG_T_INT ? "integer" : "size", name, v);
			return -1;
		}
		if (field)
			*(long long *)field = ll;
		return 0;
	case CFG_T_TIME:
		if (cfg_parse_time(v, p->extra, &ll) < 0) {
			*reason_r = cfg_error_set(
				"bad time value for %s: \"%.200s\" (a number with an optional unit s, m, h, d or w)",
				name, v);
			return -1;
		}
		if (field)
			*(long long *)field = ll;
		return 0;
	case CFG_T_BOOL:
		if (cfg_parse_bool(v, &b) < 0) {
			*reason_r = cfg_error_set("bad boolean value for %s: \"%.200s\" (yes or no)",
						  name, v);
			return -1;
		}
		if (field)
			*(bool *)field = b;
		return 0;
	}
	if (field)
		*(char **)field = *value;
	return 0;
}

/* ---- entries ---- */

static struct cfg_entry *cfg_entry_find(struct cfg_priv *pv, const char *name, size_t len)
{
	/* the last definition wins, as in Postfix */
	for (size_t i = pv->n; i-- > 0;)
		if (strlen(pv->entries[i].name) == len && memcmp(pv->entries[i].name, name, len) == 0)
			return &pv->entries[i];
	return NULL;
}

static void cfg_entry_add(struct cfg_priv *pv, const char *name, size_t nlen, const char *raw,
			  size_t rlen, int line, bool override)
{
	if (pv->n == pv->cap) {
		pv->cap = pv->cap ? pv->cap * 2 : 16;
		pv->entries = xreallocarray(pv->entries, pv->cap, sizeof(*pv->entries));
	}
	struct cfg_entry *e = &pv->entries[pv->n++];
	memset(e, 0, sizeof(*e));
	e->name = xmemdup(name, nlen);
	e->raw = xmemdup(raw, rlen);
	e->line = line;
	e->override = override;
}

/* ---- expansion ---- */

struct cfg_eval {
	struct cfg_priv *pv; /* entries and memoized values */
	bool defaults_only;  /* ignore entries: postconf -d */
	const char *reason;  /* first error */
};

static int cfg_expand(struct cfg_eval *ev, const char *s, size_t len, struct buf *out, int depth);

static const char *cfg_default_text(struct cfg_eval *ev, const struct cfg_param *p, char **tmp,
				    int depth);

/* Value of parameter or entry name (len bytes), expanded, or NULL on error. */
static const char *cfg_lookup_expanded(struct cfg_eval *ev, const char *name, size_t len, int depth)
{
	struct cfg_priv *pv = ev->pv;
	char nm[256];
	if (len >= sizeof(nm))
		return "";
	memcpy(nm, name, len);
	nm[len] = 0;
	if (depth > CFG_DEPTH_MAX) {
		ev->reason = cfg_error_set("parameter references nested too deeply at $%s", nm);
		return NULL;
	}
	const struct cfg_param *p = cfg_param_find(nm);
	struct cfg_entry *e = ev->defaults_only ? NULL : cfg_entry_find(pv, name, len);
	if (e != NULL && depth > 0)
		e->referenced = true; /* a user-defined name used by $name is no typo */
	if (p != NULL && strcmp(nm, "config_directory") == 0 && (e == NULL || !e->override))
		return pv->confdir;
	if (p != NULL && (e == NULL || p->type == CFG_T_RAW)) {
		size_t i = (size_t)(p - cfg_params);
		if (pv->state[i] == 2)
			return pv->eff[i];
		if (pv->state[i] == 1) {
			ev->reason = cfg_error_set("parameter reference loop at $%s", nm);
			return NULL;
		}
		if (p->type == CFG_T_RAW && e != NULL) {
			pv->eff[i] = xstrdup(e->raw);
			pv->state[i] = 2;
			return pv->eff[i];
		}
		pv->state[i] = 1;
		char *tmp = NULL;
		const char *text = cfg_default_text(ev, p, &tmp, depth);
		if (text == NULL) {
			free(tmp);
			return NULL;
		}
		if (p->type == CFG_T_RAW) {
			pv->eff[i] = xstrdup(text);
		} else {
			struct buf b;
			buf_init(&b, CFG_VALUE_MAX);
			if (cfg_expand(ev, text, strlen(text), &b, depth + 1) < 0) {
				buf_free(&b);
				free(tmp);
				return NULL;
			}
			pv->eff[i] = xstrdup(buf_cstr(&b));
			buf_free(&b);
		}
		free(tmp);
		pv->state[i] = 2;
		return pv->eff[i];
	}
	if (e == NULL)
		return ""; /* undefined: expands to nothing, as in Postfix */
	if (e->state == 2)
		return e->eff;
	if (e->state == 1) {
		ev->reason = cfg_error_set("parameter reference loop at $%s", nm);
		return NULL;
	}
	e->state = 1;
	struct buf b;
	buf_init(&b, CFG_VALUE_MAX);
	if (cfg_expand(ev, e->raw, strlen(e->raw), &b, depth + 1) < 0) {
		buf_free(&b);
		return NULL;
	}
	free(e->eff);
	e->eff = xstrdup(buf_cstr(&b));
	buf_free(&b);
	e->state = 2;
	return e->eff;
}

/* Offset just past the close brace matching the open one at s[0], or 0. */
static size_t cfg_match_close(const char *s, size_t len)
{
	char open = s[0], close = open == '{' ? '}' : ')';
	int level = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == open)
			level++;
		else if (s[i] == close && --level == 0)
			return i + 1;
	}
	return 0;
}

static int cfg_put(struct cfg_eval *ev, struct buf *out, const char *p, size_t n)
{
	if (buf_append(out, p, n) < 0) {
		ev->reason = cfg_error_set("value longer than %d bytes after expansion", CFG_VALUE_MAX);
		return -1;
	}
	return 0;
}

/*
 * Expand $name ${name} $(name) ${name?text} ${name:text}
 * ${name?{text}:{text}} and $$ in s into out.
 */
static int cfg_expand(struct cfg_eval *ev, const char *s, size_t len, struct buf *out, int depth)
{
	if (depth > CFG_DEPTH_MAX) {
		ev->reason = cfg_error_set("parameter references nested too deeply");
		return -1;
	}
	size_t i = 0;
	while (i < len) {
		const char *dollar = memchr(s + i, '$', len - i);
		size_t lit = dollar ? (size_t)(dollar - (s + i)) : len - i;
		if (cfg_put(ev, out, s + i, lit) < 0)
			return -1;
		i += lit;
		if (i >= len)
			break;
		i++; /* the '$' */
		if (i >= len) {
			if (cfg_put(ev, out, "$", 1) < 0)
				return -1;
			break;
		}
		if (s[i] == '$') {
			if (cfg_put(ev, out, "$", 1) < 0)
				return -1;
			i++;
			continue;
		}
		if (cfg_name_char((unsigned char)s[i])) {
			size_t n = 0;
			while (i + n < len && cfg_name_char((unsigned char)s[i + n]))
				n++;
			const char *v = cfg_lookup_expanded(ev, s + i, n, depth);
			if (v == NULL || cfg_put(ev, out, v, strlen(v)) < 0)
				return -1;
			i += n;
			continue;
		}
		if (s[i] != '{' && s[i] != '(') {
			/* a lone '$' stays literal */
			if (cfg_put(ev, out, "$", 1) < 0)
				return -1;
			continue;
		}
		size_t end = cfg_match_close(s + i, len - i);
		if (end == 0) {
			ev->reason = cfg_error_set("unterminated \"$%c\"", s[i]);
			return -1;
		}
		const char *in = s + i + 1;
		size_t inlen = end - 2;
		i += end;
		size_t n = 0;
		while (n < inlen && cfg_name_char((unsigned char)in[n]))
			n++;
		if (n == 0 || n >= 256) {
			ev->reason = cfg_error_set("bad parameter name in \"$%c%.*s\"", in[-1],
						   (int)(inlen > 60 ? 60 : inlen), in);
			return -1;
		}
		const char *v = cfg_lookup_expanded(ev, in, n, depth);
		if (v == NULL)
			return -1;
		if (n == inlen) {
			if (cfg_put(ev, out, v, strlen(v)) < 0)
				return -1;
			continue;
		}
		char op = in[n];
		if (op != '?' && op != ':') {
			ev->reason = cfg_error_set("bad character '%c' after $%c%.*s", op, in[-1],
						   (int)n, in);
			return -1;
		}
		const char *txt = in + n + 1;
		size_t tlen = inlen - n - 1;
		bool set = *v != 0;
		if (op == '?' && tlen > 0 && txt[0] == '{') {
			/* ${name?{when set}:{when empty}} (Postfix 3.0) */
			size_t e1 = cfg_match_close(txt, tlen);
			if (e1 == 0) {
				ev->reason = cfg_error_set("unterminated \"{\" in conditional");
				return -1;
			}
			const char *t2 = NULL;
			size_t t2len = 0;
			size_t rest = e1;
			while (rest < tlen && isspace((unsigned char)txt[rest]))
				rest++;
			if (rest < tlen) {
				if (txt[rest] != ':')
					goto bad_cond;
				rest++;
				while (rest < tlen && isspace((unsigned char)txt[rest]))
					rest++;
				if (rest >= tlen || txt[rest] != '{')
					goto bad_cond;
				size_t e2 = cfg_match_close(txt + rest, tlen - rest);
				if (e2 == 0 || rest + e2 != tlen)
					goto bad_cond;
				t2 = txt + rest + 1;
				t2len = e2 - 2;
			}
			if (set) {
				if (cfg_expand(ev, txt + 1, e1 - 2, out, depth + 1) < 0)
					return -1;
			} else if (t2 != NULL) {
				if (cfg_expand(ev, t2, t2len, out, depth + 1) < 0)
					return -1;
			}
			continue;
		bad_cond:
			ev->reason = cfg_error_set("bad conditional after $%c%.*s?", in[-1], (int)n, in);
			return -1;
		}
		if ((op == '?') == set && cfg_expand(ev, txt, tlen, out, depth + 1) < 0)
			return -1;
	}
	return 0;
}

static char *cfg_gethostname(void)
{
	char h[256];
	if (gethostname(h, sizeof(h) - 1) < 0 || h[0] == 0)
		return xstrdup("localhost");
	h[sizeof(h) - 1] = 0;
	return xstrdup(h);
}

/*
 * The unexpanded default text of p; computed defaults (myhostname, mydomain)
 * are built here into *tmp (owned by the caller).
 */
static const char *cfg_default_text(struct cfg_eval *ev, const struct cfg_param *p, char **tmp,
				    int depth)
{
	const char *name = cfg_param_name(p);
	struct cfg_priv *pv = ev->pv;
	if (strcmp(name, "myhostname") == 0) {
		if (pv->hostname == NULL)
			pv->hostname = cfg_gethostname();
		if (strchr(pv->hostname, '.') != NULL)
			return pv->hostname;
		/* Postfix: an unqualified host name gets mydomain (if set) or localdomain */
		struct cfg_entry *e = ev->defaults_only ? NULL : cfg_entry_find(pv, "mydomain", 8);
		const char *dom = "localdomain";
		if (e != NULL) {
			dom = cfg_lookup_expanded(ev, "mydomain", 8, depth + 1);
			if (dom == NULL)
				return NULL;
		}
		*tmp = xasprintf("%s.%s", pv->hostname, dom);
		return *tmp;
	}
	if (strcmp(name, "mydomain") == 0) {
		const char *h = cfg_lookup_expanded(ev, "myhostname", 10, depth + 1);
		if (h == NULL)
			return NULL;
		/* Postfix: "host" and "example.com" give localdomain; a.b.c gives b.c */
		const char *dot = strchr(h, '.');
		if (dot == NULL || strchr(dot + 1, '.') == NULL)
			return "localdomain";
		*tmp = xstrdup(dot + 1);
		return *tmp;
	}
	return p->def;
}

struct cfg_parse_ctx {
	struct cfg_priv *pv;
	struct cfg_report *r;
};

static void cfg_main_line(void *vctx, const char *line, size_t len, int lineno)
{
	struct cfg_parse_ctx *ctx = vctx;
	size_t n = 0;
	while (n < len && cfg_name_char((unsigned char)line[n]))
		n++;
	size_t j = n;
	while (j < len && (line[j] == ' ' || line[j] == '\t'))
		j++;
	if (n == 0 || j >= len || line[j] != '=') {
		if (n == 0)
			cfg_report_add(ctx->r, lineno, false, "bad parameter name: \"%.*s\"",
				       (int)(len > 60 ? 60 : len), line);
		else
			cfg_report_add(ctx->r, lineno, false, "missing '=' after parameter name \"%.*s\"",
				       (int)(n > 100 ? 100 : n), line);
		return;
	}
	if (n >= 256) {
		cfg_report_add(ctx->r, lineno, false, "parameter name longer than 255 bytes");
		return;
	}
	j++;
	while (j < len && isspace((unsigned char)line[j]))
		j++;
	size_t vend = len;
	while (vend > j && isspace((unsigned char)line[vend - 1]))
		vend--;
	if (n == 16 && memcmp(line, "config_directory", 16) == 0) {
		cfg_report_add(ctx->r, lineno, true,
			       "config_directory is set by postern -c, not main.cf: ignored");
		return;
	}
	struct cfg_entry *old = cfg_entry_find(ctx->pv, line, n);
	if (old != NULL && ctx->r->out != NULL)
		cfg_report_add(ctx->r, lineno, true, "%.*s overrides its line %d", (int)n, line,
			       old->line);
	cfg_entry_add(ctx->pv, line, n, line + j, vend - j, lineno, false);
}

/* ---- evaluation into a struct cfg ---- */

static void cfg_eval_reset(struct cfg_priv *pv)
{
	for (size_t i = 0; i < cfg_nparams; i++) {
		free(pv->eff[i]);
		pv->eff[i] = NULL;
		pv->state[i] = 0;
	}
	for (size_t i = 0; i < pv->n; i++) {
		free(pv->entries[i].eff);
		pv->entries[i].eff = NULL;
		pv->entries[i].state = 0;
		pv->entries[i].referenced = false;
	}
}

/* After a failed expansion, forget half-done work so the next parameter
 * does not see a false loop. */
static void cfg_eval_unwind(struct cfg_priv *pv)
{
	for (size_t i = 0; i < cfg_nparams; i++)
		if (pv->state[i] == 1)
			pv->state[i] = 0;
	for (size_t i = 0; i < pv->n; i++)
		if (pv->entries[i].state == 1)
			pv->entries[i].state = 0;
}

/* First line of a small file, blanks trimmed; NULL with errno. */
static char *cfg_first_line_of(const char *path)
{
	char *data;
	size_t len;
	if (file_read_text(path, 4096, &data, &len) < 0)
		return NULL;
	size_t n = strcspn(data, "\r\n");
	while (n > 0 && isspace((unsigned char)data[n - 1]))
		n--;
	size_t s = 0;
	while (s < n && isspace((unsigned char)data[s]))
		s++;
	char *r = xmemdup(data + s, n - s);
	free(data);
	if (*r == 0) {
		free(r);
		errno = ENODATA;
		return NULL;
	}
	return r;
}

/*
 * Expand and convert every parameter of cfg (whose priv holds the entries)
 * into its fields. Problems go to r (every one). With defaults_only the
 * entries are ignored. Unknown-and-unreferenced entries are warned about.
 */
static void cfg_evaluate(struct cfg *cfg, bool defaults_only, struct cfg_report *r)
{
	struct cfg_priv *pv = cfg->priv;
	struct cfg_eval ev = { pv, defaults_only, NULL };
	cfg_eval_reset(pv);
	for (size_t i = 0; i < cfg_nparams; i++) {
		const struct cfg_param *p = &cfg_params[i];
		const char *name = cfg_param_name(p);
		free(pv->val[i]);
		pv->val[i] = NULL;
		ev.reason = NULL;
		const char *v = cfg_lookup_expanded(&ev, name, strlen(name), 0);
		struct cfg_entry *e = defaults_only ? NULL : cfg_entry_find(pv, name, strlen(name));
		if (v == NULL) {
			cfg_eval_unwind(pv);
			if (e != NULL && e->override)
				cfg_report_add(r, 0, false, "-o %s=%s: %s", name, e->raw, ev.reason);
			else
				cfg_report_add(r, e ? e->line : 0, false, "%s: %s", name, ev.reason);
			/* one report per line: fall back to the default below quietly */
			v = p->type == CFG_T_STR || p->type == CFG_T_LIST || p->type == CFG_T_RAW ? "" : p->def;
			e = NULL;
		}
		pv->val[i] = xstrdup(v);
		if (v[0] == '/' && strcmp(name, "myorigin") == 0) {
			/* Debian's "myorigin = /etc/mailname": the domain is in the file */
			char *fromfile = cfg_first_line_of(v);
			if (fromfile == NULL) {
				cfg_report_add(r, e ? e->line : 0, false, "myorigin: cannot read %s: %s", v,
					       strerror(errno));
			} else {
				free(pv->val[i]);
				pv->val[i] = fromfile;
			}
		}
		const char *reason;
		if (cfg_convert(p, &pv->val[i], cfg, &reason) < 0) {
			if (e != NULL && e->override)
				cfg_report_add(r, 0, false, "-o %s=%s: %s", name, e->raw, reason);
			else
				cfg_report_add(r, e ? e->line : 0, false, "%s", reason);
			/* keep the field usable: convert the default instead */
			char *d = xstrdup(p->def);
			free(pv->val[i]);
			pv->val[i] = d;
			if (cfg_convert(p, &pv->val[i], cfg, &reason) < 0) {
				free(pv->val[i]);
				pv->val[i] = xstrdup("0");
				(void)cfg_convert(p, &pv->val[i], cfg, &reason);
			}
		}
	}
	/* entries Postern does not know: evaluate (they may be broken) and warn */
	for (size_t i = 0; i < pv->n; i++) {
		struct cfg_entry *e = &pv->entries[i];
		if (defaults_only || cfg_param_find(e->name) != NULL)
			continue;
		if (cfg_entry_find(pv, e->name, strlen(e->name)) != e)
			continue; /* a later line redefines it */
		ev.reason = NULL;
		if (cfg_lookup_expanded(&ev, e->name, strlen(e->name), 0) == NULL) {
			cfg_eval_unwind(pv);
			cfg_report_add(r, e->line, false, "%s: %s", e->name, ev.reason);
		}
	}
	for (size_t i = 0; i < pv->n; i++) {
		struct cfg_entry *e = &pv->entries[i];
		if (defaults_only || e->referenced || cfg_param_find(e->name) != NULL)
			continue;
		if (e->override)
			continue;
		cfg_report_add(r, e->line, true, "unknown parameter %s", e->name);
	}
}

static struct cfg *cfg_new_empty(const char *confdir, const char *filename)
{
	struct cfg *cfg = xcalloc(1, sizeof(*cfg));
	cfg->priv = xcalloc(1, sizeof(*cfg->priv));
	cfg->priv->confdir = xstrdup(confdir ? confdir : "/etc/postern");
	cfg->priv->filename = xstrdup(filename ? filename : "main.cf");
	return cfg;
}

void cfg_free(struct cfg **cfgp)
{
	if (cfgp == NULL || *cfgp == NULL)
		return;
	struct cfg *cfg = *cfgp;
	struct cfg_priv *pv = cfg->priv;
	if (pv != NULL) {
		cfg_eval_reset(pv);
		for (size_t i = 0; i < cfg_nparams; i++)
			free(pv->val[i]);
		for (size_t i = 0; i < pv->n; i++) {
			free(pv->entries[i].name);
			free(pv->entries[i].raw);
		}
		free(pv->entries);
		free(pv->confdir);
		free(pv->filename);
		free(pv->hostname);
		free(pv);
	}
	free(cfg);
	*cfgp = NULL;
}

/* Parse text into cfg's entries and evaluate; all problems into r. */
static void cfg_parse_into(struct cfg *cfg, const char *text, size_t len, struct cfg_report *r)
{
	struct cfg_parse_ctx ctx = { cfg->priv, r };
	cfg_logical_lines(text, len, r, CFG_LINE_MAX, cfg_main_line, &ctx);
	cfg_evaluate(cfg, false, r);
}

struct cfg *cfg_parse_text(const char *confdir, const char *filename, const char *text,
			   size_t len, const char **error_r)
{
	struct cfg *cfg = cfg_new_empty(confdir, filename);
	struct cfg_report r = { NULL, cfg->priv->filename, 0, "" };
	cfg_parse_into(cfg, text, len, &r);
	if (r.errors > 0) {
		*error_r = cfg_error_set("%s", r.first);
		cfg_free(&cfg);
		return NULL;
	}
	return cfg;
}

struct cfg *cfg_load(const char *confdir, const char **error_r)
{
	char *path = xasprintf("%s/main.cf", confdir);
	char *data;
	size_t len;
	if (file_read_text(path, CFG_FILE_MAX, &data, &len) < 0) {
		*error_r = cfg_error_set("%s: %s", path, strerror(errno));
		free(path);
		return NULL;
	}
	struct cfg *cfg = cfg_parse_text(confdir, path, data, len, error_r);
	free(data);
	free(path);
	return cfg;
}

struct cfg *cfg_dup(const struct cfg *src)
{
	struct cfg *cfg = cfg_new_empty(src->priv->confdir, src->priv->filename);
	struct cfg_priv *pv = cfg->priv, *spv = src->priv;
	pv->hostname = xstrdup(spv->hostname);
	for (size_t i = 0; i < spv->n; i++) {
		struct cfg_entry *e = &spv->entries[i];
		cfg_entry_add(pv, e->name, strlen(e->name), e->raw, strlen(e->raw), e->line, e->override);
		pv->entries[i].eff = xstrdup(e->eff);
		pv->entries[i].state = e->eff ? 2 : 0;
	}
	/* copy the converted values rather than evaluate again: nothing outside
	 * (host name, myorigin's file) can make a copy differ or fail */
	for (size_t i = 0; i < cfg_nparams; i++) {
		const char *reason;
		pv->val[i] = xstrdup(spv->val[i]);
		CHECK(cfg_convert(&cfg_params[i], &pv->val[i], cfg, &reason) == 0);
	}
	return cfg;
}

int cfg_override(struct cfg *cfg, const char *name, const char *value, const char **error_r)
{
	if (name == NULL || !cfg_is_known(name)) {
		*error_r = cfg_error_set("unknown parameter %s", name ? name : "(null)");
		return -1;
	}
	if (value == NULL)
		value = "";
	struct cfg *nc = cfg_dup(cfg);
	struct cfg_entry *prev = cfg_entry_find(nc->priv, name, strlen(name));
	if (prev != NULL && prev->override) {
		/* overriding an override again replaces it (the list stays short) */
		free(prev->raw);
		prev->raw = xstrdup(value);
	} else {
		cfg_entry_add(nc->priv, name, strlen(name), value, strlen(value), 0, true);
	}
	struct cfg_report r = { NULL, nc->priv->filename, 0, "" };
	struct buf quiet;
	buf_init(&quiet, 0);
	r.out = &quiet;
	cfg_evaluate(nc, false, &r);
	buf_free(&quiet);
	if (r.errors > 0) {
		/* the override's own problem reads "FILE: -o name=...: reason";
		 * drop the file part, keep it for problems of main.cf lines */
		size_t fl = strlen(nc->priv->filename);
		const char *msg = r.first;
		if (strncmp(msg, nc->priv->filename, fl) == 0 && strncmp(msg + fl, ": -o ", 5) == 0)
			msg += fl + 2;
		*error_r = cfg_error_set("%s", msg);
		cfg_free(&nc);
		return -1;
	}
	/* swap contents so the caller's pointer stays valid */
	struct cfg tmp = *cfg;
	*cfg = *nc;
	*nc = tmp;
	cfg_free(&nc);
	return 0;
}

const char *cfg_value(const struct cfg *cfg, const char *name)
{
	if (cfg == NULL || name == NULL)
		return NULL;
	const struct cfg_param *p = cfg_param_find(name);
	if (p != NULL)
		return cfg->priv->val[p - cfg_params];
	struct cfg_entry *e = cfg_entry_find(cfg->priv, name, strlen(name));
	return e ? (e->eff ? e->eff : "") : NULL;
}

/* Line number of a report line "PATH:LINE: ..." (0 when it has none). */
static long cfg_report_line_no(const char *l, size_t plen)
{
	if (l[plen] != ':')
		return 0;
	char *end;
	long n = strtol(l + plen + 1, &end, 10);
	return *end == ':' ? n : 0;
}

struct cfg_report_row {
	const char *p; /* line start in the temporary buffer */
	size_t len;    /* bytes including the newline */
	long line;     /* sort key */
	size_t idx;    /* original order, for a stable sort */
};

static int cfg_report_row_cmp(const void *a, const void *b)
{
	const struct cfg_report_row *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Append the lines of tmp to out sorted by line number (path is their
 * common prefix). */
static void cfg_report_sorted(const struct buf *tmp, const char *path, struct buf *out)
{
	size_t n = 0, cap = 16, plen = strlen(path);
	struct cfg_report_row *rows = xcalloc(cap, sizeof(*rows));
	const char *p = buf_cstr(tmp), *end = p + tmp->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		if (n == cap)
			rows = xreallocarray(rows, cap *= 2, sizeof(*rows));
		rows[n] = (struct cfg_report_row){ p, len, cfg_report_line_no(p, plen), n };
		n++;
		p += len;
	}
	qsort(rows, n, sizeof(*rows), cfg_report_row_cmp);
	for (size_t i = 0; i < n; i++)
		(void)buf_append(out, rows[i].p, rows[i].len);
	free(rows);
}

/* Is p a parameter that holds a list of lookup tables? */
static bool cfg_is_table_list(const struct cfg_param *p)
{
	const char *name = cfg_param_name(p);
	size_t n = strlen(name);
	return (n > 5 && strcmp(name + n - 5, "_maps") == 0) || strcmp(name, "header_checks") == 0 ||
	       strcmp(name, "body_checks") == 0;
}

/* Open every table list of a configuration that loads: a table that cannot
 * be opened is an error, one whose lookups fail (an lmdb: table not built
 * yet) a warning. */
/* True when a table list uses the table type ("hash:"), as a whole word
 * (so texthash: is not hash:), also behind proxy:. */
static bool cfg_names_table_type(const char *list, const char *type)
{
	size_t n = strlen(type);
	for (const char *p = list; (p = strstr(p, type)) != NULL; p += n)
		if (p == list || strchr(" \t,{:", p[-1]) != NULL)
			return true;
	return false;
}

static void cfg_check_tables(struct cfg *cfg, struct cfg_report *r)
{
	struct cfg_priv *pv = cfg->priv;
	bool was = table_quiet;
	table_quiet = true;
	for (size_t i = 0; i < cfg_nparams; i++) {
		const struct cfg_param *p = &cfg_params[i];
		if (!cfg_is_table_list(p) || pv->val[i][0] == 0)
			continue;
		const char *name = cfg_param_name(p);
		struct cfg_entry *e = cfg_entry_find(pv, name, strlen(name));
		int line = e ? e->line : 0;
		const char *how = e ? "" : " (default)";
		const char *err;
		struct table_list *l = table_list_open(pv->val[i], &err);
		if (l == NULL) {
			cfg_report_add(r, line, false, "%s%s: %s", name, how, err);
			continue;
		}
		if (cfg_names_table_type(pv->val[i], "hash:") || cfg_names_table_type(pv->val[i], "btree:"))
			cfg_report_add(r, line, true, "%s%s: hash: and btree: tables are read as lmdb:", name,
				       how);
		char *v = NULL;
		if (table_list_lookup(l, "postern-check-probe", &v, &err) < 0)
			cfg_report_add(r, line, true, "%s%s: lookups will fail: %s", name, how, err);
		free(v);
		table_list_free(&l);
	}
	table_quiet = was;
}

int cfg_check(const char *confdir, struct buf *report)
{
	struct buf tmp;
	buf_init(&tmp, report->max);
	char *path = xasprintf("%s/main.cf", confdir);
	struct cfg_report r = { &tmp, path, 0, "" };
	struct cfg *cfg = NULL;
	char *data;
	size_t len;
	if (file_read_text(path, CFG_FILE_MAX, &data, &len) < 0) {
		cfg_report_add(&r, 0, false, "%s", strerror(errno));
	} else {
		cfg = cfg_new_empty(confdir, path);
		cfg_parse_into(cfg, data, len, &r);
		free(data);
		if (r.errors > 0)
			cfg_free(&cfg);
		else
			cfg_check_tables(cfg, &r);
	}
	int errors = r.errors;
	cfg_report_sorted(&tmp, path, report);
	buf_reset(&tmp);
	free(path);
	path = xasprintf("%s/master.cf", confdir);
	struct cfg_report m = { &tmp, path, 0, "" };
	if (file_read_text(path, CFG_FILE_MAX, &data, &len) < 0) {
		if (errno != ENOENT)
			cfg_report_add(&m, 0, false, "%s", strerror(errno));
	} else {
		/* with a clean main.cf, -o values are also checked in context */
		cfg_master_check_text(data, len, &m, cfg);
		free(data);
	}
	errors += m.errors;
	cfg_report_sorted(&tmp, path, report);
	buf_free(&tmp);
	free(path);
	cfg_free(&cfg);
	return errors;
}

/* ---- printing ---- */

const char *cfg_print_mode_name(enum cfg_print_mode mode)
{
	switch (mode) {
	case CFG_PRINT_ALL: return "all";
	case CFG_PRINT_NONDEFAULT: return "nondefault";
	case CFG_PRINT_DEFAULTS: return "defaults";
	}
	return "unknown";
}

int cfg_print(const struct cfg *cfg, enum cfg_print_mode mode, char **names, FILE *out)
{
	struct cfg *defs = NULL;
	const struct cfg *src = cfg;
	if (mode == CFG_PRINT_DEFAULTS) {
		defs = cfg_new_empty(cfg->priv->confdir, cfg->priv->filename);
		defs->priv->hostname = xstrdup(cfg->priv->hostname);
		struct buf quiet;
		buf_init(&quiet, 0);
		struct cfg_report r = { &quiet, "", 0, "" };
		cfg_evaluate(defs, true, &r);
		buf_free(&quiet);
		src = defs;
	}
	int rc = 0;
	if (names != NULL && names[0] != NULL) {
		for (size_t i = 0; names[i] != NULL; i++) {
			const struct cfg_param *p = cfg_param_find(names[i]);
			if (p == NULL) {
				log_warning("%s: unknown parameter", names[i]);
				rc = -1;
				continue;
			}
			fprintf(out, "%s = %s\n", names[i], src->priv->val[p - cfg_params]);
		}
	} else {
		const struct cfg_param **sorted = xcalloc(cfg_nparams, sizeof(*sorted));
		for (size_t i = 0; i < cfg_nparams; i++)
			sorted[i] = &cfg_params[i];
		qsort(sorted, cfg_nparams, sizeof(*sorted), cfg_param_cmp);
		for (size_t i = 0; i < cfg_nparams; i++) {
			const char *name = cfg_param_name(sorted[i]);
			if (mode == CFG_PRINT_NONDEFAULT &&
			    (cfg_entry_find(cfg->priv, name, strlen(name)) == NULL))
				continue;
			fprintf(out, "%s = %s\n", name, src->priv->val[sorted[i] - cfg_params]);
		}
		free(sorted);
	}
	cfg_free(&defs);
	return rc;
}
