/* spf_eval_test.c - what postern-spf's DNS layer hands libspf2 for hostile
 * or unusual replies (filters/spf/spf_eval.c), and postern-dmarc's record
 * extraction (filters/dmarc/dmarc_milter.c is not linked here: see
 * tests/fuzz/filter_dns_answer_fuzz.c). Replies are built byte by byte. */
#include "tests/unit/unit.h"
#include <arpa/nameser.h>
#include "filters/spf/spf_eval.h"
#include "lib/common.h"

#include "tests/unit/filters/dns_reply.h"

static int give(struct reply *r, int type, char *txt, const char **bad)
{
	return spf_eval_answer_test("d.test", type, r->b, r->n, txt, 8192, bad);
}

static void test_txt(void **state)
{
	struct reply r;
	char txt[8192];
	const char *bad;
	/* a record in two character-strings is joined without a space */
	start(&r, "d.test", ns_t_txt, 0);
	answer(&r, ns_t_txt, "\x07v=spf1 \x04-all", 13);
	assert_int_equal(give(&r, ns_t_txt, txt, &bad), 1);
	assert_string_equal(txt, "v=spf1 -all");
	assert_null(bad);
	/* a valid record libspf2 would refuse is rewritten */
	start(&r, "d.test", ns_t_txt, 0);
	answer_txt(&r, "v=spf1 ip4:0.0.0.0/0 -all");
	assert_int_equal(give(&r, ns_t_txt, txt, &bad), 1);
	assert_string_equal(txt, "v=spf1 ip4:0.0.0.0/1 ip4:128.0.0.0/1 -all");
	/* a NUL inside an SPF record: refused, libspf2 gets a harmless one */
	start(&r, "d.test", ns_t_txt, 0);
	answer(&r, ns_t_txt, "\x10v=spf1 -all\0+all", 17);
	assert_int_equal(give(&r, ns_t_txt, txt, &bad), 1);
	assert_non_null(bad);
	assert_string_equal(txt, "v=spf1 ?all");
	/* a string length running past the record is cut, not followed */
	start(&r, "d.test", ns_t_txt, 0);
	answer(&r, ns_t_txt, "\xffv=spf1 -all", 12);
	assert_int_equal(give(&r, ns_t_txt, txt, &bad), 1);
	assert_string_equal(txt, "v=spf1 -all");
	/* not SPF: passed on, cut at a NUL as libspf2 reads C strings */
	start(&r, "d.test", ns_t_txt, 0);
	answer(&r, ns_t_txt, "\x05hi\0yo", 6);
	assert_int_equal(give(&r, ns_t_txt, txt, &bad), 1);
	assert_string_equal(txt, "hi");
	/* NODATA and NXDOMAIN: no records */
	start(&r, "d.test", ns_t_txt, 0);
	assert_int_equal(give(&r, ns_t_txt, txt, &bad), 0);
	start(&r, "d.test", ns_t_txt, 3);
	assert_int_equal(give(&r, ns_t_txt, txt, &bad), 0);
}

static void test_other_types(void **state)
{
	struct reply r;
	char txt[8192];
	const char *bad;
	/* A: a 2-byte rdata is skipped */
	start(&r, "d.test", ns_t_a, 0);
	answer(&r, ns_t_a, "\xc0\x00\x02\x01", 4);
	answer(&r, ns_t_a, "\x01\x02", 2);
	answer(&r, ns_t_aaaa, "0123456789abcdef", 16); /* wrong type */
	assert_int_equal(give(&r, ns_t_a, txt, &bad), 1);
	/* MX: a name pointing outside the message is skipped */
	start(&r, "d.test", ns_t_mx, 0);
	answer(&r, ns_t_mx, "\x00\x0a\x02mx\xc0\x0c", 7);
	answer(&r, ns_t_mx, "\x00\x0a\xc0\xff", 4);
	assert_int_equal(give(&r, ns_t_mx, txt, &bad), 1);
	/* PTR: RFC 7208 §5.5, names past the 10th are ignored */
	start(&r, "1.2.0.192.in-addr.arpa", ns_t_ptr, 0);
	for (int i = 0; i < 14; i++) {
		unsigned char rd[16] = { 2, 'h', (unsigned char)('a' + i), 0xc0, 0x0c };
		answer(&r, ns_t_ptr, rd, 5);
	}
	assert_int_equal(give(&r, ns_t_ptr, txt, &bad), 10);
	/* a reply that does not parse: no records */
	start(&r, "d.test", ns_t_a, 0);
	answer(&r, ns_t_a, "\xc0\x00\x02\x01", 4);
	r.n -= 3;
	assert_int_equal(give(&r, ns_t_a, txt, &bad), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_other_types),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
