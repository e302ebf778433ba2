/*
 * qfile_test.c - queue file records: round trip, status appends, torn tails,
 * every kind of corruption, queue IDs.
 */
#include "tests/unit/unit.h"

#include "lib/qfile.h"
#include "lib/common.h"

static void sample_env(struct qfile_env *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->qid, "0005F2A1B2C3D4", QFILE_ID_LEN + 1);
	e->arrival = 1700000000123456LL;
	e->size = 4321;
	e->sender = xstrdup("alice@example.org");
	e->flags = 0x03;
	e->envid = xstrdup("ENV1");
	e->client_name = xstrdup("client.example");
	e->client_addr = xstrdup("192.0.2.7");
	e->client_port = 40000;
	e->helo = xstrdup("helo.example");
	e->protocol = xstrdup("ESMTP");
	e->msgid = xstrdup("<m1@example.org>");
	e->nrcpt = 2;
	e->rcpt = xcalloc(2, sizeof(*e->rcpt));
	e->rcpt[0].addr = xstrdup("bob@example.com");
	e->rcpt[0].orcpt = xstrdup("rfc822;bob@example.com");
	e->rcpt[0].notify = 3;
	e->rcpt[1].addr = xstrdup("carol@example.com");
	e->rcpt[1].orcpt = xstrdup("");
}

static void encode_sample(struct buf *out)
{
	struct qfile_env e;
	const char *err = NULL;
	sample_env(&e);
	buf_init(out, QFILE_FILE_MAX);
	assert_int_equal(qfile_encode_env(&e, out, &err), 0);
	qfile_env_free(&e);
}

static void test_round_trip(void **state)
{
	struct buf b;
	struct qfile_env e;
	const char *err = NULL;
	encode_sample(&b);
	assert_int_equal(qfile_parse(b.data, b.len, &e, &err), 0);
	assert_string_equal(e.qid, "0005F2A1B2C3D4");
	assert_true(e.arrival == 1700000000123456LL);
	assert_int_equal(e.size, 4321);
	assert_string_equal(e.sender, "alice@example.org");
	assert_int_equal(e.flags, 3);
	assert_string_equal(e.envid, "ENV1");
	assert_string_equal(e.client_name, "client.example");
	assert_string_equal(e.client_addr, "192.0.2.7");
	assert_int_equal(e.client_port, 40000);
	assert_string_equal(e.helo, "helo.example");
	assert_string_equal(e.protocol, "ESMTP");
	assert_string_equal(e.msgid, "<m1@example.org>");
	assert_int_equal(e.nrcpt, 2);
	assert_string_equal(e.rcpt[0].addr, "bob@example.com");
	assert_string_equal(e.rcpt[0].orcpt, "rfc822;bob@example.com");
	assert_int_equal(e.rcpt[0].notify, 3);
	assert_string_equal(e.rcpt[1].addr, "carol@example.com");
	assert_int_equal(e.rcpt[1].state, QFILE_RS_PENDING);
	assert_int_equal(e.valid_len, b.len);
	qfile_env_free(&e);
	buf_free(&b);
}

static void test_status_records(void **state)
{
	struct buf b;
	struct qfile_env e;
	const char *err = NULL;
	encode_sample(&b);
	assert_int_equal(qfile_encode_status(&b, 1, QFILE_RS_DEFERRED, 5, "", "4.3.0", "later", &err), 0);
	assert_int_equal(qfile_encode_status(&b, 0, QFILE_RS_SENT, 6, "x@y", "2.0.0", "ok", &err), 0);
	assert_int_equal(qfile_encode_status(&b, 0, QFILE_RS_SENT, 7, "", "2.0.0", "delivered", &err), 0);
	assert_int_equal(qfile_parse(b.data, b.len, &e, &err), 0);
	assert_int_equal(e.rcpt[0].state, QFILE_RS_SENT);
	assert_int_equal(e.rcpt[0].ndone, 1);
	assert_string_equal(e.rcpt[0].done[0], "x@y");
	assert_string_equal(e.rcpt[0].reason, "delivered");
	assert_int_equal(e.rcpt[1].state, QFILE_RS_DEFERRED);
	assert_string_equal(e.rcpt[1].reason, "later");
	assert_string_equal(e.rcpt[1].dsn, "4.3.0");
	qfile_env_free(&e);

	/* a status for a finished recipient is corruption */
	assert_int_equal(qfile_encode_status(&b, 0, QFILE_RS_BOUNCED, 8, "", "5.0.0", "x", &err), 0);
	assert_int_equal(qfile_parse(b.data, b.len, &e, &err), -1);
	assert_string_equal(err, "status record after the recipient was finished");
	buf_free(&b);

	/* an index past the recipients */
	encode_sample(&b);
	assert_int_equal(qfile_encode_status(&b, 2, QFILE_RS_SENT, 1, "", "", "", &err), 0);
	assert_int_equal(qfile_parse(b.data, b.len, &e, &err), -1);
	assert_string_equal(err, "status record for an unknown recipient");
	buf_free(&b);
}

/* ATTEMPT records stay open until an outcome for their target (or for
 * the whole recipient) follows. */
static void test_attempt_records(void **state)
{
	struct buf b;
	struct qfile_env e;
	const char *err = NULL;
	encode_sample(&b);
	assert_int_equal(qfile_encode_attempt(&b, 0, 77, 5, "k1", &err), 0);
	assert_int_equal(qfile_encode_attempt(&b, 0, 78, 5, "k2", &err), 0);
	assert_int_equal(qfile_encode_attempt(&b, 1, 79, 5, "k3", &err), 0);
	assert_int_equal(qfile_encode_status(&b, 0, QFILE_RS_SENT, 6, "k1", "2.0.0", "ok", &err), 0);
	assert_int_equal(qfile_parse(b.data, b.len, &e, &err), 0);
	assert_int_equal(e.rcpt[0].natt, 1);
	assert_string_equal(e.rcpt[0].att[0].target, "k2");
	assert_int_equal(e.rcpt[0].att[0].reqid, 78);
	assert_int_equal(e.rcpt[1].natt, 1);
	assert_int_equal(e.rcpt[1].att[0].reqid, 79);
	qfile_env_free(&e);
	/* a whole-recipient outcome closes every attempt of that recipient */
	assert_int_equal(qfile_encode_status(&b, 0, QFILE_RS_DEFERRED, 7, "", "4.0.0", "x", &err), 0);
	assert_int_equal(qfile_parse(b.data, b.len, &e, &err), 0);
	assert_int_equal(e.rcpt[0].natt, 0);
	assert_int_equal(e.rcpt[1].natt, 1);
	qfile_env_free(&e);
	/* no attempt for an unknown recipient */
	assert_int_equal(qfile_encode_attempt(&b, 9, 1, 1, "k", &err), 0);
	assert_int_equal(qfile_parse(b.data, b.len, &e, &err), -1);
	assert_string_equal(err, "attempt record for an unknown recipient");
	buf_free(&b);
}

/* Every truncation inside the envelope fails; a truncation inside the last
 * status record is a torn append and leaves the envelope readable. */
static void test_truncation(void **state)
{
	struct buf b;
	struct qfile_env e;
	const char *err = NULL;
	encode_sample(&b);
	size_t env_len = b.len;
	assert_int_equal(qfile_encode_status(&b, 0, QFILE_RS_SENT, 6, "", "2.0.0", "ok", &err), 0);
	for (size_t n = 0; n < b.len; n++) {
		char *copy = xmalloc(n ? n : 1);
		memcpy(copy, b.data, n);
		int rc = qfile_parse(copy, n, &e, &err);
		if (n < env_len) {
			assert_int_equal(rc, -1);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(e.valid_len, env_len);
			assert_int_equal(e.rcpt[0].state, QFILE_RS_PENDING);
			qfile_env_free(&e);
		}
		free(copy);
	}
	buf_free(&b);
}

/* A flipped bit anywhere in the envelope is detected (CRC); in the final
 * status record it is a torn append: the record is ignored. */
static void test_flipped_bytes(void **state)
{
	struct buf b;
	struct qfile_env e;
	const char *err = NULL;
	encode_sample(&b);
	size_t env_len = b.len;
	assert_int_equal(qfile_encode_status(&b, 0, QFILE_RS_SENT, 6, "", "2.0.0", "ok", &err), 0);
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b.data[i] ^= (char)(1 << bit);
			int rc = qfile_parse(b.data, b.len, &e, &err);
			if (i < env_len) {
				assert_int_equal(rc, -1);
			} else if (rc == 0) {
				/* never believed: the damaged status is dropped */
				assert_int_equal(e.rcpt[0].state, QFILE_RS_PENDING);
				qfile_env_free(&e);
			}
			b.data[i] ^= (char)(1 << bit);
		}
	}
	buf_free(&b);
}

/* Build one raw record with a correct checksum. */
static void raw_rec(struct buf *out, unsigned char type, const void *p, uint32_t len)
{
	unsigned char hdr[5] = { type, (unsigned char)len, (unsigned char)(len >> 8),
				 (unsigned char)(len >> 16), (unsigned char)(len >> 24) };
	uint32_t crc = qfile_crc32(qfile_crc32(0, hdr, 5), p, len);
	unsigned char t[4] = { (unsigned char)crc, (unsigned char)(crc >> 8),
			       (unsigned char)(crc >> 16), (unsigned char)(crc >> 24) };
	buf_append(out, hdr, 5);
	buf_append(out, p, len);
	buf_append(out, t, 4);
}

/* The sample envelope up to (not including) the END record. */
static void sample_before_end(struct buf *b)
{
	encode_sample(b);
}

static void expect_error(struct buf *b, const char *want)
{
	struct qfile_env e;
	const char *err = NULL;
	assert_int_equal(qfile_parse(b->data, b->len, &e, &err), -1);
	assert_string_equal(err, want);
	/* a failed parse leaves nothing to free */
	assert_null(e.sender);
	assert_null(e.rcpt);
}

static void test_hostile_records(void **state)
{
	struct buf b;
	unsigned char huge[4] = { 0xff, 0xff, 0xff, 0xff };

	/* missing end marker */
	sample_before_end(&b);
	buf_truncate(&b, b.len - 13);
	expect_error(&b, "no end-of-envelope record");
	buf_free(&b);

	/* huge recipient count in END */
	sample_before_end(&b);
	buf_truncate(&b, b.len - 13);
	raw_rec(&b, QFILE_REC_END, huge, 4);
	expect_error(&b, "recipient count does not match");
	buf_free(&b);

	/* unknown record type */
	sample_before_end(&b);
	buf_truncate(&b, b.len - 13);
	raw_rec(&b, 'Z', "", 0);
	expect_error(&b, "unknown record type");
	buf_free(&b);

	/* length field over the limit */
	buf_init(&b, 1000);
	buf_append(&b, "V\xff\xff\xff\x7f\0\0\0\0\0\0\0\0", 13);
	expect_error(&b, "record length over the limit");
	buf_free(&b);

	/* a string field claiming 4 GiB inside a record */
	buf_init(&b, 1000);
	{
		unsigned char v[4] = { QFILE_VERSION, 0, 0, 0 };
		raw_rec(&b, QFILE_REC_VERSION, v, 4);
		unsigned char s[8] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0 };
		raw_rec(&b, QFILE_REC_SENDER, s, 8);
	}
	expect_error(&b, "bad sender record");
	buf_free(&b);

	/* not starting with VERSION */
	buf_init(&b, 1000);
	raw_rec(&b, QFILE_REC_ID, "0005F2A1B2C3D4", 14);
	expect_error(&b, "file does not start with a version record");
	buf_free(&b);

	/* duplicate record */
	buf_init(&b, 1000);
	{
		unsigned char v[4] = { QFILE_VERSION, 0, 0, 0 };
		raw_rec(&b, QFILE_REC_VERSION, v, 4);
		raw_rec(&b, QFILE_REC_VERSION, v, 4);
	}
	expect_error(&b, "duplicate envelope record");
	buf_free(&b);

	/* a queue ID that would name another path */
	buf_init(&b, 1000);
	{
		unsigned char v[4] = { QFILE_VERSION, 0, 0, 0 };
		raw_rec(&b, QFILE_REC_VERSION, v, 4);
		raw_rec(&b, QFILE_REC_ID, "../../etc/pass", 14);
	}
	expect_error(&b, "bad queue ID record");
	buf_free(&b);

	/* END with required records missing */
	buf_init(&b, 1000);
	{
		unsigned char v[4] = { QFILE_VERSION, 0, 0, 0 };
		raw_rec(&b, QFILE_REC_VERSION, v, 4);
		unsigned char one[4] = { 1, 0, 0, 0 };
		raw_rec(&b, QFILE_REC_END, one, 4);
	}
	expect_error(&b, "envelope is missing a required record");
	buf_free(&b);

	/* NUL inside a string */
	sample_before_end(&b);
	buf_truncate(&b, b.len - 13);
	{
		unsigned char r[4 + 3 + 4 + 4] = { 3, 0, 0, 0, 'a', 0, 'b', 0, 0, 0, 0, 0, 0, 0, 0 };
		raw_rec(&b, QFILE_REC_RCPT, r, sizeof(r));
	}
	expect_error(&b, "bad recipient record");
	buf_free(&b);

	/* garbage after the end that is not a status record */
	encode_sample(&b);
	raw_rec(&b, QFILE_REC_RCPT, "", 0);
	expect_error(&b, "unexpected record after end of envelope");
	buf_free(&b);

	/* a flipped byte in a status record that is NOT last is corruption */
	{
		const char *err;
		encode_sample(&b);
		size_t at = b.len + 12;
		qfile_encode_status(&b, 0, QFILE_RS_DEFERRED, 1, "", "4.0.0", "a", &err);
		qfile_encode_status(&b, 0, QFILE_RS_SENT, 2, "", "2.0.0", "b", &err);
		b.data[at] ^= 1;
		expect_error(&b, "record checksum mismatch");
		buf_free(&b);
	}
}

static void test_encode_limits(void **state)
{
	struct qfile_env e;
	struct buf b;
	const char *err = NULL;
	sample_env(&e);
	buf_init(&b, QFILE_FILE_MAX);
	memcpy(e.qid, "bad", 4);
	assert_int_equal(qfile_encode_env(&e, &b, &err), -1);
	assert_string_equal(err, "bad queue ID");
	memcpy(e.qid, "0005F2A1B2C3D4", QFILE_ID_LEN + 1);
	free(e.sender);
	e.sender = xmalloc(QFILE_STR_MAX + 2);
	memset(e.sender, 'a', QFILE_STR_MAX + 1);
	e.sender[QFILE_STR_MAX + 1] = '\0';
	assert_int_equal(qfile_encode_env(&e, &b, &err), -1);
	qfile_env_free(&e);
	buf_free(&b);
}

static void test_ids_order(void **state)
{
	char a[QFILE_ID_LEN + 1], b[QFILE_ID_LEN + 1], c[QFILE_ID_LEN + 1];
	uint64_t last = 0;
	qfile_id_next(1700000000000000LL, &last, a);
	qfile_id_next(1700000000000000LL, &last, b);
	qfile_id_next(1600000000000000LL, &last, c);
	assert_int_equal(strlen(a), QFILE_ID_LEN);
	assert_true(qfile_id_valid(a) && qfile_id_valid(b) && qfile_id_valid(c));
	assert_true(strcmp(a, b) < 0);
	assert_true(strcmp(b, c) < 0);
	assert_true(qfile_id_value(b) == qfile_id_value(a) + 1);
	/* a restart resumes above the largest ID found in the queue */
	uint64_t restart = qfile_id_value(c);
	char d[QFILE_ID_LEN + 1];
	qfile_id_next(1500000000000000LL, &restart, d);
	assert_true(strcmp(c, d) < 0);
	assert_false(qfile_id_valid("0005f2a1b2c3d4"));
	assert_false(qfile_id_valid("0005F2A1B2C3D"));
	assert_false(qfile_id_valid("0005F2A1B2C3D4A"));
	assert_false(qfile_id_valid("../../../etc/p"));
	assert_false(qfile_id_valid(NULL));
}

static void test_crc(void **state)
{
	/* the standard check value of CRC-32/ISO-HDLC */
	assert_int_equal(qfile_crc32(0, "123456789", 9), 0xCBF43926u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_status_records),
		cmocka_unit_test(test_attempt_records),
		cmocka_unit_test(test_truncation),    cmocka_unit_test(test_flipped_bytes),
		cmocka_unit_test(test_hostile_records), cmocka_unit_test(test_encode_limits),
		cmocka_unit_test(test_ids_order),     cmocka_unit_test(test_crc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
