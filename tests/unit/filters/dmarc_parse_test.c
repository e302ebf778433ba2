/* dmarc_parse_test.c - postern-dmarc's reading of _dmarc TXT replies
 * (dmarc_milter_parse in filters/dmarc/dmarc_milter.c), RFC 7489 §6.6.3:
 * exactly one record starting with v=DMARC1 counts. */
#include "tests/unit/unit.h"
#include <arpa/nameser.h>
#include "filters/dmarc/dmarc_milter.h"
#include "lib/common.h"

#include "tests/unit/filters/dns_reply.h"

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
