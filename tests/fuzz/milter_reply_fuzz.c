/*
 * milter_reply_fuzz.c - libFuzzer target for the milter reply decoders: a
 * stream of filter packets is framed, then each is parsed as an option
 * negotiation reply and as a reply at every stage, under two negotiated
 * option sets; 'y' texts go through the reply-code validator. Nothing may
 * crash, leak or read past the input.
 */
#include "mta/milter/milter_proto.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct milter_neg all = { .version = 6, .actions = 0x1FF, .protocol = 0x1FFFFF };
	struct milter_neg none = { .version = 2 };
	size_t pos = 0;
	for (int n = 0; n < 64 && pos < size; n++) {
		size_t total = 0;
		const char *err = NULL;
		int rc = milter_proto_frame(data + pos, size - pos, 70000, &total, &err);
		if (rc <= 0)
			break;
		const uint8_t *pkt = data + pos + MILTER_LEN_BYTES;
		size_t len = total - MILTER_LEN_BYTES;
		struct milter_neg neg;
		if (pkt[0] == 'O' &&
		    milter_proto_parse_optneg(pkt + 1, len - 1, 6, 0x1FF, 0x1FFFFF, &neg, &err) == 0)
			milter_neg_free(&neg);
		for (int s = 0; s < MILTER_STAGE_COUNT; s++) {
			struct milter_reply r;
			if (milter_proto_parse_reply(pkt, len, (enum milter_stage)s, &all, &r, &err) == 0 &&
			    r.type == MILTER_R_REPLYCODE) {
				struct buf out;
				buf_init(&out, 70000);
				CHECK(milter_proto_replycode(r.text, &out, &err) > 0);
				buf_free(&out);
			}
			(void)milter_proto_parse_reply(pkt, len, (enum milter_stage)s, &none, &r, &err);
		}
		pos += total;
	}
	return 0;
}
