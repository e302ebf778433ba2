/*
 * spf_milter.h - postern-spf's settings and libmilter callbacks.
 *
 * Checks the HELO identity at HELO and the MAIL FROM identity at MAIL
 * (RFC 7208 §2.3, §2.4; a null sender is checked as postmaster@HELO), may
 * reject on fail or tempfail on temperror, and adds Received-SPF (§9.1) and
 * Authentication-Results (RFC 8601) at end of message; with RejectHELOFail,
 * also refuses MAIL when the HELO identity fails (§2.3). Internal clients
 * (InternalHosts) and SASL-authenticated senders are not checked.
 */
#ifndef POSTERN_SPF_MILTER_H
#define POSTERN_SPF_MILTER_H

#include <libmilter/mfapi.h>

#include "filters/common/filter_cfg.h"
#include "filters/common/filter_main.h"
#include "lib/common.h"

struct spf_settings {
	bool reject_fail;       /* RejectFail: 550 5.7.23 on fail */
	bool reject_helo_fail;  /* RejectHELOFail: 550 5.7.23 when the HELO identity fails */
	bool tempfail_temperror; /* TempErrorAction tempfail: 451 4.7.24 */
	bool reject_permerror;  /* PermErrorAction reject: 550 5.7.24 */
	bool helo_check;        /* HeloCheck: also report the HELO identity */
	bool received_spf;      /* AddReceivedSPF: add Received-SPF */
};

extern struct spf_settings spf_settings;
extern struct smfiDesc spf_milter;
extern const char *const spf_keys_names[];

/* Read postern-spf's settings and set up libspf2. Returns 0 or -1 with
 * *error_r. */
int spf_configure(const struct filter_cfg *cfg, const struct filter_common *common,
		  const char **error_r);

#endif
