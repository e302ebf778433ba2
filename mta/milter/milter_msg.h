/*
 * milter_msg.h - the in-memory message a milter chain edits: a header list
 * and a body, plus the header edits milters ask for.
 *
 * Header values are stored exactly as received after the colon (leading
 * space included), with each line break stored as a single LF, i.e. in the
 * form SMFIP_HDR_LEADSPC filters see. Rendering writes CRLF line ends, so a
 * CRLF message that no milter touched renders byte for byte as it came in.
 * The body is stored with CRLF line ends (what milters are sent).
 *
 * A header may be "hidden": present in the message (our own Received:
 * header) but never shown to milters nor counted by CHGHEADER indices, as
 * Postfix does; INSHEADER positions count it (relative to the stored
 * message).
 */
#ifndef POSTERN_MILTER_MSG_H
#define POSTERN_MILTER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

struct milter_hdr {
	char *name;  /* owned, without the colon */
	char *value; /* owned, after the colon, LF between lines, no final line end */
	bool hidden; /* not shown to milters */
};

struct milter_msg {
	struct milter_hdr *hdrs; /* owned array */
	size_t n;                /* headers in use */
	size_t cap;              /* allocated entries */
	struct buf body;         /* CRLF body, max fixed by milter_msg_init */
	size_t header_bytes;     /* sum of name+value lengths, bounded by the body max */
};

/* Empty message whose body and total header text may hold max bytes each. */
void milter_msg_init(struct milter_msg *m, size_t max);
/* Free everything; the message is empty afterwards (reusable). */
void milter_msg_free(struct milter_msg *m);

/* Append a header (copies name and value). Returns 0, or -1 when the total
 * header size would pass the maximum. */
int milter_msg_add(struct milter_msg *m, const char *name, size_t name_len, const char *value,
		   size_t value_len, bool hidden);

/*
 * Parse a whole message (headers, blank line, body) with CRLF or bare-LF
 * line ends into an empty m: headers are split at the first colon, folded
 * lines joined with LF, body lines get CRLF. A header line without a colon
 * ends the header block (it becomes the first body line, as in Postfix).
 * Returns 0, or -1 with *error_r (static) when a limit is passed.
 */
int milter_msg_parse(struct milter_msg *m, const char *text, size_t len, const char **error_r);

/* Append body bytes (CRLF expected). 0, or -1 when past the maximum. */
int milter_msg_body_append(struct milter_msg *m, const void *p, size_t n);

/*
 * CHGHEADER: change the index-th visible header named name (ASCII case-
 * insensitive; index counts from 1, 0 is taken as 1). An empty value
 * deletes it; an index past the last such header appends a new header
 * (unless the value is empty: then nothing happens). Returns 0.
 */
int milter_msg_chgheader(struct milter_msg *m, const char *name, uint32_t index,
			 const char *value);
/* INSHEADER: insert before the index-th header of the stored message (0 =
 * top; past the end = append). 0, or -1 when past the maximum. */
int milter_msg_insheader(struct milter_msg *m, uint32_t index, const char *name,
			 const char *value);

/* Convert a value from a milter's form into the stored form: CRLF becomes
 * LF; without leadspc a single space is prepended (Postfix writes "Name: value").
 * Returns an owned string. */
char *milter_msg_value_in(const char *value, size_t len, bool leadspc);
/* The value as sent to a milter: without leadspc exactly one leading space
 * (not a tab) is removed. Borrowed pointer into v. */
const char *milter_msg_value_out(const char *v, bool leadspc);

/* Append the whole message (headers with CRLF, blank line, body) to out.
 * A line end inside a header value that is not followed by a blank gets a
 * TAB (it stays a continuation line), one at the very end is dropped: an
 * edited value cannot add headers or end the header block.
 * Returns 0, or -1 when out's maximum is passed. */
int milter_msg_render(const struct milter_msg *m, struct buf *out);

#endif
