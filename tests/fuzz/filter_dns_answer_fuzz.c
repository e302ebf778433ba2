/*
 * filter_dns_answer_fuzz.c - libFuzzer target for how the filters read DNS replies
 * (hostile or broken TXT, A, AAAA, MX, PTR answers): postern-spf's layer
 * under libspf2 (filters/spf/spf_eval.c) and postern-dmarc's record
 * extraction (filters/dmarc/dmarc_milter.c). The first byte picks the
 * reader; the rest is the reply message.
 */
#include <arpa/nameser.h>

#include "filters/dmarc/dmarc_milter.h"
#include "filters/spf/spf_eval.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const int types[] = { ns_t_txt, ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_ptr };
	const unsigned char *ans = data + 1;
	size_t len = size - 1;
	unsigned pick = data[0] % (ARRAY_LEN(types) + 1);
	if (pick == ARRAY_LEN(types)) {
		char rec[1024];
		int r = dmarc_milter_parse(ans, len, rec, sizeof(rec));
		CHECK(r == DMARC_LOOKUP_FOUND || r == DMARC_LOOKUP_NONE || r == DMARC_LOOKUP_TEMP);
		if (r == DMARC_LOOKUP_FOUND)
			CHECK(strncmp(rec, "v=DMARC1", 8) == 0);
		return 0;
	}
	char txt[8192];
	const char *bad;
	int n = spf_eval_answer_test("d.test", types[pick], ans, len, txt, sizeof(txt), &bad);
	CHECK(n >= -1);
	return 0;
}
