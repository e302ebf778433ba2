/*
 * lda_headers.h - reading the message and the headers postern-lda adds.
 *
 * The message arrives on a descriptor (stdin) and is kept in memory. Before
 * it is stored, a leading mbox "From " envelope line is taken off (its
 * sender is used when -f is absent), CRLF becomes LF (bare CR, NUL bytes and
 * long lines are kept as given), the Delivered-To loop check runs, and
 * Return-Path / X-Original-To / Delivered-To are prepended (RFC 5321 4.4,
 * Postfix local(8) order). Pure functions except lda_headers_read.
 */
#ifndef POSTERN_LDA_HEADERS_H
#define POSTERN_LDA_HEADERS_H

#include "delivery/lda_status.h"
#include "lib/buf.h"
#include "lib/common.h"

/* Envelope of one delivery; every pointer is borrowed. */
struct lda_headers_env {
	const char *sender;     /* -f; "" or "<>" = null sender; NULL = unknown */
	const char *orig_rcpt;  /* -a, or NULL */
	const char *final_rcpt; /* address for Delivered-To and the loop check */
};

/* What lda_headers_prepare learned about the input. */
struct lda_headers_info {
	char *from_sender;      /* owned: sender of a leading "From " line, or NULL */
	bool caller_return_path; /* the caller already prepended Return-Path */
	bool caller_delivered;   /* ... and Delivered-To for final_rcpt */
};

/* Read everything from fd into raw (max bytes at most). Returns 0, or -1
 * with st filled: 5.3.4 EX_DATAERR when max is passed, 4.3.0 EX_TEMPFAIL on
 * a read error. Blocks until EOF. */
int lda_headers_read(int fd, struct buf *raw, size_t max, struct lda_status *st);

/* Append n bytes to out with every CRLF written as LF. Returns as buf_append. */
int lda_headers_crlf_to_lf(struct buf *out, const char *p, size_t n);

/* True when addr holds no control byte and is at most 998 octets: safe to
 * write into a header or a From_ line. */
bool lda_headers_addr_ok(const char *addr);

/* Strip one pair of enclosing angle brackets and surrounding blanks: the
 * owned result is the bare address ("" for "<>"). */
char *lda_headers_bare_addr(const char *addr);

/* Build in out (appending) the message to store: added headers, then the
 * input (From_ line removed, CRLF -> LF). info receives what was found.
 * Returns 0, or -1 with st filled: 5.4.6 EX_DATAERR for a Delivered-To loop,
 * 5.3.4 EX_DATAERR when out's maximum is passed. */
int lda_headers_prepare(struct str input, const struct lda_headers_env *env, struct buf *out,
			struct lda_headers_info *info, struct lda_status *st);

/* Release what info owns. */
void lda_headers_info_free(struct lda_headers_info *info);

#endif
