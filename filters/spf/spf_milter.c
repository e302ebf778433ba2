/*
 * spf_milter.c - postern-spf's libmilter callbacks (see spf_milter.h).
 *
 * Purpose: check SPF for each message and report it in the headers.
 * Owns: per-connection state (smfi_setpriv): client address, HELO result,
 * MAIL FROM result.
 * Never: checks internal or authenticated clients; keeps an
 * Authentication-Results field that claims our authserv-id with an spf
 * result (RFC 8601 §5);
 * copies peer text into a header without quoting it.
 * Tests: tests/interop/test_filter_spf.py.
 */
#include <strings.h>

#include "filters/common/filter_ar.h"
#include "filters/common/filter_hdr.h"
#include "filters/common/filter_main.h"
#include "filters/common/filter_net.h"
#include "filters/spf/spf_eval.h"
#include "filters/spf/spf_milter.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/common.h"

#define SPF_MAX_AR_SEEN 64

struct spf_conn {
	struct sockaddr_storage addr;   /* client address */
	bool have_addr;                 /* addr is set */
	bool skip;                      /* internal client */
	bool leadspc;                   /* SMFIP_HDR_LEADSPC negotiated */
	char client[64];                /* printable client address */
	char *helo;                     /* HELO argument, owned */
	struct spf_eval helo_res;       /* HELO identity result */
	bool helo_done;                 /* helo_res is set */
	/* per message */
	bool checked;                   /* from_res is set */
	bool auth;                      /* authenticated sender: not checked */
	char *sender;                   /* MAIL FROM without <>, owned */
	struct spf_eval from_res;       /* MAIL FROM identity result */
	unsigned ar_seen;               /* A-R fields so far */
	unsigned ar_ours[SPF_MAX_AR_SEEN]; /* 1-based indexes claiming our id */
	size_t nar_ours;                /* entries */
};

static struct spf_conn *spf_milter_conn(SMFICTX *ctx)
{
	struct spf_conn *c = smfi_getpriv(ctx);
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		snprintf(c->client, sizeof(c->client), "unknown");
		smfi_setpriv(ctx, c);
	}
	return c;
}

static void spf_milter_reset_msg(struct spf_conn *c)
{
	free(c->sender);
	c->sender = NULL;
	c->checked = false;
	c->auth = false;
	c->ar_seen = 0;
	c->nar_ours = 0;
}

static sfsistat spf_milter_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
				     unsigned long f2, unsigned long f3, unsigned long *pf0,
				     unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	unsigned long want = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
	if ((f0 & want) != want)
		return SMFIS_REJECT;
	*pf0 = want;
	*pf1 = f1 & (SMFIP_NORCPT | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_NOBODY |
		     SMFIP_HDR_LEADSPC);
	*pf2 = *pf3 = 0;
	spf_milter_conn(ctx)->leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
	return SMFIS_CONTINUE;
}

static sfsistat spf_milter_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
	struct spf_conn *c = spf_milter_conn(ctx);
	if (sa != NULL && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
		memcpy(&c->addr, sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
							       : sizeof(struct sockaddr_in6));
		c->have_addr = true;
		filter_net_ntop(sa, c->client, sizeof(c->client));
		c->skip = filter_netlist_match(&filter_common.internal, sa);
	}
	return SMFIS_CONTINUE;
}

static sfsistat spf_milter_helo(SMFICTX *ctx, char *helo)
{
	struct spf_conn *c = spf_milter_conn(ctx);
	free(c->helo);
	c->helo = xstrdup(helo ? helo : "");
	c->helo_done = false;
	return SMFIS_CONTINUE;
}

/* Reply text may not carry peer bytes unescaped: only the domain, which
 * spf_eval_check has checked to be a domain name. */
static sfsistat spf_milter_decide(SMFICTX *ctx, struct spf_conn *c, const struct spf_eval *r)
{
	char text[400];
	switch (r->result) {
	case SPF_EVAL_FAIL:
		if (!spf_settings.reject_fail)
			return SMFIS_CONTINUE;
		snprintf(text, sizeof(text), "SPF fail: %s does not allow %s to send for it",
			 r->domain, c->client);
		smfi_setreply(ctx, "550", "5.7.23", text);
		return SMFIS_REJECT;
	case SPF_EVAL_TEMPERROR:
		if (!spf_settings.tempfail_temperror)
			return SMFIS_CONTINUE;
		snprintf(text, sizeof(text), "SPF temporary error for %s, try again later",
			 r->domain);
		smfi_setreply(ctx, "451", "4.7.24", text);
		return SMFIS_TEMPFAIL;
	case SPF_EVAL_PERMERROR:
		if (!spf_settings.reject_permerror)
			return SMFIS_CONTINUE;
		snprintf(text, sizeof(text), "SPF permanent error for %s", r->domain);
		smfi_setreply(ctx, "550", "5.7.24", text);
		return SMFIS_REJECT;
	default:
		return SMFIS_CONTINUE;
	}
}

static sfsistat spf_milter_envfrom(SMFICTX *ctx, char **argv)
{
	struct spf_conn *c = spf_milter_conn(ctx);
	spf_milter_reset_msg(c);
	const char *auth = smfi_getsymval(ctx, "{auth_authen}");
	c->auth = auth != NULL && *auth != '\0';
	if (c->skip || c->auth || !c->have_addr)
		return SMFIS_CONTINUE;
	/* "<addr>" -> addr; Postfix's non-SMTP mail has no brackets */
	const char *a = argv && argv[0] ? argv[0] : "";
	size_t n = strlen(a);
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>')
		c->sender = xmemdup(a + 1, n - 2);
	else
		c->sender = xstrdup(a);
	const char *helo = c->helo ? c->helo : "";
	if (c->sender[0] != '\0' && strchr(c->sender, '@') == NULL) {
		/* RFC 7208 §4.3: no domain in MAIL FROM ("<postmaster>"): the
		 * HELO domain, with the local-part as given */
		char *s = xasprintf("%s@%s", c->sender, helo);
		free(c->sender);
		c->sender = s;
	}
	if (spf_settings.helo_check || spf_settings.reject_helo_fail || c->sender[0] == '\0') {
		if (!c->helo_done) {
			spf_eval_check((struct sockaddr *)&c->addr, helo, NULL, &c->helo_res);
			c->helo_done = true;
		}
	}
	if (c->sender[0] == '\0') {
		/* §2.4: the null sender is checked as postmaster@HELO */
		c->from_res = c->helo_res;
	} else {
		spf_eval_check((struct sockaddr *)&c->addr, helo, c->sender, &c->from_res);
	}
	c->checked = true;
	struct buf esc;
	buf_init(&esc, 600);
	buf_escape(&esc, c->sender, strlen(c->sender), 256);
	log_info("SPF %s: client=%s, mailfrom=<%s>, domain=%s (%s)",
		 spf_eval_name(c->from_res.result), c->client, buf_cstr(&esc),
		 c->from_res.domain, c->from_res.comment);
	buf_free(&esc);
	if (spf_settings.reject_helo_fail && c->helo_done &&
	    c->helo_res.result == SPF_EVAL_FAIL) {
		/* RFC 7208 §2.3: a HELO identity that fails may be refused on
		 * its own, whatever MAIL FROM says */
		char text[400];
		log_info("SPF helo fail: client=%s, helo=%s: refused", c->client,
			 c->helo_res.domain);
		snprintf(text, sizeof(text), "SPF fail: HELO %s does not allow %s to use it",
			 c->helo_res.domain, c->client);
		smfi_setreply(ctx, "550", "5.7.23", text);
		return SMFIS_REJECT;
	}
	return spf_milter_decide(ctx, c, &c->from_res);
}

static sfsistat spf_milter_header(SMFICTX *ctx, char *name, char *value)
{
	struct spf_conn *c = spf_milter_conn(ctx);
	if (name != NULL && value != NULL && strcasecmp(name, "Authentication-Results") == 0) {
		c->ar_seen++;
		if (filter_ar_claims(str_of(value), filter_common.authserv_id, "spf") &&
		    c->nar_ours < SPF_MAX_AR_SEEN)
			c->ar_ours[c->nar_ours++] = c->ar_seen;
	}
	return SMFIS_CONTINUE;
}

/* Append s as a quoted-string (printable ASCII kept, others dropped). */
static void spf_milter_quoted(struct buf *b, const char *s)
{
	buf_putc(b, '"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < ' ' || ch > '~')
			continue;
		if (ch == '"' || ch == '\\')
			buf_putc(b, '\\');
		buf_putc(b, (char)ch);
	}
	buf_putc(b, '"');
}

/* A token as RFC 8601 wants it, or a quoted string. */
static void spf_milter_value(struct buf *b, const char *s)
{
	bool token = *s != '\0';
	for (const char *p = s; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= ' ' || ch >= 0x7f || strchr("()<>,;:\\\"[]?=", ch))
			token = false;
	}
	if (token)
		buf_puts(b, s);
	else
		spf_milter_quoted(b, s);
}

static sfsistat spf_milter_eom(SMFICTX *ctx)
{
	struct spf_conn *c = spf_milter_conn(ctx);
	for (size_t i = c->nar_ours; i > 0; i--)
		smfi_chgheader(ctx, "Authentication-Results", (int)c->ar_ours[i - 1], NULL);
	if (!c->checked)
		goto out;
	const struct spf_eval *r = &c->from_res;
	bool null_sender = c->sender[0] == '\0';
	const char *sp = c->leadspc ? " " : "";
	if (spf_settings.received_spf) {
		/* RFC 7208 §9.1 */
		struct buf v;
		buf_init(&v, 4096);
		buf_printf(&v, "%s%s (%s: %s) client-ip=%s; envelope-from=", sp,
			   spf_eval_name(r->result), filter_common.authserv_id, r->comment,
			   c->client);
		spf_milter_quoted(&v, c->sender);
		buf_puts(&v, "; helo=");
		spf_milter_value(&v, c->helo ? c->helo : "");
		buf_printf(&v, "; receiver=%s; identity=%s;", filter_common.authserv_id,
			   null_sender ? "helo" : "mailfrom");
		smfi_insheader(ctx, 0, "Received-SPF", (char *)buf_cstr(&v));
		buf_free(&v);
	}
	struct buf ar;
	buf_init(&ar, 4096);
	buf_printf(&ar, "%s%s;", sp, filter_common.authserv_id);
	if (!null_sender) {
		buf_printf(&ar, "\n\tspf=%s", spf_eval_name(r->result));
		buf_puts(&ar, " smtp.mailfrom=");
		/* the address when it is a plain token, else its domain */
		bool plain = true;
		for (const char *p = c->sender; *p; p++)
			if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
			    strchr("()<>,;:\\\"[]?=", *p))
				plain = false;
		spf_milter_value(&ar, plain ? c->sender : r->domain);
	}
	if (c->helo_done && (null_sender || spf_settings.helo_check ||
			     spf_settings.reject_helo_fail)) {
		buf_printf(&ar, "%s\n\tspf=%s smtp.helo=", null_sender ? "" : ";",
			   spf_eval_name(c->helo_res.result));
		spf_milter_value(&ar, c->helo ? c->helo : "");
	}
	smfi_insheader(ctx, 0, "Authentication-Results", (char *)buf_cstr(&ar));
	buf_free(&ar);
out:
	spf_milter_reset_msg(c);
	return SMFIS_ACCEPT;
}

static sfsistat spf_milter_abort(SMFICTX *ctx)
{
	struct spf_conn *c = smfi_getpriv(ctx);
	if (c != NULL)
		spf_milter_reset_msg(c);
	return SMFIS_CONTINUE;
}

static sfsistat spf_milter_close(SMFICTX *ctx)
{
	struct spf_conn *c = smfi_getpriv(ctx);
	if (c != NULL) {
		spf_milter_reset_msg(c);
		free(c->helo);
		free(c);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

struct smfiDesc spf_milter = {
	.xxfi_name = "postern-spf",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
	.xxfi_connect = spf_milter_connect,
	.xxfi_helo = spf_milter_helo,
	.xxfi_envfrom = spf_milter_envfrom,
	.xxfi_header = spf_milter_header,
	.xxfi_eom = spf_milter_eom,
	.xxfi_abort = spf_milter_abort,
	.xxfi_close = spf_milter_close,
	.xxfi_negotiate = spf_milter_negotiate,
};
