/*
 * queue_ctl.h - control requests to the running queue process.
 *
 * The postern CLI asks the queue process (the only writer of the queue) to
 * act: flush, delete ID|ALL, hold ID|ALL, release ID|ALL, requeue ID|ALL.
 * Transport: a SOCK_SEQPACKET unix socket $queue_directory/private/control
 * (socket mode 0600 inside a 0700 directory owned by mail_owner; the queue
 * also checks SO_PEERCRED: only root and its own uid may ask). Framing is
 * lib/ipc.h; the message types are this module's own (not ipc_proto.h):
 *
 *   QUEUE_CTL_REQUEST  cstr verb, cstr id ("" for flush)
 *   QUEUE_CTL_REPLY    u32 status (0 done, 1 refused), cstr text
 *
 * One request per connection; the queue answers and the client closes.
 * Tests: tests/integration/test_queue_ctl.py.
 */
#ifndef POSTERN_QUEUE_CTL_H
#define POSTERN_QUEUE_CTL_H

#include "lib/buf.h"
#include "lib/cfg.h"

enum queue_ctl_type {
	QUEUE_CTL_REQUEST = 1, /* client -> queue: cstr verb, cstr id */
	QUEUE_CTL_REPLY = 2,   /* queue -> client: u32 status, cstr text */
};

#define QUEUE_CTL_TIMEOUT_MS 30000
#define QUEUE_CTL_NAME "control" /* socket name under private/ */

/* Owned path of the control socket, $queue_directory/private/control. */
char *queue_ctl_path(const struct cfg *cfg); /* how long the client waits for the reply */

/*
 * Send one request and wait (blocking, at most QUEUE_CTL_TIMEOUT_MS) for the
 * answer. verb is "flush", "delete", "hold", "release" or "requeue"; id is a
 * queue ID, "ALL", or NULL/"" for flush. The reply text ("4F2A...: placed
 * on hold", "3 messages deleted") is appended to reply.
 * Returns 0 when done; 1 when the queue refused (no such message, bad
 * verb: the reason is in reply); -1 with *error_r (static text) when the
 * queue process cannot be reached (not running, no permission, timeout).
 */
int queue_ctl_request(const struct cfg *cfg, const char *verb, const char *id, struct buf *reply,
		      const char **error_r);

#endif
