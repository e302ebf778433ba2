/*
 * filter_hdr.c - From addresses, authserv-ids and domain names (see
 * filter_hdr.h).
 *
 * Purpose: read the few header fields the filters act upon, and give their
 * domains in the form DNS wants (A-labels, through libidn2).
 * Owns: nothing. Never: allocates beyond the caller's bounded buffers
 * (save libidn2's own result and one bounded copy of its input, both freed
 * before return), reads past the given length (values may hold NUL and
 * 8-bit bytes), hands libidn2 bytes that are not well-formed UTF-8.
 * Limits: FILTER_HDR_ADDR_MAX per address; comment nesting depth 32;
 * HDR_IDN_IN_MAX bytes of a domain given to libidn2.
 * Tests: tests/unit/filters/filter_hdr_test.c, tests/fuzz/filter_hdr_fuzz.c,
 * tests/fuzz/filter_idn_fuzz.c.
 */
#include <idn2.h>

#include "filters/common/filter_hdr.h"
#include "lib/addr.h"
#include "lib/common.h"

/* A U-label is at most 63 octets of A-label, 4 UTF-8 bytes per code point
 * at most, and a domain at most 253 octets: anything longer cannot become a
 * valid name, and libidn2 never sees it. */
#define HDR_IDN_IN_MAX 1024

/* Skip a comment starting at p[*i] == '('; false when unbalanced. */
static bool hdr_skip_comment(struct str v, size_t *i)
{
	int depth = 0;
	for (; *i < v.len; (*i)++) {
		char c = v.p[*i];
		if (c == '\\') {
			(*i)++;
			continue;
		}
		if (c == '(') {
			if (++depth > 32)
				return false;
		} else if (c == ')') {
			if (--depth == 0) {
				(*i)++;
				return true;
			}
		}
	}
	return false;
}

/* Skip a quoted string starting at p[*i] == '"', appending it (quotes
 * included) to out when out != NULL; false when unterminated or too long. */
static bool hdr_skip_quoted(struct str v, size_t *i, struct buf *out)
{
	size_t s = *i;
	for ((*i)++; *i < v.len; (*i)++) {
		char c = v.p[*i];
		if (c == '\\') {
			(*i)++;
			continue;
		}
		if (c == '"') {
			(*i)++;
			return out == NULL || buf_append(out, v.p + s, *i - s) == 0;
		}
	}
	return false;
}

static bool hdr_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool filter_hdr_domain_ok(struct str s)
{
	if (s.len == 0 || s.len > 253)
		return false;
	size_t start = 0;
	bool alldigit = true;
	for (size_t i = 0; i <= s.len; i++) {
		if (i == s.len || s.p[i] == '.') {
			size_t l = i - start;
			if (l == 0 || l > 63)
				return false;
			if (s.p[start] == '-' || s.p[i - 1] == '-')
				return false;
			if (i == s.len && alldigit)
				return false; /* numeric top label: not a domain */
			start = i + 1;
			alldigit = true;
			continue;
		}
		unsigned char c = (unsigned char)s.p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c >= 0x80))
			return false;
		if (!(c >= '0' && c <= '9'))
			alldigit = false;
	}
	return true;
}

/* Parse an addr-spec from the CFWS-free form collected in spec. */
static enum filter_from hdr_split(struct buf *spec, struct buf *addr_r, struct buf *domain_r)
{
	struct str s = buf_str(spec);
	if (s.len == 0)
		return FILTER_FROM_NONE;
	/* the last '@' outside a quoted local part separates the domain */
	size_t at = s.len;
	bool q = false;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] == '\\' && q) {
			i++;
			continue;
		}
		if (s.p[i] == '"')
			q = !q;
		else if (s.p[i] == '@' && !q)
			at = i;
	}
	if (at == s.len || at == 0)
		return FILTER_FROM_BAD;
	struct str dom = { s.p + at + 1, s.len - at - 1 };
	if (!filter_hdr_domain_ok(dom))
		return FILTER_FROM_BAD;
	if (buf_append(addr_r, s.p, s.len) < 0)
		return FILTER_FROM_BAD;
	for (size_t i = 0; i < dom.len; i++) {
		char c = dom.p[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (buf_putc(domain_r, c) < 0)
			return FILTER_FROM_BAD;
	}
	return FILTER_FROM_ONE;
}

enum filter_from filter_hdr_from(struct str v, struct buf *addr_r, struct buf *domain_r)
{
	buf_reset(addr_r);
	buf_reset(domain_r);
	struct buf plain; /* the value with comments and folding removed */
	struct buf angle; /* the content of the <...> seen, if any */
	buf_init(&plain, FILTER_HDR_ADDR_MAX);
	buf_init(&angle, FILTER_HDR_ADDR_MAX);
	enum filter_from res = FILTER_FROM_BAD;
	int mailboxes = 0;  /* separated by top-level ',' */
	bool in_angle = false, seen_angle = false, content = false;
	bool group = false;
	size_t i = 0;
	while (i < v.len) {
		char c = v.p[i];
		if (c == '(') {
			if (!hdr_skip_comment(v, &i))
				goto out;
			continue;
		}
		if (c == '"') {
			struct buf *dst = in_angle ? &angle : (seen_angle ? NULL : &plain);
			if (!hdr_skip_quoted(v, &i, dst))
				goto out;
			content = true;
			continue;
		}
		if (c == '\0')
			goto out;
		if (hdr_ws(c)) {
			i++;
			continue;
		}
		if (in_angle) {
			if (c == '>') {
				in_angle = false;
				seen_angle = true;
			} else if (c == '<') {
				goto out;
			} else if (buf_putc(&angle, c) < 0) {
				goto out;
			}
			i++;
			continue;
		}
		if (c == '<') {
			if (seen_angle)
				goto out; /* two angle addresses without a comma */
			in_angle = true;
			content = true;
		} else if (c == '>') {
			goto out;
		} else if (c == ':' && !group && !seen_angle) {
			/* group syntax: "name: a@b, c@d;" - what came before is the name */
			group = true;
			buf_reset(&plain);
			content = false;
		} else if (c == ';' && group) {
			group = false;
		} else if (c == ',') {
			if (content)
				mailboxes++;
			if (mailboxes > 0) {
				res = FILTER_FROM_MANY;
				goto out;
			}
		} else {
			content = true;
			if (!seen_angle && buf_putc(&plain, c) < 0)
				goto out;
		}
		i++;
	}
	if (in_angle || group)
		goto out;
	if (!content) {
		res = FILTER_FROM_NONE;
		goto out;
	}
	/* "Name <a@b>": the angle part; otherwise the whole plain text is the
	 * addr-spec (a display name without <> is not valid and fails below) */
	res = hdr_split(seen_angle ? &angle : &plain, addr_r, domain_r);
out:
	if (res != FILTER_FROM_ONE) {
		buf_reset(addr_r);
		buf_reset(domain_r);
	}
	buf_free(&plain);
	buf_free(&angle);
	return res;
}

int filter_hdr_authserv_id(struct str v, struct buf *id_r)
{
	buf_reset(id_r);
	size_t i = 0;
	for (;;) {
		while (i < v.len && hdr_ws(v.p[i]))
			i++;
		if (i < v.len && v.p[i] == '(') {
			if (!hdr_skip_comment(v, &i))
				return -1;
			continue;
		}
		break;
	}
	if (i >= v.len)
		return -1;
	if (v.p[i] == '"') {
		size_t s = i;
		if (!hdr_skip_quoted(v, &i, NULL))
			return -1;
		/* unquote: drop the quotes and backslashes */
		for (size_t k = s + 1; k + 1 < i; k++) {
			if (v.p[k] == '\\')
				k++;
			if (buf_putc(id_r, v.p[k]) < 0)
				return -1;
		}
	} else {
		while (i < v.len) {
			unsigned char c = (unsigned char)v.p[i];
			/* RFC 2045 token: no specials, no space or controls */
			if (c <= ' ' || c == 0x7f || strchr("()<>@,;:\\\"/[]?=", c) != NULL)
				break;
			if (buf_putc(id_r, (char)c) < 0)
				return -1;
			i++;
		}
	}
	return id_r->len > 0 ? 0 : -1;
}

int filter_hdr_domain_ascii(struct str s, struct buf *out_r)
{
	buf_reset(out_r);
	bool ascii = true;
	for (size_t i = 0; i < s.len; i++)
		if ((unsigned char)s.p[i] >= 0x80)
			ascii = false;
	if (ascii) {
		if (!filter_hdr_domain_ok(s) || buf_append(out_r, s.p, s.len) < 0)
			goto bad;
	} else {
		/* RFC 3629 UTF-8 (lib/addr's check), and no NUL: libidn2
		 * reads a C string */
		if (s.len > HDR_IDN_IN_MAX || !addr_utf8_valid(s.p, s.len) ||
		    memchr(s.p, '\0', s.len) != NULL)
			goto bad;
		char *in = xmemdup(s.p, s.len); /* NUL-terminated copy for libidn2 */
		char *out = NULL;
		int rc = idn2_lookup_u8((const uint8_t *)in, (uint8_t **)&out,
					IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
		free(in);
		if (rc != IDN2_OK || out == NULL) {
			idn2_free(out);
			goto bad;
		}
		int ok = buf_puts(out_r, out);
		idn2_free(out);
		if (ok < 0 || !filter_hdr_domain_ok(buf_str(out_r)))
			goto bad;
	}
	for (size_t i = 0; i < out_r->len; i++)
		if (out_r->data[i] >= 'A' && out_r->data[i] <= 'Z')
			out_r->data[i] = (char)(out_r->data[i] + 32);
	/* the result is ASCII through and through */
	for (size_t i = 0; i < out_r->len; i++)
		CHECK((unsigned char)out_r->data[i] < 0x80);
	return 0;
bad:
	buf_reset(out_r);
	return -1;
}
