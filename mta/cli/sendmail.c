/*
 * sendmail.c - the sendmail(1) command: local mail submission.
 *
 * Purpose: read a message on standard input and hand it to the running
 * mail system through $queue_directory/public/submit (protocol IPC_S_* in
 * mta/ipc/ipc_proto.h): the envelope as typed messages, the message as a
 * memfd. Delivery mode, and -bp / mailq (the postern queue listing) only
 * (see docs/sendmail.1); the exit code is the
 * submit service's answer (sysexits.h), 75 when the mail system is down.
 * Owns: option parsing, the input copy, exit codes.
 * Never: needs privileges; writes the queue; claims an identity (the
 * server learns the uid from the socket).
 * Limits: message_size_limit (the copy stops one byte past it and the
 * server refuses the message).
 * Tests: tests/integration/test_submit.py, tests/unit/mta/sendmail_hdr_test.c.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <getopt.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "mta/cli/cli_queue.h"
#include "mta/cli/sendmail_hdr.h"
#include "mta/ipc/ipc_proto.h"
#include "lib/cfg.h"
#include "lib/fileio.h"
#include "lib/ipc.h"
#include "lib/common.h"

#define SENDMAIL_DEFAULT_CONFDIR "/etc/postern"
#define SENDMAIL_HEADER_SCAN (1024 * 1024) /* bytes of the message -t looks at */

struct sendmail_opts {
	const char *confdir;     /* -C, MAIL_CONFIG, default */
	const char *sender;      /* -f / -r, or NULL */
	const char *fullname;    /* -F, or NULL */
	const char *envid;       /* -V */
	unsigned flags;          /* IPC_QF_* */
	unsigned notify;         /* IPC_QN_* from -N */
	bool extract;            /* -t */
	bool dots;               /* a lone '.' ends input (no -i / -oi) */
};

static NORETURN PRINTF_LIKE(2, 3) void sendmail_fatal(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("sendmail: fatal: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(code);
}

static NORETURN void sendmail_usage(const char *why)
{
	sendmail_fatal(EX_USAGE, "%s\nusage: sendmail [-t] [-i] [-f sender] [-F name] [-N dsn] "
				 "[-R full|hdrs] [-V envid] [-B type] [-C config] [--] [recipient ...]",
		       why);
}

static unsigned sendmail_notify(const char *arg)
{
	unsigned bits = 0;
	char *copy = xstrdup(arg), *save = NULL;
	for (char *w = strtok_r(copy, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
		if (strcasecmp(w, "never") == 0)
			bits |= IPC_QN_NEVER;
		else if (strcasecmp(w, "success") == 0)
			bits |= IPC_QN_SUCCESS;
		else if (strcasecmp(w, "delay") == 0)
			bits |= IPC_QN_DELAY;
		else if (strcasecmp(w, "failure") == 0)
			bits |= IPC_QN_FAILURE;
		else
			sendmail_usage("bad -N option value");
	}
	free(copy);
	if (bits == 0 || ((bits & IPC_QN_NEVER) && bits != IPC_QN_NEVER))
		sendmail_usage("bad -N option value");
	return bits;
}

static bool sendmail_list_queue; /* -bp or invoked as mailq */

/* -b<mode>: delivery mode and -bp work this time */
static void sendmail_mode(const char *m)
{
	if (strcmp(m, "m") == 0 || strcmp(m, "h") == 0 || strcmp(m, "H") == 0)
		return;
	if (strcmp(m, "p") == 0) {
		sendmail_list_queue = true;
		return;
	}
	if (strchr("sivdl", m[0]) != NULL && m[1] == '\0')
		sendmail_fatal(EX_USAGE, "-b%s: not supported yet (delivery mode only)", m);
	sendmail_usage("unknown -b mode");
}

static int sendmail_parse(int argc, char **argv, struct sendmail_opts *o)
{
	/* '+': options end at the first recipient, as POSIX getopt */
	static const char optstring[] = "+A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q::r:tvx";
	int c;
	opterr = 0;
	while ((c = getopt(argc, argv, optstring)) != -1) {
		switch (c) {
		case 'B':
			if (strcasecmp(optarg, "8BITMIME") == 0)
				o->flags |= IPC_QF_8BITMIME;
			else if (strcasecmp(optarg, "7BIT") != 0)
				sendmail_usage("-B: 7BIT or 8BITMIME");
			break;
		case 'C': {
			struct stat st;
			/* a main.cf file or its directory */
			if (stat(optarg, &st) == 0 && S_ISREG(st.st_mode))
				o->confdir = xstrdup(dirname(xstrdup(optarg)));
			else
				o->confdir = optarg;
			break;
		}
		case 'F':
			o->fullname = optarg;
			break;
		case 'I':
			sendmail_fatal(EX_USAGE, "-I (newaliases): not supported yet");
		case 'N':
			o->notify = sendmail_notify(optarg);
			break;
		case 'R':
			if (strcasecmp(optarg, "full") == 0)
				o->flags |= IPC_QF_RET_FULL;
			else if (strcasecmp(optarg, "hdrs") == 0)
				o->flags |= IPC_QF_RET_HDRS;
			else
				sendmail_usage("-R: full or hdrs");
			break;
		case 'V':
			o->envid = optarg;
			break;
		case 'X':
			if (optarg[0] == 'V')
				sendmail_fatal(EX_USAGE, "-XV (VERP): not supported yet");
			break; /* -X logfile: ignored */
		case 'b':
			sendmail_mode(optarg);
			break;
		case 'f':
		case 'r':
			o->sender = optarg;
			break;
		case 'i':
			o->dots = false;
			break;
		case 'o':
			if (strcmp(optarg, "i") == 0)
				o->dots = false;
			break; /* -om, -o7, -o8, other Sendmail options: ignored */
		case 'q':
			if (optarg == NULL || optarg[0] == 'R' || optarg[0] == 'I' || optarg[0] == 'S')
				sendmail_fatal(EX_USAGE, "-q (queue run): not supported yet; use postern flush");
			break; /* -q<interval>: ignored */
		case 't':
			o->extract = true;
			break;
		case 'A': /* -Am -Ac */
		case 'G':
		case 'L':
		case 'O':
		case 'U':
		case 'c':
		case 'e':
		case 'h':
		case 'm':
		case 'n':
		case 'p':
		case 'v':
		case 'x':
			break; /* accepted and ignored (sendmail-cli.md §2) */
		default:
			sendmail_usage(optopt ? "unknown option or missing argument" : "bad option");
		}
	}
	return optind;
}

/* Copy standard input into a memfd: up to EOF, or a line that is only "."
 * (without -i). Stops one byte past max (the server refuses it). */
static int sendmail_copy_input(const struct sendmail_opts *o, size_t max)
{
	int fd = memfd_create("sendmail", MFD_CLOEXEC);
	if (fd < 0)
		sendmail_fatal(EX_OSERR, "memfd_create: %s", strerror(errno));
	char *line = NULL;
	size_t cap = 0, total = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		size_t len = (size_t)n;
		if (o->dots && line[0] == '.' &&
		    (len == 1 || (len == 2 && (line[1] == '\n' || line[1] == '\r')) ||
		     (len == 3 && line[1] == '\r' && line[2] == '\n')))
			break;
		if (total + len > max + 1)
			len = max + 1 - total;
		if (file_write_all(fd, line, len) < 0)
			sendmail_fatal(EX_TEMPFAIL, "cannot copy the message: %s", strerror(errno));
		total += len;
		if (total > max)
			break;
	}
	if (ferror(stdin))
		sendmail_fatal(EX_DATAERR, "error reading input: %s", strerror(errno));
	free(line);
	return fd;
}

static void sendmail_send(int sock, struct ipc_msg *m)
{
	/* a refusal closes the connection early: its RESULT is still read */
	if (ipc_send(sock, m) < 0 && errno != EPIPE && errno != ECONNRESET)
		sendmail_fatal(EX_TEMPFAIL, "send to the mail system: %s", strerror(errno));
	ipc_msg_free(m);
}

static char *sendmail_login(void)
{
	struct passwd *pw = getpwuid(getuid());
	if (pw == NULL)
		sendmail_fatal(EX_OSERR, "no login name for uid %u", (unsigned)getuid());
	return xstrdup(pw->pw_name);
}

/* -F, else $NAME, else the GECOS full name */
static char *sendmail_fullname(const struct sendmail_opts *o)
{
	if (o->fullname)
		return xstrdup(o->fullname);
	const char *env = getenv("NAME");
	if (env && *env)
		return xstrdup(env);
	struct passwd *pw = getpwuid(getuid());
	if (pw == NULL || pw->pw_gecos == NULL)
		return xstrdup("");
	size_t n = strcspn(pw->pw_gecos, ",");
	return xmemdup(pw->pw_gecos, n);
}

int main(int argc, char **argv)
{
	struct sendmail_opts o = { .dots = true };
	o.confdir = getenv("MAIL_CONFIG");
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (strcmp(base, "newaliases") == 0)
		sendmail_fatal(EX_USAGE, "%s: not supported yet", base);
	sendmail_list_queue = strcmp(base, "mailq") == 0;
	int first = sendmail_parse(argc, argv, &o);
	if (o.confdir == NULL || *o.confdir == '\0')
		o.confdir = SENDMAIL_DEFAULT_CONFDIR;
	signal(SIGPIPE, SIG_IGN);

	const char *err = NULL;
	struct cfg *cfg = cfg_load(o.confdir, &err);
	if (cfg == NULL)
		sendmail_fatal(EX_CONFIG, "%s", err);
	if (sendmail_list_queue) {
		/* mailq: postern queue's listing (Postfix postqueue -p layout) */
		if (first < argc || o.extract)
			sendmail_usage("-bp takes no recipients and no -t");
		int r = cli_queue_verb(cfg, "queue", 0, NULL);
		cfg_free(&cfg);
		return r;
	}
	size_t max = cfg->message_size_limit > 0 ? (size_t)cfg->message_size_limit : SIZE_MAX / 4;
	char *sender = o.sender ? xstrdup(o.sender) : sendmail_login();
	char *fullname = sendmail_fullname(&o);

	int fd = sendmail_copy_input(&o, max);
	struct sendmail_hdr_rcpts rcpts = { 0 };
	if (o.extract) {
		struct stat st;
		size_t n = fstat(fd, &st) == 0 ? (size_t)st.st_size : 0;
		if (n > SENDMAIL_HEADER_SCAN)
			n = SENDMAIL_HEADER_SCAN;
		char *head = xmalloc(n + 1);
		if (n > 0 && pread(fd, head, n, 0) != (ssize_t)n)
			sendmail_fatal(EX_IOERR, "cannot read the message copy");
		if (sendmail_hdr_rcpts(head, n, &rcpts, &err) < 0)
			sendmail_fatal(EX_DATAERR, "bad recipient header: %s", err);
		free(head);
		if (rcpts.n == 0 && first >= argc)
			sendmail_fatal(EX_USAGE, "No recipient addresses found in message header");
	}
	if (rcpts.n == 0 && first >= argc)
		sendmail_fatal(EX_USAGE,
			       "Recipient addresses must be specified on the command line or via the -t option");

	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/public/submit",
			     cfg->queue_directory) >= sizeof(sun.sun_path))
		sendmail_fatal(EX_CONFIG, "queue_directory path too long");
	int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		sendmail_fatal(EX_TEMPFAIL, "the mail system is down: %s: %s", sun.sun_path,
			       strerror(errno));
	struct ipc_msg m;
	ipc_msg_init(&m, IPC_S_SUBMIT, 1);
	ipc_put_cstr(&m, sender);
	ipc_put_u32(&m, o.flags);
	ipc_put_cstr(&m, o.envid ? o.envid : "");
	ipc_put_cstr(&m, fullname);
	sendmail_send(sock, &m);
	/* command-line recipients first, then those from the header (-t adds
	 * them, as Postfix does) */
	for (int i = first; i <= argc + (int)rcpts.n - 1; i++) {
		const char *r = i < argc ? argv[i] : rcpts.addr[i - argc];
		ipc_msg_init(&m, IPC_S_RCPT, 2);
		ipc_put_cstr(&m, r);
		ipc_put_cstr(&m, "");
		ipc_put_u32(&m, o.notify);
		if (m.bad)
			sendmail_fatal(EX_USAGE, "recipient address too long");
		sendmail_send(sock, &m);
	}
	ipc_msg_init(&m, IPC_S_DATA, 3);
	ipc_msg_set_fd(&m, fd);
	sendmail_send(sock, &m);

	struct ipc_msg res;
	int r = ipc_recv(sock, &res, &err);
	uint32_t code = 0;
	char *text = NULL, *qid = NULL;
	if (r <= 0 || res.type != IPC_S_RESULT || !ipc_get_u32(&res, &code) ||
	    !ipc_get_cstr(&res, &text) || !ipc_get_cstr(&res, &qid) || !ipc_get_end(&res))
		sendmail_fatal(EX_TEMPFAIL, "the mail system did not answer; try again later");
	ipc_msg_free(&res);
	close(sock);
	if (code != 0) {
		/* the text is the server's; print only printable bytes */
		for (char *p = text; *p; p++)
			if ((unsigned char)*p < 32 || *p == 127)
				*p = '?';
		fprintf(stderr, "sendmail: %s\n", text);
	}
	free(text);
	free(qid);
	free(sender);
	free(fullname);
	sendmail_hdr_rcpts_free(&rcpts);
	cfg_free(&cfg);
	return code > 255 ? EX_SOFTWARE : (int)code;
}
