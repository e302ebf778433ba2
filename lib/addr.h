/*
 * addr.h - RFC 5321 paths and mailbox addresses: parse, check, classify.
 *
 * Parses the path argument of MAIL FROM: / RCPT TO: ("<local@domain>",
 * the null path "<>", "<Postmaster>", quoted local parts, address literals,
 * source routes) into a struct addr, enforcing the RFC 5321 §4.5.3.1 size
 * limits (local part 64, domain 255, path 256 octets) and RFC 6531 (UTF-8
 * only when SMTPUTF8 was declared, and then only well-formed UTF-8).
 *
 * It also reports the shapes that relay abuse relies on (percent hack
 * "a%b@ours", bang paths "a!b@ours", quoted local parts holding "@", source
 * routes "<@x:a@b>") as flags, so the caller can refuse to treat such an
 * address as local or as a relay target (ADDR_F_ROUTING). Shell
 * metacharacters are plain bytes here: nothing in this module, or in any
 * caller, interprets an address (CVE-2020-7247 was a server that did).
 *
 * Pure functions: no I/O, no logging, no allocation. Error strings are
 * static. Tests: tests/unit/lib/addr_test.c, tests/fuzz/addr_fuzz.c.
 */
#ifndef POSTERN_ADDR_H
#define POSTERN_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

#define ADDR_LOCAL_MAX 64   /* RFC 5321 §4.5.3.1.1 */
#define ADDR_DOMAIN_MAX 255 /* RFC 5321 §4.5.3.1.2 */
#define ADDR_PATH_MAX 256   /* RFC 5321 §4.5.3.1.3, including "<" and ">" */

enum addr_kind {
	ADDR_NULL,       /* "<>": the null reverse-path */
	ADDR_POSTMASTER, /* "<Postmaster>" without a domain (any case) */
	ADDR_LOCAL_ONLY, /* "<user>": no domain; the caller qualifies it */
	ADDR_MAILBOX,    /* local@domain */
};

/* struct addr flags */
#define ADDR_F_ANGLE 0x001        /* was written inside <> */
#define ADDR_F_QUOTED 0x002       /* local part is a quoted-string */
#define ADDR_F_LITERAL 0x004      /* domain is an address literal [..] */
#define ADDR_F_UTF8 0x008         /* holds non-ASCII (valid UTF-8) bytes */
#define ADDR_F_SOURCE_ROUTE 0x010 /* "@a,@b:" prefix was present and dropped */
#define ADDR_F_PERCENT 0x020      /* '%' in the local part (percent hack) */
#define ADDR_F_BANG 0x040         /* '!' in the local part (UUCP bang path) */
#define ADDR_F_QUOTED_AT 0x080    /* quoted local part holds '@' */
/* Shapes that route mail through the host named in the local part: an
 * address with any of these is never local and never relayed for a client
 * that could not relay anyway. */
#define ADDR_F_ROUTING (ADDR_F_PERCENT | ADDR_F_BANG | ADDR_F_QUOTED_AT)

/* addr_parse options */
#define ADDR_O_SMTPUTF8 0x01 /* MAIL ... SMTPUTF8 was given: allow UTF-8 */
#define ADDR_O_STRICT 0x02   /* strict_rfc821_envelopes: require <> */

/* Room for the longest accepted text (path limit) plus NUL. */
#define ADDR_TEXT_SIZE (ADDR_PATH_MAX + 1)

struct addr {
	enum addr_kind kind; /* what the path held */
	unsigned flags;      /* ADDR_F_* */
	char text[ADDR_TEXT_SIZE]; /* "local@domain" as written (local part
	                            * verbatim, quotes kept, domain as written),
	                            * without <> and source route; "" for ADDR_NULL,
	                            * "Postmaster" as written for ADDR_POSTMASTER */
	size_t len;          /* strlen(text) */
	size_t local_len;    /* bytes of the local part at text[0] */
	size_t domain_off;   /* offset of the domain in text (== len when none) */
};

/*
 * Parse one path. in is the text after "FROM:" / "TO:" and before any
 * ESMTP parameter, leading/trailing blanks already removed. opts: ADDR_O_*.
 * Returns 0 and fills *out, or -1 with *error_r a static reason
 * ("local part too long", "bad character in domain", "non-ASCII address
 * without SMTPUTF8", ...). Never allocates; never reads past in.len.
 */
int addr_parse(struct str in, unsigned opts, struct addr *out, const char **error_r);

/* Does the parse error mean "UTF-8 without SMTPUTF8" (553 5.6.7 territory)? */
bool addr_error_is_utf8(const char *error);

/* View of the local part (as written, quotes kept). */
struct str addr_local(const struct addr *a);
/* View of the domain (empty for kinds without one). */
struct str addr_domain(const struct addr *a);

/*
 * The local part with quoting removed (RFC 5321 §4.1.2: the quoted and the
 * unquoted forms of a local part are the same mailbox), into out (cleared
 * first). Returns 0, or -1 when out's maximum is too small.
 */
int addr_local_unquoted(const struct addr *a, struct buf *out);

/*
 * Length of the part of local before the first recipient delimiter
 * (recipient_delimiter: a set of characters, Postfix >= 2.11; "" = none).
 * A delimiter at position 0 does not split ("+foo" stays whole, as in
 * Postfix). Returns local.len when nothing splits.
 */
size_t addr_base_len(struct str local, const char *delimiters);

/* True when s (n bytes) is well-formed UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
bool addr_utf8_valid(const char *s, size_t n);

/* True when domain (ASCII case-insensitive) equals one entry of a Postfix
 * list (comma/space separated) of domain names. Entries that are table
 * names (containing ':') or "/file" are skipped: the caller resolves those.
 * A leading '.' in an entry matches subdomains only; with subdomains true
 * (Postfix parent_domain_matches_subdomains, e.g. relay_domains) a plain
 * entry also matches its subdomains. */
bool addr_domain_in_list(struct str domain, const char *list, bool subdomains);

#endif
