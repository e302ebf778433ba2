/*
 * qfile.c - queue file records: encode, parse, IDs (see qfile.h).
 *
 * Purpose: the one definition of the envelope file format.
 * Owns: nothing beyond the structures it returns.
 * Never: trusts a length, count or index read from a file before checking
 * it; crashes or aborts on a malformed file; logs.
 * Limits: QFILE_REC_MAX per record, QFILE_STR_MAX per string, QFILE_RCPT_MAX
 * recipients, QFILE_STATUS_MAX status records, QFILE_FILE_MAX per file.
 * Tests: tests/unit/lib/qfile_test.c, tests/fuzz/qfile_fuzz.c.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/qfile.h"
#include "lib/fileio.h"
#include "lib/common.h"

#define QFILE_REC_OVERHEAD 9 /* type + length + crc */

uint32_t qfile_crc32(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *b = p;
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= b[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}

/* ---- little-endian field helpers ---- */

static void put_le(unsigned char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

struct qfile_pay {
	unsigned char data[QFILE_REC_MAX]; /* payload under construction */
	size_t len;                        /* bytes used */
	bool bad;                          /* a field did not fit or broke a limit */
};

static void pay_bytes(struct qfile_pay *p, const void *d, size_t n)
{
	if (p->bad || sizeof(p->data) - p->len < n) {
		p->bad = true;
		return;
	}
	if (n > 0)
		memcpy(p->data + p->len, d, n);
	p->len += n;
}

static void pay_u32(struct qfile_pay *p, uint32_t v)
{
	unsigned char b[4];
	put_le(b, v, 4);
	pay_bytes(p, b, 4);
}

static void pay_u64(struct qfile_pay *p, uint64_t v)
{
	unsigned char b[8];
	put_le(b, v, 8);
	pay_bytes(p, b, 8);
}

static void pay_str(struct qfile_pay *p, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n > QFILE_STR_MAX) {
		p->bad = true;
		return;
	}
	pay_u32(p, (uint32_t)n);
	pay_bytes(p, s, n);
}

static int rec_emit(struct buf *out, enum qfile_rec_type type, struct qfile_pay *p)
{
	if (p->bad)
		return -1;
	unsigned char hdr[5], tail[4];
	hdr[0] = (unsigned char)type;
	put_le(hdr + 1, p->len, 4);
	uint32_t crc = qfile_crc32(0, hdr, 5);
	crc = qfile_crc32(crc, p->data, p->len);
	put_le(tail, crc, 4);
	if (buf_append(out, hdr, 5) < 0 || buf_append(out, p->data, p->len) < 0 ||
	    buf_append(out, tail, 4) < 0)
		return -1;
	return 0;
}

bool qfile_id_valid(const char *s)
{
	if (s == NULL)
		return false;
	for (int i = 0; i < QFILE_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return s[QFILE_ID_LEN] == '\0';
}

uint64_t qfile_id_value(const char *id)
{
	if (!qfile_id_valid(id))
		return 0;
	uint64_t v = 0;
	for (int i = 0; i < QFILE_ID_LEN; i++)
		v = v * 16 + (uint64_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'A' + 10);
	return v;
}

void qfile_id_next(int64_t now_us, uint64_t *last, char out[QFILE_ID_LEN + 1])
{
	uint64_t v = now_us > 0 ? (uint64_t)now_us : 0;
	if (v <= *last)
		v = *last + 1;
	*last = v;
	static const char hex[] = "0123456789ABCDEF";
	for (int i = QFILE_ID_LEN - 1; i >= 0; i--) {
		out[i] = hex[v & 15];
		v >>= 4;
	}
	out[QFILE_ID_LEN] = '\0';
}

const char *qfile_rstate_name(enum qfile_rstate s)
{
	switch (s) {
	case QFILE_RS_PENDING:
		return "pending";
	case QFILE_RS_SENT:
		return "sent";
	case QFILE_RS_BOUNCED:
		return "bounced";
	case QFILE_RS_DEFERRED:
		return "deferred";
	}
	return "unknown";
}

static bool str_sane(const char *s)
{
	return s != NULL && strlen(s) <= QFILE_STR_MAX;
}

int qfile_encode_env(const struct qfile_env *env, struct buf *out, const char **error_r)
{
	struct qfile_pay *p = xcalloc(1, sizeof(*p));
	int rc = -1;

	*error_r = "field too long";
	if (!qfile_id_valid(env->qid)) {
		*error_r = "bad queue ID";
		goto done;
	}
	if (env->nrcpt == 0 || env->nrcpt > QFILE_RCPT_MAX) {
		*error_r = "bad recipient count";
		goto done;
	}
	if (!str_sane(env->sender) || !str_sane(env->envid) || !str_sane(env->client_name) ||
	    !str_sane(env->client_addr) || !str_sane(env->helo) || !str_sane(env->protocol) ||
	    !str_sane(env->msgid))
		goto done;

	p->len = 0;
	pay_u32(p, QFILE_VERSION);
	if (rec_emit(out, QFILE_REC_VERSION, p) < 0)
		goto done;
	p->len = 0;
	pay_bytes(p, env->qid, QFILE_ID_LEN);
	if (rec_emit(out, QFILE_REC_ID, p) < 0)
		goto done;
	p->len = 0;
	pay_u64(p, (uint64_t)env->arrival);
	if (rec_emit(out, QFILE_REC_ARRIVAL, p) < 0)
		goto done;
	p->len = 0;
	pay_u64(p, env->size);
	if (rec_emit(out, QFILE_REC_SIZE, p) < 0)
		goto done;
	p->len = 0;
	pay_str(p, env->sender);
	pay_u32(p, env->flags);
	pay_str(p, env->envid);
	if (rec_emit(out, QFILE_REC_SENDER, p) < 0)
		goto done;
	p->len = 0;
	pay_str(p, env->client_name);
	pay_str(p, env->client_addr);
	pay_u32(p, env->client_port);
	pay_str(p, env->helo);
	pay_str(p, env->protocol);
	pay_str(p, env->msgid);
	if (rec_emit(out, QFILE_REC_CLIENT, p) < 0)
		goto done;
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct qfile_rcpt *r = &env->rcpt[i];
		if (!str_sane(r->addr) || !str_sane(r->orcpt))
			goto done;
		p->len = 0;
		pay_str(p, r->addr);
		pay_str(p, r->orcpt);
		pay_u32(p, r->notify);
		if (rec_emit(out, QFILE_REC_RCPT, p) < 0)
			goto done;
	}
	p->len = 0;
	pay_u32(p, (uint32_t)env->nrcpt);
	if (rec_emit(out, QFILE_REC_END, p) < 0)
		goto done;
	rc = 0;
done:
	free(p);
	return rc;
}

int qfile_encode_status(struct buf *out, uint32_t rcpt_index, enum qfile_rstate state,
			int64_t when, const char *target, const char *dsn, const char *reason,
			const char **error_r)
{
	struct qfile_pay *p = xcalloc(1, sizeof(*p));
	pay_u32(p, rcpt_index);
	pay_u32(p, (uint32_t)state);
	pay_u64(p, (uint64_t)when);
	pay_str(p, target);
	pay_str(p, dsn);
	pay_str(p, reason);
	int rc = rec_emit(out, QFILE_REC_STATUS, p);
	free(p);
	if (rc < 0)
		*error_r = "status field too long";
	return rc;
}

int qfile_encode_attempt(struct buf *out, uint32_t rcpt_index, uint32_t reqid, int64_t when,
			 const char *target, const char **error_r)
{
	struct qfile_pay *p = xcalloc(1, sizeof(*p));
	pay_u32(p, rcpt_index);
	pay_u32(p, reqid);
	pay_u64(p, (uint64_t)when);
	pay_str(p, target);
	int rc = rec_emit(out, QFILE_REC_ATTEMPT, p);
	free(p);
	if (rc < 0)
		*error_r = "attempt field too long";
	return rc;
}

/* ---- parsing ---- */

struct qfile_cur {
	const unsigned char *p; /* payload */
	size_t len, pos;        /* payload length, read position */
	bool bad;               /* a read overran */
};

static uint64_t cur_int(struct qfile_cur *c, int n)
{
	if (c->bad || c->len - c->pos < (size_t)n) {
		c->bad = true;
		return 0;
	}
	uint64_t v = get_le(c->p + c->pos, n);
	c->pos += (size_t)n;
	return v;
}

/* Owned copy of a string field; NULL (and c->bad) when it overruns, is too
 * long or holds a NUL byte. */
static char *cur_str(struct qfile_cur *c)
{
	uint64_t n = cur_int(c, 4);
	if (c->bad || n > QFILE_STR_MAX || c->len - c->pos < n) {
		c->bad = true;
		return NULL;
	}
	const char *s = (const char *)c->p + c->pos;
	if (n > 0 && memchr(s, '\0', n) != NULL) {
		c->bad = true;
		return NULL;
	}
	c->pos += n;
	return xmemdup(s, n);
}

static bool cur_end(const struct qfile_cur *c)
{
	return !c->bad && c->pos == c->len;
}

void qfile_env_free(struct qfile_env *env)
{
	free(env->sender);
	free(env->envid);
	free(env->client_name);
	free(env->client_addr);
	free(env->helo);
	free(env->protocol);
	free(env->msgid);
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct qfile_rcpt *r = &env->rcpt[i];
		free(r->addr);
		free(r->orcpt);
		free(r->dsn);
		free(r->reason);
		for (size_t k = 0; k < r->ndone; k++)
			free(r->done[k]);
		free(r->done);
		for (size_t k = 0; k < r->natt; k++)
			free(r->att[k].target);
		free(r->att);
	}
	free(env->rcpt);
	memset(env, 0, sizeof(*env));
}

/* Fields seen (each at most once, all before END). */
#define SEEN_VERSION 0x01
#define SEEN_ID 0x02
#define SEEN_ARRIVAL 0x04
#define SEEN_SIZE 0x08
#define SEEN_SENDER 0x10
#define SEEN_CLIENT 0x20
#define SEEN_ALL 0x3f

static int parse_attempt(struct qfile_env *env, struct qfile_cur *c, const char **error_r)
{
	uint32_t idx = (uint32_t)cur_int(c, 4);
	uint32_t reqid = (uint32_t)cur_int(c, 4);
	int64_t when = (int64_t)cur_int(c, 8);
	char *target = cur_str(c);
	if (!cur_end(c)) {
		free(target);
		*error_r = "malformed attempt record";
		return -1;
	}
	if (idx >= env->nrcpt) {
		free(target);
		*error_r = "attempt record for an unknown recipient";
		return -1;
	}
	struct qfile_rcpt *r = &env->rcpt[idx];
	if (r->state == QFILE_RS_SENT || r->state == QFILE_RS_BOUNCED || r->natt >= QFILE_RCPT_MAX) {
		free(target);
		*error_r = "attempt record after the recipient was finished";
		return -1;
	}
	r->att = xreallocarray(r->att, r->natt + 1, sizeof(*r->att));
	r->att[r->natt++] = (struct qfile_attempt){ target, reqid, when };
	return 0;
}

static int parse_status(struct qfile_env *env, struct qfile_cur *c, const char **error_r)
{
	uint32_t idx = (uint32_t)cur_int(c, 4);
	uint32_t state = (uint32_t)cur_int(c, 4);
	int64_t when = (int64_t)cur_int(c, 8);
	char *target = cur_str(c);
	char *dsn = cur_str(c);
	char *reason = cur_str(c);
	int rc = -1;

	if (!cur_end(c)) {
		*error_r = "malformed status record";
		goto done;
	}
	if (idx >= env->nrcpt) {
		*error_r = "status record for an unknown recipient";
		goto done;
	}
	if (state > QFILE_RS_DEFERRED || state == QFILE_RS_PENDING) {
		*error_r = "bad recipient state";
		goto done;
	}
	struct qfile_rcpt *r = &env->rcpt[idx];
	if (r->state == QFILE_RS_SENT || r->state == QFILE_RS_BOUNCED) {
		*error_r = "status record after the recipient was finished";
		goto done;
	}
	/* an outcome closes the attempts it concerns */
	for (size_t k = 0; k < r->natt;) {
		if (target[0] == '\0' || strcmp(r->att[k].target, target) == 0) {
			free(r->att[k].target);
			r->att[k] = r->att[--r->natt];
		} else {
			k++;
		}
	}
	if (target[0] != '\0') {
		/* one alias expansion finished; kept so a retry skips it */
		if (state == QFILE_RS_DEFERRED) {
			rc = 0;
			goto done;
		}
		if (r->ndone >= QFILE_RCPT_MAX) {
			*error_r = "too many finished targets";
			goto done;
		}
		r->done = xreallocarray(r->done, r->ndone + 1, sizeof(*r->done));
		r->done[r->ndone++] = target;
		target = NULL;
		rc = 0;
		goto done;
	}
	r->state = (enum qfile_rstate)state;
	r->when = when;
	free(r->dsn);
	free(r->reason);
	r->dsn = dsn;
	r->reason = reason;
	dsn = reason = NULL;
	rc = 0;
done:
	free(target);
	free(dsn);
	free(reason);
	return rc;
}

int qfile_parse(const void *data, size_t len, struct qfile_env *env, const char **error_r)
{
	const unsigned char *b = data;
	size_t pos = 0, declared = 0, nstatus = 0;
	unsigned seen = 0;
	bool ended = false;

	memset(env, 0, sizeof(*env));
	if (len > QFILE_FILE_MAX) {
		*error_r = "file too large";
		goto fail;
	}
	while (pos < len) {
		if (len - pos < QFILE_REC_OVERHEAD) {
			*error_r = "truncated record header";
			goto torn;
		}
		unsigned type = b[pos];
		uint64_t plen = get_le(b + pos + 1, 4);
		if (plen > QFILE_REC_MAX) {
			*error_r = "record length over the limit";
			goto fail;
		}
		if (len - pos - QFILE_REC_OVERHEAD < plen) {
			*error_r = "truncated record";
			goto torn;
		}
		uint32_t crc = qfile_crc32(0, b + pos, 5 + (size_t)plen);
		if ((uint32_t)get_le(b + pos + 5 + plen, 4) != crc) {
			*error_r = "record checksum mismatch";
			/* only a record that ends the file can be a torn append */
			if (pos + QFILE_REC_OVERHEAD + plen == len)
				goto torn;
			goto fail;
		}
		struct qfile_cur c = { b + pos + 5, (size_t)plen, 0, false };
		pos += QFILE_REC_OVERHEAD + (size_t)plen;

		if (ended) {
			if (type != QFILE_REC_STATUS && type != QFILE_REC_ATTEMPT) {
				*error_r = "unexpected record after end of envelope";
				goto fail;
			}
			if (++nstatus > QFILE_STATUS_MAX) {
				*error_r = "too many status records";
				goto fail;
			}
			if (type == QFILE_REC_ATTEMPT ? parse_attempt(env, &c, error_r) < 0
						      : parse_status(env, &c, error_r) < 0)
				goto fail;
			env->valid_len = pos;
			continue;
		}
		if (seen == 0 && type != QFILE_REC_VERSION) {
			*error_r = "file does not start with a version record";
			goto fail;
		}
		switch (type) {
		case QFILE_REC_VERSION:
			if (seen & SEEN_VERSION)
				goto dup;
			seen |= SEEN_VERSION;
			if (cur_int(&c, 4) != QFILE_VERSION || !cur_end(&c)) {
				*error_r = "unsupported version";
				goto fail;
			}
			break;
		case QFILE_REC_ID:
			if (seen & SEEN_ID)
				goto dup;
			seen |= SEEN_ID;
			if (plen != QFILE_ID_LEN) {
				*error_r = "bad queue ID record";
				goto fail;
			}
			memcpy(env->qid, c.p, QFILE_ID_LEN);
			env->qid[QFILE_ID_LEN] = '\0';
			if (!qfile_id_valid(env->qid)) {
				*error_r = "bad queue ID record";
				goto fail;
			}
			break;
		case QFILE_REC_ARRIVAL:
			if (seen & SEEN_ARRIVAL)
				goto dup;
			seen |= SEEN_ARRIVAL;
			env->arrival = (int64_t)cur_int(&c, 8);
			if (!cur_end(&c) || env->arrival < 0) {
				*error_r = "bad arrival record";
				goto fail;
			}
			break;
		case QFILE_REC_SIZE:
			if (seen & SEEN_SIZE)
				goto dup;
			seen |= SEEN_SIZE;
			env->size = cur_int(&c, 8);
			if (!cur_end(&c) || env->size > (uint64_t)INT64_MAX) {
				*error_r = "bad size record";
				goto fail;
			}
			break;
		case QFILE_REC_SENDER:
			if (seen & SEEN_SENDER)
				goto dup;
			seen |= SEEN_SENDER;
			env->sender = cur_str(&c);
			env->flags = (uint32_t)cur_int(&c, 4);
			env->envid = cur_str(&c);
			if (!cur_end(&c)) {
				*error_r = "bad sender record";
				goto fail;
			}
			break;
		case QFILE_REC_CLIENT:
			if (seen & SEEN_CLIENT)
				goto dup;
			seen |= SEEN_CLIENT;
			env->client_name = cur_str(&c);
			env->client_addr = cur_str(&c);
			env->client_port = (uint32_t)cur_int(&c, 4);
			env->helo = cur_str(&c);
			env->protocol = cur_str(&c);
			env->msgid = cur_str(&c);
			if (!cur_end(&c)) {
				*error_r = "bad client record";
				goto fail;
			}
			break;
		case QFILE_REC_RCPT: {
			if (env->nrcpt >= QFILE_RCPT_MAX) {
				*error_r = "too many recipients";
				goto fail;
			}
			struct qfile_rcpt r = { 0 };
			r.addr = cur_str(&c);
			r.orcpt = cur_str(&c);
			r.notify = (uint32_t)cur_int(&c, 4);
			if (!cur_end(&c) || r.addr == NULL || r.addr[0] == '\0') {
				free(r.addr);
				free(r.orcpt);
				*error_r = "bad recipient record";
				goto fail;
			}
			r.dsn = xstrdup("");
			r.reason = xstrdup("");
			/* grow by doubling: the count is bounded by QFILE_RCPT_MAX */
			if ((env->nrcpt & (env->nrcpt - 1)) == 0)
				env->rcpt = xreallocarray(env->rcpt, env->nrcpt ? env->nrcpt * 2 : 1,
							  sizeof(*env->rcpt));
			env->rcpt[env->nrcpt++] = r;
			break;
		}
		case QFILE_REC_END:
			declared = (size_t)cur_int(&c, 4);
			if (!cur_end(&c)) {
				*error_r = "bad end record";
				goto fail;
			}
			if (seen != SEEN_ALL) {
				*error_r = "envelope is missing a required record";
				goto fail;
			}
			if (env->nrcpt == 0 || declared != env->nrcpt) {
				*error_r = "recipient count does not match";
				goto fail;
			}
			ended = true;
			env->valid_len = pos;
			break;
		case QFILE_REC_STATUS:
		case QFILE_REC_ATTEMPT:
			*error_r = "status record before end of envelope";
			goto fail;
		default:
			*error_r = "unknown record type";
			goto fail;
		}
	}
	if (!ended) {
		*error_r = "no end-of-envelope record";
		goto fail;
	}
	return 0;
dup:
	*error_r = "duplicate envelope record";
	goto fail;
torn:
	/* Damage at the very end, after a complete envelope: a torn append. */
	if (ended && pos == env->valid_len)
		return 0;
fail:
	qfile_env_free(env);
	return -1;
}

int qfile_read_file(int dirfd, const char *name, struct buf *out)
{
	/* not following a symlink: a queue file is never one */
	return file_read_all(dirfd, name, O_NOFOLLOW, QFILE_FILE_MAX, out);
}
