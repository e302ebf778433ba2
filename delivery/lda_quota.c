/*
 * lda_quota.c - Maildir++ quota accounting (maildirsize).
 *
 * Purpose: refuse a delivery that would pass the mailbox's quota, keeping
 *   maildirsize the way Courier maildrop and Dovecot's maildir quota
 *   backend expect, so either can share the mailbox.
 * Owns: maildirsize rewrites (temp file in tmp/, renamed over).
 * Never: locks (Maildir++ appends with one O_APPEND write), follows a
 *   symlink, trusts a number without overflow checks.
 * Limits: LDA_QUOTA_FILE_MAX, LDA_QUOTA_RECALC_AGE.
 * Tests: tests/unit/delivery/lda_quota_test.c, tests/integration/test_lda_quota.py
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "delivery/lda_maildir.h"
#include "delivery/lda_quota.h"
#include "lib/fileio.h"
#include "lib/common.h"

/* Parse an unsigned decimal at *p (advancing it); false on no digit or overflow. */
static bool lda_quota_num(const char **p, const char *end, uint64_t *v)
{
	uint64_t n = 0;
	const char *s = *p;
	if (s >= end || *s < '0' || *s > '9')
		return false;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		uint64_t d = (uint64_t)(*s - '0');
		if (n > (UINT64_MAX - d) / 10)
			return false;
		n = n * 10 + d;
	}
	*p = s;
	*v = n;
	return true;
}

static bool lda_quota_snum(const char **p, const char *end, int64_t *v)
{
	bool neg = false;
	uint64_t u;
	if (*p < end && **p == '-') {
		neg = true;
		(*p)++;
	}
	if (!lda_quota_num(p, end, &u) || u > (uint64_t)INT64_MAX)
		return false;
	*v = neg ? -(int64_t)u : (int64_t)u;
	return true;
}

int lda_quota_parse_limit(struct str s, struct lda_quota_limit *lim)
{
	const char *p = s.p;
	const char *end = s.p + s.len;
	bool seen_s = false, seen_c = false;
	lim->bytes = 0;
	lim->count = 0;
	while (p < end) {
		uint64_t v;
		if (!lda_quota_num(&p, end, &v) || p >= end)
			return -1;
		if (*p == 'S' && !seen_s) {
			lim->bytes = v;
			seen_s = true;
		} else if (*p == 'C' && !seen_c) {
			lim->count = v;
			seen_c = true;
		} else {
			return -1;
		}
		p++;
		if (p < end && *p++ != ',')
			return -1;
		if (p == end && p[-1] == ',')
			return -1;
	}
	return 0;
}

int lda_quota_parse_file(struct str file, struct lda_quota_limit *lim, struct lda_quota_usage *use)
{
	const char *p = file.p;
	const char *end = file.p + file.len;
	const char *nl = memchr(p, '\n', file.len);
	if (file.len == 0 || nl == NULL)
		return -1;
	if (lda_quota_parse_limit((struct str){ p, (size_t)(nl - p) }, lim) < 0)
		return -1;
	use->bytes = 0;
	use->count = 0;
	use->lines = 0;
	p = nl + 1;
	while (p < end) {
		int64_t b, c;
		while (p < end && *p == ' ')
			p++;
		if (!lda_quota_snum(&p, end, &b) || p >= end || *p != ' ')
			return -1;
		while (p < end && *p == ' ')
			p++;
		if (!lda_quota_snum(&p, end, &c))
			return -1;
		while (p < end && *p == ' ')
			p++;
		if (p >= end || *p != '\n')
			return -1; /* a line without its LF is a torn append */
		p++;
		if (__builtin_add_overflow(use->bytes, b, &use->bytes) ||
		    __builtin_add_overflow(use->count, c, &use->count))
			return -1;
		use->lines++;
	}
	return 0;
}

bool lda_quota_exceeds(const struct lda_quota_limit *lim, const struct lda_quota_usage *use,
		       uint64_t size)
{
	if (lim->bytes > 0) {
		uint64_t used = use->bytes > 0 ? (uint64_t)use->bytes : 0;
		if (used > lim->bytes || size > lim->bytes - used)
			return true;
	}
	if (lim->count > 0) {
		uint64_t n = use->count > 0 ? (uint64_t)use->count : 0;
		if (n >= lim->count)
			return true;
	}
	return false;
}

void lda_quota_format_limit(const struct lda_quota_limit *lim, char *out, size_t outsz)
{
	if (lim->bytes > 0 && lim->count > 0)
		snprintf(out, outsz, "%lluS,%lluC", (unsigned long long)lim->bytes,
			 (unsigned long long)lim->count);
	else if (lim->count > 0)
		snprintf(out, outsz, "%lluC", (unsigned long long)lim->count);
	else
		snprintf(out, outsz, "%lluS", (unsigned long long)lim->bytes);
}

/* Add the messages of one new/ or cur/ directory to use. */
static void lda_quota_scan_dir(int parent, const char *name, struct lda_quota_usage *use)
{
	DIR *d = file_opendir_at(parent, name, O_NOFOLLOW);
	if (d == NULL)
		return;
	int fd = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		uint64_t size;
		struct stat st;
		if (!lda_maildir_name_size(e->d_name, &size)) {
			if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
				continue;
			size = (uint64_t)st.st_size;
		}
		use->bytes += (int64_t)size;
		use->count++;
	}
	closedir(d);
}

/* Full scan: the inbox and every Maildir++ folder (".Name" directories). */
static void lda_quota_scan(int rootfd, struct lda_quota_usage *use)
{
	memset(use, 0, sizeof(*use));
	lda_quota_scan_dir(rootfd, "new", use);
	lda_quota_scan_dir(rootfd, "cur", use);
	DIR *d = file_opendir_at(rootfd, ".", 0);
	if (d == NULL)
		return;
	int fd = dirfd(d);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.' || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		lda_quota_scan_dir(sub, "new", use);
		lda_quota_scan_dir(sub, "cur", use);
		close(sub);
	}
	closedir(d);
}

/* Write a fresh maildirsize (limit line + totals) through tmp/ and rename(). */
static void lda_quota_rewrite(int rootfd, const struct lda_quota_limit *lim,
			      const struct lda_quota_usage *use)
{
	char line[128], content[256], tmpname[128];
	struct timeval tv;
	lda_quota_format_limit(lim, line, sizeof(line));
	int n = snprintf(content, sizeof(content), "%s\n%lld %lld\n", line, (long long)use->bytes,
			 (long long)use->count);
	gettimeofday(&tv, NULL);
	snprintf(tmpname, sizeof(tmpname), "tmp/%lld.M%ldP%ld.maildirsize", (long long)tv.tv_sec,
		 (long)tv.tv_usec, (long)getpid());
	int fd = openat(rootfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	bool ok = write(fd, content, (size_t)n) == n && fsync(fd) == 0;
	if (close(fd) < 0)
		ok = false;
	if (!ok || renameat(rootfd, tmpname, rootfd, "maildirsize") < 0)
		unlinkat(rootfd, tmpname, 0);
}

int lda_quota_check(int rootfd, const char *path, const struct lda_quota_limit *override,
		    uint64_t size, bool tempfail, bool *active_r, struct lda_status *st)
{
	char content[LDA_QUOTA_FILE_MAX + 1];
	ssize_t n = -1;
	struct stat fst;
	struct lda_quota_limit lim = { 0, 0 }, flim = { 0, 0 };
	struct lda_quota_usage use = { 0, 0, 0 };
	bool parsed = false;

	*active_r = false;
	int fd = openat(rootfd, "maildirsize", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		if (fstat(fd, &fst) == 0 && S_ISREG(fst.st_mode))
			n = read(fd, content, sizeof(content));
		close(fd);
	}
	bool have_flim = false;
	if (n >= 0 && (size_t)n < LDA_QUOTA_FILE_MAX &&
	    lda_quota_parse_file((struct str){ content, (size_t)n }, &flim, &use) == 0) {
		parsed = true;
		have_flim = true;
	} else if (n > 0) {
		/* too long or with a bad data line: its limit line still counts */
		const char *nl = memchr(content, '\n', (size_t)n);
		if (nl != NULL && lda_quota_parse_limit((struct str){ content, (size_t)(nl - content) },
						  &flim) == 0)
			have_flim = true;
	}
	if (override != NULL)
		lim = *override;
	else if (have_flim)
		lim = flim;
	if (lim.bytes == 0 && lim.count == 0)
		return 0; /* no limit known: nothing to enforce, nothing to create */
	*active_r = true;
	bool limit_changed = have_flim && (flim.bytes != lim.bytes || flim.count != lim.count);
	bool recalc = !parsed || limit_changed;
	if (!recalc && lda_quota_exceeds(&lim, &use, size) &&
	    (use.lines > 1 || time(NULL) - fst.st_mtime > LDA_QUOTA_RECALC_AGE))
		recalc = true;
	if (recalc) {
		lda_quota_scan(rootfd, &use);
		lda_quota_rewrite(rootfd, &lim, &use);
	}
	if (lda_quota_exceeds(&lim, &use, size)) {
		char l[64];
		lda_quota_format_limit(&lim, l, sizeof(l));
		if (tempfail)
			return lda_status_fail(st, EX_TEMPFAIL, "4.2.2",
					"mailbox %s is over quota (%lld octets in %lld messages, limit %s)",
					path, (long long)use.bytes, (long long)use.count, l);
		return lda_status_fail(st, EX_NOPERM, "5.2.2",
				"mailbox %s is over quota (%lld octets in %lld messages, limit %s)",
				path, (long long)use.bytes, (long long)use.count, l);
	}
	return 0;
}

void lda_quota_add(int rootfd, uint64_t size)
{
	char line[64];
	int fd = openat(rootfd, "maildirsize", O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	int n = snprintf(line, sizeof(line), "%llu 1\n", (unsigned long long)size);
	ssize_t w = write(fd, line, (size_t)n);
	(void)w; /* a lost line is repaired by the next recalculation */
	close(fd);
}
