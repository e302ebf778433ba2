/*
 * cfg_int.h - what cfg.c shares with cfg_master.c and the unit tests only.
 *
 * Not a public interface: the parameter descriptor table, the value
 * converters and the problem reporter used by cfg_load / cfg_check.
 */
#ifndef POSTERN_CFG_INT_H
#define POSTERN_CFG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/cfg.h"

enum cfg_type {
	CFG_T_STR,  /* text, expanded */
	CFG_T_LIST, /* list text, expanded, words optionally checked against extra */
	CFG_T_ENUM, /* one word of extra */
	CFG_T_RAW,  /* text kept unexpanded */
	CFG_T_INT,  /* long long >= 0 */
	CFG_T_SIZE, /* long long bytes >= 0 */
	CFG_T_TIME, /* long long seconds, units s m h d w */
	CFG_T_BOOL, /* bool, yes/no */
};

struct cfg_param {
	const char *cname;  /* C field name (leading '_' when the name starts with a digit) */
	enum cfg_type type; /* how the value converts */
	const char *def;    /* default, main.cf text */
	const char *extra;  /* default time unit, or '|'-separated allowed words, or NULL */
	const char *doc;    /* one-line description */
	size_t offset;      /* offsetof(struct cfg, field) */
};

extern const struct cfg_param cfg_params[]; /* in cfg_params.h order */
extern const size_t cfg_nparams;            /* entries in cfg_params */

/* The main.cf name of p (without the C-only leading '_'). */
const char *cfg_param_name(const struct cfg_param *p);
/* Descriptor for name, or NULL. */
const struct cfg_param *cfg_param_find(const char *name);

/* Format into the module's error buffer and return it. */
const char *cfg_error_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Converters: 0, or -1 for a bad value. */
int cfg_parse_time(const char *s, const char *def_unit, long long *r);
int cfg_parse_bool(const char *s, bool *r);
/* Check (and with cfg != NULL store) an expanded value; see cfg.c. */
int cfg_convert(const struct cfg_param *p, char **value, struct cfg *cfg, const char **reason_r);

/* Collects problems as "FILE:LINE: text" (cfg_load keeps the first error,
 * cfg_check keeps all). */
struct cfg_report {
	struct buf *out;     /* every line goes here when not NULL */
	const char *file;    /* path used in messages */
	int errors;          /* errors so far */
	char first[1024];    /* error with the lowest line number */
	int first_line;      /* its line (INT_MAX when it has none) */
};

/* Add a problem at line (0: no line number). Warnings are log_warning'd
 * when out is NULL and never count as errors. */
void cfg_report_add(struct cfg_report *r, int line, bool warning, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));


/* Split text into logical lines Postfix-style: callback per logical line
 * with the line number where it starts; comment and blank lines skipped,
 * lines that start with whitespace continue the previous one (joined with
 * the newline turned into a space). Reports NUL bytes, over-long lines and
 * a leading continuation line. */
void cfg_logical_lines(const char *text, size_t len, struct cfg_report *r, size_t line_max,
		       void (*fn)(void *ctx, const char *line, size_t len, int lineno), void *ctx);

/* Master.cf problems for cfg_check; with cfg (a main.cf that loads) each
 * service's -o overrides are also applied to it and failures reported. */
void cfg_master_check_text(const char *text, size_t len, struct cfg_report *r, const struct cfg *cfg);

#endif
