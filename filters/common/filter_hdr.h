/*
 * filter_hdr.h - the little header parsing the filters share.
 *
 * Pure functions over (bytes, length): no I/O, no logging, so each one has a
 * fuzz target (tests/fuzz/filter_hdr_fuzz.c) and table tests.
 */
#ifndef POSTERN_FILTER_HDR_H
#define POSTERN_FILTER_HDR_H

#include "lib/buf.h"
#include "lib/common.h"

#define FILTER_HDR_ADDR_MAX 1024 /* longest address we extract */

enum filter_from {
	FILTER_FROM_ONE,     /* exactly one mailbox with a domain */
	FILTER_FROM_NONE,    /* no address at all (empty, group with no members) */
	FILTER_FROM_MANY,    /* more than one mailbox (RFC 5322 allows it with Sender) */
	FILTER_FROM_BAD,     /* unparsable: unbalanced <>, "" or (), no '@', bad domain */
};

/*
 * Extract the single mailbox of a From (or Sender) field body: comments and
 * display names are skipped, "<addr>" preferred, quoted local parts kept as
 * written. On FILTER_FROM_ONE, addr_r receives "local@domain" and domain_r
 * the domain lower-cased (ASCII only; UTF-8 bytes are kept as they are,
 * RFC 6532). Both buffers are reset first.
 */
enum filter_from filter_hdr_from(struct str value, struct buf *addr_r, struct buf *domain_r);

/*
 * The authserv-id of an Authentication-Results field body (RFC 8601 §2.2:
 * a token or quoted-string before the first ';' or version). Returns 0 with
 * the id in id_r (reset first), or -1 when the field has no readable id.
 */
int filter_hdr_authserv_id(struct str value, struct buf *id_r);

/* True when s is a syntactically valid domain name for our uses: labels of
 * letters, digits, '-', '_' (or bytes >= 0x80), 1..63 each, total <= 253,
 * not all-numeric top label. */
bool filter_hdr_domain_ok(struct str s);

/*
 * The domain s as DNS wants it (RFC 5890 A-labels), lower-cased, in *out_r
 * (reset first): an ASCII name as it is, one with U-labels (UTF-8, RFC 6531
 * mail) converted label by label with libidn2 (IDNA2008 with UTS #46
 * mapping, non-transitional), as RFC 8616 §3-§5 asks of SPF, DKIM and DMARC
 * before any lookup or comparison. Returns 0, or -1 (out_r empty) when s is
 * not valid UTF-8 (overlong forms, surrogates, NUL included), a label cannot
 * be converted (disallowed code point, bidi or joiner rule, a label over 63
 * octets once encoded), or the result fails filter_hdr_domain_ok. Pure: no
 * I/O, no logging.
 */
int filter_hdr_domain_ascii(struct str s, struct buf *out_r);

#endif
