/*
 * lda_mbox.c - one message appended to an mbox file, whole or not at all.
 *
 * Purpose: safe mbox append (mailbox-formats.md §3, §4): refuse symlinks,
 *   hard links and foreign files; lock fcntl then dotlock with a bounded
 *   wait; remember the size; write; fsync; truncate back on any error.
 * Owns: the mbox and dotlock descriptors while delivering.
 * Never: waits for a lock longer than the timeout, leaves a partial message
 *   behind after an error it sees, follows a symlink for the mbox or lock.
 * Limits: lock_timeout (postern-lda -o lock_timeout=, default 300 s),
 *   LDA_MBOX_STALE_SECS for dotlocks of other programs.
 * Tests: tests/unit/delivery/lda_mbox_test.c, tests/integration/test_lda_mbox.py
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "delivery/lda_mbox.h"
#include "delivery/lda_path.h"
#include "lib/fileio.h"
#include "lib/common.h"

int lda_mbox_from_line(struct buf *out, const char *sender, time_t t)
{
	struct tm tm;
	char date[64];
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

	localtime_r(&t, &tm);
	/* asctime() layout, built by hand: asctime is locale-free but not reentrant */
	snprintf(date, sizeof(date), "%s %s %2d %02d:%02d:%02d %d", days[tm.tm_wday % 7],
		 months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 tm.tm_year + 1900);
	if (sender == NULL || *sender == '\0')
		sender = "MAILER-DAEMON";
	return buf_printf(out, "From %s %s\n", sender, date);
}

int lda_mbox_quote(struct buf *out, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *nl = memchr(p + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - p) + 1 : n;
		size_t j = i;
		while (j < end && p[j] == '>')
			j++;
		if (end - j >= 5 && memcmp(p + j, "From ", 5) == 0 && buf_putc(out, '>') < 0)
			return -1;
		if (buf_append(out, p + i, end - i) < 0)
			return -1;
		i = end;
	}
	if ((n == 0 || p[n - 1] != '\n') && buf_putc(out, '\n') < 0)
		return -1;
	return buf_putc(out, '\n');
}

bool lda_mbox_parse_lock(const char *p, size_t n, long *pid_r, uint64_t *size_r)
{
	size_t i = 0;
	uint64_t pid = 0, size = 0;
	if (i >= n || p[i] < '0' || p[i] > '9')
		return false;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		if (pid > 99999999)
			return false;
		pid = pid * 10 + (uint64_t)(p[i] - '0');
	}
	if (i >= n || p[i++] != ' ' || i >= n || p[i] < '0' || p[i] > '9')
		return false;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		if (size > (UINT64_MAX - 9) / 10)
			return false;
		size = size * 10 + (uint64_t)(p[i] - '0');
	}
	if (i + 1 != n || p[i] != '\n' || pid == 0)
		return false;
	*pid_r = (long)pid;
	*size_r = size;
	return true;
}

static volatile sig_atomic_t lda_mbox_alarm;

static void lda_mbox_on_alarm(int sig)
{
	(void)sig;
	lda_mbox_alarm = 1;
}

static double lda_mbox_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* fcntl write lock on the whole file, waiting at most secs. */
static int lda_mbox_fcntl_lock(int fd, unsigned secs, const char *path, struct lda_status *st)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = lda_mbox_on_alarm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: the alarm must interrupt F_SETLKW */
	sigaction(SIGALRM, &sa, &old);
	lda_mbox_alarm = 0;
	alarm(secs > 0 ? secs : 1);
	int r;
	do {
		r = fcntl(fd, F_SETLKW, &fl);
	} while (r < 0 && errno == EINTR && !lda_mbox_alarm);
	int err = errno;
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
	if (r == 0)
		return 0;
	if (err == EINTR)
		return lda_status_fail(st, EX_TEMPFAIL, "4.2.0", "timed out after %us locking %s", secs, path);
	return lda_status_fail(st, EX_TEMPFAIL, "4.2.0", "cannot lock %s: %s", path, strerror(err));
}

/* Read a dotlock's content (small) into out; -1 when it cannot be read. */
static ssize_t lda_mbox_read_lock(const char *lockpath, char *out, size_t outsz, struct stat *st_r)
{
	int fd = open(lockpath, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	ssize_t n = -1;
	if (fstat(fd, st_r) == 0 && S_ISREG(st_r->st_mode))
		n = read(fd, out, outsz);
	close(fd);
	return n;
}

/*
 * True when the bytes of fd after offset start (up to end) hold at most one
 * mbox message start: the partial append of one killed writer. If a program
 * that ignores dotlocks appended after it, a second "\n\nFrom " shows, and
 * cutting back would destroy that mail: then we leave the file alone. The
 * scan starts 2 bytes early so our own From_ line, preceded by the empty
 * line that ends the previous message, counts once.
 */
static bool lda_mbox_tail_is_one_append(int fd, off_t start, off_t end)
{
	static const char pat[] = "\n\nFrom ";
	const size_t plen = sizeof(pat) - 1;
	char chunk[65536];
	size_t keep = 0;
	unsigned found = 0;
	off_t off = start >= 2 ? start - 2 : 0;
	if (start == 0) {
		char head[5];
		if (pread(fd, head, sizeof(head), 0) == (ssize_t)sizeof(head) &&
		    memcmp(head, "From ", 5) == 0)
			found++;
	}
	while (off < end) {
		size_t want = sizeof(chunk) - keep;
		if ((off_t)want > end - off)
			want = (size_t)(end - off);
		ssize_t n = pread(fd, chunk + keep, want, off);
		if (n <= 0)
			return false;
		size_t len = keep + (size_t)n;
		/* a match needs plen bytes; kept bytes (< plen) are never matched twice */
		for (size_t k = 0; k + plen <= len; k++)
			if (memcmp(chunk + k, pat, plen) == 0 && ++found > 1)
				return false;
		off += n;
		keep = len < plen - 1 ? len : plen - 1;
		memmove(chunk, chunk + len - keep, keep);
	}
	return true;
}

/*
 * Take the dotlock, knowing we already hold the fcntl lock. Returns the lock
 * descriptor, -2 when the directory does not let us create one (then fcntl
 * alone protects the append, as with Postfix's mailbox_delivery_lock =
 * fcntl), or -1 with st filled. A lock left by a killed postern-lda (our
 * record format, our uid) tells how far to cut the mbox back.
 */
static int lda_mbox_dotlock(int mfd, const char *lockpath, uid_t uid, double deadline,
			    struct lda_status *st)
{
	unsigned backoff_ms = 5;
	for (;;) {
		int fd = open(lockpath, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		int err = errno;
		if (err == EACCES || err == EPERM || err == EROFS)
			return -2;
		if (err != EEXIST)
			return lda_status_fail_errno(st, err, true, lockpath);
		char content[64];
		struct stat lst;
		ssize_t n = lda_mbox_read_lock(lockpath, content, sizeof(content), &lst);
		long pid;
		uint64_t size;
		if (n > 0 && lst.st_uid == uid && lda_mbox_parse_lock(content, (size_t)n, &pid, &size)) {
			/* A live postern-lda holds the fcntl lock for as long as its
			 * dotlock exists, and we hold that lock now: the writer of
			 * this record died mid-append (its pid may even be reused). */
			struct stat mst;
			if (fstat(mfd, &mst) == 0 && (uint64_t)mst.st_size > size &&
			    size <= (uint64_t)INT64_MAX &&
			    lda_mbox_tail_is_one_append(mfd, (off_t)size, mst.st_size) &&
			    ftruncate(mfd, (off_t)size) == 0)
				fsync(mfd);
			if (unlink(lockpath) == 0 || errno == ENOENT)
				continue;
		} else if (n >= 0 && time(NULL) - lst.st_mtime > LDA_MBOX_STALE_SECS) {
			/* stale lock of some other program; if it cannot be
			 * removed, wait like for a live one (no busy loop) */
			if (unlink(lockpath) == 0 || errno == ENOENT)
				continue;
		}
		if (lda_mbox_now() >= deadline)
			return lda_status_fail(st, EX_TEMPFAIL, "4.2.0", "timed out waiting for %s",
					lockpath);
		struct timespec ts = { 0, (long)backoff_ms * 1000000L };
		nanosleep(&ts, NULL);
		if (backoff_ms < 200)
			backoff_ms *= 2;
	}
}

int lda_mbox_deliver(const char *path, struct str msg, const char *sender, uid_t uid,
		     unsigned lock_timeout, bool quota_tempfail, struct lda_status *st)
{
	struct stat before, st1, st2;
	bool existed = false;
	int fd = -1, lockfd = -1;
	char *lockpath = xasprintf("%s.lock", path);
	struct buf data;
	int ret = -1;
	double deadline = lda_mbox_now() + (double)(lock_timeout ? lock_timeout : 1);

	buf_init(&data, SIZE_MAX / 2);
	if (lstat(path, &before) == 0) {
		existed = true;
		if (lda_path_check_stat(&before, S_IFREG, uid, path, st) < 0)
			goto out;
	} else if (errno != ENOENT) {
		lda_status_fail_errno(st, errno, quota_tempfail, path);
		goto out;
	}
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == ENOENT)
			lda_status_fail(st, EX_CANTCREAT, "5.2.0", "cannot create %s: directory missing",
				 path);
		else
			lda_status_fail_errno(st, errno, quota_tempfail, path);
		goto out;
	}
	if (fstat(fd, &st1) < 0) {
		lda_status_fail_errno(st, errno, quota_tempfail, path);
		goto out;
	}
	if (lda_path_check_stat(&st1, S_IFREG, uid, path, st) < 0)
		goto out;
	if (existed && (st1.st_dev != before.st_dev || st1.st_ino != before.st_ino)) {
		lda_status_fail(st, EX_TEMPFAIL, "4.2.0", "%s was replaced while opening it", path);
		goto out;
	}
	if (lda_mbox_fcntl_lock(fd, lock_timeout, path, st) < 0)
		goto out;
	lockfd = lda_mbox_dotlock(fd, lockpath, uid, deadline, st);
	if (lockfd == -1)
		goto out;
	/* another program may have renamed or linked the file while we waited */
	if (fstat(fd, &st1) < 0 || lstat(path, &st2) < 0) {
		lda_status_fail_errno(st, errno, quota_tempfail, path);
		goto out;
	}
	if (st1.st_dev != st2.st_dev || st1.st_ino != st2.st_ino || st1.st_nlink != 1) {
		lda_status_fail(st, EX_TEMPFAIL, "4.2.0", "%s was replaced or linked during locking", path);
		goto out;
	}
	off_t size = st1.st_size;
	if (size > 0) {
		/* the next From_ line must follow an empty line */
		char tail[2] = { 0, 0 };
		off_t from = size >= 2 ? size - 2 : 0;
		ssize_t n = pread(fd, tail, (size_t)(size - from), from);
		if (n < 0) {
			lda_status_fail_errno(st, errno, quota_tempfail, path);
			goto out;
		}
		if (tail[n - 1] != '\n')
			buf_puts(&data, "\n\n");
		else if (n == 2 && tail[0] != '\n')
			buf_puts(&data, "\n");
	}
	if (lda_mbox_from_line(&data, sender, time(NULL)) < 0 ||
	    lda_mbox_quote(&data, msg.p, msg.len) < 0) {
		lda_status_fail(st, EX_DATAERR, "5.3.4", "message too large");
		goto out;
	}
	if (lockfd >= 0) {
		char rec[64];
		int k = snprintf(rec, sizeof(rec), "%ld %lld\n", (long)getpid(), (long long)size);
		if (file_write_all(lockfd, rec, (size_t)k) < 0) {
			lda_status_fail_errno(st, errno, quota_tempfail, lockpath);
			goto out;
		}
	}
	if (file_write_all(fd, data.data, data.len) < 0 || fsync(fd) < 0) {
		int err = errno;
		/* never leave a partial message (Postfix mail_copy does the same) */
		if (ftruncate(fd, size) == 0)
			fsync(fd);
		lda_status_fail_errno(st, err, quota_tempfail, path);
		goto out;
	}
	ret = 0;
out:
	if (lockfd >= 0) {
		unlink(lockpath);
		close(lockfd);
	}
	if (fd >= 0)
		close(fd); /* releases the fcntl lock */
	buf_free(&data);
	free(lockpath);
	return ret;
}
