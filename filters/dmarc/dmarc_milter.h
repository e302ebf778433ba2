/*
 * dmarc_milter.h - postern-dmarc's settings and libmilter callbacks.
 *
 * Evaluates DMARC (RFC 7489) for the RFC5322.From domain from the SPF and
 * DKIM results in Authentication-Results fields whose authserv-id is
 * trusted (TrustedAuthservIDs, by default our own AuthservID), as OpenDMARC
 * does; honours p=, sp= and pct= (reject, quarantine, or only report, per
 * configuration) and adds Authentication-Results dmarc=. With
 * SPFSelfValidate it checks SPF itself (through postern-spf's code) when
 * no trusted SPF result is present.
 */
#ifndef POSTERN_DMARC_MILTER_H
#define POSTERN_DMARC_MILTER_H

#include <libmilter/mfapi.h>

#include "filters/common/filter_cfg.h"
#include "filters/common/filter_main.h"
#include "lib/common.h"

#define DMARC_MAX_TRUSTED 16

struct dmarc_settings {
	char *trusted[DMARC_MAX_TRUSTED]; /* TrustedAuthservIDs, owned */
	size_t ntrusted;                  /* entries in trusted */
	bool reject;                      /* RejectFailures: 550 on p=reject */
	bool quarantine;                  /* QuarantineFailures: hold on p=quarantine */
	bool reject_bad_from;             /* BadFromAction reject: no/many From */
	bool tempfail_temperror;          /* TempErrorAction tempfail */
	int history_fd;                   /* HistoryFile, opened at start-up; -1 */
	bool spf_self;                    /* SPFSelfValidate: check SPF ourselves
					   * when no trusted spf result came */
};

enum dmarc_lookup {
	DMARC_LOOKUP_FOUND, /* exactly one DMARC record */
	DMARC_LOOKUP_NONE,  /* none (or several: RFC 7489 §6.6.3 says none) */
	DMARC_LOOKUP_TEMP,  /* DNS failure, or a reply that does not parse */
};

/* The DMARC record in a DNS reply ans[0..len) to a TXT question: an
 * enum dmarc_lookup, with the record (NUL-terminated) in rec on FOUND.
 * Pure; for the milter, tests and tests/fuzz/filter_dns_answer_fuzz.c. */
int dmarc_milter_parse(const unsigned char *ans, size_t len, char *rec, size_t reclen);

extern struct dmarc_settings dmarc_settings;
extern struct smfiDesc dmarc_milter;
extern const char *const dmarc_keys_names[];

/* Read postern-dmarc's settings and set up libopendmarc. Returns 0 or -1
 * with *error_r. */
int dmarc_configure(const struct filter_cfg *cfg, const struct filter_common *common,
		    const char **error_r);

#endif
