/*
 * table_unix.c - unix:passwd.byname, the local user database as a table.
 *
 * Purpose: let local_recipient_maps say "unix:passwd.byname $alias_maps" as
 * in Postfix: the key is a user name, the value the passwd line.
 * Owns: nothing beyond the table struct.
 * Never: caches entries (getpwnam each time, so new users are seen).
 * Tests: tests/unit/lib/table_test.c.
 */
#include <pwd.h>

#include "lib/table.h"
#include "lib/table_int.h"
#include "lib/common.h"

static int unix_open(struct table *t, const char *name, const char **error_r)
{
	if (strcmp(name, "passwd.byname") != 0) {
		*error_r = table_error_set("%.200s: unknown unix: table (only unix:passwd.byname)", t->spec);
		return -1;
	}
	return 0;
}

static int unix_lookup(struct table *t, const char *key, char **value_r, const char **error_r)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	errno = 0;
	int rc = getpwnam_r(key, &pw, buf, sizeof(buf), &res);
	if (res == NULL) {
		if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
			return 0;
		*error_r = table_error_set("getpwnam(%.100s): %s", key, strerror(rc));
		return -1;
	}
	*value_r = xasprintf("%s:%s:%ld:%ld:%s:%s:%s", pw.pw_name, pw.pw_passwd, (long)pw.pw_uid,
			     (long)pw.pw_gid, pw.pw_gecos ? pw.pw_gecos : "", pw.pw_dir, pw.pw_shell);
	return 1;
}

static void unix_close(struct table *t)
{
}

const struct table_ops table_unix_ops = { "unix", true, unix_open, unix_lookup, unix_close };
