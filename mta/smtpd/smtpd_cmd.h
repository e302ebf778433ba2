/*
 * smtpd_cmd.h - the SMTP command-line parser: verb, argument, ESMTP
 * parameters of MAIL and RCPT. Pure: no I/O, no logging, no allocation;
 * every view points into the caller's line. Replies for bad input are
 * complete static SMTP replies ("501 5.5.4 ..."), Postfix's wording where
 * Postfix has one.
 *
 * Tests: tests/unit/smtpd/smtpd_cmd_test.c, tests/fuzz/smtpd_cmd_fuzz.c.
 */
#ifndef POSTERN_SMTPD_CMD_H
#define POSTERN_SMTPD_CMD_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/buf.h"

enum smtpd_verb {
	SMTPD_V_UNKNOWN,  /* not a verb we know */
	SMTPD_V_HELO,     /* HELO name */
	SMTPD_V_EHLO,     /* EHLO name */
	SMTPD_V_MAIL,     /* MAIL FROM:<path> params */
	SMTPD_V_RCPT,     /* RCPT TO:<path> params */
	SMTPD_V_DATA,     /* DATA */
	SMTPD_V_BDAT,     /* BDAT size [LAST] (RFC 3030) */
	SMTPD_V_RSET,     /* RSET */
	SMTPD_V_NOOP,     /* NOOP [text] */
	SMTPD_V_QUIT,     /* QUIT */
	SMTPD_V_VRFY,     /* VRFY text */
	SMTPD_V_EXPN,     /* EXPN text: refused */
	SMTPD_V_HELP,     /* HELP [text] */
	SMTPD_V_STARTTLS, /* STARTTLS (RFC 3207) */
	SMTPD_V_AUTH,     /* AUTH: not offered yet */
	SMTPD_V_ETRN,     /* ETRN: not offered */
	SMTPD_V_HTTP,     /* GET/POST/CONNECT/...: a web client or proxy abuse */
	SMTPD_V__COUNT    /* number of verbs */
};

/* Upper-case name of a verb for logs and counters ("ehlo" style is made by
 * the caller). "unknown" for SMTPD_V_UNKNOWN. */
const char *smtpd_verb_name(enum smtpd_verb v);

#define SMTPD_CMD_MAX_PARAMS 16 /* more parameters than this is a syntax error */

struct smtpd_param {
	struct str key;   /* parameter keyword as sent */
	struct str value; /* text after '=', or empty */
	bool has_value;   /* an '=' was present */
};

struct smtpd_cmd {
	enum smtpd_verb verb;  /* the verb */
	struct str verb_text;  /* the verb as sent (for unknown-command logs) */
	struct str arg;        /* everything after the verb, blanks trimmed */
	struct str path;       /* MAIL/RCPT: the path text ("<a@b>" or "a@b") */
	struct smtpd_param params[SMTPD_CMD_MAX_PARAMS]; /* MAIL/RCPT params */
	size_t n_params;       /* entries in params */
	uint64_t bdat_size;    /* BDAT: chunk size */
	bool bdat_last;        /* BDAT: LAST given */
};

/*
 * Parse one command line (without its line end). Returns 0 and fills *cmd;
 * or -1 with *reply_r a static SMTP reply for a syntax error of a known verb
 * (cmd->verb is still set). An unknown verb is not an error here
 * (cmd->verb = SMTPD_V_UNKNOWN).
 */
int smtpd_cmd_parse(struct str line, struct smtpd_cmd *cmd, const char **reply_r);

/* What MAIL FROM parameters asked for. */
struct smtpd_mail_params {
	uint64_t size;      /* SIZE=, 0 when not given */
	unsigned flags;     /* IPC_QF_* (BODY, SMTPUTF8, RET) */
	char envid[101];    /* ENVID xtext-decoded (RFC 3461 §4.4: <= 100), "" none */
	bool has_size;      /* SIZE= was given */
};

/* What RCPT TO parameters asked for. */
struct smtpd_rcpt_params {
	unsigned notify;    /* IPC_QN_*, 0 = not given */
	char orcpt[600];    /* ORCPT as "type;address" xtext-decoded, "" none */
};

/*
 * Check the parameters of a parsed MAIL command. smtputf8_ok: the
 * SMTPUTF8 extension is offered; dsn_ok: DSN is offered. Returns 0, or -1
 * with *reply_r a static reply (555 unknown parameter, 501 bad value).
 */
int smtpd_cmd_mail_params(const struct smtpd_cmd *cmd, bool smtputf8_ok, bool dsn_ok,
			  struct smtpd_mail_params *out, const char **reply_r);
/* Same for RCPT. */
int smtpd_cmd_rcpt_params(const struct smtpd_cmd *cmd, bool dsn_ok, struct smtpd_rcpt_params *out,
			  const char **reply_r);

/*
 * Decode RFC 3461 xtext ("+HH" for octets outside '!'..'~', '+', '=') into
 * out (size outsz, NUL-terminated). Returns the decoded length, or -1 on bad
 * syntax, a decoded NUL, or when it does not fit.
 */
long smtpd_cmd_xtext_decode(struct str in, char *out, size_t outsz);

#endif
