/*
 * fileio.c - bounded whole-file reads (see fileio.h).
 *
 * Owns: nothing past the call. Never: reads more than max bytes, follows
 * into a non-regular file. Tests: tests/unit/lib/fileio_test.c.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fileio.h"
#include "lib/common.h"

int file_read_all(int dirfd, const char *path, int oflags, size_t max, struct buf *out)
{
	buf_init(out, max);
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | oflags);
	if (fd < 0)
		return -1;
	struct stat st;
	int err = 0;
	if (fstat(fd, &st) < 0)
		err = errno;
	else if (!S_ISREG(st.st_mode))
		err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
	else if ((uintmax_t)st.st_size > max)
		err = EFBIG;
	char chunk[65536];
	while (err == 0) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = errno;
		else if (n == 0)
			break;
		else if (buf_append(out, chunk, (size_t)n) < 0)
			err = EFBIG; /* it grew while we read */
	}
	close(fd);
	if (err != 0) {
		buf_free(out);
		errno = err;
		return -1;
	}
	return 0;
}

int file_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

DIR *file_opendir_at(int dirfd, const char *name, int oflags)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | oflags);
	if (fd < 0)
		return NULL;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return d;
}

int file_read_text(const char *path, size_t max, char **data_r, size_t *len_r)
{
	struct buf b;
	if (file_read_all(AT_FDCWD, path, 0, max, &b) < 0)
		return -1;
	*len_r = b.len;
	*data_r = b.data ? b.data : xstrdup("");
	return 0;
}
