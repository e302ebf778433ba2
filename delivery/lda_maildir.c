/*
 * lda_maildir.c - one message into a Maildir, the way Dovecot reads it.
 *
 * Purpose: crash-safe Maildir delivery (tmp/ -> fsync -> link into new/ ->
 *   fsync new/) with names carrying exact ,S= and ,W= sizes.
 * Owns: the descriptors it opens; the tmp/ file until it is linked.
 * Never: follows a symlink inside the maildir, replaces an existing file in
 *   new/, leaves a partial message in new/, writes dovecot-uidlist or indexes.
 * Limits: LDA_MAILDIR_NAME_MAX; 20 attempts to find a free unique name.
 * Tests: tests/unit/delivery/lda_maildir_test.c, tests/integration/test_lda.py,
 *   tests/interop/test_lda_dovecot.py
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <sys/time.h>
#include <unistd.h>

#include "delivery/lda_maildir.h"
#include "delivery/lda_path.h"
#include "lib/fileio.h"
#include "lib/common.h"

#define LDA_MAILDIR_ATTEMPTS 20

void lda_maildir_escape_host(const char *host, char *out, size_t outsz)
{
	size_t o = 0;
	CHECK(outsz > 0);
	for (const unsigned char *p = (const unsigned char *)host; *p != '\0'; p++) {
		char tmp[5];
		size_t k;
		if (*p == '/' || *p == ':' || *p == ',' || *p == '\\' || *p < 0x21 || *p >= 0x7f)
			k = (size_t)snprintf(tmp, sizeof(tmp), "\\%03o", *p);
		else {
			tmp[0] = (char)*p;
			k = 1;
		}
		if (o + k >= outsz)
			break;
		memcpy(out + o, tmp, k);
		o += k;
	}
	out[o] = '\0';
}

size_t lda_maildir_vsize(const char *p, size_t n)
{
	size_t v = n;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			v++;
	return v;
}

int lda_maildir_name(char *out, size_t outsz, const struct timeval *tv, long pid, unsigned count,
		     const char *ehost, size_t size, size_t vsize)
{
	int n = snprintf(out, outsz, "%lld.M%ldP%ldQ%u.%s,S=%zu,W=%zu", (long long)tv->tv_sec,
			 (long)tv->tv_usec, pid, count, ehost, size, vsize);
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

bool lda_maildir_name_size(const char *name, uint64_t *size_r)
{
	const char *info = strchr(name, ':');
	size_t n = info ? (size_t)(info - name) : strlen(name);
	for (size_t i = 0; i + 3 <= n; i++) {
		if (name[i] != ',' || name[i + 1] != 'S' || name[i + 2] != '=')
			continue;
		uint64_t v = 0;
		size_t j = i + 3;
		if (j >= n || name[j] < '0' || name[j] > '9')
			return false;
		for (; j < n && name[j] >= '0' && name[j] <= '9'; j++) {
			if (v > (UINT64_MAX - 9) / 10)
				return false;
			v = v * 10 + (uint64_t)(name[j] - '0');
		}
		if (j < n && name[j] != ',')
			return false;
		*size_r = v;
		return true;
	}
	return false;
}

/* tmp/, new/ and cur/ inside the open maildir dirfd. */
static int lda_maildir_subdirs(int dirfd, const char *path, uid_t uid, struct lda_status *st)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
		char *p = lda_path_join(path, subs[i]);
		int fd = lda_path_open_subdir(dirfd, subs[i], p, true, uid, st);
		free(p);
		if (fd < 0)
			return -1;
		close(fd);
	}
	return 0;
}

int lda_maildir_open(const char *root, const char *folder, uid_t uid, int *rootfd_r, int *boxfd_r,
		     struct lda_status *st)
{
	int rootfd = lda_path_open_dir(root, true, uid, st);
	if (rootfd < 0)
		return -1;
	if (lda_maildir_subdirs(rootfd, root, uid, st) < 0)
		goto fail_root;
	int boxfd;
	if (lda_path_folder_is_inbox(folder)) {
		boxfd = dup(rootfd);
		if (boxfd < 0) {
			lda_status_fail_errno(st, errno, true, root);
			goto fail_root;
		}
	} else {
		/* Maildir++: INBOX's subfolder "a.b" is the directory ".a.b" */
		char *dot = xasprintf(".%s", folder);
		char *path = lda_path_join(root, dot);
		boxfd = lda_path_open_subdir(rootfd, dot, path, true, uid, st);
		int ok = boxfd >= 0 ? lda_maildir_subdirs(boxfd, path, uid, st) : -1;
		if (ok == 0) {
			int m = openat(boxfd, "maildirfolder",
				       O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (m < 0) {
				char *mp = lda_path_join(path, "maildirfolder");
				ok = lda_status_fail_errno(st, errno, true, mp);
				free(mp);
			} else {
				close(m);
			}
		}
		free(dot);
		free(path);
		if (ok < 0) {
			if (boxfd >= 0)
				close(boxfd);
			goto fail_root;
		}
	}
	*rootfd_r = rootfd;
	*boxfd_r = boxfd;
	return 0;
fail_root:
	close(rootfd);
	return -1;
}

bool lda_maildir_delivery_id_valid(const char *id)
{
	size_t i = 0, digits, token;
	while (id[i] >= '0' && id[i] <= '9')
		i++;
	digits = i;
	if (digits < 1 || digits > 12 || id[i] != '.')
		return false;
	i++;
	token = 0;
	for (; id[i] != '\0'; i++, token++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'Z') ||
		      (id[i] >= 'a' && id[i] <= 'z') || id[i] == '_'))
			return false;
	return token >= 1 && token <= 64;
}

/* Whether /proc/self/fd names our descriptors: linking an O_TMPFILE file
 * without privileges goes through it. */
static bool lda_maildir_proc_fd_ok(void)
{
	static int ok = -1;
	if (ok < 0) {
		struct stat st;
		ok = stat("/proc/self/fd", &st) == 0 && S_ISDIR(st.st_mode);
	}
	return ok == 1;
}

/* Close the tmp/ file and remove its name, if it has one. */
static void lda_maildir_drop_tmp(int tmpfd, int *fd, const char *name)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	if (name != NULL)
		unlinkat(tmpfd, name, 0);
}

int lda_maildir_deliver(int boxfd, const char *path, struct str msg, bool quota_tempfail,
			const char *delivery_id, char **name_r, bool *duplicate_r,
			struct lda_status *st)
{
	static unsigned deliveries; /* Q<n>: attempts by this process */
	char host[256];
	char ehost[256];
	char name[LDA_MAILDIR_NAME_MAX];
	int tmpfd = -1, newfd = -1, fd = -1;
	int ret = -1;

	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	lda_maildir_escape_host(host, ehost, sizeof(ehost));
	size_t vsize = lda_maildir_vsize(msg.p, msg.len);

	char *tmppath = lda_path_join(path, "tmp");
	char *newpath = lda_path_join(path, "new");
	tmpfd = openat(boxfd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tmpfd < 0) {
		lda_status_fail_errno(st, errno, quota_tempfail, tmppath);
		goto out;
	}
	newfd = openat(boxfd, "new", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (newfd < 0) {
		lda_status_fail_errno(st, errno, quota_tempfail, newpath);
		goto out;
	}
	/* 1. an unnamed file in tmp/ (O_TMPFILE: no tmp/ entry to create and
	 * remove, and a crash leaves nothing behind), or else a fresh name */
	bool unnamed = lda_maildir_proc_fd_ok();
	if (unnamed) {
		fd = openat(tmpfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
		unnamed = fd >= 0;
	}
	for (int attempt = 0; !unnamed; attempt++) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		if (lda_maildir_name(name, sizeof(name), &tv, (long)getpid(), ++deliveries, ehost,
				     msg.len, vsize) < 0) {
			lda_status_fail(st, EX_SOFTWARE, "5.3.0", "maildir file name too long");
			goto out;
		}
		fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST || attempt >= LDA_MAILDIR_ATTEMPTS) {
			lda_status_fail_errno(st, errno, quota_tempfail, tmppath);
			goto out;
		}
	}
	/* 2. the whole message, on disk before it becomes visible */
	if (file_write_all(fd, msg.p, msg.len) < 0 || fsync(fd) < 0) {
		int err = errno;
		lda_maildir_drop_tmp(tmpfd, &fd, unnamed ? NULL : name);
		lda_status_fail_errno(st, err, quota_tempfail, tmppath);
		goto out;
	}
	/* 3. link into new/ under a name nobody has; link() never replaces */
	char final[LDA_MAILDIR_NAME_MAX];
	*duplicate_r = false;
	if (delivery_id != NULL) {
		const char *dot = strchr(delivery_id, '.');
		int n = snprintf(final, sizeof(final), "%.*s.D%s.%s,S=%zu,W=%zu",
				 (int)(dot - delivery_id), delivery_id, dot + 1, ehost, msg.len, vsize);
		if (n < 0 || (size_t)n >= sizeof(final)) {
			lda_maildir_drop_tmp(tmpfd, &fd, unnamed ? NULL : name);
			lda_status_fail(st, EX_SOFTWARE, "5.3.0", "maildir file name too long");
			goto out;
		}
	} else if (unnamed) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		if (lda_maildir_name(final, sizeof(final), &tv, (long)getpid(), ++deliveries, ehost,
				     msg.len, vsize) < 0) {
			lda_maildir_drop_tmp(tmpfd, &fd, NULL);
			lda_status_fail(st, EX_SOFTWARE, "5.3.0", "maildir file name too long");
			goto out;
		}
	} else {
		memcpy(final, name, sizeof(final));
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (int attempt = 0;; attempt++) {
		if (unnamed ? linkat(AT_FDCWD, proc, newfd, final, AT_SYMLINK_FOLLOW) == 0
			    : linkat(tmpfd, name, newfd, final, 0) == 0)
			break;
		int err = errno;
		if (err == EEXIST && delivery_id != NULL) {
			/* this very delivery already succeeded once */
			*duplicate_r = true;
			break;
		}
		if (err == EEXIST && attempt < LDA_MAILDIR_ATTEMPTS) {
			struct timeval tv;
			gettimeofday(&tv, NULL);
			if (lda_maildir_name(final, sizeof(final), &tv, (long)getpid(), ++deliveries,
					     ehost, msg.len, vsize) == 0)
				continue;
		}
		lda_maildir_drop_tmp(tmpfd, &fd, unnamed ? NULL : name);
		lda_status_fail_errno(st, err, quota_tempfail, newpath);
		goto out;
	}
	lda_maildir_drop_tmp(tmpfd, &fd, unnamed ? NULL : name);
	/* 4. the directory entry itself must survive a crash */
	if (fsync(newfd) < 0) {
		int err = errno;
		unlinkat(newfd, final, 0);
		lda_status_fail_errno(st, err, quota_tempfail, newpath);
		goto out;
	}
	*name_r = xstrdup(final);
	ret = 0;
out:
	if (tmpfd >= 0)
		close(tmpfd);
	if (newfd >= 0)
		close(newfd);
	free(tmppath);
	free(newpath);
	return ret;
}
