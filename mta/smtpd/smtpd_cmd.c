/*
 * smtpd_cmd.c - SMTP command-line parser (see smtpd_cmd.h).
 *
 * Purpose: split one client command line into verb, argument, path and
 * ESMTP parameters, and check MAIL/RCPT parameters (RFC 1870 SIZE,
 * RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 3461 DSN, RFC 3030 BDAT).
 * Owns: nothing; views point into the caller's line.
 * Never: does I/O, logs, allocates, or trusts a length from the peer without
 * an overflow check.
 * Limits: SMTPD_CMD_MAX_PARAMS parameters, ENVID 100 octets, ORCPT 500.
 * Tests: tests/unit/smtpd/smtpd_cmd_test.c, tests/fuzz/smtpd_cmd_fuzz.c.
 */
#include <strings.h>

#include "mta/ipc/ipc_proto.h"
#include "mta/smtpd/smtpd_cmd.h"
#include "lib/common.h"

static const struct {
	const char *name;
	enum smtpd_verb verb;
} smtpd_cmd_verbs[] = {
	{ "HELO", SMTPD_V_HELO },   { "EHLO", SMTPD_V_EHLO },	{ "MAIL", SMTPD_V_MAIL },
	{ "RCPT", SMTPD_V_RCPT },   { "DATA", SMTPD_V_DATA },	{ "BDAT", SMTPD_V_BDAT },
	{ "RSET", SMTPD_V_RSET },   { "NOOP", SMTPD_V_NOOP },	{ "QUIT", SMTPD_V_QUIT },
	{ "VRFY", SMTPD_V_VRFY },   { "EXPN", SMTPD_V_EXPN },	{ "HELP", SMTPD_V_HELP },
	{ "STARTTLS", SMTPD_V_STARTTLS }, { "AUTH", SMTPD_V_AUTH }, { "ETRN", SMTPD_V_ETRN },
	/* Postfix smtpd_forbidden_commands: a web browser or an HTTP proxy
	 * probe talking to the SMTP port. */
	{ "GET", SMTPD_V_HTTP },    { "POST", SMTPD_V_HTTP },	{ "CONNECT", SMTPD_V_HTTP },
	{ "HEAD", SMTPD_V_HTTP },   { "PUT", SMTPD_V_HTTP },
};

const char *smtpd_verb_name(enum smtpd_verb v)
{
	static const char *const names[SMTPD_V__COUNT] = {
		[SMTPD_V_UNKNOWN] = "unknown", [SMTPD_V_HELO] = "helo", [SMTPD_V_EHLO] = "ehlo",
		[SMTPD_V_MAIL] = "mail",       [SMTPD_V_RCPT] = "rcpt", [SMTPD_V_DATA] = "data",
		[SMTPD_V_BDAT] = "bdat",       [SMTPD_V_RSET] = "rset", [SMTPD_V_NOOP] = "noop",
		[SMTPD_V_QUIT] = "quit",       [SMTPD_V_VRFY] = "vrfy", [SMTPD_V_EXPN] = "expn",
		[SMTPD_V_HELP] = "help",       [SMTPD_V_STARTTLS] = "starttls",
		[SMTPD_V_AUTH] = "auth",       [SMTPD_V_ETRN] = "etrn", [SMTPD_V_HTTP] = "http",
	};
	return (unsigned)v < SMTPD_V__COUNT ? names[v] : "unknown";
}

static bool smtpd_cmd_blank(char c)
{
	return c == ' ' || c == '\t';
}

static struct str smtpd_cmd_trim(struct str s)
{
	while (s.len > 0 && smtpd_cmd_blank(s.p[0])) {
		s.p++;
		s.len--;
	}
	while (s.len > 0 && smtpd_cmd_blank(s.p[s.len - 1]))
		s.len--;
	return s;
}

/* Split "FROM:<path> k=v k" (after the keyword) into path and params. */
static int smtpd_cmd_split_path(struct str s, struct smtpd_cmd *cmd)
{
	/* Postfix tolerates blanks after the colon; so do we. */
	s = smtpd_cmd_trim(s);
	if (s.len == 0)
		return -1;
	size_t i = 0;
	if (s.p[0] == '<') {
		bool quoted = false;
		for (i = 1; i < s.len; i++) {
			char c = s.p[i];
			if (quoted && c == '\\' && i + 1 < s.len) {
				i++;
				continue;
			}
			if (c == '"')
				quoted = !quoted;
			else if (c == '>' && !quoted)
				break;
		}
		if (i >= s.len)
			return -1;
		i++;
		if (i < s.len && !smtpd_cmd_blank(s.p[i]))
			return -1;
	} else {
		while (i < s.len && !smtpd_cmd_blank(s.p[i]))
			i++;
	}
	cmd->path = (struct str){ s.p, i };
	while (i < s.len) {
		while (i < s.len && smtpd_cmd_blank(s.p[i]))
			i++;
		if (i >= s.len)
			break;
		size_t start = i;
		while (i < s.len && !smtpd_cmd_blank(s.p[i]))
			i++;
		if (cmd->n_params >= SMTPD_CMD_MAX_PARAMS)
			return -1;
		struct smtpd_param *pa = &cmd->params[cmd->n_params++];
		struct str w = { s.p + start, i - start };
		const char *eq = memchr(w.p, '=', w.len);
		if (eq != NULL) {
			pa->key = (struct str){ w.p, (size_t)(eq - w.p) };
			pa->value = (struct str){ eq + 1, w.len - pa->key.len - 1 };
			pa->has_value = true;
		} else {
			pa->key = w;
			pa->value = (struct str){ w.p + w.len, 0 };
			pa->has_value = false;
		}
		if (pa->key.len == 0)
			return -1;
	}
	return 0;
}

static int smtpd_cmd_decimal(struct str s, uint64_t *v)
{
	if (s.len == 0 || s.len > 19)
		return -1;
	uint64_t r = 0;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -1;
		r = r * 10 + (uint64_t)(s.p[i] - '0');
	}
	*v = r;
	return 0;
}

int smtpd_cmd_parse(struct str line, struct smtpd_cmd *cmd, const char **reply_r)
{
	memset(cmd, 0, sizeof(*cmd));
	struct str s = line;
	/* leading blanks are tolerated, as Postfix does */
	while (s.len > 0 && smtpd_cmd_blank(s.p[0])) {
		s.p++;
		s.len--;
	}
	size_t v = 0;
	while (v < s.len && !smtpd_cmd_blank(s.p[v]))
		v++;
	cmd->verb_text = (struct str){ s.p, v };
	cmd->arg = smtpd_cmd_trim((struct str){ s.p + v, s.len - v });
	cmd->verb = SMTPD_V_UNKNOWN;
	for (size_t i = 0; i < ARRAY_LEN(smtpd_cmd_verbs); i++) {
		if (str_case_eq(cmd->verb_text, str_of(smtpd_cmd_verbs[i].name))) {
			cmd->verb = smtpd_cmd_verbs[i].verb;
			break;
		}
	}
	struct str a = cmd->arg;
	switch (cmd->verb) {
	case SMTPD_V_HELO:
	case SMTPD_V_EHLO:
		if (a.len == 0) {
			*reply_r = cmd->verb == SMTPD_V_HELO ? "501 5.5.4 Syntax: HELO hostname"
							     : "501 5.5.4 Syntax: EHLO hostname";
			return -1;
		}
		return 0;
	case SMTPD_V_MAIL:
		if (!str_case_prefix(a, "FROM:") ||
		    smtpd_cmd_split_path((struct str){ a.p + 5, a.len - 5 }, cmd) < 0) {
			*reply_r = "501 5.5.4 Syntax: MAIL FROM:<address>";
			return -1;
		}
		return 0;
	case SMTPD_V_RCPT:
		if (!str_case_prefix(a, "TO:") ||
		    smtpd_cmd_split_path((struct str){ a.p + 3, a.len - 3 }, cmd) < 0) {
			*reply_r = "501 5.5.4 Syntax: RCPT TO:<address>";
			return -1;
		}
		return 0;
	case SMTPD_V_DATA:
	case SMTPD_V_RSET:
	case SMTPD_V_QUIT:
	case SMTPD_V_STARTTLS:
		if (a.len != 0) {
			*reply_r = cmd->verb == SMTPD_V_DATA	 ? "501 5.5.4 Syntax: DATA"
				   : cmd->verb == SMTPD_V_RSET	 ? "501 5.5.4 Syntax: RSET"
				   : cmd->verb == SMTPD_V_QUIT	 ? "501 5.5.4 Syntax: QUIT"
								 : "501 5.5.4 Syntax: STARTTLS";
			return -1;
		}
		return 0;
	case SMTPD_V_VRFY:
		if (a.len == 0) {
			*reply_r = "501 5.5.4 Syntax: VRFY address";
			return -1;
		}
		return 0;
	case SMTPD_V_BDAT: {
		size_t i = 0;
		while (i < a.len && !smtpd_cmd_blank(a.p[i]))
			i++;
		struct str rest = smtpd_cmd_trim((struct str){ a.p + i, a.len - i });
		if (smtpd_cmd_decimal((struct str){ a.p, i }, &cmd->bdat_size) < 0 ||
		    (rest.len != 0 && !str_case_eq(rest, STR_LIT("LAST")))) {
			*reply_r = "501 5.5.4 Syntax: BDAT count [LAST]";
			return -1;
		}
		cmd->bdat_last = rest.len != 0;
		return 0;
	}
	default:
		return 0;
	}
}

long smtpd_cmd_xtext_decode(struct str in, char *out, size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; i < in.len; i++) {
		unsigned char c = (unsigned char)in.p[i];
		if (c < '!' || c > '~' || c == '=')
			return -1;
		if (c == '+') {
			if (in.len - i < 3)
				return -1;
			int v = 0;
			for (int k = 1; k <= 2; k++) {
				char h = in.p[i + (size_t)k];
				v <<= 4;
				if (h >= '0' && h <= '9')
					v |= h - '0';
				else if (h >= 'A' && h <= 'F')
					v |= h - 'A' + 10;
				else
					return -1; /* RFC 3461: uppercase hex only */
			}
			if (v == 0)
				return -1;
			c = (unsigned char)v;
			i += 2;
		}
		if (o + 1 >= outsz)
			return -1;
		out[o++] = (char)c;
	}
	if (outsz == 0)
		return -1;
	out[o] = '\0';
	return (long)o;
}

static bool smtpd_cmd_key(const struct smtpd_param *p, const char *name)
{
	return str_case_eq(p->key, str_of(name));
}

int smtpd_cmd_mail_params(const struct smtpd_cmd *cmd, bool smtputf8_ok, bool dsn_ok,
			  struct smtpd_mail_params *out, const char **reply_r)
{
	memset(out, 0, sizeof(*out));
	bool seen_body = false, seen_ret = false, seen_envid = false, seen_utf8 = false;
	for (size_t i = 0; i < cmd->n_params; i++) {
		const struct smtpd_param *p = &cmd->params[i];
		if (smtpd_cmd_key(p, "SIZE")) {
			if (out->has_size || smtpd_cmd_decimal(p->value, &out->size) < 0) {
				*reply_r = "501 5.5.4 Bad message size syntax";
				return -1;
			}
			out->has_size = true;
		} else if (smtpd_cmd_key(p, "BODY")) {
			if (seen_body)
				goto bad_body;
			seen_body = true;
			if (str_case_eq(p->value, STR_LIT("8BITMIME")))
				out->flags |= IPC_QF_8BITMIME;
			else if (str_case_eq(p->value, STR_LIT("BINARYMIME")))
				out->flags |= IPC_QF_BINARYMIME;
			else if (!str_case_eq(p->value, STR_LIT("7BIT")))
				goto bad_body;
		} else if (smtpd_cmd_key(p, "SMTPUTF8") && smtputf8_ok) {
			if (p->has_value || seen_utf8) {
				*reply_r = "501 5.5.4 Bad SMTPUTF8 parameter syntax";
				return -1;
			}
			seen_utf8 = true;
			out->flags |= IPC_QF_SMTPUTF8;
		} else if (smtpd_cmd_key(p, "RET") && dsn_ok) {
			if (seen_ret)
				goto bad_ret;
			seen_ret = true;
			if (str_case_eq(p->value, STR_LIT("FULL")))
				out->flags |= IPC_QF_RET_FULL;
			else if (str_case_eq(p->value, STR_LIT("HDRS")))
				out->flags |= IPC_QF_RET_HDRS;
			else
				goto bad_ret;
		} else if (smtpd_cmd_key(p, "ENVID") && dsn_ok) {
			if (seen_envid || p->value.len == 0 ||
			    smtpd_cmd_xtext_decode(p->value, out->envid, sizeof(out->envid)) < 0) {
				*reply_r = "501 5.5.4 Bad ENVID parameter syntax";
				return -1;
			}
			seen_envid = true;
		} else if (smtpd_cmd_key(p, "AUTH")) {
			/* RFC 4954 §5: must be parsed even without AUTH; xtext or <> */
			char tmp[512];
			if (!str_eq(p->value, STR_LIT("<>")) &&
			    smtpd_cmd_xtext_decode(p->value, tmp, sizeof(tmp)) < 0) {
				*reply_r = "501 5.5.4 Bad AUTH parameter syntax";
				return -1;
			}
		} else {
			*reply_r = "555 5.5.4 Unsupported option";
			return -1;
		}
	}
	return 0;
bad_body:
	*reply_r = "501 5.5.4 Bad BODY keyword syntax";
	return -1;
bad_ret:
	*reply_r = "501 5.5.4 Bad RET parameter syntax";
	return -1;
}

int smtpd_cmd_rcpt_params(const struct smtpd_cmd *cmd, bool dsn_ok, struct smtpd_rcpt_params *out,
			  const char **reply_r)
{
	memset(out, 0, sizeof(*out));
	bool seen_orcpt = false;
	for (size_t i = 0; i < cmd->n_params; i++) {
		const struct smtpd_param *p = &cmd->params[i];
		if (smtpd_cmd_key(p, "NOTIFY") && dsn_ok) {
			if (out->notify != 0 || p->value.len == 0)
				goto bad_notify;
			/* NEVER alone, or a comma list of SUCCESS, FAILURE, DELAY */
			struct str v = p->value;
			size_t start = 0;
			for (size_t k = 0; k <= v.len; k++) {
				if (k < v.len && v.p[k] != ',')
					continue;
				struct str w = { v.p + start, k - start };
				unsigned bit;
				if (str_case_eq(w, STR_LIT("SUCCESS")))
					bit = IPC_QN_SUCCESS;
				else if (str_case_eq(w, STR_LIT("FAILURE")))
					bit = IPC_QN_FAILURE;
				else if (str_case_eq(w, STR_LIT("DELAY")))
					bit = IPC_QN_DELAY;
				else if (str_case_eq(w, STR_LIT("NEVER")))
					bit = IPC_QN_NEVER;
				else
					goto bad_notify;
				if (out->notify & bit)
					goto bad_notify;
				out->notify |= bit;
				start = k + 1;
			}
			if ((out->notify & IPC_QN_NEVER) && out->notify != IPC_QN_NEVER)
				goto bad_notify;
		} else if (smtpd_cmd_key(p, "ORCPT") && dsn_ok) {
			/* addr-type ";" xtext; addr-type is an atom (rfc822, utf-8) */
			const char *semi = memchr(p->value.p, ';', p->value.len);
			size_t tlen = semi ? (size_t)(semi - p->value.p) : 0;
			if (seen_orcpt || semi == NULL || tlen == 0 || tlen > 20)
				goto bad_orcpt;
			for (size_t k = 0; k < tlen; k++) {
				char c = p->value.p[k];
				if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				      (c >= '0' && c <= '9') || c == '-'))
					goto bad_orcpt;
			}
			memcpy(out->orcpt, p->value.p, tlen + 1);
			struct str x = { semi + 1, p->value.len - tlen - 1 };
			if (x.len == 0 || x.len > 500 ||
			    smtpd_cmd_xtext_decode(x, out->orcpt + tlen + 1,
						   sizeof(out->orcpt) - tlen - 1) < 0)
				goto bad_orcpt;
			seen_orcpt = true;
		} else {
			*reply_r = "555 5.5.4 Unsupported option";
			return -1;
		}
	}
	return 0;
bad_notify:
	*reply_r = "501 5.5.4 Error: Bad NOTIFY parameter syntax";
	return -1;
bad_orcpt:
	out->orcpt[0] = '\0';
	*reply_r = "501 5.5.4 Error: Bad ORCPT parameter syntax";
	return -1;
}
