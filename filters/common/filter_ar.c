/*
 * filter_ar.c - Authentication-Results parsing (see filter_ar.h).
 *
 * Purpose: pull method, result and the identifying property out of each
 * resinfo of an A-R field.
 * Owns: nothing. Never: reads past the given length; keeps a value that
 * does not fit its field (it is dropped, not truncated, so a long forged
 * domain cannot turn into a shorter real one).
 * Limits: 4096 bytes of comment-free text per field, FILTER_AR_MAX_RESULTS.
 * Tests: tests/unit/filters/filter_ar_test.c, tests/fuzz/filter_ar_fuzz.c.
 */
#include <strings.h>

#include "filters/common/filter_hdr.h"
#include "filters/common/filter_ar.h"
#include "lib/common.h"

/* Copy v without comments and with quoted strings unquoted into plain,
 * marking the bytes that were inside quotes in q (so ';' and '=' there are
 * data). */
static bool ar_strip(struct str v, char *plain, bool *q, size_t cap, size_t *len_r)
{
	size_t n = 0;
	int depth = 0;
	bool inq = false;
	for (size_t i = 0; i < v.len; i++) {
		char c = v.p[i];
		if (c == '\0')
			return false;
		if (inq) {
			if (c == '\\' && i + 1 < v.len) {
				c = v.p[++i];
			} else if (c == '"') {
				inq = false;
				continue;
			}
		} else if (depth > 0) {
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		} else if (c == '(') {
			depth = 1;
			continue;
		} else if (c == '"') {
			inq = true;
			continue;
		}
		if (n >= cap)
			return false;
		if (!inq && (c == '\r' || c == '\n' || c == '\t'))
			c = ' ';
		q[n] = inq;
		plain[n++] = c;
	}
	if (inq || depth > 0)
		return false;
	*len_r = n;
	return true;
}

static bool ar_copy_lower(char *dst, size_t cap, const char *p, size_t n)
{
	if (n == 0 || n >= cap)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	dst[n] = '\0';
	return true;
}

/* The domain of an address ("a@d.test" -> "d.test", "d.test" -> itself). */
static bool ar_domain(char *dst, size_t cap, const char *p, size_t n)
{
	const char *at = NULL;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '@')
			at = p + i;
	if (at != NULL) {
		n -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	if (!ar_copy_lower(dst, cap, p, n))
		return false;
	return filter_hdr_domain_ok(str_of(dst));
}

/* One resinfo: words separated by blanks, the first "method=result". */
static void ar_resinfo(const char *p, size_t n, struct filter_ar *ar)
{
	struct filter_ar_result r;
	memset(&r, 0, sizeof(r));
	bool have_method = false;
	size_t i = 0;
	while (i < n) {
		while (i < n && p[i] == ' ')
			i++;
		size_t s = i;
		while (i < n && p[i] != ' ')
			i++;
		if (s == i)
			break;
		const char *w = p + s;
		size_t wl = i - s;
		const char *eq = memchr(w, '=', wl);
		if (eq == NULL)
			continue;
		size_t kl = (size_t)(eq - w);
		const char *val = eq + 1;
		size_t vl = wl - kl - 1;
		if (!have_method) {
			/* method [ "/" version ] "=" result */
			const char *slash = memchr(w, '/', kl);
			size_t ml = slash ? (size_t)(slash - w) : kl;
			if (!ar_copy_lower(r.method, sizeof(r.method), w, ml) ||
			    !ar_copy_lower(r.result, sizeof(r.result), val, vl))
				return;
			have_method = true;
			continue;
		}
		if (kl == 13 && strncasecmp(w, "smtp.mailfrom", 13) == 0) {
			if (ar_domain(r.domain, sizeof(r.domain), val, vl))
				r.helo = false;
			else
				r.domain[0] = '\0';
		} else if (kl == 9 && strncasecmp(w, "smtp.helo", 9) == 0 && r.domain[0] == '\0') {
			if (ar_domain(r.domain, sizeof(r.domain), val, vl))
				r.helo = true;
			else
				r.domain[0] = '\0';
		} else if (kl == 8 && strncasecmp(w, "header.d", 8) == 0) {
			if (!ar_domain(r.domain, sizeof(r.domain), val, vl))
				r.domain[0] = '\0';
		} else if (kl == 8 && strncasecmp(w, "header.i", 8) == 0 && r.domain[0] == '\0') {
			if (!ar_domain(r.domain, sizeof(r.domain), val, vl))
				r.domain[0] = '\0';
		} else if (kl == 8 && strncasecmp(w, "header.s", 8) == 0) {
			if (!ar_copy_lower(r.selector, sizeof(r.selector), val, vl))
				r.selector[0] = '\0';
		}
	}
	if (have_method && ar->n < FILTER_AR_MAX_RESULTS)
		ar->v[ar->n++] = r;
}

int filter_ar_parse(struct str value, struct filter_ar *ar)
{
	memset(ar, 0, sizeof(*ar));
	char plain[4096];
	bool q[4096];
	size_t n;
	/* the authserv-id as filter_hdr reads it (token or quoted-string) */
	struct buf id;
	buf_init(&id, sizeof(ar->authserv_id) - 1);
	int rc = filter_hdr_authserv_id(value, &id);
	if (rc == 0)
		memcpy(ar->authserv_id, buf_cstr(&id), id.len + 1);
	buf_free(&id);
	if (rc < 0)
		return -1;
	if (!ar_strip(value, plain, q, sizeof(plain), &n))
		return 0; /* an id but no readable results */
	/* skip the authserv-id part: up to the first unquoted ';' */
	size_t i = 0;
	while (i < n && !(plain[i] == ';' && !q[i]))
		i++;
	while (i < n) {
		i++; /* the ';' */
		size_t s = i;
		while (i < n && !(plain[i] == ';' && !q[i]))
			i++;
		ar_resinfo(plain + s, i - s, ar);
	}
	return 0;
}

bool filter_ar_claims(struct str value, const char *authserv_id, const char *method)
{
	struct filter_ar *ar = xmalloc(sizeof(*ar));
	bool claims = false;
	if (filter_ar_parse(value, ar) == 0 && strcasecmp(ar->authserv_id, authserv_id) == 0) {
		claims = ar->n == 0;
		for (size_t i = 0; i < ar->n && !claims; i++)
			if (strcmp(ar->v[i].method, method) == 0)
				claims = true;
	}
	free(ar);
	return claims;
}
