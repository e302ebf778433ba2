/*
 * smtpd_session.c - SMTP session lifecycle and I/O (see smtpd_session.h).
 *
 * Purpose: read command lines and message content from one client without
 * blocking, move the session through its states, switch to TLS, end
 * sessions (timeouts, errors, draining); content goes to smtpd_message.c.
 * Owns: the session (bufferevent, timer, transaction), the session table
 * and the per-client-address counts.
 * Never: blocks; frees a session from inside a command handler (only from
 * loop callbacks); processes bytes pipelined after STARTTLS
 * (CVE-2011-0411, see smtpd_verbs.c).
 * Limits: line_length_limit per command line, message_size_limit,
 * smtpd_timeout per command and while idle, smtpd_data_min_rate during
 * DATA/BDAT, smtpd_hard_error_limit, smtpd_client_connection_count_limit,
 * smtpd_client_connection_rate_limit per anvil_rate_time_unit (both per
 * process; smtpd_client_event_limit_exceptions exempt).
 * Tests: tests/integration/test_smtpd_*.py.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "mta/smtpd/smtpd_dns.h"
#include "mta/smtpd/smtpd_message.h"
#include "mta/smtpd/smtpd_milter.h"
#include "mta/smtpd/smtpd_queue.h"
#include "mta/smtpd/smtpd_reply.h"
#include "mta/smtpd/smtpd_session.h"
#include "mta/smtpd/smtpd_tls.h"
#include "lib/log.h"
#include "lib/common.h"

#define SMTPD_CONTENT_MAX (512 * 1024)   /* content buffer maximum */
#define SMTPD_INPUT_HIGH (256 * 1024)    /* stop reading above this much input */

const char *smtpd_state_name(enum smtpd_state st)
{
	switch (st) {
	case SMTPD_ST_CMD: return "CMD";
	case SMTPD_ST_WAIT_OPEN: return "WAIT_OPEN";
	case SMTPD_ST_DATA: return "DATA";
	case SMTPD_ST_BDAT: return "BDAT";
	case SMTPD_ST_BDAT_SKIP: return "BDAT_SKIP";
	case SMTPD_ST_WAIT_COMMIT: return "WAIT_COMMIT";
	case SMTPD_ST_TLS: return "TLS";
	case SMTPD_ST_MILTER: return "MILTER";
	case SMTPD_ST_CLOSING: return "CLOSING";
	case SMTPD_ST_DNS: return "DNS";
	}
	return "?";
}

void smtpd_session_enter(struct smtpd_session *s, enum smtpd_state st)
{
	if (s->srv->debug && s->state != st)
		log_info("%s: state %s -> %s", s->namaddr, smtpd_state_name(s->state), smtpd_state_name(st));
	s->state = st;
}

/* ---- per-client-address counts ---------------------------------------- */

struct smtpd_ipcount {
	struct smtpd_ipcount *next; /* hash chain */
	unsigned count;             /* live sessions from addr */
	char addr[64];              /* client address text */
};

static size_t smtpd_hash(const char *s)
{
	size_t h = 5381;
	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h;
}

static struct smtpd_ipcount **smtpd_ipcount_slot(struct smtpd_server *srv, const char *addr)
{
	if (srv->ipcount == NULL) {
		srv->n_ipbuckets = 1024;
		srv->ipcount = xcalloc(srv->n_ipbuckets, sizeof(*srv->ipcount));
	}
	struct smtpd_ipcount **pp = &srv->ipcount[smtpd_hash(addr) & (srv->n_ipbuckets - 1)];
	while (*pp != NULL && strcmp((*pp)->addr, addr) != 0)
		pp = &(*pp)->next;
	return pp;
}

static unsigned smtpd_ipcount_add(struct smtpd_server *srv, const char *addr, int delta)
{
	struct smtpd_ipcount **pp = smtpd_ipcount_slot(srv, addr);
	if (*pp == NULL) {
		if (delta < 0)
			return 0;
		*pp = xcalloc(1, sizeof(**pp));
		snprintf((*pp)->addr, sizeof((*pp)->addr), "%s", addr);
	}
	struct smtpd_ipcount *e = *pp;
	e->count = (unsigned)((int)e->count + delta);
	unsigned c = e->count;
	if (c == 0) {
		*pp = e->next;
		free(e);
	}
	return c;
}

/* ---- per-client-address connection rates ------------------------------- */

/* Postfix's anvil counts connections per client in a window of
 * anvil_rate_time_unit that starts at the client's first connection and
 * restarts once it is over; so do we, per smtpd process. */
struct smtpd_iprate {
	struct smtpd_iprate *next;  /* hash chain */
	int64_t start;              /* window start, monotonic seconds */
	unsigned count;             /* connections in the window */
	char addr[64];              /* client address text */
};

#define SMTPD_RATE_SWEEP 4096 /* new entries between sweeps of expired ones */

static int64_t smtpd_now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* Forget every entry whose window is over (bounds the table by the
 * clients of one window). */
static void smtpd_iprate_sweep(struct smtpd_server *srv, int64_t now, int64_t unit)
{
	for (size_t i = 0; i < srv->n_rate_buckets; i++) {
		struct smtpd_iprate **pp = &srv->iprate[i];
		while (*pp != NULL) {
			struct smtpd_iprate *e = *pp;
			if (now - e->start >= unit) {
				*pp = e->next;
				free(e);
				srv->n_rates--;
			} else {
				pp = &e->next;
			}
		}
	}
	srv->rate_adds = 0;
}

/* Double the buckets once the chains get long (many client addresses in
 * one window: an IPv6 prefix gives a client as many as it likes). */
static void smtpd_iprate_grow(struct smtpd_server *srv)
{
	size_t nb = srv->n_rate_buckets * 2;
	struct smtpd_iprate **t = xcalloc(nb, sizeof(*t));
	for (size_t i = 0; i < srv->n_rate_buckets; i++) {
		struct smtpd_iprate *e = srv->iprate[i];
		while (e != NULL) {
			struct smtpd_iprate *next = e->next;
			size_t b = smtpd_hash(e->addr) & (nb - 1);
			e->next = t[b];
			t[b] = e;
			e = next;
		}
	}
	free(srv->iprate);
	srv->iprate = t;
	srv->n_rate_buckets = nb;
}

/* Count one connection from addr; returns the connections in its window. */
static unsigned smtpd_iprate_add(struct smtpd_server *srv, const char *addr, long long unit_s)
{
	int64_t now = smtpd_now_sec(), unit = unit_s > 0 ? (int64_t)unit_s : 1;
	if (srv->iprate == NULL) {
		srv->n_rate_buckets = 1024;
		srv->iprate = xcalloc(srv->n_rate_buckets, sizeof(*srv->iprate));
	}
	if (srv->rate_adds >= SMTPD_RATE_SWEEP)
		smtpd_iprate_sweep(srv, now, unit);
	if (srv->n_rates > 4 * srv->n_rate_buckets)
		smtpd_iprate_grow(srv);
	struct smtpd_iprate **pp = &srv->iprate[smtpd_hash(addr) & (srv->n_rate_buckets - 1)];
	while (*pp != NULL && strcmp((*pp)->addr, addr) != 0)
		pp = &(*pp)->next;
	struct smtpd_iprate *e = *pp;
	if (e == NULL) {
		e = *pp = xcalloc(1, sizeof(*e));
		snprintf(e->addr, sizeof(e->addr), "%s", addr);
		e->start = now;
		srv->n_rates++;
		srv->rate_adds++;
	} else if (now - e->start >= unit) {
		e->start = now; /* a new window */
		e->count = 0;
	}
	if (e->count < UINT_MAX)
		e->count++;
	return e->count;
}

/* ---- session table ------------------------------------------------------ */

struct smtpd_session *smtpd_server_find(struct smtpd_server *srv, uint32_t id)
{
	if (srv->sessions == NULL)
		return NULL;
	struct smtpd_session *s = srv->sessions[id & (srv->n_buckets - 1)];
	while (s != NULL && s->id != id)
		s = s->hnext;
	return s;
}

static void smtpd_server_insert(struct smtpd_server *srv, struct smtpd_session *s)
{
	if (srv->sessions == NULL || srv->n_sessions >= srv->n_buckets) {
		size_t nb = srv->n_buckets ? srv->n_buckets * 2 : 1024;
		struct smtpd_session **t = xcalloc(nb, sizeof(*t));
		for (size_t i = 0; i < srv->n_buckets; i++) {
			struct smtpd_session *e = srv->sessions[i];
			while (e != NULL) {
				struct smtpd_session *next = e->hnext;
				e->hnext = t[e->id & (nb - 1)];
				t[e->id & (nb - 1)] = e;
				e = next;
			}
		}
		free(srv->sessions);
		srv->sessions = t;
		srv->n_buckets = nb;
	}
	do {
		s->id = srv->next_id++;
	} while (s->id == 0 || smtpd_server_find(srv, s->id) != NULL);
	s->hnext = srv->sessions[s->id & (srv->n_buckets - 1)];
	srv->sessions[s->id & (srv->n_buckets - 1)] = s;
	srv->n_sessions++;
}

static void smtpd_server_remove(struct smtpd_server *srv, struct smtpd_session *s)
{
	struct smtpd_session **pp = &srv->sessions[s->id & (srv->n_buckets - 1)];
	while (*pp != NULL && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp != NULL) {
		*pp = s->hnext;
		srv->n_sessions--;
	}
}

/* ---- transaction -------------------------------------------------------- */

void smtpd_session_reset(struct smtpd_session *s)
{
	if (s->qid[0] != '\0' && s->state != SMTPD_ST_WAIT_COMMIT)
		smtpd_queue_abort(s->srv, s->qid);
	s->qid[0] = '\0';
	smtpd_message_content_close(s);
	smtpd_milter_reset(s);
	free(s->sender);
	s->sender = NULL;
	for (size_t i = 0; i < s->n_rcpts; i++) {
		free(s->rcpts[i].addr);
		free(s->rcpts[i].orcpt);
	}
	s->n_rcpts = 0;
	s->rcpt_tries = 0;
	s->in_mail = false;
	memset(&s->mail, 0, sizeof(s->mail));
	s->bdat_used = s->bdat_bad = s->bdat_last = false;
	s->bdat_left = 0;
	s->write_error = false;
	s->queue_error[0] = '\0';
	free(s->skip_reply);
	s->skip_reply = NULL;
	s->data_bytes = 0;
}

/* ---- lifecycle ----------------------------------------------------------- */

static void smtpd_session_free(struct smtpd_session *s)
{
	struct smtpd_server *srv = s->srv;
	smtpd_log_disconnect(s);
	smtpd_session_reset(s);
	smtpd_milter_free(s);
	free(s->rcpts);
	buf_free(&s->content);
	free(s->helo);
	if (s->counted)
		smtpd_ipcount_add(srv, s->addr, -1);
	smtpd_server_remove(srv, s);
	if (s->bev) {
		/* Unread client bytes would turn close() into a reset that can
		 * destroy our last reply in flight: read them away first. */
		struct bufferevent *low = bufferevent_get_underlying(s->bev);
		evutil_socket_t fd = bufferevent_getfd(low ? low : s->bev);
		char junk[4096];
		for (int i = 0; fd >= 0 && i < 16; i++)
			if (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
				break;
		bufferevent_free(s->bev);
	}
	if (s->pending_fd >= 0)
		close(s->pending_fd);
	if (s->timer)
		event_free(s->timer);
	if (s->sleep_timer)
		event_free(s->sleep_timer);
	smtpd_conf_unref(&s->conf);
	free(s);
	smtpd_server_maybe_exit(srv);
}

void smtpd_session_arm(struct smtpd_session *s)
{
	const struct cfg *cfg = s->conf->cfg;
	struct timeval tv = { cfg->smtpd_timeout > 0 ? cfg->smtpd_timeout : 300, 0 };
	evtimer_add(s->timer, &tv);
}

void smtpd_session_close(struct smtpd_session *s)
{
	/* Input is still read (and dropped) until our last reply is out, so
	 * unread client bytes do not turn our close into a reset that loses
	 * the reply. */
	smtpd_session_enter(s, SMTPD_ST_CLOSING);
	if (!s->peer_eof)
		bufferevent_enable(s->bev, EV_READ);
	/* free from the loop, never from inside a command handler */
	struct timeval zero = { 0, 0 };
	evtimer_add(s->timer, &zero);
}

/* Everything we queued has reached the socket. */
static bool smtpd_session_flushed(struct smtpd_session *s)
{
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) != 0)
		return false;
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	return under == NULL || evbuffer_get_length(bufferevent_get_output(under)) == 0;
}

void smtpd_session_timeout(struct smtpd_session *s)
{
	smtpd_log_after(s, "timeout");
	smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->conf->cfg->myhostname);
	if (s->state == SMTPD_ST_WAIT_COMMIT)
		s->qid[0] = '\0'; /* the commit is the queue's now */
	smtpd_session_reset(s);
	smtpd_session_close(s);
}

static void smtpd_session_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_session *s = arg;
	if (s->state == SMTPD_ST_TLS) {
		smtpd_log_after(s, "timeout");
		smtpd_session_free(s);
		return;
	}
	if (s->state == SMTPD_ST_MILTER) {
		/* the chain's own timeouts (milter_*_timeout) bound this wait */
		smtpd_session_arm(s);
		return;
	}
	if (s->state != SMTPD_ST_CLOSING) {
		smtpd_session_timeout(s);
		return;
	}
	if (smtpd_session_flushed(s) || ++s->close_polls > 500) {
		smtpd_session_free(s);
		return;
	}
	/* wait for the output (and a TLS filter's socket below it) to drain,
	 * polling, but not for more than ~10 s */
	struct timeval tv = { 0, 20000 };
	evtimer_add(s->timer, &tv);
}

/* ---- input processing ---------------------------------------------------- */

static struct buf smtpd_line; /* one command line (single-threaded scratch) */

static void smtpd_session_read_cmd(struct smtpd_session *s, bool *progress)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t limit = (size_t)s->conf->cfg->line_length_limit;
	if (limit < 512)
		limit = 512;
	size_t eol_len = 0;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	*progress = false;
	if (p.pos < 0) {
		if (s->skip_to_eol) {
			/* still inside a refused overlong line */
			evbuffer_drain(in, evbuffer_get_length(in));
			return;
		}
		if (evbuffer_get_length(in) > limit) {
			/* no line end within the limit: refuse, skip to the LF */
			evbuffer_drain(in, evbuffer_get_length(in));
			s->last_cmd = "UNKNOWN";
			s->counts.total[SMTPD_V_UNKNOWN]++;
			smtpd_reply(s, "500 5.5.0 Error: line too long");
			s->skip_to_eol = true;
			*progress = true;
		}
		return;
	}
	size_t len = (size_t)p.pos;
	*progress = true;
	if (s->skip_to_eol) {
		evbuffer_drain(in, len + 1);
		s->skip_to_eol = false;
		return;
	}
	if (len + 1 > limit) {
		evbuffer_drain(in, len + 1);
		s->last_cmd = "UNKNOWN";
		s->counts.total[SMTPD_V_UNKNOWN]++;
		smtpd_reply(s, "500 5.5.0 Error: line too long");
		return;
	}
	buf_reset(&smtpd_line);
	if (len > 0)
		buf_append(&smtpd_line, evbuffer_pullup(in, (ev_ssize_t)len), len);
	evbuffer_drain(in, len + 1);
	bool crlf = len > 0 && smtpd_line.data[len - 1] == '\r';
	if (crlf)
		buf_truncate(&smtpd_line, len - 1);
	smtpd_session_arm(s); /* a whole command arrived: its deadline restarts */
	if (!crlf) {
		/* bare LF ends a command line (smtpd_forbid_bare_newline) */
		s->saw_bare_lf = true;
		if (s->conf->bare_lf == SMTPD_BARE_LF_REJECT && !s->bare_lf_exempt) {
			s->counts.total[SMTPD_V_UNKNOWN]++;
			s->last_cmd = "UNKNOWN";
			smtpd_reply(s, "%lld 5.5.2 %s Error: bare <LF> received",
				    s->conf->cfg->smtpd_forbid_bare_newline_reject_code,
				    s->conf->cfg->myhostname);
			return;
		}
	}
	if (s->srv->debug) {
		struct buf b;
		buf_init(&b, 4096);
		buf_escape(&b, smtpd_line.data, smtpd_line.len, 500);
		log_info("< %s: %s", s->namaddr, buf_cstr(&b));
		buf_free(&b);
	}
	smtpd_verbs_run(s, buf_str(&smtpd_line));
}

static void smtpd_session_process(struct smtpd_session *s);

static void smtpd_session_on_sleep(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_session *s = arg;
	s->sleeping = false;
	smtpd_session_process(s);
}

/* Postfix smtpd_soft_error_limit: past it, each command waits
 * smtpd_error_sleep_time before it is read (a tarpit for guessers).
 * Returns true while the session sleeps. */
static bool smtpd_session_tarpit(struct smtpd_session *s)
{
	const struct cfg *cfg = s->conf->cfg;
	if (s->sleeping)
		return true;
	if (s->tarpitted || cfg->smtpd_soft_error_limit <= 0 || cfg->smtpd_error_sleep_time <= 0 ||
	    s->errors < (unsigned)cfg->smtpd_soft_error_limit ||
	    evbuffer_get_length(bufferevent_get_input(s->bev)) == 0)
		return false;
	if (s->sleep_timer == NULL)
		s->sleep_timer = evtimer_new(s->srv->base, smtpd_session_on_sleep, s);
	struct timeval tv = { cfg->smtpd_error_sleep_time, 0 };
	evtimer_add(s->sleep_timer, &tv);
	s->sleeping = s->tarpitted = true;
	return true;
}

static void smtpd_session_process_input(struct smtpd_session *s)
{
	const struct cfg *cfg = s->conf->cfg;
	for (;;) {
		/* Postfix: the error limit is checked before the next command */
		if (s->state == SMTPD_ST_CMD && cfg->smtpd_hard_error_limit > 0 &&
		    s->errors >= (unsigned)cfg->smtpd_hard_error_limit) {
			log_info("too many errors after %s from %s", s->last_cmd, s->namaddr);
			smtpd_reply(s, "421 4.7.0 %s Error: too many errors", cfg->myhostname);
			smtpd_session_reset(s);
			smtpd_session_close(s);
			return;
		}
		bool progress = false, ended = false;
		switch (s->state) {
		case SMTPD_ST_CMD:
			if (smtpd_session_tarpit(s))
				return;
			smtpd_session_read_cmd(s, &progress);
			if (progress)
				s->tarpitted = false;
			break;
		case SMTPD_ST_DATA:
			if (evbuffer_get_length(bufferevent_get_input(s->bev)) == 0)
				return;
			progress = true;
			smtpd_session_arm(s);
			if (smtpd_message_feed(s, UINT64_MAX, &ended) && ended) {
				smtpd_message_end(s);
				break;
			}
			if (smtpd_message_too_slow(s)) {
				smtpd_session_timeout(s);
				return;
			}
			break;
		case SMTPD_ST_BDAT:
		case SMTPD_ST_BDAT_SKIP:
			if (s->bdat_left > 0) {
				if (evbuffer_get_length(bufferevent_get_input(s->bev)) == 0)
					return;
				smtpd_session_arm(s);
				smtpd_message_feed(s, s->bdat_left, &ended);
				if (smtpd_message_too_slow(s)) {
					smtpd_session_timeout(s);
					return;
				}
			}
			progress = true;
			if (s->bdat_left == 0)
				smtpd_message_bdat_chunk_done(s);
			break;
		case SMTPD_ST_CLOSING:
			evbuffer_drain(bufferevent_get_input(s->bev),
				       evbuffer_get_length(bufferevent_get_input(s->bev)));
			return;
		default:
			return; /* waiting for the queue or TLS */
		}
		if (!progress)
			return;
	}
}

/* The client closed its side: once everything it sent is handled, the
 * session ends ("lost connection", as Postfix logs it). */
static void smtpd_session_lost(struct smtpd_session *s)
{
	smtpd_log_after(s, "lost connection");
	smtpd_session_reset(s);
	smtpd_session_close(s);
}

/* Draining (SIGTERM, or the queue is gone): a session between
 * transactions is told so and closed; one inside a transaction gets to
 * finish it first. */
static bool smtpd_session_drain_one(struct smtpd_session *s, bool force)
{
	if (!s->srv->draining)
		return false;
	switch (s->state) {
	case SMTPD_ST_CMD:
		if (s->in_mail && !force)
			return false;
		break;
	case SMTPD_ST_DATA:
	case SMTPD_ST_BDAT:
	case SMTPD_ST_BDAT_SKIP:
	case SMTPD_ST_TLS:
		if (!force)
			return false;
		break;
	default:
		return false; /* DNS, waiting for the queue, closing */
	}
	smtpd_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
		    s->conf->cfg->myhostname);
	smtpd_session_reset(s);
	smtpd_session_close(s);
	return true;
}

void smtpd_session_drain_all(struct smtpd_server *srv, bool force)
{
	for (size_t i = 0; i < srv->n_buckets; i++)
		for (struct smtpd_session *s = srv->sessions[i]; s != NULL; s = s->hnext)
			smtpd_session_drain_one(s, force);
}

static void smtpd_session_process(struct smtpd_session *s)
{
	smtpd_session_process_input(s);
	if (smtpd_session_drain_one(s, false))
		return;
	if (!s->peer_eof)
		return;
	switch (s->state) {
	case SMTPD_ST_CMD:
	case SMTPD_ST_DATA:
	case SMTPD_ST_BDAT:
	case SMTPD_ST_BDAT_SKIP:
		smtpd_session_lost(s);
		break;
	default:
		break; /* waiting for the queue: its reply comes first */
	}
}

/* Resume input processing after a wait (buffered input gets no new read
 * event of its own). */
void smtpd_session_resume(struct smtpd_session *s)
{
	if (!s->peer_eof)
		bufferevent_enable(s->bev, EV_READ);
	smtpd_session_arm(s);
	smtpd_session_process(s);
}

static void smtpd_session_on_read(struct bufferevent *bev, void *arg)
{
	smtpd_session_process(arg);
}

static void smtpd_session_on_write(struct bufferevent *bev, void *arg)
{
	struct smtpd_session *s = arg;
	if (s->state == SMTPD_ST_CLOSING && smtpd_session_flushed(s))
		smtpd_session_free(s);
	/* else the CLOSING timer polls until the layer below drains */
}

static void smtpd_session_greet(struct smtpd_session *s)
{
	bufferevent_write(s->bev, s->conf->banner, strlen(s->conf->banner));
	s->greeted = true;
}

static void smtpd_session_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtpd_session *s = arg;
	if ((what & BEV_EVENT_CONNECTED) && s->state == SMTPD_ST_MILTER && s->mwait == SMTPD_MW_CONNECT) {
		/* implicit TLS is up before the milters' CONNECT verdict:
		 * smtpd_session_greet_go greets once it comes */
		s->tls = true;
		return;
	}
	if ((what & BEV_EVENT_CONNECTED) && s->state == SMTPD_ST_CLOSING) {
		/* implicit TLS is up after the session was ended (a milter's
		 * shutdown at CONNECT, a limit): the queued 421 leaves now,
		 * inside TLS; no greeting follows */
		s->tls = true;
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		/* TLS handshake done: RFC 3207 §4.2, forget everything */
		bool implicit = !s->greeted;
		s->tls = true;
		free(s->helo);
		s->helo = NULL;
		s->esmtp = s->pipelining_ok = false;
		smtpd_session_reset(s);
		smtpd_session_enter(s, SMTPD_ST_CMD);
		if (s->conf->cfg->smtpd_tls_loglevel > 0) {
			char d[200];
			smtpd_tls_describe(s->bev, d, sizeof(d));
			log_info("Anonymous TLS connection established from %s: %s", s->namaddr, d);
		}
		if (implicit)
			smtpd_session_greet(s);
		smtpd_session_resume(s);
		return;
	}
	if (s->state == SMTPD_ST_CLOSING) {
		if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
			/* our last reply may still be on its way out */
			s->peer_eof = true;
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		smtpd_session_free(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && s->state != SMTPD_ST_TLS) {
		/* half-closed: answer what was sent before the close */
		s->peer_eof = true;
		bufferevent_disable(s->bev, EV_READ);
		smtpd_session_process(s);
		return;
	}
	if (s->state == SMTPD_ST_TLS && (what & BEV_EVENT_ERROR))
		log_info("SSL_accept error from %s: %s", s->namaddr, smtpd_tls_error());
	smtpd_log_after(s, "lost connection");
	if (s->state == SMTPD_ST_WAIT_COMMIT)
		s->qid[0] = '\0'; /* the queue finishes it; the client may resend */
	smtpd_session_free(s);
}

static void smtpd_session_setcb(struct smtpd_session *s)
{
	bufferevent_setcb(s->bev, smtpd_session_on_read, smtpd_session_on_write, smtpd_session_on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTPD_INPUT_HIGH);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

void smtpd_session_starttls(struct smtpd_session *s)
{
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	struct bufferevent *tls = smtpd_tls_filter(s->srv->base, s->bev, s->conf->tls);
	if (tls == NULL) {
		log_warning("cannot start TLS for %s: %s", s->namaddr, smtpd_tls_error());
		smtpd_session_close(s);
		return;
	}
	s->bev = tls;
	smtpd_session_enter(s, SMTPD_ST_TLS);
	smtpd_session_setcb(s);
}

/* Did the client talk before our greeting (RFC 5321 §4.3.1: it must wait
 * for it)? Spam engines do; Postfix logs "improper command pipelining after
 * CONNECT". Returns true when the session was closed for it. */
static bool smtpd_session_pregreet(struct smtpd_session *s, int fd)
{
	char peek[100];
	/* bytes may already be buffered (read while the milters decided) */
	struct evbuffer *in = bufferevent_get_input(s->bev);
	ssize_t n = (ssize_t)evbuffer_copyout(in, peek, sizeof(peek));
	if (n <= 0)
		n = recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0)
		return false;
	s->ill_pipelining = true;
	smtpd_log_pipelining(s, "CONNECT", peek, (size_t)n);
	if (!s->conf->cfg->smtpd_forbid_unauth_pipelining)
		return false;
	smtpd_reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
	smtpd_session_close(s);
	return true;
}

/* The client's name is known: set up the connection and greet. */
static void smtpd_session_begin(struct smtpd_session *s)
{
	struct smtpd_server *srv = s->srv;
	int fd = s->pending_fd;
	s->pending_fd = -1;
	snprintf(s->namaddr, sizeof(s->namaddr), "%s[%s]", s->name, s->addr);
	bool tls = s->implicit_tls || s->conf->wrapper;
	if (tls && s->conf->tls != NULL)
		s->bev = smtpd_tls_socket(srv->base, fd, s->conf->tls);
	else
		s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		close(fd);
		log_warning("cannot set up a session for %s", s->namaddr);
		smtpd_server_remove(srv, s);
		event_free(s->timer);
		smtpd_conf_unref(&s->conf);
		buf_free(&s->content);
		free(s);
		smtpd_server_maybe_exit(srv);
		return;
	}
	smtpd_session_setcb(s);
	smtpd_log_connect(s);
	const struct cfg *cfg = s->conf->cfg;
	if (srv->queue == NULL) {
		smtpd_reply(s, "421 4.3.0 %s Error: queue unavailable, try again later", cfg->myhostname);
		smtpd_session_close(s);
		return;
	}
	/* Postfix exempts smtpd_client_event_limit_exceptions ($mynetworks)
	 * from the concurrency and rate limits */
	s->counted = true;
	unsigned n = smtpd_ipcount_add(srv, s->addr, 1);
	s->conn_count = n;
	/* as anvil, every connection counts in the rate, refused ones too */
	unsigned rate = 0;
	if (!s->event_exempt && cfg->smtpd_client_connection_rate_limit > 0)
		rate = smtpd_iprate_add(srv, s->addr, cfg->anvil_rate_time_unit);
	if (!s->event_exempt && cfg->smtpd_client_connection_count_limit > 0 &&
	    n > (unsigned long long)cfg->smtpd_client_connection_count_limit) {
		log_warning("Connection concurrency limit exceeded: %u from %s for service smtp", n,
			    s->namaddr);
		smtpd_reply(s, "421 4.7.0 %s Error: too many connections from %s", cfg->myhostname,
			    s->addr);
		smtpd_session_close(s);
		return;
	}
	if (rate > 0 && rate > (unsigned long long)cfg->smtpd_client_connection_rate_limit) {
		log_warning("Connection rate limit exceeded: %u from %s for service smtp", rate,
			    s->namaddr);
		smtpd_reply(s, "421 4.7.0 %s Error: too many connections from %s", cfg->myhostname,
			    s->addr);
		smtpd_session_close(s);
		return;
	}
	smtpd_session_arm(s);
	if (smtpd_milter_connect(s))
		return; /* smtpd_session_greet_go after the milters' verdict */
	smtpd_session_greet_go(s);
}

void smtpd_session_greet_go(struct smtpd_session *s)
{
	if ((s->implicit_tls || s->conf->wrapper) && s->conf->tls != NULL) {
		if (!s->tls) {
			smtpd_session_enter(s, SMTPD_ST_TLS); /* greeting after the handshake */
			return;
		}
		/* the handshake ended while the milters decided */
		smtpd_session_enter(s, SMTPD_ST_CMD);
		smtpd_session_greet(s);
		return;
	}
	smtpd_session_enter(s, SMTPD_ST_CMD);
	if (smtpd_session_pregreet(s, bufferevent_getfd(s->bev)))
		return;
	smtpd_session_greet(s);
}

static void smtpd_session_on_name(uint32_t id, const char *name, void *ctx)
{
	struct smtpd_session *s = smtpd_server_find(ctx, id);
	if (s == NULL || s->pending_fd < 0)
		return;
	snprintf(s->name, sizeof(s->name), "%s", name);
	smtpd_session_begin(s);
}

void smtpd_session_start(struct smtpd_server *srv, int fd, const struct sockaddr *sa, int salen,
			 bool implicit_tls)
{
	struct smtpd_session *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->conf = srv->conf;
	smtpd_conf_ref(s->conf);
	s->content_fd = -1;
	s->pending_fd = fd;
	s->implicit_tls = implicit_tls;
	s->last_cmd = "CONNECT";
	smtpd_session_enter(s, SMTPD_ST_DNS);
	buf_init(&s->content, SMTPD_CONTENT_MAX);
	if ((size_t)salen <= sizeof(s->peer))
		memcpy(&s->peer, sa, (size_t)salen);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, s->addr, sizeof(s->addr));
		s->port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, s->addr, sizeof(s->addr));
		s->port = ntohs(in6->sin6_port);
	} else {
		snprintf(s->addr, sizeof(s->addr), "unknown");
	}
	snprintf(s->name, sizeof(s->name), "unknown");
	s->trusted = smtpd_conf_net_match(s->conf->nets, s->conf->n_nets, sa);
	s->bare_lf_exempt = smtpd_conf_net_match(s->conf->bare_lf_exempt, s->conf->n_bare_lf_exempt, sa);
	s->event_exempt = smtpd_conf_net_match(s->conf->event_exempt, s->conf->n_event_exempt, sa);
	s->timer = evtimer_new(srv->base, smtpd_session_on_timer, s);
	smtpd_server_insert(srv, s);
	if (smtpd_line.max == 0)
		buf_init(&smtpd_line, 1 << 20);
	/* Postfix names the client before it greets */
	smtpd_dns_lookup(sa, s->id, smtpd_session_on_name, srv);
}
