/*
 * master_submit.c - the local submission socket and its smtpd service.
 *
 * Purpose: bind $queue_directory/public/submit (SOCK_SEQPACKET, mode 0666,
 * in public/ 0755 owned by mail_owner) and add the "submit" service, so the
 * smtpd child that serves sendmail(1) is started, restarted, reloaded and
 * drained exactly like the master.cf services (mta/ipc/ipc_proto.h says
 * what it receives).
 * Owns: the socket file (replaced at start: the pid lock says no other
 * master uses it).
 * Never: reads from the socket (smtpd accepts on it); follows a symlink
 * planted in public/.
 * Tests: tests/integration/test_submit.py.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mta/master/master_int.h"
#include "lib/log.h"
#include "lib/common.h"

#define MASTER_SUBMIT_NAME "submit" /* service name and socket file name */

/* mkdir public/ (0755, mail_owner) and refuse anything but a directory */
static int master_submit_dir(const struct master *m, const char *dir, const char **error_r)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		*error_r = xasprintf("mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	struct stat st;
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		*error_r = xasprintf("%s: not a directory", dir);
		return -1;
	}
	if (m->root && (st.st_uid != m->owner_uid || st.st_gid != m->owner_gid) &&
	    chown(dir, m->owner_uid, m->owner_gid) < 0) {
		*error_r = xasprintf("chown %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((st.st_mode & 07777) != 0755 && chmod(dir, 0755) < 0) {
		*error_r = xasprintf("chmod %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int master_submit_listen(struct master *m, const char **error_r)
{
	char *dir = xasprintf("%s/public", m->cfg->queue_directory);
	if (master_submit_dir(m, dir, error_r) < 0) {
		free(dir);
		return -1;
	}
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", dir, MASTER_SUBMIT_NAME);
	free(dir);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		*error_r = xasprintf("%s/public/%s: path too long for a unix socket",
				     m->cfg->queue_directory, MASTER_SUBMIT_NAME);
		return -1;
	}
	/* a stale socket from an earlier run (or anything planted there) goes:
	 * unlink never follows a symlink */
	if (unlink(sun.sun_path) < 0 && errno != ENOENT) {
		*error_r = xasprintf("unlink %s: %s", sun.sun_path, strerror(errno));
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	/* umask-proof: bind with a restrictive umask, then open up the mode */
	mode_t old = umask(0077);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		*error_r = xasprintf("bind %s: %s", sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	if ((m->root && chown(sun.sun_path, m->owner_uid, m->owner_gid) < 0) ||
	    chmod(sun.sun_path, 0666) < 0) {
		*error_r = xasprintf("chmod/chown %s: %s", sun.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	/* the service: smtpd -n submit, no -o overrides, this one listener */
	m->svcs = xreallocarray(m->svcs, m->nsvc + 1, sizeof(*m->svcs));
	struct cfg_service *s = &m->svcs[m->nsvc];
	memset(s, 0, sizeof(*s));
	s->endpoint = xstrdup(MASTER_SUBMIT_NAME);
	s->command = xstrdup("smtpd");
	s->unpriv = true;
	s->maxproc = 1;
	m->submit_svc = m->nsvc;
	m->nsvc++;
	m->ls = xreallocarray(m->ls, m->nls + 1, sizeof(*m->ls));
	m->ls[m->nls].svc = m->submit_svc;
	m->ls[m->nls].fd = fd;
	m->nls++;
	return 0;
}
