/*
 * smtpd_data_fuzz.c - libFuzzer target for the DATA/BDAT content machine.
 * The first byte picks mode, chunk size and a header_size_limit of 16 or
 * none; the rest is fed in chunks. The
 * end of DATA, when found, must be preceded by CR LF . CR LF in the input,
 * and the output never exceeds the size limit.
 */
#include "mta/smtpd/smtpd_data.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	size_t chunk = (size_t)(ctl & 0x0f) + 1;
	bool bdat = (ctl & 0x10) != 0;
	uint64_t max = (ctl & 0x20) ? 64 : 0;
	struct smtpd_data d;
	smtpd_data_init(&d, (ctl & 0x40) ? SMTPD_BARE_LF_REJECT : SMTPD_BARE_LF_NORMALIZE, bdat, max);
	if (ctl & 0x80)
		smtpd_data_header_limit(&d, 16);
	struct buf out;
	buf_init(&out, 2 * n + 64);
	size_t off = 0;
	while (off < n) {
		size_t k = n - off < chunk ? n - off : chunk;
		size_t used;
		enum smtpd_data_result r = smtpd_data_feed(&d, p + off, k, &out, &used);
		CHECK(used <= k);
		off += used;
		if (r == SMTPD_DATA_END) {
			CHECK(!bdat);
			/* the terminator is really there */
			CHECK(off >= 3 && memcmp(p + off - 3, ".\r\n", 3) == 0);
			CHECK(off == 3 || (off >= 5 && memcmp(p + off - 5, "\r\n", 2) == 0));
			break;
		}
	}
	if (bdat)
		smtpd_data_finish(&d, &out);
	if (max != 0)
		CHECK(out.len <= max);
	CHECK(d.msgid_len <= SMTPD_DATA_MSGID_MAX);
	CHECK(d.size == out.len || d.too_big);
	buf_free(&out);
	return 0;
}
