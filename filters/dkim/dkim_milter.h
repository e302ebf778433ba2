/*
 * dkim_milter.h - postern-dkim's settings and milter callbacks.
 *
 * Signs mail from internal or authenticated clients whose From domain has a
 * key (KeyTable/SigningTable or Domain/Selector/KeyFile), verifies every
 * other message and reports each DKIM-Signature in one
 * Authentication-Results header (RFC 8601) with header.d, header.s, header.b.
 */
#ifndef POSTERN_DKIM_MILTER_H
#define POSTERN_DKIM_MILTER_H

#include <dkim.h>
#include <libmilter/mfapi.h>

#include "filters/common/filter_cfg.h"
#include "filters/common/filter_main.h"
#include "filters/dkim/dkim_keys.h"
#include "lib/common.h"

struct dkim_settings {
	bool sign;               /* Mode has 's' */
	bool verify;             /* Mode has 'v' */
	dkim_canon_t hdr_canon;  /* Canonicalization, header part */
	dkim_canon_t body_canon; /* Canonicalization, body part */
	/* where the signing keys come from (read again by dkim_reload); the
	 * loaded set itself is dkim_keys_acquire()'s */
	char *keytable;          /* KeyTable path, or NULL in single-key mode */
	char *signtable;         /* SigningTable (may start with "refile:") */
	char *domains;           /* Domain list (single-key mode) */
	char *selector;          /* Selector (single-key mode) */
	char *keyfile;           /* KeyFile (single-key mode) */
	bool subdomains;         /* SubDomains (single-key mode) */
	bool tempfail;           /* TemporaryFailure tempfail: 451 on temperror */
	unsigned long max_header_bytes; /* MaximumHeaderBytes: larger headers are not processed */
	unsigned long max_headers;      /* MaximumHeaders: more fields are not processed */
	DKIM_LIB *lib;           /* libopendkim instance, shared by all threads */
};

extern struct dkim_settings dkim_settings;
extern struct smfiDesc dkim_milter;
extern const char *const dkim_keys_names[];

/* Read the postern-dkim settings and set up libopendkim (its DNS goes through
 * filter_dns). Returns 0 or -1 with *error_r. */
int dkim_configure(const struct filter_cfg *cfg, const struct filter_common *common,
		   const char **error_r);

/* SIGHUP: read the KeyTable and SigningTable (or KeyFile) again and, when
 * all of it loads, put the new keys in use; otherwise log why and keep the
 * old ones. Runs in libmilter's signal thread, as UserID. */
void dkim_reload(void);

/* The result word for one signature (RFC 8601 §2.7.1): "pass", "fail",
 * "neutral", "policy", "temperror" or "permerror". */
const char *dkim_milter_result(DKIM_SIGINFO *sig, const char **reason_r);

#endif
