/*
 * spf_record_fuzz.c - libFuzzer target for postern-spf's own SPF record
 * parser (filters/spf/spf_record.c): whatever it accepts must come out as
 * a record it accepts again, unchanged (the rewrite is a fixed point).
 */
#include "filters/spf/spf_record.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out, again;
	buf_init(&out, SPF_RECORD_MAX * 2 + 64);
	buf_init(&again, SPF_RECORD_MAX * 2 + 64);
	const char *why;
	if (spf_record_check((const char *)data, size, &out, &why) == 0 &&
	    out.len <= SPF_RECORD_MAX) {
		CHECK(spf_record_is_spf(out.data, out.len));
		CHECK(spf_record_check(out.data, out.len, &again, &why) == 0);
		CHECK(str_eq(buf_str(&out), buf_str(&again)));
	}
	buf_free(&out);
	buf_free(&again);
	return 0;
}
