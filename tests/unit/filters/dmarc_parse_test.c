/* dmarc_parse_test.c - postern-dmarc's reading of _dmarc TXT replies
 * (dmarc_milter_parse in filters/dmarc/dmarc_milter.c), RFC 7489 §6.6.3:
 * exactly one record starting with v=DMARC1 counts. */
#include "tests/unit/unit.h"
#include <arpa/nameser.h>
#include "filters/dmarc/dmarc_milter.h"
#include "lib/common.h"

struct reply {
	unsigned char b[4096];
	size_t n;
	unsigned an;
};

static void put(struct reply *r, const void *p, size_t n)
{
	assert_true(r->n + n <= sizeof(r->b));
	memcpy(r->b + r->n, p, n);
	r->n += n;
}

static void put16(struct reply *r, unsigned v)
{
	unsigned char x[2] = { (unsigned char)(v >> 8), (unsigned char)v };
	put(r, x, 2);
}

static void put_name(struct reply *r, const char *name)
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

static void start(struct reply *r, const char *qname, int qtype, int rcode)
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

static void answer(struct reply *r, int type, const void *rdata, size_t n)
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
static void answer_txt(struct reply *r, const char *s)
{
	unsigned char rd[256];
	size_t n = strlen(s);
	assert_true(n < 256);
	rd[0] = (unsigned char)n;
	memcpy(rd + 1, s, n);
	answer(r, ns_t_txt, rd, n + 1);
}

static int parse(struct reply *r, char *rec)
{
	return dmarc_milter_parse(r->b, r->n, rec, 1024);
}

static void test_records(void **state)
{
	struct reply r;
	char rec[1024];
	start(&r, "_dmarc.d.test", ns_t_txt, 0);
	answer_txt(&r, "v=DMARC1; p=reject");
	answer_txt(&r, "some other text");
	assert_int_equal(parse(&r, rec), DMARC_LOOKUP_FOUND);
	assert_string_equal(rec, "v=DMARC1; p=reject");
	/* two DMARC records: none applies */
	answer_txt(&r, "v=DMARC1; p=none");
	assert_int_equal(parse(&r, rec), DMARC_LOOKUP_NONE);
	/* not quite v=DMARC1 */
	static const char *const not_dmarc[] = { "v=DMARC10; p=reject", "v=dmarc1; p=reject",
						 " v=DMARC1; p=reject", "v=DMARC" };
	for (size_t i = 0; i < ARRAY_LEN(not_dmarc); i++) {
		start(&r, "_dmarc.d.test", ns_t_txt, 0);
		answer_txt(&r, not_dmarc[i]);
		if (parse(&r, rec) != DMARC_LOOKUP_NONE)
			fail_msg("took \"%s\"", not_dmarc[i]);
	}
	/* a NUL inside: discarded */
	start(&r, "_dmarc.d.test", ns_t_txt, 0);
	answer(&r, ns_t_txt, "\x14v=DMARC1; p=none\0xyz", 21);
	assert_int_equal(parse(&r, rec), DMARC_LOOKUP_NONE);
	/* longer than we keep: discarded, not truncated */
	start(&r, "_dmarc.d.test", ns_t_txt, 0);
	unsigned char big[1300];
	size_t n = 0;
	for (int k = 0; k < 5; k++) {
		big[n++] = 255;
		memset(big + n, k == 0 ? 'v' : 'x', 255);
		if (k == 0)
			memcpy(big + n, "v=DMARC1; p=reject; x=", 22);
		n += 255;
	}
	answer(&r, ns_t_txt, big, n);
	assert_int_equal(parse(&r, rec), DMARC_LOOKUP_NONE);
}

static void test_rcodes(void **state)
{
	struct reply r;
	char rec[1024];
	start(&r, "_dmarc.d.test", ns_t_txt, 3); /* NXDOMAIN */
	assert_int_equal(parse(&r, rec), DMARC_LOOKUP_NONE);
	start(&r, "_dmarc.d.test", ns_t_txt, 0); /* NODATA */
	assert_int_equal(parse(&r, rec), DMARC_LOOKUP_NONE);
	start(&r, "_dmarc.d.test", ns_t_txt, 2); /* SERVFAIL */
	assert_int_equal(parse(&r, rec), DMARC_LOOKUP_TEMP);
	start(&r, "_dmarc.d.test", ns_t_txt, 5); /* REFUSED */
	assert_int_equal(parse(&r, rec), DMARC_LOOKUP_TEMP);
	start(&r, "_dmarc.d.test", ns_t_txt, 0);
	answer_txt(&r, "v=DMARC1; p=reject");
	r.n -= 4; /* cut inside the answer */
	assert_int_equal(parse(&r, rec), DMARC_LOOKUP_TEMP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_rcodes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
