/*
 * milter_proto.c - milter packet encoders and reply decoders (milter_proto.h).
 *
 * Purpose: turn events into packets and filter packets into checked replies.
 * Owns: nothing beyond the symlist strings of a struct milter_neg.
 * Never: performs I/O, logs, trusts a length or a letter from the filter.
 * Limits: packet length 1..max (caller's max, MILTER_REPLY_MAX_DEFAULT),
 *         body chunks <= MILTER_CHUNK_MAX, output bounded by the buf maximum.
 * Tests: tests/unit/milter/milter_proto_test.c, tests/fuzz/milter_reply_fuzz.c.
 */
#include "mta/milter/milter_proto.h"
#include "lib/common.h"

static const struct {
	const char *name; /* log word */
	char cmd;         /* command letter */
	uint32_t no_bit;  /* SMFIP_NO* */
	uint32_t nr_bit;  /* SMFIP_NR_* */
	int macros;       /* macro list, -1 none */
} milter_stages[MILTER_STAGE_COUNT] = {
	[MILTER_STAGE_OPTNEG] = { "OPTIONS", 'O', 0, 0, -1 },
	[MILTER_STAGE_CONNECT] = { "CONNECT", 'C', MILTER_P_NOCONNECT, MILTER_P_NR_CONN,
				   MILTER_MACROS_CONNECT },
	[MILTER_STAGE_HELO] = { "HELO", 'H', MILTER_P_NOHELO, MILTER_P_NR_HELO, MILTER_MACROS_HELO },
	[MILTER_STAGE_MAIL] = { "MAIL", 'M', MILTER_P_NOMAIL, MILTER_P_NR_MAIL, MILTER_MACROS_MAIL },
	[MILTER_STAGE_RCPT] = { "RCPT", 'R', MILTER_P_NORCPT, MILTER_P_NR_RCPT, MILTER_MACROS_RCPT },
	[MILTER_STAGE_DATA] = { "DATA", 'T', MILTER_P_NODATA, MILTER_P_NR_DATA, MILTER_MACROS_DATA },
	[MILTER_STAGE_UNKNOWN] = { "UNKNOWN", 'U', MILTER_P_NOUNKNOWN, MILTER_P_NR_UNKN,
				   MILTER_MACROS_UNKNOWN },
	[MILTER_STAGE_HEADER] = { "HEADER", 'L', MILTER_P_NOHDRS, MILTER_P_NR_HDR, MILTER_MACROS_EOH },
	[MILTER_STAGE_EOH] = { "END-OF-HEADERS", 'N', MILTER_P_NOEOH, MILTER_P_NR_EOH,
			       MILTER_MACROS_EOH },
	[MILTER_STAGE_BODY] = { "BODY", 'B', MILTER_P_NOBODY, MILTER_P_NR_BODY, MILTER_MACROS_EOM },
	[MILTER_STAGE_EOM] = { "END-OF-MESSAGE", 'E', 0, 0, MILTER_MACROS_EOM },
	[MILTER_STAGE_ABORT] = { "ABORT", 'A', 0, 0, -1 },
	[MILTER_STAGE_QUIT] = { "QUIT", 'Q', 0, 0, -1 },
};

const char *milter_stage_name(enum milter_stage s)
{
	return (unsigned)s < MILTER_STAGE_COUNT ? milter_stages[s].name : "?";
}

char milter_stage_cmd(enum milter_stage s)
{
	return (unsigned)s < MILTER_STAGE_COUNT ? milter_stages[s].cmd : '?';
}

uint32_t milter_stage_no_bit(enum milter_stage s)
{
	return (unsigned)s < MILTER_STAGE_COUNT ? milter_stages[s].no_bit : 0;
}

uint32_t milter_stage_nr_bit(enum milter_stage s)
{
	return (unsigned)s < MILTER_STAGE_COUNT ? milter_stages[s].nr_bit : 0;
}

int milter_stage_macros(enum milter_stage s)
{
	return (unsigned)s < MILTER_STAGE_COUNT ? milter_stages[s].macros : -1;
}

int milter_proto_offer(int version, bool no_header_reply, uint32_t *actions_r,
		       uint32_t *protocol_r)
{
	/* Postfix's table: which edits and which "don't send" bits exist in each
	 * version (v3 added UNKNOWN, v4 DATA, v6 everything else). */
	switch (version) {
	case 2:
		*actions_r = 0x3F;
		*protocol_r = 0x7F;
		break;
	case 3:
		*actions_r = 0x3F;
		*protocol_r = 0x17F;
		break;
	case 4:
		*actions_r = 0x3F;
		*protocol_r = 0x37F;
		break;
	case 6:
		*actions_r = 0x1FF;
		*protocol_r = 0x1FFFFF;
		break;
	default:
		return -1;
	}
	if (no_header_reply)
		*protocol_r |= MILTER_P_NR_HDR;
	return 0;
}

static uint32_t milter_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void milter_put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* Next NUL-terminated string at *pos; false when no NUL before the end. */
static bool milter_get_str(const unsigned char *p, size_t len, size_t *pos, struct str *s)
{
	if (*pos > len)
		return false;
	const unsigned char *nul = memchr(p + *pos, 0, len - *pos);
	if (nul == NULL)
		return false;
	s->p = (const char *)p + *pos;
	s->len = (size_t)(nul - (p + *pos));
	*pos += s->len + 1;
	return true;
}

void milter_neg_free(struct milter_neg *neg)
{
	for (size_t i = 0; i < MILTER_SYMLIST_COUNT; i++)
		free(neg->symlist[i]);
	memset(neg, 0, sizeof(*neg));
}

int milter_proto_parse_optneg(const void *data, size_t len, uint32_t version, uint32_t actions,
			      uint32_t protocol, struct milter_neg *neg, const char **error_r)
{
	const unsigned char *p = data;
	memset(neg, 0, sizeof(*neg));
	if (len < 12) {
		*error_r = "short option negotiation reply";
		return -1;
	}
	neg->version = milter_get32(p);
	neg->actions = milter_get32(p + 4);
	neg->protocol = milter_get32(p + 8) & ~MILTER_P_MDS_MASK;
	if (neg->version < 2) {
		*error_r = "protocol version below 2";
		goto fail;
	}
	if (neg->version > version) {
		*error_r = "protocol version higher than offered";
		goto fail;
	}
	if ((neg->actions & ~actions) != 0) {
		*error_r = "requested actions that were not offered";
		goto fail;
	}
	if ((neg->protocol & ~protocol) != 0) {
		*error_r = "requested protocol options that were not offered";
		goto fail;
	}
	size_t pos = 12;
	while (pos < len) {
		struct str list;
		if (len - pos < 4) {
			*error_r = "truncated macro list";
			goto fail;
		}
		uint32_t stage = milter_get32(p + pos);
		pos += 4;
		if (stage >= MILTER_SYMLIST_COUNT) {
			*error_r = "macro list for an unknown stage";
			goto fail;
		}
		if (!milter_get_str(p, len, &pos, &list)) {
			*error_r = "macro list without NUL";
			goto fail;
		}
		if ((neg->actions & MILTER_F_SETSYMLIST) == 0) {
			*error_r = "macro list without the setsymlist action";
			goto fail;
		}
		free(neg->symlist[stage]);
		neg->symlist[stage] = str_dup(list);
	}
	return 0;
fail:
	milter_neg_free(neg);
	return -1;
}

int milter_proto_frame(const void *p, size_t n, size_t max, size_t *total_r,
		       const char **error_r)
{
	if (n < MILTER_LEN_BYTES) {
		*total_r = MILTER_LEN_BYTES;
		return 0;
	}
	uint32_t len = milter_get32(p);
	if (len == 0) {
		*error_r = "zero-length packet";
		return -1;
	}
	if (len > max) {
		*error_r = "oversized packet";
		return -1;
	}
	*total_r = MILTER_LEN_BYTES + (size_t)len;
	return n >= *total_r ? 1 : 0;
}

/* Append the packet head for len data bytes, checking that the whole
 * packet fits out; the caller then appends the data. */
static int milter_put_head(struct buf *out, char cmd, size_t len)
{
	unsigned char hdr[5];
	size_t total;
	if (!size_add(len, 1, &total) || total > UINT32_MAX || out->len > out->max ||
	    total + MILTER_LEN_BYTES > out->max - out->len)
		return -1;
	milter_put32(hdr, (uint32_t)total);
	hdr[4] = (unsigned char)cmd;
	CHECK(buf_append(out, hdr, sizeof(hdr)) == 0);
	return 0;
}

int milter_proto_put(struct buf *out, char cmd, const void *data, size_t len)
{
	if (milter_put_head(out, cmd, len) < 0)
		return -1;
	if (len > 0)
		CHECK(buf_append(out, data, len) == 0);
	return 0;
}

int milter_proto_put_optneg(struct buf *out, uint32_t version, uint32_t actions, uint32_t protocol)
{
	unsigned char d[12];
	milter_put32(d, version);
	milter_put32(d + 4, actions);
	milter_put32(d + 8, protocol);
	return milter_proto_put(out, MILTER_C_OPTNEG, d, sizeof(d));
}

static int milter_put_strlist(struct buf *out, char cmd, const char *prefix, size_t prefix_len,
			      const char *const *strs, size_t n)
{
	size_t len = prefix_len;
	for (size_t i = 0; i < n; i++) {
		const char *s = strs[i] ? strs[i] : "";
		if (!size_add(len, strlen(s) + 1, &len))
			return -1;
	}
	if (milter_put_head(out, cmd, len) < 0)
		return -1;
	if (prefix_len > 0)
		CHECK(buf_append(out, prefix, prefix_len) == 0);
	for (size_t i = 0; i < n; i++) {
		const char *s = strs[i] ? strs[i] : "";
		CHECK(buf_append(out, s, strlen(s) + 1) == 0);
	}
	return 0;
}

int milter_proto_put_strs(struct buf *out, char cmd, const char *const *strs, size_t n)
{
	return milter_put_strlist(out, cmd, NULL, 0, strs, n);
}

int milter_proto_put_connect(struct buf *out, const char *host, char family, uint16_t port,
			     const char *addr)
{
	host = host ? host : "";
	addr = addr ? addr : "";
	size_t hl = strlen(host), al = strlen(addr);
	size_t len = hl + 2;
	if (family != 'U')
		len += 2 + al + 1;
	if (milter_put_head(out, MILTER_C_CONNECT, len) < 0)
		return -1;
	CHECK(buf_append(out, host, hl + 1) == 0);
	CHECK(buf_putc(out, family) == 0);
	if (family != 'U') {
		unsigned char pb[2] = { port >> 8, port & 0xff };
		CHECK(buf_append(out, pb, 2) == 0);
		CHECK(buf_append(out, addr, al + 1) == 0);
	}
	return 0;
}

int milter_proto_put_macros(struct buf *out, char stage_cmd, const char *const *nv, size_t n_pairs)
{
	size_t n;
	if (!size_mul(n_pairs, 2, &n))
		return -1;
	return milter_put_strlist(out, MILTER_C_MACRO, &stage_cmd, 1, nv, n);
}

static const char *const milter_reply_names[] = {
	[MILTER_R_CONTINUE] = "continue",
	[MILTER_R_ACCEPT] = "accept",
	[MILTER_R_REJECT] = "reject",
	[MILTER_R_TEMPFAIL] = "tempfail",
	[MILTER_R_DISCARD] = "discard",
	[MILTER_R_REPLYCODE] = "replycode",
	[MILTER_R_SHUTDOWN] = "shutdown",
	[MILTER_R_SKIP] = "skip",
	[MILTER_R_PROGRESS] = "progress",
	[MILTER_R_QUARANTINE] = "quarantine",
	[MILTER_R_ADDHEADER] = "addheader",
	[MILTER_R_INSHEADER] = "insheader",
	[MILTER_R_CHGHEADER] = "chgheader",
	[MILTER_R_ADDRCPT] = "addrcpt",
	[MILTER_R_ADDRCPT_PAR] = "addrcpt_par",
	[MILTER_R_DELRCPT] = "delrcpt",
	[MILTER_R_CHGFROM] = "chgfrom",
	[MILTER_R_REPLBODY] = "replbody",
};

const char *milter_reply_name(enum milter_reply_type t)
{
	return (unsigned)t < ARRAY_LEN(milter_reply_names) ? milter_reply_names[t] : "?";
}

bool milter_reply_is_final(enum milter_reply_type t)
{
	return t <= MILTER_R_SKIP;
}

bool milter_reply_is_mod(enum milter_reply_type t)
{
	return t >= MILTER_R_ADDHEADER;
}

/* A header name: printable ASCII without ':' (RFC 5322 §2.2 ftext). */
static bool milter_header_name_ok(struct str s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if (c <= 32 || c >= 127 || c == ':')
			return false;
	}
	return true;
}

int milter_proto_replycode(struct str text, struct buf *out, const char **error_r)
{
	size_t pos = 0;
	char code[3] = { 0 };
	bool last = false;
	if (text.len == 0) {
		*error_r = "empty reply text";
		return -1;
	}
	while (!last) {
		/* one line: up to CRLF or LF or the end */
		size_t end = pos;
		while (end < text.len && text.p[end] != '\n')
			end++;
		size_t next = end < text.len ? end + 1 : end;
		/* CRLF or a bare LF ends a line; both come out as CRLF */
		if (end > pos && end < text.len && text.p[end - 1] == '\r')
			end--;
		struct str line = { text.p + pos, end - pos };
		last = next >= text.len;
		if (line.len < 3 || (line.p[0] != '4' && line.p[0] != '5') ||
		    line.p[1] < '0' || line.p[1] > '9' || line.p[2] < '0' || line.p[2] > '9') {
			*error_r = "reply line without a 4xx/5xx code";
			return -1;
		}
		if (code[0] == 0)
			memcpy(code, line.p, 3);
		else if (memcmp(code, line.p, 3) != 0) {
			*error_r = "reply lines with different codes";
			return -1;
		}
		if (line.len > 3) {
			char sep = line.p[3];
			if (sep == '-' && last) {
				*error_r = "last reply line has a continuation mark";
				return -1;
			}
			if (sep == ' ' && !last) {
				*error_r = "reply line other than the last without '-'";
				return -1;
			}
			if (sep != ' ' && sep != '-') {
				*error_r = "reply code not followed by ' ' or '-'";
				return -1;
			}
		} else if (!last) {
			*error_r = "reply line other than the last without '-'";
			return -1;
		}
		/* enhanced status code: "x.y.z" with x the reply class */
		if (line.len > 5 && line.p[4] >= '0' && line.p[4] <= '9' && line.p[5] == '.') {
			size_t i = 4, dots = 0;
			while (i < line.len && ((line.p[i] >= '0' && line.p[i] <= '9') || line.p[i] == '.')) {
				dots += line.p[i] == '.';
				i++;
			}
			if (dots != 2 || (i < line.len && line.p[i] != ' ') || line.p[4] != code[0]) {
				*error_r = "malformed enhanced status code";
				return -1;
			}
		}
		if (pos > 0 && buf_append(out, "\r\n", 2) < 0)
			goto toolong;
		for (size_t i = 0; i < line.len; i++) {
			unsigned char c = (unsigned char)line.p[i];
			if ((c < 32 && c != '\t') || c == 127) {
				*error_r = "control character in reply text";
				return -1;
			}
			if (c == '%' && i + 1 < line.len && line.p[i + 1] == '%')
				i++; /* Sendmail treats the text as a format: %% is % */
			if (buf_putc(out, (char)c) < 0)
				goto toolong;
		}
		pos = next;
	}
	return code[0];
toolong:
	*error_r = "reply text too long";
	return -1;
}

static const struct {
	char cmd;                    /* reply letter */
	enum milter_reply_type type; /* what it is */
	uint32_t action;             /* SMFIF_* it needs, 0 none */
} milter_reply_table[] = {
	{ 'c', MILTER_R_CONTINUE, 0 },    { 'a', MILTER_R_ACCEPT, 0 },
	{ 'r', MILTER_R_REJECT, 0 },      { 't', MILTER_R_TEMPFAIL, 0 },
	{ 'd', MILTER_R_DISCARD, 0 },     { 'y', MILTER_R_REPLYCODE, 0 },
	{ '4', MILTER_R_SHUTDOWN, 0 },    { 's', MILTER_R_SKIP, 0 },
	{ 'p', MILTER_R_PROGRESS, 0 },    { 'q', MILTER_R_QUARANTINE, MILTER_F_QUARANTINE },
	{ 'h', MILTER_R_ADDHEADER, MILTER_F_ADDHDRS }, { 'i', MILTER_R_INSHEADER, MILTER_F_ADDHDRS },
	{ 'm', MILTER_R_CHGHEADER, MILTER_F_CHGHDRS }, { '+', MILTER_R_ADDRCPT, MILTER_F_ADDRCPT },
	{ '2', MILTER_R_ADDRCPT_PAR, MILTER_F_ADDRCPT_PAR },
	{ '-', MILTER_R_DELRCPT, MILTER_F_DELRCPT },  { 'e', MILTER_R_CHGFROM, MILTER_F_CHGFROM },
	{ 'b', MILTER_R_REPLBODY, MILTER_F_CHGBODY },
};

int milter_proto_parse_reply(const void *pkt, size_t len, enum milter_stage stage,
			     const struct milter_neg *neg, struct milter_reply *r,
			     const char **error_r)
{
	const unsigned char *p = pkt;
	size_t pos = 1;
	size_t i;
	memset(r, 0, sizeof(*r));
	if (len < 1) {
		*error_r = "empty packet";
		return -1;
	}
	for (i = 0; i < ARRAY_LEN(milter_reply_table); i++)
		if (milter_reply_table[i].cmd == (char)p[0])
			break;
	if (i == ARRAY_LEN(milter_reply_table)) {
		*error_r = "unknown reply";
		return -1;
	}
	r->type = milter_reply_table[i].type;
	if (stage == MILTER_STAGE_OPTNEG || stage == MILTER_STAGE_ABORT || stage == MILTER_STAGE_QUIT) {
		*error_r = "reply where none was expected";
		return -1;
	}
	if (milter_reply_is_mod(r->type) && stage != MILTER_STAGE_EOM) {
		*error_r = "modification before end of message";
		return -1;
	}
	if (milter_reply_table[i].action != 0 && (neg->actions & milter_reply_table[i].action) == 0) {
		*error_r = "modification that was not negotiated";
		return -1;
	}
	if (r->type == MILTER_R_SKIP &&
	    ((neg->protocol & MILTER_P_SKIP) == 0 || stage != MILTER_STAGE_BODY)) {
		*error_r = "skip outside the body or not negotiated";
		return -1;
	}
	switch (r->type) {
	case MILTER_R_REPLYCODE:
	case MILTER_R_QUARANTINE:
		if (!milter_get_str(p, len, &pos, &r->text)) {
			*error_r = "string without NUL";
			return -1;
		}
		break;
	case MILTER_R_INSHEADER:
	case MILTER_R_CHGHEADER:
		if (len - pos < 4) {
			*error_r = "truncated header index";
			return -1;
		}
		r->index = milter_get32(p + pos);
		pos += 4;
		if (r->index > INT32_MAX) { /* negative as Postfix's signed int */
			*error_r = "bad header index";
			return -1;
		}
		/* fall through */
	case MILTER_R_ADDHEADER:
		if (!milter_get_str(p, len, &pos, &r->name) || !milter_get_str(p, len, &pos, &r->value)) {
			*error_r = "header without NUL";
			return -1;
		}
		if (!milter_header_name_ok(r->name)) {
			*error_r = "bad header name";
			return -1;
		}
		break;
	case MILTER_R_ADDRCPT:
	case MILTER_R_DELRCPT:
	case MILTER_R_ADDRCPT_PAR:
	case MILTER_R_CHGFROM:
		if (!milter_get_str(p, len, &pos, &r->addr)) {
			*error_r = "address without NUL";
			return -1;
		}
		if ((r->type == MILTER_R_ADDRCPT_PAR || r->type == MILTER_R_CHGFROM) && pos < len &&
		    !milter_get_str(p, len, &pos, &r->args)) {
			*error_r = "arguments without NUL";
			return -1;
		}
		if (r->addr.len == 0 && r->type != MILTER_R_CHGFROM) {
			*error_r = "empty recipient";
			return -1;
		}
		break;
	case MILTER_R_REPLBODY:
		r->body.p = (const char *)p + 1;
		r->body.len = len - 1;
		pos = len;
		break;
	default:
		break;
	}
	if (pos != len) {
		*error_r = "unexpected data after reply";
		return -1;
	}
	if (r->type == MILTER_R_REPLYCODE) {
		struct buf tmp;
		buf_init(&tmp, r->text.len + 16);
		int cls = milter_proto_replycode(r->text, &tmp, error_r);
		buf_free(&tmp);
		if (cls < 0)
			return -1;
	}
	return 0;
}
