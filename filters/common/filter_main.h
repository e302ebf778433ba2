/*
 * filter_main.h - what every Postern milter's main() shares.
 *
 * Command line: -c FILE (config; default /etc/postern/<name>.conf),
 * -t (test the config, print "<name>: configuration OK" or the error, exit
 * 0/1), -V (print the version, exit 0), -p SOCKET (overrides Socket).
 * Common settings read here: Socket, UserID, UMask, LogFile, PidFile,
 * Nameservers, DNSTimeout, AuthservID, InternalHosts. The filter's own
 * settings are read by its configure() callback. Then the milter socket is
 * opened (as root if started so), privileges are dropped to UserID, and
 * libmilter's main loop runs until SIGTERM/SIGINT.
 */
#ifndef POSTERN_FILTER_MAIN_H
#define POSTERN_FILTER_MAIN_H

#include <libmilter/mfapi.h>

#include "filters/common/filter_cfg.h"
#include "filters/common/filter_dns.h"
#include "filters/common/filter_net.h"
#include "lib/common.h"

/* Settings every filter has, filled before configure() is called. */
struct filter_common {
	char *socket;                   /* libmilter spec: inet:PORT@HOST, unix:/path */
	char *user;                     /* UserID: user[:group]; NULL when unset */
	char *log_file;                 /* LogFile: path, "-" stderr; NULL = syslog */
	char *pid_file;                 /* PidFile or NULL */
	char *authserv_id;              /* AuthservID; default the host name */
	struct filter_dns dns;          /* Nameservers + DNSTimeout */
	struct filter_netlist internal; /* InternalHosts; default 127.0.0.0/8, ::1 */
	unsigned long umask;            /* UMask for a unix socket; default 007 */
};

struct filter_desc {
	const char *name;               /* "dkim": program postern-dkim, log postern/dkim */
	const char *const *keys;        /* the filter's own settings, NULL-terminated */
	/* Read the filter's own settings (files it needs are read here, before
	 * privileges are dropped). Returns 0 or -1 with *error_r. */
	int (*configure)(const struct filter_cfg *cfg, const struct filter_common *common,
			 const char **error_r);
	struct smfiDesc *milter;        /* callbacks; xxfi_name is set from name */
	/* SIGHUP: read again what configure read from files; NULL: SIGHUP
	 * stops the filter (libmilter's default, like SIGTERM). Runs in
	 * libmilter's signal thread, as UserID, while callbacks run. */
	void (*reload)(void);
};

/* The settings read by filter_main, for the callbacks (valid after configure). */
extern struct filter_common filter_common;

/* Parse the command line, load the config, configure, and run the milter.
 * Returns the process exit status. */
int filter_main(int argc, char **argv, const struct filter_desc *desc);

/* Read the common settings from cfg into *c (for filter_main and tests).
 * Returns 0 or -1 with *error_r. */
int filter_common_read(const struct filter_cfg *cfg, struct filter_common *c,
		       const char **error_r);
/* Release what filter_common_read allocated. */
void filter_common_free(struct filter_common *c);

/* Check a libmilter socket spec: "inet:PORT@HOST", "inet6:PORT@HOST",
 * "unix:/path", "local:/path", or a bare absolute path. */
bool filter_socket_ok(const char *spec);

/* The names of the common settings, NULL-terminated. */
extern const char *const filter_common_keys[];

#endif
