/*
 * filter_ar_fuzz.c - libFuzzer target for the Authentication-Results
 * reader the filters share (filters/common/filter_ar.c): every result kept
 * has a method and a result, and a kept domain is a valid domain name.
 */
#include "filters/common/filter_ar.h"
#include "filters/common/filter_hdr.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct filter_ar *ar = xmalloc(sizeof(*ar));
	struct str v = { (const char *)data, size };
	if (filter_ar_parse(v, ar) == 0) {
		CHECK(ar->authserv_id[0] != '\0');
		CHECK(ar->n <= FILTER_AR_MAX_RESULTS);
		for (size_t i = 0; i < ar->n; i++) {
			CHECK(ar->v[i].method[0] != '\0' && ar->v[i].result[0] != '\0');
			if (ar->v[i].domain[0] != '\0')
				CHECK(filter_hdr_domain_ok(str_of(ar->v[i].domain)));
		}
		(void)filter_ar_claims(v, ar->authserv_id, "dkim");
	}
	free(ar);
	return 0;
}
