/*
 * filter_idn_fuzz.c - libFuzzer target for the filters' domain conversion
 * (filters/common/filter_hdr.c: filter_hdr_domain_ascii):
 * any bytes as a domain from an SMTPUTF8 MAIL FROM, HELO or From field.
 */
#include "filters/common/filter_hdr.h"
#include "lib/addr.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str v = { (const char *)data, size };
	struct buf out;
	buf_init(&out, 1024);
	bool utf8 = addr_utf8_valid(v.p, v.len) && memchr(v.p, '\0', v.len) == NULL;
	if (filter_hdr_domain_ascii(v, &out) == 0) {
		/* what is handed to DNS: a valid, lower-case, ASCII name */
		CHECK(utf8);
		CHECK(filter_hdr_domain_ok(buf_str(&out)));
		for (size_t i = 0; i < out.len; i++)
			CHECK((unsigned char)out.data[i] < 0x80 &&
			      !(out.data[i] >= 'A' && out.data[i] <= 'Z'));
		/* and converting it again changes nothing */
		struct buf again;
		buf_init(&again, 1024);
		CHECK(filter_hdr_domain_ascii(buf_str(&out), &again) == 0);
		CHECK(again.len == out.len && memcmp(again.data, out.data, out.len) == 0);
		buf_free(&again);
	} else {
		CHECK(out.len == 0);
	}
	buf_free(&out);
	return 0;
}
