/*
 * dns_reply.h - builds raw DNS reply packets for the filters' unit tests
 * (header, question, answers), so parsers see exactly the bytes a server
 * would send, hostile ones included. Test code only.
 */
#ifndef POSTERN_TEST_DNS_REPLY_H
#define POSTERN_TEST_DNS_REPLY_H

struct reply {
	unsigned char b[4096];
	size_t n;
	unsigned an;
};

static inline void put(struct reply *r, const void *p, size_t n)
{
	assert_true(r->n + n <= sizeof(r->b));
	memcpy(r->b + r->n, p, n);
	r->n += n;
}

static inline void put16(struct reply *r, unsigned v)
{
	unsigned char x[2] = { (unsigned char)(v >> 8), (unsigned char)v };
	put(r, x, 2);
}

static inline void put_name(struct reply *r, const char *name)
{
	const char *p = name;
	while (*p) {
		size_t l = strcspn(p, ".");
		unsigned char c = (unsigned char)l;
		put(r, &c, 1);
		put(r, p, l);
		p += l;
		if (*p == '.')
			p++;
	}
	put(r, "", 1);
}

static inline void start(struct reply *r, const char *qname, int qtype, int rcode)
{
	memset(r, 0, sizeof(*r));
	put16(r, 0x1234);
	put16(r, 0x8180 | (unsigned)rcode);
	put16(r, 1);
	put16(r, 0); /* ANCOUNT, set by answer() */
	put16(r, 0);
	put16(r, 0);
	put_name(r, qname);
	put16(r, (unsigned)qtype);
	put16(r, 1);
}

static inline void answer(struct reply *r, int type, const void *rdata, size_t n)
{
	put16(r, 0xc00c);
	put16(r, (unsigned)type);
	put16(r, 1);
	put16(r, 0);
	put16(r, 0); /* TTL */
	put16(r, (unsigned)n);
	put(r, rdata, n);
	r->an++;
	r->b[6] = (unsigned char)(r->an >> 8);
	r->b[7] = (unsigned char)r->an;
}

/* One TXT record of one character-string. */
static inline void answer_txt(struct reply *r, const char *s)
{
	unsigned char rd[256];
	size_t n = strlen(s);
	assert_true(n < 256);
	rd[0] = (unsigned char)n;
	memcpy(rd + 1, s, n);
	answer(r, ns_t_txt, rd, n + 1);
}

#endif
