/*
 * smtpd_message.c - one message's content and its way to the queue (see
 * smtpd_message.h).
 *
 * Purpose: turn DATA/BDAT input into the content file the queue handed us,
 * check it at its end, send the envelope and commit, and map the queue's
 * replies to SMTP replies.
 * Owns: the session's content fd and content buffer.
 * Never: opens a queue file itself; answers 250 before IPC_Q_COMMITTED;
 * keeps a session pointer across an IPC round trip (reqid = session id,
 * looked up on reply); passes a malformed queue reply text to the client.
 * Limits: message_size_limit (552 5.3.4 after reading to the end),
 * hopcount_limit (554 5.4.6), header_size_limit (the excess of a longer
 * header is discarded), smtpd_data_min_rate, bare LF and NUL rules.
 * Tests: tests/integration/test_smtpd_queue.py, test_smtpd_hostile.py,
 * test_smtpd_e2e.py.
 */
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "mta/smtpd/smtpd_message.h"
#include "mta/smtpd/smtpd_milter.h"
#include "mta/smtpd/smtpd_queue.h"
#include "mta/smtpd/smtpd_reply.h"
#include "lib/log.h"
#include "lib/common.h"

#define SMTPD_CONTENT_FLUSH (64 * 1024)  /* write content in blocks this big */
#define SMTPD_FEED_SLICE (64 * 1024)     /* input fed to the machine per call */
#define SMTPD_MILTER_HEADER_MAX 60000   /* header_size_limit with milters */
#define SMTPD_RATE_GRACE 10              /* seconds before the data rate counts
                                          * (or smtpd_timeout when shorter) */

void smtpd_message_content_close(struct smtpd_session *s)
{
	if (s->content_fd >= 0)
		close(s->content_fd);
	s->content_fd = -1;
	/* keep a small buffer for the next message; give a big one back, so
	 * thousands of idle sessions do not each hold a message's worth */
	if (s->content.cap > 2 * SMTPD_CONTENT_FLUSH)
		buf_free(&s->content);
	else
		buf_reset(&s->content);
}


static void smtpd_message_flush(struct smtpd_session *s)
{
	size_t off = 0;
	while (off < s->content.len && !s->write_error) {
		ssize_t w = write(s->content_fd, s->content.data + off, s->content.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warning("%s: write queue file: %s", s->qid, w < 0 ? strerror(errno) : "short write");
			s->write_error = true;
			break;
		}
		off += (size_t)w;
	}
	buf_reset(&s->content);
}

/* Data min rate: a client trickling content cannot hold the session. */
bool smtpd_message_too_slow(struct smtpd_session *s)
{
	long long rate = s->conf->cfg->smtpd_data_min_rate;
	if (rate <= 0)
		return false;
	struct timeval now;
	gettimeofday(&now, NULL);
	long long elapsed = (long long)(now.tv_sec - s->data_start.tv_sec);
	long long grace = s->conf->cfg->smtpd_timeout < SMTPD_RATE_GRACE ? s->conf->cfg->smtpd_timeout
									   : SMTPD_RATE_GRACE;
	return elapsed > grace && (long long)s->data_bytes < rate * elapsed;
}

void smtpd_message_end(struct smtpd_session *s);

/* Feed input to the content machine; returns true when the message ended. */
bool smtpd_message_feed(struct smtpd_session *s, uint64_t limit, bool *ended)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	*ended = false;
	size_t avail = evbuffer_get_length(in);
	if (avail > limit)
		avail = (size_t)limit;
	while (avail > 0) {
		size_t n = avail < SMTPD_FEED_SLICE ? avail : SMTPD_FEED_SLICE;
		const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
		size_t used = n;
		enum smtpd_data_result r = SMTPD_DATA_MORE;
		if (s->state == SMTPD_ST_BDAT_SKIP)
			used = n;
		else
			r = smtpd_data_feed(&s->data, p, n, &s->content, &used);
		evbuffer_drain(in, used);
		avail -= used;
		s->data_bytes += used;
		if (s->state == SMTPD_ST_BDAT || s->state == SMTPD_ST_BDAT_SKIP)
			s->bdat_left -= used;
		if (s->content.len >= SMTPD_CONTENT_FLUSH)
			smtpd_message_flush(s);
		if (r == SMTPD_DATA_END) {
			*ended = true;
			return true;
		}
	}
	return false;
}

void smtpd_message_bdat_chunk_done(struct smtpd_session *s)
{
	if (s->state == SMTPD_ST_BDAT_SKIP) {
		smtpd_reply_text(s, s->skip_reply ? s->skip_reply : "503 5.5.1 Error: BDAT chunk refused");
		free(s->skip_reply);
		s->skip_reply = NULL;
		smtpd_session_enter(s, SMTPD_ST_CMD);
		if (s->bdat_last) /* a refused LAST chunk ends the transaction */
			smtpd_session_reset(s);
		return;
	}
	if (!s->bdat_last) {
		if (s->data.too_big) {
			/* RFC 3030: the rest of the transaction's chunks are
			 * read and refused */
			smtpd_reply(s, "552 5.3.4 Error: message file too big");
			smtpd_queue_abort(s->srv, s->qid);
			s->qid[0] = '\0';
			smtpd_message_content_close(s);
			s->bdat_bad = true;
			smtpd_session_enter(s, SMTPD_ST_CMD);
			return;
		}
		smtpd_reply(s, "250 2.0.0 Ok: %llu bytes", (unsigned long long)s->data_bytes);
		s->counts.ok[SMTPD_V_BDAT]++;
		smtpd_session_enter(s, SMTPD_ST_CMD);
		return;
	}
	smtpd_data_finish(&s->data, &s->content);
	smtpd_message_end(s);
}

/* ---- queue interaction ---------------------------------------------------- */

void smtpd_message_open(struct smtpd_session *s)
{
	if (smtpd_queue_open(s) < 0) {
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
		return;
	}
	/* Input stays enabled while we wait (bounded by the watermark) so a
	 * vanished client is noticed; nothing is processed until the reply. */
	smtpd_session_enter(s, SMTPD_ST_WAIT_OPEN);
}

void smtpd_message_bdat(struct smtpd_session *s, uint64_t n, bool last, const char *skip_reply)
{
	s->bdat_left = n;
	s->bdat_last = last;
	if (s->qid[0] == '\0') {
		/* no message file yet: the rate clock starts with this chunk
		 * (also when the queue then refuses the file) */
		gettimeofday(&s->data_start, NULL);
		s->data_bytes = 0;
	}
	if (skip_reply != NULL) {
		free(s->skip_reply);
		s->skip_reply = xstrdup(skip_reply);
		smtpd_session_enter(s, SMTPD_ST_BDAT_SKIP);
		return;
	}
	if (s->qid[0] == '\0') {
		/* first chunk: a content file first, then read the chunk */
		s->bdat_used = true;
		smtpd_message_open(s);
		return;
	}
	smtpd_session_enter(s, SMTPD_ST_BDAT);
}

static void smtpd_message_begin(struct smtpd_session *s)
{
	struct timeval now;
	gettimeofday(&now, NULL);
	s->arrival_us = (int64_t)now.tv_sec * 1000000 + now.tv_usec;
	s->data_start = now;
	s->data_bytes = 0;
	uint64_t max = (uint64_t)s->conf->cfg->message_size_limit;
	buf_reset(&s->content);
	smtpd_reply_received(s, &s->content);
	s->header_len = s->content.len;
	enum smtpd_bare_lf mode = s->bare_lf_exempt ? SMTPD_BARE_LF_NORMALIZE : s->conf->bare_lf;
	smtpd_data_init(&s->data, mode, s->bdat_used, max);
	/* header_size_limit; with milters at most 60000, as Postfix's cleanup
	 * does, so that one header fits a milter packet (libmilter's 64 KiB) */
	uint64_t hlimit = (uint64_t)s->conf->cfg->header_size_limit;
	if (smtpd_milter_active(s) && (hlimit == 0 || hlimit > SMTPD_MILTER_HEADER_MAX))
		hlimit = SMTPD_MILTER_HEADER_MAX;
	smtpd_data_header_limit(&s->data, hlimit);
	log_info("%s: client=%s", s->qid, s->namaddr);
}

void smtpd_message_on_opened(struct smtpd_server *srv, uint32_t id, const char *qid, int fd)
{
	struct smtpd_session *s = smtpd_server_find(srv, id);
	if (s == NULL || s->state != SMTPD_ST_WAIT_OPEN) {
		/* the session went away meanwhile: give the file back */
		if (srv->debug)
			log_info("late IPC_Q_OPENED %s for session %u", qid, (unsigned)id);
		close(fd);
		smtpd_queue_abort(srv, qid);
		return;
	}
	snprintf(s->qid, sizeof(s->qid), "%s", qid);
	s->content_fd = fd;
	if (smtpd_milter_active(s)) {
		smtpd_milter_data(s); /* the verdict continues below */
		return;
	}
	smtpd_message_data_go(s);
}

void smtpd_message_data_go(struct smtpd_session *s)
{
	smtpd_message_begin(s);
	if (s->bdat_used) {
		smtpd_session_enter(s, SMTPD_ST_BDAT);
	} else {
		smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
		smtpd_session_enter(s, SMTPD_ST_DATA);
	}
	smtpd_session_resume(s);
}

void smtpd_message_fail(struct smtpd_session *s, const char *reply)
{
	smtpd_reply_lines(s, reply);
	smtpd_session_reset(s);
	smtpd_session_enter(s, SMTPD_ST_CMD);
}

void smtpd_message_end(struct smtpd_session *s)
{
	const struct cfg *cfg = s->conf->cfg;
	struct smtpd_data *d = &s->data;
	s->last_cmd = "END-OF-MESSAGE";
	smtpd_message_flush(s);
	uint64_t size = d->size;
	if (d->too_big) {
		log_info("%s: reject: size %llu exceeds message_size_limit from %s", s->qid,
			 (unsigned long long)size, s->namaddr);
		smtpd_message_fail(s, "552 5.3.4 Error: message file too big");
		return;
	}
	if (d->saw_bare_lf)
		s->saw_bare_lf = true;
	if (d->saw_bare_lf && d->bare_lf == SMTPD_BARE_LF_REJECT) {
		char r[128];
		snprintf(r, sizeof(r), "%lld 5.5.2 %s Error: bare <LF> received",
			 cfg->smtpd_forbid_bare_newline_reject_code, cfg->myhostname);
		smtpd_log_reject(s, "END-OF-MESSAGE", r, NULL);
		smtpd_message_fail(s, r);
		return;
	}
	if (d->saw_nul && !(s->mail.flags & 0x10 /* IPC_QF_BINARYMIME */)) {
		const char *r = "550 5.6.0 Error: message content contains NUL characters";
		smtpd_log_reject(s, "END-OF-MESSAGE", r, NULL);
		smtpd_message_fail(s, r);
		return;
	}
	if (cfg->hopcount_limit > 0 && d->received + 1 > (unsigned long long)cfg->hopcount_limit) {
		const char *r = "554 5.4.6 Error: too many hops";
		smtpd_log_reject(s, "END-OF-MESSAGE", r, NULL);
		smtpd_message_fail(s, r);
		return;
	}
	if (s->queue_error[0] != '\0') {
		char r[256];
		snprintf(r, sizeof(r), "%s", s->queue_error);
		smtpd_message_fail(s, r);
		return;
	}
	if (s->write_error) {
		smtpd_message_fail(s, "451 4.3.0 Error: queue file write error");
		return;
	}
	if (smtpd_milter_active(s) && smtpd_milter_eom(s))
		return; /* the verdict commits (smtpd_message_commit) */
	smtpd_message_commit(s, size + s->header_len);
}

void smtpd_message_commit(struct smtpd_session *s, uint64_t total)
{
	struct smtpd_data *d = &s->data;
	/* the content is complete: our descriptor is no longer needed */
	if (s->content_fd >= 0)
		close(s->content_fd);
	s->content_fd = -1;
	struct buf mid;
	buf_init(&mid, 2048);
	if (d->msgid_len > 0) {
		buf_escape(&mid, d->msgid, d->msgid_len, SMTPD_DATA_MSGID_MAX);
		log_info("%s: message-id=%s", s->qid, buf_cstr(&mid));
	}
	int r = smtpd_queue_commit(s, total, smtpd_reply_protocol(s), buf_cstr(&mid));
	buf_free(&mid);
	if (r < 0) {
		smtpd_message_fail(s, "451 4.3.0 Error: queue file write error");
		return;
	}
	smtpd_session_enter(s, SMTPD_ST_WAIT_COMMIT);
}

void smtpd_message_on_committed(struct smtpd_server *srv, uint32_t id, const char *qid)
{
	struct smtpd_session *s = smtpd_server_find(srv, id);
	if (s == NULL || s->state != SMTPD_ST_WAIT_COMMIT || strcmp(s->qid, qid) != 0) {
		if (srv->debug)
			log_info("late IPC_Q_COMMITTED %s for session %u", qid, (unsigned)id);
		return;
	}
	smtpd_reply(s, "250 2.0.0 Ok: queued as %s", qid);
	s->qid[0] = '\0'; /* no abort: the message is the queue's */
	s->counts.ok[s->bdat_used ? SMTPD_V_BDAT : SMTPD_V_DATA]++;
	smtpd_session_reset(s);
	smtpd_session_enter(s, SMTPD_ST_CMD);
	smtpd_session_resume(s);
}

static bool smtpd_message_reply_ok(const char *r)
{
	if (strlen(r) < 4 || (r[0] != '4' && r[0] != '5') || r[1] < '0' || r[1] > '9' ||
	    r[2] < '0' || r[2] > '9' || r[3] != ' ')
		return false;
	for (const char *p = r; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

void smtpd_message_on_error(struct smtpd_server *srv, uint32_t id, const char *qid, const char *reply)
{
	struct smtpd_session *s = smtpd_server_find(srv, id);
	const char *r = smtpd_message_reply_ok(reply) ? reply : "451 4.3.0 Error: queue file write error";
	if (s == NULL) {
		if (srv->debug)
			log_info("late IPC_Q_ERROR %s for session %u", qid, (unsigned)id);
		return;
	}
	switch (s->state) {
	case SMTPD_ST_WAIT_OPEN:
	case SMTPD_ST_WAIT_COMMIT:
		s->qid[0] = '\0'; /* the queue removed it already */
		if (s->bdat_used && s->state == SMTPD_ST_WAIT_OPEN) {
			/* still read the announced chunk, then refuse it */
			s->bdat_bad = true;
			free(s->skip_reply);
			s->skip_reply = xstrdup(r);
			smtpd_session_enter(s, SMTPD_ST_BDAT_SKIP);
			smtpd_session_resume(s);
			return;
		}
		smtpd_message_fail(s, r);
		smtpd_session_resume(s);
		return;
	case SMTPD_ST_DATA:
	case SMTPD_ST_BDAT:
		snprintf(s->queue_error, sizeof(s->queue_error), "%s", r);
		s->qid[0] = '\0';
		return;
	default:
		return;
	}
}

void smtpd_message_queue_gone(struct smtpd_server *srv)
{
	srv->draining = true;
	for (size_t i = 0; i < srv->n_buckets; i++) {
		struct smtpd_session *s = srv->sessions[i], *next;
		for (; s != NULL; s = next) {
			next = s->hnext;
			if (s->state == SMTPD_ST_WAIT_OPEN || s->state == SMTPD_ST_WAIT_COMMIT)
				smtpd_message_on_error(srv, s->id, "", "451 4.3.0 Error: queue file write error");
			else if (s->state == SMTPD_ST_DATA || s->state == SMTPD_ST_BDAT)
				snprintf(s->queue_error, sizeof(s->queue_error), "%s",
					 "451 4.3.0 Error: queue file write error");
		}
	}
	smtpd_session_drain_all(srv, false);
	smtpd_server_maybe_exit(srv);
}
