/*
 * lda_path.h - name and path checks that keep postern-lda inside its target.
 *
 * Every user name, folder name and configured mailbox path passes through
 * here before it becomes part of a path, and every mailbox directory or file
 * is opened through here (O_NOFOLLOW, owner and link-count checks). Pure
 * functions except the lda_path_open_* calls, which do system calls and
 * never block on anything but the file system.
 */
#ifndef POSTERN_LDA_PATH_H
#define POSTERN_LDA_PATH_H

#include <sys/stat.h>

#include "delivery/lda_status.h"
#include "lib/common.h"

#define LDA_NAME_MAX 255 /* longest user or folder name accepted */

/* True when name may be used as a user name or one path component: not
 * empty, at most LDA_NAME_MAX bytes, no '/', no "..", not ".", no control
 * bytes (< 0x20 or 0x7f). */
bool lda_path_name_ok(const char *name);

/* True when folder is an acceptable Maildir++ folder name for -m: a valid
 * name (lda_path_name_ok) that does not start or end with '.' (the Maildir++
 * hierarchy separator) and has no empty level. */
bool lda_path_folder_ok(const char *folder);

/* The on-disk form of a folder name given in UTF-8 (as dovecot-lda's -m
 * takes it): IMAP modified UTF-7 (RFC 3501 5.1.3), which Dovecot uses for
 * Maildir++ folder directories. Printable ASCII stays as is except '&'
 * ("&-"); the result never holds '/' or a '.' that was not in the input.
 * Returns an owned string, or NULL when utf8 is not valid UTF-8. */
char *lda_path_folder_mutf7(const char *utf8);

/* True when folder names the inbox ("INBOX" in any case, or ""). */
bool lda_path_folder_is_inbox(const char *folder);

/* True when rel is a safe relative path below a home directory (main.cf
 * home_mailbox): not absolute, no "." or ".." component, no control bytes,
 * no empty component except a trailing '/'. */
bool lda_path_relative_ok(const char *rel);

/* True when path (an explicit --maildir / --mbox target, which callers
 * often build from an address) has no ".." component and no control
 * bytes, so "/srv/mail/${user}" cannot climb out of /srv/mail. */
bool lda_path_target_ok(const char *path);

/* Owned "dir/name" (one '/' between them). */
char *lda_path_join(const char *dir, const char *name);

/* Check that st describes something postern-lda may write into as the
 * running user: the type given (S_IFDIR or S_IFREG), owned by uid, and for
 * regular files exactly one hard link. Returns 0, or -1 with st_r filled
 * (EX_NOPERM 5.2.0 / 5.7.1) naming path. */
int lda_path_check_stat(const struct stat *st, mode_t type, uid_t uid, const char *path,
			struct lda_status *st_r);

/* Open directory path (last component not followed if it is a symlink),
 * creating it with mode 0700 when missing and create is true; then check
 * owner (lda_path_check_stat). Returns the descriptor (O_DIRECTORY,
 * O_CLOEXEC), or -1 with st_r filled. With create, missing parent
 * directories are made too (mode 0700), as Postfix does for maildirs. */
int lda_path_open_dir(const char *path, bool create, uid_t uid, struct lda_status *st_r);

/* As lda_path_open_dir, for name inside the already opened directory dirfd
 * (path is only used in messages). */
int lda_path_open_subdir(int dirfd, const char *name, const char *path, bool create, uid_t uid,
			 struct lda_status *st_r);

#endif
