/*
 * dkim_milter.c - postern-dkim's libmilter callbacks (see dkim_milter.h).
 *
 * Purpose: per connection, decide sign or verify; per message, feed the
 * header fields and body to libopendkim and add DKIM-Signature or
 * Authentication-Results at end of message.
 * Owns: the per-connection and per-message state (smfi_setpriv).
 * Never: keeps an Authentication-Results field that claims our authserv-id
 * with a dkim result (RFC 8601 §5: such fields are deleted); signs for a client that is neither
 * internal nor authenticated; signs a message with no or several From fields;
 * copies signature tags into our header without quoting them.
 * Limits: MaximumHeaders, MaximumHeaderBytes (past them the message is not
 * signed, and is reported dkim=permerror).
 * Tests: tests/unit/filters/dkim_milter_test.c, tests/interop/test_filter_dkim.py,
 * tests/interop/filter_dkim_*.lua (miltertest).
 */
#include <strings.h>

#include "filters/common/filter_ar.h"
#include "filters/common/filter_hdr.h"
#include "filters/common/filter_main.h"
#include "filters/common/filter_net.h"
#include "filters/dkim/dkim_milter.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/common.h"

#define DKIM_AR_MAX (64 * 1024) /* our Authentication-Results value */
#define DKIM_MAX_AR_SEEN 64     /* foreign-or-ours A-R fields remembered */

struct dkim_msg {
	bool auth;              /* {auth_authen} was set at MAIL */
	char **hdrs;            /* owned "Name:value" fields, CRLF-folded */
	size_t nhdrs;           /* entries in hdrs */
	size_t hdr_bytes;       /* sum of field sizes */
	bool overflow;          /* a header limit was passed */
	unsigned ar_seen;       /* Authentication-Results fields so far */
	unsigned ar_ours[DKIM_MAX_AR_SEEN]; /* 1-based indexes claiming our id */
	size_t nar_ours;        /* entries in ar_ours */
	int from_count;         /* From fields seen */
	char *from_value;       /* first From value, owned */
	DKIM *dkim;             /* libopendkim handle, or NULL */
	bool signing;           /* dkim is a signing handle */
	bool nosig;             /* verifying, and the message has no signature */
	DKIM_STAT eoh_status;   /* what dkim_eoh said */
	struct dkim_keys *keys;  /* the key set in use when signing began (a reference) */
	const struct dkim_key *key; /* the signing key, borrowed from keys */
	char qid[64];           /* queue ID for logs, "NOQUEUE" when unknown */
};

struct dkim_conn {
	bool internal;            /* client in InternalHosts */
	bool leadspc;             /* SMFIP_HDR_LEADSPC was negotiated */
	char client[64];          /* client address for logs */
	struct dkim_msg *msg;     /* current message, or NULL */
};

static void dkim_milter_msg_free(struct dkim_msg **mp)
{
	struct dkim_msg *m = *mp;
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nhdrs; i++)
		free(m->hdrs[i]);
	free(m->hdrs);
	free(m->from_value);
	if (m->dkim)
		dkim_free(m->dkim);
	dkim_keys_release(&m->keys);
	free(m);
	*mp = NULL;
}

static struct dkim_conn *dkim_milter_conn(SMFICTX *ctx)
{
	struct dkim_conn *c = smfi_getpriv(ctx);
	if (c == NULL) {
		/* a stage negotiated away or a restarted session: start fresh */
		c = xcalloc(1, sizeof(*c));
		snprintf(c->client, sizeof(c->client), "unknown");
		smfi_setpriv(ctx, c);
	}
	return c;
}

static sfsistat dkim_milter_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
			       unsigned long f2, unsigned long f3, unsigned long *pf0,
			       unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	unsigned long want_act = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
	if ((f0 & want_act) != want_act)
		return SMFIS_REJECT; /* cannot do our job: libmilter then fails the session */
	*pf0 = want_act;
	/* stages we do not need, and exact header values (leading space kept) */
	*pf1 = f1 & (SMFIP_NOHELO | SMFIP_NORCPT | SMFIP_NOUNKNOWN | SMFIP_NODATA |
		     SMFIP_HDR_LEADSPC);
	*pf2 = 0;
	*pf3 = 0;
	struct dkim_conn *c = dkim_milter_conn(ctx);
	c->leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
	return SMFIS_CONTINUE;
}

static sfsistat dkim_milter_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *sa)
{
	struct dkim_conn *c = dkim_milter_conn(ctx);
	c->internal = sa != NULL && filter_netlist_match(&filter_common.internal, sa);
	if (sa != NULL)
		filter_net_ntop(sa, c->client, sizeof(c->client));
	return SMFIS_CONTINUE;
}

static sfsistat dkim_milter_envfrom(SMFICTX *ctx, char **argv)
{
	struct dkim_conn *c = dkim_milter_conn(ctx);
	dkim_milter_msg_free(&c->msg);
	c->msg = xcalloc(1, sizeof(*c->msg));
	const char *auth = smfi_getsymval(ctx, "{auth_authen}");
	c->msg->auth = auth != NULL && *auth != '\0';
	snprintf(c->msg->qid, sizeof(c->msg->qid), "NOQUEUE");
	return SMFIS_CONTINUE;
}

/* "Name:value" with bare LF turned into CRLF, as libopendkim wants. */
static char *dkim_milter_field(const char *name, const char *value, bool leadspc, size_t *len_r)
{
	struct buf b;
	buf_init(&b, SIZE_MAX / 2);
	buf_puts(&b, name);
	buf_putc(&b, ':');
	if (!leadspc)
		buf_putc(&b, ' '); /* the MTA removed exactly one space */
	for (const char *p = value; *p; p++) {
		if (*p == '\n' && (p == value || p[-1] != '\r'))
			buf_putc(&b, '\r');
		buf_putc(&b, *p);
	}
	*len_r = b.len;
	char *s = b.data ? b.data : xstrdup("");
	return s;
}

static sfsistat dkim_milter_header(SMFICTX *ctx, char *name, char *value)
{
	struct dkim_conn *c = dkim_milter_conn(ctx);
	struct dkim_msg *m = c->msg;
	if (m == NULL || name == NULL || value == NULL)
		return SMFIS_CONTINUE;
	if (strcasecmp(name, "Authentication-Results") == 0) {
		m->ar_seen++;
		if (filter_ar_claims(str_of(value), filter_common.authserv_id, "dkim") &&
		    m->nar_ours < DKIM_MAX_AR_SEEN)
			m->ar_ours[m->nar_ours++] = m->ar_seen;
	}
	if (strcasecmp(name, "From") == 0) {
		if (m->from_count++ == 0)
			m->from_value = xstrdup(value);
	}
	if (m->overflow)
		return SMFIS_CONTINUE;
	size_t len;
	char *f = dkim_milter_field(name, value, c->leadspc, &len);
	size_t total;
	if (m->nhdrs + 1 > dkim_settings.max_headers || !size_add(m->hdr_bytes, len, &total) ||
	    total > dkim_settings.max_header_bytes) {
		free(f);
		m->overflow = true;
		return SMFIS_CONTINUE;
	}
	m->hdr_bytes = total;
	if (m->nhdrs % 32 == 0)
		m->hdrs = xreallocarray(m->hdrs, m->nhdrs + 32, sizeof(*m->hdrs));
	m->hdrs[m->nhdrs++] = f;
	return SMFIS_CONTINUE;
}

/* Pick the signing key, or NULL: internal or authenticated client, exactly
 * one From with one address, and a key for it. */
static const struct dkim_key *dkim_milter_key(struct dkim_conn *c, struct dkim_msg *m)
{
	if (!dkim_settings.sign || !(c->internal || m->auth))
		return NULL;
	if (m->from_count != 1 || m->from_value == NULL)
		return NULL;
	struct buf addr, dom;
	buf_init(&addr, FILTER_HDR_ADDR_MAX);
	buf_init(&dom, FILTER_HDR_ADDR_MAX);
	const struct dkim_key *key = NULL;
	struct buf ace, aaddr;
	buf_init(&ace, FILTER_HDR_ADDR_MAX);
	buf_init(&aaddr, FILTER_HDR_ADDR_MAX * 2);
	/* RFC 8616 §3: a From domain in U-labels is matched as its A-labels
	 * (d= is always ASCII); one that cannot be converted is not signed */
	if (filter_hdr_from(str_of(m->from_value), &addr, &dom) == FILTER_FROM_ONE &&
	    filter_hdr_domain_ascii(buf_str(&dom), &ace) == 0) {
		/* the local part as written, then the A-label domain */
		buf_append(&aaddr, addr.data, addr.len - dom.len);
		buf_append(&aaddr, ace.data, ace.len);
		/* the set stays ours until the message is freed, whatever a
		 * reload (SIGHUP) installs meanwhile */
		m->keys = dkim_keys_acquire();
		key = m->keys ? dkim_keys_find(m->keys, buf_cstr(&aaddr), buf_cstr(&ace)) : NULL;
		if (key == NULL)
			dkim_keys_release(&m->keys);
	}
	buf_free(&addr);
	buf_free(&dom);
	buf_free(&ace);
	buf_free(&aaddr);
	return key;
}

static sfsistat dkim_milter_eoh(SMFICTX *ctx)
{
	struct dkim_conn *c = dkim_milter_conn(ctx);
	struct dkim_msg *m = c->msg;
	if (m == NULL)
		return SMFIS_CONTINUE;
	const char *qid = smfi_getsymval(ctx, "i");
	if (qid != NULL && *qid != '\0')
		snprintf(m->qid, sizeof(m->qid), "%s", qid);
	if (m->overflow) {
		log_warning("%s: header limits passed (%zu fields, %zu bytes): not processed",
			    m->qid, m->nhdrs, m->hdr_bytes);
		return SMFIS_CONTINUE;
	}
	DKIM_STAT st = DKIM_STAT_OK;
	m->key = dkim_milter_key(c, m);
	if (m->key != NULL) {
		dkim_alg_t alg = m->key->alg == DKIM_KEYS_ED25519 ? DKIM_SIGN_ED25519SHA256
								   : DKIM_SIGN_RSASHA256;
		m->dkim = dkim_sign(dkim_settings.lib, (const unsigned char *)m->qid, NULL,
				    (dkim_sigkey_t)m->key->pem,
				    (const unsigned char *)m->key->selector,
				    (const unsigned char *)m->key->domain, dkim_settings.hdr_canon,
				    dkim_settings.body_canon, alg, -1, &st);
		m->signing = true;
	} else if (dkim_settings.verify) {
		m->dkim = dkim_verify(dkim_settings.lib, (const unsigned char *)m->qid, NULL, &st);
	} else {
		return SMFIS_CONTINUE;
	}
	if (m->dkim == NULL) {
		log_error("%s: libopendkim handle: %s", m->qid, dkim_getresultstr(st));
		return SMFIS_CONTINUE;
	}
	for (size_t i = 0; i < m->nhdrs; i++) {
		/* a malformed field is the signature's problem, reported at eom */
		(void)dkim_header(m->dkim, (u_char *)m->hdrs[i], strlen(m->hdrs[i]));
	}
	m->eoh_status = dkim_eoh(m->dkim);
	if (!m->signing && m->eoh_status == DKIM_STAT_NOSIG)
		m->nosig = true;
	return SMFIS_CONTINUE;
}

static sfsistat dkim_milter_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct dkim_conn *c = dkim_milter_conn(ctx);
	struct dkim_msg *m = c->msg;
	if (m == NULL || m->dkim == NULL || m->nosig)
		return SMFIS_CONTINUE;
	if (!m->signing && m->eoh_status != DKIM_STAT_OK)
		return SMFIS_CONTINUE;
	(void)dkim_body(m->dkim, chunk, len);
	return SMFIS_CONTINUE;
}

/* Append s to b as an RFC 8601 value: a token when it is one, else a
 * quoted-string of its printable ASCII (signature tags are peer bytes). */
static void dkim_milter_ar_value(struct buf *b, const char *s)
{
	bool token = *s != '\0';
	for (const char *p = s; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= ' ' || ch >= 0x7f || strchr("()<>,;:\\\"[]?=", ch))
			token = false;
	}
	if (token) {
		buf_puts(b, s);
		return;
	}
	buf_putc(b, '"');
	for (const char *p = s; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch < ' ' || ch >= 0x7f)
			continue;
		if (ch == '"' || ch == '\\')
			buf_putc(b, '\\');
		buf_putc(b, (char)ch);
	}
	buf_putc(b, '"');
}

const char *dkim_milter_result(DKIM_SIGINFO *sig, const char **reason_r)
{
	unsigned int flags = dkim_sig_getflags(sig);
	int err = dkim_sig_geterror(sig);
	*reason_r = NULL;
	if (flags & DKIM_SIGFLAG_IGNORE) {
		*reason_r = "signature ignored";
		return "neutral";
	}
	if (DKIM_SIG_CHECK(sig)) {
		if (flags & DKIM_SIGFLAG_TESTKEY)
			*reason_r = "test key";
		return "pass";
	}
	switch (err) {
	case DKIM_SIGERROR_KEYFAIL:
		*reason_r = "key query failed";
		return "temperror";
	case DKIM_SIGERROR_NOKEY:
		*reason_r = "no key for signature";
		return "permerror";
	case DKIM_SIGERROR_KEYREVOKED:
		*reason_r = "key revoked";
		return "permerror";
	case DKIM_SIGERROR_KEYTOOSMALL:
		*reason_r = "key too small";
		return "policy";
	case DKIM_SIGERROR_BADSIG:
		*reason_r = "signature verification failed";
		return "fail";
	case DKIM_SIGERROR_EXPIRED:
		*reason_r = "signature expired";
		return "fail";
	case DKIM_SIGERROR_FUTURE:
		*reason_r = "signature in the future";
		return "fail";
	case DKIM_SIGERROR_OK:
		if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
			*reason_r = "body hash mismatch";
			return "fail";
		}
		*reason_r = "signature not verified";
		return "permerror";
	default: {
		const char *s = dkim_sig_geterrorstr(err);
		*reason_r = s ? s : "bad signature";
		return "permerror";
	}
	}
}

/* Build our Authentication-Results value; true when some result is
 * temperror. */
static bool dkim_milter_ar_build(struct dkim_conn *c, struct dkim_msg *m, struct buf *ar)
{
	bool temp = false;
	if (c->leadspc)
		buf_putc(ar, ' ');
	buf_puts(ar, filter_common.authserv_id);
	buf_putc(ar, ';');
	DKIM_SIGINFO **sigs = NULL;
	int nsigs = 0;
	if (m->overflow) {
		buf_puts(ar, "\n\tdkim=permerror (header too large)");
		return false;
	}
	if (m->nosig || m->dkim == NULL ||
	    dkim_getsiglist(m->dkim, &sigs, &nsigs) != DKIM_STAT_OK || nsigs == 0) {
		if (m->dkim != NULL && !m->nosig && m->eoh_status != DKIM_STAT_OK) {
			buf_printf(ar, "\n\tdkim=permerror (%s)", dkim_getresultstr(m->eoh_status));
			return false;
		}
		buf_puts(ar, " dkim=none");
		return false;
	}
	for (int i = 0; i < nsigs; i++) {
		const char *reason;
		const char *res = dkim_milter_result(sigs[i], &reason);
		if (strcmp(res, "temperror") == 0)
			temp = true;
		buf_printf(ar, "%s\n\tdkim=%s", i ? ";" : "", res);
		if (reason)
			buf_printf(ar, " (%s)", reason);
		const unsigned char *d = dkim_sig_getdomain(sigs[i]);
		const unsigned char *s = dkim_sig_getselector(sigs[i]);
		if (d != NULL) {
			buf_puts(ar, " header.d=");
			dkim_milter_ar_value(ar, (const char *)d);
		}
		if (s != NULL) {
			buf_puts(ar, " header.s=");
			dkim_milter_ar_value(ar, (const char *)s);
		}
		char b[64];
		size_t blen = sizeof(b);
		if (dkim_get_sigsubstring(m->dkim, sigs[i], b, &blen) == DKIM_STAT_OK &&
		    blen > 0 && blen < sizeof(b)) {
			b[blen] = '\0';
			buf_puts(ar, " header.b=");
			dkim_milter_ar_value(ar, b);
		}
		char esc[300];
		struct buf eb;
		buf_init(&eb, sizeof(esc));
		buf_escape(&eb, d ? (const char *)d : "", d ? strlen((const char *)d) : 0, 200);
		log_info("%s: DKIM verification: d=%s result=%s%s%s%s", m->qid, buf_cstr(&eb),
			 res, reason ? " (" : "", reason ? reason : "", reason ? ")" : "");
		buf_free(&eb);
	}
	return temp;
}

static sfsistat dkim_milter_eom(SMFICTX *ctx)
{
	struct dkim_conn *c = dkim_milter_conn(ctx);
	struct dkim_msg *m = c->msg;
	if (m == NULL)
		return SMFIS_ACCEPT;
	sfsistat ret = SMFIS_ACCEPT;
	/* RFC 8601 §5: remove fields that claim to come from us, last first
	 * so that the earlier indexes stay valid */
	for (size_t i = m->nar_ours; i > 0; i--) {
		if (smfi_chgheader(ctx, "Authentication-Results", (int)m->ar_ours[i - 1], NULL) !=
		    MI_SUCCESS)
			log_warning("%s: cannot delete a forged Authentication-Results", m->qid);
		else
			log_info("%s: deleted an Authentication-Results field claiming %s", m->qid,
				 filter_common.authserv_id);
	}
	if (m->signing && m->dkim != NULL) {
		DKIM_STAT st = dkim_eom(m->dkim, NULL);
		unsigned char *hdr = NULL;
		size_t len = 0;
		if (st == DKIM_STAT_OK)
			st = dkim_getsighdr_d(m->dkim, strlen("DKIM-Signature: "), &hdr, &len);
		if (st != DKIM_STAT_OK || hdr == NULL) {
			log_error("%s: signing failed: %s", m->qid, dkim_getresultstr(st));
			smfi_setreply(ctx, "451", "4.7.0", "DKIM signing failed, try again later");
			ret = SMFIS_TEMPFAIL;
			goto out;
		}
		struct buf v;
		buf_init(&v, len + 2);
		if (c->leadspc)
			buf_putc(&v, ' ');
		for (size_t i = 0; i < len; i++)
			if (hdr[i] != '\r')
				buf_putc(&v, (char)hdr[i]);
		if (smfi_insheader(ctx, 0, "DKIM-Signature", (char *)buf_cstr(&v)) != MI_SUCCESS)
			log_error("%s: cannot add DKIM-Signature", m->qid);
		else
			log_info("%s: DKIM-Signature field added (s=%s, d=%s)", m->qid,
				 m->key->selector, m->key->domain);
		buf_free(&v);
		goto out;
	}
	if (!dkim_settings.verify)
		goto out;
	if (m->dkim != NULL && !m->nosig && m->eoh_status == DKIM_STAT_OK)
		(void)dkim_eom(m->dkim, NULL); /* per-signature results follow */
	struct buf ar;
	buf_init(&ar, DKIM_AR_MAX);
	bool temp = dkim_milter_ar_build(c, m, &ar);
	if (temp && dkim_settings.tempfail) {
		smfi_setreply(ctx, "451", "4.7.5", "DKIM key lookup failed, try again later");
		ret = SMFIS_TEMPFAIL;
	} else if (smfi_insheader(ctx, 0, "Authentication-Results", (char *)buf_cstr(&ar)) !=
		   MI_SUCCESS) {
		log_error("%s: cannot add Authentication-Results", m->qid);
	}
	buf_free(&ar);
out:
	dkim_milter_msg_free(&c->msg);
	return ret;
}

static sfsistat dkim_milter_abort(SMFICTX *ctx)
{
	struct dkim_conn *c = smfi_getpriv(ctx);
	if (c != NULL)
		dkim_milter_msg_free(&c->msg);
	return SMFIS_CONTINUE;
}

static sfsistat dkim_milter_close(SMFICTX *ctx)
{
	struct dkim_conn *c = smfi_getpriv(ctx);
	if (c != NULL) {
		dkim_milter_msg_free(&c->msg);
		free(c);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

struct smfiDesc dkim_milter = {
	.xxfi_name = "postern-dkim",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS,
	.xxfi_connect = dkim_milter_connect,
	.xxfi_envfrom = dkim_milter_envfrom,
	.xxfi_header = dkim_milter_header,
	.xxfi_eoh = dkim_milter_eoh,
	.xxfi_body = dkim_milter_body,
	.xxfi_eom = dkim_milter_eom,
	.xxfi_abort = dkim_milter_abort,
	.xxfi_close = dkim_milter_close,
	.xxfi_negotiate = dkim_milter_negotiate,
};
