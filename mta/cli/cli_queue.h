/*
 * cli_queue.h - the postern verbs that look at or act on the queue.
 *
 * Listing and show read the queue directory directly (read-only, every file
 * treated as hostile); flush, delete, hold, release and requeue are requests
 * to the running queue process, the only writer of the queue.
 */
#ifndef POSTERN_CLI_QUEUE_H
#define POSTERN_CLI_QUEUE_H

#include "lib/cfg.h"

/* Run verb ("queue", "flush", "delete", "hold", "release", "requeue",
 * "show") with its arguments. Returns the process exit status. */
int cli_queue_verb(const struct cfg *cfg, const char *verb, int argc, char **argv);

/* postern check: validate the queue tree, printing each problem on stderr.
 * Returns 0 when sound, 1 otherwise. */
int cli_queue_check(const struct cfg *cfg);

#endif
