/*
 * lda_path.c - names and directories postern-lda may touch.
 *
 * Purpose: refuse any name or path that could lead a delivery outside its
 *   mailbox (slashes, "..", control bytes, symbolic links, files owned by
 *   someone else, extra hard links: the classic mail-spool attacks).
 * Owns: nothing beyond the descriptors it returns.
 * Never: follows a symbolic link in the last component of a mailbox
 *   directory; accepts a ".." component in a target path.
 * Limits: LDA_NAME_MAX.
 * Tests: tests/unit/delivery/lda_path_test.c, tests/integration/test_lda.py
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "delivery/lda_path.h"
#include "lib/buf.h"
#include "lib/common.h"

static bool lda_path_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return true;
	return false;
}

bool lda_path_name_ok(const char *name)
{
	if (name == NULL || *name == '\0' || strlen(name) > LDA_NAME_MAX)
		return false;
	if (strcmp(name, ".") == 0 || strstr(name, "..") != NULL || strchr(name, '/') != NULL)
		return false;
	return !lda_path_has_control(name);
}

bool lda_path_folder_ok(const char *folder)
{
	if (!lda_path_name_ok(folder))
		return false;
	size_t n = strlen(folder);
	/* ".." is already refused, so no level can be empty inside the name */
	return folder[0] != '.' && folder[n - 1] != '.';
}

/* Decode one UTF-8 sequence at p (strict: no overlong forms, no
 * surrogates, at most U+10FFFF). Returns its length, or 0 when invalid. */
static size_t lda_path_utf8_next(const unsigned char *p, uint32_t *cp)
{
	size_t len;
	uint32_t c;
	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	} else if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

char *lda_path_folder_mutf7(const char *utf8)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
	const unsigned char *p = (const unsigned char *)utf8;
	struct buf out;
	size_t max;
	/* worst case: 4 UTF-8 bytes -> 2 UTF-16 units -> 6 base64 chars, plus "&-" */
	if (!size_mul(strlen(utf8), 4, &max) || !size_add(max, 16, &max))
		return NULL;
	buf_init(&out, max);
	while (*p != '\0') {
		if (*p >= 0x20 && *p < 0x7f) {
			if (buf_puts(&out, *p == '&' ? "&-" : (char[]){ (char)*p, '\0' }) < 0)
				goto fail;
			p++;
			continue;
		}
		/* a run of other characters: UTF-16BE in modified base64 */
		uint32_t bits = 0;
		int nbits = 0;
		if (buf_putc(&out, '&') < 0)
			goto fail;
		while (*p != '\0' && !(*p >= 0x20 && *p < 0x7f)) {
			uint32_t cp;
			size_t len = lda_path_utf8_next(p, &cp);
			if (len == 0)
				goto fail;
			p += len;
			uint16_t units[2];
			int n = 1;
			if (cp >= 0x10000) {
				cp -= 0x10000;
				units[0] = (uint16_t)(0xd800 | (cp >> 10));
				units[1] = (uint16_t)(0xdc00 | (cp & 0x3ff));
				n = 2;
			} else {
				units[0] = (uint16_t)cp;
			}
			for (int i = 0; i < n; i++) {
				bits = ((bits << 16) | units[i]) & 0x3fffff; /* < 6 + 16 bits kept */
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					if (buf_putc(&out, b64[(bits >> nbits) & 0x3f]) < 0)
						goto fail;
				}
			}
		}
		if (nbits > 0 && buf_putc(&out, b64[(bits << (6 - nbits)) & 0x3f]) < 0)
			goto fail;
		if (buf_putc(&out, '-') < 0)
			goto fail;
	}
	char *r = xstrdup(buf_cstr(&out));
	buf_free(&out);
	return r;
fail:
	buf_free(&out);
	return NULL;
}

bool lda_path_folder_is_inbox(const char *folder)
{
	return folder == NULL || *folder == '\0' || strcasecmp(folder, "INBOX") == 0;
}

bool lda_path_relative_ok(const char *rel)
{
	if (rel == NULL || *rel == '\0' || *rel == '/' || lda_path_has_control(rel))
		return false;
	const char *p = rel;
	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 0)
			return false; /* "a//b" */
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (slash == NULL)
			break;
		p = slash + 1; /* a trailing '/' ends the loop with *p == '\0' */
	}
	return true;
}

bool lda_path_target_ok(const char *path)
{
	if (path == NULL || *path == '\0' || lda_path_has_control(path))
		return false;
	const char *p = path;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return false;
		if (slash == NULL)
			return true;
		p = slash + 1;
	}
}

char *lda_path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir);
	if (n > 0 && dir[n - 1] == '/')
		return xasprintf("%s%s", dir, name);
	return xasprintf("%s/%s", dir, name);
}

int lda_path_check_stat(const struct stat *st, mode_t type, uid_t uid, const char *path,
			struct lda_status *st_r)
{
	if (S_ISLNK(st->st_mode))
		return lda_status_fail(st_r, EX_NOPERM, "5.7.1", "refusing symbolic link %s", path);
	if ((st->st_mode & S_IFMT) != type)
		return lda_status_fail(st_r, EX_NOPERM, "5.2.0", "%s is not a %s", path,
				type == S_IFDIR ? "directory" : "regular file");
	if (st->st_uid != uid)
		return lda_status_fail(st_r, EX_NOPERM, "5.7.1", "%s is owned by uid %lu, not by uid %lu",
				path, (unsigned long)st->st_uid, (unsigned long)uid);
	if (type == S_IFREG && st->st_nlink != 1)
		return lda_status_fail(st_r, EX_NOPERM, "5.7.1", "%s has %lu hard links", path,
				(unsigned long)st->st_nlink);
	return 0;
}

int lda_path_open_subdir(int dirfd, const char *name, const char *path, bool create, uid_t uid,
			 struct lda_status *st_r)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
			return lda_status_fail_errno(st_r, errno, true, path);
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		int err = errno;
		struct stat lst;
		/* O_NOFOLLOW|O_DIRECTORY on a symlink gives ELOOP or ENOTDIR: say so plainly */
		if (fstatat(dirfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(lst.st_mode))
			return lda_path_check_stat(&lst, S_IFDIR, uid, path, st_r);
		if (err == ENOENT)
			return lda_status_fail(st_r, EX_CANTCREAT, "5.2.0", "%s does not exist", path);
		return lda_status_fail_errno(st_r, err, true, path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int err = errno;
		close(fd);
		return lda_status_fail_errno(st_r, err, true, path);
	}
	if (lda_path_check_stat(&st, S_IFDIR, uid, path, st_r) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* mkdir -p for dir (mode 0700, as the running user), like Postfix's
 * make_dirs() before a maildir delivery. Existing components are used as
 * they are (an administrator's symlinked /home stays fine). */
static void lda_path_mkdirs(const char *dir)
{
	char *p = xstrdup(dir);
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		(void)mkdir(p, 0700); /* EEXIST and the rest: the final open tells */
		*s = '/';
	}
	(void)mkdir(p, 0700);
	free(p);
}

int lda_path_open_dir(const char *path, bool create, uid_t uid, struct lda_status *st_r)
{
	char *copy = xstrdup(path);
	size_t n = strlen(copy);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = '\0';
	char *slash = strrchr(copy, '/');
	const char *parent = ".";
	const char *name = copy;
	if (slash == copy) {
		parent = "/";
		name = copy + 1;
	} else if (slash != NULL) {
		*slash = '\0';
		parent = copy;
		name = slash + 1;
	}
	int fd = -1;
	int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0 && errno == ENOENT && create) {
		lda_path_mkdirs(parent);
		pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (pfd < 0) {
		int err = errno;
		if (err == ENOENT)
			lda_status_fail(st_r, EX_CANTCREAT, "5.2.0", "%s does not exist", parent);
		else
			lda_status_fail_errno(st_r, err, true, parent);
	} else {
		fd = lda_path_open_subdir(pfd, *name ? name : ".", path, create, uid, st_r);
		close(pfd);
	}
	free(copy);
	return fd;
}
