/*
 * dmarc_milter.c - postern-dmarc's libmilter callbacks (see dmarc_milter.h).
 *
 * Purpose: per message, find the From domain, its DMARC record (own DNS
 * lookups through filter_dns, organisational domain from the public suffix
 * list), the trusted SPF and DKIM results, and let libopendmarc decide.
 * Owns: per-connection state (smfi_setpriv).
 * Never: trusts Authentication-Results from an authserv-id not listed in
 * TrustedAuthservIDs; keeps a field claiming our id with a dmarc result
 * (RFC 8601 §5); evaluates a message with no or several From fields or
 * addresses (RFC 7489 §6.6.1: permerror, or rejected by BadFromAction).
 * Limits: FILTER_AR_MAX_RESULTS per A-R field, DMARC_MAX_RESULTS per message.
 * Tests: tests/interop/test_filter_dmarc.py.
 */
#include <arpa/nameser.h>
#include <dmarc.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "filters/common/filter_ar.h"
#include "filters/common/filter_dns.h"
#include "filters/common/filter_hdr.h"
#include "filters/common/filter_main.h"
#include "filters/common/filter_net.h"
#include "filters/dmarc/dmarc_milter.h"
#include "filters/spf/spf_eval.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/common.h"

#define DMARC_MAX_RESULTS 64 /* SPF/DKIM results kept per message */
#define DMARC_MAX_AR_SEEN 64

/* libopendmarc exports this without declaring it in dmarc.h */
int opendmarc_get_tld(u_char *domain, u_char *tld, size_t tld_len);

struct dmarc_conn {
	struct sockaddr_storage addr; /* client address (SPFSelfValidate) */
	bool have_addr;          /* addr is set */
	char *helo;              /* HELO argument, owned (SPFSelfValidate) */
	char *sender;            /* MAIL FROM without <>, owned (SPFSelfValidate) */
	bool internal;           /* client in InternalHosts */
	bool leadspc;            /* SMFIP_HDR_LEADSPC negotiated */
	char client[64];         /* client address text */
	int family;              /* 4 or 6 */
	/* per message */
	bool auth;               /* authenticated sender */
	int from_count;          /* From fields */
	char *from_value;        /* first From body, owned */
	struct filter_ar_result results[DMARC_MAX_RESULTS]; /* trusted results */
	size_t nresults;         /* entries */
	unsigned ar_seen;        /* A-R fields so far */
	unsigned ar_ours[DMARC_MAX_AR_SEEN]; /* indexes to delete */
	size_t nar_ours;         /* entries */
};

static struct dmarc_conn *dmarc_milter_conn(SMFICTX *ctx)
{
	struct dmarc_conn *c = smfi_getpriv(ctx);
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		snprintf(c->client, sizeof(c->client), "0.0.0.0");
		c->family = 4;
		smfi_setpriv(ctx, c);
	}
	return c;
}

static void dmarc_milter_reset(struct dmarc_conn *c)
{
	free(c->sender);
	c->sender = NULL;
	free(c->from_value);
	c->from_value = NULL;
	c->from_count = 0;
	c->nresults = 0;
	c->ar_seen = 0;
	c->nar_ours = 0;
	c->auth = false;
}

static sfsistat dmarc_milter_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
				       unsigned long f2, unsigned long f3, unsigned long *pf0,
				       unsigned long *pf1, unsigned long *pf2,
				       unsigned long *pf3)
{
	unsigned long want = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
	if ((f0 & want) != want)
		return SMFIS_REJECT;
	*pf0 = want;
	*pf1 = f1 & (SMFIP_NORCPT | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_NOBODY |
		     SMFIP_HDR_LEADSPC | (dmarc_settings.spf_self ? 0 : SMFIP_NOHELO));
	*pf2 = *pf3 = 0;
	dmarc_milter_conn(ctx)->leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
	return SMFIS_CONTINUE;
}

static sfsistat dmarc_milter_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
	struct dmarc_conn *c = dmarc_milter_conn(ctx);
	if (sa != NULL && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
		filter_net_ntop(sa, c->client, sizeof(c->client));
		c->family = strchr(c->client, ':') ? 6 : 4;
		memcpy(&c->addr, sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
							       : sizeof(struct sockaddr_in6));
		c->have_addr = true;
		c->internal = filter_netlist_match(&filter_common.internal, sa);
	}
	return SMFIS_CONTINUE;
}

static sfsistat dmarc_milter_helo(SMFICTX *ctx, char *helo)
{
	struct dmarc_conn *c = dmarc_milter_conn(ctx);
	free(c->helo);
	c->helo = xstrdup(helo ? helo : "");
	return SMFIS_CONTINUE;
}

static sfsistat dmarc_milter_envfrom(SMFICTX *ctx, char **argv)
{
	struct dmarc_conn *c = dmarc_milter_conn(ctx);
	dmarc_milter_reset(c);
	const char *auth = smfi_getsymval(ctx, "{auth_authen}");
	c->auth = auth != NULL && *auth != '\0';
	const char *a = argv && argv[0] ? argv[0] : "";
	size_t n = strlen(a);
	c->sender = n >= 2 && a[0] == '<' && a[n - 1] == '>' ? xmemdup(a + 1, n - 2) : xstrdup(a);
	return SMFIS_CONTINUE;
}

/* SPFSelfValidate: when no trusted SPF result came, check it here. */
static void dmarc_milter_self_spf(struct dmarc_conn *c)
{
	if (!dmarc_settings.spf_self || !c->have_addr || c->nresults == DMARC_MAX_RESULTS)
		return;
	for (size_t i = 0; i < c->nresults; i++)
		if (strcmp(c->results[i].method, "spf") == 0)
			return;
	const char *helo = c->helo ? c->helo : "";
	const char *sender = c->sender ? c->sender : "";
	struct spf_eval ev;
	spf_eval_check((struct sockaddr *)&c->addr, helo, sender, &ev);
	struct filter_ar_result *r = &c->results[c->nresults];
	memset(r, 0, sizeof(*r));
	snprintf(r->method, sizeof(r->method), "spf");
	snprintf(r->result, sizeof(r->result), "%s", spf_eval_name(ev.result));
	snprintf(r->domain, sizeof(r->domain), "%s", ev.domain);
	r->helo = *sender == '\0';
	if (r->domain[0] != '\0')
		c->nresults++;
}

static bool dmarc_milter_trusted(const char *id)
{
	for (size_t i = 0; i < dmarc_settings.ntrusted; i++)
		if (strcasecmp(dmarc_settings.trusted[i], id) == 0)
			return true;
	return false;
}

static sfsistat dmarc_milter_header(SMFICTX *ctx, char *name, char *value)
{
	struct dmarc_conn *c = dmarc_milter_conn(ctx);
	if (name == NULL || value == NULL)
		return SMFIS_CONTINUE;
	if (strcasecmp(name, "From") == 0) {
		if (c->from_count++ == 0)
			c->from_value = xstrdup(value);
		return SMFIS_CONTINUE;
	}
	if (strcasecmp(name, "Authentication-Results") != 0)
		return SMFIS_CONTINUE;
	c->ar_seen++;
	if (filter_ar_claims(str_of(value), filter_common.authserv_id, "dmarc")) {
		if (c->nar_ours < DMARC_MAX_AR_SEEN)
			c->ar_ours[c->nar_ours++] = c->ar_seen;
		return SMFIS_CONTINUE;
	}
	struct filter_ar *ar = xmalloc(sizeof(*ar));
	if (filter_ar_parse(str_of(value), ar) == 0 && dmarc_milter_trusted(ar->authserv_id)) {
		for (size_t i = 0; i < ar->n && c->nresults < DMARC_MAX_RESULTS; i++) {
			if ((strcmp(ar->v[i].method, "spf") == 0 ||
			     strcmp(ar->v[i].method, "dkim") == 0) &&
			    ar->v[i].domain[0] != '\0')
				c->results[c->nresults++] = ar->v[i];
		}
	}
	free(ar);
	return SMFIS_CONTINUE;
}

int dmarc_milter_parse(const unsigned char *ans, size_t len, char *rec, size_t reclen)
{
	ns_msg msg;
	if (ns_initparse(ans, (int)len, &msg) < 0)
		return DMARC_LOOKUP_TEMP;
	int rcode = ns_msg_getflag(msg, ns_f_rcode);
	if (rcode == ns_r_nxdomain)
		return DMARC_LOOKUP_NONE;
	if (rcode != ns_r_noerror)
		return DMARC_LOOKUP_TEMP;
	int found = 0;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
		ns_rr r;
		if (ns_parserr(&msg, ns_s_an, i, &r) < 0)
			break;
		if (ns_rr_type(r) != ns_t_txt)
			continue;
		const unsigned char *rd = ns_rr_rdata(r);
		size_t rdl = ns_rr_rdlen(r), k = 0, n = 0;
		char text[1024];
		bool nul = false, fits = true;
		while (k < rdl) {
			size_t l = rd[k++];
			if (l > rdl - k)
				l = rdl - k;
			if (n + l >= sizeof(text))
				fits = false;
			else
				memcpy(text + n, rd + k, l);
			if (memchr(rd + k, '\0', l) != NULL)
				nul = true;
			n += l;
			k += l;
		}
		/* §6.6.3: records not starting with v=DMARC1 are discarded */
		if (!fits || nul || n < 8 || strncmp(text, "v=DMARC1", 8) != 0 ||
		    (n > 8 && text[8] != ';' && text[8] != ' ' && text[8] != '\t'))
			continue;
		text[n] = '\0';
		if (++found == 1)
			snprintf(rec, reclen, "%s", text);
	}
	return found == 1 ? DMARC_LOOKUP_FOUND : DMARC_LOOKUP_NONE;
}

/* Look up the one DMARC record at _dmarc.<domain>. */
static enum dmarc_lookup dmarc_milter_lookup(const char *domain, char *rec, size_t reclen)
{
	char name[NS_MAXDNAME];
	if ((size_t)snprintf(name, sizeof(name), "_dmarc.%s", domain) >= sizeof(name))
		return DMARC_LOOKUP_NONE;
	unsigned char *ans = xmalloc(FILTER_DNS_MAX_ANSWER);
	size_t len = 0;
	enum filter_dns_status st =
		filter_dns_query(&filter_common.dns, name, ns_t_txt, ans, FILTER_DNS_MAX_ANSWER, &len);
	enum dmarc_lookup res;
	if (st == FILTER_DNS_OK)
		res = (enum dmarc_lookup)dmarc_milter_parse(ans, len, rec, reclen);
	else
		res = st == FILTER_DNS_ERROR && len == 0 ? DMARC_LOOKUP_NONE : DMARC_LOOKUP_TEMP;
	free(ans);
	return res;
}

/* The organisational domain (RFC 7489 §3.2) into out: the public suffix
 * list through libopendmarc, else (a name under a suffix the list does not
 * know, such as .test) the last two labels, the list's default rule. */
static void dmarc_milter_org(const char *domain, char *out, size_t outlen)
{
	out[0] = '\0';
	if (opendmarc_get_tld((u_char *)domain, (u_char *)out, outlen) != 0 || out[0] == '\0' ||
	    strlen(out) > strlen(domain)) {
		const char *last = strrchr(domain, '.');
		const char *p = domain;
		if (last != NULL) {
			for (const char *q = domain; q < last; q++)
				if (*q == '.')
					p = q + 1;
		}
		snprintf(out, outlen, "%s", p);
	}
}

/* Identifier alignment (§3.1): 's' strict = same domain, else the same
 * organisational domain. */
static bool dmarc_milter_aligned(int mode, const char *a, const char *b)
{
	if (strcasecmp(a, b) == 0)
		return true;
	if (mode == DMARC_RECORD_A_STRICT)
		return false;
	char oa[NS_MAXDNAME], ob[NS_MAXDNAME];
	dmarc_milter_org(a, oa, sizeof(oa));
	dmarc_milter_org(b, ob, sizeof(ob));
	return strcasecmp(oa, ob) == 0;
}

static const char *dmarc_milter_policy(int p)
{
	switch (p) {
	case DMARC_RECORD_P_NONE:
		return "none";
	case DMARC_RECORD_P_QUARANTINE:
		return "quarantine";
	case DMARC_RECORD_P_REJECT:
		return "reject";
	default:
		return "unspecified";
	}
}

static void dmarc_milter_history(const struct dmarc_conn *c, const char *from,
				 const char *result, const char *p, const char *dis)
{
	if (dmarc_settings.history_fd < 0)
		return;
	struct buf line;
	buf_init(&line, 4096);
	buf_printf(&line, "time=%lld client=%s from=%s result=%s policy=%s disposition=%s",
		   (long long)time(NULL), c->client, from, result, p, dis);
	for (size_t i = 0; i < c->nresults; i++)
		buf_printf(&line, " %s=%s:%s", c->results[i].method, c->results[i].result,
			   c->results[i].domain);
	buf_putc(&line, '\n');
	/* one write() per record (O_APPEND) so threads never interleave */
	if (write(dmarc_settings.history_fd, line.data, line.len) != (ssize_t)line.len)
		log_warning("HistoryFile: write failed: %s", strerror(errno));
	buf_free(&line);
}

/* Insert our A-R: "<id>; dmarc=<result> (<comment>) header.from=<domain>". */
static void dmarc_milter_ar(SMFICTX *ctx, struct dmarc_conn *c, const char *result,
			    const char *comment, const char *from)
{
	struct buf ar;
	buf_init(&ar, 2048);
	buf_printf(&ar, "%s%s;\n\tdmarc=%s", c->leadspc ? " " : "", filter_common.authserv_id,
		   result);
	if (comment && *comment)
		buf_printf(&ar, " (%s)", comment);
	if (from && *from)
		buf_printf(&ar, " header.from=%s", from);
	smfi_insheader(ctx, 0, "Authentication-Results", (char *)buf_cstr(&ar));
	buf_free(&ar);
}

static sfsistat dmarc_milter_eom(SMFICTX *ctx)
{
	struct dmarc_conn *c = dmarc_milter_conn(ctx);
	sfsistat ret = SMFIS_ACCEPT;
	DMARC_POLICY_T *pctx = NULL;
	for (size_t i = c->nar_ours; i > 0; i--)
		smfi_chgheader(ctx, "Authentication-Results", (int)c->ar_ours[i - 1], NULL);
	if (c->internal || c->auth)
		goto out;
	const char *qid = smfi_getsymval(ctx, "i");
	if (qid == NULL)
		qid = "NOQUEUE";
	/* RFC 7489 §6.6.1: exactly one From with exactly one address */
	struct buf addr, dom;
	buf_init(&addr, FILTER_HDR_ADDR_MAX);
	buf_init(&dom, FILTER_HDR_ADDR_MAX);
	const char *bad = NULL;
	if (c->from_count == 0)
		bad = "no From field";
	else if (c->from_count > 1)
		bad = "several From fields";
	else {
		switch (filter_hdr_from(str_of(c->from_value), &addr, &dom)) {
		case FILTER_FROM_ONE:
			break;
		case FILTER_FROM_MANY:
			bad = "several From addresses";
			break;
		default:
			bad = "no usable From address";
			break;
		}
	}
	if (bad != NULL) {
		log_info("%s: DMARC: %s", qid, bad);
		if (dmarc_settings.reject_bad_from) {
			smfi_setreply(ctx, "550", "5.7.1",
				      "message needs exactly one From address (RFC 5322, RFC 7489)");
			ret = SMFIS_REJECT;
		} else {
			dmarc_milter_ar(ctx, c, "permerror", bad, NULL);
		}
		goto out_buf;
	}
	/* RFC 8616 §5: a From domain in U-labels is looked up and aligned as
	 * its A-labels; one that cannot be converted is not a usable domain
	 * (§6.6.1: permerror, as for any malformed From) */
	struct buf ace;
	buf_init(&ace, NS_MAXDNAME);
	if (filter_hdr_domain_ascii(buf_str(&dom), &ace) < 0) {
		buf_free(&ace);
		log_info("%s: DMARC: From domain not usable", qid);
		if (dmarc_settings.reject_bad_from) {
			smfi_setreply(ctx, "550", "5.7.1",
				      "message needs a usable From domain (RFC 7489, RFC 8616)");
			ret = SMFIS_REJECT;
		} else {
			dmarc_milter_ar(ctx, c, "permerror", "From domain not usable", NULL);
		}
		goto out_buf;
	}
	buf_reset(&dom);
	buf_append(&dom, ace.data, ace.len);
	buf_free(&ace);
	const char *from = buf_cstr(&dom);
	dmarc_milter_self_spf(c);
	char rec[1024];
	char org[NS_MAXDNAME] = "";
	bool at_org = false;
	enum dmarc_lookup lk = dmarc_milter_lookup(from, rec, sizeof(rec));
	if (lk == DMARC_LOOKUP_NONE) {
		dmarc_milter_org(from, org, sizeof(org));
		if (strcasecmp(org, from) != 0) {
			/* §6.6.3: then the organisational domain's record */
			lk = dmarc_milter_lookup(org, rec, sizeof(rec));
			at_org = true;
		}
	}
	if (lk == DMARC_LOOKUP_TEMP) {
		log_info("%s: DMARC: DNS failure for %s", qid, from);
		if (dmarc_settings.tempfail_temperror) {
			smfi_setreply(ctx, "451", "4.7.5", "DMARC policy lookup failed, try again later");
			ret = SMFIS_TEMPFAIL;
		} else {
			dmarc_milter_ar(ctx, c, "temperror", NULL, from);
		}
		goto out_buf;
	}
	if (lk == DMARC_LOOKUP_NONE) {
		dmarc_milter_ar(ctx, c, "none", NULL, from);
		dmarc_milter_history(c, from, "none", "none", "none");
		goto out_buf;
	}
	/* libopendmarc parses the record; alignment and disposition are ours
	 * (its alignment test treats two names under an unlisted suffix as
	 * aligned, and it keeps only the last SPF result stored) */
	pctx = opendmarc_policy_connect_init((u_char *)c->client,
					     c->family == 6 ? DMARC_POLICY_IP_TYPE_IPV6
							    : DMARC_POLICY_IP_TYPE_IPV4);
	if (pctx == NULL) {
		log_error("%s: libopendmarc context failed", qid);
		goto out_buf;
	}
	if (opendmarc_policy_store_dmarc(pctx, (u_char *)rec, (u_char *)from,
					 at_org ? (u_char *)org : NULL) != DMARC_PARSE_OKAY) {
		/* an unusable record counts as no record (§6.6.3) */
		dmarc_milter_ar(ctx, c, "none", "invalid DMARC record", from);
		goto out_buf;
	}
	int p = 0, sp = 0, pct = 100, adkim = 0, aspf = 0;
	opendmarc_policy_fetch_p(pctx, &p);
	opendmarc_policy_fetch_sp(pctx, &sp);
	opendmarc_policy_fetch_pct(pctx, &pct);
	opendmarc_policy_fetch_adkim(pctx, &adkim);
	opendmarc_policy_fetch_aspf(pctx, &aspf);
	/* the SPF result: MAIL FROM's, or HELO's for the null sender */
	const struct filter_ar_result *spf = NULL;
	for (size_t i = 0; i < c->nresults; i++)
		if (strcmp(c->results[i].method, "spf") == 0 && (spf == NULL || spf->helo))
			spf = &c->results[i];
	bool pass = spf != NULL && strcmp(spf->result, "pass") == 0 &&
		    dmarc_milter_aligned(aspf, spf->domain, from);
	for (size_t i = 0; i < c->nresults && !pass; i++) {
		const struct filter_ar_result *r = &c->results[i];
		if (strcmp(r->method, "dkim") == 0 && strcmp(r->result, "pass") == 0 &&
		    dmarc_milter_aligned(adkim, r->domain, from))
			pass = true;
	}
	/* §6.6.3: sp= for a subdomain whose policy came from its org domain */
	int policy = at_org && sp != DMARC_RECORD_P_UNSPECIFIED ? sp : p;
	const char *result = pass ? "pass" : "fail";
	const char *dis = "none";
	if (!pass && policy == DMARC_RECORD_P_REJECT)
		dis = "reject";
	else if (!pass && policy == DMARC_RECORD_P_QUARANTINE)
		dis = "quarantine";
	/* §6.6.4: pct < 100 applies the policy to that share of failing mail;
	 * the rest gets the next weaker disposition */
	if (strcmp(dis, "none") != 0 && pct < 100) {
		unsigned int r = 0;
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (unsigned int)time(NULL);
		if ((int)(r % 100) >= pct)
			dis = strcmp(dis, "reject") == 0 ? "quarantine" : "none";
	}
	char comment[128];
	snprintf(comment, sizeof(comment), "p=%s%s%s pct=%d dis=%s", dmarc_milter_policy(p),
		 sp ? " sp=" : "", sp ? dmarc_milter_policy(sp) : "", pct, dis);
	log_info("%s: DMARC %s: from=%s %s", qid, result, from, comment);
	dmarc_milter_history(c, from, result, dmarc_milter_policy(p), dis);
	if (strcmp(dis, "reject") == 0 && dmarc_settings.reject) {
		char text[400];
		snprintf(text, sizeof(text), "rejected by DMARC policy for %s", from);
		smfi_setreply(ctx, "550", "5.7.1", text);
		ret = SMFIS_REJECT;
		goto out_buf;
	}
	if (strcmp(dis, "quarantine") == 0 && dmarc_settings.quarantine) {
		char text[400];
		snprintf(text, sizeof(text), "DMARC policy of %s", from);
		smfi_quarantine(ctx, text);
	}
	dmarc_milter_ar(ctx, c, result, comment, from);
out_buf:
	buf_free(&addr);
	buf_free(&dom);
out:
	if (pctx != NULL)
		opendmarc_policy_connect_shutdown(pctx);
	dmarc_milter_reset(c);
	return ret;
}

static sfsistat dmarc_milter_abort(SMFICTX *ctx)
{
	struct dmarc_conn *c = smfi_getpriv(ctx);
	if (c != NULL)
		dmarc_milter_reset(c);
	return SMFIS_CONTINUE;
}

static sfsistat dmarc_milter_close(SMFICTX *ctx)
{
	struct dmarc_conn *c = smfi_getpriv(ctx);
	if (c != NULL) {
		dmarc_milter_reset(c);
		free(c->helo);
		free(c);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

struct smfiDesc dmarc_milter = {
	.xxfi_name = "postern-dmarc",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE,
	.xxfi_connect = dmarc_milter_connect,
	.xxfi_helo = dmarc_milter_helo,
	.xxfi_envfrom = dmarc_milter_envfrom,
	.xxfi_header = dmarc_milter_header,
	.xxfi_eom = dmarc_milter_eom,
	.xxfi_abort = dmarc_milter_abort,
	.xxfi_close = dmarc_milter_close,
	.xxfi_negotiate = dmarc_milter_negotiate,
};
