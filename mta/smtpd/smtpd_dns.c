/*
 * smtpd_dns.c - forward-confirmed reverse lookups on c-ares (see smtpd_dns.h).
 *
 * Purpose: name the client for logs and the Received header.
 * Owns: two c-ares channels (files+DNS, files only for loopback) and their
 * libevent events. Never: blocks; trusts a PTR name that does not resolve
 * back to the address; returns a name with characters outside [A-Za-z0-9.-_].
 * Limits: c-ares timeout 2 s x 2 tries per query.
 * Tests: tests/integration/test_smtpd_log.py.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <ares.h>

#include "mta/smtpd/smtpd_dns.h"
#include "lib/log.h"
#include "lib/common.h"

struct smtpd_dns_sock {
	ares_socket_t fd;         /* the resolver's socket */
	struct event *ev;         /* its readiness event */
	struct smtpd_dns_chan *c; /* owning channel */
	struct smtpd_dns_sock *next; /* list link */
};

struct smtpd_dns_chan {
	ares_channel ch;               /* c-ares channel */
	struct smtpd_dns_sock *socks;  /* sockets c-ares asked us to watch */
	struct event *timer;           /* c-ares timeouts */
	bool ok;                       /* initialised */
};

struct smtpd_dns_req {
	uint32_t id;                   /* caller's id */
	smtpd_dns_fn *fn;              /* result callback */
	void *ctx;                     /* its context */
	struct smtpd_dns_chan *c;      /* channel used */
	int family;                    /* AF_INET / AF_INET6 */
	unsigned char addr[16];        /* the client address */
	char name[256];                /* PTR name being confirmed */
};

static struct event_base *smtpd_dns_base;
static struct smtpd_dns_chan smtpd_dns_full, smtpd_dns_files;

static void smtpd_dns_arm(struct smtpd_dns_chan *c)
{
	struct timeval tv, *t = ares_timeout(c->ch, NULL, &tv);
	if (t != NULL)
		evtimer_add(c->timer, t);
	else
		evtimer_del(c->timer);
}

static void smtpd_dns_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_dns_chan *c = arg;
	ares_process_fd(c->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	smtpd_dns_arm(c);
}

static void smtpd_dns_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_dns_sock *s = arg;
	struct smtpd_dns_chan *c = s->c;
	ares_process_fd(c->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	smtpd_dns_arm(c);
}

static void smtpd_dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct smtpd_dns_chan *c = data;
	struct smtpd_dns_sock **pp = &c->socks;
	while (*pp != NULL && (*pp)->fd != fd)
		pp = &(*pp)->next;
	if (*pp != NULL) {
		struct smtpd_dns_sock *old = *pp;
		*pp = old->next;
		event_free(old->ev);
		free(old);
	}
	if (!readable && !writable)
		return;
	struct smtpd_dns_sock *n = xcalloc(1, sizeof(*n));
	n->fd = fd;
	n->c = c;
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) | EV_PERSIST);
	n->ev = event_new(smtpd_dns_base, fd, what, smtpd_dns_on_sock, n);
	event_add(n->ev, NULL);
	n->next = c->socks;
	c->socks = n;
}

static int smtpd_dns_chan_init(struct smtpd_dns_chan *c, const char *lookups)
{
	struct ares_options o;
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = smtpd_dns_sock_state;
	o.sock_state_cb_data = c;
	o.timeout = 2000;
	o.tries = 2;
	o.lookups = (char *)lookups;
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
	if (ares_init_options(&c->ch, &o, mask) != ARES_SUCCESS)
		return -1;
	c->timer = evtimer_new(smtpd_dns_base, smtpd_dns_on_timer, c);
	c->ok = true;
	return 0;
}

int smtpd_dns_init(struct event_base *base)
{
	smtpd_dns_base = base;
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		return -1;
	int r = 0;
	if (smtpd_dns_chan_init(&smtpd_dns_full, "fb") < 0)
		r = -1;
	if (smtpd_dns_chan_init(&smtpd_dns_files, "f") < 0)
		r = -1;
	if (r < 0)
		log_warning("cannot initialise the resolver; client names will be \"unknown\"");
	return r;
}

static bool smtpd_dns_name_ok(const char *n)
{
	size_t len = strlen(n);
	if (len == 0 || len > 255)
		return false;
	for (const char *p = n; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '-' || ch == '_'))
			return false;
	}
	return true;
}

static void smtpd_dns_done(struct smtpd_dns_req *r, const char *name)
{
	r->fn(r->id, name, r->ctx);
	free(r);
}

static void smtpd_dns_on_forward(void *arg, int status, int timeouts, struct hostent *h)
{
	struct smtpd_dns_req *r = arg;
	size_t alen = r->family == AF_INET ? 4 : 16;
	if (status == ARES_SUCCESS && h != NULL && h->h_addrtype == r->family) {
		for (char **a = h->h_addr_list; *a; a++)
			if (memcmp(*a, r->addr, alen) == 0) {
				smtpd_dns_done(r, r->name);
				return;
			}
	}
	smtpd_dns_done(r, "unknown");
}

static void smtpd_dns_on_reverse(void *arg, int status, int timeouts, struct hostent *h)
{
	struct smtpd_dns_req *r = arg;
	if (status != ARES_SUCCESS || h == NULL || h->h_name == NULL || !smtpd_dns_name_ok(h->h_name) ||
	    status == ARES_EDESTRUCTION) {
		smtpd_dns_done(r, "unknown");
		return;
	}
	snprintf(r->name, sizeof(r->name), "%s", h->h_name);
	struct smtpd_dns_chan *c = r->c; /* r may be gone when this returns */
	ares_gethostbyname(c->ch, r->name, r->family, smtpd_dns_on_forward, r);
	smtpd_dns_arm(c);
}

void smtpd_dns_lookup(const struct sockaddr *sa, uint32_t id, smtpd_dns_fn *fn, void *ctx)
{
	struct smtpd_dns_req *r = xcalloc(1, sizeof(*r));
	r->id = id;
	r->fn = fn;
	r->ctx = ctx;
	bool loopback = false;
	if (sa->sa_family == AF_INET) {
		r->family = AF_INET;
		memcpy(r->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		loopback = r->addr[0] == 127;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			r->family = AF_INET;
			memcpy(r->addr, a6->s6_addr + 12, 4);
			loopback = r->addr[0] == 127;
		} else {
			r->family = AF_INET6;
			memcpy(r->addr, a6->s6_addr, 16);
			loopback = IN6_IS_ADDR_LOOPBACK(a6);
		}
	} else {
		smtpd_dns_done(r, "unknown");
		return;
	}
	r->c = loopback ? &smtpd_dns_files : &smtpd_dns_full;
	if (!r->c->ok) {
		smtpd_dns_done(r, "unknown");
		return;
	}
	struct smtpd_dns_chan *c = r->c; /* r may be gone when this returns */
	ares_gethostbyaddr(c->ch, r->addr, r->family == AF_INET ? 4 : 16, r->family,
			   smtpd_dns_on_reverse, r);
	smtpd_dns_arm(c);
}

static void smtpd_dns_chan_free(struct smtpd_dns_chan *c)
{
	if (!c->ok)
		return;
	ares_destroy(c->ch); /* pending callbacks run with ARES_EDESTRUCTION */
	while (c->socks != NULL) {
		struct smtpd_dns_sock *n = c->socks;
		c->socks = n->next;
		event_free(n->ev);
		free(n);
	}
	event_free(c->timer);
	c->ok = false;
}

void smtpd_dns_shutdown(void)
{
	smtpd_dns_chan_free(&smtpd_dns_full);
	smtpd_dns_chan_free(&smtpd_dns_files);
	ares_library_cleanup();
}
