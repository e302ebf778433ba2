/*
 * spf_eval.h - one SPF check (RFC 7208 check_host) through libspf2, with
 * libspf2's departures from the RFC corrected.
 *
 * DNS goes through filter_dns (the Nameservers setting), with no cache. Our
 * layer under libspf2 counts what libspf2 does not: DNS-querying terms across
 * include: and redirect= (limit 10, §4.6.4), void lookups (limit 2), PTR
 * names (the 11th and later are ignored, §5.5), and it checks every SPF
 * record with spf_record_check. IPv4-mapped IPv6 clients are evaluated as
 * IPv4 (§5). libspf2's "invalid" result becomes temperror when a DNS query
 * failed and permerror otherwise. Domains in U-labels (SMTPUTF8) are checked
 * as their A-labels (RFC 8616 §4); one that cannot be converted gives none.
 * Loopback clients are checked too (no "localhost is always allowed").
 * Thread-safe: per-call state is per thread.
 */
#ifndef POSTERN_SPF_EVAL_H
#define POSTERN_SPF_EVAL_H

#include <sys/socket.h>

#include "filters/common/filter_dns.h"
#include "lib/common.h"

enum spf_eval_result {
	SPF_EVAL_NONE,      /* no record, or the identity cannot be checked */
	SPF_EVAL_NEUTRAL,   /* ?all and the like */
	SPF_EVAL_PASS,      /* the client is authorised */
	SPF_EVAL_FAIL,      /* the client is not authorised (-all) */
	SPF_EVAL_SOFTFAIL,  /* probably not authorised (~all) */
	SPF_EVAL_TEMPERROR, /* a DNS failure: try again later */
	SPF_EVAL_PERMERROR, /* the published records are broken */
};

struct spf_eval {
	enum spf_eval_result result; /* the outcome */
	char comment[256];           /* why, for Received-SPF (printable ASCII) */
	char domain[256];            /* the domain checked: lower-case A-labels, "" when none was usable */
	unsigned lookups;            /* DNS-querying terms counted */
	unsigned voids;              /* void lookups counted */
};

/* Set up libspf2 with our DNS layer; receiver is the name used for the %{r}
 * macro. Returns 0 or -1 with *error_r. Call once, before threads start. */
int spf_eval_init(const struct filter_dns *dns, const char *receiver, const char **error_r);
/* Free what spf_eval_init made. */
void spf_eval_done(void);

/*
 * Check one identity for the client at sa: sender is the MAIL FROM address
 * without angle brackets, or NULL/"" to check the HELO identity
 * ("postmaster@helo"). Blocks on DNS. Fills *r.
 */
void spf_eval_check(const struct sockaddr *sa, const char *helo, const char *sender,
		    struct spf_eval *r);

/* For tests and fuzzing: what our DNS layer hands libspf2 for one reply
 * message ans[0..len) to a question (domain, type). Returns the number of
 * records given (-1 when none could be made), the first TXT as libspf2 sees
 * it in first_txt, and in *bad_r why an SPF record was refused (or NULL). */
int spf_eval_answer_test(const char *domain, int type, const unsigned char *ans, size_t len,
			 char *first_txt, size_t first_txt_len, const char **bad_r);

/* "pass", "fail", ... as RFC 7208 §8 and RFC 8601 spell them. */
const char *spf_eval_name(enum spf_eval_result r);

#endif
