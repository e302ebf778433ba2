/*
 * qfile_fuzz.c - the queue file reader on hostile bytes.
 *
 * Purpose: qfile_parse() must return an error, never crash, overread or
 * leak, whatever the file holds. A file that parses is re-encoded and must
 * parse again to the same envelope (the writer accepts what the reader gives).
 * Each input is also parsed a second time with every record's CRC repaired,
 * so the fuzzer reaches the record semantics behind the checksum.
 */
#include "lib/qfile.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_one(const uint8_t *data, size_t size);

/* Rewrite the CRC of every complete record (lengths as the file says). */
static void repair_crcs(uint8_t *d, size_t n)
{
	size_t pos = 0;
	while (n - pos >= 9) {
		size_t len = (size_t)d[pos + 1] | (size_t)d[pos + 2] << 8 | (size_t)d[pos + 3] << 16 |
			     (size_t)d[pos + 4] << 24;
		if (len > n - pos - 9)
			return;
		uint32_t crc = qfile_crc32(0, d + pos, 5 + len);
		for (int i = 0; i < 4; i++)
			d[pos + 5 + len + (size_t)i] = (uint8_t)(crc >> (8 * i));
		pos += 9 + len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_one(data, size);
	uint8_t *copy = xmalloc(size ? size : 1);
	if (size)
		memcpy(copy, data, size);
	repair_crcs(copy, size);
	parse_one(copy, size);
	free(copy);
	return 0;
}

static void parse_one(const uint8_t *data, size_t size)
{
	struct qfile_env env, again;
	const char *err = NULL;
	if (qfile_parse(data, size, &env, &err) < 0)
		return;
	CHECK(env.valid_len <= size && env.nrcpt >= 1);
	struct buf out;
	buf_init(&out, QFILE_FILE_MAX);
	if (qfile_encode_env(&env, &out, &err) == 0) {
		CHECK(qfile_parse(out.data, out.len, &again, &err) == 0);
		CHECK(again.nrcpt == env.nrcpt && strcmp(again.sender, env.sender) == 0);
		qfile_env_free(&again);
	}
	buf_free(&out);
	qfile_env_free(&env);
}
