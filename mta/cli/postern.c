/*
 * postern.c - the postern command: one program, one verb per job.
 *
 * Purpose: the administrator's interface: postern [-c CONFDIR] VERB [args].
 *   start, start-fg, stop, reload, status, check      (the mail system)
 *   queue [--json], flush, delete ID|ALL, hold ID,
 *   release ID, requeue ID, show ID                   (the queue)
 *   conf [-n|-d] [name...]                            (like postconf)
 *   map FILE | map -a FILE | map -q KEY type:name     (like postmap, newaliases)
 * Owns: argument parsing and exit codes (sysexits.h).
 * Never: writes the queue itself (the queue process does, on request).
 * Tests: tests/integration/test_cli.py.
 */
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "mta/master/master.h"
#include "mta/cli/cli_queue.h"
#include "lib/cfg.h"
#include "lib/table.h"
#include "lib/log.h"
#include "lib/common.h"

#define CLI_DEFAULT_CONFDIR "/etc/postern"
#define CLI_STOP_WAIT 30 /* seconds postern stop waits for master to exit */

static const char *cli_confdir = CLI_DEFAULT_CONFDIR;

static NORETURN void cli_usage(void)
{
	fprintf(stderr,
		"usage: postern [-c CONFDIR] VERB [ARGS]\n"
		"  start | start-fg | stop | reload | status | check\n"
		"  queue [--json] | flush | delete ID|ALL | hold ID | release ID | requeue ID | show ID\n"
		"  conf [-n|-d] [NAME...]\n"
		"  map TYPE:FILE | map -a ALIASFILE | map -q KEY TYPE:NAME\n");
	exit(EX_USAGE);
}

/* Directory of the running executable (daemon_directory's default). */
static char *cli_self_dir(void)
{
	char path[4096];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n <= 0)
		return xstrdup(".");
	path[n] = '\0';
	return xstrdup(dirname(path));
}

/* main.cf as written (conf prints it so); exits on a bad configuration */
static struct cfg *cli_load_cfg_raw(void)
{
	const char *err = NULL;
	struct cfg *cfg = cfg_load(cli_confdir, &err);
	if (cfg == NULL) {
		fprintf(stderr, "postern: fatal: %s\n", err);
		exit(EX_CONFIG);
	}
	return cfg;
}

/* main.cf with the directories of this installation filled in */
static struct cfg *cli_load_cfg(void)
{
	const char *err = NULL;
	struct cfg *cfg = cli_load_cfg_raw();
	char *self = cli_self_dir();
	if (*cfg->daemon_directory == '\0')
		cfg_override(cfg, "daemon_directory", self, &err);
	if (*cfg->command_directory == '\0')
		cfg_override(cfg, "command_directory", self, &err);
	free(self);
	return cfg;
}

static int cli_start(bool foreground)
{
	char *self = cli_self_dir();
	if (foreground) {
		int r = master_run(cli_confdir, self, -1);
		free(self);
		return r;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		perror("postern: pipe");
		return EX_OSERR;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("postern: fork");
		return EX_OSERR;
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
		_exit(master_run(cli_confdir, self, p[1]));
	}
	close(p[1]);
	char line[512] = { 0 };
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(line) - 1 && (r = read(p[0], line + n, sizeof(line) - 1 - n)) > 0)
		n += (size_t)r;
	close(p[0]);
	free(self);
	if (strncmp(line, "ok", 2) == 0) {
		fprintf(stderr, "postern: starting the Postern mail system\n");
		return 0;
	}
	fprintf(stderr, "postern: fatal: %s", n ? line : "master exited during start-up\n");
	return 1;
}

static long cli_running_pid(void)
{
	const char *err = NULL;
	long pid = master_running_pid(cli_confdir, &err);
	if (pid < 0) {
		fprintf(stderr, "postern: fatal: %s\n", err);
		exit(EX_CONFIG);
	}
	return pid;
}

static int cli_signal_master(int sig, const char *doing)
{
	long pid = cli_running_pid();
	if (pid == 0) {
		fprintf(stderr, "postern: fatal: the Postern mail system is not running\n");
		return 1;
	}
	if (kill((pid_t)pid, sig) < 0) {
		fprintf(stderr, "postern: fatal: kill %ld: %s\n", pid, strerror(errno));
		return 1;
	}
	fprintf(stderr, "postern: %s the Postern mail system\n", doing);
	return 0;
}

static int cli_stop(void)
{
	long pid = cli_running_pid();
	if (cli_signal_master(SIGTERM, "stopping") != 0)
		return 1;
	/* wait until the master lets go of its pid file lock */
	struct timespec step = { 0, 50 * 1000 * 1000 };
	for (int i = 0; i < CLI_STOP_WAIT * 20; i++) {
		if (cli_running_pid() != pid)
			return 0;
		nanosleep(&step, NULL);
	}
	fprintf(stderr, "postern: warning: master pid %ld still running\n", pid);
	return 1;
}

static int cli_status(void)
{
	long pid = cli_running_pid();
	if (pid == 0) {
		fprintf(stderr, "postern: the Postern mail system is not running\n");
		return 1;
	}
	fprintf(stderr, "postern: the Postern mail system is running: PID: %ld\n", pid);
	return 0;
}

static int cli_check(void)
{
	struct buf report;
	buf_init(&report, 1 << 20);
	int errors = cfg_check(cli_confdir, &report);
	fputs(buf_cstr(&report), stderr);
	buf_free(&report);
	if (errors > 0)
		return 1;
	struct cfg *cfg = cli_load_cfg();
	int r = cli_queue_check(cfg);
	cfg_free(&cfg);
	return r;
}

static int cli_conf(int argc, char **argv)
{
	enum cfg_print_mode mode = CFG_PRINT_ALL;
	int i = 0;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-n") == 0)
			mode = CFG_PRINT_NONDEFAULT;
		else if (strcmp(argv[i], "-d") == 0)
			mode = CFG_PRINT_DEFAULTS;
		else
			cli_usage();
	}
	struct cfg *cfg = cli_load_cfg_raw();
	int r = cfg_print(cfg, mode, i < argc ? &argv[i] : NULL, stdout);
	cfg_free(&cfg);
	return r == 0 ? 0 : 1;
}

static int cli_map(int argc, char **argv)
{
	const char *err = NULL;
	if (argc == 3 && strcmp(argv[0], "-q") == 0) {
		struct table *t = table_open(argv[2], &err);
		if (t == NULL) {
			fprintf(stderr, "postern: fatal: %s: %s\n", argv[2], err);
			return EX_CONFIG;
		}
		char *value = NULL;
		int r = table_lookup(t, argv[1], &value, &err);
		if (r > 0)
			printf("%s\n", value);
		else if (r < 0)
			fprintf(stderr, "postern: fatal: %s: %s\n", argv[2], err);
		free(value);
		table_free(&t);
		return r > 0 ? 0 : r == 0 ? 1 : EX_TEMPFAIL;
	}
	if (argc == 2 && strcmp(argv[0], "-a") == 0) {
		/* aliases(5) source, as newaliases compiles alias_database */
		if (table_compile_aliases(argv[1], &err) < 0) {
			fprintf(stderr, "postern: fatal: %s: %s\n", argv[1], err);
			return EX_DATAERR;
		}
		return 0;
	}
	if (argc != 1)
		cli_usage();
	if (table_compile(argv[0], &err) < 0) {
		fprintf(stderr, "postern: fatal: %s: %s\n", argv[0], err);
		return EX_DATAERR;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int i = 1;
	if (i + 1 < argc && strcmp(argv[i], "-c") == 0) {
		cli_confdir = argv[i + 1];
		i += 2;
	}
	if (i >= argc)
		cli_usage();
	const char *verb = argv[i++];
	int rest = argc - i;
	char **args = &argv[i];

	if (strcmp(verb, "start") == 0)
		return cli_start(false);
	if (strcmp(verb, "start-fg") == 0)
		return cli_start(true);
	if (strcmp(verb, "stop") == 0)
		return cli_stop();
	if (strcmp(verb, "reload") == 0)
		return cli_signal_master(SIGHUP, "refreshing");
	if (strcmp(verb, "status") == 0)
		return cli_status();
	if (strcmp(verb, "check") == 0)
		return cli_check();
	if (strcmp(verb, "conf") == 0)
		return cli_conf(rest, args);
	if (strcmp(verb, "map") == 0)
		return cli_map(rest, args);
	if (strcmp(verb, "queue") == 0 || strcmp(verb, "flush") == 0 ||
	    strcmp(verb, "delete") == 0 || strcmp(verb, "hold") == 0 ||
	    strcmp(verb, "release") == 0 || strcmp(verb, "requeue") == 0 ||
	    strcmp(verb, "show") == 0) {
		struct cfg *cfg = cli_load_cfg();
		int r = cli_queue_verb(cfg, verb, rest, args);
		cfg_free(&cfg);
		return r;
	}
	cli_usage();
}
