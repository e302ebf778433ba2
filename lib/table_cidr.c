/*
 * table_cidr.c - cidr: tables (Postfix cidr_table(5)).
 *
 * Purpose: "network/prefix result" lines, IPv4 and IPv6 ("[addr]/prefix" or
 * "addr/prefix"; a bare address is a host route), "!network/prefix result",
 * "if network/prefix" ... "endif"; the first matching line wins.
 * Owns: the parsed rule list.
 * Never: resolves names; a key that is not an IP address finds nothing.
 * Limits: TABLE_LINE_MAX per logical line, if/endif nesting of 100.
 * Tests: tests/unit/lib/table_test.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>

#include "lib/table.h"
#include "lib/table_int.h"
#include "lib/fileio.h"
#include "lib/common.h"

#define CIDR_NEST_MAX 100

enum cidr_kind {
	CIDR_MATCH, /* network result */
	CIDR_IF,    /* if network */
	CIDR_ENDIF, /* endif */
};

struct cidr_rule {
	enum cidr_kind kind;    /* what the line is */
	bool negate;            /* "!network" */
	int family;             /* AF_INET or AF_INET6 */
	unsigned char net[16];  /* network address, host bits zero */
	int prefix;             /* prefix length */
	char *result;           /* CIDR_MATCH only */
	size_t skip_to;         /* CIDR_IF: index of its endif */
	int line;               /* source line */
};

struct cidr_table {
	struct cidr_rule *r;         /* rules in file order */
	size_t n, cap;               /* used / allocated */
	size_t stack[CIDR_NEST_MAX]; /* open ifs */
	size_t depth;                /* entries in stack */
	const char *path;            /* while parsing */
};

/* Parse an address, optionally in brackets; IPv4-mapped IPv6 becomes IPv4. */
static int cidr_parse_addr(const char *s, size_t len, int *family, unsigned char out[16])
{
	char tmp[64];
	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = 0;
	memset(out, 0, 16);
	if (inet_pton(AF_INET, tmp, out) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, out) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (memcmp(out, mapped, 12) == 0) {
			memmove(out, out + 12, 4);
			memset(out + 4, 0, 12);
			*family = AF_INET;
			return 0;
		}
		*family = AF_INET6;
		return 0;
	}
	return -1;
}

static bool cidr_in(const unsigned char *addr, const unsigned char *net, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;
	if (memcmp(addr, net, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (addr[full] & mask) == (net[full] & mask);
}

/* Parse "addr[/prefix]" (token of len bytes) into r. */
static int cidr_parse_net(const char *tok, size_t len, struct cidr_rule *r, const char **why)
{
	const char *slash = memchr(tok, '/', len);
	size_t alen = slash ? (size_t)(slash - tok) : len;
	if (cidr_parse_addr(tok, alen, &r->family, r->net) < 0) {
		*why = "bad IP address";
		return -1;
	}
	int max = r->family == AF_INET ? 32 : 128;
	r->prefix = max;
	if (slash != NULL) {
		const char *p = slash + 1, *e = tok + len;
		if (p == e || e - p > 3) {
			*why = "bad prefix length";
			return -1;
		}
		int v = 0;
		for (; p < e; p++) {
			if (!isdigit((unsigned char)*p)) {
				*why = "bad prefix length";
				return -1;
			}
			v = v * 10 + (*p - '0');
		}
		if (v > max) {
			*why = "prefix length too large";
			return -1;
		}
		r->prefix = v;
	}
	int bytes = r->family == AF_INET ? 4 : 16;
	for (int bit = r->prefix; bit < bytes * 8; bit++) {
		if (r->net[bit / 8] & (0x80 >> (bit % 8))) {
			/* as Postfix: 10.1.2.3/8 is a typo for 10.0.0.0/8 or 10.1.2.3/32 */
			*why = "non-null host address bits (network address expected)";
			return -1;
		}
	}
	return 0;
}

static int cidr_line(void *vctx, char *line, int lineno, const char **error_r)
{
	struct cidr_table *ct = vctx;
	struct cidr_rule r = { CIDR_MATCH, false, 0, { 0 }, 0, NULL, 0, lineno };
	char *p = line;
	const char *why;
	if (strncmp(p, "endif", 5) == 0 && (p[5] == 0 || isspace((unsigned char)p[5]))) {
		p += 5;
		while (isspace((unsigned char)*p))
			p++;
		if (ct->depth == 0 || *p != 0) {
			*error_r = table_error_set("%s:%d: %s", ct->path, lineno,
						   ct->depth == 0 ? "endif without if" : "text after endif");
			return -1;
		}
		r.kind = CIDR_ENDIF;
		ct->r[ct->stack[--ct->depth]].skip_to = ct->n;
		goto add;
	}
	if (strncmp(p, "if", 2) == 0 && isspace((unsigned char)p[2])) {
		r.kind = CIDR_IF;
		p += 2;
		while (isspace((unsigned char)*p))
			p++;
	}
	if (*p == '!') {
		r.negate = true;
		p++;
	}
	char *tok = p;
	while (*p && !isspace((unsigned char)*p))
		p++;
	if (cidr_parse_net(tok, (size_t)(p - tok), &r, &why) < 0) {
		*error_r = table_error_set("%s:%d: %s: \"%.*s\"", ct->path, lineno, why,
					   (int)(p - tok > 80 ? 80 : p - tok), tok);
		return -1;
	}
	while (isspace((unsigned char)*p))
		p++;
	if (r.kind == CIDR_IF) {
		if (*p != 0) {
			*error_r = table_error_set("%s:%d: text after if network", ct->path, lineno);
			return -1;
		}
		if (ct->depth == CIDR_NEST_MAX) {
			*error_r = table_error_set("%s:%d: if nested too deeply", ct->path, lineno);
			return -1;
		}
		ct->stack[ct->depth++] = ct->n;
	} else {
		if (*p == 0) {
			*error_r = table_error_set("%s:%d: missing result after network", ct->path, lineno);
			return -1;
		}
		r.result = xstrdup(p);
	}
add:
	if (ct->n == ct->cap) {
		ct->cap = ct->cap ? ct->cap * 2 : 16;
		ct->r = xreallocarray(ct->r, ct->cap, sizeof(*ct->r));
	}
	ct->r[ct->n++] = r;
	return 0;
}

static void cidr_close(struct table *t)
{
	struct cidr_table *ct = t->priv;
	if (ct == NULL)
		return;
	for (size_t i = 0; i < ct->n; i++)
		free(ct->r[i].result);
	free(ct->r);
	free(ct);
}

static int cidr_open(struct table *t, const char *name, const char **error_r)
{
	char *data;
	size_t len;
	if (file_read_text(name, TABLE_FILE_MAX, &data, &len) < 0) {
		*error_r = table_error_set("%s: %s", *name ? name : "(empty file name)", strerror(errno));
		return -1;
	}
	struct cidr_table *ct = xcalloc(1, sizeof(*ct));
	ct->path = name;
	t->priv = ct;
	int rc = table_lines(name, data, len, cidr_line, ct, error_r);
	free(data);
	if (rc == 0 && ct->depth > 0) {
		*error_r = table_error_set("%s:%d: if without endif", name, ct->r[ct->stack[ct->depth - 1]].line);
		rc = -1;
	}
	ct->path = NULL;
	if (rc < 0) {
		cidr_close(t);
		t->priv = NULL;
	}
	return rc;
}

static int cidr_lookup(struct table *t, const char *key, char **value_r, const char **error_r)
{
	struct cidr_table *ct = t->priv;
	int family;
	unsigned char addr[16];
	if (cidr_parse_addr(key, strlen(key), &family, addr) < 0)
		return 0;
	for (size_t i = 0; i < ct->n; i++) {
		struct cidr_rule *r = &ct->r[i];
		if (r->kind == CIDR_ENDIF)
			continue;
		/* negation applies within the address family, as in Postfix:
		 * "!10.0.0.0/8" does not match IPv6 clients */
		bool hit = r->family == family && (cidr_in(addr, r->net, r->prefix) != r->negate);
		if (r->kind == CIDR_IF) {
			if (!hit)
				i = r->skip_to;
			continue;
		}
		if (hit) {
			*value_r = xstrdup(r->result);
			return 1;
		}
	}
	return 0;
}

const struct table_ops table_cidr_ops = { "cidr", false, cidr_open, cidr_lookup, cidr_close };
