/*
 * filter_hdr_fuzz.c - libFuzzer target for the filters' header parsing:
 * From addresses, Authentication-Results authserv-ids, domain checks
 * (filters/common/filter_hdr.c). The first byte picks the parser.
 */
#include "filters/common/filter_hdr.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	struct str v = { (const char *)data + 1, size - 1 };
	struct buf a, d;
	buf_init(&a, FILTER_HDR_ADDR_MAX);
	buf_init(&d, FILTER_HDR_ADDR_MAX);
	switch (data[0] % 3) {
	case 0: {
		enum filter_from r = filter_hdr_from(v, &a, &d);
		/* a found address always has its domain after an '@' */
		if (r == FILTER_FROM_ONE) {
			CHECK(d.len > 0 && a.len > d.len);
			CHECK(filter_hdr_domain_ok(buf_str(&d)));
		} else {
			CHECK(a.len == 0 && d.len == 0);
		}
		break;
	}
	case 1:
		if (filter_hdr_authserv_id(v, &a) == 0)
			CHECK(a.len > 0);
		break;
	default:
		(void)filter_hdr_domain_ok(v);
		break;
	}
	buf_free(&a);
	buf_free(&d);
	return 0;
}
