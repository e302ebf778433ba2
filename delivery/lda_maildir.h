/*
 * lda_maildir.h - Dovecot-compatible Maildir delivery.
 *
 * Unique names "<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<vsize>" (size =
 * bytes on disk, vsize = size with CRLF line ends, both exact because
 * Dovecot trusts them for RFC822.SIZE and for reads). A message is written
 * to tmp/ (O_EXCL, 0600), fsynced, hard-linked into new/ (never replacing an
 * existing name), unlinked from tmp/, and new/ is fsynced. Folders use the
 * Maildir++ layout (".Folder" with a "maildirfolder" marker). Calls block
 * on the file system only.
 */
#ifndef POSTERN_LDA_MAILDIR_H
#define POSTERN_LDA_MAILDIR_H

#include <sys/time.h>

#include "delivery/lda_status.h"
#include "lib/buf.h"
#include "lib/common.h"

#define LDA_MAILDIR_NAME_MAX 512 /* room for any unique name we build */

/* Write host into out (at most outsz bytes, NUL-terminated) with '/' as
 * \057, ':' as \072, ',' as \054 and bytes outside printable ASCII or a
 * backslash as \ooo, so the name has no separator Dovecot or Maildir
 * readers would parse. Truncates at a whole escape. */
void lda_maildir_escape_host(const char *host, char *out, size_t outsz);

/* Virtual (RFC 822) size of p: n plus one for every LF without a CR before it. */
size_t lda_maildir_vsize(const char *p, size_t n);

/* Build the unique file name for a message of size/vsize bytes delivered at
 * tv by pid as its count'th attempt on host (already escaped). Returns 0, or
 * -1 when it does not fit outsz. */
int lda_maildir_name(char *out, size_t outsz, const struct timeval *tv, long pid, unsigned count,
		     const char *ehost, size_t size, size_t vsize);

/* Parse the ",S=<n>" field of a Maildir file name (before any ":2," info).
 * Returns true and *size_r when present and valid. */
bool lda_maildir_name_size(const char *name, uint64_t *size_r);

/* Open (creating with mode 0700 when missing) the maildir root and its
 * tmp/new/cur; for a folder other than INBOX also the Maildir++ folder
 * ".<folder>" with its subdirectories and "maildirfolder" marker. root must
 * be owned by uid and not a symlink. On success *rootfd_r and *boxfd_r are
 * owned descriptors (the same directory twice for INBOX, as two fds).
 * Returns 0 or -1 with st filled. */
int lda_maildir_open(const char *root, const char *folder, uid_t uid, int *rootfd_r, int *boxfd_r,
		     struct lda_status *st);

/* Store msg (already final bytes, LF line ends) in the maildir open at
 * boxfd (path for messages only). On success *name_r is the owned file name
 * in new/. On failure nothing is left in new/ and the tmp/ file is removed.
 * quota_tempfail chooses 4.2.2 or 5.2.2 for EDQUOT.
 * delivery_id (NULL normally) is "SEC.TOKEN" from the MTA: the name in new/
 * is then "<SEC>.D<TOKEN>.<host>,S=..,W=..", the same for every attempt of
 * that delivery, so a retry after a crash that hid the first attempt's
 * success finds its own earlier copy (link() gives EEXIST) instead of
 * storing a second one: *duplicate_r is set and 0 returned. (A reader that
 * already moved the copy to cur/ defeats this; the window is the MTA's
 * crash-and-retry time.) Returns 0 or -1. */
int lda_maildir_deliver(int boxfd, const char *path, struct str msg, bool quota_tempfail,
			const char *delivery_id, char **name_r, bool *duplicate_r,
			struct lda_status *st);
/* True when id has the form SEC.TOKEN (1-12 digits, '.', 1-64 of [A-Za-z0-9_]). */
bool lda_maildir_delivery_id_valid(const char *id);

#endif
