/*
 * cfg_master.c - master.cf: the smtpd listening services and their -o overrides.
 *
 * Purpose: turn CONFDIR/master.cf into an array of struct cfg_service, keeping
 * inet services that run smtpd, or name every problem with file:line.
 * Owns: the service array and its strings.
 * Never: exits, binds sockets, trusts the file (NUL bytes, huge lines and
 * unbalanced braces are errors).
 * Limits: logical line of at most 64 KiB, at most 1024 services.
 * Tests: tests/unit/lib/cfg_test.c.
 */
#include <ctype.h>
#include <netdb.h>

#include "lib/cfg.h"
#include "lib/cfg_int.h"
#include "lib/log.h"
#include "lib/fileio.h"
#include "lib/common.h"

#define MASTER_LINE_MAX (64 * 1024)
#define MASTER_FILE_MAX (4 * 1024 * 1024)
#define MASTER_SERVICES_MAX 1024
#define MASTER_TOKENS_MAX 512

struct master_ctx {
	struct cfg_report *r;
	struct cfg_service *svc; /* kept services */
	size_t n, cap;           /* used / allocated */
};

static void master_service_clear(struct cfg_service *s)
{
	free(s->endpoint);
	free(s->host);
	free(s->command);
	if (s->args)
		for (size_t i = 0; s->args[i]; i++)
			free(s->args[i]);
	free(s->args);
	for (size_t i = 0; i < s->n_overrides; i++) {
		free(s->override_names[i]);
		free(s->override_values[i]);
	}
	free(s->override_names);
	free(s->override_values);
	memset(s, 0, sizeof(*s));
}

void cfg_master_free(struct cfg_service **services, size_t n)
{
	if (services == NULL || *services == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		master_service_clear(&(*services)[i]);
	free(*services);
	*services = NULL;
}

/* Split a logical line into tokens; "{ a b }" is one token "a b". Returns
 * the count, or -1 with a report. tokens[] point into the owned copy. */
static int master_tokens(char *line, char **tok, int max, struct cfg_report *r, int lineno)
{
	int n = 0;
	char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == 0)
			return n;
		if (n == max) {
			cfg_report_add(r, lineno, false, "more than %d fields", max);
			return -1;
		}
		if (*p == '{') {
			int level = 0;
			char *q = p;
			for (; *q; q++) {
				if (*q == '{')
					level++;
				else if (*q == '}' && --level == 0)
					break;
			}
			if (*q == 0) {
				cfg_report_add(r, lineno, false, "unbalanced \"{\"");
				return -1;
			}
			char *start = p + 1, *end = q;
			while (start < end && isspace((unsigned char)*start))
				start++;
			while (end > start && isspace((unsigned char)end[-1]))
				end--;
			*end = 0;
			tok[n++] = start;
			p = q + 1;
			if (*p != 0 && *p != ' ' && *p != '\t') {
				cfg_report_add(r, lineno, false, "text after \"}\"");
				return -1;
			}
			continue;
		}
		tok[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = 0;
	}
}

static int master_flag(const char *s, bool def, bool *r)
{
	if (strcmp(s, "-") == 0)
		*r = def;
	else if (strcmp(s, "y") == 0)
		*r = true;
	else if (strcmp(s, "n") == 0)
		*r = false;
	else
		return -1;
	return 0;
}

/* Decimal 0..max, or -1. */
static long master_num(const char *s, long max)
{
	if (*s == 0 || strlen(s) > 9)
		return -1;
	long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v <= max ? v : -1;
}

/* Port number or service name; -1 when neither. */
static int master_port(const char *s)
{
	long v = master_num(s, 65535);
	if (v > 0)
		return (int)v;
	if (v == 0 || *s == 0)
		return -1;
	for (const char *q = s; *q; q++)
		if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_' && *q != '.')
			return -1;
	struct servent *se = getservbyname(s, "tcp");
	if (se == NULL) {
		/* hosts without /etc/services still know these */
		if (strcmp(s, "smtp") == 0)
			return 25;
		if (strcmp(s, "submission") == 0)
			return 587;
		if (strcmp(s, "submissions") == 0 || strcmp(s, "smtps") == 0)
			return 465;
		return -1;
	}
	return ntohs((uint16_t)se->s_port);
}

/* Split endpoint into host (owned, NULL for all interfaces) and port. */
static int master_endpoint(const char *ep, char **host_r, int *port_r, const char **why)
{
	const char *portstr;
	char *host = NULL;
	if (ep[0] == '[') {
		const char *close = strchr(ep, ']');
		if (close == NULL || close[1] != ':') {
			*why = "expected [address]:port";
			return -1;
		}
		host = xmemdup(ep + 1, (size_t)(close - ep - 1));
		portstr = close + 2;
	} else {
		const char *colon = strrchr(ep, ':');
		if (colon != NULL) {
			if (memchr(ep, ':', (size_t)(colon - ep)) != NULL) {
				*why = "IPv6 addresses need brackets: [address]:port";
				return -1;
			}
			host = xmemdup(ep, (size_t)(colon - ep));
			portstr = colon + 1;
		} else {
			portstr = ep;
		}
	}
	if (host != NULL && (host[0] == 0 || strcmp(host, "*") == 0)) {
		bool empty = host[0] == 0;
		free(host);
		host = NULL;
		if (empty && ep[0] == '[') {
			*why = "empty address";
			return -1;
		}
	}
	int port = master_port(portstr);
	if (port < 0) {
		free(host);
		*why = "unknown port or service name";
		return -1;
	}
	*host_r = host;
	*port_r = port;
	return 0;
}

/* Validate "name=value" of a -o; 0 or -1 with a report. A value holding '$'
 * can only be checked against a full configuration (cfg_for_service). */
static int master_override(const char *arg, char **name_r, char **value_r, struct cfg_report *r,
			   int lineno)
{
	const char *eq = strchr(arg, '=');
	if (eq == NULL) {
		cfg_report_add(r, lineno, false, "-o needs name=value, got \"%.100s\"", arg);
		return -1;
	}
	const char *ne = eq;
	while (ne > arg && isspace((unsigned char)ne[-1]))
		ne--;
	const char *v = eq + 1;
	while (isspace((unsigned char)*v))
		v++;
	char *name = xmemdup(arg, (size_t)(ne - arg));
	const struct cfg_param *p = cfg_param_find(name);
	if (p == NULL) {
		cfg_report_add(r, lineno, false, "-o %.100s: unknown parameter", name);
		free(name);
		return -1;
	}
	char *value = xstrdup(v);
	if (strchr(value, '$') == NULL) {
		const char *reason;
		char *copy = xstrdup(value);
		int rc = cfg_convert(p, &copy, NULL, &reason);
		free(copy);
		if (rc < 0) {
			cfg_report_add(r, lineno, false, "-o %s: %s", name, reason);
			free(name);
			free(value);
			return -1;
		}
	}
	*name_r = name;
	*value_r = value;
	return 0;
}

static void master_line(void *vctx, const char *text, size_t len, int lineno)
{
	struct master_ctx *ctx = vctx;
	struct cfg_report *r = ctx->r;
	char *line = xmemdup(text, len);
	char *tok[MASTER_TOKENS_MAX];
	int n = master_tokens(line, tok, MASTER_TOKENS_MAX, r, lineno);
	if (n < 0)
		goto out;
	if (n < 8) {
		cfg_report_add(r, lineno, false, "expected 8 or more fields, got %d", n);
		goto out;
	}
	struct cfg_service s = { 0 };
	bool def_private = true;
	static const char *const types[] = { "inet", "unix", "unix-dgram", "fifo", "pass" };
	bool type_ok = false;
	for (size_t i = 0; i < ARRAY_LEN(types); i++)
		type_ok |= strcmp(tok[1], types[i]) == 0;
	if (!type_ok) {
		cfg_report_add(r, lineno, false, "bad service type \"%.40s\"", tok[1]);
		goto out;
	}
	if (master_flag(tok[2], def_private, &s.private_) < 0 ||
	    master_flag(tok[3], true, &s.unpriv) < 0 || master_flag(tok[4], true, &s.chroot) < 0) {
		cfg_report_add(r, lineno, false, "private, unpriv and chroot must be y, n or -");
		goto out;
	}
	if (strcmp(tok[5], "-") == 0) {
		s.wakeup = 0;
	} else {
		char w[16];
		size_t wl = strlen(tok[5]);
		if (wl > 0 && wl < sizeof(w) && tok[5][wl - 1] == '?')
			wl--; /* "60?" wakes only when in use: same for us */
		long v = -1;
		if (wl > 0 && wl < sizeof(w)) {
			memcpy(w, tok[5], wl);
			w[wl] = 0;
			v = master_num(w, 1000000);
		}
		if (v < 0) {
			cfg_report_add(r, lineno, false, "bad wakeup time \"%.40s\"", tok[5]);
			goto out;
		}
		s.wakeup = (int)v;
	}
	if (strcmp(tok[6], "-") == 0) {
		s.maxproc = -1;
	} else {
		long v = master_num(tok[6], 1000000);
		if (v < 0) {
			cfg_report_add(r, lineno, false, "bad process limit \"%.40s\"", tok[6]);
			goto out;
		}
		s.maxproc = (int)v;
	}
	if (strcmp(tok[1], "inet") != 0 || strcmp(tok[7], "smtpd") != 0) {
		cfg_report_add(r, lineno, true, "ignoring service %.60s %s (%.40s): Postern runs only inet smtpd services",
			       tok[0], tok[1], tok[7]);
		goto out;
	}
	const char *why;
	if (master_endpoint(tok[0], &s.host, &s.port, &why) < 0) {
		cfg_report_add(r, lineno, false, "bad service \"%.100s\": %s", tok[0], why);
		goto out;
	}
	for (size_t i = 0; i < ctx->n; i++) {
		struct cfg_service *o = &ctx->svc[i];
		bool same_host = (o->host == NULL && s.host == NULL) ||
				 (o->host != NULL && s.host != NULL && strcmp(o->host, s.host) == 0);
		if (o->port == s.port && same_host) {
			cfg_report_add(r, lineno, false, "duplicate service %.100s (line %d)", tok[0], o->line);
			free(s.host);
			goto out;
		}
	}
	if (ctx->n >= MASTER_SERVICES_MAX) {
		cfg_report_add(r, lineno, false, "more than %d services", MASTER_SERVICES_MAX);
		free(s.host);
		goto out;
	}
	s.endpoint = xstrdup(tok[0]);
	s.command = xstrdup(tok[7]);
	s.line = lineno;
	s.args = xcalloc((size_t)n, sizeof(char *));
	s.override_names = xcalloc((size_t)n, sizeof(char *));
	s.override_values = xcalloc((size_t)n, sizeof(char *));
	size_t na = 0;
	bool bad = false;
	for (int i = 8; i < n; i++) {
		const char *arg = NULL;
		if (strcmp(tok[i], "-o") == 0) {
			if (i + 1 >= n) {
				cfg_report_add(r, lineno, false, "-o without name=value");
				bad = true;
				break;
			}
			arg = tok[++i];
		} else if (strncmp(tok[i], "-o", 2) == 0) {
			arg = tok[i] + 2;
		}
		if (arg != NULL) {
			char *nm, *val;
			if (master_override(arg, &nm, &val, r, lineno) < 0) {
				bad = true;
				continue;
			}
			s.override_names[s.n_overrides] = nm;
			s.override_values[s.n_overrides++] = val;
		} else {
			s.args[na++] = xstrdup(tok[i]);
		}
	}
	if (bad) {
		master_service_clear(&s);
		goto out;
	}
	if (ctx->n == ctx->cap) {
		ctx->cap = ctx->cap ? ctx->cap * 2 : 4;
		ctx->svc = xreallocarray(ctx->svc, ctx->cap, sizeof(*ctx->svc));
	}
	ctx->svc[ctx->n++] = s;
out:
	free(line);
}

static void master_parse(const char *text, size_t len, struct cfg_report *r, struct master_ctx *ctx)
{
	ctx->r = r;
	cfg_logical_lines(text, len, r, MASTER_LINE_MAX, master_line, ctx);
}

void cfg_master_check_text(const char *text, size_t len, struct cfg_report *r, const struct cfg *cfg)
{
	struct master_ctx ctx = { 0 };
	master_parse(text, len, r, &ctx);
	for (size_t i = 0; cfg != NULL && i < ctx.n; i++) {
		const char *err;
		struct cfg *sc = cfg_for_service(cfg, &ctx.svc[i], &err);
		if (sc == NULL)
			cfg_report_add(r, ctx.svc[i].line, false, "%s", err);
		cfg_free(&sc);
	}
	cfg_master_free(&ctx.svc, ctx.n);
}

int cfg_master_parse_text(const char *filename, const char *text, size_t len,
			  struct cfg_service **services_r, size_t *n_r, const char **error_r)
{
	struct cfg_report r = { NULL, filename, 0, "" };
	struct master_ctx ctx = { 0 };
	master_parse(text, len, &r, &ctx);
	if (r.errors > 0) {
		cfg_master_free(&ctx.svc, ctx.n);
		*error_r = cfg_error_set("%s", r.first);
		return -1;
	}
	*services_r = ctx.svc;
	*n_r = ctx.n;
	return 0;
}

int cfg_master_load(const char *confdir, struct cfg_service **services_r, size_t *n_r,
		    const char **error_r)
{
	char *path = xasprintf("%s/master.cf", confdir);
	char *data;
	size_t len;
	if (file_read_text(path, MASTER_FILE_MAX, &data, &len) < 0) {
		if (errno != ENOENT) {
			*error_r = cfg_error_set("%s: %s", path, strerror(errno));
			free(path);
			return -1;
		}
		free(path);
		/* no master.cf: Postfix's stock "smtp inet n - y - - smtpd" */
		struct cfg_service *s = xcalloc(1, sizeof(*s));
		s->endpoint = xstrdup("smtp");
		s->port = master_port("smtp");
		s->private_ = false;
		s->unpriv = true;
		s->chroot = true;
		s->maxproc = -1;
		s->command = xstrdup("smtpd");
		s->args = xcalloc(1, sizeof(char *));
		*services_r = s;
		*n_r = 1;
		return 0;
	}
	int rc = cfg_master_parse_text(path, data, len, services_r, n_r, error_r);
	free(data);
	free(path);
	return rc;
}

struct cfg *cfg_for_service(const struct cfg *cfg, const struct cfg_service *svc,
			    const char **error_r)
{
	struct cfg *c = cfg_dup(cfg);
	for (size_t i = 0; i < svc->n_overrides; i++) {
		if (cfg_override(c, svc->override_names[i], svc->override_values[i], error_r) < 0) {
			cfg_free(&c);
			return NULL;
		}
	}
	return c;
}
