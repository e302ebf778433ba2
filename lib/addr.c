/*
 * addr.c - RFC 5321 path parsing and address checks (see addr.h).
 *
 * Purpose: turn the untrusted path text of MAIL FROM / RCPT TO into a
 * checked struct addr, and say which addresses carry routing tricks.
 * Owns: nothing (the caller's struct addr). Never: allocates, logs, reads
 * past the given length, or gives any byte a meaning beyond RFC 5321
 * syntax (shell metacharacters are plain bytes, CVE-2020-7247).
 * Limits: local part 64, domain 255, path 256 octets (RFC 5321 §4.5.3.1);
 * domain labels 63; UTF-8 only with SMTPUTF8 (RFC 6531 §3.3).
 * Tests: tests/unit/lib/addr_test.c, tests/fuzz/addr_fuzz.c.
 */
#include <arpa/inet.h>
#include <strings.h>

#include "lib/addr.h"
#include "lib/common.h"

static const char addr_err_utf8[] = "non-ASCII address without SMTPUTF8";

/* RFC 5322 atext: ALPHA DIGIT and these. */
static bool addr_is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static bool addr_is_letdig(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool addr_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned char c = p[i];
		size_t need;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false; /* continuation byte, overlong lead, or > U+10FFFF */
		}
		if (n - i <= need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/* Length of the UTF-8 sequence starting at p[0] (n bytes left), or 0 when
 * it is not a well-formed non-ASCII sequence. */
static size_t addr_utf8_seq(const char *p, size_t n)
{
	unsigned char c = (unsigned char)p[0];
	size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
	if (len == 0 || len > n || !addr_utf8_valid(p, len))
		return 0;
	return len;
}

/* A non-ASCII byte at p (n bytes left) in a part named where: the length of
 * its UTF-8 sequence, or 0 with *error_r when SMTPUTF8 was not declared or
 * the sequence is malformed. */
static size_t addr_take_utf8(const char *p, size_t n, unsigned opts, const char *malformed,
			     const char **error_r)
{
	if (!(opts & ADDR_O_SMTPUTF8)) {
		*error_r = addr_err_utf8;
		return 0;
	}
	size_t k = addr_utf8_seq(p, n);
	if (k == 0)
		*error_r = malformed;
	return k;
}

/* Domain: dot-separated labels of letters, digits, '-' (not first or last),
 * '_' tolerated (found in the wild); UTF-8 labels with SMTPUTF8. Sets
 * *utf8 when non-ASCII was seen. */
static int addr_check_domain(const char *p, size_t n, unsigned opts, bool *utf8,
			     const char **error_r)
{
	if (n == 0) {
		*error_r = "empty domain";
		return -1;
	}
	if (n > ADDR_DOMAIN_MAX) {
		*error_r = "domain too long";
		return -1;
	}
	if (p[n - 1] == '.') {
		/* "user@ours." is a classic way to slip past exact-match domain
		 * lists; RFC 5321 Domain has no trailing dot. */
		*error_r = "trailing dot in domain";
		return -1;
	}
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '.') {
			if (label == 0 || p[i - 1] == '-') {
				*error_r = "empty or malformed domain label";
				return -1;
			}
			label = 0;
			continue;
		}
		if (c >= 0x80) {
			size_t k = addr_take_utf8(p + i, n - i, opts, "malformed UTF-8 in domain", error_r);
			if (k == 0)
				return -1;
			*utf8 = true;
			label += k;
			i += k - 1;
		} else if (addr_is_letdig(c) || c == '_') {
			label++;
		} else if (c == '-' && label > 0) {
			label++;
		} else {
			*error_r = "bad character in domain";
			return -1;
		}
		if (label > 63) {
			*error_r = "domain label too long";
			return -1;
		}
	}
	if (p[n - 1] == '-') {
		*error_r = "empty or malformed domain label";
		return -1;
	}
	return 0;
}

/* Address literal "[1.2.3.4]" or "[IPv6:...]" (RFC 5321 §4.1.3). General
 * literals ("[tag:...]") are refused: nothing here can route them. */
static int addr_check_literal(const char *p, size_t n, const char **error_r)
{
	char tmp[64];
	unsigned char bin[16];
	*error_r = "bad address literal";
	if (n < 3 || p[0] != '[' || p[n - 1] != ']' || n - 2 >= sizeof(tmp))
		return -1;
	memcpy(tmp, p + 1, n - 2);
	tmp[n - 2] = '\0';
	if (strncasecmp(tmp, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, tmp + 5, bin) == 1 ? 0 : -1;
	/* inet_pton AF_INET accepts exactly dotted-quad decimal */
	return inet_pton(AF_INET, tmp, bin) == 1 ? 0 : -1;
}

/* Parse the local part at p (n bytes available); sets *used to its length. */
static int addr_scan_local(const char *p, size_t n, unsigned opts, size_t *used,
			   unsigned *flags, const char **error_r)
{
	size_t i = 0;
	if (n > 0 && p[0] == '"') {
		*flags |= ADDR_F_QUOTED;
		for (i = 1; i < n; i++) {
			unsigned char c = (unsigned char)p[i];
			if (c == '"')
				break;
			if (c == '\\') {
				/* quoted-pairSMTP = "\" %d32-126 */
				if (i + 1 >= n || (unsigned char)p[i + 1] < 32 || (unsigned char)p[i + 1] > 126) {
					*error_r = "bad quoted pair in local part";
					return -1;
				}
				c = (unsigned char)p[++i];
			} else if (c >= 0x80) {
				size_t k = addr_take_utf8(p + i, n - i, opts, "malformed UTF-8 in local part",
							  error_r);
				if (k == 0)
					return -1;
				*flags |= ADDR_F_UTF8;
				i += k - 1;
				continue;
			} else if (c < 32 || c == 127) {
				*error_r = "control character in local part";
				return -1;
			}
			if (c == '@')
				*flags |= ADDR_F_QUOTED_AT;
			else if (c == '%')
				*flags |= ADDR_F_PERCENT;
			else if (c == '!')
				*flags |= ADDR_F_BANG;
		}
		if (i >= n) {
			*error_r = "unterminated quoted local part";
			return -1;
		}
		*used = i + 1;
		return 0;
	}
	bool atom_start = true;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '.') {
			if (atom_start) {
				*error_r = "empty atom in local part";
				return -1;
			}
			atom_start = true;
			continue;
		}
		if (c >= 0x80) {
			size_t k = addr_take_utf8(p + i, n - i, opts, "malformed UTF-8 in local part",
						  error_r);
			if (k == 0)
				return -1;
			*flags |= ADDR_F_UTF8;
			i += k - 1;
			atom_start = false;
			continue;
		}
		if (!addr_is_atext(c))
			break;
		if (c == '%')
			*flags |= ADDR_F_PERCENT;
		else if (c == '!')
			*flags |= ADDR_F_BANG;
		atom_start = false;
	}
	if (i == 0) {
		*error_r = "empty local part";
		return -1;
	}
	if (atom_start) {
		*error_r = "empty atom in local part";
		return -1;
	}
	*used = i;
	return 0;
}

/* Skip an RFC 5321 source route "@a,@b:" (A-d-l); sets *used. */
static int addr_skip_route(const char *p, size_t n, size_t *used, const char **error_r)
{
	size_t i = 0;
	bool dummy = false;
	for (;;) {
		if (i >= n || p[i] != '@') {
			*error_r = "bad source route";
			return -1;
		}
		size_t start = ++i;
		while (i < n && p[i] != ',' && p[i] != ':')
			i++;
		if (i >= n || addr_check_domain(p + start, i - start, 0, &dummy, error_r) < 0) {
			if (i >= n)
				*error_r = "bad source route";
			return -1;
		}
		if (p[i] == ':') {
			*used = i + 1;
			return 0;
		}
		i++; /* ',' */
	}
}

int addr_parse(struct str in, unsigned opts, struct addr *out, const char **error_r)
{
	const char *p = in.p;
	size_t n = in.len;

	memset(out, 0, sizeof(*out));
	if (n > ADDR_PATH_MAX) {
		*error_r = "address too long";
		return -1;
	}
	if (memchr(p, '\0', n) != NULL) {
		*error_r = "NUL byte in address";
		return -1;
	}
	if (n >= 1 && p[0] == '<') {
		if (n < 2 || p[n - 1] != '>') {
			*error_r = "unbalanced <>";
			return -1;
		}
		out->flags |= ADDR_F_ANGLE;
		p++;
		n -= 2;
	} else if (opts & ADDR_O_STRICT) {
		*error_r = "address not in <>";
		return -1;
	}
	if (n == 0) {
		if (!(out->flags & ADDR_F_ANGLE)) {
			*error_r = "empty address";
			return -1;
		}
		out->kind = ADDR_NULL;
		return 0;
	}
	if (p[0] == '@') {
		size_t used;
		if (addr_skip_route(p, n, &used, error_r) < 0)
			return -1;
		out->flags |= ADDR_F_SOURCE_ROUTE;
		p += used;
		n -= used;
	}
	size_t llen;
	if (addr_scan_local(p, n, opts, &llen, &out->flags, error_r) < 0)
		return -1;
	if (llen > ADDR_LOCAL_MAX) {
		*error_r = "local part too long";
		return -1;
	}
	if (llen == n) {
		if (out->flags & ADDR_F_SOURCE_ROUTE) {
			*error_r = "source route without domain";
			return -1;
		}
		out->kind = (llen == 10 && strncasecmp(p, "postmaster", 10) == 0) ? ADDR_POSTMASTER
										: ADDR_LOCAL_ONLY;
		memcpy(out->text, p, n);
		out->len = out->local_len = out->domain_off = n;
		return 0;
	}
	if (p[llen] != '@') {
		*error_r = (out->flags & ADDR_F_QUOTED) ? "garbage after quoted local part"
							: "bad character in local part";
		return -1;
	}
	const char *d = p + llen + 1;
	size_t dlen = n - llen - 1;
	if (dlen > 0 && d[0] == '[') {
		if (addr_check_literal(d, dlen, error_r) < 0)
			return -1;
		out->flags |= ADDR_F_LITERAL;
	} else {
		bool utf8 = false;
		if (addr_check_domain(d, dlen, opts, &utf8, error_r) < 0)
			return -1;
		if (utf8)
			out->flags |= ADDR_F_UTF8;
	}
	/* n <= ADDR_PATH_MAX - 2 here when <> were given, else <= ADDR_PATH_MAX */
	CHECK(n < sizeof(out->text));
	memcpy(out->text, p, n);
	out->text[n] = '\0';
	out->len = n;
	out->local_len = llen;
	out->domain_off = llen + 1;
	out->kind = ADDR_MAILBOX;
	return 0;
}

bool addr_error_is_utf8(const char *error)
{
	return error == addr_err_utf8;
}

struct str addr_local(const struct addr *a)
{
	return (struct str){ a->text, a->local_len };
}

struct str addr_domain(const struct addr *a)
{
	if (a->kind != ADDR_MAILBOX)
		return (struct str){ a->text + a->len, 0 };
	return (struct str){ a->text + a->domain_off, a->len - a->domain_off };
}

int addr_local_unquoted(const struct addr *a, struct buf *out)
{
	buf_reset(out);
	if (!(a->flags & ADDR_F_QUOTED))
		return buf_append(out, a->text, a->local_len);
	/* quoted-string: drop the quotes, resolve quoted pairs */
	for (size_t i = 1; i + 1 < a->local_len; i++) {
		char c = a->text[i];
		if (c == '\\' && i + 2 < a->local_len)
			c = a->text[++i];
		if (buf_putc(out, c) < 0)
			return -1;
	}
	return 0;
}

size_t addr_base_len(struct str local, const char *delimiters)
{
	if (delimiters == NULL || delimiters[0] == '\0')
		return local.len;
	for (size_t i = 1; i < local.len; i++)
		if (local.p[i] != '\0' && strchr(delimiters, local.p[i]) != NULL)
			return i;
	return local.len;
}

bool addr_domain_in_list(struct str domain, const char *list, bool subdomains)
{
	if (list == NULL || domain.len == 0)
		return false;
	const char *p = list;
	while (*p != '\0') {
		while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		const char *s = p;
		while (*p != '\0' && *p != ',' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
		struct str e = { s, (size_t)(p - s) };
		if (e.len == 0 || memchr(e.p, ':', e.len) != NULL || e.p[0] == '/')
			continue;
		bool dot = e.p[0] == '.';
		if (dot) {
			e.p++;
			e.len--;
		}
		if (!dot && str_case_eq(domain, e))
			return true;
		/* subdomain: domain ends with "." + e */
		if ((dot || subdomains) && domain.len > e.len + 1 &&
		    domain.p[domain.len - e.len - 1] == '.' &&
		    str_case_eq((struct str){ domain.p + domain.len - e.len, e.len }, e))
			return true;
	}
	return false;
}
