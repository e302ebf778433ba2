/*
 * smtpd_queue.c - the IPC client to the queue process (see smtpd_queue.h).
 *
 * Purpose: one place that speaks ipc_proto.h's smtpd <-> queue messages.
 * Owns: the queue channel. Never: opens a queue file, keeps a session
 * pointer across a round trip (reqid = session id, looked up on reply),
 * trusts a message it did not expect (the channel is closed instead).
 * Limits: IPC_STR_MAX per string (addresses are far shorter).
 * Tests: tests/integration/test_smtpd_queue.py.
 */
#include <unistd.h>

#include "mta/ipc/ipc_proto.h"
#include "mta/smtpd/smtpd_message.h"
#include "mta/smtpd/smtpd_queue.h"
#include "lib/log.h"
#include "lib/common.h"

static const struct smtpd_queue_ops smtpd_queue_sessions = {
	smtpd_message_on_opened,
	smtpd_message_on_committed,
	smtpd_message_on_error,
	smtpd_message_queue_gone,
};
static const struct smtpd_queue_ops *smtpd_queue_ops = &smtpd_queue_sessions;

static void smtpd_queue_on_msg(struct ipc_chan *chan, struct ipc_msg *m, void *ctx)
{
	struct smtpd_server *srv = ctx;
	char *qid = NULL, *reply = NULL;
	switch (m->type) {
	case IPC_Q_OPENED: {
		if (!ipc_get_cstr(m, &qid) || !ipc_get_end(m) || qid[0] == '\0' || strlen(qid) > 30)
			goto bad;
		int fd = ipc_msg_take_fd(m);
		if (fd < 0)
			goto bad;
		smtpd_queue_ops->opened(srv, m->reqid, qid, fd);
		break;
	}
	case IPC_Q_COMMITTED:
		if (!ipc_get_cstr(m, &qid) || !ipc_get_end(m))
			goto bad;
		smtpd_queue_ops->committed(srv, m->reqid, qid);
		break;
	case IPC_Q_ERROR:
		if (!ipc_get_cstr(m, &qid) || !ipc_get_cstr(m, &reply) || !ipc_get_end(m))
			goto bad;
		smtpd_queue_ops->error(srv, m->reqid, qid, reply);
		break;
	default:
		log_warning("unexpected message type %u from the queue; closing the channel",
			    (unsigned)m->type);
		goto close;
	}
	free(qid);
	free(reply);
	return;
bad:
	log_warning("malformed message type %u from the queue; closing the channel", (unsigned)m->type);
close:
	free(qid);
	free(reply);
	ipc_chan_free(&srv->queue);
	smtpd_queue_ops->gone(srv);
}

static void smtpd_queue_on_close(struct ipc_chan *chan, const char *reason, void *ctx)
{
	struct smtpd_server *srv = ctx;
	log_warning("queue channel closed: %s", reason);
	ipc_chan_free(&srv->queue);
	smtpd_queue_ops->gone(srv);
}

void smtpd_queue_init(struct smtpd_server *srv, int fd, const struct smtpd_queue_ops *ops)
{
	if (ops != NULL)
		smtpd_queue_ops = ops;
	srv->queue = ipc_chan_new(srv->base, fd, "queue", smtpd_queue_on_msg, smtpd_queue_on_close, srv);
}

static int smtpd_queue_send(struct smtpd_server *srv, struct ipc_msg *m)
{
	int r = srv->queue != NULL && !m->bad ? ipc_chan_send(srv->queue, m) : -1;
	ipc_msg_free(m);
	return r;
}

int smtpd_queue_open(struct smtpd_session *s)
{
	struct ipc_msg m;
	ipc_msg_init(&m, IPC_Q_OPEN, s->id);
	return smtpd_queue_send(s->srv, &m);
}

int smtpd_queue_commit(struct smtpd_session *s, uint64_t size, const char *protocol,
		       const char *msgid)
{
	struct ipc_msg m;
	ipc_msg_init(&m, IPC_Q_SENDER, s->id);
	ipc_put_cstr(&m, s->qid);
	ipc_put_cstr(&m, s->sender);
	ipc_put_u32(&m, s->mail.flags);
	ipc_put_cstr(&m, s->mail.envid);
	if (smtpd_queue_send(s->srv, &m) < 0)
		return -1;
	for (size_t i = 0; i < s->n_rcpts; i++) {
		ipc_msg_init(&m, IPC_Q_RCPT, s->id);
		ipc_put_cstr(&m, s->qid);
		ipc_put_cstr(&m, s->rcpts[i].addr);
		ipc_put_cstr(&m, s->rcpts[i].orcpt);
		ipc_put_u32(&m, s->rcpts[i].notify);
		if (smtpd_queue_send(s->srv, &m) < 0)
			return -1;
	}
	ipc_msg_init(&m, IPC_Q_COMMIT, s->id);
	ipc_put_cstr(&m, s->qid);
	ipc_put_u64(&m, size);
	ipc_put_i64(&m, s->arrival_us);
	ipc_put_cstr(&m, s->name);
	ipc_put_cstr(&m, s->addr);
	ipc_put_u32(&m, s->port);
	ipc_put_cstr(&m, s->helo ? s->helo : "");
	ipc_put_cstr(&m, protocol);
	ipc_put_cstr(&m, msgid);
	ipc_put_u32(&m, s->hold_reason ? IPC_QC_HOLD : 0);
	ipc_put_cstr(&m, s->hold_reason ? s->hold_reason : "");
	return smtpd_queue_send(s->srv, &m);
}

void smtpd_queue_abort(struct smtpd_server *srv, const char *qid)
{
	if (qid == NULL || qid[0] == '\0' || srv->queue == NULL)
		return;
	struct ipc_msg m;
	ipc_msg_init(&m, IPC_Q_ABORT, 0);
	ipc_put_cstr(&m, qid);
	smtpd_queue_send(srv, &m);
}
