/*
 * smtpd_queue.h - smtpd's side of the queue channel (mta/ipc/ipc_proto.h):
 * ask for a content file, send the envelope, commit, abort. Replies are
 * routed to the session whose ID is the message's reqid.
 *
 * Never blocks: messages are queued on the ipc_chan.
 * Tests: tests/integration/test_smtpd_queue.py (with tests/integration/fake_queue.py).
 */
#ifndef POSTERN_SMTPD_QUEUE_H
#define POSTERN_SMTPD_QUEUE_H

#include "mta/smtpd/smtpd_session.h"

/* Where the queue's replies go: SMTP sessions (smtpd_message.c) or local
 * submissions (smtpd_submit.c). The channel has already been freed when
 * gone is called. */
struct smtpd_queue_ops {
	void (*opened)(struct smtpd_server *srv, uint32_t reqid, const char *qid, int fd);
	void (*committed)(struct smtpd_server *srv, uint32_t reqid, const char *qid);
	void (*error)(struct smtpd_server *srv, uint32_t reqid, const char *qid, const char *reply);
	void (*gone)(struct smtpd_server *srv);
};

/* Take fd (the queue's socket) and start reading replies, which are checked
 * here and handed to ops (NULL: the SMTP sessions'). */
void smtpd_queue_init(struct smtpd_server *srv, int fd, const struct smtpd_queue_ops *ops);
/* IPC_Q_OPEN for session s. 0, or -1 when the queue is unreachable. */
int smtpd_queue_open(struct smtpd_session *s);
/* IPC_Q_SENDER, IPC_Q_RCPT x n, IPC_Q_COMMIT for the session's
 * transaction. msgid may be "". 0 or -1. */
int smtpd_queue_commit(struct smtpd_session *s, uint64_t size, const char *protocol,
		       const char *msgid);
/* IPC_Q_ABORT qid (no reply). Quietly does nothing when the queue is gone. */
void smtpd_queue_abort(struct smtpd_server *srv, const char *qid);

#endif
