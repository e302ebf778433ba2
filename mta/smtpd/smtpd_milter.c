/*
 * smtpd_milter.c - the session's milter chain (see smtpd_milter.h).
 *
 * Purpose: ask smtpd_milters at every SMTP stage, as Postfix's smtpd and
 * cleanup do, and turn the verdicts into replies, log lines, content and
 * envelope changes.
 * Owns: the session's chain (s->milters) and the RCPT waiting for it.
 * Never: blocks (the chain runs on the session's event_base); keeps a
 * pending call across a transaction reset (the chain is freed instead);
 * shows our own Received: header to a milter.
 * Limits: the content given to the milters is bounded by message_size_limit
 * (plus our Received header); an edit past it is a milter failure.
 * Tests: tests/integration/test_smtpd_milter*.py, tests/interop/test_postern_milter*.py.
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>

#include "mta/milter/milter_chain.h"
#include "mta/milter/milter_log.h"
#include "mta/smtpd/smtpd_message.h"
#include "mta/smtpd/smtpd_milter.h"
#include "mta/smtpd/smtpd_queue.h"
#include "mta/smtpd/smtpd_reply.h"
#include "lib/log.h"
#include "lib/common.h"

bool smtpd_milter_active(const struct smtpd_session *s)
{
	return s->milters != NULL;
}

/* ---- macros ----------------------------------------------------------------- */

/*
 * {mail_mailer}/{mail_host} and {rcpt_mailer}/{rcpt_host}: the transport and
 * next hop Postfix's trivial-rewrite would resolve the address to, with
 * Postfix's default transports (local_transport = local:$myhostname,
 * virtual_transport = virtual, relay_transport = relay, default_transport
 * = smtp; relayhost as the next hop of the last two when set). The null
 * sender and an address without a domain resolve locally. A domain in
 * virtual_alias_domains resolves to the error transport, as in Postfix
 * (aliasing happens after smtpd). Returns false on a table error (the
 * macros are then not sent).
 */
static bool smtpd_milter_route(struct smtpd_session *s, const char *addr, const char **mailer_r,
			       char *host, size_t n)
{
	const struct smtpd_conf *c = s->conf;
	const struct cfg *cfg = c->cfg;
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
	const char *err;
	if (at == NULL || at[1] == '\0') {
		*mailer_r = "local";
		snprintf(host, n, "%s", cfg->myhostname);
		return true;
	}
	struct str domain = str_of(at + 1);
	int r = smtpd_conf_domain_match(&c->mydest, domain, false, &err);
	if (r == 1) {
		*mailer_r = "local";
		snprintf(host, n, "%s", cfg->myhostname);
		return true;
	}
	if (r == 0 && (r = smtpd_conf_domain_match(&c->valias_domains, domain, false, &err)) == 1) {
		*mailer_r = "error";
		snprintf(host, n, "5.1.1 User unknown in virtual alias table");
		return true;
	}
	if (r == 0 && (r = smtpd_conf_domain_match(&c->vmbox_domains, domain, false, &err)) == 1) {
		*mailer_r = "virtual";
		snprintf(host, n, "%s", at + 1);
		return true;
	}
	if (r == 0 && (r = smtpd_conf_domain_match(&c->relay, domain, true, &err)) == 1)
		*mailer_r = "relay";
	else if (r == 0)
		*mailer_r = "smtp";
	else
		return false;
	snprintf(host, n, "%s", cfg->relayhost[0] != '\0' ? cfg->relayhost : at + 1);
	return true;
}

static const char *smtpd_milter_macro(const char *name, void *ctx)
{
	struct smtpd_session *s = ctx;
	static char tmp[600];
	const struct cfg *cfg = s->conf->cfg;
	if (strcmp(name, "i") == 0)
		return s->qid[0] ? s->qid : NULL;
	if (strcmp(name, "j") == 0)
		return cfg->myhostname;
	if (strcmp(name, "_") == 0) {
		snprintf(tmp, sizeof(tmp), "%s [%s]", s->name, s->addr);
		return tmp;
	}
	if (strcmp(name, "client_addr") == 0)
		return s->addr;
	if (strcmp(name, "client_name") == 0 || strcmp(name, "client_ptr") == 0)
		return s->name;
	if (strcmp(name, "client_port") == 0) {
		snprintf(tmp, sizeof(tmp), "%u", s->port);
		return tmp;
	}
	if (strcmp(name, "client_connections") == 0) {
		/* sessions from this address in this smtpd process, this one
		 * included (Postfix asks anvil, for the whole host) */
		snprintf(tmp, sizeof(tmp), "%u", s->conn_count);
		return tmp;
	}
	if (strcmp(name, "client_resolve") == 0) {
		/* smtpd_dns gives a forward-confirmed name or "unknown"; it
		 * does not tell a failed lookup from a forged or a temporarily
		 * failing one, so Postfix's FORGED and TEMP never appear */
		return strcmp(s->name, "unknown") != 0 ? "OK" : "FAIL";
	}
	if (strcmp(name, "daemon_addr") == 0)
		return s->daemon_addr[0] ? s->daemon_addr : NULL;
	if (strcmp(name, "daemon_port") == 0) {
		if (s->daemon_addr[0] == '\0')
			return NULL;
		snprintf(tmp, sizeof(tmp), "%u", s->daemon_port);
		return tmp;
	}
	if (s->tls && (strcmp(name, "tls_version") == 0 || strcmp(name, "cipher") == 0 ||
		       strcmp(name, "cipher_bits") == 0)) {
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
		if (ssl == NULL)
			return NULL;
		if (name[0] == 't')
			return SSL_get_version(ssl);
		if (strcmp(name, "cipher") == 0)
			return SSL_get_cipher_name(ssl);
		snprintf(tmp, sizeof(tmp), "%d", SSL_get_cipher_bits(ssl, NULL));
		return tmp;
	}
	/* {auth_type} {auth_authen} {auth_author}: no SMTP AUTH yet, so
	 * never a value (Postfix too sends them only after AUTH);
	 * {cert_subject} {cert_issuer}: no client certificate is verified */
	if (strcmp(name, "mail_addr") == 0)
		return s->sender;
	bool mail = strcmp(name, "mail_host") == 0 || strcmp(name, "mail_mailer") == 0;
	bool rcpt = strcmp(name, "rcpt_host") == 0 || strcmp(name, "rcpt_mailer") == 0;
	if (mail || rcpt) {
		const char *a = mail ? s->sender : s->mrcpt.addr;
		const char *mailer;
		if (a == NULL || !smtpd_milter_route(s, a, &mailer, tmp, sizeof(tmp)))
			return NULL;
		return strstr(name, "mailer") != NULL ? mailer : tmp;
	}
	if (strcmp(name, "rcpt_addr") == 0)
		return s->mrcpt.addr;
	return NULL;
}

/* ---- helpers ------------------------------------------------------------------ */

static void smtpd_milter_log(struct smtpd_session *s, const struct milter_verdict *v, const char *to)
{
	char from[600];
	const char *f = NULL;
	if (s->sender != NULL && v->stage != MILTER_STAGE_CONNECT && v->stage != MILTER_STAGE_HELO) {
		snprintf(from, sizeof(from), "<%s>", s->sender);
		f = from;
	}
	milter_log_verdict(v, s->qid[0] ? s->qid : NULL, s->namaddr, f, to,
			   s->esmtp ? "ESMTP" : "SMTP", s->helo);
}

/* A verdict that ends the wait: back to reading commands. */
static void smtpd_milter_done(struct smtpd_session *s)
{
	s->mwait = SMTPD_MW_NONE;
	smtpd_session_enter(s, SMTPD_ST_CMD);
}

static void smtpd_milter_wait(struct smtpd_session *s, enum smtpd_milter_wait w)
{
	s->mwait = w;
	smtpd_session_enter(s, SMTPD_ST_MILTER);
}

/* "SIZE=100"-style parameters of a MAIL/RCPT command, as strings. */
static char **smtpd_milter_args(const struct smtpd_cmd *cmd, size_t *n_r)
{
	char **v = xcalloc(cmd->n_params + 1, sizeof(*v));
	for (size_t i = 0; i < cmd->n_params; i++) {
		const struct smtpd_param *p = &cmd->params[i];
		if (p->has_value)
			v[i] = xasprintf("%.*s=%.*s", (int)p->key.len, p->key.p, (int)p->value.len,
					 p->value.p);
		else
			v[i] = xasprintf("%.*s", (int)p->key.len, p->key.p);
	}
	*n_r = cmd->n_params;
	return v;
}

static void smtpd_milter_args_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool smtpd_milter_refused(const struct milter_verdict *v)
{
	return v->type == MILTER_VERDICT_REJECT || v->type == MILTER_VERDICT_TEMPFAIL ||
	       v->type == MILTER_VERDICT_SHUTDOWN;
}

/* Reply with the verdict's text; SHUTDOWN also ends the session. */
static void smtpd_milter_refuse(struct smtpd_session *s, const struct milter_verdict *v)
{
	smtpd_reply_lines(s, v->reply ? v->reply : "451 4.3.5 Server configuration problem - try again later");
	if (v->type == MILTER_VERDICT_SHUTDOWN) {
		smtpd_session_reset(s);
		smtpd_session_close(s);
	}
}

/* "<a@b>" -> "a@b" (owned). */
static char *smtpd_milter_bare(const char *a)
{
	size_t n = strlen(a);
	while (n > 0 && (*a == ' ' || *a == '\t'))
		a++, n--;
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>')
		return xmemdup(a + 1, n - 2);
	return xstrdup(a);
}

/* An address a milter gave: printable, no blanks or brackets inside. */
static bool smtpd_milter_addr_ok(const char *a)
{
	for (const unsigned char *p = (const unsigned char *)a; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '<' || *p == '>')
			return false;
	return strlen(a) < 512;
}

char *smtpd_milter_addr(const char *given, bool sender, void *ctx)
{
	(void)ctx;
	char *a = smtpd_milter_bare(given);
	if ((a[0] == '\0' && !sender) || !smtpd_milter_addr_ok(a)) {
		free(a);
		return NULL;
	}
	return a;
}

/* ---- the verdicts -------------------------------------------------------------- */

static void smtpd_milter_eom_done(struct smtpd_session *s, const struct milter_verdict *v);

static void smtpd_milter_on_verdict(struct milter_chain *ch, const struct milter_verdict *v, void *ctx)
{
	struct smtpd_session *s = ctx;
	enum smtpd_milter_wait w = s->mwait;
	smtpd_milter_done(s);
	switch (w) {
	case SMTPD_MW_CONNECT:
		if (smtpd_milter_refused(v))
			smtpd_milter_log(s, v, NULL);
		if (v->type == MILTER_VERDICT_SHUTDOWN) {
			/* Postfix: the greeting is a 421, and the session ends */
			smtpd_reply(s, "421 %s Service unavailable - try again later",
				    s->conf->cfg->myhostname);
			smtpd_session_close(s);
			return;
		}
		/* Postfix: a 5xx makes the greeting 554, a 4xx leaves it 220;
		 * either way the milter's reply sticks (the chain repeats it)
		 * for MAIL and the later commands, but HELO/EHLO is answered */
		s->milter_conn_refused = smtpd_milter_refused(v);
		if (v->type == MILTER_VERDICT_REJECT) {
			smtpd_session_enter(s, SMTPD_ST_CMD);
			smtpd_reply(s, "554 %s ESMTP not accepting connections", s->conf->cfg->myhostname);
			s->greeted = true;
		} else {
			smtpd_session_greet_go(s);
		}
		break;
	case SMTPD_MW_HELO: {
		bool refused = smtpd_milter_refused(v) &&
			       !(s->milter_conn_refused && v->type != MILTER_VERDICT_SHUTDOWN);
		if (refused)
			smtpd_milter_log(s, v, NULL); /* with helo=<the name tried> */
		char *name = s->helo;
		s->helo = NULL;
		if (refused) {
			smtpd_milter_refuse(s, v);
			free(name);
			if (v->type == MILTER_VERDICT_SHUTDOWN)
				return;
			break;
		}
		smtpd_verbs_helo_ok(s, name, s->milter_ehlo);
		free(name);
		break;
	}
	case SMTPD_MW_MAIL:
		s->milter_tx = true;
		if (smtpd_milter_refused(v)) {
			smtpd_milter_log(s, v, NULL);
			smtpd_milter_refuse(s, v);
			if (v->type == MILTER_VERDICT_SHUTDOWN)
				return;
			free(s->sender);
			s->sender = NULL;
			memset(&s->mail, 0, sizeof(s->mail));
			milter_chain_abort(s->milters);
			s->milter_tx = false;
			break;
		}
		s->in_mail = true;
		smtpd_reply(s, "250 2.1.0 Ok");
		s->counts.ok[SMTPD_V_MAIL]++;
		break;
	case SMTPD_MW_RCPT: {
		char *rcpt = s->mrcpt.addr;
		s->mrcpt.addr = NULL;
		if (smtpd_milter_refused(v)) {
			smtpd_milter_log(s, v, rcpt);
			free(rcpt);
			free(s->mrcpt.orcpt);
			s->mrcpt.orcpt = NULL;
			smtpd_milter_refuse(s, v);
			if (v->type == MILTER_VERDICT_SHUTDOWN)
				return;
			break;
		}
		smtpd_verbs_rcpt_add(s, rcpt, s->mrcpt.orcpt, s->mrcpt.notify);
		free(s->mrcpt.orcpt);
		s->mrcpt.orcpt = NULL;
		smtpd_reply(s, "250 2.1.5 Ok");
		s->counts.ok[SMTPD_V_RCPT]++;
		break;
	}
	case SMTPD_MW_DATA:
		if (smtpd_milter_refused(v)) {
			smtpd_milter_log(s, v, s->n_rcpts ? s->rcpts[0].addr : NULL);
			if (v->type == MILTER_VERDICT_SHUTDOWN) {
				smtpd_milter_refuse(s, v);
				return;
			}
			if (s->bdat_used) {
				/* the announced chunk is still read, then refused */
				smtpd_queue_abort(s->srv, s->qid);
				s->qid[0] = '\0';
				smtpd_message_content_close(s);
				s->bdat_bad = true;
				free(s->skip_reply);
				s->skip_reply = xstrdup(v->reply);
				smtpd_session_enter(s, SMTPD_ST_BDAT_SKIP);
				break;
			}
			smtpd_message_fail(s, v->reply);
			break;
		}
		smtpd_message_data_go(s);
		return; /* data_go resumed the session */
	case SMTPD_MW_RCPT_REJ: {
		char *r = s->mrcpt_reply;
		s->mrcpt_reply = NULL;
		free(s->mrcpt.addr);
		s->mrcpt.addr = NULL;
		free(s->mrcpt.orcpt);
		s->mrcpt.orcpt = NULL;
		if (v->type == MILTER_VERDICT_SHUTDOWN) {
			free(r);
			smtpd_milter_log(s, v, NULL);
			smtpd_milter_refuse(s, v);
			return;
		}
		smtpd_reply_text(s, r);
		free(r);
		break;
	}
	case SMTPD_MW_UNKNOWN:
		if (smtpd_milter_refused(v)) {
			smtpd_milter_log(s, v, NULL);
			smtpd_milter_refuse(s, v);
			if (v->type == MILTER_VERDICT_SHUTDOWN)
				return;
			break;
		}
		smtpd_reply(s, "502 5.5.2 Error: command not recognized");
		break;
	case SMTPD_MW_EOM:
		smtpd_milter_eom_done(s, v);
		return; /* continues with the commit or resumes itself */
	default:
		break;
	}
	if (s->state != SMTPD_ST_CLOSING)
		smtpd_session_resume(s);
}

/* ---- stages --------------------------------------------------------------------- */

bool smtpd_milter_connect(struct smtpd_session *s)
{
	const struct smtpd_conf *c = s->conf;
	const struct milter_conf *mc = NULL;
	const char *err = NULL;
	switch (smtpd_conf_milters_for(s->conf, s->addr, &mc, &err)) {
	case SMTPD_MP_TEMP:
		/* Postfix: a smtpd_milter_maps lookup error is not "no
		 * milters" (mail would pass unfiltered); the client is
		 * greeted and every command but QUIT gets 451 4.3.0 */
		log_warning("smtpd_milter_maps lookup error for %s: %s", s->addr, err);
		s->milter_map_fail = true;
		return false;
	case SMTPD_MP_BAD:
		log_warning("%s: reject connection from %s", err, s->namaddr);
		smtpd_reply(s, "421 4.3.5 %s Server configuration problem - try again later",
			    c->cfg->myhostname);
		smtpd_session_close(s);
		return true;
	case SMTPD_MP_USE:
		break;
	}
	if (mc == NULL)
		return false;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = bufferevent_getfd(s->bev);
	if (fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &in->sin_addr, s->daemon_addr, sizeof(s->daemon_addr));
			s->daemon_port = ntohs(in->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &in6->sin6_addr, s->daemon_addr, sizeof(s->daemon_addr));
			s->daemon_port = ntohs(in6->sin6_port);
		}
	}
	size_t max = c->cfg->message_size_limit > 0 ? (size_t)c->cfg->message_size_limit + 64 * 1024 : 0;
	s->milters = milter_chain_new(s->srv->base, mc, max, smtpd_milter_macro,
				      smtpd_milter_on_verdict, s);
	char host[300];
	if (strcmp(s->name, "unknown") == 0)
		snprintf(host, sizeof(host), "[%s]", s->addr);
	else
		snprintf(host, sizeof(host), "%s", s->name);
	char fam = s->peer.ss_family == AF_INET6 ? '6' : s->peer.ss_family == AF_INET ? '4' : 'U';
	smtpd_milter_wait(s, SMTPD_MW_CONNECT);
	milter_chain_connect(s->milters, host, s->addr, s->port, fam);
	return true;
}

void smtpd_milter_helo(struct smtpd_session *s, const char *name, const char *milter_name,
		       bool ehlo)
{
	free(s->helo);
	s->helo = xstrdup(name); /* for the log line; set for good by the verdict */
	s->milter_ehlo = ehlo;
	smtpd_milter_wait(s, SMTPD_MW_HELO);
	milter_chain_helo(s->milters, milter_name);
}

void smtpd_milter_mail(struct smtpd_session *s, const struct smtpd_cmd *cmd)
{
	size_t n;
	char **args = smtpd_milter_args(cmd, &n);
	char *path = xasprintf("<%s>", s->sender);
	smtpd_milter_wait(s, SMTPD_MW_MAIL);
	milter_chain_mail(s->milters, path, (const char *const *)args, n);
	free(path);
	smtpd_milter_args_free(args, n);
}

void smtpd_milter_rcpt(struct smtpd_session *s, const struct smtpd_cmd *cmd, char *rcpt,
		       const char *orcpt, unsigned notify)
{
	free(s->mrcpt.addr);
	free(s->mrcpt.orcpt);
	s->mrcpt.addr = rcpt;
	s->mrcpt.orcpt = xstrdup(orcpt);
	s->mrcpt.notify = notify;
	size_t n;
	char **args = smtpd_milter_args(cmd, &n);
	char *path = xasprintf("<%s>", rcpt);
	smtpd_milter_wait(s, SMTPD_MW_RCPT);
	milter_chain_rcpt(s->milters, path, (const char *const *)args, n);
	free(path);
	smtpd_milter_args_free(args, n);
}

void smtpd_milter_unknown(struct smtpd_session *s, const char *line)
{
	smtpd_milter_wait(s, SMTPD_MW_UNKNOWN);
	milter_chain_unknown(s->milters, line);
}

void smtpd_milter_rcpt_rejected(struct smtpd_session *s, const struct smtpd_cmd *cmd, char *rcpt,
				const char *reply)
{
	free(s->mrcpt.addr);
	free(s->mrcpt.orcpt);
	free(s->mrcpt_reply);
	s->mrcpt.addr = rcpt;
	s->mrcpt.orcpt = NULL;
	s->mrcpt_reply = xstrdup(reply);
	size_t n;
	char **args = smtpd_milter_args(cmd, &n);
	char *path = xasprintf("<%s>", rcpt);
	smtpd_milter_wait(s, SMTPD_MW_RCPT_REJ);
	milter_chain_rcpt_rejected(s->milters, path, (const char *const *)args, n, reply);
	free(path);
	smtpd_milter_args_free(args, n);
}

void smtpd_milter_data(struct smtpd_session *s)
{
	smtpd_milter_wait(s, SMTPD_MW_DATA);
	milter_chain_data(s->milters);
}

/* Read back what we wrote to the content file: owned, or NULL. */
static char *smtpd_milter_read_content(struct smtpd_session *s, uint64_t total)
{
	if (total > SIZE_MAX / 2)
		return NULL;
	char *p = xmalloc((size_t)total + 1);
	size_t off = 0;
	while (off < total) {
		ssize_t r = pread(s->content_fd, p + off, (size_t)total - off, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(p);
			return NULL;
		}
		off += (size_t)r;
	}
	return p;
}

bool smtpd_milter_eom(struct smtpd_session *s)
{
	uint64_t total = s->data.size + s->header_len;
	char *text = smtpd_milter_read_content(s, total);
	if (text == NULL) {
		log_warning("%s: cannot read the content back for the milters: %s", s->qid,
			    strerror(errno ? errno : EIO));
		smtpd_message_fail(s, "451 4.3.0 Error: queue file read error");
		return true;
	}
	int r = milter_chain_message_hide(s->milters, text, (size_t)total, s->header_len > 0 ? 1 : 0);
	free(text);
	if (r < 0) {
		smtpd_message_fail(s, "552 5.3.4 Error: message file too big");
		return true;
	}
	smtpd_milter_wait(s, SMTPD_MW_EOM);
	milter_chain_eom(s->milters);
	return true;
}

/* Rewrite the content file with the milters' message. Returns its new size,
 * or -1. */
static long long smtpd_milter_rewrite(struct smtpd_session *s, const struct milter_msg *m)
{
	struct buf out;
	buf_init(&out, SIZE_MAX / 4);
	long long rc = -1;
	if (milter_msg_render(m, &out) == 0 && ftruncate(s->content_fd, 0) == 0) {
		size_t off = 0;
		while (off < out.len) {
			ssize_t w = pwrite(s->content_fd, out.data + off, out.len - off, (off_t)off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		if (off == out.len)
			rc = (long long)out.len;
	}
	if (rc < 0)
		log_warning("%s: rewrite queue file after milter edits: %s", s->qid,
			    errno ? strerror(errno) : "too large");
	buf_free(&out);
	return rc;
}

/* A recipient a milter added, with its ESMTP arguments (NOTIFY, ORCPT
 * used; anything else is logged and ignored as Postfix does). */
static void smtpd_milter_add_rcpt(const char *qid, const struct milter_rcpt *mr,
				  smtpd_milter_addr_fn *fn, void *ctx, struct smtpd_rcpt *out, size_t *n)
{
	char *addr = fn(mr->addr, false, ctx);
	if (addr == NULL) {
		struct buf b;
		buf_init(&b, 2048);
		buf_escape(&b, mr->addr, strlen(mr->addr), 300);
		log_warning("%s: milter added an unusable recipient %s; ignored", qid, buf_cstr(&b));
		buf_free(&b);
		return;
	}
	struct smtpd_rcpt_params rp = { 0 };
	if (mr->args != NULL && mr->args[0] != '\0') {
		char *line = xasprintf("RCPT TO:<%s> %s", addr, mr->args);
		struct smtpd_cmd cmd;
		const char *err = NULL;
		if (smtpd_cmd_parse(str_of(line), &cmd, &err) < 0 ||
		    smtpd_cmd_rcpt_params(&cmd, true, &rp, &err) < 0) {
			struct buf b;
			buf_init(&b, 2048);
			buf_escape(&b, mr->args, strlen(mr->args), 300);
			log_warning("%s: ignoring ESMTP arguments \"%s\" of milter-added recipient", qid,
				    buf_cstr(&b));
			buf_free(&b);
			memset(&rp, 0, sizeof(rp));
		}
		free(line);
	}
	out[*n] = (struct smtpd_rcpt){ addr, xstrdup(rp.orcpt), rp.notify };
	(*n)++;
}

size_t smtpd_milter_apply_envelope(const char *qid, const struct milter_verdict *v, char **sender,
				   struct smtpd_rcpt **rcpts, size_t *n_rcpts, size_t *cap_rcpts,
				   smtpd_milter_addr_fn *fn, void *ctx)
{
	bool chgfrom = false;
	for (size_t i = 0; i < v->n_mods; i++)
		if (v->mods[i].type == MILTER_R_CHGFROM)
			chgfrom = true;
	if (chgfrom && v->sender != NULL) {
		char *a = fn(v->sender, true, ctx);
		if (a != NULL) {
			free(*sender);
			*sender = a;
			if (v->sender_args != NULL && v->sender_args[0] != '\0') {
				struct buf b;
				buf_init(&b, 2048);
				buf_escape(&b, v->sender_args, strlen(v->sender_args), 300);
				log_warning("%s: milter change sender: ignoring ESMTP arguments \"%s\"", qid,
					    buf_cstr(&b));
				buf_free(&b);
			}
		} else {
			log_warning("%s: milter gave an unusable sender; kept the original", qid);
		}
	}
	size_t n_orig = 0;
	for (size_t i = 0; i < v->n_rcpts; i++)
		if (!v->rcpts[i].added)
			n_orig++;
	if (n_orig != *n_rcpts) {
		/* cannot happen: every accepted recipient went through the chain */
		log_warning("%s: milter envelope has %zu recipients, we have %zu; edits ignored", qid,
			    n_orig, *n_rcpts);
		return *n_rcpts;
	}
	struct smtpd_rcpt *old = *rcpts;
	struct smtpd_rcpt *nr = xcalloc(v->n_rcpts + 1, sizeof(*nr));
	size_t n = 0, k = 0;
	for (size_t i = 0; i < v->n_rcpts; i++) {
		const struct milter_rcpt *mr = &v->rcpts[i];
		if (!mr->added) {
			struct smtpd_rcpt *o = &old[k++];
			if (mr->deleted) {
				free(o->addr);
				free(o->orcpt);
			} else {
				nr[n++] = *o;
			}
		} else if (!mr->deleted) {
			smtpd_milter_add_rcpt(qid, mr, fn, ctx, nr, &n);
		}
	}
	free(old);
	*rcpts = nr;
	*n_rcpts = n;
	*cap_rcpts = v->n_rcpts + 1;
	return n;
}

static void smtpd_milter_discard(struct smtpd_session *s)
{
	smtpd_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
	s->counts.ok[s->bdat_used ? SMTPD_V_BDAT : SMTPD_V_DATA]++;
	smtpd_session_reset(s); /* IPC_Q_ABORT: the queue drops the file */
	smtpd_session_resume(s);
}

static void smtpd_milter_eom_done(struct smtpd_session *s, const struct milter_verdict *v)
{
	const char *to = s->n_rcpts ? s->rcpts[0].addr : NULL;
	smtpd_milter_log(s, v, to);
	switch (v->type) {
	case MILTER_VERDICT_REJECT:
	case MILTER_VERDICT_TEMPFAIL:
		smtpd_message_fail(s, v->reply);
		smtpd_session_resume(s);
		return;
	case MILTER_VERDICT_SHUTDOWN:
		smtpd_milter_refuse(s, v);
		return;
	case MILTER_VERDICT_DISCARD:
		smtpd_milter_discard(s);
		return;
	default:
		break;
	}
	uint64_t total = s->data.size + s->header_len;
	if (v->headers_changed || v->body_changed) {
		long long n = smtpd_milter_rewrite(s, v->msg);
		if (n < 0) {
			smtpd_message_fail(s, "451 4.3.0 Error: queue file write error");
			smtpd_session_resume(s);
			return;
		}
		total = (uint64_t)n;
	}
	if (smtpd_milter_apply_envelope(s->qid, v, &s->sender, &s->rcpts, &s->n_rcpts, &s->cap_rcpts,
					smtpd_milter_addr, NULL) == 0) {
		log_info("%s: milter-discard: END-OF-MESSAGE from %s: milter deleted every recipient",
			 s->qid, s->namaddr);
		smtpd_milter_discard(s);
		return;
	}
	if (v->quarantine != NULL) {
		/* the queue commits it straight into hold/ (IPC_QC_HOLD) */
		free(s->hold_reason);
		s->hold_reason = xstrdup(v->quarantine);
	}
	smtpd_message_commit(s, total);
}

/* ---- reset and end ------------------------------------------------------------ */

void smtpd_milter_reset(struct smtpd_session *s)
{
	free(s->mrcpt.addr);
	free(s->mrcpt.orcpt);
	free(s->mrcpt_reply);
	free(s->hold_reason);
	s->mrcpt.addr = s->mrcpt.orcpt = s->mrcpt_reply = s->hold_reason = NULL;
	if (s->milters == NULL)
		return;
	if (s->state == SMTPD_ST_MILTER) {
		/* a pending call cannot be taken back: the chain goes (the
		 * session is ending: timeout, lost connection) */
		milter_chain_free(&s->milters);
		s->mwait = SMTPD_MW_NONE;
		return;
	}
	if (s->milter_tx)
		milter_chain_abort(s->milters);
	s->milter_tx = false;
}

void smtpd_milter_free(struct smtpd_session *s)
{
	milter_chain_free(&s->milters);
	s->mwait = SMTPD_MW_NONE;
}
