/*
 * milter_conf.h - smtpd_milters / non_smtpd_milters and the milter_* main.cf
 * parameters, parsed as Postfix does.
 *
 * A milter list is a comma/space separated list of endpoints
 *   unix:/path   local:/path   inet:host:port   inet:[ipv6]:port   inet6:host:port
 * or per-milter groups that override the global parameters:
 *   { inet:127.0.0.1:8891, connect_timeout=10s, command_timeout=10s,
 *     content_timeout=300s, default_action=accept, protocol=6, reuse=no }
 * (reuse, yes or no, is a Postern extension: milter_connection_reuse for
 * this milter).
 * Time values take Postfix's units (s m h d w; a bare number is seconds) and,
 * as a Postern extension for tests, "ms". protocol is 2, 3, 4 or 6,
 * optionally followed by ";no_header_reply" as Postfix's milter_protocol
 * allows. default_action is accept, reject, tempfail, quarantine or shutdown.
 *
 * inet hosts are resolved here (getaddrinfo: this may block on DNS for a
 * name that is not numeric), so that connecting later never blocks. Use
 * numeric addresses or names in /etc/hosts.
 */
#ifndef POSTERN_MILTER_CONF_H
#define POSTERN_MILTER_CONF_H

#include <stdbool.h>
#include <sys/socket.h>

#include "lib/cfg.h"
#include "mta/milter/milter_proto.h"

/* What a milter's failure (unreachable, timeout, broken protocol) does. */
enum milter_action {
	MILTER_ACT_ACCEPT,     /* continue without this milter */
	MILTER_ACT_REJECT,     /* 550 5.5.0 Service unavailable */
	MILTER_ACT_TEMPFAIL,   /* 451 4.7.1 Service unavailable - try again later */
	MILTER_ACT_QUARANTINE, /* accept, but hold the message */
	MILTER_ACT_SHUTDOWN,   /* 421 4.7.1 Service unavailable - try again later, disconnect */
};

/* "accept", "reject"... */
const char *milter_action_name(enum milter_action a);
/* Parse an action word; 0 or -1. */
int milter_action_parse(const char *s, enum milter_action *a_r);

/* One configured milter. */
struct milter_endpoint {
	char *name;                   /* endpoint as written, for logs ("inet:127.0.0.1:8891") */
	struct sockaddr_storage addr; /* resolved address (AF_UNIX, AF_INET, AF_INET6) */
	socklen_t addr_len;           /* bytes used in addr */
	long long connect_timeout_ms; /* connect + option negotiation */
	long long command_timeout_ms; /* CONNECT HELO MAIL RCPT DATA UNKNOWN */
	long long content_timeout_ms; /* HEADER EOH BODY END-OF-MESSAGE */
	enum milter_action default_action; /* on failure */
	int protocol;                 /* version offered: 2, 3, 4 or 6 */
	bool no_header_reply;         /* offer SMFIP_NR_HDR */
	bool reuse;                   /* keep the connection for the next session (QUIT_NC) */
};

/* Global defaults for the per-milter fields. */
struct milter_defaults {
	long long connect_timeout_ms;      /* milter_connect_timeout */
	long long command_timeout_ms;      /* milter_command_timeout */
	long long content_timeout_ms;      /* milter_content_timeout */
	enum milter_action default_action; /* milter_default_action */
	int protocol;                      /* milter_protocol */
	bool no_header_reply;              /* milter_protocol's no_header_reply word */
	bool reuse;                        /* milter_connection_reuse */
};

/* Everything a milter chain needs: the milters and the macro settings. */
struct milter_conf {
	struct milter_endpoint *milters; /* owned array, configuration order */
	size_t n;                        /* entries in milters */
	char *macros[MILTER_MACROS_COUNT]; /* owned space separated name lists per enum milter_macros */
	char *daemon_name;               /* value of {daemon_name} (milter_macro_daemon_name) */
	char *v;                         /* value of v (milter_macro_v) */
	char **default_names;            /* milter_macro_defaults names (bare, no braces) */
	char **default_values;           /* and their values */
	size_t n_defaults;               /* entries in the two arrays */
};

/*
 * Parse one milter list (value of smtpd_milters or non_smtpd_milters) with
 * the given defaults. Appends to *list_r / *n_r (owned; free with
 * milter_endpoints_free). Returns 0, or -1 with *error_r (owned by the
 * caller: free it) naming the bad element; nothing appended then.
 */
int milter_conf_parse_list(const char *value, const struct milter_defaults *d,
			   struct milter_endpoint **list_r, size_t *n_r, char **error_r);
/* Free n endpoints and the array; *list becomes NULL. */
void milter_endpoints_free(struct milter_endpoint **list, size_t n);

/* Parse a time value ("10s", "2m", "500ms", "30") into milliseconds; 0 or -1. */
int milter_conf_parse_time(const char *s, long long *ms_r);

/*
 * Build the configuration of one chain from main.cf: list is the milter list
 * text (normally cfg->smtpd_milters or cfg->non_smtpd_milters); macro lists,
 * timeouts, default action, protocol, {daemon_name} and v come from cfg.
 * macro_defaults is milter_macro_defaults text ("name=value, name=value"),
 * NULL or "" for none.
 * Returns an owned conf (free with milter_conf_free), or NULL with *error_r
 * (owned by the caller).
 */
struct milter_conf *milter_conf_from_cfg(const struct cfg *cfg, const char *list,
					 const char *macro_defaults, char **error_r);
/* Free everything; *conf becomes NULL. Takes NULL. */
void milter_conf_free(struct milter_conf **conf);

#endif
