/*
 * cfg.h - main.cf and master.cf: Postfix's configuration syntax, Postern's
 * parameters.
 *
 * main.cf (CONFDIR/main.cf) holds "name = value" lines exactly as Postfix
 * reads them: a line starting with whitespace continues the previous one,
 * a line whose first non-blank character is '#' is a comment (a '#' later in
 * a line is part of the value), blank lines are ignored. Values may refer to
 * other parameters as $name, ${name} or $(name), expanded recursively when
 * the configuration is loaded (a reference loop is an error); ${name?text}
 * gives text when name is non-empty, ${name:text} gives text when name is
 * empty; "$$" is a literal '$'. A reference to a name that is neither a
 * parameter nor defined in main.cf expands to "".
 *
 * Every parameter is declared once, in lib/cfg_params.h; struct cfg has one
 * field per parameter with the parameter's own name, already expanded and
 * converted:
 *   STR, LIST, ENUM   char *     (never NULL; "" when empty)
 *   RAW               char *     not expanded at load (forward_path, mailbox_command:
 *                                their $home, $user... belong to delivery time)
 *   INT, SIZE         long long  (bytes for SIZE)
 *   TIME              long long  seconds
 *   BOOL              bool
 * A parameter whose name starts with a digit has a leading '_' in C only:
 * cfg->_2bounce_notice_recipient.
 *
 * Defaults are Postfix's wherever the parameter exists in Postfix (exceptions
 * are listed in docs/configuration.md). Computed defaults:
 *   myhostname   gethostname(); when it holds no dot, ".localdomain" is
 *                appended (as Postfix does)
 *   mydomain     myhostname without its first label; "localdomain" when
 *                myhostname has no dot
 *   mynetworks   "127.0.0.0/8 [::1]/128": loopback only, never the LAN
 *                (Postern's choice; Postfix derives it from the interfaces)
 *   daemon_directory, command_directory
 *                "" : the caller (the postern binary) fills in the directory
 *                of the running executable with cfg_override() when empty.
 *   config_directory  the confdir given to cfg_load (main.cf cannot change it)
 *
 * Unknown names in main.cf are kept (they may be referenced by $name) and
 * get log_warning("FILE:LINE: unknown parameter NAME") unless some value
 * refers to them. "myorigin = /etc/mailname" (Debian) reads the domain from
 * the file's first line. lib/ never exits: every function returns its error.
 *
 * Error strings (*error_r) are owned by this module and stay valid until the
 * next call of a cfg_ function; copy them to keep them. Nothing here is
 * thread-safe, nothing blocks except on local file reads, nothing calls back.
 *
 * Tests: tests/unit/lib/cfg_test.c, tests/fuzz/cfg_fuzz.c.
 */
#ifndef POSTERN_CFG_H
#define POSTERN_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "lib/buf.h"

#define CFG_CTYPE_STR char *
#define CFG_CTYPE_LIST char *
#define CFG_CTYPE_ENUM char *
#define CFG_CTYPE_RAW char *
#define CFG_CTYPE_INT long long
#define CFG_CTYPE_SIZE long long
#define CFG_CTYPE_TIME long long
#define CFG_CTYPE_BOOL bool

struct cfg_priv;

/* The effective configuration. Owned by whoever got it from cfg_load,
 * cfg_parse_text or cfg_dup; read the fields freely, change them only
 * through cfg_override (which keeps $-references consistent). */
struct cfg {
#define CFG_PARAM(type, field, def, extra, doc) CFG_CTYPE_##type field; /* doc */
#include "lib/cfg_params.h"
#undef CFG_PARAM
	struct cfg_priv *priv; /* raw text, sources and line numbers: cfg.c only */
};

/*
 * Read CONFDIR/main.cf, apply defaults, expand and convert every value.
 * A missing main.cf is an error (so is an unreadable one). Unknown names are
 * warned about with log_warning. Returns an owned struct cfg, or NULL with
 * *error_r = "CONFDIR/main.cf:LINE: reason" for the first bad line or value
 * (e.g. "/etc/postern/main.cf:7: bad integer value for smtpd_recipient_limit:
 * 12x"). Lines without a line number (missing file) read "CONFDIR/main.cf: reason".
 */
struct cfg *cfg_load(const char *confdir, const char **error_r);

/*
 * Same as cfg_load, on main.cf text held in memory (len bytes, need not be
 * NUL-terminated, may hold NUL bytes: a NUL is an error for its line).
 * filename is used in messages only (e.g. "main.cf"), confdir becomes
 * config_directory. Warnings go to log_warning. For tests and fuzzing.
 */
struct cfg *cfg_parse_text(const char *confdir, const char *filename, const char *text,
			   size_t len, const char **error_r);

/* Release everything; *cfg becomes NULL. Takes NULL and a NULL *cfg. */
void cfg_free(struct cfg **cfg);

/* An independent owned copy (for per-service overrides). */
struct cfg *cfg_dup(const struct cfg *cfg);

/*
 * Set parameter name to value (raw text, $-expanded like main.cf text) as if
 * main.cf said so, then re-evaluate every value so that references follow
 * (overriding myhostname also changes $myhostname in mydestination), as
 * master.cf -o and postern-lda -o need. Returns 0; or -1 with *error_r
 * ("unknown parameter NAME"; "-o NAME=VALUE: reason" for a bad value;
 * "FILE:LINE: reason" when a main.cf value no longer evaluates) and cfg
 * unchanged. Re-evaluates everything: meant for start-up, not per message.
 */
int cfg_override(struct cfg *cfg, const char *name, const char *value, const char **error_r);

/*
 * The effective (expanded) value of a parameter as text, as main.cf would
 * write it: "10240000", "300s", "yes". Also works for names that main.cf
 * defines without Postern knowing them. NULL if name is unknown.
 * The string is owned by cfg and valid until cfg changes or is freed.
 */
const char *cfg_value(const struct cfg *cfg, const char *name);

/* True when name is a parameter of lib/cfg_params.h. */
bool cfg_is_known(const char *name);

/*
 * Validate CONFDIR/main.cf and CONFDIR/master.cf (if present) and append
 * EVERY problem to report, one line each, "FILE:LINE: text\n" (FILE is the
 * full path). Warnings (unknown parameter, ignored master.cf service) read
 * "FILE:LINE: warning: text" and do not count. When main.cf loads, every
 * table list (*_maps, header_checks, body_checks) is opened: a table that
 * cannot be opened is an error ("FILE:LINE: alias_maps: reason"; a default
 * value reads "FILE: alias_maps (default): reason"), one whose lookups fail
 * (lmdb: file not built yet) a warning. Returns the number of errors
 * (0: the configuration loads). Nothing is logged.
 */
int cfg_check(const char *confdir, struct buf *report);

enum cfg_print_mode {
	CFG_PRINT_ALL,        /* every known parameter, effective value (postconf) */
	CFG_PRINT_NONDEFAULT, /* only those set in main.cf or by override (postconf -n) */
	CFG_PRINT_DEFAULTS,   /* default values, computed defaults expanded (postconf -d) */
};

/*
 * Write "name = value\n" lines to out, sorted by name, values expanded
 * (like postconf -x). names NULL (or names[0] NULL) means all parameters the
 * mode selects; otherwise the NULL-terminated list, in the order given, each
 * printed whatever the mode (like postconf NAME; with CFG_PRINT_DEFAULTS the
 * default is printed). Returns 0, or -1 when some name is unknown: each such
 * name gets log_warning("NAME: unknown parameter") and the others are still
 * printed.
 */
int cfg_print(const struct cfg *cfg, enum cfg_print_mode mode, char **names, FILE *out);

/* Name as text of a print mode ("all", "nondefault", "defaults"). */
const char *cfg_print_mode_name(enum cfg_print_mode mode);

/*
 * master.cf: one smtpd listening service.
 *
 * Postfix syntax: "service type private unpriv chroot wakeup maxproc command
 * args...", continuation lines start with whitespace, '#' lines are
 * comments. Only "inet" services running "smtpd" are kept; other lines get a
 * warning and are ignored. "-" in a column means Postfix's default
 * (private y, unpriv y, chroot y (ignored by Postern), wakeup 0, maxproc
 * default_process_limit). "-o name=value" and "-o { name = value }" args are
 * validated against the parameter table. Endpoints:
 *   127.0.0.1:2525   [::1]:25   host.example:smtp   2525   smtp
 * A bare port/service means every address in inet_interfaces (host NULL).
 * Service names resolve with getservbyname(name, "tcp").
 * Without CONFDIR/master.cf the default is one service "smtp" (port 25, all
 * inet_interfaces), like Postfix's stock master.cf.
 */
struct cfg_service {
	char *endpoint;        /* first column as written ("127.0.0.1:2525") */
	char *host;            /* address or host part; NULL = inet_interfaces */
	int port;              /* resolved TCP port, 1..65535 */
	bool private_;         /* column 3 (meaningless for inet; kept) */
	bool unpriv;           /* column 4: run as mail_owner */
	bool chroot;           /* column 5: accepted, Postern never chroots */
	int wakeup;            /* column 6 seconds; 0 for "-" */
	int maxproc;           /* column 7; -1 for "-" (use cfg->default_process_limit) */
	char *command;         /* "smtpd" */
	char **args;           /* NULL-terminated: the args after the command that are not -o */
	char **override_names; /* n_overrides names from -o, validated */
	char **override_values; /* matching raw values */
	size_t n_overrides;    /* entries in the two arrays above */
	int line;              /* master.cf line number of the service (0: default) */
};

/*
 * Parse CONFDIR/master.cf into an owned array of *n_r services (may be 0
 * when every line was ignored). Returns 0, or -1 with *error_r =
 * "CONFDIR/master.cf:LINE: reason" (bad column, unknown -o parameter, bad
 * -o value, unknown service name, bad port). Ignored lines are log_warning'd.
 */
int cfg_master_load(const char *confdir, struct cfg_service **services_r, size_t *n_r,
		    const char **error_r);

/* Same on master.cf text in memory (filename for messages only). */
int cfg_master_parse_text(const char *filename, const char *text, size_t len,
			  struct cfg_service **services_r, size_t *n_r, const char **error_r);

/* Free an array from cfg_master_load; *services becomes NULL. */
void cfg_master_free(struct cfg_service **services, size_t n);

/*
 * The configuration a service runs with: an owned copy of cfg with the
 * service's -o overrides applied in order. NULL with *error_r on a bad value
 * (cannot happen for services from cfg_master_load with the same cfg).
 */
struct cfg *cfg_for_service(const struct cfg *cfg, const struct cfg_service *svc,
			    const char **error_r);

#endif
