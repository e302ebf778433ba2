/*
 * filter_dns.c - synchronous DNS client for the filters (see filter_dns.h).
 *
 * Purpose: one question to one configured server, UDP then TCP on TC.
 * Owns: one socket per call, closed before returning.
 * Never: caches (every lookup sees the server's current records), follows
 * CNAMEs itself (the recursive server does), or trusts a reply whose ID,
 * QR bit or question differ from ours.
 * Limits: FILTER_DNS_MAX_ANSWER bytes per reply; timeout_ms x tries per call.
 * Tests: tests/unit/filters/filter_dns_test.c; tests/interop (dnsmasq).
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "filters/common/filter_dns.h"
#include "lib/common.h"

static __thread char dns_error[256];

size_t filter_dns_make_query(const char *name, int type, uint16_t id, unsigned char *out,
			     size_t outlen)
{
	size_t nlen = strlen(name);
	if (nlen > 0 && name[nlen - 1] == '.')
		nlen--; /* the root label is implied */
	if (nlen == 0 || nlen > 253 || outlen < 12 + nlen + 2 + 4)
		return 0;
	unsigned char *p = out;
	memset(p, 0, 12);
	p[0] = (unsigned char)(id >> 8);
	p[1] = (unsigned char)id;
	p[2] = 0x01; /* RD */
	p[5] = 1;    /* QDCOUNT */
	p += 12;
	size_t start = 0;
	for (size_t i = 0; i <= nlen; i++) {
		if (i == nlen || name[i] == '.') {
			size_t l = i - start;
			if (l == 0 || l > 63)
				return 0;
			*p++ = (unsigned char)l;
			memcpy(p, name + start, l);
			p += l;
			start = i + 1;
		}
	}
	*p++ = 0;
	*p++ = (unsigned char)(type >> 8);
	*p++ = (unsigned char)type;
	*p++ = 0;
	*p++ = 1; /* class IN */
	return (size_t)(p - out);
}

int filter_dns_init(struct filter_dns *d, const char *spec, unsigned timeout_ms,
		    unsigned tries, const char **error_r)
{
	memset(d, 0, sizeof(*d));
	d->timeout_ms = timeout_ms ? timeout_ms : 5000;
	d->tries = tries ? tries : 2;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&d->server;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&d->server;
	if (spec == NULL || *spec == '\0') {
		struct __res_state rs;
		memset(&rs, 0, sizeof(rs));
		if (res_ninit(&rs) != 0 || rs.nscount < 1) {
			*error_r = "no nameserver in /etc/resolv.conf";
			return -1;
		}
		*s4 = rs.nsaddr_list[0];
		d->server_len = sizeof(*s4);
		res_nclose(&rs);
		return 0;
	}
	char host[INET6_ADDRSTRLEN + 2];
	const char *port = NULL;
	size_t hlen;
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (close == NULL || (close[1] != '\0' && close[1] != ':' && close[1] != '@'))
			goto bad;
		hlen = (size_t)(close - spec - 1);
		spec++;
		port = close[1] ? close + 2 : NULL;
	} else {
		const char *at = strchr(spec, '@');
		const char *colon = strchr(spec, ':');
		if (at == NULL && colon != NULL && strchr(colon + 1, ':') == NULL)
			at = colon; /* a.b.c.d:port; bare IPv6 has several colons */
		hlen = at ? (size_t)(at - spec) : strlen(spec);
		port = at ? at + 1 : NULL;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	unsigned long pn = 53;
	if (port != NULL) {
		char *end;
		if (*port < '0' || *port > '9')
			goto bad;
		pn = strtoul(port, &end, 10);
		if (*end != '\0' || pn == 0 || pn > 65535)
			goto bad;
	}
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)pn);
		d->server_len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)pn);
		d->server_len = sizeof(*s6);
	} else {
		goto bad;
	}
	return 0;
bad:
	snprintf(dns_error, sizeof(dns_error), "bad nameserver address \"%.80s\"", spec);
	*error_r = dns_error;
	return -1;
}

const char *filter_dns_server_str(const struct filter_dns *d, char *out, size_t outlen)
{
	char a[INET6_ADDRSTRLEN];
	unsigned port;
	if (d->server.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&d->server;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&d->server;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		port = ntohs(s4->sin_port);
	}
	snprintf(out, outlen, "%s@%u", a, port);
	return out;
}

static long dns_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline passes; 1 ready, 0 timeout,
 * -1 error. */
static int dns_wait(int fd, short events, long deadline)
{
	for (;;) {
		long left = deadline - dns_now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = { .fd = fd, .events = events };
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		return 1;
	}
}

/* True when reply answers query: same ID, QR set, same question section. */
static bool dns_matches(const unsigned char *q, size_t qlen, const unsigned char *r, size_t rlen)
{
	if (rlen < qlen || rlen < 12)
		return false;
	if (r[0] != q[0] || r[1] != q[1] || (r[2] & 0x80) == 0)
		return false;
	if (r[4] != 0 || r[5] != 1)
		return false;
	/* question: compare case-insensitively (0x20 randomisation by servers) */
	for (size_t i = 12; i < qlen; i++) {
		unsigned char a = q[i], b = r[i];
		if (a >= 'A' && a <= 'Z')
			a = (unsigned char)(a + 32);
		if (b >= 'A' && b <= 'Z')
			b = (unsigned char)(b + 32);
		if (a != b)
			return false;
	}
	return true;
}

static enum filter_dns_status dns_tcp(const struct filter_dns *d, const unsigned char *q,
				      size_t qlen, unsigned char *ans, size_t anslen,
				      size_t *len_r)
{
	long deadline = dns_now_ms() + (long)d->timeout_ms;
	int fd = socket(d->server.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return FILTER_DNS_ERROR;
	enum filter_dns_status st = FILTER_DNS_ERROR;
	if (connect(fd, (const struct sockaddr *)&d->server, d->server_len) < 0 &&
	    errno != EINPROGRESS)
		goto out;
	int w = dns_wait(fd, POLLOUT, deadline);
	if (w <= 0) {
		st = w == 0 ? FILTER_DNS_TIMEOUT : FILTER_DNS_ERROR;
		goto out;
	}
	unsigned char out[2 + 512];
	out[0] = (unsigned char)(qlen >> 8);
	out[1] = (unsigned char)qlen;
	memcpy(out + 2, q, qlen);
	if (send(fd, out, qlen + 2, MSG_NOSIGNAL) != (ssize_t)(qlen + 2))
		goto out;
	unsigned char hdr[2];
	size_t got = 0, want = 2;
	unsigned char *dst = hdr;
	for (int phase = 0; phase < 2; phase++) {
		while (got < want) {
			int r = dns_wait(fd, POLLIN, deadline);
			if (r <= 0) {
				st = r == 0 ? FILTER_DNS_TIMEOUT : FILTER_DNS_ERROR;
				goto out;
			}
			ssize_t n = recv(fd, dst + got, want - got, 0);
			if (n <= 0)
				goto out;
			got += (size_t)n;
		}
		if (phase == 0) {
			want = ((size_t)hdr[0] << 8) | hdr[1];
			if (want > anslen || want < 12)
				goto out;
			got = 0;
			dst = ans;
		}
	}
	if (!dns_matches(q, qlen, ans, want))
		goto out;
	*len_r = want;
	st = FILTER_DNS_OK;
out:
	close(fd);
	return st;
}

enum filter_dns_status filter_dns_query(const struct filter_dns *d, const char *name,
					int type, unsigned char *ans, size_t anslen,
					size_t *len_r)
{
	unsigned char q[512];
	uint16_t id;
	if (getrandom(&id, sizeof(id), 0) != sizeof(id))
		id = (uint16_t)(dns_now_ms() ^ getpid());
	size_t qlen = filter_dns_make_query(name, type, id, q, sizeof(q));
	if (qlen == 0 || anslen < 512)
		return FILTER_DNS_ERROR;
	int fd = socket(d->server.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return FILTER_DNS_ERROR;
	enum filter_dns_status st = FILTER_DNS_TIMEOUT;
	/* connect() so that only the server's datagrams reach us */
	if (connect(fd, (const struct sockaddr *)&d->server, d->server_len) < 0) {
		st = FILTER_DNS_ERROR;
		goto out;
	}
	for (unsigned t = 0; t < d->tries; t++) {
		if (send(fd, q, qlen, 0) != (ssize_t)qlen) {
			st = FILTER_DNS_ERROR;
			goto out;
		}
		long deadline = dns_now_ms() + (long)d->timeout_ms;
		for (;;) {
			int r = dns_wait(fd, POLLIN, deadline);
			if (r < 0) {
				st = FILTER_DNS_ERROR;
				goto out;
			}
			if (r == 0)
				break; /* next try */
			ssize_t n = recv(fd, ans, anslen, 0);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				/* ICMP port unreachable: count as no answer this try */
				break;
			}
			if (!dns_matches(q, qlen, ans, (size_t)n))
				continue; /* stray or forged datagram: keep waiting */
			if (ans[2] & 0x02) { /* TC: ask again over TCP */
				close(fd);
				return dns_tcp(d, q, qlen, ans, anslen, len_r);
			}
			*len_r = (size_t)n;
			st = FILTER_DNS_OK;
			goto out;
		}
	}
out:
	close(fd);
	return st;
}
