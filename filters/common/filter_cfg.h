/*
 * filter_cfg.h - opendkim.conf-style configuration files for the filters.
 *
 * One setting per line: a key, white space, and the rest of the line as the
 * value ("KeyFile /etc/postern/keys/sel.private"). Keys are matched without
 * regard to case. A line whose first non-blank byte is '#' is a comment, as
 * is anything after a '#' that follows white space. The last occurrence of
 * a key wins, as in opendkim. Nothing here logs or exits.
 */
#ifndef POSTERN_FILTER_CFG_H
#define POSTERN_FILTER_CFG_H

#include "lib/common.h"

#define FILTER_CFG_MAX_BYTES (1024 * 1024) /* a larger file is refused */
#define FILTER_CFG_MAX_LINE 8192           /* a longer line is refused */

struct filter_cfg_entry {
	char *key;   /* owned, as written */
	char *value; /* owned, trimmed; "" when the key stands alone */
	int line;    /* 1-based line number, for messages */
};

struct filter_cfg {
	struct filter_cfg_entry *v; /* owned array of n entries, file order */
	size_t n;                   /* number of entries */
	char *path;                 /* owned; "(string)" for filter_cfg_parse */
};

/* Parse len bytes of configuration text (NULs refused). Returns an owned
 * config in *cfg_r and 0, or -1 with a message in *error_r (static storage,
 * valid until the next call from any thread). */
int filter_cfg_parse(const char *text, size_t len, struct filter_cfg **cfg_r,
		     const char **error_r);
/* Read and parse a file; same convention. Blocks on the file system. */
int filter_cfg_load(const char *path, struct filter_cfg **cfg_r, const char **error_r);
/* Free a config; takes NULL and clears the pointer. */
void filter_cfg_free(struct filter_cfg **cfg);

/* The value of the last occurrence of key, borrowed from cfg, or NULL. */
const char *filter_cfg_get(const struct filter_cfg *cfg, const char *key);
/* A yes/no value (yes true on 1 no false off 0); def when absent.
 * Returns 0, or -1 with *error_r for another word. */
int filter_cfg_bool(const struct filter_cfg *cfg, const char *key, bool def, bool *r,
		    const char **error_r);
/* A decimal number in [min, max]; def when absent. Same convention. */
int filter_cfg_uint(const struct filter_cfg *cfg, const char *key, unsigned long def,
		    unsigned long min, unsigned long max, unsigned long *r,
		    const char **error_r);
/* Fail with *error_r naming the first key that is in neither NULL-terminated
 * list (common keys and the filter's own); 0 when every key is known. */
int filter_cfg_check_keys(const struct filter_cfg *cfg, const char *const *common,
			  const char *const *own, const char **error_r);

#endif
