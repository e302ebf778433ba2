/*
 * ipc_chan.h - a non-blocking IPC channel on a libevent loop.
 *
 * Wraps one SOCK_SEQPACKET socket: received messages are handed to a callback
 * one at a time; sent messages are queued and written when the socket is
 * writable, so a slow peer never blocks the loop. A malformed packet or a
 * closed peer calls the close callback once; the owner then frees the channel.
 */
#ifndef POSTERN_IPC_CHAN_H
#define POSTERN_IPC_CHAN_H

#include <event2/event.h>

#include "lib/ipc.h"

struct ipc_chan;

/* Called for each message. m is valid only during the call; take its
 * descriptor with ipc_msg_take_fd() to keep it. The callback may free the
 * channel (ipc_chan_free) and must then return at once. */
typedef void ipc_chan_recv_fn(struct ipc_chan *chan, struct ipc_msg *m, void *ctx);
/* Called once when the peer closed or sent garbage (reason says which).
 * No more messages arrive; the owner frees the channel. */
typedef void ipc_chan_close_fn(struct ipc_chan *chan, const char *reason, void *ctx);

/* Take ownership of fd (set non-blocking here) and start reading. name is
 * copied and used in log lines ("smtpd[123]"). */
struct ipc_chan *ipc_chan_new(struct event_base *base, int fd, const char *name,
			      ipc_chan_recv_fn *recv, ipc_chan_close_fn *close, void *ctx);
/* Queue m for sending (m->fd, if any, is duplicated: the caller still owns
 * and frees m). Returns 0, or -1 when the channel is closed or more than
 * IPC_CHAN_QUEUE_MAX messages are waiting. */
int ipc_chan_send(struct ipc_chan *chan, const struct ipc_msg *m);
/* Messages waiting to be written. */
size_t ipc_chan_pending(const struct ipc_chan *chan);
/* The name given at creation. */
const char *ipc_chan_name(const struct ipc_chan *chan);
/* Close the socket, drop queued output, free. Takes NULL; clears *chan. */
void ipc_chan_free(struct ipc_chan **chan);

#define IPC_CHAN_QUEUE_MAX 100000

#endif
