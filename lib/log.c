/*
 * log.c - Postfix-shaped log lines to a file, syslog or stderr (see log.h).
 *
 * Owns: the log file descriptor and the process name.
 * Never: writes a line with more than one write() call; logs raw peer bytes.
 * Tests: tests/integration (log lines checked by pflogsumm and golden text).
 */
#include <fcntl.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/common.h"

#define LOG_LINE_MAX 4096

enum log_dest {
	LOG_DEST_STDERR, /* before log_open, or "-" */
	LOG_DEST_FILE,   /* maillog_file */
	LOG_DEST_SYSLOG, /* syslog(LOG_MAIL) */
};

static enum log_dest log_dest = LOG_DEST_STDERR;
static int log_fd = -1;            /* maillog_file, O_APPEND */
static char log_ident[64] = "postern"; /* "postern/<process>" */
static char log_host[256];          /* short host name for file lines */

static void log_set_ident(const char *process)
{
	snprintf(log_ident, sizeof(log_ident), "postern%s%s", process && *process ? "/" : "",
		 process ? process : "");
}

void log_set_process(const char *process)
{
	log_set_ident(process);
	if (log_dest == LOG_DEST_SYSLOG) {
		closelog();
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	}
}

void log_close(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	if (log_dest == LOG_DEST_SYSLOG)
		closelog();
	log_dest = LOG_DEST_STDERR;
}

int log_open(const char *process, const char *maillog_file, const char **error_r)
{
	log_close();
	log_set_ident(process);
	if (gethostname(log_host, sizeof(log_host) - 1) < 0)
		snprintf(log_host, sizeof(log_host), "localhost");
	char *dot = strchr(log_host, '.');
	if (dot)
		*dot = '\0';
	if (maillog_file == NULL || *maillog_file == '\0') {
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
		log_dest = LOG_DEST_SYSLOG;
		return 0;
	}
	if (strcmp(maillog_file, "-") == 0)
		return 0;
	log_fd = open(maillog_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (log_fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	log_dest = LOG_DEST_FILE;
	return 0;
}

static void log_emit(const char *prefix, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	size_t n = 0;
	char msg[LOG_LINE_MAX];

	int m = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (m < 0)
		return;
	if (log_dest == LOG_DEST_SYSLOG) {
		syslog(LOG_INFO, "%s%s", prefix, msg);
		return;
	}
	if (log_dest == LOG_DEST_FILE) {
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		n = strftime(line, sizeof(line), "%b %e %H:%M:%S ", &tm);
		/* syslog pads the day with a space, as strftime's %e does */
	}
	int k = snprintf(line + n, sizeof(line) - n, "%s%s%s[%ld]: %s%s",
			 log_dest == LOG_DEST_FILE ? log_host : "",
			 log_dest == LOG_DEST_FILE ? " " : "", log_ident, (long)getpid(), prefix, msg);
	if (k < 0)
		return;
	n += (size_t)k;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	int fd = log_dest == LOG_DEST_FILE ? log_fd : STDERR_FILENO;
	ssize_t w = write(fd, line, n);
	(void)w; /* nowhere left to report a failed log write */
}

#define LOG_FN(name, prefix)                                                     \
	void name(const char *fmt, ...)                                          \
	{                                                                        \
		va_list ap;                                                      \
		int saved = errno;                                               \
		va_start(ap, fmt);                                               \
		log_emit(prefix, fmt, ap);                                       \
		va_end(ap);                                                      \
		errno = saved;                                                   \
	}

LOG_FN(log_info, "")
LOG_FN(log_warning, "warning: ")
LOG_FN(log_error, "error: ")

void log_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit("fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}

void log_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit("panic: ", fmt, ap);
	va_end(ap);
	abort();
}
