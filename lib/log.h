/*
 * log.h - the one way Postern writes log lines.
 *
 * Lines have Postfix's shape so pflogsumm and log monitors work unchanged:
 *   "Nov 23 18:10:31 host postern/smtpd[1234]: 4F2A...: client=..."
 * written either to syslog (facility LOG_MAIL, ident "postern/<process>") or,
 * when maillog_file is set, appended to that file with one write() per line
 * (so concurrent processes never interleave inside a line). Before log_open
 * lines go to stderr. Peer-supplied text must pass through buf_escape first.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include "lib/common.h"

/* Set the process name ("smtpd" gives "postern/smtpd") and the destination:
 * a file path, "" or NULL for syslog, "-" for stderr. May be called again
 * (reload, after fork). Returns 0, or -1 with *error_r when the file cannot
 * be opened (logging then goes to stderr). */
int log_open(const char *process, const char *maillog_file, const char **error_r);
/* Change only the process name (after fork), keeping the destination. */
void log_set_process(const char *process);
/* Close the destination; lines go to stderr afterwards. */
void log_close(void);

void log_info(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Prefixes "warning: ". */
void log_warning(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Prefixes "error: ". */
void log_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Prefixes "fatal: " and exits 1: only for a broken environment. */
NORETURN void log_fatal(const char *fmt, ...) PRINTF_LIKE(1, 2);
/* Prefixes "panic: " and aborts: only for our own broken invariants. */
NORETURN void log_panic(const char *fmt, ...) PRINTF_LIKE(1, 2);

#endif
