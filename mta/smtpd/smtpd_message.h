/*
 * smtpd_message.h - one message's content on its way to the queue: the
 * content file from IPC_Q_OPENED, DATA/BDAT bytes through smtpd_data, the
 * end-of-message checks, the envelope and the commit; and the queue's
 * replies, routed here by session id.
 *
 * Tests: tests/integration/test_smtpd_queue.py, test_smtpd_hostile.py.
 */
#ifndef POSTERN_SMTPD_MESSAGE_H
#define POSTERN_SMTPD_MESSAGE_H

#include "mta/smtpd/smtpd_session.h"

/* DATA or first BDAT: ask the queue for a content file (state WAIT_OPEN).
 * Replies 451 itself when the queue is unreachable. */
void smtpd_message_open(struct smtpd_session *s);
/* BDAT chunk of n bytes follows: read it into the message (or skip it
 * when skip_reply is not NULL, then send that reply). */
void smtpd_message_bdat(struct smtpd_session *s, uint64_t n, bool last, const char *skip_reply);

/* Input in DATA/BDAT states: feed up to limit buffered bytes; true (and
 * *ended) when the end of DATA was found. */
bool smtpd_message_feed(struct smtpd_session *s, uint64_t limit, bool *ended);
/* The current BDAT chunk has been read: reply, or finish the message. */
void smtpd_message_bdat_chunk_done(struct smtpd_session *s);
/* Content complete: checks, envelope, commit (state WAIT_COMMIT). */
void smtpd_message_end(struct smtpd_session *s);
/* The queue file is open and the milters (if any) let DATA pass: start
 * reading content (354, or the BDAT chunk). */
void smtpd_message_data_go(struct smtpd_session *s);
/* Send the envelope and commit a content file of total bytes (state
 * WAIT_COMMIT); closes the content fd. */
void smtpd_message_commit(struct smtpd_session *s, uint64_t total);
/* Refuse the transaction with reply (may be multi-line, CRLF between
 * lines), reset it (IPC_Q_ABORT), back to CMD. */
void smtpd_message_fail(struct smtpd_session *s, const char *reply);
/* smtpd_data_min_rate: is the client sending content too slowly? */
bool smtpd_message_too_slow(struct smtpd_session *s);
/* Close the content file and forget buffered content. */
void smtpd_message_content_close(struct smtpd_session *s);

/* Queue replies for session id (looked up; late replies are dropped, a
 * late content file is given back with IPC_Q_ABORT). */
void smtpd_message_on_opened(struct smtpd_server *srv, uint32_t id, const char *qid, int fd);
void smtpd_message_on_committed(struct smtpd_server *srv, uint32_t id, const char *qid);
void smtpd_message_on_error(struct smtpd_server *srv, uint32_t id, const char *qid,
			    const char *reply);
/* The queue channel closed: every waiting session answers 451. */
void smtpd_message_queue_gone(struct smtpd_server *srv);

#endif
