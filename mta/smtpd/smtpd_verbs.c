/*
 * smtpd_verbs.c - what each SMTP command does (RFC 5321 §4.1, and the
 * ESMTP extensions smtpd offers).
 *
 * Purpose: sequencing (503 5.5.1), parameter and address checks, recipient
 * acceptance, the pipelining rules (RFC 2920) and STARTTLS's injection
 * defence (CVE-2011-0411), with Postfix's reply texts.
 * Owns: nothing beyond the session's transaction fields it fills.
 * Never: reads the network itself (smtpd_session.c does), treats an address
 * as anything but bytes, relays for a client outside mynetworks.
 * Limits: smtpd_recipient_limit (452 4.5.3), message_size_limit for SIZE=
 * (552 5.3.4), address limits of lib/addr.
 * Tests: tests/integration/test_smtpd_*.py.
 */
#include <event2/buffer.h>

#include "mta/ipc/ipc_proto.h"
#include "mta/smtpd/smtpd_message.h"
#include "mta/smtpd/smtpd_milter.h"
#include "mta/smtpd/smtpd_rcpt.h"
#include "mta/smtpd/smtpd_reply.h"
#include "mta/smtpd/smtpd_session.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/common.h"

static const char *smtpd_verbs_upper(enum smtpd_verb v)
{
	switch (v) {
	case SMTPD_V_HELO: return "HELO";
	case SMTPD_V_EHLO: return "EHLO";
	case SMTPD_V_MAIL: return "MAIL";
	case SMTPD_V_RCPT: return "RCPT";
	case SMTPD_V_DATA: return "DATA";
	case SMTPD_V_BDAT: return "BDAT";
	case SMTPD_V_RSET: return "RSET";
	case SMTPD_V_NOOP: return "NOOP";
	case SMTPD_V_QUIT: return "QUIT";
	case SMTPD_V_VRFY: return "VRFY";
	case SMTPD_V_EXPN: return "EXPN";
	case SMTPD_V_HELP: return "HELP";
	case SMTPD_V_STARTTLS: return "STARTTLS";
	case SMTPD_V_AUTH: return "AUTH";
	case SMTPD_V_ETRN: return "ETRN";
	default: return "UNKNOWN";
	}
}

/* RFC 2920 §3.1 (and RFC 3207 for STARTTLS): commands after which the
 * client must wait for our reply. The same set Postfix flags "last" (QUIT,
 * where nothing can follow anyway, is left out as Postfix does). */
static bool smtpd_verbs_must_be_last(enum smtpd_verb v)
{
	switch (v) {
	case SMTPD_V_HELO:
	case SMTPD_V_EHLO:
	case SMTPD_V_DATA:
	case SMTPD_V_VRFY:
	case SMTPD_V_NOOP:
	case SMTPD_V_STARTTLS:
	case SMTPD_V_ETRN:
		return true;
	default:
		return false;
	}
}

/* Qualify a domainless address with myorigin (Postfix append_at_myorigin). */
static char *smtpd_verbs_qualify(struct smtpd_session *s, const struct addr *a)
{
	if (a->kind == ADDR_NULL)
		return xstrdup("");
	if (a->kind == ADDR_MAILBOX)
		return xstrdup(a->text);
	return xasprintf("%s@%s", a->text, s->conf->cfg->myorigin);
}

static void smtpd_verbs_helo(struct smtpd_session *s, const struct smtpd_cmd *cmd, bool ehlo)
{
	smtpd_session_reset(s); /* EHLO/HELO inside a transaction acts as RSET */
	char name[256];
	smtpd_reply_sanitize(cmd->arg.p, cmd->arg.len, name, sizeof(name));
	if (smtpd_milter_active(s)) {
		/* milters get a UTF-8 name (an RFC 6531 U-label) as sent, as
		 * Postfix does with smtputf8_enable; logs and headers keep the
		 * ASCII form */
		char raw[256];
		const char *mname = name;
		bool clean = s->conf->cfg->smtputf8_enable && cmd->arg.len < sizeof(raw) &&
			     addr_utf8_valid(cmd->arg.p, cmd->arg.len);
		for (size_t i = 0; clean && i < cmd->arg.len; i++)
			clean = (unsigned char)cmd->arg.p[i] >= 0x20 && cmd->arg.p[i] != 0x7f;
		if (clean) {
			memcpy(raw, cmd->arg.p, cmd->arg.len);
			raw[cmd->arg.len] = '\0';
			mname = raw;
		}
		smtpd_milter_helo(s, name, mname, ehlo); /* the verdict replies */
		return;
	}
	smtpd_verbs_helo_ok(s, name, ehlo);
}

void smtpd_verbs_helo_ok(struct smtpd_session *s, const char *name, bool ehlo)
{
	free(s->helo);
	s->helo = xstrdup(name);
	s->esmtp = ehlo;
	if (ehlo) {
		smtpd_reply_ehlo(s);
	} else {
		s->pipelining_ok = false;
		smtpd_reply(s, "250 %s", s->conf->cfg->myhostname);
	}
	s->counts.ok[ehlo ? SMTPD_V_EHLO : SMTPD_V_HELO]++;
}

static bool smtpd_verbs_addr_error(struct smtpd_session *s, const char *err, bool sender)
{
	if (addr_error_is_utf8(err))
		smtpd_reply(s, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
	else if (sender)
		smtpd_reply(s, "501 5.1.7 Bad sender address syntax");
	else
		smtpd_reply(s, "501 5.1.3 Bad recipient address syntax");
	return false;
}

static bool smtpd_verbs_mail(struct smtpd_session *s, const struct smtpd_cmd *cmd)
{
	const struct cfg *cfg = s->conf->cfg;
	const char *reply;
	if (s->in_mail) {
		smtpd_reply(s, "503 5.5.1 Error: nested MAIL command");
		return false;
	}
	if (s->helo == NULL && cfg->smtpd_helo_required) {
		smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return false;
	}
	if (s->conf->tls_required && !s->tls) {
		smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return false;
	}
	struct smtpd_mail_params mp;
	if (smtpd_cmd_mail_params(cmd, s->esmtp && s->ext_utf8, s->esmtp && s->ext_dsn, &mp, &reply) < 0) {
		smtpd_reply_text(s, reply);
		return false;
	}
	struct addr a;
	const char *err;
	unsigned opts = (mp.flags & IPC_QF_SMTPUTF8 ? ADDR_O_SMTPUTF8 : 0) |
			(cfg->strict_rfc821_envelopes ? ADDR_O_STRICT : 0);
	if (addr_parse(cmd->path, opts, &a, &err) < 0)
		return smtpd_verbs_addr_error(s, err, true);
	if (mp.has_size && cfg->message_size_limit > 0 &&
	    mp.size > (unsigned long long)cfg->message_size_limit) {
		const char *r = "552 5.3.4 Message size exceeds fixed limit";
		smtpd_log_reject(s, "MAIL", r, NULL);
		smtpd_reply_text(s, r);
		return false;
	}
	if ((mp.flags & IPC_QF_BINARYMIME) && !s->esmtp) {
		smtpd_reply(s, "501 5.5.4 Bad BODY keyword syntax");
		return false;
	}
	s->mail = mp;
	s->sender = smtpd_verbs_qualify(s, &a);
	if (smtpd_milter_active(s)) {
		smtpd_milter_mail(s, cmd); /* the verdict replies and counts */
		return false;
	}
	s->in_mail = true;
	smtpd_reply(s, "250 2.1.0 Ok");
	return true;
}

static bool smtpd_verbs_rcpt(struct smtpd_session *s, const struct smtpd_cmd *cmd)
{
	const struct cfg *cfg = s->conf->cfg;
	const char *reply;
	if (!s->in_mail) {
		smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
		return false;
	}
	s->rcpt_tries++;
	if (cfg->smtpd_recipient_limit > 0 && s->n_rcpts >= (size_t)cfg->smtpd_recipient_limit) {
		smtpd_reply(s, "452 4.5.3 Error: too many recipients");
		return false;
	}
	struct smtpd_rcpt_params rp;
	if (smtpd_cmd_rcpt_params(cmd, s->esmtp && s->ext_dsn, &rp, &reply) < 0) {
		smtpd_reply_text(s, reply);
		return false;
	}
	struct addr a;
	const char *err;
	unsigned opts = (s->mail.flags & IPC_QF_SMTPUTF8 ? ADDR_O_SMTPUTF8 : 0) |
			(cfg->strict_rfc821_envelopes ? ADDR_O_STRICT : 0);
	if (addr_parse(cmd->path, opts, &a, &err) < 0)
		return smtpd_verbs_addr_error(s, err, false);
	if (a.kind == ADDR_NULL)
		return smtpd_verbs_addr_error(s, "null recipient", false);
	char *rcpt = smtpd_verbs_qualify(s, &a);
	if (a.kind != ADDR_POSTMASTER) {
		/* RFC 5321 §4.5.1: <Postmaster> is always accepted */
		struct addr q = a;
		if (a.kind == ADDR_LOCAL_ONLY) {
			if (addr_parse(str_of(rcpt), opts, &q, &err) < 0) {
				free(rcpt);
				return smtpd_verbs_addr_error(s, err, false);
			}
		}
		char r[600];
		if (smtpd_rcpt_check(s->conf, &q, s->trusted, r, sizeof(r)) < 0) {
			smtpd_log_reject(s, "RCPT", r, rcpt);
			if (smtpd_milter_active(s)) {
				/* milters that asked for rejected recipients
				 * (SMFIP_RCPT_REJ) see it; the reply stays ours */
				smtpd_milter_rcpt_rejected(s, cmd, rcpt, r);
				return false;
			}
			smtpd_reply_text(s, r);
			free(rcpt);
			return false;
		}
	}
	if (smtpd_milter_active(s)) {
		smtpd_milter_rcpt(s, cmd, rcpt, rp.orcpt, rp.notify); /* the verdict replies */
		return false;
	}
	smtpd_verbs_rcpt_add(s, rcpt, rp.orcpt, rp.notify);
	smtpd_reply(s, "250 2.1.5 Ok");
	return true;
}

void smtpd_verbs_rcpt_add(struct smtpd_session *s, char *rcpt, const char *orcpt, unsigned notify)
{
	if (s->n_rcpts == s->cap_rcpts) {
		s->cap_rcpts = s->cap_rcpts ? s->cap_rcpts * 2 : 4;
		s->rcpts = xreallocarray(s->rcpts, s->cap_rcpts, sizeof(*s->rcpts));
	}
	struct smtpd_rcpt *r = &s->rcpts[s->n_rcpts++];
	r->addr = rcpt;
	r->orcpt = xstrdup(orcpt);
	r->notify = notify;
}

/* Common checks of DATA and BDAT; reply text or NULL when the transaction
 * may receive content. */
static const char *smtpd_verbs_content_refusal(struct smtpd_session *s, bool bdat)
{
	if (!s->in_mail)
		return "503 5.5.1 Error: need RCPT command";
	if (s->n_rcpts == 0)
		return "554 5.5.1 Error: no valid recipients";
	if (!bdat && (s->mail.flags & IPC_QF_BINARYMIME))
		return "503 5.5.1 Error: BDAT required for BODY=BINARYMIME";
	if (!bdat && s->bdat_used)
		return "503 5.5.1 Error: DATA after BDAT";
	if (s->srv->queue == NULL)
		return "451 4.3.0 Error: queue file write error";
	return NULL;
}

static void smtpd_verbs_data(struct smtpd_session *s)
{
	const char *r = smtpd_verbs_content_refusal(s, false);
	if (r != NULL) {
		smtpd_reply_text(s, r);
		return;
	}
	smtpd_message_open(s);
}

static void smtpd_verbs_bdat(struct smtpd_session *s, const struct smtpd_cmd *cmd)
{
	const char *r = smtpd_verbs_content_refusal(s, true);
	if (r == NULL && (!s->esmtp || !s->ext_chunking))
		r = "503 5.5.1 Error: send EHLO first";
	if (r == NULL && s->bdat_bad)
		r = "503 5.5.1 Error: BDAT transaction already failed";
	if (r != NULL) {
		/* RFC 3030 §3: the chunk is read and thrown away; the rest
		 * of a started BDAT transaction is refused too */
		if (s->bdat_used)
			s->bdat_bad = true;
		smtpd_message_bdat(s, cmd->bdat_size, cmd->bdat_last, r);
		return;
	}
	smtpd_message_bdat(s, cmd->bdat_size, cmd->bdat_last, NULL);
}

/* Was something pipelined where RFC 2920 forbids it? Returns true when
 * the session must stop (reply sent, closing). */
static bool smtpd_verbs_pipelining(struct smtpd_session *s, const struct smtpd_cmd *cmd)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t pending = evbuffer_get_length(in);
	if (pending == 0 || cmd->verb == SMTPD_V_BDAT)
		return false;
	bool bad = cmd->verb == SMTPD_V_STARTTLS || !s->pipelining_ok ||
		   smtpd_verbs_must_be_last(cmd->verb);
	if (!bad)
		return false;
	const char *name = smtpd_verbs_upper(cmd->verb);
	if (!s->ill_pipelining) {
		size_t n = pending < 100 ? pending : 100;
		smtpd_log_pipelining(s, name, evbuffer_pullup(in, (ev_ssize_t)n), n);
		s->ill_pipelining = true;
	}
	/* CVE-2011-0411: bytes after STARTTLS are never executed, whatever
	 * smtpd_forbid_unauth_pipelining says. */
	if (cmd->verb == SMTPD_V_STARTTLS || s->conf->cfg->smtpd_forbid_unauth_pipelining) {
		evbuffer_drain(in, pending);
		smtpd_reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
		smtpd_session_reset(s);
		smtpd_session_close(s);
		return true;
	}
	return false;
}

void smtpd_verbs_run(struct smtpd_session *s, struct str line)
{
	const struct cfg *cfg = s->conf->cfg;
	struct smtpd_cmd cmd;
	const char *reply = NULL;
	int r = smtpd_cmd_parse(line, &cmd, &reply);
	enum smtpd_verb v = cmd.verb == SMTPD_V_HTTP ? SMTPD_V_UNKNOWN : cmd.verb;
	s->counts.total[v]++;
	s->last_cmd = smtpd_verbs_upper(cmd.verb);
	if (smtpd_verbs_pipelining(s, &cmd))
		return;
	if (memchr(line.p, '\0', line.len) != NULL) {
		smtpd_reply(s, "500 5.5.2 Error: bad syntax (NUL character)");
		return;
	}
	if (r < 0) {
		if (cmd.verb == SMTPD_V_BDAT) {
			/* the size is unknown: nothing can be skipped safely */
			smtpd_reply_text(s, reply);
			smtpd_session_reset(s);
			smtpd_session_close(s);
			return;
		}
		smtpd_reply_text(s, reply);
		return;
	}
	if (s->milter_map_fail && cmd.verb != SMTPD_V_QUIT) {
		/* which milters apply is unknown: nothing may pass unfiltered */
		smtpd_reply(s, "451 4.3.0 Error: server configuration error");
		return;
	}
	/* Postfix smtpd_junk_command_limit: NOOP, VRFY, RSET (and ETRN) past
	 * the limit count as errors, so a client cannot idle-loop forever. */
	if ((cmd.verb == SMTPD_V_NOOP || cmd.verb == SMTPD_V_VRFY || cmd.verb == SMTPD_V_RSET ||
	     cmd.verb == SMTPD_V_ETRN) &&
	    cfg->smtpd_junk_command_limit > 0 && ++s->junk > (unsigned)cfg->smtpd_junk_command_limit)
		s->errors++;
	bool ok = false;
	switch (cmd.verb) {
	case SMTPD_V_HELO:
	case SMTPD_V_EHLO:
		smtpd_verbs_helo(s, &cmd, cmd.verb == SMTPD_V_EHLO);
		return;
	case SMTPD_V_MAIL:
		ok = smtpd_verbs_mail(s, &cmd);
		break;
	case SMTPD_V_RCPT:
		ok = smtpd_verbs_rcpt(s, &cmd);
		break;
	case SMTPD_V_DATA:
		smtpd_verbs_data(s);
		return; /* counted ok when the message is queued */
	case SMTPD_V_BDAT:
		smtpd_verbs_bdat(s, &cmd);
		return;
	case SMTPD_V_RSET:
		smtpd_session_reset(s);
		smtpd_reply(s, "250 2.0.0 Ok");
		ok = true;
		break;
	case SMTPD_V_NOOP:
		smtpd_reply(s, "250 2.0.0 Ok");
		ok = true;
		break;
	case SMTPD_V_QUIT:
		smtpd_reply(s, "221 2.0.0 Bye");
		s->counts.ok[v]++;
		smtpd_session_reset(s);
		smtpd_session_close(s);
		return;
	case SMTPD_V_VRFY:
		if (cfg->disable_vrfy_command) {
			smtpd_reply(s, "502 5.5.1 VRFY command is disabled");
		} else {
			char arg[256];
			smtpd_reply_sanitize(cmd.arg.p, cmd.arg.len, arg, sizeof(arg));
			smtpd_reply(s, "252 2.0.0 %s", arg);
			ok = true;
		}
		break;
	case SMTPD_V_HELP:
		smtpd_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP%s",
			    s->conf->tls && !s->tls ? " STARTTLS" : "");
		ok = true;
		break;
	case SMTPD_V_STARTTLS:
		if (s->conf->tls == NULL) {
			smtpd_reply(s, "502 5.5.2 Error: command not recognized");
		} else if (s->tls) {
			smtpd_reply(s, "554 5.5.1 Error: TLS already active");
		} else if (s->in_mail) {
			smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		} else {
			s->counts.ok[v]++;
			smtpd_session_starttls(s);
			return;
		}
		break;
	case SMTPD_V_AUTH:
		smtpd_reply(s, "503 5.5.1 Error: authentication not enabled");
		break;
	case SMTPD_V_HTTP: {
		struct buf b;
		buf_init(&b, 512);
		buf_escape(&b, line.p, line.len, 100);
		log_warning("non-SMTP command from %s: %s", s->namaddr, buf_cstr(&b));
		buf_free(&b);
		smtpd_reply(s, "221 2.7.0 Error: I can break rules, too. Goodbye.");
		smtpd_session_reset(s);
		smtpd_session_close(s);
		return;
	}
	case SMTPD_V_UNKNOWN:
		if (smtpd_milter_active(s)) {
			/* Postfix: the milters may answer an unknown command */
			char text[512];
			smtpd_reply_sanitize(line.p, line.len, text, sizeof(text));
			smtpd_milter_unknown(s, text);
			return;
		}
		smtpd_reply(s, "502 5.5.2 Error: command not recognized");
		break;
	case SMTPD_V_EXPN:
	case SMTPD_V_ETRN:
	default:
		smtpd_reply(s, "502 5.5.2 Error: command not recognized");
		break;
	}
	if (ok)
		s->counts.ok[v]++;
}
