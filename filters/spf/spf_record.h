/*
 * spf_record.h - our own RFC 7208 syntax check of SPF records.
 *
 * libspf2 1.2.10 accepts some invalid records (empty or numeric-top-label
 * domain-specs, NUL bytes, duplicate redirect=/exp=, bad macro letters) and
 * refuses some valid ones (CIDR length /0, modifier names with '.', '-',
 * '_'). Every SPF record postern-spf receives passes through here first:
 * an invalid one makes the result permerror (RFC 7208 §4.6), a valid one is
 * rewritten into an equivalent form libspf2 reads correctly. Pure functions.
 */
#ifndef POSTERN_SPF_RECORD_H
#define POSTERN_SPF_RECORD_H

#include "lib/buf.h"
#include "lib/common.h"

#define SPF_RECORD_MAX 4096 /* longer records are refused (permerror) */

/* True when txt (len bytes, may hold NUL) is an SPF record at all: starts
 * with "v=spf1" followed by a space or the end (RFC 7208 §4.5). */
bool spf_record_is_spf(const char *txt, size_t len);

/*
 * Check an SPF record. Returns 0 when it is valid, with an equivalent
 * record for libspf2 in out (reset first): unknown modifiers dropped (they
 * are ignored anyway, §6), ip4:/ip6: with prefix length /0 replaced by two
 * /1 networks, macro digit transformers above 128 clamped to 128 (no domain
 * has more labels). Returns -1 with a static reason in *why_r otherwise.
 */
int spf_record_check(const char *txt, size_t len, struct buf *out, const char **why_r);

#endif
