/*
 * queue_list.h - reading the queue for people: postqueue -p, -j, show, check.
 *
 * These run in the postern CLI, not in the queue process: they read
 * queue_directory directly and never write it. Every file is hostile: a
 * file that vanishes mid-scan (delivered meanwhile) is skipped, one that
 * does not parse is reported and skipped. Blocking file I/O only.
 * Tests: tests/integration/test_queue_ctl.py, tests/unit/queue/queue_list_test.c.
 */
#ifndef POSTERN_QUEUE_LIST_H
#define POSTERN_QUEUE_LIST_H

#include <stdbool.h>
#include <stdio.h>

#include "lib/buf.h"
#include "lib/cfg.h"

/*
 * Print the messages of active/, deferred/ and hold/ sorted by queue ID
 * (arrival order), with their unfinished recipients:
 *   json false: Postfix's `postqueue -p` layout (long queue ID form: ID
 *               followed by '*' when active, '!' when on hold; size; arrival;
 *               sender; "(reason)" lines before the recipients it applies to;
 *               "-- N Kbytes in M Requests." or "Mail queue is empty")
 *   json true:  `postqueue -j`: one JSON object per line with queue_name,
 *               queue_id, arrival_time, message_size, forced_expire, sender,
 *               recipients [{address, delay_reason}]
 * Returns 0, or -1 with *error_r (static) when queue_directory cannot be read.
 */
int queue_list_print(const struct cfg *cfg, bool json, FILE *out, const char **error_r);

/*
 * `postern show ID`: the envelope (queue, arrival, size, sender, client,
 * recipients with their state) and the message header section, with
 * non-printable bytes escaped. Returns 0; 1 when there is no such message;
 * -1 with *error_r for a bad ID or a file that cannot be read or parsed.
 */
int queue_show(const struct cfg *cfg, const char *id, FILE *out, const char **error_r);

/*
 * `postern check` for the queue tree: every problem (subdirectory that is
 * not a directory or is open to others, unparsable envelope in active/,
 * deferred/ or hold/, stray file name) appended to report as
 * "PATH: problem\n". Content files without an envelope are not reported:
 * while the queue runs they are transactions in progress. Returns the
 * number of problems. A missing queue_directory is one problem.
 */
int queue_list_check(const struct cfg *cfg, struct buf *report);

#endif
