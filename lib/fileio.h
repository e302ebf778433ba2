/*
 * fileio.h - reading a whole file at once, writing a whole buffer.
 *
 * One bounded reader for every file Postern reads whole: it refuses what is
 * not a regular file and anything larger than the caller's limit, so a
 * hostile or mistaken file cannot make a reader allocate without bound.
 */
#ifndef POSTERN_FILEIO_H
#define POSTERN_FILEIO_H

#include <dirent.h>

#include "lib/buf.h"

/*
 * Read the regular file path (relative to dirfd; AT_FDCWD for a plain path)
 * into out, which is initialised here with maximum max (the caller frees it,
 * also on failure). oflags adds open flags (O_NOFOLLOW for queue files).
 * Returns 0, or -1 with errno: from open/read, EISDIR for a directory,
 * EINVAL for another non-regular file, EFBIG when larger than max.
 * Blocks on the file read only.
 */
int file_read_all(int dirfd, const char *path, int oflags, size_t max, struct buf *out);

/* A whole text file (path, at most max bytes) as an owned NUL-terminated
 * string (*data_r; "" for an empty file) and its length. 0, or -1 with
 * errno as file_read_all (EFBIG when larger than max). */
int file_read_text(const char *path, size_t max, char **data_r, size_t *len_r);

/* opendir() for the directory name relative to dirfd ("." for dirfd
 * itself), opened read-only with O_DIRECTORY | O_CLOEXEC | oflags
 * (O_NOFOLLOW to refuse a symlink). Returns the stream (closedir() it), or
 * NULL with errno; no descriptor is left open then. */
DIR *file_opendir_at(int dirfd, const char *name, int oflags);

/* write() all n bytes of p to fd, retrying short writes and EINTR.
 * Returns 0, or -1 with errno. Blocks as the descriptor does. */
int file_write_all(int fd, const void *p, size_t n);

#endif
