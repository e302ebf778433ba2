/* filter_dns_test.c - the filters' DNS client (filters/common/filter_dns.c),
 * against a scripted UDP/TCP server thread on 127.0.0.1. */
#include "tests/unit/unit.h"
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include "filters/common/filter_dns.h"
#include "lib/common.h"

enum fake_mode {
	FAKE_ANSWER,     /* a correct reply */
	FAKE_WRONG_ID,   /* a reply with another ID first, then the right one */
	FAKE_SILENT,     /* never answer */
	FAKE_TRUNCATED,  /* TC over UDP, full answer over TCP */
	FAKE_OTHER_NAME, /* a reply for another question */
};

struct fake {
	int udp, tcp;        /* sockets */
	unsigned short port; /* shared port */
	enum fake_mode mode;
	int served;          /* UDP datagrams seen */
};

static size_t fake_reply(const unsigned char *q, size_t qlen, unsigned char *r, bool tc)
{
	memcpy(r, q, qlen);
	r[2] = 0x81 | (tc ? 0x02 : 0); /* QR RD (TC) */
	r[3] = 0x80;                   /* RA, NOERROR */
	return qlen;
}

static void *fake_run(void *arg)
{
	struct fake *f = arg;
	unsigned char q[512], r[600];
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(f->udp, q, sizeof(q), 0, (struct sockaddr *)&from, &fl);
	if (n < 12)
		return NULL;
	f->served++;
	size_t rl;
	switch (f->mode) {
	case FAKE_SILENT:
		return NULL;
	case FAKE_WRONG_ID:
		rl = fake_reply(q, (size_t)n, r, false);
		r[0] ^= 0xff;
		sendto(f->udp, r, rl, 0, (struct sockaddr *)&from, fl);
		r[0] ^= 0xff;
		sendto(f->udp, r, rl, 0, (struct sockaddr *)&from, fl);
		return NULL;
	case FAKE_OTHER_NAME:
		rl = fake_reply(q, (size_t)n, r, false);
		r[13] ^= 0x01;
		sendto(f->udp, r, rl, 0, (struct sockaddr *)&from, fl);
		return NULL;
	case FAKE_TRUNCATED: {
		rl = fake_reply(q, (size_t)n, r, true);
		sendto(f->udp, r, rl, 0, (struct sockaddr *)&from, fl);
		int c = accept(f->tcp, NULL, NULL);
		unsigned char len[2];
		if (c < 0 || recv(c, len, 2, MSG_WAITALL) != 2)
			return NULL;
		size_t ql = ((size_t)len[0] << 8) | len[1];
		if (recv(c, q, ql, MSG_WAITALL) != (ssize_t)ql)
			return NULL;
		rl = fake_reply(q, ql, r + 2, false);
		r[0] = (unsigned char)(rl >> 8);
		r[1] = (unsigned char)rl;
		send(c, r, rl + 2, 0);
		close(c);
		return NULL;
	}
	case FAKE_ANSWER:
		rl = fake_reply(q, (size_t)n, r, false);
		sendto(f->udp, r, rl, 0, (struct sockaddr *)&from, fl);
		return NULL;
	}
	return NULL;
}

static void fake_start(struct fake *f, enum fake_mode mode, pthread_t *th)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (int tries = 0; tries < 50; tries++) {
		f->tcp = socket(AF_INET, SOCK_STREAM, 0);
		a.sin_port = 0;
		assert_int_equal(bind(f->tcp, (struct sockaddr *)&a, sizeof(a)), 0);
		socklen_t al = sizeof(a);
		getsockname(f->tcp, (struct sockaddr *)&a, &al);
		f->udp = socket(AF_INET, SOCK_DGRAM, 0);
		if (bind(f->udp, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		close(f->udp);
		close(f->tcp);
	}
	listen(f->tcp, 1);
	f->port = ntohs(a.sin_port);
	pthread_create(th, NULL, fake_run, f);
}

static void fake_stop(struct fake *f, pthread_t th)
{
	pthread_join(th, NULL);
	close(f->udp);
	close(f->tcp);
}

static enum filter_dns_status ask(struct fake *f, size_t *len)
{
	struct filter_dns d;
	const char *err;
	char spec[64];
	snprintf(spec, sizeof(spec), "127.0.0.1@%u", f->port);
	assert_int_equal(filter_dns_init(&d, spec, 300, 1, &err), 0);
	unsigned char ans[FILTER_DNS_MAX_ANSWER];
	return filter_dns_query(&d, "sel._domainkey.d.test", ns_t_txt, ans, sizeof(ans), len);
}

static void test_modes(void **state)
{
	static const struct {
		enum fake_mode mode;
		enum filter_dns_status want;
	} cases[] = {
		{ FAKE_ANSWER, FILTER_DNS_OK },         { FAKE_WRONG_ID, FILTER_DNS_OK },
		{ FAKE_SILENT, FILTER_DNS_TIMEOUT },    { FAKE_TRUNCATED, FILTER_DNS_OK },
		{ FAKE_OTHER_NAME, FILTER_DNS_TIMEOUT },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct fake f;
		pthread_t th;
		fake_start(&f, cases[i].mode, &th);
		size_t len = 0;
		enum filter_dns_status st = ask(&f, &len);
		if (st != cases[i].want)
			fail_msg("mode %d: got %d", cases[i].mode, st);
		if (st == FILTER_DNS_OK)
			assert_true(len > 12);
		fake_stop(&f, th);
	}
}

static void test_make_query(void **state)
{
	unsigned char q[512];
	size_t n = filter_dns_make_query("d.test.", ns_t_txt, 0x1234, q, sizeof(q));
	static const unsigned char want[] = { 0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'd',
					      4, 't', 'e', 's', 't', 0, 0, 16, 0, 1 };
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(q, want, sizeof(want));
	char label[80];
	memset(label, 'a', 64);
	label[64] = '\0';
	assert_int_equal(filter_dns_make_query(label, 16, 1, q, sizeof(q)), 0);
	assert_int_equal(filter_dns_make_query("", 16, 1, q, sizeof(q)), 0);
	assert_int_equal(filter_dns_make_query("a..b", 16, 1, q, sizeof(q)), 0);
	assert_int_equal(filter_dns_make_query(".", 16, 1, q, sizeof(q)), 0);
	char big[300];
	memset(big, 'a', sizeof(big));
	for (size_t i = 10; i < sizeof(big); i += 10)
		big[i] = '.';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(filter_dns_make_query(big, 16, 1, q, sizeof(q)), 0);
}

static void test_init(void **state)
{
	struct filter_dns d;
	const char *err;
	char s[80];
	static const struct {
		const char *spec;
		const char *want; /* NULL: refused */
	} cases[] = {
		{ "127.0.0.1", "127.0.0.1@53" },      { "127.0.0.1@5353", "127.0.0.1@5353" },
		{ "127.0.0.1:5353", "127.0.0.1@5353" }, { "[::1]:53", "::1@53" },
		{ "::1", "::1@53" },                  { "::1@54", "::1@54" },
		{ "127.0.0.1@0", NULL },              { "127.0.0.1@65536", NULL },
		{ "127.0.0.1@x", NULL },              { "localhost", NULL },
		{ "[::1", NULL },                     { "@53", NULL },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int r = filter_dns_init(&d, cases[i].spec, 1000, 1, &err);
		if (cases[i].want == NULL) {
			if (r != -1)
				fail_msg("accepted %s", cases[i].spec);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(filter_dns_server_str(&d, s, sizeof(s)), cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_make_query),
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_modes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
