/*
 * ipc_chan.c - IPC channel on libevent (see ipc_chan.h).
 *
 * Purpose: deliver typed messages between processes without blocking.
 * Owns: the socket and the queue of messages not yet written.
 * Never: blocks; passes a malformed packet to the owner.
 * Limits: IPC_MSG_MAX per packet, IPC_CHAN_QUEUE_MAX queued messages.
 * Tests: tests/unit/mta/ipc_chan_test.c.
 */
#include <fcntl.h>
#include <unistd.h>

#include "mta/ipc/ipc_chan.h"
#include "lib/log.h"
#include "lib/common.h"

struct ipc_out {
	struct ipc_out *next; /* FIFO link */
	struct ipc_msg msg;   /* owned copy, with its own fd */
};

struct ipc_chan {
	int fd;                   /* SEQPACKET socket, non-blocking */
	char *name;               /* for logs */
	struct event *rd, *wr;    /* read and write readiness */
	struct ipc_out *head;     /* output FIFO */
	struct ipc_out **tail;
	size_t pending;           /* entries in the FIFO */
	bool closed;              /* close callback already called */
	bool in_callback;         /* a callback of ours is running */
	bool zombie;              /* freed inside a callback: free on return */
	ipc_chan_recv_fn *recv;
	ipc_chan_close_fn *close;
	void *ctx;
};

static void ipc_chan_fail(struct ipc_chan *c, const char *reason)
{
	if (c->closed)
		return;
	c->closed = true;
	event_del(c->rd);
	event_del(c->wr);
	c->close(c, reason, c->ctx);
}

static void ipc_chan_release(struct ipc_chan *c);

static void ipc_chan_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_chan *c = arg;

	c->in_callback = true;
	/* bounded batch so one busy peer cannot starve the others */
	for (int i = 0; i < 64 && !c->closed && !c->zombie; i++) {
		struct ipc_msg m;
		const char *err = NULL;
		int r = ipc_recv(c->fd, &m, &err);
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ipc_msg_free(&m);
			break;
		}
		if (r <= 0) {
			ipc_msg_free(&m);
			ipc_chan_fail(c, r == 0 ? "peer closed" : (err ? err : strerror(errno)));
			break;
		}
		c->recv(c, &m, c->ctx);
		ipc_msg_free(&m);
	}
	c->in_callback = false;
	if (c->zombie) /* the owner freed the channel from a callback */
		ipc_chan_release(c);
}

static void ipc_chan_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_chan *c = arg;
	while (c->head != NULL) {
		struct ipc_out *o = c->head;
		if (ipc_send(c->fd, &o->msg) < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
				return; /* stay armed */
			c->in_callback = true;
			ipc_chan_fail(c, strerror(errno));
			c->in_callback = false;
			if (c->zombie)
				ipc_chan_release(c);
			return;
		}
		c->head = o->next;
		if (c->head == NULL)
			c->tail = &c->head;
		c->pending--;
		ipc_msg_free(&o->msg);
		free(o);
	}
	event_del(c->wr);
}

struct ipc_chan *ipc_chan_new(struct event_base *base, int fd, const char *name,
			      ipc_chan_recv_fn *recv, ipc_chan_close_fn *close, void *ctx)
{
	struct ipc_chan *c = xcalloc(1, sizeof(*c));
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	c->fd = fd;
	c->name = xstrdup(name);
	c->tail = &c->head;
	c->recv = recv;
	c->close = close;
	c->ctx = ctx;
	c->rd = event_new(base, fd, EV_READ | EV_PERSIST, ipc_chan_on_read, c);
	c->wr = event_new(base, fd, EV_WRITE | EV_PERSIST, ipc_chan_on_write, c);
	event_add(c->rd, NULL);
	return c;
}

int ipc_chan_send(struct ipc_chan *c, const struct ipc_msg *m)
{
	if (c->closed || c->pending >= IPC_CHAN_QUEUE_MAX || m->bad)
		return -1;
	struct ipc_out *o = xcalloc(1, sizeof(*o));
	ipc_msg_init(&o->msg, m->type, m->reqid);
	if (buf_append(&o->msg.body, m->body.data, m->body.len) < 0)
		CHECK(!"ipc body larger than its own maximum");
	if (m->fd >= 0) {
		o->msg.fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);
		if (o->msg.fd < 0) {
			ipc_msg_free(&o->msg);
			free(o);
			return -1;
		}
	}
	/* try at once when nothing is queued: the common case needs no event */
	if (c->head == NULL && ipc_send(c->fd, &o->msg) == 0) {
		ipc_msg_free(&o->msg);
		free(o);
		return 0;
	}
	*c->tail = o;
	c->tail = &o->next;
	c->pending++;
	event_add(c->wr, NULL);
	return 0;
}

size_t ipc_chan_pending(const struct ipc_chan *c)
{
	return c->pending;
}

const char *ipc_chan_name(const struct ipc_chan *c)
{
	return c->name;
}

void ipc_chan_free(struct ipc_chan **cp)
{
	struct ipc_chan *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	if (c->in_callback) {
		/* still on the stack of on_read/on_write: stop everything now,
		 * release the memory when that frame returns */
		c->zombie = true;
		c->closed = true;
		event_del(c->rd);
		event_del(c->wr);
		return;
	}
	ipc_chan_release(c);
}

static void ipc_chan_release(struct ipc_chan *c)
{
	event_free(c->rd);
	event_free(c->wr);
	while (c->head) {
		struct ipc_out *o = c->head;
		c->head = o->next;
		ipc_msg_free(&o->msg);
		free(o);
	}
	close(c->fd);
	free(c->name);
	free(c);
}
