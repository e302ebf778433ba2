/*
 * smtpd_conf.h - what smtpd derives from main.cf once: the struct cfg with
 * -o overrides applied, the opened lookup tables of the recipient checks,
 * the parsed mynetworks, the TLS context. Sessions hold a reference, so a
 * session keeps the configuration it started with.
 *
 * Tests: tests/integration/test_smtpd_*.py (through the daemon).
 */
#ifndef POSTERN_SMTPD_CONF_H
#define POSTERN_SMTPD_CONF_H

#include <stdbool.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "lib/cfg.h"
#include "lib/table.h"
#include "mta/milter/milter_conf.h"
#include "mta/smtpd/smtpd_data.h"

struct smtpd_net {
	int family;          /* AF_INET or AF_INET6 */
	unsigned char a[16]; /* network address */
	unsigned prefix;     /* prefix length */
};

/* A Postfix domain list: plain names, and tables in which the domain is
 * looked up as a key (virtual_mailbox_domains = $virtual_mailbox_maps). */
struct smtpd_domains {
	char *names;              /* the list text (plain names are matched from it) */
	struct table_list *tables; /* table entries of the list, or NULL */
};

/* One smtpd_milters replacement seen in smtpd_milter_maps, parsed once. */
struct smtpd_milter_choice {
	char *value;                 /* the lookup result as written */
	struct milter_conf *milters; /* parsed; NULL for DISABLE or a bad value */
	char *error;                 /* why the value is unusable, or NULL */
};

struct smtpd_conf {
	int refs;                      /* sessions + the server */
	struct cfg *cfg;               /* owned; overrides applied */
	struct smtpd_net *nets;        /* mynetworks */
	size_t n_nets;                 /* entries in nets */
	struct smtpd_net *bare_lf_exempt; /* smtpd_forbid_bare_newline_exclusions */
	size_t n_bare_lf_exempt;       /* entries */
	struct smtpd_domains mydest;   /* mydestination */
	struct smtpd_domains vmbox_domains; /* virtual_mailbox_domains */
	struct smtpd_domains valias_domains; /* virtual_alias_domains */
	struct smtpd_domains relay;    /* relay_domains */
	struct table_list *local_rcpt; /* local_recipient_maps, NULL when empty */
	struct table_list *vmbox;      /* virtual_mailbox_maps, NULL when empty */
	struct table_list *valias;     /* virtual_alias_maps, NULL when empty */
	struct table_list *relay_rcpt; /* relay_recipient_maps, NULL when empty */
	char *table_error;             /* first table that failed to open: lookups
	                                * in its role tempfail */
	enum smtpd_bare_lf bare_lf;    /* smtpd_forbid_bare_newline */
	bool bare_lf_note;             /* "note": log notes=bare_lf */
	SSL_CTX *tls;                  /* STARTTLS context, NULL when no certificate */
	bool tls_required;             /* smtpd_tls_security_level = encrypt */
	bool wrapper;                  /* smtpd_tls_wrappermode */
	char *banner;                  /* "220 " + smtpd_banner, ready to send */
	struct milter_conf *milters;   /* smtpd_milters, NULL when empty or broken */
	char *milter_error;            /* why smtpd_milters is unusable, or NULL
	                                * (sessions are then refused 421 4.3.5) */
	char *tls_warning;             /* why STARTTLS is off although configured, or NULL
	                                * (logged by the caller once logging is set up) */
	struct table_list *milter_maps; /* smtpd_milter_maps, NULL when empty or broken */
	char *milter_maps_error;       /* why smtpd_milter_maps cannot be opened, or NULL
	                                * (every lookup then fails) */
	struct smtpd_milter_choice *milter_choices; /* values seen so far (a cache) */
	size_t n_milter_choices;       /* entries */
	struct smtpd_net *event_exempt; /* smtpd_client_event_limit_exceptions */
	size_t n_event_exempt;         /* entries */
};

/* What smtpd_conf_milters_for found. */
enum smtpd_milter_pick {
	SMTPD_MP_USE,   /* *milters_r is the chain's configuration (NULL: none) */
	SMTPD_MP_TEMP,  /* smtpd_milter_maps lookup failed: the session tempfails */
	SMTPD_MP_BAD,   /* the configuration for this client is unusable */
};

/*
 * Load CONFDIR/main.cf, apply the "name=value" overrides (-o), open tables
 * and TLS. Returns a conf with one reference, or NULL with *error_r
 * (owned by the module, valid until the next call). A table that cannot be
 * opened is logged and makes its lookups tempfail (451), not fatal.
 */
struct smtpd_conf *smtpd_conf_load(const char *confdir, char **overrides, size_t n_overrides,
				   const char **error_r);
void smtpd_conf_ref(struct smtpd_conf *c);
/* Drop one reference; frees at zero; *c becomes NULL. */
void smtpd_conf_unref(struct smtpd_conf **c);

/*
 * The milters of a session from client address addr (text): the value of
 * smtpd_milter_maps for addr (Postfix 3.2: a milter list in smtpd_milters
 * syntax, or DISABLE for none), else smtpd_milters. *milters_r is owned by
 * c (valid while the caller holds a reference). SMTPD_MP_TEMP and
 * SMTPD_MP_BAD set *error_r (owned by c or the table module, valid until
 * the next call). Reads local tables only; parsed values are cached.
 */
enum smtpd_milter_pick smtpd_conf_milters_for(struct smtpd_conf *c, const char *addr,
					      const struct milter_conf **milters_r,
					      const char **error_r);

/* Is the address in the list of networks? */
bool smtpd_conf_net_match(const struct smtpd_net *nets, size_t n, const struct sockaddr *sa);

/*
 * Parse a mynetworks-style list ("127.0.0.0/8 [::1]/128 10.1.2.3") into an
 * owned array (*n_r entries). Entries that are not networks are warned about
 * and skipped. Returns the array (maybe NULL when empty).
 */
struct smtpd_net *smtpd_conf_parse_nets(const char *param, const char *list, size_t *n_r);

/*
 * Is domain in the list? 1 yes, 0 no, -1 table error (*error_r).
 * subdomains: parent_domain_matches_subdomains semantics (relay_domains).
 */
int smtpd_conf_domain_match(const struct smtpd_domains *d, struct str domain, bool subdomains,
			    const char **error_r);

#endif
