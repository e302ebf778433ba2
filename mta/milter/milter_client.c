/*
 * milter_client.c - one milter connection on libevent (milter_client.h).
 *
 * Purpose: carry requests to one milter and bring back checked replies.
 * Owns: the socket (bufferevent), the timer, the current result.
 * Never: blocks; logs; reads a packet whose length was not checked first;
 *        calls back from inside a call made by its owner.
 * Limits: reply packets 1..MILTER_REPLY_MAX_DEFAULT bytes; replacement body
 *         <= max_body; 100000 edits per message; connect, command and
 *         content timeouts of the endpoint.
 * Tests: tests/interop/test_milter_replies.py, test_milter_faults.py.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "mta/milter/milter_client.h"
#include "lib/common.h"

enum milter_client_state {
	MILTER_CS_IDLE,    /* nothing asked */
	MILTER_CS_CONNECT, /* connecting */
	MILTER_CS_WAIT,    /* waiting for the reply to stage */
	MILTER_CS_DEFER,   /* result ready, callback scheduled */
	MILTER_CS_FAILED,  /* connection closed after a failure */
};

struct milter_client {
	struct event_base *base;       /* not owned */
	struct milter_endpoint ep;     /* copy; name owned */
	struct bufferevent *bev;       /* owned connection, NULL once closed */
	struct event *timer;           /* stage timeout */
	struct event *defer;           /* delivers results outside the caller's stack */
	enum milter_client_state state; /* see enum */
	enum milter_stage stage;       /* the request being served */
	bool pending;                  /* a request awaits its callback */
	struct milter_neg neg;         /* negotiated options */
	uint32_t offered_actions;      /* the action word OPTNEG offered */
	uint32_t offered_protocol;     /* and the protocol word */
	char *fault;                   /* first failure, owned; NULL when healthy */
	size_t max_body;               /* replacement body limit */
	bool fault_config;             /* the fault was a bad reply text or edit */
	/* the result being assembled */
	enum milter_reply_type type;   /* final reply */
	struct buf text;               /* normalised 'y' text */
	char *quarantine;              /* owned 'q' reason */
	struct milter_mod *mods;       /* owned edits */
	size_t n_mods;                 /* entries in mods */
	milter_client_fn *cb;          /* the owner's callback */
	void *ctx;                     /* its argument */
	/* connection reuse (QUIT_NC, see "idle connections" below) */
	bool reusable;                 /* the filter sits after a continued END-OF-MESSAGE */
	bool pooled;                   /* the connection came idle and has not answered yet */
	bool reused;                   /* the connection came idle (stays set) */
	bool retrying;                 /* negotiating anew for the request in retry */
	bool relink;                   /* the reused connection died idle: connect at the next request */
	enum milter_stage retry_stage; /* that request's stage */
	struct buf retry;              /* and its packets */
};

/* connection reuse (below): a failed reused connection retries */
static bool milter_client_retry(struct milter_client *c);
static void milter_idle_ban(const struct milter_endpoint *ep);
static void milter_client_resend(struct milter_client *c);

void milter_mods_free(struct milter_mod **mods, size_t n)
{
	if (*mods == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free((*mods)[i].name);
		free((*mods)[i].value);
		free((*mods)[i].addr);
		free((*mods)[i].args);
		buf_free(&(*mods)[i].body);
	}
	free(*mods);
	*mods = NULL;
}

static void milter_client_reset_result(struct milter_client *c)
{
	c->type = MILTER_R_CONTINUE;
	buf_reset(&c->text);
	free(c->quarantine);
	c->quarantine = NULL;
	milter_mods_free(&c->mods, c->n_mods);
	c->n_mods = 0;
}

/* Hand the result to the owner; the owner may free c. */
static void milter_client_deliver(struct milter_client *c)
{
	struct milter_result r = {
		.type = c->type,
		.text = c->type == MILTER_R_REPLYCODE ? buf_cstr(&c->text) : NULL,
		.quarantine = c->quarantine,
		.mods = c->mods,
		.n_mods = c->n_mods,
		.fault = c->fault,
		.fault_config = c->fault_config,
	};
	c->pending = false;
	event_del(c->defer);
	if (c->state != MILTER_CS_FAILED)
		c->state = MILTER_CS_IDLE;
	/* libmilter takes QUIT_NC only here (see "idle connections") */
	c->reusable = c->stage == MILTER_STAGE_EOM && c->type == MILTER_R_CONTINUE && c->fault == NULL;
	event_del(c->timer);
	c->cb(c, &r, c->ctx);
}

static void milter_client_on_defer(evutil_socket_t fd, short what, void *arg)
{
	milter_client_deliver(arg);
}

static void milter_client_schedule(struct milter_client *c)
{
	if (c->state != MILTER_CS_FAILED)
		c->state = MILTER_CS_DEFER;
	event_active(c->defer, EV_TIMEOUT, 0);
}

static void milter_client_close(struct milter_client *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	event_del(c->timer);
}

/* Record what the milter did wrong (the first fault only counts). */
static void milter_client_note(struct milter_client *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void milter_client_note(struct milter_client *c, const char *fmt, ...)
{
	if (c->fault != NULL)
		return;
	va_list ap;
	struct buf b;
	buf_init(&b, 512);
	va_start(ap, fmt);
	(void)buf_vprintf(&b, fmt, ap);
	va_end(ap);
	c->fault = xstrdup(buf_cstr(&b));
	buf_free(&b);
}

/* The milter failed (fault noted): close, and complete the pending request
 * (if any) with the fault. The owner may free c in its callback, so this is
 * the last thing any caller does with c. */
static void milter_client_failed_now(struct milter_client *c)
{
	if (c->reused)
		milter_idle_ban(&c->ep); /* a filter that fails after QUIT_NC gets no more */
	milter_client_close(c);
	c->state = MILTER_CS_FAILED;
	if (c->pending) {
		milter_client_reset_result(c);
		milter_client_deliver(c);
	}
}

#define milter_client_fail(c, ...)                                                       \
	do {                                                                             \
		milter_client_note((c), __VA_ARGS__);                                    \
		milter_client_failed_now(c);                                             \
	} while (0)

static long long milter_client_timeout_ms(const struct milter_client *c, enum milter_stage s)
{
	switch (s) {
	case MILTER_STAGE_OPTNEG:
		return c->ep.connect_timeout_ms;
	case MILTER_STAGE_HEADER:
	case MILTER_STAGE_EOH:
	case MILTER_STAGE_BODY:
	case MILTER_STAGE_EOM:
		return c->ep.content_timeout_ms;
	default:
		return c->ep.command_timeout_ms;
	}
}

static void milter_client_arm(struct milter_client *c)
{
	long long ms = milter_client_timeout_ms(c, c->stage);
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	event_add(c->timer, &tv);
}

static void milter_client_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct milter_client *c = arg;
	if (milter_client_retry(c))
		return;
	if (c->state == MILTER_CS_CONNECT)
		milter_client_fail(c, "connect timed out");
	else
		milter_client_fail(c, "timed out at %s", milter_stage_name(c->stage));
}

/* Handle one reply packet (cmd + data). Returns true when the request is
 * complete (result ready), false to keep reading. On a fault c is failed. */
/* Handle one reply packet (cmd + data). Returns true when the request is
 * complete (result ready), false to keep reading; a fault is only noted
 * (c->fault) for the reader to act on. */
static bool milter_client_packet(struct milter_client *c, const unsigned char *p, size_t len)
{
	const char *err = NULL;
	if (c->stage == MILTER_STAGE_OPTNEG) {
		if (p[0] != MILTER_C_OPTNEG) {
			milter_client_note(c, "sent unknown reply '%c' instead of option negotiation",
					   p[0] >= 32 && p[0] < 127 ? p[0] : '?');
			return false;
		}
		if (milter_proto_parse_optneg(p + 1, len - 1, (uint32_t)c->ep.protocol,
					      c->offered_actions, c->offered_protocol, &c->neg,
					      &err) < 0) {
			milter_client_note(c, "bad option negotiation: %s", err);
			return false;
		}
		c->type = MILTER_R_CONTINUE;
		return true;
	}
	struct milter_reply r;
	if (milter_proto_parse_reply(p, len, c->stage, &c->neg, &r, &err) < 0) {
		/* a malformed reply text or edit request at END-OF-MESSAGE is what
		 * Postfix calls a configuration problem (4.3.5) */
		c->fault_config = p[0] == 'y' ||
				  (c->stage == MILTER_STAGE_EOM && strchr("him+2-eb", p[0]) != NULL);
		milter_client_note(c, "sent %s reply '%c' (%zu bytes) at %s", err,
				   p[0] >= 32 && p[0] < 127 ? p[0] : '?', len, milter_stage_name(c->stage));
		return false;
	}
	switch (r.type) {
	case MILTER_R_PROGRESS:
		milter_client_arm(c);
		return false;
	case MILTER_R_QUARANTINE:
		free(c->quarantine);
		c->quarantine = str_dup(r.text);
		return false;
	case MILTER_R_REPLYCODE:
		buf_reset(&c->text);
		if (milter_proto_replycode(r.text, &c->text, &err) < 0) {
			milter_client_note(c, "sent a bad reply text: %s", err);
			return false;
		}
		c->type = r.type;
		return true;
	default:
		break;
	}
	if (milter_reply_is_final(r.type)) {
		c->type = r.type;
		return true;
	}
	/* a modification (END-OF-MESSAGE only, checked by the parser) */
	if (r.type == MILTER_R_REPLBODY && c->n_mods > 0 &&
	    c->mods[c->n_mods - 1].type == MILTER_R_REPLBODY) {
		if (buf_append(&c->mods[c->n_mods - 1].body, r.body.p, r.body.len) < 0) {
			milter_client_note(c, "sent a replacement body that is too large");
			return false;
		}
		return false;
	}
	if (c->n_mods >= 100000) {
		milter_client_note(c, "sent too many modifications");
		return false;
	}
	c->mods = xreallocarray(c->mods, c->n_mods + 1, sizeof(*c->mods));
	struct milter_mod *m = &c->mods[c->n_mods++];
	memset(m, 0, sizeof(*m));
	m->type = r.type;
	m->index = r.index;
	buf_init(&m->body, c->max_body);
	if (r.name.len)
		m->name = str_dup(r.name);
	if (r.type == MILTER_R_ADDHEADER || r.type == MILTER_R_INSHEADER ||
	    r.type == MILTER_R_CHGHEADER) {
		m->value = str_dup(r.value);
		m->value_len = r.value.len;
	}
	if (r.addr.p != NULL)
		m->addr = str_dup(r.addr);
	if (r.args.len)
		m->args = str_dup(r.args);
	if (r.type == MILTER_R_REPLBODY && buf_append(&m->body, r.body.p, r.body.len) < 0) {
		milter_client_note(c, "sent a replacement body that is too large");
		return false;
	}
	return false;
}

static void milter_client_on_read(struct bufferevent *bev, void *arg)
{
	struct milter_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		unsigned char hdr[MILTER_LEN_BYTES];
		size_t n = evbuffer_get_length(in), total;
		const char *err = NULL;
		if (n == 0)
			return;
		if (c->state != MILTER_CS_WAIT) {
			/* on a kept connection: it spoke between sessions, so a new
			 * connection serves this one */
			if (milter_client_retry(c))
				return;
			milter_client_fail(c, "sent data while no reply was expected");
			return;
		}
		if (n < MILTER_LEN_BYTES)
			return;
		evbuffer_copyout(in, hdr, sizeof(hdr));
		int rc = milter_proto_frame(hdr, sizeof(hdr), MILTER_REPLY_MAX_DEFAULT, &total, &err);
		if (rc < 0) {
			milter_client_fail(c, "sent a %s at %s", err, milter_stage_name(c->stage));
			return;
		}
		if (n < total)
			return; /* the length is checked: wait for the rest */
		unsigned char *pkt = xmalloc(total);
		CHECK(evbuffer_remove(in, pkt, total) == (int)total);
		bool done = milter_client_packet(c, pkt + MILTER_LEN_BYTES, total - MILTER_LEN_BYTES);
		free(pkt);
		if (c->pooled) {
			c->pooled = false; /* it answers: the connection works */
			buf_reset(&c->retry);
		}
		if (c->fault != NULL) {
			milter_client_failed_now(c); /* the owner may free c: stop here */
			return;
		}
		if (done) {
			if (evbuffer_get_length(in) > 0) {
				/* more bytes behind a final reply: out of step */
				milter_client_fail(c, "sent data after its reply at %s",
						   milter_stage_name(c->stage));
				return;
			}
			if (c->retrying) {
				milter_client_resend(c);
				return;
			}
			milter_client_deliver(c);
			return; /* c may be gone; leftover input is checked next time */
		}
	}
}

static void milter_client_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct milter_client *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->ep.addr.ss_family != AF_UNIX) {
			/* small request/reply packets: Nagle plus the peer's delayed
			 * ACK would add ~40 ms to a round trip */
			int one = 1;
			(void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		c->state = MILTER_CS_WAIT;
		c->stage = MILTER_STAGE_OPTNEG;
		return;
	}
	if (milter_client_retry(c))
		return;
	if (what & BEV_EVENT_EOF) {
		if (c->state == MILTER_CS_WAIT)
			milter_client_fail(c, "closed the connection at %s", milter_stage_name(c->stage));
		else
			milter_client_fail(c, "closed the connection");
		return;
	}
	int e = EVUTIL_SOCKET_ERROR();
	if (c->state == MILTER_CS_CONNECT)
		milter_client_fail(c, "connect failed: %s", evutil_socket_error_to_string(e));
	else
		milter_client_fail(c, "connection error at %s: %s", milter_stage_name(c->stage),
				   evutil_socket_error_to_string(e));
}

/* ---- idle connections (QUIT_NC) ----
 *
 * Postfix opens a milter connection per SMTP session; a session's end with
 * QUIT_NC ('K', protocol 6) instead of QUIT tells a libmilter filter that a
 * new session follows on the same socket: it calls its close callback and
 * waits for the next CONNECT, keeping its negotiated options. That saves a
 * TCP connection, a filter thread and an option negotiation per session.
 * libmilter takes 'K' only right after END-OF-MESSAGE was answered with
 * continue (its state table), so only such a connection is kept, only for
 * filters that negotiated version 6 and want CONNECT, at most
 * MILTER_IDLE_MAX per process for MILTER_IDLE_SECS. An idle connection
 * that closes is dropped; one that speaks is dropped and its filter not
 * reused again by this process. If a reused connection fails before its
 * first answer, the request is sent again on a new connection (the filter
 * never saw it); if it fails later, the session gets the default action as
 * with any broken filter. Either way that filter is not reused again. */
#define MILTER_IDLE_MAX 256
#define MILTER_IDLE_SECS 60

struct milter_idle {
	struct milter_idle *next;
	char *key;               /* milter_idle_key() of its endpoint */
	struct bufferevent *bev; /* the connection, after 'K' */
	struct milter_neg neg;   /* what it negotiated */
	struct event *timer;     /* drops it after MILTER_IDLE_SECS */
};

static struct milter_idle *milter_idle_list;
static size_t milter_idle_n;
static char **milter_idle_banned; /* keys whose reuse failed once */
static size_t milter_idle_n_banned;

static char *milter_idle_key(const struct milter_endpoint *ep)
{
	return xasprintf("%d;%d;%s", ep->protocol, ep->no_header_reply ? 1 : 0, ep->name);
}

static bool milter_idle_is_banned(const char *key)
{
	for (size_t i = 0; i < milter_idle_n_banned; i++)
		if (strcmp(milter_idle_banned[i], key) == 0)
			return true;
	return false;
}

static void milter_idle_ban_key(const char *key)
{
	if (milter_idle_is_banned(key) || milter_idle_n_banned >= 64)
		return;
	milter_idle_banned = xreallocarray(milter_idle_banned, milter_idle_n_banned + 1,
					   sizeof(*milter_idle_banned));
	milter_idle_banned[milter_idle_n_banned++] = xstrdup(key);
}

static void milter_idle_ban(const struct milter_endpoint *ep)
{
	char *key = milter_idle_key(ep);
	milter_idle_ban_key(key);
	free(key);
}

/* Unlink e from the list and free it (closing its connection unless it was
 * taken: e->bev NULL). */
static void milter_idle_drop(struct milter_idle *e)
{
	for (struct milter_idle **pp = &milter_idle_list; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	milter_idle_n--;
	if (e->bev != NULL)
		bufferevent_free(e->bev);
	event_free(e->timer);
	milter_neg_free(&e->neg);
	free(e->key);
	free(e);
}

static void milter_idle_on_read(struct bufferevent *bev, void *arg)
{
	/* a filter has nothing to say between sessions: out of step with
	 * QUIT_NC, so no more reuse for it */
	struct milter_idle *e = arg;
	milter_idle_ban_key(e->key);
	milter_idle_drop(e);
}

static void milter_idle_on_event(struct bufferevent *bev, short what, void *arg)
{
	milter_idle_drop(arg);
}

static void milter_idle_on_timer(evutil_socket_t fd, short what, void *arg)
{
	milter_idle_drop(arg);
}

void milter_client_idle_clear(void)
{
	while (milter_idle_list != NULL)
		milter_idle_drop(milter_idle_list);
	for (size_t i = 0; i < milter_idle_n_banned; i++)
		free(milter_idle_banned[i]);
	free(milter_idle_banned);
	milter_idle_banned = NULL;
	milter_idle_n_banned = 0;
}

/* End the session with 'K' and keep the connection; false if it cannot be. */
static bool milter_idle_keep(struct milter_client *c)
{
	if (!c->ep.reuse || !c->reusable || c->bev == NULL || c->state != MILTER_CS_IDLE ||
	    c->pending || c->fault != NULL || c->neg.version < 6 ||
	    (c->neg.protocol & MILTER_P_NOCONNECT) != 0 || milter_idle_n >= MILTER_IDLE_MAX ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) != 0 ||
	    evbuffer_get_length(bufferevent_get_input(c->bev)) != 0)
		return false;
	char *key = milter_idle_key(&c->ep);
	if (milter_idle_is_banned(key)) {
		free(key);
		return false;
	}
	static const unsigned char quit_nc[5] = { 0, 0, 0, 1, MILTER_C_QUIT_NC };
	/* one small packet on an idle socket: it fits the socket buffer */
	if (send(bufferevent_getfd(c->bev), quit_nc, sizeof(quit_nc), MSG_DONTWAIT | MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(quit_nc)) {
		free(key);
		return false;
	}
	struct milter_idle *e = xcalloc(1, sizeof(*e));
	e->key = key;
	e->bev = c->bev;
	e->neg = c->neg;
	memset(&c->neg, 0, sizeof(c->neg));
	c->bev = NULL;
	e->timer = evtimer_new(c->base, milter_idle_on_timer, e);
	struct timeval tv = { MILTER_IDLE_SECS, 0 };
	event_add(e->timer, &tv);
	bufferevent_setcb(e->bev, milter_idle_on_read, NULL, milter_idle_on_event, e);
	e->next = milter_idle_list;
	milter_idle_list = e;
	milter_idle_n++;
	return true;
}

/* Take an idle connection to c's filter; false if there is none. */
static bool milter_idle_take(struct milter_client *c)
{
	if (!c->ep.reuse || milter_idle_list == NULL)
		return false;
	char *key = milter_idle_key(&c->ep);
	struct milter_idle *e = milter_idle_list;
	while (e != NULL && strcmp(e->key, key) != 0)
		e = e->next;
	free(key);
	if (e == NULL)
		return false;
	c->bev = e->bev;
	e->bev = NULL;
	milter_neg_free(&c->neg);
	c->neg = e->neg;
	memset(&e->neg, 0, sizeof(e->neg));
	milter_idle_drop(e);
	bufferevent_setcb(c->bev, milter_client_on_read, NULL, milter_client_on_event, c);
	c->pooled = true;
	c->reused = true;
	buf_reset(&c->retry);
	return true;
}

/* Queue len bytes for the filter. When nothing is waiting to go out, try
 * the socket first: a request is a few hundred bytes that fit its buffer,
 * and bufferevent's own path costs two epoll_ctl calls and a loop turn per
 * request. Returns 0, or -1 on a write error (the bytes are then dropped:
 * the caller fails the client). */
static int milter_client_write(struct milter_client *c, const void *data, size_t len)
{
	const unsigned char *p = data;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (c->state != MILTER_CS_CONNECT && evbuffer_get_length(out) == 0) {
		ssize_t n = send(bufferevent_getfd(c->bev), p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
		if (len == 0)
			return 0;
	}
	return bufferevent_write(c->bev, p, len);
}

/* Start connecting and negotiating (the OPTNEG packet waits in the output
 * buffer until connected). Returns 0, or -1 with c->fault set. */
static int milter_client_connect(struct milter_client *c)
{
	c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, milter_client_on_read, NULL, milter_client_on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->stage = MILTER_STAGE_OPTNEG;
	c->state = MILTER_CS_CONNECT;
	struct buf out;
	buf_init(&out, 64);
	CHECK(milter_proto_put_optneg(&out, (uint32_t)c->ep.protocol, c->offered_actions,
				      c->offered_protocol) == 0);
	bufferevent_write(c->bev, out.data, out.len);
	buf_free(&out);
	milter_client_arm(c);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->ep.addr, (int)c->ep.addr_len) < 0) {
		int e = EVUTIL_SOCKET_ERROR();
		c->fault = xasprintf("connect failed: %s", evutil_socket_error_to_string(e));
		milter_client_close(c);
		c->state = MILTER_CS_FAILED;
		return -1;
	}
	return 0;
}

/* Connect and negotiate anew, then send c->retry again for the pending
 * request (milter_client_resend); a connect failure completes it with the
 * fault. */
static void milter_client_resend_anew(struct milter_client *c)
{
	c->retrying = true;
	c->retry_stage = c->stage;
	if (milter_client_connect(c) < 0) {
		c->retrying = false;
		c->stage = c->retry_stage;
		milter_client_schedule(c);
	}
}

/* A reused connection failed before it answered anything: the filter never
 * saw what we sent on it, so start again on a new connection. False when
 * this is not such a case (the caller fails the client then). */
static bool milter_client_retry(struct milter_client *c)
{
	if (!c->pooled)
		return false;
	c->pooled = false;
	milter_idle_ban(&c->ep);
	milter_client_close(c);
	milter_neg_free(&c->neg);
	if (!c->pending) {
		/* between requests: the next one connects (milter_client_event) */
		c->state = MILTER_CS_IDLE;
		c->relink = true;
		return true;
	}
	event_del(c->defer);
	if (c->stage == MILTER_STAGE_OPTNEG) {
		/* the open itself (its answer was still on its way): open anew */
		if (milter_client_connect(c) < 0)
			milter_client_schedule(c);
		return true;
	}
	milter_client_resend_anew(c);
	return true;
}

/* The new connection of a retry is negotiated: send the request again. */
static void milter_client_resend(struct milter_client *c)
{
	c->retrying = false;
	c->stage = c->retry_stage;
	c->type = MILTER_R_CONTINUE;
	(void)milter_client_write(c, c->retry.data, c->retry.len);
	buf_reset(&c->retry);
	if (!milter_client_wants_reply(c, c->stage)) {
		milter_client_schedule(c);
		return;
	}
	c->state = MILTER_CS_WAIT;
	milter_client_arm(c);
}

struct milter_client *milter_client_new(struct event_base *base, const struct milter_endpoint *ep,
					size_t max_body, milter_client_fn *cb, void *ctx)
{
	struct milter_client *c = xcalloc(1, sizeof(*c));
	c->max_body = max_body;
	c->base = base;
	c->ep = *ep;
	c->ep.name = xstrdup(ep->name);
	c->cb = cb;
	c->ctx = ctx;
	c->timer = evtimer_new(base, milter_client_on_timeout, c);
	c->defer = evtimer_new(base, milter_client_on_defer, c);
	buf_init(&c->text, 64 * 1024);
	buf_init(&c->retry, 256 * 1024);
	c->state = MILTER_CS_IDLE;
	return c;
}

void milter_client_free(struct milter_client **cp)
{
	struct milter_client *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	milter_client_close(c);
	event_free(c->timer);
	event_free(c->defer);
	milter_client_reset_result(c);
	buf_free(&c->text);
	buf_free(&c->retry);
	milter_neg_free(&c->neg);
	free(c->fault);
	free(c->ep.name);
	free(c);
}

void milter_client_open(struct milter_client *c)
{
	CHECK(!c->pending && c->bev == NULL && c->state == MILTER_CS_IDLE);
	c->pending = true;
	milter_client_reset_result(c);
	if (milter_proto_offer(c->ep.protocol, c->ep.no_header_reply, &c->offered_actions,
			       &c->offered_protocol) < 0) {
		c->fault = xasprintf("unsupported protocol version %d", c->ep.protocol);
		c->state = MILTER_CS_FAILED;
		milter_client_schedule(c);
		return;
	}
	if (milter_idle_take(c)) {
		/* negotiated in an earlier session: ready now */
		c->stage = MILTER_STAGE_OPTNEG;
		c->state = MILTER_CS_IDLE;
		milter_client_schedule(c);
		return;
	}
	if (milter_client_connect(c) < 0)
		milter_client_schedule(c);
}

bool milter_client_wants_reply(const struct milter_client *c, enum milter_stage stage)
{
	if (stage == MILTER_STAGE_EOM || stage == MILTER_STAGE_OPTNEG)
		return true;
	if (stage == MILTER_STAGE_ABORT || stage == MILTER_STAGE_QUIT)
		return false;
	return (c->neg.protocol & milter_stage_nr_bit(stage)) == 0;
}

void milter_client_event(struct milter_client *c, enum milter_stage stage,
			 const struct buf *packets)
{
	CHECK(!c->pending);
	c->pending = true;
	c->reusable = false;
	milter_client_reset_result(c);
	c->stage = stage;
	if (c->pooled || c->relink) {
		/* everything sent on a reused connection is kept until it answers
		 * (milter_client_retry); earlier requests were ones without reply */
		if (buf_append(&c->retry, packets->data, packets->len) < 0) {
			c->pooled = false;
			if (c->relink) {
				c->relink = false;
				c->fault = xstrdup("event too large to send again");
				c->state = MILTER_CS_FAILED;
			}
		}
	}
	if (c->relink) {
		c->relink = false;
		milter_client_resend_anew(c);
		return;
	}
	if (c->state == MILTER_CS_FAILED) {
		milter_client_schedule(c);
		return;
	}
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
		/* bytes that arrived before we asked anything: the filter is out
		 * of step with the protocol (on a kept connection: it spoke while
		 * idle, so it gets a new one) */
		if (milter_client_retry(c))
			return;
		c->fault = xasprintf("sent data before %s was asked", milter_stage_name(stage));
		milter_client_close(c);
		c->state = MILTER_CS_FAILED;
		milter_client_schedule(c);
		return;
	}
	if (milter_client_write(c, packets->data, packets->len) < 0) {
		int e = errno;
		if (milter_client_retry(c))
			return;
		c->fault = xasprintf("connection error at %s: %s", milter_stage_name(stage), strerror(e));
		milter_client_close(c);
		c->state = MILTER_CS_FAILED;
		milter_client_schedule(c);
		return;
	}
	if (!milter_client_wants_reply(c, stage)) {
		milter_client_schedule(c);
		return;
	}
	c->state = MILTER_CS_WAIT;
	milter_client_arm(c);
}

void milter_client_send_only(struct milter_client *c, const struct buf *packets)
{
	c->reusable = false;
	if (c->state == MILTER_CS_FAILED || c->bev == NULL)
		return;
	(void)milter_client_write(c, packets->data, packets->len);
}

void milter_client_quit(struct milter_client *c)
{
	if (milter_idle_keep(c)) {
		event_del(c->timer);
		c->state = MILTER_CS_FAILED;
		c->fault = xstrdup("connection kept for the next session");
		return;
	}
	if (c->bev != NULL && c->state != MILTER_CS_FAILED &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		static const unsigned char quit[5] = { 0, 0, 0, 1, MILTER_C_QUIT };
		/* one small packet on an idle socket: it fits the socket buffer */
		(void)send(bufferevent_getfd(c->bev), quit, sizeof(quit), MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	milter_client_close(c);
	c->state = MILTER_CS_FAILED;
	if (c->fault == NULL)
		c->fault = xstrdup("connection closed by us");
}

const struct milter_neg *milter_client_neg(const struct milter_client *c)
{
	return &c->neg;
}

const struct milter_endpoint *milter_client_endpoint(const struct milter_client *c)
{
	return &c->ep;
}

bool milter_client_failed(const struct milter_client *c)
{
	return c->state == MILTER_CS_FAILED;
}
