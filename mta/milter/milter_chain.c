/*
 * milter_chain.c - the milters of one session, in order (milter_chain.h).
 *
 * Purpose: run each stage through the configured milters and combine their
 *          replies into one verdict; at end of message apply each milter's
 *          edits before the next milter sees the message.
 * Owns: the clients, the kept message and envelope, the verdict strings.
 * Never: blocks; calls back from inside a call of its owner; logs peer text
 *        unescaped; applies edits of a milter that rejected.
 * Limits: kept message <= max_message (headers and body each); body chunks
 *         <= MILTER_CHUNK_MAX; macros per stage <= MILTER_CHAIN_MACROS_MAX.
 * Tests: tests/interop/test_milter_replies.py, test_milter_faults.py,
 *        test_milter_real.py (through tests/milter/milter_drive.c).
 */
#include <strings.h>

#include "mta/milter/milter_chain.h"
#include "mta/milter/milter_log.h"
#include "lib/log.h"
#include "lib/common.h"

#define MILTER_CHAIN_MACROS_MAX 64 /* macro names sent per stage */

/* Steps of END-OF-MESSAGE processing for one milter. */
enum milter_chain_step {
	MILTER_CSTEP_HEADER, /* sending headers */
	MILTER_CSTEP_EOH,    /* end of headers next */
	MILTER_CSTEP_BODY,   /* sending body chunks */
	MILTER_CSTEP_EOM,    /* 'E' next */
	MILTER_CSTEP_DONE,   /* waiting for the 'E' reply */
};

struct milter_chain_m {
	struct milter_client *client; /* owned; NULL until first use */
	const struct milter_endpoint *ep; /* in the conf */
	bool opening;       /* open pending */
	bool opened;        /* negotiated */
	bool failed;        /* failed: default action sticks for the session */
	bool config_fault;  /* it failed with a bad reply text or edit (4.3.5) */
	bool done_session;  /* accepted at CONNECT/HELO */
	bool done_message;  /* accepted during this message */
	bool in_message;    /* MAIL was sent in this message */
	uint64_t req_gen;   /* generation of the request it serves */
};

struct milter_chain {
	struct event_base *base;       /* not owned */
	const struct milter_conf *conf; /* not owned */
	struct milter_chain_m *m;      /* one per configured milter */
	size_t n;                      /* entries in m */
	milter_macro_fn *macro;        /* the owner's macro lookup */
	milter_chain_fn *done;         /* the owner's verdict callback */
	void *ctx;                     /* their argument */
	struct event *defer;           /* delivers the verdict from the loop */
	uint64_t gen;                  /* bumped per call: stale client answers are dropped */
	bool pending;                  /* a call awaits its verdict */
	/* the current call */
	enum milter_stage stage;       /* stage of the call */
	size_t cur;                    /* milter being asked */
	struct buf event;              /* the encoded event packet of the stage */
	struct buf pkt;                /* macros + event for one milter */
	enum milter_chain_step step;   /* END-OF-MESSAGE progress for m[cur] */
	size_t hdr_i;                  /* next header to send */
	size_t body_off;               /* next body byte to send */
	bool skip_body;                /* m[cur] answered skip */
	char *rcpt, *rcpt_args;        /* RCPT being asked, owned until recorded */
	bool rcpt_rej;                 /* it is one smtpd rejected (SMFIP_RCPT_REJ) */
	char *rej_host, *rej_addr;     /* {rcpt_host} {rcpt_addr} for it */
	/* the verdict being built */
	enum milter_verdict_type type; /* combined so far */
	struct buf reply;              /* its SMTP reply text */
	const char *decider;           /* endpoint name */
	/* session state */
	enum milter_verdict_type sticky; /* CONTINUE, or REJECT/TEMPFAIL/SHUTDOWN for the session */
	char *sticky_reply;            /* the reply that sticks */
	char *fail_quarantine;         /* a failed milter with default_action=quarantine */
	/* message state */
	bool discard;                  /* a milter said discard */
	char *quarantine;              /* 'q' reason */
	struct milter_msg msg;         /* the kept message, edited in place */
	bool headers_changed, body_changed; /* some edit of that kind was applied */
	char *sender, *sender_args;    /* envelope sender and its ESMTP args */
	struct milter_rcpt *rcpts;     /* envelope recipients */
	size_t n_rcpts;                /* entries in rcpts */
	struct milter_mod *mods;       /* applied edits (copies) */
	size_t n_mods;                 /* entries in mods */
};

static const char *const milter_verdict_names[] = {
	[MILTER_VERDICT_CONTINUE] = "continue", [MILTER_VERDICT_ACCEPT] = "accept",
	[MILTER_VERDICT_REJECT] = "reject",     [MILTER_VERDICT_TEMPFAIL] = "tempfail",
	[MILTER_VERDICT_DISCARD] = "discard",   [MILTER_VERDICT_SHUTDOWN] = "shutdown",
};

const char *milter_verdict_name(enum milter_verdict_type t)
{
	return (unsigned)t < ARRAY_LEN(milter_verdict_names) ? milter_verdict_names[t] : "?";
}

static void milter_chain_advance(struct milter_chain *ch);

static bool milter_chain_in_message(enum milter_stage s)
{
	return s != MILTER_STAGE_CONNECT && s != MILTER_STAGE_HELO && s != MILTER_STAGE_UNKNOWN &&
	       s != MILTER_STAGE_OPTNEG && s != MILTER_STAGE_QUIT;
}

/* "QUEUEID: " when macro i is known, else "". Owned by the caller. */
static char *milter_chain_log_prefix(struct milter_chain *ch)
{
	const char *qid = ch->macro ? ch->macro("i", ch->ctx) : NULL;
	return qid && *qid ? xasprintf("%s: ", qid) : xstrdup("");
}

static void milter_chain_reset_message(struct milter_chain *ch)
{
	size_t max = ch->msg.body.max;
	milter_msg_free(&ch->msg);
	milter_msg_init(&ch->msg, max);
	ch->discard = false;
	ch->headers_changed = ch->body_changed = false;
	free(ch->quarantine);
	ch->quarantine = NULL;
	free(ch->sender);
	free(ch->sender_args);
	ch->sender = ch->sender_args = NULL;
	for (size_t i = 0; i < ch->n_rcpts; i++) {
		free(ch->rcpts[i].addr);
		free(ch->rcpts[i].args);
	}
	free(ch->rcpts);
	ch->rcpts = NULL;
	ch->n_rcpts = 0;
	milter_mods_free(&ch->mods, ch->n_mods);
	ch->n_mods = 0;
	for (size_t i = 0; i < ch->n; i++) {
		ch->m[i].done_message = false;
		ch->m[i].in_message = false;
	}
}

static void milter_chain_on_defer(evutil_socket_t fd, short what, void *arg)
{
	struct milter_chain *ch = arg;
	struct milter_verdict v = { 0 };
	v.stage = ch->stage;
	v.type = ch->type;
	v.reply = ch->reply.len ? buf_cstr(&ch->reply) : NULL;
	v.milter = ch->decider;
	if (ch->stage == MILTER_STAGE_EOM) {
		v.quarantine = ch->quarantine ? ch->quarantine : ch->fail_quarantine;
		v.msg = &ch->msg;
		v.headers_changed = ch->headers_changed;
		v.body_changed = ch->body_changed;
		v.mods = ch->mods;
		v.n_mods = ch->n_mods;
		v.sender = ch->sender;
		v.sender_args = ch->sender_args;
		v.rcpts = ch->rcpts;
		v.n_rcpts = ch->n_rcpts;
	} else if (milter_chain_in_message(ch->stage)) {
		v.quarantine = ch->quarantine;
	}
	ch->pending = false;
	ch->done(ch, &v, ch->ctx);
}

/* End the call with the verdict built so far. */
static void milter_chain_finish(struct milter_chain *ch)
{
	if (ch->type == MILTER_VERDICT_CONTINUE) {
		bool any = false;
		for (size_t i = 0; i < ch->n; i++) {
			const struct milter_chain_m *m = &ch->m[i];
			if (!m->done_session && !(m->done_message && milter_chain_in_message(ch->stage)) &&
			    !(m->failed && m->ep->default_action != MILTER_ACT_REJECT &&
			      m->ep->default_action != MILTER_ACT_TEMPFAIL &&
			      m->ep->default_action != MILTER_ACT_SHUTDOWN))
				any = true;
		}
		if (!any && ch->n > 0)
			ch->type = MILTER_VERDICT_ACCEPT;
	}
	if (ch->stage == MILTER_STAGE_RCPT && ch->rcpt_rej && ch->type != MILTER_VERDICT_SHUTDOWN) {
		/* smtpd rejected it already: the milters' verdict does not count */
		ch->type = MILTER_VERDICT_CONTINUE;
		buf_reset(&ch->reply);
		ch->decider = NULL;
	}
	if (ch->stage == MILTER_STAGE_RCPT && ch->rcpt != NULL && !ch->rcpt_rej &&
	    (ch->type == MILTER_VERDICT_CONTINUE || ch->type == MILTER_VERDICT_ACCEPT ||
	     ch->type == MILTER_VERDICT_DISCARD)) {
		ch->rcpts = xreallocarray(ch->rcpts, ch->n_rcpts + 1, sizeof(*ch->rcpts));
		ch->rcpts[ch->n_rcpts++] = (struct milter_rcpt){ ch->rcpt, ch->rcpt_args, false, false };
		ch->rcpt = ch->rcpt_args = NULL;
	}
	if ((ch->stage == MILTER_STAGE_CONNECT || ch->stage == MILTER_STAGE_HELO) &&
	    (ch->type == MILTER_VERDICT_REJECT || ch->type == MILTER_VERDICT_TEMPFAIL))
		ch->sticky = ch->type; /* Postfix: every later command gets this reply */
	if (ch->type == MILTER_VERDICT_SHUTDOWN)
		ch->sticky = ch->type;
	if (ch->sticky != MILTER_VERDICT_CONTINUE && ch->sticky_reply == NULL)
		ch->sticky_reply = xstrdup(buf_cstr(&ch->reply));
	if (ch->type == MILTER_VERDICT_DISCARD)
		ch->discard = true;
	event_active(ch->defer, EV_TIMEOUT, 0);
}

static void milter_chain_set_reply(struct milter_chain *ch, enum milter_verdict_type t,
				   const char *text, const struct milter_chain_m *m)
{
	ch->type = t;
	buf_reset(&ch->reply);
	(void)buf_puts(&ch->reply, text);
	ch->decider = m ? m->ep->name : NULL;
}

/* The milter failed: one log line, then its default action. */
static void milter_chain_fail(struct milter_chain *ch, struct milter_chain_m *m, const char *what)
{
	const char *qid = ch->macro ? ch->macro("i", ch->ctx) : NULL;
	milter_log_fault(qid, m->ep->name, what, milter_action_name(m->ep->default_action));
	m->failed = true;
	m->opening = false;
	if (m->client != NULL)
		milter_client_quit(m->client);
	if (m->ep->default_action == MILTER_ACT_QUARANTINE && ch->fail_quarantine == NULL)
		ch->fail_quarantine = xasprintf("milter %s failed", m->ep->name);
}

/* A failed milter's verdict at this stage; true when it decides. */
static bool milter_chain_default(struct milter_chain *ch, struct milter_chain_m *m)
{
	if (m->config_fault) {
		/* Postfix answers configuration problems with 4.3.5 whatever
		 * the default action, except that accept and quarantine go on */
		switch (m->ep->default_action) {
		case MILTER_ACT_REJECT:
		case MILTER_ACT_TEMPFAIL:
			milter_chain_set_reply(ch, MILTER_VERDICT_TEMPFAIL,
					       "451 4.3.5 Server configuration problem - try again later", m);
			return true;
		case MILTER_ACT_SHUTDOWN:
			milter_chain_set_reply(ch, MILTER_VERDICT_SHUTDOWN,
					       "421 4.3.5 Server configuration problem - try again later", m);
			return true;
		default:
			return false;
		}
	}
	switch (m->ep->default_action) {
	case MILTER_ACT_REJECT:
		milter_chain_set_reply(ch, MILTER_VERDICT_REJECT, "550 5.5.0 Service unavailable", m);
		return true;
	case MILTER_ACT_TEMPFAIL:
		milter_chain_set_reply(ch, MILTER_VERDICT_TEMPFAIL,
				       "451 4.7.1 Service unavailable - try again later", m);
		return true;
	case MILTER_ACT_SHUTDOWN:
		milter_chain_set_reply(ch, MILTER_VERDICT_SHUTDOWN,
				       "421 4.7.1 Service unavailable - try again later", m);
		return true;
	case MILTER_ACT_QUARANTINE:
	case MILTER_ACT_ACCEPT:
		break;
	}
	return false;
}

/* Append the 'D' packet of stage for milter m to ch->pkt. */
static int milter_chain_put_macros(struct milter_chain *ch, struct milter_chain_m *m,
				   enum milter_stage stage)
{
	int idx = milter_stage_macros(stage);
	if (idx < 0)
		return 0;
	const char *list = ch->conf->macros[idx];
	const struct milter_neg *neg = milter_client_neg(m->client);
	if (idx < MILTER_SYMLIST_COUNT && neg->symlist[idx] != NULL)
		list = neg->symlist[idx];
	if (list == NULL || *list == 0)
		return 0;
	const char *nv[2 * MILTER_CHAIN_MACROS_MAX];
	char *names[MILTER_CHAIN_MACROS_MAX], *vals[MILTER_CHAIN_MACROS_MAX];
	size_t n = 0;
	char *copy = xstrdup(list);
	for (char *s = copy; *s && n < MILTER_CHAIN_MACROS_MAX;) {
		while (*s == ' ' || *s == ',' || *s == '\t')
			s++;
		if (*s == 0)
			break;
		char *w = s;
		while (*s && *s != ' ' && *s != ',' && *s != '\t')
			s++;
		if (*s)
			*s++ = 0;
		char *bare = xstrdup(w);
		size_t bl = strlen(bare);
		char *key = bare;
		if (bl >= 2 && bare[0] == '{' && bare[bl - 1] == '}') {
			bare[bl - 1] = 0;
			key = bare + 1;
		}
		const char *val = NULL;
		if (ch->rcpt_rej && ch->stage == MILTER_STAGE_RCPT) {
			/* Postfix's values for a recipient it rejected itself */
			if (strcmp(key, "rcpt_mailer") == 0)
				val = "error";
			else if (strcmp(key, "rcpt_host") == 0)
				val = ch->rej_host;
			else if (strcmp(key, "rcpt_addr") == 0)
				val = ch->rej_addr;
		}
		if (val == NULL && ch->macro)
			val = ch->macro(key, ch->ctx);
		if (val == NULL && strcmp(key, "daemon_name") == 0)
			val = ch->conf->daemon_name;
		if (val == NULL && strcmp(key, "v") == 0)
			val = ch->conf->v;
		for (size_t k = 0; val == NULL && k < ch->conf->n_defaults; k++)
			if (strcmp(ch->conf->default_names[k], key) == 0)
				val = ch->conf->default_values[k];
		free(bare);
		if (val == NULL)
			continue;
		names[n] = xstrdup(w);
		vals[n] = xstrdup(val); /* the next macro() call may reuse its buffer */
		nv[2 * n] = names[n];
		nv[2 * n + 1] = vals[n];
		n++;
	}
	int rc = n > 0 ? milter_proto_put_macros(&ch->pkt, milter_stage_cmd(stage), nv, n) : 0;
	for (size_t i = 0; i < n; i++) {
		free(names[i]);
		free(vals[i]);
	}
	free(copy);
	return rc;
}

/* Does milter m get this stage at all (version and SMFIP_NO* bits)? */
static bool milter_chain_wants(const struct milter_chain_m *m, enum milter_stage s)
{
	const struct milter_neg *neg = milter_client_neg(m->client);
	if (s == MILTER_STAGE_DATA && neg->version < 4)
		return false;
	if (s == MILTER_STAGE_UNKNOWN && neg->version < 3)
		return false;
	return (neg->protocol & milter_stage_no_bit(s)) == 0;
}

/* Send ch->pkt for stage to m[cur]. */
static void milter_chain_send(struct milter_chain *ch, struct milter_chain_m *m,
			      enum milter_stage s)
{
	m->req_gen = ch->gen;
	milter_client_event(m->client, s, &ch->pkt);
}

/* Next END-OF-MESSAGE step for m; true when a request went out. */
static bool milter_chain_eom_step(struct milter_chain *ch, struct milter_chain_m *m)
{
	const struct milter_neg *neg = milter_client_neg(m->client);
	bool leadspc = (neg->protocol & MILTER_P_HDR_LEADSPC) != 0;
	for (;;) {
		buf_reset(&ch->pkt);
		switch (ch->step) {
		case MILTER_CSTEP_HEADER:
			while (ch->hdr_i < ch->msg.n && ch->msg.hdrs[ch->hdr_i].hidden)
				ch->hdr_i++;
			if (!milter_chain_wants(m, MILTER_STAGE_HEADER) || ch->hdr_i >= ch->msg.n) {
				ch->step = MILTER_CSTEP_EOH;
				continue;
			}
			{
				const struct milter_hdr *h = &ch->msg.hdrs[ch->hdr_i++];
				const char *hv[2] = { h->name, milter_msg_value_out(h->value, leadspc) };
				if (milter_chain_put_macros(ch, m, MILTER_STAGE_HEADER) < 0 ||
				    milter_proto_put_strs(&ch->pkt, MILTER_C_HEADER, hv, 2) < 0)
					goto toolarge;
				milter_chain_send(ch, m, MILTER_STAGE_HEADER);
			}
			return true;
		case MILTER_CSTEP_EOH:
			ch->step = MILTER_CSTEP_BODY;
			if (!milter_chain_wants(m, MILTER_STAGE_EOH))
				continue;
			if (milter_chain_put_macros(ch, m, MILTER_STAGE_EOH) < 0 ||
			    milter_proto_put(&ch->pkt, MILTER_C_EOH, NULL, 0) < 0)
				goto toolarge;
			milter_chain_send(ch, m, MILTER_STAGE_EOH);
			return true;
		case MILTER_CSTEP_BODY:
			if (ch->skip_body || !milter_chain_wants(m, MILTER_STAGE_BODY) ||
			    ch->body_off >= ch->msg.body.len) {
				ch->step = MILTER_CSTEP_EOM;
				continue;
			}
			{
				size_t n = ch->msg.body.len - ch->body_off;
				if (n > MILTER_CHUNK_MAX)
					n = MILTER_CHUNK_MAX;
				if (milter_chain_put_macros(ch, m, MILTER_STAGE_BODY) < 0 ||
				    milter_proto_put(&ch->pkt, MILTER_C_BODY, ch->msg.body.data + ch->body_off,
						     n) < 0)
					goto toolarge;
				ch->body_off += n;
				milter_chain_send(ch, m, MILTER_STAGE_BODY);
			}
			return true;
		case MILTER_CSTEP_EOM:
			ch->step = MILTER_CSTEP_DONE;
			if (milter_chain_put_macros(ch, m, MILTER_STAGE_EOM) < 0 ||
			    milter_proto_put(&ch->pkt, MILTER_C_EOM, NULL, 0) < 0)
				goto toolarge;
			milter_chain_send(ch, m, MILTER_STAGE_EOM);
			return true;
		case MILTER_CSTEP_DONE:
			return false;
		}
	}
toolarge:
	milter_chain_fail(ch, m, "event too large to send");
	return false;
}

/* Strip one pair of angle brackets for recipient comparison. */
static struct str milter_chain_bare(const char *a)
{
	struct str s = str_of(a);
	while (s.len > 0 && (*s.p == ' ' || *s.p == '\t'))
		s.p++, s.len--;
	if (s.len >= 2 && s.p[0] == '<' && s.p[s.len - 1] == '>') {
		s.p++;
		s.len -= 2;
	}
	return s;
}

/* Apply the edits of one milter's END-OF-MESSAGE reply. -1 with *why on a
 * limit. */
static int milter_chain_apply(struct milter_chain *ch, struct milter_chain_m *m,
			      const struct milter_result *r, const char **why)
{
	const struct milter_neg *neg = milter_client_neg(m->client);
	bool leadspc = (neg->protocol & MILTER_P_HDR_LEADSPC) != 0;
	for (size_t i = 0; i < r->n_mods; i++) {
		const struct milter_mod *md = &r->mods[i];
		char *v = NULL;
		int rc = 0;
		switch (md->type) {
		case MILTER_R_ADDHEADER:
			v = milter_msg_value_in(md->value, md->value_len, leadspc);
			rc = milter_msg_add(&ch->msg, md->name, strlen(md->name), v, strlen(v), false);
			ch->headers_changed = true;
			break;
		case MILTER_R_INSHEADER:
			v = milter_msg_value_in(md->value, md->value_len, leadspc);
			rc = milter_msg_insheader(&ch->msg, md->index, md->name, v);
			ch->headers_changed = true;
			break;
		case MILTER_R_CHGHEADER:
			v = md->value_len == 0 ? xstrdup("")
					       : milter_msg_value_in(md->value, md->value_len, leadspc);
			rc = milter_msg_chgheader(&ch->msg, md->name, md->index, v);
			ch->headers_changed = true;
			break;
		case MILTER_R_ADDRCPT:
		case MILTER_R_ADDRCPT_PAR:
			ch->rcpts = xreallocarray(ch->rcpts, ch->n_rcpts + 1, sizeof(*ch->rcpts));
			ch->rcpts[ch->n_rcpts++] = (struct milter_rcpt){
				xstrdup(md->addr), md->args ? xstrdup(md->args) : NULL, true, false
			};
			break;
		case MILTER_R_DELRCPT: {
			struct str want = milter_chain_bare(md->addr);
			for (size_t k = 0; k < ch->n_rcpts; k++)
				if (str_case_eq(milter_chain_bare(ch->rcpts[k].addr), want))
					ch->rcpts[k].deleted = true;
			break;
		}
		case MILTER_R_CHGFROM:
			free(ch->sender);
			free(ch->sender_args);
			ch->sender = xstrdup(md->addr);
			ch->sender_args = md->args ? xstrdup(md->args) : NULL;
			break;
		case MILTER_R_REPLBODY: {
			/* the replacement is stored with CRLF line ends */
			buf_reset(&ch->msg.body);
			const char *p = md->body.data ? md->body.data : "";
			for (size_t k = 0; k < md->body.len && rc == 0; k++) {
				if (p[k] == '\n' && (k == 0 || p[k - 1] != '\r'))
					rc = buf_putc(&ch->msg.body, '\r');
				if (rc == 0)
					rc = buf_putc(&ch->msg.body, p[k]);
			}
			ch->body_changed = true;
			break;
		}
		default:
			break;
		}
		free(v);
		if (rc < 0) {
			*why = "edit makes the message too large";
			return -1;
		}
		/* keep a copy for the verdict */
		ch->mods = xreallocarray(ch->mods, ch->n_mods + 1, sizeof(*ch->mods));
		struct milter_mod *c = &ch->mods[ch->n_mods++];
		*c = (struct milter_mod){ .type = md->type, .index = md->index, .value_len = md->value_len };
		c->name = md->name ? xstrdup(md->name) : NULL;
		c->value = md->value ? xmemdup(md->value, md->value_len) : NULL;
		c->addr = md->addr ? xstrdup(md->addr) : NULL;
		c->args = md->args ? xstrdup(md->args) : NULL;
		buf_init(&c->body, md->body.max);
		if (md->body.len)
			CHECK(buf_append(&c->body, md->body.data, md->body.len) == 0);
	}
	return 0;
}

/* A decision of milter m at a stage; true when it ends the call. */
static bool milter_chain_decide(struct milter_chain *ch, struct milter_chain_m *m,
				const struct milter_result *r)
{
	enum milter_stage s = ch->stage;
	switch (r->type) {
	case MILTER_R_CONTINUE:
	case MILTER_R_SKIP:
		return false;
	case MILTER_R_ACCEPT:
		if (s == MILTER_STAGE_CONNECT || s == MILTER_STAGE_HELO)
			m->done_session = true;
		else if (s != MILTER_STAGE_UNKNOWN)
			m->done_message = true;
		return false;
	case MILTER_R_REJECT:
		milter_chain_set_reply(ch, MILTER_VERDICT_REJECT, "550 5.7.1 Command rejected", m);
		return true;
	case MILTER_R_TEMPFAIL:
		milter_chain_set_reply(ch, MILTER_VERDICT_TEMPFAIL,
				       "451 4.7.1 Service unavailable - try again later", m);
		return true;
	case MILTER_R_REPLYCODE:
		milter_chain_set_reply(ch, r->text[0] == '5' ? MILTER_VERDICT_REJECT
							       : MILTER_VERDICT_TEMPFAIL,
				       r->text, m);
		return true;
	case MILTER_R_SHUTDOWN:
		milter_chain_set_reply(ch, MILTER_VERDICT_SHUTDOWN, "421 4.7.0 Server closing connection",
				       m);
		return true;
	case MILTER_R_DISCARD:
		if (s == MILTER_STAGE_CONNECT || s == MILTER_STAGE_HELO || s == MILTER_STAGE_UNKNOWN) {
			char *pfx = milter_chain_log_prefix(ch);
			log_warning("%smilter %s: discard reply at %s ignored", pfx, m->ep->name,
				    milter_stage_name(s));
			free(pfx);
			return false;
		}
		milter_chain_set_reply(ch, MILTER_VERDICT_DISCARD, "", m);
		buf_reset(&ch->reply);
		return true;
	default:
		return false;
	}
}

static void milter_chain_on_client(struct milter_client *c, const struct milter_result *r,
				   void *arg)
{
	struct milter_chain *ch = arg;
	CHECK(ch->cur < ch->n && ch->m[ch->cur].client == c);
	struct milter_chain_m *m = &ch->m[ch->cur];
	if (!ch->pending || m->req_gen != ch->gen) {
		log_warning("milter %s: late answer dropped", m->ep->name);
		return;
	}
	if (r->fault != NULL) {
		if (!m->failed) {
			m->config_fault = r->fault_config;
			milter_chain_fail(ch, m, r->fault);
		}
		milter_chain_advance(ch);
		return;
	}
	if (m->opening) {
		m->opening = false;
		m->opened = true;
		milter_chain_advance(ch);
		return;
	}
	if (r->quarantine != NULL && milter_chain_in_message(ch->stage)) {
		free(ch->quarantine);
		ch->quarantine = xstrdup(r->quarantine);
	}
	if (ch->stage == MILTER_STAGE_EOM && ch->step != MILTER_CSTEP_DONE) {
		/* HEADER / EOH / BODY answered */
		if (r->type == MILTER_R_CONTINUE) {
			milter_chain_advance(ch);
			return;
		}
		if (r->type == MILTER_R_SKIP) {
			ch->skip_body = true;
			milter_chain_advance(ch);
			return;
		}
	}
	if (ch->stage == MILTER_STAGE_EOM && ch->step == MILTER_CSTEP_DONE)
		m->in_message = false; /* its message is over: no ABORT for it (libmilter
					* takes none after END-OF-MESSAGE) */
	if (ch->stage == MILTER_STAGE_EOM && ch->step == MILTER_CSTEP_DONE &&
	    (r->type == MILTER_R_CONTINUE || r->type == MILTER_R_ACCEPT)) {
		const char *why = NULL;
		if (milter_chain_apply(ch, m, r, &why) < 0) {
			milter_chain_fail(ch, m, why);
			milter_chain_advance(ch);
			return;
		}
	}
	if (milter_chain_decide(ch, m, r)) {
		milter_chain_finish(ch);
		return;
	}
	if (ch->stage == MILTER_STAGE_EOM)
		ch->step = MILTER_CSTEP_DONE; /* accepted mid-content: no more for this milter */
	if (ch->stage != MILTER_STAGE_EOM || ch->step == MILTER_CSTEP_DONE) {
		ch->cur++;
		ch->step = MILTER_CSTEP_HEADER;
		ch->hdr_i = ch->body_off = 0;
		ch->skip_body = false;
	}
	milter_chain_advance(ch);
}

/* Ask the next milter, or finish the call when none is left. */
static void milter_chain_advance(struct milter_chain *ch)
{
	for (; ch->cur < ch->n; ch->cur++, ch->step = MILTER_CSTEP_HEADER, ch->hdr_i = 0,
				ch->body_off = 0, ch->skip_body = false) {
		struct milter_chain_m *m = &ch->m[ch->cur];
		if (m->done_session || (m->done_message && milter_chain_in_message(ch->stage)))
			continue;
		if (m->failed) {
			if (milter_chain_default(ch, m)) {
				milter_chain_finish(ch);
				return;
			}
			continue;
		}
		if (m->client == NULL)
			m->client = milter_client_new(ch->base, m->ep, ch->msg.body.max,
						      milter_chain_on_client, ch);
		if (!m->opened) {
			m->opening = true;
			m->req_gen = ch->gen;
			milter_client_open(m->client);
			return;
		}
		if (ch->stage == MILTER_STAGE_EOM) {
			if (ch->step == MILTER_CSTEP_DONE)
				continue;
			if (milter_chain_eom_step(ch, m))
				return;
			if (m->failed) {
				ch->cur--; /* apply its default action on the next turn */
				continue;
			}
			continue;
		}
		if (!milter_chain_wants(m, ch->stage))
			continue;
		if (ch->stage == MILTER_STAGE_RCPT && ch->rcpt_rej &&
		    (milter_client_neg(m->client)->protocol & MILTER_P_RCPT_REJ) == 0)
			continue;
		buf_reset(&ch->pkt);
		if (milter_chain_put_macros(ch, m, ch->stage) < 0 ||
		    buf_append(&ch->pkt, ch->event.data, ch->event.len) < 0) {
			milter_chain_fail(ch, m, "event too large to send");
			ch->cur--;
			continue;
		}
		if (ch->stage == MILTER_STAGE_MAIL)
			m->in_message = true;
		milter_chain_send(ch, m, ch->stage);
		return;
	}
	milter_chain_finish(ch);
}

/* Start a call; the event packet is already in ch->event. */
static void milter_chain_start(struct milter_chain *ch, enum milter_stage s)
{
	CHECK(!ch->pending);
	ch->pending = true;
	ch->gen++;
	ch->stage = s;
	ch->cur = 0;
	ch->step = MILTER_CSTEP_HEADER;
	ch->hdr_i = ch->body_off = 0;
	ch->skip_body = false;
	ch->type = MILTER_VERDICT_CONTINUE;
	ch->decider = NULL;
	buf_reset(&ch->reply);
	if (ch->sticky != MILTER_VERDICT_CONTINUE) {
		ch->type = ch->sticky;
		(void)buf_puts(&ch->reply, ch->sticky_reply ? ch->sticky_reply : "");
		milter_chain_finish(ch);
		return;
	}
	if (ch->discard && milter_chain_in_message(s)) {
		ch->type = MILTER_VERDICT_DISCARD;
		milter_chain_finish(ch);
		return;
	}
	milter_chain_advance(ch);
}

struct milter_chain *milter_chain_new(struct event_base *base, const struct milter_conf *conf,
				      size_t max_message, milter_macro_fn *macro,
				      milter_chain_fn *done, void *ctx)
{
	struct milter_chain *ch = xcalloc(1, sizeof(*ch));
	ch->base = base;
	ch->conf = conf;
	ch->n = conf->n;
	ch->m = xcalloc(conf->n ? conf->n : 1, sizeof(*ch->m));
	for (size_t i = 0; i < conf->n; i++)
		ch->m[i].ep = &conf->milters[i];
	ch->macro = macro;
	ch->done = done;
	ch->ctx = ctx;
	ch->defer = evtimer_new(base, milter_chain_on_defer, ch);
	if (max_message == 0) /* message_size_limit = 0: no limit */
		max_message = SIZE_MAX / 4;
	size_t pmax;
	if (!size_add(max_message, 128 * 1024, &pmax))
		pmax = SIZE_MAX;
	buf_init(&ch->event, pmax);
	buf_init(&ch->pkt, pmax);
	buf_init(&ch->reply, 64 * 1024);
	milter_msg_init(&ch->msg, max_message);
	ch->sticky = MILTER_VERDICT_CONTINUE;
	return ch;
}

void milter_chain_free(struct milter_chain **chp)
{
	struct milter_chain *ch = *chp;
	if (ch == NULL)
		return;
	*chp = NULL;
	for (size_t i = 0; i < ch->n; i++) {
		if (ch->m[i].client != NULL) {
			milter_client_quit(ch->m[i].client);
			milter_client_free(&ch->m[i].client);
		}
	}
	milter_chain_reset_message(ch);
	milter_msg_free(&ch->msg);
	event_free(ch->defer);
	buf_free(&ch->event);
	buf_free(&ch->pkt);
	buf_free(&ch->reply);
	free(ch->rcpt);
	free(ch->rcpt_args);
	free(ch->rej_host);
	free(ch->rej_addr);
	free(ch->sticky_reply);
	free(ch->fail_quarantine);
	free(ch->m);
	free(ch);
}

void milter_chain_connect(struct milter_chain *ch, const char *host, const char *addr,
			  unsigned port, char family)
{
	buf_reset(&ch->event);
	if (milter_proto_put_connect(&ch->event, host, family, (uint16_t)port, addr) < 0)
		buf_reset(&ch->event);
	milter_chain_start(ch, MILTER_STAGE_CONNECT);
}

void milter_chain_helo(struct milter_chain *ch, const char *helo)
{
	buf_reset(&ch->event);
	(void)milter_proto_put_strs(&ch->event, MILTER_C_HELO, &helo, 1);
	milter_chain_start(ch, MILTER_STAGE_HELO);
}

/* "<addr> arg arg" as an argv packet; args joined for the envelope. */
static char *milter_chain_argv(struct milter_chain *ch, char cmd, const char *addr,
			       const char *const *args, size_t n)
{
	const char **v = xcalloc(n + 1, sizeof(*v));
	struct buf joined;
	buf_init(&joined, 64 * 1024);
	v[0] = addr;
	for (size_t i = 0; i < n; i++) {
		v[i + 1] = args[i];
		if (i > 0)
			(void)buf_putc(&joined, ' ');
		(void)buf_puts(&joined, args[i]);
	}
	buf_reset(&ch->event);
	(void)milter_proto_put_strs(&ch->event, cmd, v, n + 1);
	free(v);
	char *r = n > 0 ? xstrdup(buf_cstr(&joined)) : NULL;
	buf_free(&joined);
	return r;
}

void milter_chain_mail(struct milter_chain *ch, const char *sender, const char *const *args,
		       size_t n_args)
{
	CHECK(!ch->pending);
	milter_chain_reset_message(ch);
	ch->sender_args = milter_chain_argv(ch, MILTER_C_MAIL, sender, args, n_args);
	ch->sender = xstrdup(sender);
	milter_chain_start(ch, MILTER_STAGE_MAIL);
}

static void milter_chain_rcpt_common(struct milter_chain *ch, const char *rcpt,
				     const char *const *args, size_t n_args, const char *reply)
{
	CHECK(!ch->pending);
	free(ch->rcpt);
	free(ch->rcpt_args);
	free(ch->rej_host);
	free(ch->rej_addr);
	ch->rej_host = ch->rej_addr = NULL;
	ch->rcpt_args = milter_chain_argv(ch, MILTER_C_RCPT, rcpt, args, n_args);
	ch->rcpt = xstrdup(rcpt);
	ch->rcpt_rej = reply != NULL;
	if (reply != NULL) {
		/* "550 5.1.1 <b@example.org>: text": {rcpt_host} is the enhanced
		 * status code (when there is one), {rcpt_addr} the text after it */
		const char *p = strlen(reply) > 4 ? reply + 4 : "";
		size_t n = strcspn(p, " ");
		if (n > 0 && p[0] >= '2' && p[0] <= '5' && p[1] == '.') {
			ch->rej_host = xmemdup(p, n);
			p += n;
			p += strspn(p, " ");
		}
		ch->rej_addr = xstrdup(p);
	}
	milter_chain_start(ch, MILTER_STAGE_RCPT);
}

void milter_chain_rcpt(struct milter_chain *ch, const char *rcpt, const char *const *args,
		       size_t n_args)
{
	milter_chain_rcpt_common(ch, rcpt, args, n_args, NULL);
}

void milter_chain_rcpt_rejected(struct milter_chain *ch, const char *rcpt, const char *const *args,
				size_t n_args, const char *reply)
{
	milter_chain_rcpt_common(ch, rcpt, args, n_args, reply);
}

void milter_chain_data(struct milter_chain *ch)
{
	buf_reset(&ch->event);
	(void)milter_proto_put(&ch->event, MILTER_C_DATA, NULL, 0);
	milter_chain_start(ch, MILTER_STAGE_DATA);
}

void milter_chain_unknown(struct milter_chain *ch, const char *line)
{
	buf_reset(&ch->event);
	(void)milter_proto_put_strs(&ch->event, MILTER_C_UNKNOWN, &line, 1);
	milter_chain_start(ch, MILTER_STAGE_UNKNOWN);
}

int milter_chain_header(struct milter_chain *ch, const char *name, const char *value,
			bool hidden)
{
	char *v = milter_msg_value_in(value, strlen(value), true);
	int rc = milter_msg_add(&ch->msg, name, strlen(name), v, strlen(v), hidden);
	free(v);
	return rc;
}

int milter_chain_body(struct milter_chain *ch, const void *p, size_t n)
{
	return milter_msg_body_append(&ch->msg, p, n);
}

int milter_chain_message(struct milter_chain *ch, const char *text, size_t len)
{
	const char *err;
	return milter_msg_parse(&ch->msg, text, len, &err);
}

int milter_chain_message_hide(struct milter_chain *ch, const char *text, size_t len,
			      size_t n_hidden)
{
	const char *err;
	if (milter_msg_parse(&ch->msg, text, len, &err) < 0)
		return -1;
	for (size_t i = 0; i < n_hidden && i < ch->msg.n; i++)
		ch->msg.hdrs[i].hidden = true;
	return 0;
}

void milter_chain_eom(struct milter_chain *ch)
{
	milter_chain_start(ch, MILTER_STAGE_EOM);
}

void milter_chain_abort(struct milter_chain *ch)
{
	CHECK(!ch->pending);
	struct buf a;
	buf_init(&a, 16);
	CHECK(milter_proto_put(&a, MILTER_C_ABORT, NULL, 0) == 0);
	for (size_t i = 0; i < ch->n; i++) {
		struct milter_chain_m *m = &ch->m[i];
		if (m->client != NULL && m->opened && !m->failed && !m->done_session && m->in_message)
			milter_client_send_only(m->client, &a);
	}
	buf_free(&a);
	milter_chain_reset_message(ch);
}
