/*
 * submit_text_fuzz.c - libFuzzer target for local-submission parsing: the
 * sendmail input converter (mta/smtpd/smtpd_submit_text.c) and the -t
 * recipient extractor (mta/cli/sendmail_hdr.c) over the same bytes. The
 * converted content must have only CRLF line ends and stay within its
 * buffer; every extracted address must be non-empty and bounded.
 */
#include "mta/cli/sendmail_hdr.h"
#include "mta/smtpd/smtpd_submit_text.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct smtpd_submit_fill fill = { "u@h.test", "Full \"Name\"", "D", "<i@h.test>" };
	struct smtpd_submit_info info;
	struct buf out;
	buf_init(&out, 2 * size + 4096);
	int r = smtpd_submit_text_convert(p, size, &fill, &out, &info);
	CHECK(r == 0);
	for (size_t i = 0; i < out.len; i++) {
		if (out.data[i] == '\n')
			CHECK(i > 0 && out.data[i - 1] == '\r');
	}
	CHECK(strlen(info.msgid) <= SMTPD_SUBMIT_MSGID_MAX);
	buf_free(&out);
	/* and into a small buffer: fails cleanly, never overruns */
	buf_init(&out, size / 2);
	(void)smtpd_submit_text_convert(p, size, &fill, &out, &info);
	CHECK(out.len <= size / 2);
	buf_free(&out);

	struct sendmail_hdr_rcpts rc = { 0 };
	const char *err = NULL;
	if (sendmail_hdr_rcpts(p, size, &rc, &err) == 0) {
		for (size_t i = 0; i < rc.n; i++)
			CHECK(rc.addr[i][0] != '\0' && strlen(rc.addr[i]) <= SENDMAIL_HDR_ADDR_MAX);
	} else {
		CHECK(err != NULL);
	}
	sendmail_hdr_rcpts_free(&rc);
	return 0;
}
