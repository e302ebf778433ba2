/*
 * queue_policy.h - the scheduler's pure decisions, exposed for unit tests.
 *
 * The scheduler itself is internal to postern-queue (queue_int.h); these
 * two functions hold its arithmetic and its exit-code policy.
 */
#ifndef POSTERN_QUEUE_POLICY_H
#define POSTERN_QUEUE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/* Seconds until the next attempt of a message age_s seconds old:
 * clamp(age, minimal_backoff_time, maximal_backoff_time), Postfix's rule
 * (the wait doubles as the message ages, within the bounds). */
int64_t queue_policy_backoff(int64_t age_s, int64_t min_s, int64_t max_s);

/*
 * Map a delivery result (exit status >= 0, or -signal) and the first line
 * of output to a decision, as reference/mailbox-formats.md §6 says:
 * 0 is success (not handled here); killed by a signal, EX_TEMPFAIL (75) and
 * EX_OSERR (71) defer; every other code fails. For a |command (command
 * true) an enhanced status code at the start of the output ("5.2.2 text")
 * decides instead. Writes the status code to dsn_r ("4.3.0", "5.1.1", ...)
 * and the decision to *defer_r; returns the rest of output (after any code).
 */
const char *queue_policy_map_status(int64_t status, bool command, const char *output,
				   char dsn_r[16], bool *defer_r);

#endif
