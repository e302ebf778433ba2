/*
 * lda_main.h - postern-lda's command line, as parsed by lda_main.c.
 *
 * dovecot-lda's flags (-d -f -a -r -m -e -c -o -p -k) plus the explicit
 * targets --maildir DIR and --mbox FILE. The -o names that belong to
 * postern-lda itself (not to main.cf) are listed in lda_main_own_params.
 */
#ifndef POSTERN_LDA_MAIN_H
#define POSTERN_LDA_MAIN_H

#include "delivery/lda_quota.h"
#include "lib/common.h"

#define LDA_LOCK_TIMEOUT_DEFAULT 300 /* seconds, as Dovecot's mbox_lock_timeout */
#define LDA_MESSAGE_MAX ((size_t)1 << 30) /* hard cap on the message read from stdin */

/* Every pointer is borrowed from argv. */
struct lda_options {
	const char *user;        /* -d; NULL = the running user */
	const char *sender;      /* -f; NULL = from a leading From_ line */
	const char *orig_rcpt;   /* -a */
	const char *final_rcpt;  /* -r */
	const char *folder;      /* -m; NULL = INBOX */
	const char *confdir;     /* -c; NULL = /etc/postern */
	const char *input;       /* -p FILE instead of stdin */
	const char *maildir;     /* --maildir */
	const char *mbox;        /* --mbox */
	const char *delivery_id; /* --delivery-id SEC.TOKEN: Maildir name fixed by the caller */
	bool have_quota;         /* -o maildir_quota= given */
	struct lda_quota_limit quota; /* its value */
	bool quota_tempfail;     /* -o quota_full_tempfail= (default yes) */
	unsigned lock_timeout;   /* -o lock_timeout= seconds */
};

#endif
