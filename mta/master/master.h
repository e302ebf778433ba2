/*
 * master.h - the supervising process (postern start / start-fg).
 *
 * master keeps root when started as root: it loads main.cf and master.cf,
 * binds the listening sockets, starts postern-queue and one postern-smtpd per
 * master.cf service as mail_owner with socketpairs between them, restarts a
 * child that dies, reloads on SIGHUP without dropping sessions, drains on
 * SIGTERM, and runs postern-lda (or an alias |command) under the recipient's
 * uid when the queue asks. It never reads network input.
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

/*
 * Run the mail system until SIGTERM/SIGINT. confdir is the configuration
 * directory; self_dir is the directory of the running postern binary (used
 * when daemon_directory is empty). When ready_fd >= 0, one line is written to
 * it once everything is listening ("ok") or start-up failed ("error: why"),
 * and it is closed. Returns the process exit status (0 after a clean stop).
 */
int master_run(const char *confdir, const char *self_dir, int ready_fd);

/*
 * Path of the pid file of the master using confdir's main.cf:
 * $queue_directory/pid/master.pid. Owned string, or NULL with *error_r.
 */
char *master_pid_path(const char *confdir, const char **error_r);

/*
 * The pid of the running master for confdir, or 0 when none holds the pid
 * file's lock, or -1 with *error_r when the configuration cannot be read.
 */
long master_running_pid(const char *confdir, const char **error_r);

#endif
