/*
 * filter_ar.h - reading Authentication-Results fields (RFC 8601): the SPF
 * and DKIM results postern-dmarc builds on, and the test each filter makes
 * to delete fields forged in our name (RFC 8601 §5).
 *
 * Pure functions over (bytes, length), fuzzed by tests/fuzz/filter_ar_fuzz.c.
 */
#ifndef POSTERN_FILTER_AR_H
#define POSTERN_FILTER_AR_H

#include "lib/buf.h"
#include "lib/common.h"

#define FILTER_AR_MAX_RESULTS 32 /* resinfo entries kept per field */

struct filter_ar_result {
	char method[16];   /* "spf", "dkim", ... lower case */
	char result[16];   /* "pass", "fail", ... lower case */
	char domain[256];  /* spf: smtp.mailfrom's domain (or smtp.helo);
			    * dkim: header.d (or header.i's domain); lower case */
	char selector[64]; /* dkim: header.s */
	bool helo;         /* spf: the domain is smtp.helo's */
};

struct filter_ar {
	char authserv_id[256];                             /* as written */
	struct filter_ar_result v[FILTER_AR_MAX_RESULTS];    /* results in order */
	size_t n;                                          /* entries in v */
};

/* Parse one field body. Returns 0 with *ar filled, or -1 when not even an
 * authserv-id can be read. Unreadable resinfo entries are skipped; entries
 * past FILTER_AR_MAX_RESULTS are dropped. */
int filter_ar_parse(struct str value, struct filter_ar *ar);

/*
 * True when a field body claims authserv_id (case-insensitive) and carries a
 * result for method ("spf", "dkim", "dmarc"), or no readable result at all.
 * Each filter deletes such fields before adding its own: the filters of one
 * MTA share an authserv-id, and a later filter must keep what an earlier
 * one added (Postfix shows each milter the edits of those before it).
 */
bool filter_ar_claims(struct str value, const char *authserv_id, const char *method);

#endif
