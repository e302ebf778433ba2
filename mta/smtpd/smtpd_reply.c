/*
 * smtpd_reply.c - replies, log lines and the Received header (see
 * smtpd_reply.h).
 *
 * Purpose: one module that formats everything smtpd says to clients and to
 * the log, in Postfix's words and shapes.
 * Owns: nothing. Never: puts peer bytes in a log line without buf_escape,
 * or in a reply/header without smtpd_reply_sanitize.
 * Limits: replies are cut at 512 octets (RFC 5321 §4.5.3.1.5).
 * Tests: tests/integration/test_smtpd_log.py, tests/integration/test_smtpd_*.py.
 */
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>

#include "mta/smtpd/smtpd_reply.h"
#include "mta/smtpd/smtpd_tls.h"
#include "lib/log.h"
#include "lib/common.h"

void smtpd_reply_sanitize(const char *p, size_t len, char *out, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < n; i++) {
		unsigned char c = (unsigned char)p[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (n > 0)
		out[o] = '\0';
}

int smtpd_reply_text(struct smtpd_session *s, const char *text)
{
	char line[520];
	size_t n = strlen(text);
	if (n > 510)
		n = 510;
	memcpy(line, text, n);
	line[n] = '\r';
	line[n + 1] = '\n';
	bufferevent_write(s->bev, line, n + 2);
	int code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
	if ((code >= 400 && code != 421) && code < 600)
		s->errors++;
	if (s->srv->debug)
		log_info("> %s: %.*s", s->namaddr, (int)n, text);
	return code;
}

int smtpd_reply_lines(struct smtpd_session *s, const char *text)
{
	int code = 0;
	const char *p = text;
	for (;;) {
		size_t n = strcspn(p, "\r\n");
		char line[520];
		if (n > 510)
			n = 510;
		memcpy(line, p, n);
		line[n] = '\0';
		/* only the first line counts as an error */
		if (code == 0) {
			code = smtpd_reply_text(s, line);
		} else {
			bufferevent_write(s->bev, line, n);
			bufferevent_write(s->bev, "\r\n", 2);
		}
		p += strcspn(p, "\r\n");
		if (*p == '\r')
			p++;
		if (*p == '\n')
			p++;
		if (*p == '\0')
			break;
	}
	return code;
}

int smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return smtpd_reply_text(s, text);
}

static bool smtpd_reply_discarded(const struct smtpd_session *s, const char *kw)
{
	const char *list = s->conf->cfg->smtpd_discard_ehlo_keywords;
	size_t n = strlen(kw);
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		const char *w = p;
		while (*p && *p != ' ' && *p != ',' && *p != '\t')
			p++;
		if ((size_t)(p - w) == n && strncasecmp(w, kw, n) == 0)
			return true;
	}
	return false;
}

void smtpd_reply_ehlo(struct smtpd_session *s)
{
	const struct cfg *cfg = s->conf->cfg;
	char size[40];
	const char *kws[12];
	size_t n = 0;
	snprintf(size, sizeof(size), "SIZE %lld", cfg->message_size_limit);
	const char *cand[] = { "PIPELINING",
			       size,
			       cfg->disable_vrfy_command ? NULL : "VRFY",
			       (s->conf->tls && !s->tls) ? "STARTTLS" : NULL,
			       "ENHANCEDSTATUSCODES",
			       "8BITMIME",
			       "DSN",
			       cfg->smtputf8_enable ? "SMTPUTF8" : NULL,
			       "CHUNKING" };
	for (size_t i = 0; i < ARRAY_LEN(cand); i++) {
		if (cand[i] == NULL)
			continue;
		char word[32];
		size_t k = strcspn(cand[i], " ");
		snprintf(word, sizeof(word), "%.*s", (int)k, cand[i]);
		if (!smtpd_reply_discarded(s, word))
			kws[n++] = cand[i];
	}
	s->pipelining_ok = !smtpd_reply_discarded(s, "PIPELINING");
	s->ext_dsn = !smtpd_reply_discarded(s, "DSN");
	s->ext_utf8 = cfg->smtputf8_enable && !smtpd_reply_discarded(s, "SMTPUTF8");
	s->ext_chunking = !smtpd_reply_discarded(s, "CHUNKING");
	struct evbuffer *out = bufferevent_get_output(s->bev);
	evbuffer_add_printf(out, "250%c%s\r\n", n ? '-' : ' ', cfg->myhostname);
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "250%c%s\r\n", i + 1 < n ? '-' : ' ', kws[i]);
	if (s->srv->debug)
		log_info("> %s: 250 %s (%zu keywords)", s->namaddr, cfg->myhostname, n);
}

void smtpd_log_connect(struct smtpd_session *s)
{
	log_info("connect from %s", s->namaddr);
}

void smtpd_log_disconnect(struct smtpd_session *s)
{
	static const enum smtpd_verb order[] = {
		SMTPD_V_HELO, SMTPD_V_EHLO, SMTPD_V_STARTTLS, SMTPD_V_AUTH, SMTPD_V_MAIL,
		SMTPD_V_RCPT, SMTPD_V_DATA, SMTPD_V_BDAT,     SMTPD_V_RSET, SMTPD_V_NOOP,
		SMTPD_V_VRFY, SMTPD_V_EXPN, SMTPD_V_ETRN,     SMTPD_V_HELP, SMTPD_V_QUIT,
		SMTPD_V_UNKNOWN, SMTPD_V_HTTP,
	};
	char line[512];
	size_t off = 0;
	unsigned ok = 0, total = 0;
	for (size_t i = 0; i < ARRAY_LEN(order); i++) {
		enum smtpd_verb v = order[i];
		unsigned t = s->counts.total[v], k = s->counts.ok[v];
		if (t == 0)
			continue;
		ok += k;
		total += t;
		const char *name = v == SMTPD_V_HTTP ? "unknown" : smtpd_verb_name(v);
		int r = k == t ? snprintf(line + off, sizeof(line) - off, " %s=%u", name, k)
			       : snprintf(line + off, sizeof(line) - off, " %s=%u/%u", name, k, t);
		if (r > 0 && (size_t)r < sizeof(line) - off)
			off += (size_t)r;
	}
	line[off] = '\0';
	const char *notes = s->saw_bare_lf && s->conf->bare_lf_note ? " notes=bare_lf" : "";
	if (ok == total)
		log_info("disconnect from %s%s commands=%u%s", s->namaddr, line, total, notes);
	else
		log_info("disconnect from %s%s commands=%u/%u%s", s->namaddr, line, ok, total, notes);
}

static void smtpd_log_escaped(struct buf *b, const char *p)
{
	buf_escape(b, p, strlen(p), 300);
}

void smtpd_log_reject(struct smtpd_session *s, const char *verb, const char *reply, const char *to)
{
	struct buf b;
	buf_init(&b, 4096);
	buf_printf(&b, "%s: reject: %s from %s: ", s->qid[0] ? s->qid : "NOQUEUE", verb, s->namaddr);
	smtpd_log_escaped(&b, reply);
	buf_puts(&b, ";");
	if (s->in_mail) {
		buf_puts(&b, " from=<");
		smtpd_log_escaped(&b, s->sender);
		buf_puts(&b, ">");
	}
	if (to != NULL) {
		buf_puts(&b, " to=<");
		smtpd_log_escaped(&b, to);
		buf_puts(&b, ">");
	}
	buf_printf(&b, " proto=%s", s->esmtp ? "ESMTP" : "SMTP");
	if (s->helo) {
		buf_puts(&b, " helo=<");
		smtpd_log_escaped(&b, s->helo);
		buf_puts(&b, ">");
	}
	log_info("%s", buf_cstr(&b));
	buf_free(&b);
}

void smtpd_log_after(struct smtpd_session *s, const char *what)
{
	if (s->state == SMTPD_ST_DATA || s->state == SMTPD_ST_BDAT || s->state == SMTPD_ST_BDAT_SKIP)
		log_info("%s after %s (%llu bytes) from %s", what, s->last_cmd,
			 (unsigned long long)s->data_bytes, s->namaddr);
	else
		log_info("%s after %s from %s", what, s->last_cmd, s->namaddr);
}

void smtpd_log_pipelining(struct smtpd_session *s, const char *cmd, const void *next, size_t n)
{
	struct buf b;
	buf_init(&b, 1024);
	buf_escape(&b, next, n, 100);
	log_info("improper command pipelining after %s from %s: %s", cmd, s->namaddr, buf_cstr(&b));
	buf_free(&b);
}

const char *smtpd_reply_protocol(const struct smtpd_session *s)
{
	bool utf8 = (s->mail.flags & 0x02) != 0; /* IPC_QF_SMTPUTF8 */
	if (!s->esmtp)
		return s->tls ? "SMTPS" : "SMTP";
	if (utf8)
		return s->tls ? "UTF8SMTPS" : "UTF8SMTP";
	return s->tls ? "ESMTPS" : "ESMTP";
}

void smtpd_reply_received(struct smtpd_session *s, struct buf *out)
{
	const struct cfg *cfg = s->conf->cfg;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
	const char *v6 = s->peer.ss_family == AF_INET6 ? "IPv6:" : "";
	buf_printf(out, "Received: from %s (%s [%s%s])\r\n", s->helo ? s->helo : s->name, s->name, v6,
		   s->addr);
	if (s->tls && cfg->smtpd_tls_received_header) {
		char d[200];
		smtpd_tls_describe(s->bev, d, sizeof(d));
		buf_printf(out, "\t(using %s)\r\n", d);
	}
	buf_printf(out, "\tby %s (%s) with %s id %s", cfg->myhostname, cfg->mail_name,
		   smtpd_reply_protocol(s), s->qid);
	if (s->n_rcpts == 1)
		buf_printf(out, "\r\n\tfor <%s>; %s\r\n", s->rcpts[0].addr, date);
	else
		buf_printf(out, ";\r\n\t%s\r\n", date);
}
