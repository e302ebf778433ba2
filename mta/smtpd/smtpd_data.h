/*
 * smtpd_data.h - the message content state machine for DATA and BDAT.
 *
 * Fed raw bytes from the client in any chunking, it writes the content as
 * it will be stored (dot-unstuffed for DATA, CRLF line ends, bare LF
 * handled per smtpd_forbid_bare_newline) into a caller buffer, finds the
 * end of DATA (only CR LF . CR LF, RFC 5321 §4.1.1.4; never a bare-LF
 * variant: CVE-2023-51764), enforces the size limit, and watches the header
 * block for Message-ID and Received: hop counting, and cuts header fields
 * longer than header_size_limit (smtpd_data_header_limit).
 *
 * Pure: no I/O, no logging. Tests: tests/unit/smtpd/smtpd_data_test.c,
 * tests/fuzz/smtpd_data_fuzz.c.
 */
#ifndef POSTERN_SMTPD_DATA_H
#define POSTERN_SMTPD_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/buf.h"

enum smtpd_bare_lf {
	SMTPD_BARE_LF_NORMALIZE, /* "normalize"/"yes"/"note": bare LF ends a line */
	SMTPD_BARE_LF_REJECT,    /* "reject": the message is refused at its end */
	SMTPD_BARE_LF_ALLOW,     /* "no": like normalize, nothing noted. Still
	                          * never ends DATA on a bare-LF variant. */
};

/* main.cf smtpd_forbid_bare_newline word -> mode ("note" is normalize). */
enum smtpd_bare_lf smtpd_data_bare_lf_mode(const char *word);

enum smtpd_data_state {
	SMTPD_DS_BOL,    /* at the start of a line */
	SMTPD_DS_DOT,    /* line began with '.' (DATA only) */
	SMTPD_DS_DOT_CR, /* line is ".\r" so far */
	SMTPD_DS_MID,    /* inside a line */
	SMTPD_DS_CR,     /* inside a line, last byte was CR (held back) */
};

#define SMTPD_DATA_MSGID_MAX 256 /* longest Message-ID kept for the log */

struct smtpd_data {
	enum smtpd_data_state state; /* where in a line we are */
	enum smtpd_bare_lf bare_lf;  /* bare LF policy */
	bool bdat;                   /* BDAT content: no dot rules, no terminator */
	bool bol_after_crlf;         /* the previous line ended with a real CRLF */
	uint64_t size;               /* content bytes produced so far */
	uint64_t max_size;           /* message_size_limit minus what the caller
	                              * already wrote (0 = none) */
	bool too_big;                /* size passed max_size; output stopped */
	bool saw_bare_lf;            /* a bare LF was seen */
	bool saw_bare_cr;            /* a CR not followed by LF was seen */
	bool saw_nul;                /* a NUL byte was seen */
	/* header block */
	bool in_header;              /* still in the header block */
	bool hdr_msgid;              /* current header field is Message-ID */
	uint64_t header_bytes;       /* size of the header block so far */
	unsigned received;           /* Received: fields counted */
	char hline[SMTPD_DATA_MSGID_MAX + 16]; /* first bytes of the current header line */
	size_t hline_len;            /* bytes in hline */
	char msgid[SMTPD_DATA_MSGID_MAX + 1]; /* first Message-ID value, trimmed */
	size_t msgid_len;            /* bytes in msgid */
	bool msgid_done;             /* a Message-ID field was complete */
	/* header_size_limit: a logical header (a line and its folded
	 * continuation lines) is kept up to header_limit bytes, the folds
	 * counting one byte each as in Postfix; the excess is dropped */
	uint64_t header_limit;       /* 0: no limit */
	uint64_t hdr_len;            /* bytes of the current logical header kept */
	bool hdr_cut;                /* the current header reached the limit */
	bool line_drop;              /* the current line is dropped whole */
	bool header_truncated;       /* some header of this message was cut */
};

enum smtpd_data_result {
	SMTPD_DATA_MORE, /* all input consumed, more content expected */
	SMTPD_DATA_END,  /* end of DATA found; *used counts the terminator */
};

/* Start a message. max_size 0 means no limit. */
void smtpd_data_init(struct smtpd_data *d, enum smtpd_bare_lf mode, bool bdat, uint64_t max_size);

/* Cut header fields at limit bytes (header_size_limit; 0: none). Call
 * after smtpd_data_init, before the first feed. */
void smtpd_data_header_limit(struct smtpd_data *d, uint64_t limit);

/*
 * Consume input p[0..n). Content is appended to out (which must have room:
 * at most 2*n + 2 bytes are appended per call). Returns SMTPD_DATA_END with
 * *used = bytes consumed including ".\r\n" when the end of DATA was found,
 * else SMTPD_DATA_MORE with *used = n. In BDAT mode the result is always
 * MORE; call smtpd_data_finish at the end of the last chunk.
 */
enum smtpd_data_result smtpd_data_feed(struct smtpd_data *d, const char *p, size_t n,
				       struct buf *out, size_t *used);

/* End of BDAT LAST: flush a held-back CR into out. */
void smtpd_data_finish(struct smtpd_data *d, struct buf *out);

#endif
