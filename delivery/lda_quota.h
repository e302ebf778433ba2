/*
 * lda_quota.h - Maildir++ quota ("maildirsize") as Courier and Dovecot keep it.
 *
 * Line 1 of maildirsize holds the limits "<bytes>S,<count>C" (either part
 * may be missing, 0 = no limit); every further line is "<bytes> <count>",
 * summed for the current usage. A delivery checks usage + message against
 * the limit, then appends one "<size> 1" line with a single O_APPEND
 * write(). The file is recalculated (scan of new/ and cur/ of the inbox and
 * every ".Folder", written to tmp/ and renamed over) when missing or
 * unparsable while a limit is configured, when it reaches 5120 octets, or
 * when usage looks over quota and the file has several data lines or is
 * older than 15 minutes. Parsing functions are pure; the rest does file
 * system calls only.
 */
#ifndef POSTERN_LDA_QUOTA_H
#define POSTERN_LDA_QUOTA_H

#include "delivery/lda_status.h"
#include "lib/buf.h"
#include "lib/common.h"

#define LDA_QUOTA_FILE_MAX 5120     /* recalculate when the file reaches this */
#define LDA_QUOTA_RECALC_AGE (15 * 60) /* seconds */

struct lda_quota_limit {
	uint64_t bytes; /* storage limit in octets; 0 = none */
	uint64_t count; /* message limit; 0 = none */
};

struct lda_quota_usage {
	int64_t bytes;  /* sum of the byte column */
	int64_t count;  /* sum of the count column */
	unsigned lines; /* data lines after the limit line */
};

/* Parse a limit line "<n>S,<m>C" (order free, either part optional, empty
 * = no limit). Returns 0, or -1 for anything else (unknown letter, missing
 * digits, overflow, trailing bytes). */
int lda_quota_parse_limit(struct str s, struct lda_quota_limit *lim);

/* Parse a whole maildirsize file. Returns 0 with *lim and *use filled, or -1
 * when it is empty or any line is malformed (then it must be recalculated). */
int lda_quota_parse_file(struct str file, struct lda_quota_limit *lim, struct lda_quota_usage *use);

/* True when adding one message of size octets would pass a limit. */
bool lda_quota_exceeds(const struct lda_quota_limit *lim, const struct lda_quota_usage *use,
		       uint64_t size);

/* Format the limit line (no newline) into out. */
void lda_quota_format_limit(const struct lda_quota_limit *lim, char *out, size_t outsz);

/*
 * Check the quota of the maildir open at rootfd (path for messages) before
 * storing size octets. override (may be NULL) is the limit from
 * -o maildir_quota=, which wins over the file's own line. Without any limit
 * nothing is read or created and 0 is returned with *active_r false.
 * Over quota: -1 with st filled (4.2.2 EX_TEMPFAIL when tempfail, else
 * 5.2.2 EX_NOPERM). File errors are temporary.
 */
int lda_quota_check(int rootfd, const char *path, const struct lda_quota_limit *override,
		    uint64_t size, bool tempfail, bool *active_r, struct lda_status *st);

/* After a successful delivery: append "<size> 1" to maildirsize. Failures
 * are ignored (the next recalculation repairs the file). */
void lda_quota_add(int rootfd, uint64_t size);

#endif
