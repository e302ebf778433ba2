/*
 * lda_main.c - postern-lda: one message from stdin into one mailbox.
 *
 * Purpose: the command line, main.cf lookup of the mailbox (home_mailbox,
 *   mail_spool_directory, as Postfix local(8)), the identity checks, and the
 *   one exit code + one stderr line ("4.2.2 text") that the calling MTA
 *   (Postern's queue, Postfix mailbox_command, anything that ran
 *   dovecot-lda) maps to deliver / defer / bounce.
 * Owns: the process. Never: runs as root, talks to the network, writes
 *   anything but the target mailbox (and maildirsize), prints more than one
 *   stderr line.
 * Limits: LDA_MESSAGE_MAX, lock_timeout, maildir_quota.
 * Tests: tests/integration/test_lda*.py, tests/interop/test_lda_dovecot.py,
 *   tests/interop/test_lda_postfix.py
 */
#include <getopt.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "delivery/lda_headers.h"
#include "delivery/lda_main.h"
#include "delivery/lda_maildir.h"
#include "delivery/lda_mbox.h"
#include "delivery/lda_path.h"
#include "delivery/lda_quota.h"
#include "delivery/lda_status.h"
#include "delivery/lda_worker.h"
#include "lib/buf.h"
#include "lib/cfg.h"
#include "lib/log.h"
#include "lib/common.h"

#define LDA_DEFAULT_CONFDIR "/etc/postern"
#define LDA_MAX_OVERRIDES 64

/* Exit with the recorded status: "<dsn> <text>" on stderr (the caller's
 * only parse target), plus a log line. */
NORETURN static void lda_main_exit(const struct lda_status *st)
{
	if (st->ex != EX_OK) {
		log_warning("%s %s", st->dsn, st->text);
		fprintf(stderr, "%s %s\n", st->dsn, st->text);
		fflush(stderr);
	}
	exit(st->ex);
}

static int lda_main_usage(struct lda_status *st, const char *why)
{
	return lda_status_fail(st, EX_USAGE, "5.3.0",
		 "%s (usage: postern-lda [-e] [-d user] [-f sender] [-a address] [-r address] "
		 "[-m folder] [-c confdir] [-o name=value] [-p file] [--maildir dir | --mbox file])",
		 why);
}

static bool lda_main_bool(const char *v, bool *r)
{
	if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*r = true;
	else if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*r = false;
	else
		return false;
	return true;
}

/* Handle an -o name of postern-lda's own. Returns 1 handled, 0 not ours,
 * -1 bad value (st filled). */
static int lda_main_own_param(struct lda_options *o, const char *name, const char *value,
			      struct lda_status *st)
{
	if (strcmp(name, "maildir_quota") == 0) {
		if (lda_quota_parse_limit(str_of(value), &o->quota) < 0)
			return lda_status_fail(st, EX_CONFIG, "4.3.5",
					"bad maildir_quota value \"%s\" (want <bytes>S,<count>C)",
					value);
		o->have_quota = true;
		return 1;
	}
	if (strcmp(name, "quota_full_tempfail") == 0) {
		if (!lda_main_bool(value, &o->quota_tempfail))
			return lda_status_fail(st, EX_CONFIG, "4.3.5", "bad quota_full_tempfail value \"%s\"",
					value);
		return 1;
	}
	if (strcmp(name, "lock_timeout") == 0) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' || v == 0 || v > 86400)
			return lda_status_fail(st, EX_CONFIG, "4.3.5", "bad lock_timeout value \"%s\"", value);
		o->lock_timeout = (unsigned)v;
		return 1;
	}
	return 0;
}

/* Read the message (stdin or -p file). */
static int lda_main_read(const struct lda_options *o, int in_fd, struct buf *raw,
			 struct lda_status *st)
{
	int fd = in_fd;
	if (o->input != NULL) {
		fd = open(o->input, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return lda_status_fail(st, EX_NOINPUT, "5.3.0", "cannot open %s: %s", o->input,
					strerror(errno));
	}
	int r = lda_headers_read(fd, raw, LDA_MESSAGE_MAX, st);
	if (fd != in_fd)
		close(fd);
	return r;
}

/* One delivery: argv is the command line, the message comes from in_fd
 * (or -p FILE). Fills *st (st->ex EX_OK on success) and returns; never
 * exits, so the worker can call it again. Everything it allocates is
 * freed on every path. */
/* postern-lda --worker serves many deliveries: it keeps the configuration
 * it read while main.cf stays the same file with the same size and times
 * (the one-shot command reads it once anyway). Not used with -o. */
static struct {
	bool enabled;
	struct cfg *cfg;
	char *confdir;
	bool confdir_given, explicit_target;
	struct stat st;      /* of DIR/main.cf; all 0: it was absent */
	struct stat pending; /* taken before the load that lda_cfg_keep gets */
} lda_cfg_cache;

static void lda_cfg_stat(const char *confdir, struct stat *st)
{
	char *path = lda_path_join(confdir, "main.cf");
	if (stat(path, st) < 0)
		memset(st, 0, sizeof(*st));
	free(path);
}

static bool lda_cfg_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* The cached configuration for these arguments, or NULL: then the caller
 * loads it and hands it to lda_cfg_keep. */
static struct cfg *lda_cfg_cached(const char *confdir, bool confdir_given, bool explicit_target)
{
	if (!lda_cfg_cache.enabled)
		return NULL;
	/* stat before any load: a change during the load is seen next time */
	lda_cfg_stat(confdir, &lda_cfg_cache.pending);
	if (lda_cfg_cache.cfg == NULL || strcmp(lda_cfg_cache.confdir, confdir) != 0 ||
	    lda_cfg_cache.confdir_given != confdir_given ||
	    lda_cfg_cache.explicit_target != explicit_target ||
	    !lda_cfg_same_file(&lda_cfg_cache.pending, &lda_cfg_cache.st))
		return NULL;
	return lda_cfg_cache.cfg;
}

/* Remember cfg (now owned by the cache) for the next delivery. */
static void lda_cfg_keep(struct cfg *cfg, const char *confdir, bool confdir_given,
			 bool explicit_target)
{
	if (!lda_cfg_cache.enabled)
		return;
	if (lda_cfg_cache.cfg != NULL)
		cfg_free(&lda_cfg_cache.cfg);
	free(lda_cfg_cache.confdir);
	lda_cfg_cache.cfg = cfg;
	lda_cfg_cache.confdir = xstrdup(confdir);
	lda_cfg_cache.confdir_given = confdir_given;
	lda_cfg_cache.explicit_target = explicit_target;
	lda_cfg_cache.st = lda_cfg_cache.pending;
}

static void lda_main_deliver(int argc, char **argv, int in_fd, struct lda_status *st)
{
	static const struct option longopts[] = {
		{ "maildir", required_argument, NULL, 'M' },
		{ "mbox", required_argument, NULL, 'B' },
		{ "delivery-id", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct lda_options o;
	const char *ovr_name[LDA_MAX_OVERRIDES];
	const char *ovr_value[LDA_MAX_OVERRIDES];
	char *ovr_copy[LDA_MAX_OVERRIDES];
	size_t n_ovr = 0;
	int c;
	/* freed at out: */
	char *confdir_copy = NULL;
	struct cfg *cfg = NULL;
	char *folder = NULL; /* on-disk (modified UTF-7) name; NULL = INBOX */
	char *user = NULL;
	char *target = NULL;
	char *bare_sender = NULL;
	struct buf raw, msg;
	struct lda_headers_info info;

	memset(st, 0, sizeof(*st));
	st->ex = EX_OK;
	memset(&info, 0, sizeof(info)); /* lda_headers_info_free takes it zeroed */
	buf_init(&raw, LDA_MESSAGE_MAX);
	buf_init(&msg, LDA_MESSAGE_MAX + 4096);

	memset(&o, 0, sizeof(o));
	o.quota_tempfail = true;
	o.lock_timeout = LDA_LOCK_TIMEOUT_DEFAULT;
	umask(077);
	log_open("lda", NULL, &(const char *){ NULL });

	opterr = 0; /* one stderr line only: ours */
	optind = 0; /* a fresh scan for every delivery of a worker (GNU getopt) */
	while ((c = getopt_long(argc, argv, "+d:f:a:r:m:c:o:p:ekh", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o.user = optarg; break;
		case 'f': o.sender = optarg; break;
		case 'a': o.orig_rcpt = optarg; break;
		case 'r': o.final_rcpt = optarg; break;
		case 'm': o.folder = optarg; break;
		case 'c': o.confdir = optarg; break;
		case 'p': o.input = optarg; break;
		case 'M': o.maildir = optarg; break;
		case 'B': o.mbox = optarg; break;
		case 'I':
			if (!lda_maildir_delivery_id_valid(optarg)) {
				lda_main_usage(st, "--delivery-id needs SECONDS.TOKEN");
				goto out;
			}
			o.delivery_id = optarg;
			break;
		case 'e': /* errors always go to stderr + exit code: we never send mail */
		case 'k': /* the environment is never used anyway */
			break;
		case 'o': {
			if (n_ovr >= LDA_MAX_OVERRIDES) {
				lda_main_usage(st, "too many -o options");
				goto out;
			}
			char *copy = xstrdup(optarg);
			char *eq = strchr(copy, '=');
			if (eq == NULL || eq == copy) {
				free(copy);
				lda_main_usage(st, "-o needs name=value");
				goto out;
			}
			*eq = '\0';
			/* trim blanks around the name, as main.cf does */
			char *name = copy;
			while (*name == ' ')
				name++;
			char *ne = eq;
			while (ne > name && ne[-1] == ' ')
				*--ne = '\0';
			char *value = eq + 1;
			while (*value == ' ')
				value++;
			ovr_copy[n_ovr] = copy;
			ovr_name[n_ovr] = name;
			ovr_value[n_ovr] = value;
			n_ovr++;
			break;
		}
		case 'V':
			printf("postern-lda %s\n", POSTERN_VERSION);
			goto out;
		case 'h':
			lda_main_usage(st, "help");
			goto out;
		default: {
			char why[64];
			if (optopt != 0 && optopt >= 0x21 && optopt < 0x7f)
				snprintf(why, sizeof(why), "bad option -%c", optopt);
			else
				snprintf(why, sizeof(why), "bad option");
			lda_main_usage(st, why);
			goto out;
		}
		}
	}
	if (optind != argc) {
		lda_main_usage(st, "unexpected argument");
		goto out;
	}
	if (o.maildir != NULL && o.mbox != NULL) {
		lda_main_usage(st, "--maildir and --mbox exclude each other");
		goto out;
	}

	/* The caller switches to the recipient before running us (DESIGN.md):
	 * as root we would write files root owns into users' mailboxes. */
	if (getuid() == 0 || geteuid() == 0) {
		lda_status_fail(st, EX_TEMPFAIL, "4.3.5",
			 "postern-lda refuses to run as root: run it as the recipient");
		goto out;
	}
	uid_t uid = getuid();

	/* postern-lda's own -o settings first, the rest goes to main.cf */
	bool cfg_wanted[LDA_MAX_OVERRIDES];
	for (size_t i = 0; i < n_ovr; i++) {
		int r = lda_main_own_param(&o, ovr_name[i], ovr_value[i], st);
		if (r < 0)
			goto out;
		cfg_wanted[i] = r == 0;
	}

	/* main.cf: required with -c, or when it must tell where the mailbox is */
	bool explicit_target = o.maildir != NULL || o.mbox != NULL;
	const char *err = NULL;
	struct stat cst;
	if (o.confdir != NULL && stat(o.confdir, &cst) == 0 && S_ISREG(cst.st_mode)) {
		/* dovecot-lda's -c names a file: accept ".../main.cf" as its
		 * directory; another file (dovecot.conf) says nothing about
		 * mailboxes, which is harmless only with an explicit target */
		const char *slash = strrchr(o.confdir, '/');
		const char *base = slash ? slash + 1 : o.confdir;
		if (strcmp(base, "main.cf") == 0) {
			confdir_copy = slash ? xmemdup(o.confdir, (size_t)(slash - o.confdir))
					     : xstrdup(".");
			if (confdir_copy[0] == '\0') {
				free(confdir_copy);
				confdir_copy = xstrdup("/");
			}
			o.confdir = confdir_copy;
		} else if (explicit_target) {
			log_warning("-c %s: not a Postern configuration directory, ignored", o.confdir);
			o.confdir = NULL;
		} else {
			lda_status_fail(st, EX_CONFIG, "4.3.5",
					"-c %s: not a configuration directory (postern-lda reads DIR/main.cf)",
					o.confdir);
			goto out;
		}
	}
	const char *confdir = o.confdir ? o.confdir : LDA_DEFAULT_CONFDIR;
	bool plain = true; /* no -o for main.cf: the configuration can be cached */
	for (size_t i = 0; i < n_ovr; i++)
		plain = plain && !cfg_wanted[i];
	cfg = plain ? lda_cfg_cached(confdir, o.confdir != NULL, explicit_target) : NULL;
	if (cfg != NULL)
		goto have_cfg;
	cfg = cfg_load(confdir, &err);
	if (cfg == NULL) {
		char *path = lda_path_join(confdir, "main.cf");
		bool missing = stat(path, &cst) < 0 && errno == ENOENT;
		free(path);
		/* an explicit target needs nothing from the default main.cf */
		if (o.confdir != NULL || (!missing && !explicit_target)) {
			lda_status_fail(st, EX_CONFIG, "4.3.5", "configuration error: %s", err);
			goto out;
		}
		/* no (usable) /etc/postern/main.cf: Postfix's defaults */
		if (!missing)
			log_warning("ignoring %s: %s", LDA_DEFAULT_CONFDIR "/main.cf", err);
		cfg = cfg_parse_text(confdir, "main.cf", "", 0, &err);
		if (cfg == NULL) {
			lda_status_fail(st, EX_CONFIG, "4.3.5", "configuration error: %s", err);
			goto out;
		}
	}
	for (size_t i = 0; i < n_ovr; i++) {
		if (!cfg_wanted[i])
			continue;
		if (!cfg_is_known(ovr_name[i]))
			continue; /* warned about once the log is open */
		if (cfg_override(cfg, ovr_name[i], ovr_value[i], &err) < 0) {
			lda_status_fail(st, EX_CONFIG, "4.3.5", "configuration error: %s", err);
			goto out;
		}
	}
	if (plain)
		lda_cfg_keep(cfg, confdir, o.confdir != NULL, explicit_target);
have_cfg:
	if (cfg->maillog_file[0] != '\0' && log_open("lda", cfg->maillog_file, &err) < 0)
		log_open("lda", NULL, &err);
	for (size_t i = 0; i < n_ovr; i++)
		if (cfg_wanted[i] && !cfg_is_known(ovr_name[i]))
			log_warning("-o %s: unknown parameter, ignored", ovr_name[i]);

	/* who and where */
	if (o.sender != NULL && !lda_headers_addr_ok(o.sender)) {
		lda_status_fail(st, EX_USAGE, "5.1.7", "bad sender address");
		goto out;
	}
	if ((o.orig_rcpt != NULL && !lda_headers_addr_ok(o.orig_rcpt)) ||
	    (o.final_rcpt != NULL && !lda_headers_addr_ok(o.final_rcpt))) {
		lda_status_fail(st, EX_USAGE, "5.1.3", "bad recipient address");
		goto out;
	}
	if (o.folder != NULL && !lda_path_folder_is_inbox(o.folder)) {
		if (lda_path_folder_ok(o.folder))
			folder = lda_path_folder_mutf7(o.folder);
		if (folder == NULL) {
			lda_status_fail(st, EX_CANTCREAT, "5.2.0", "refusing folder name \"%s\"",
					o.folder);
			goto out;
		}
	}
	struct passwd *pw = NULL;
	if (o.user != NULL) {
		if (!lda_path_name_ok(o.user)) {
			lda_status_fail(st, EX_NOUSER, "5.1.3", "refusing user name \"%s\"", o.user);
			goto out;
		}
		user = xstrdup(o.user);
		if (!explicit_target) {
			pw = getpwnam(o.user);
			if (pw == NULL) {
				lda_status_fail(st, EX_NOUSER, "5.1.1", "unknown user %s", o.user);
				goto out;
			}
			if (pw->pw_uid != uid) {
				lda_status_fail(st, EX_TEMPFAIL, "4.3.5",
					 "running as uid %lu, not as user %s (uid %lu)",
					 (unsigned long)uid, o.user, (unsigned long)pw->pw_uid);
				goto out;
			}
		}
	} else {
		pw = getpwuid(uid);
		if (pw != NULL)
			user = xstrdup(pw->pw_name);
		else if (!explicit_target) {
			lda_status_fail(st, EX_NOUSER, "5.1.1", "uid %lu has no passwd entry",
				 (unsigned long)uid);
			goto out;
		}
	}
	const char *explicit_path = o.maildir ? o.maildir : o.mbox;
	if (explicit_path != NULL && !lda_path_target_ok(explicit_path)) {
		lda_status_fail(st, EX_CANTCREAT, "5.2.0", "refusing mailbox path \"%s\"",
				explicit_path);
		goto out;
	}
	bool is_maildir = false;
	if (o.maildir != NULL) {
		target = xstrdup(o.maildir);
		is_maildir = true;
	} else if (o.mbox != NULL) {
		target = xstrdup(o.mbox);
	} else if (cfg->home_mailbox[0] != '\0') {
		if (!lda_path_relative_ok(cfg->home_mailbox)) {
			lda_status_fail(st, EX_CONFIG, "4.3.5", "bad home_mailbox \"%s\"", cfg->home_mailbox);
			goto out;
		}
		target = lda_path_join(pw->pw_dir, cfg->home_mailbox);
		is_maildir = cfg->home_mailbox[strlen(cfg->home_mailbox) - 1] == '/';
	} else {
		const char *spool = cfg->mail_spool_directory;
		if (spool[0] != '/') {
			lda_status_fail(st, EX_CONFIG, "4.3.5", "mail_spool_directory must be absolute");
			goto out;
		}
		target = lda_path_join(spool, user);
		is_maildir = spool[strlen(spool) - 1] == '/'; /* as Postfix local(8) */
	}

	/* the message */
	if (lda_main_read(&o, in_fd, &raw, st) < 0)
		goto out;
	struct lda_headers_env env = {
		.sender = o.sender,
		.orig_rcpt = o.orig_rcpt,
		.final_rcpt = o.final_rcpt ? o.final_rcpt : o.orig_rcpt ? o.orig_rcpt : user,
	};
	if (lda_headers_prepare(buf_str(&raw), &env, &msg, &info, st) < 0)
		goto out;
	buf_free(&raw);
	const char *from_sender = o.sender ? o.sender : info.from_sender;
	bare_sender = from_sender ? lda_headers_bare_addr(from_sender) : NULL;
	const char *shown_rcpt = env.final_rcpt ? env.final_rcpt : "";

	int r;
	if (is_maildir) {
		int rootfd, boxfd;
		r = lda_maildir_open(target, folder, uid, &rootfd, &boxfd, st);
		if (r == 0) {
			bool quota_active = false;
			r = lda_quota_check(rootfd, target, o.have_quota ? &o.quota : NULL, msg.len,
					    o.quota_tempfail, &quota_active, st);
			char *name = NULL;
			bool duplicate = false;
			char *boxpath;
			if (folder == NULL) {
				boxpath = xstrdup(target);
			} else {
				char *dot = xasprintf(".%s", folder);
				boxpath = lda_path_join(target, dot);
				free(dot);
			}
			if (r == 0)
				r = lda_maildir_deliver(boxfd, boxpath, buf_str(&msg), o.quota_tempfail,
							o.delivery_id, &name, &duplicate, st);
			if (r == 0 && quota_active && !duplicate)
				lda_quota_add(rootfd, msg.len);
			if (r == 0 && duplicate)
				log_info("to=<%s>, relay=local, status=sent (already delivered to maildir %s/new/%s)",
					 shown_rcpt, boxpath, name);
			else if (r == 0)
				log_info("to=<%s>, relay=local, status=sent (delivered to maildir %s/new/%s)",
					 shown_rcpt, boxpath, name);
			free(name);
			free(boxpath);
			close(rootfd);
			close(boxfd);
		}
	} else {
		r = lda_mbox_deliver(target, buf_str(&msg), bare_sender, uid, o.lock_timeout,
				     o.quota_tempfail, st);
		if (r == 0)
			log_info("to=<%s>, relay=local, status=sent (delivered to mailbox %s)",
				 shown_rcpt, target);
	}
out:
	free(bare_sender);
	lda_headers_info_free(&info); /* also after a failed prepare */
	buf_free(&raw);
	buf_free(&msg);
	free(target);
	free(folder);
	free(user);
	free(confdir_copy);
	if (cfg != NULL && cfg != lda_cfg_cache.cfg)
		cfg_free(&cfg);
	for (size_t i = 0; i < n_ovr; i++)
		free(ovr_copy[i]);
}

/* The one-shot command: deliver from stdin, then exit with the status. */
static int lda_main_run(int argc, char **argv)
{
	struct lda_status st;
	lda_main_deliver(argc, argv, STDIN_FILENO, &st);
	lda_main_exit(&st);
}

/* One worker request (lda_worker.h): the status line goes to out, not to
 * stderr, and the process lives on. */
static int lda_main_serve(int argc, char **argv, int in_fd, struct buf *out)
{
	lda_cfg_cache.enabled = true;
	struct lda_status st;
	lda_main_deliver(argc, argv, in_fd, &st);
	if (st.ex != EX_OK) {
		log_warning("%s %s", st.dsn, st.text);
		buf_printf(out, "%s %s", st.dsn, st.text);
	}
	return st.ex;
}

int main(int argc, char **argv)
{
	/* master's long-lived worker for one uid (lda_worker.h) */
	if (argc == 2 && strcmp(argv[1], LDA_WORKER_FLAG) == 0)
		return lda_worker_main(lda_main_serve);
	return lda_main_run(argc, argv);
}
