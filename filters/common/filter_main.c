/*
 * filter_main.c - command line, config, privileges and the milter loop.
 *
 * Purpose: the start-up every Postern milter shares (see filter_main.h).
 * Owns: filter_common, the pid file. Never: keeps root after the socket is
 * open; runs as root unless UserID says so (started as root without UserID
 * it refuses to start); lets libmilter stop the filter on SIGHUP when the
 * filter can reload (sigwait below).
 * Tests: tests/unit/filters/filter_main_test.c; tests/interop/test_filter_*.py
 * run the programs with -t, -V and real sockets.
 */
#include <arpa/inet.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "filters/common/filter_main.h"
#include "lib/log.h"
#include "lib/common.h"

struct filter_common filter_common;

const char *const filter_common_keys[] = {
	"Socket", "UserID", "UMask", "LogFile", "PidFile", "Nameservers",
	"DNSTimeout", "AuthservID", "InternalHosts", NULL,
};

static __thread char main_error[512];
static void (*main_reload)(void); /* the filter's SIGHUP hook, or NULL */

/*
 * libmilter's signal thread blocks SIGHUP, SIGTERM and SIGINT and sigwait()s
 * for them, and stops the milter on any of the three: it has no reload
 * hook. This definition stands in for libc's sigwait (the program's own
 * symbols come first in dynamic lookup, so libmilter.so calls this one);
 * it is the same call, except that SIGHUP runs the filter's reload hook in
 * that thread and the wait goes on. Nothing else in the filters calls
 * sigwait.
 */
int sigwait(const sigset_t *set, int *sig)
{
	for (;;) {
		int s = sigwaitinfo(set, NULL);
		if (s < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (s == SIGHUP && main_reload != NULL) {
			main_reload();
			continue;
		}
		*sig = s;
		return 0;
	}
}

bool filter_socket_ok(const char *spec)
{
	if (spec == NULL || *spec == '\0')
		return false;
	if (spec[0] == '/')
		return true;
	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		const char *p = strchr(spec, ':') + 1;
		return p[0] == '/' && p[1] != '\0';
	}
	bool v6 = strncmp(spec, "inet6:", 6) == 0;
	if (!v6 && strncmp(spec, "inet:", 5) != 0)
		return false;
	const char *p = spec + (v6 ? 6 : 5);
	char *end;
	if (*p < '0' || *p > '9')
		return false;
	unsigned long port = strtoul(p, &end, 10);
	if (port == 0 || port > 65535)
		return false;
	if (*end == '\0')
		return true; /* all interfaces */
	if (*end != '@' || end[1] == '\0')
		return false;
	const char *host = end + 1;
	unsigned char a[16];
	if (host[0] == '[') {
		size_t n = strlen(host);
		if (n < 3 || host[n - 1] != ']' || n - 2 >= INET6_ADDRSTRLEN)
			return false;
		char h[INET6_ADDRSTRLEN];
		memcpy(h, host + 1, n - 2);
		h[n - 2] = '\0';
		return inet_pton(AF_INET6, h, a) == 1;
	}
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, a) == 1)
		return true;
	/* a host name (libmilter resolves it): letters somewhere, so that a
	 * mistyped address is not taken for a name */
	bool letter = false;
	for (const char *q = host; *q; q++) {
		if ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z'))
			letter = true;
		else if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == '-'))
			return false;
	}
	return letter;
}

int filter_common_read(const struct filter_cfg *cfg, struct filter_common *c,
		       const char **error_r)
{
	memset(c, 0, sizeof(*c));
	const char *v;
	v = filter_cfg_get(cfg, "Socket");
	if (v != NULL && !filter_socket_ok(v)) {
		snprintf(main_error, sizeof(main_error), "bad Socket \"%.100s\"", v);
		*error_r = main_error;
		return -1;
	}
	c->socket = v ? xstrdup(v) : NULL;
	v = filter_cfg_get(cfg, "UserID");
	c->user = v && *v ? xstrdup(v) : NULL;
	v = filter_cfg_get(cfg, "LogFile");
	c->log_file = v && *v ? xstrdup(v) : NULL;
	v = filter_cfg_get(cfg, "PidFile");
	c->pid_file = v && *v ? xstrdup(v) : NULL;
	v = filter_cfg_get(cfg, "AuthservID");
	if (v != NULL && *v != '\0') {
		for (const char *p = v; *p; p++) {
			unsigned char ch = (unsigned char)*p;
			if (ch <= ' ' || ch >= 0x7f || strchr("()<>@,;:\\\"/[]?=", ch)) {
				*error_r = "AuthservID must be a token (a host name)";
				return -1;
			}
		}
		c->authserv_id = xstrdup(v);
	} else {
		char host[256];
		if (gethostname(host, sizeof(host) - 1) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		c->authserv_id = xstrdup(host);
	}
	unsigned long timeout, um = 07;
	if (filter_cfg_uint(cfg, "DNSTimeout", 5, 1, 300, &timeout, error_r) < 0)
		return -1;
	/* UMask is octal as written ("007", "0077") */
	v = filter_cfg_get(cfg, "UMask");
	if (v != NULL) {
		char *end;
		um = strtoul(v, &end, 8);
		if (*v < '0' || *v > '7' || *end != '\0' || um > 0777) {
			*error_r = "UMask wants an octal number";
			return -1;
		}
	}
	c->umask = um;
	if (filter_dns_init(&c->dns, filter_cfg_get(cfg, "Nameservers"),
			    (unsigned)timeout * 1000 / 2, 2, error_r) < 0)
		return -1;
	v = filter_cfg_get(cfg, "InternalHosts");
	if (filter_netlist_parse(&c->internal, v ? v : "127.0.0.0/8, ::1", error_r) < 0)
		return -1;
	return 0;
}

void filter_common_free(struct filter_common *c)
{
	free(c->socket);
	free(c->user);
	free(c->log_file);
	free(c->pid_file);
	free(c->authserv_id);
	filter_netlist_free(&c->internal);
	memset(c, 0, sizeof(*c));
}

/* Resolve user[:group]; returns 0 or -1 with *error_r. */
static int main_user(const char *spec, uid_t *uid_r, gid_t *gid_r, const char **error_r)
{
	char user[256];
	const char *colon = strchr(spec, ':');
	size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
	if (ulen == 0 || ulen >= sizeof(user)) {
		*error_r = "bad UserID";
		return -1;
	}
	memcpy(user, spec, ulen);
	user[ulen] = '\0';
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(main_error, sizeof(main_error), "UserID: no user \"%.100s\"", user);
		*error_r = main_error;
		return -1;
	}
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	if (colon != NULL) {
		struct group *gr = getgrnam(colon + 1);
		if (gr == NULL) {
			snprintf(main_error, sizeof(main_error), "UserID: no group \"%.100s\"",
				 colon + 1);
			*error_r = main_error;
			return -1;
		}
		*gid_r = gr->gr_gid;
	}
	return 0;
}

/* Drop to uid/gid; returns 0 or -1 with *error_r. */
static int main_drop(uid_t uid, gid_t gid, const char **error_r)
{
	if (getuid() != 0 && geteuid() != 0) {
		if (uid == getuid())
			return 0;
		*error_r = "UserID set but not started as root";
		return -1;
	}
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		snprintf(main_error, sizeof(main_error), "cannot drop to uid %ld: %s", (long)uid,
			 strerror(errno));
		*error_r = main_error;
		return -1;
	}
	/* make sure it sticks */
	if (uid != 0 && setuid(0) == 0) {
		*error_r = "privileges could be regained after setuid";
		return -1;
	}
	return 0;
}

static void main_usage(const char *prog)
{
	fprintf(stderr, "usage: %s [-c config] [-p socket] [-t] [-V]\n", prog);
}

int filter_main(int argc, char **argv, const struct filter_desc *desc)
{
	char *conf = xasprintf("/etc/postern/%s.conf", desc->name);
	char *prog = xasprintf("postern-%s", desc->name);
	const char *sock_override = NULL;
	bool test = false;
	int opt;
	while ((opt = getopt(argc, argv, "c:p:tVf")) != -1) {
		switch (opt) {
		case 'c':
			free(conf);
			conf = xstrdup(optarg);
			break;
		case 'p':
			sock_override = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'f':
			break; /* always in the foreground; accepted for opendkim habits */
		case 'V':
			printf("%s %s (libmilter", prog, POSTERN_VERSION);
			unsigned ma, mi, pl;
			if (smfi_version(&ma, &mi, &pl) == MI_SUCCESS)
				printf(" %u.%u.%u", ma, mi, pl);
			printf(")\n");
			free(conf);
			free(prog);
			return 0;
		default:
			main_usage(prog);
			free(conf);
			free(prog);
			return 64;
		}
	}
	if (optind != argc) {
		main_usage(prog);
		free(conf);
		free(prog);
		return 64;
	}
	const char *err = NULL;
	struct filter_cfg *cfg = NULL;
	int status = 1;
	if (filter_cfg_load(conf, &cfg, &err) < 0 ||
	    filter_cfg_check_keys(cfg, filter_common_keys, desc->keys, &err) < 0 ||
	    filter_common_read(cfg, &filter_common, &err) < 0 ||
	    desc->configure(cfg, &filter_common, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out;
	}
	if (sock_override != NULL) {
		if (!filter_socket_ok(sock_override)) {
			fprintf(stderr, "%s: bad socket \"%s\"\n", prog, sock_override);
			goto out;
		}
		free(filter_common.socket);
		filter_common.socket = xstrdup(sock_override);
	}
	if (filter_common.socket == NULL) {
		fprintf(stderr, "%s: %s: Socket is not set\n", prog, conf);
		goto out;
	}
	if (filter_common.user == NULL && geteuid() == 0) {
		fprintf(stderr, "%s: refusing to run as root: set UserID\n", prog);
		goto out;
	}
	uid_t uid = 0;
	gid_t gid = 0;
	if (filter_common.user != NULL && main_user(filter_common.user, &uid, &gid, &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		goto out;
	}
	if (test) {
		printf("%s: configuration OK\n", prog);
		status = 0;
		goto out;
	}
	if (log_open(desc->name, filter_common.log_file, &err) < 0) {
		fprintf(stderr, "%s: LogFile %s: %s\n", prog, filter_common.log_file, err);
		goto out;
	}
	desc->milter->xxfi_name = prog;
	/* libmilter takes "unix:" and "local:"; a bare path means local */
	char *spec = filter_common.socket[0] == '/' ? xasprintf("local:%s", filter_common.socket)
						    : xstrdup(filter_common.socket);
	if (smfi_setconn(spec) != MI_SUCCESS || smfi_register(*desc->milter) != MI_SUCCESS) {
		log_error("cannot set up milter socket %s", spec);
		free(spec);
		goto out;
	}
	umask((mode_t)filter_common.umask);
	if (smfi_opensocket(true) != MI_SUCCESS) {
		log_error("cannot open milter socket %s", spec);
		free(spec);
		goto out;
	}
	/* a unix socket made as root goes to UserID, so that the filter can
	 * remove it and UMask decides who else may connect */
	const char *path = strchr(spec, ':') + 1;
	if (filter_common.user != NULL && strncmp(spec, "inet", 4) != 0 && geteuid() == 0 &&
	    chown(path, uid, gid) < 0) {
		log_error("chown %s: %s", path, strerror(errno));
		free(spec);
		goto out;
	}
	if (filter_common.pid_file != NULL) {
		FILE *pf = fopen(filter_common.pid_file, "we");
		if (pf == NULL) {
			log_error("PidFile %s: %s", filter_common.pid_file, strerror(errno));
			free(spec);
			goto out;
		}
		fprintf(pf, "%ld\n", (long)getpid());
		fclose(pf);
	}
	if (filter_common.user != NULL && main_drop(uid, gid, &err) < 0) {
		log_error("%s", err);
		free(spec);
		goto out;
	}
	char dnsstr[80];
	log_info("starting: socket %s, nameserver %s, authserv-id %s", spec,
		 filter_dns_server_str(&filter_common.dns, dnsstr, sizeof(dnsstr)),
		 filter_common.authserv_id);
	free(spec);
	signal(SIGPIPE, SIG_IGN);
	main_reload = desc->reload;
	status = smfi_main() == MI_SUCCESS ? 0 : 1;
	log_info("stopping");
out:
	filter_cfg_free(&cfg);
	free(conf);
	free(prog);
	return status;
}
