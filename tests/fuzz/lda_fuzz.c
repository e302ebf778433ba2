/*
 * lda_fuzz.c - libFuzzer target for postern-lda's input parsers: any bytes
 * as a message (header preparation and loop check, mboxrd quoting), as a
 * maildirsize file, as a dotlock record, as a Maildir file name and as a
 * folder name to encode.
 * Invariants: the stored message ends with the input (CRLF -> LF, minus a
 * From_ line); undoing mboxrd quoting gives the input back; no parser reads
 * outside its bytes.
 */
#include "delivery/lda_headers.h"
#include "delivery/lda_maildir.h"
#include "delivery/lda_mbox.h"
#include "delivery/lda_path.h"
#include "delivery/lda_quota.h"
#include "lib/buf.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Undo mboxrd quoting of the lines in q (without the trailing empty line). */
static void lda_fuzz_unquote(const char *q, size_t n, struct buf *out)
{
	size_t i = 0;
	while (i < n) {
		const char *nl = memchr(q + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - q) + 1 : n;
		size_t j = i;
		while (j < end && q[j] == '>')
			j++;
		size_t skip = j > i && end - j >= 5 && memcmp(q + j, "From ", 5) == 0 ? 1 : 0;
		CHECK(buf_append(out, q + i + skip, end - i - skip) == 0);
		i = end;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str in = { (const char *)data, size };

	/* message preparation */
	struct lda_headers_env env = { "a@b", "o@d", "u@d" };
	struct lda_headers_info info;
	struct lda_status st = { 0 };
	struct buf out, conv;
	buf_init(&out, size * 2 + 4096);
	buf_init(&conv, size + 1);
	if (lda_headers_prepare(in, &env, &out, &info, &st) == 0) {
		size_t skip = 0;
		if (size >= 5 && memcmp(data, "From ", 5) == 0) {
			const uint8_t *nl = memchr(data, '\n', size);
			skip = nl ? (size_t)(nl - data) + 1 : size;
		}
		CHECK(lda_headers_crlf_to_lf(&conv, in.p + skip, size - skip) == 0);
		CHECK(out.len >= conv.len);
		CHECK(conv.len == 0 || memcmp(out.data + out.len - conv.len, conv.data, conv.len) == 0);
	} else {
		CHECK(st.ex != 0 && st.dsn[0] != '\0');
	}
	lda_headers_info_free(&info);
	buf_free(&out);
	buf_free(&conv);

	/* mboxrd quoting round trip */
	struct buf q, back;
	buf_init(&q, size * 2 + 4);
	buf_init(&back, size * 2 + 4);
	CHECK(lda_mbox_quote(&q, in.p, in.len) == 0);
	CHECK(q.len >= 1 && q.data[q.len - 1] == '\n');
	lda_fuzz_unquote(q.data, q.len - 1, &back);
	size_t want = size + (size == 0 || data[size - 1] != '\n' ? 1 : 0);
	CHECK(back.len == want);
	CHECK(size == 0 || memcmp(back.data, data, size) == 0);
	buf_free(&q);
	buf_free(&back);

	/* maildirsize, dotlock record, file name */
	struct lda_quota_limit lim;
	struct lda_quota_usage use;
	if (lda_quota_parse_file(in, &lim, &use) == 0)
		(void)lda_quota_exceeds(&lim, &use, size);
	long pid;
	uint64_t lsize;
	if (lda_mbox_parse_lock(in.p, in.len, &pid, &lsize))
		CHECK(pid > 0);
	char *name = xmemdup(data, size);
	uint64_t s;
	(void)lda_maildir_name_size(name, &s);
	char host[64];
	lda_maildir_escape_host(name, host, sizeof(host));
	CHECK(strchr(host, '/') == NULL && strchr(host, ':') == NULL);
	/* folder names: modified UTF-7 adds no '/' or '.' of its own */
	char *enc = lda_path_folder_mutf7(name);
	if (enc != NULL) {
		size_t dots_in = 0, dots_out = 0, sl_in = 0, sl_out = 0;
		for (const char *c = name; *c; c++)
			dots_in += *c == '.', sl_in += *c == '/';
		for (const char *c = enc; *c; c++)
			dots_out += *c == '.', sl_out += *c == '/';
		CHECK(dots_in == dots_out && sl_in == sl_out);
		free(enc);
	}
	free(name);
	return 0;
}
