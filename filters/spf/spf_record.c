/*
 * spf_record.c - RFC 7208 §12 syntax of SPF records (see spf_record.h).
 *
 * Purpose: decide whether a record is valid before libspf2 sees it, and
 * hand libspf2 a form it evaluates as the RFC says.
 * Owns: nothing. Never: trusts the record's length, bytes or nesting.
 * Limits: SPF_RECORD_MAX bytes; macro digit transformers clamped to 128
 * (libspf2's macro expansion had overflows: CVE-2021-20314, CVE-2023-42118).
 * Tests: tests/unit/filters/spf_record_test.c, tests/fuzz/spf_record_fuzz.c.
 */
#include <arpa/inet.h>
#include <strings.h>

#include "filters/spf/spf_record.h"
#include "lib/common.h"

struct spf_rec_cursor {
	const char *p;   /* the term being read */
	size_t len;      /* its length */
	const char *why; /* reason for the first error */
};

static bool rec_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool rec_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool rec_alnum(char c)
{
	return rec_alpha(c) || rec_digit(c);
}

bool spf_record_is_spf(const char *txt, size_t len)
{
	return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 && (len == 6 || txt[6] == ' ');
}

/* A toplabel (§7.1): alphanumerics with at least one letter, or
 * alphanumerics and inner hyphens (then a letter is not needed). */
static bool rec_toplabel(const char *p, size_t n)
{
	if (n == 0 || n > 63)
		return false;
	bool alpha = false, hyphen = false;
	for (size_t i = 0; i < n; i++) {
		if (rec_alpha(p[i]))
			alpha = true;
		else if (p[i] == '-')
			hyphen = true;
		else if (!rec_digit(p[i]))
			return false;
	}
	if (p[0] == '-' || p[n - 1] == '-')
		return false;
	return alpha || hyphen;
}

/*
 * Check a macro-string (§7.1) of n bytes at p, appending it to out with
 * digit transformers clamped. in_exp: the c, r, t letters are allowed.
 * Sets *last_is_macro when the string ends with a macro-expand.
 */
static bool rec_macro_string(const char *p, size_t n, bool in_exp, struct buf *out,
			     bool *last_is_macro, const char **why)
{
	*last_is_macro = false;
	for (size_t i = 0; i < n;) {
		char c = p[i];
		if (c != '%') {
			if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e) {
				*why = "bad byte in macro-string";
				return false;
			}
			buf_putc(out, c);
			*last_is_macro = false;
			i++;
			continue;
		}
		if (i + 1 >= n) {
			*why = "'%' at end of macro-string";
			return false;
		}
		char k = p[i + 1];
		if (k == '%' || k == '_' || k == '-') {
			buf_append(out, p + i, 2);
			i += 2;
			*last_is_macro = true;
			continue;
		}
		if (k != '{') {
			*why = "bad character after '%'";
			return false;
		}
		size_t j = i + 2;
		if (j >= n) {
			*why = "unterminated macro";
			return false;
		}
		char letter = (char)(p[j] | 0x20);
		if (!strchr("slodiphcrtv", letter) || !rec_alpha(p[j])) {
			*why = "bad macro letter";
			return false;
		}
		if (!in_exp && strchr("crt", letter)) {
			*why = "macro letter c, r or t outside exp";
			return false;
		}
		buf_putc(out, '%');
		buf_putc(out, '{');
		buf_putc(out, p[j]);
		j++;
		/* transformers: *DIGIT [ "r" ] */
		size_t ds = j;
		while (j < n && rec_digit(p[j]))
			j++;
		if (j > ds) {
			unsigned long v = 0;
			for (size_t d = ds; d < j; d++) {
				v = v * 10 + (unsigned long)(p[d] - '0');
				if (v > 1000)
					v = 1000; /* saturate; clamped below */
			}
			if (v == 0) {
				*why = "macro digit transformer 0"; /* §7.3: MUST be nonzero */
				return false;
			}
			buf_printf(out, "%lu", v > 128 ? 128UL : v);
		}
		if (j < n && (p[j] == 'r' || p[j] == 'R'))
			buf_putc(out, p[j++]);
		while (j < n && strchr(".-+,/_=", p[j]) && p[j] != '\0')
			buf_putc(out, p[j++]);
		if (j >= n || p[j] != '}') {
			*why = "bad macro transformer or delimiter";
			return false;
		}
		buf_putc(out, '}');
		i = j + 1;
		*last_is_macro = true;
	}
	return true;
}

/* A domain-spec (§7.1): macro-string ending in "." toplabel ["."] or in a
 * macro-expand. */
static bool rec_domain_spec(const char *p, size_t n, struct buf *out, const char **why)
{
	if (n == 0) {
		*why = "empty domain-spec";
		return false;
	}
	bool macro_end;
	if (!rec_macro_string(p, n, false, out, &macro_end, why))
		return false;
	if (macro_end)
		return true;
	size_t e = n;
	if (p[e - 1] == '.')
		e--;
	size_t s = e;
	while (s > 0 && p[s - 1] != '.')
		s--;
	if (s == 0) {
		*why = "domain-spec without a dot";
		return false;
	}
	if (!rec_toplabel(p + s, e - s)) {
		*why = "bad top label in domain-spec";
		return false;
	}
	return true;
}

/* "/N" with N in 0..max written as the ABNF wants (no leading zeros). */
static bool rec_cidr(const char *p, size_t n, unsigned max, unsigned *v)
{
	if (n < 2 || p[0] != '/' || n > 4)
		return false;
	if (p[1] == '0' && n > 2)
		return false;
	unsigned x = 0;
	for (size_t i = 1; i < n; i++) {
		if (!rec_digit(p[i]))
			return false;
		x = x * 10 + (unsigned)(p[i] - '0');
	}
	if (x > max)
		return false;
	*v = x;
	return true;
}

/* dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ] at the
 * end of [p, p+n): returns the length of the domain part before it. */
static bool rec_dual_cidr(const char *p, size_t n, size_t *dom_len, const char **why)
{
	/* the cidr part starts at the first '/' that is followed only by
	 * digits and '/' up to the end */
	size_t s = n;
	while (s > 0 && (rec_digit(p[s - 1]) || p[s - 1] == '/'))
		s--;
	/* the domain-spec may end in digits of a macro-free label: find the
	 * first '/' from s on */
	while (s < n && p[s] != '/')
		s++;
	*dom_len = s;
	if (s == n)
		return true;
	const char *c = p + s;
	size_t cl = n - s;
	unsigned v;
	if (cl >= 2 && c[0] == '/' && c[1] == '/') {
		if (!rec_cidr(c + 1, cl - 1, 128, &v))
			goto bad;
		return true;
	}
	size_t first = 1;
	while (first < cl && c[first] != '/')
		first++;
	if (!rec_cidr(c, first, 32, &v))
		goto bad;
	if (first == cl)
		return true;
	if (cl - first >= 2 && c[first + 1] == '/' && rec_cidr(c + first + 1, cl - first - 1, 128, &v))
		return true;
bad:
	*why = "bad CIDR length";
	return false;
}

/* ip4:/ip6: network with optional CIDR; rewrites /0 as two /1 halves. */
static bool rec_ip(const char *q, size_t ql, const char *p, size_t n, bool v6,
		   struct buf *out, const char **why)
{
	char addr[64];
	const char *slash = memchr(p, '/', n);
	size_t al = slash ? (size_t)(slash - p) : n;
	if (al == 0 || al >= sizeof(addr)) {
		*why = "bad IP network";
		return false;
	}
	memcpy(addr, p, al);
	addr[al] = '\0';
	unsigned char bin[16];
	if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1) {
		*why = "bad IP network";
		return false;
	}
	unsigned plen = v6 ? 128 : 32;
	if (slash && !rec_cidr(slash, n - al, v6 ? 128 : 32, &plen)) {
		*why = "bad CIDR length";
		return false;
	}
	if (plen == 0) {
		/* libspf2 refuses /0: the same set as two halves */
		if (v6)
			buf_printf(out, "%.*sip6:::/1 %.*sip6:8000::/1", (int)ql, q, (int)ql, q);
		else
			buf_printf(out, "%.*sip4:0.0.0.0/1 %.*sip4:128.0.0.0/1", (int)ql, q, (int)ql,
				   q);
		return true;
	}
	buf_append(out, q, ql);
	buf_puts(out, v6 ? "ip6:" : "ip4:");
	buf_append(out, p, n);
	return true;
}

static bool rec_term(const char *t, size_t n, struct buf *out, bool *seen_redirect,
		     bool *seen_exp, const char **why)
{
	/* modifier: name "=" macro-string, name = ALPHA *(ALPHA/DIGIT/-/_/.) */
	size_t nl = 0;
	while (nl < n && (rec_alnum(t[nl]) || t[nl] == '-' || t[nl] == '_' || t[nl] == '.'))
		nl++;
	if (nl > 0 && nl < n && t[nl] == '=' && rec_alpha(t[0])) {
		const char *v = t + nl + 1;
		size_t vl = n - nl - 1;
		bool me;
		if (nl == 8 && strncasecmp(t, "redirect", 8) == 0) {
			if (*seen_redirect) {
				*why = "duplicate redirect=";
				return false;
			}
			*seen_redirect = true;
			buf_append(out, t, nl + 1);
			return rec_domain_spec(v, vl, out, why);
		}
		if (nl == 3 && strncasecmp(t, "exp", 3) == 0) {
			if (*seen_exp) {
				*why = "duplicate exp=";
				return false;
			}
			*seen_exp = true;
			buf_append(out, t, nl + 1);
			return rec_domain_spec(v, vl, out, why);
		}
		/* an unknown modifier: checked, then left out for libspf2 */
		struct buf scratch;
		buf_init(&scratch, SPF_RECORD_MAX * 2);
		bool ok = rec_macro_string(v, vl, true, &scratch, &me, why);
		buf_free(&scratch);
		if (ok && out->len > 0 && out->data[out->len - 1] == ' ')
			buf_truncate(out, out->len - 1); /* no double space */
		return ok;
	}
	/* directive: [qualifier] mechanism */
	size_t ql = (t[0] == '+' || t[0] == '-' || t[0] == '?' || t[0] == '~') ? 1 : 0;
	const char *m = t + ql;
	size_t ml = n - ql;
	size_t name = 0;
	while (name < ml && rec_alnum(m[name]))
		name++;
	const char *arg = m + name;
	size_t al = ml - name;
#define IS(s) (name == sizeof(s) - 1 && strncasecmp(m, s, sizeof(s) - 1) == 0)
	if (IS("all")) {
		if (al != 0)
			goto bad;
		buf_append(out, t, n);
		return true;
	}
	if (IS("include") || IS("exists")) {
		if (al < 2 || arg[0] != ':')
			goto bad;
		buf_append(out, t, ql + name + 1);
		return rec_domain_spec(arg + 1, al - 1, out, why);
	}
	if (IS("a") || IS("mx")) {
		size_t dl;
		if (!rec_dual_cidr(arg, al, &dl, why))
			return false;
		if (dl > 0 && arg[0] != ':')
			goto bad;
		buf_append(out, t, ql + name);
		if (dl > 0) {
			buf_putc(out, ':');
			if (!rec_domain_spec(arg + 1, dl - 1, out, why))
				return false;
		}
		buf_append(out, arg + dl, al - dl);
		return true;
	}
	if (IS("ptr")) {
		buf_append(out, t, ql + name);
		if (al == 0)
			return true;
		if (arg[0] != ':')
			goto bad;
		buf_putc(out, ':');
		return rec_domain_spec(arg + 1, al - 1, out, why);
	}
	if (IS("ip4") || IS("ip6")) {
		if (al < 2 || arg[0] != ':')
			goto bad;
		return rec_ip(t, ql, arg + 1, al - 1, IS("ip6"), out, why);
	}
#undef IS
bad:
	*why = "unknown or malformed mechanism";
	return false;
}

int spf_record_check(const char *txt, size_t len, struct buf *out, const char **why_r)
{
	buf_reset(out);
	const char *why = NULL;
	if (!spf_record_is_spf(txt, len)) {
		*why_r = "not an SPF record";
		return -1;
	}
	if (len > SPF_RECORD_MAX) {
		*why_r = "record too long";
		return -1;
	}
	if (memchr(txt, '\0', len) != NULL) {
		*why_r = "NUL byte in record";
		return -1;
	}
	buf_puts(out, "v=spf1");
	bool redirect = false, exp = false;
	size_t i = 6;
	while (i < len) {
		if (txt[i] != ' ') {
			*why_r = "bad byte between terms";
			return -1;
		}
		while (i < len && txt[i] == ' ')
			i++;
		if (i == len)
			break;
		size_t s = i;
		while (i < len && txt[i] != ' ')
			i++;
		buf_putc(out, ' ');
		if (!rec_term(txt + s, i - s, out, &redirect, &exp, &why)) {
			*why_r = why ? why : "bad term";
			buf_reset(out);
			return -1;
		}
	}
	if (out->len > SPF_RECORD_MAX * 2) {
		*why_r = "record too long";
		return -1;
	}
	return 0;
}
