/*
 * spf_eval.c - SPF checks through libspf2 with a DNS layer of our own
 * (see spf_eval.h).
 *
 * Purpose: run check_host() for one identity and correct what libspf2
 * 1.2.10 gets wrong (shared/reference/peers.md lists the departures).
 * Owns: the libspf2 server and our DNS layer; per-thread counters.
 * Never: caches DNS answers; lets libspf2 read an SPF record that failed
 * spf_record_check; reports a result libspf2 reached after a limit was
 * passed; passes a loopback client unchecked (libspf2's "localhost" rule).
 * Limits: 10 DNS-querying terms, 2 void lookups, 10 PTR names (RFC 7208
 * §4.6.4, §5.5); SPF_RECORD_MAX per record.
 * Tests: tests/unit/filters/spf_eval_test.c, spf_record_test.c,
 * tests/fuzz/filter_dns_answer_fuzz.c, tests/interop/test_filter_spf.py.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>
#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "filters/common/filter_hdr.h"
#include "filters/spf/spf_eval.h"
#include "filters/spf/spf_record.h"
#include "lib/buf.h"
#include "lib/common.h"

#define SPF_EVAL_MAX_LOOKUPS 10
#define SPF_EVAL_MAX_VOIDS 2
#define SPF_EVAL_MAX_PTR 10
#define SPF_EVAL_FOLLOW_MAX 32 /* MX/PTR target names remembered */

/* What our DNS layer learnt during one check (per thread). */
struct spf_eval_state {
	unsigned queries;          /* DNS queries so far */
	unsigned lookups;          /* DNS-querying terms */
	unsigned voids;            /* NXDOMAIN or NODATA answers after the first query */
	unsigned temp;             /* queries that failed (timeout, SERVFAIL) */
	bool temp_last_txt;        /* the last query was a TXT that failed */
	const char *bad_record;    /* why an SPF record was refused, or NULL */
	char follow[SPF_EVAL_FOLLOW_MAX][NS_MAXDNAME]; /* names from MX/PTR answers */
	unsigned nfollow;          /* entries in follow */
};

static __thread struct spf_eval_state *spf_eval_st;
static SPF_server_t *spf_eval_server;
static SPF_dns_server_t *spf_eval_layer;
static const struct filter_dns *spf_eval_dns;

const char *spf_eval_name(enum spf_eval_result r)
{
	static const char *const names[] = {
		[SPF_EVAL_NONE] = "none",         [SPF_EVAL_NEUTRAL] = "neutral",
		[SPF_EVAL_PASS] = "pass",         [SPF_EVAL_FAIL] = "fail",
		[SPF_EVAL_SOFTFAIL] = "softfail", [SPF_EVAL_TEMPERROR] = "temperror",
		[SPF_EVAL_PERMERROR] = "permerror",
	};
	return (unsigned)r < ARRAY_LEN(names) ? names[r] : "permerror";
}

static bool eval_is_follow(struct spf_eval_state *st, const char *name)
{
	for (unsigned i = 0; i < st->nfollow; i++)
		if (strcasecmp(st->follow[i], name) == 0)
			return true;
	return false;
}

static void eval_add_follow(struct spf_eval_state *st, const char *name)
{
	if (st->nfollow < SPF_EVAL_FOLLOW_MAX)
		snprintf(st->follow[st->nfollow++], NS_MAXDNAME, "%s", name);
}

/* Store one answer datum into rr slot idx. */
static bool eval_rr_put(SPF_dns_rr_t *rr, int idx, const void *p, size_t n, bool text)
{
	if (SPF_dns_rr_buf_realloc(rr, idx, n + (text ? 1 : 0)) != SPF_E_SUCCESS)
		return false;
	memcpy(rr->rr[idx], p, n);
	if (text)
		((char *)rr->rr[idx])[n] = '\0';
	return true;
}

static SPF_dns_rr_t *eval_answer(SPF_dns_server_t *srv, struct spf_eval_state *st,
				 const char *domain, ns_type type, bool first,
				 enum filter_dns_status ds, const unsigned char *ans, size_t len);

static SPF_dns_rr_t *eval_lookup(SPF_dns_server_t *srv, const char *domain, ns_type type,
				 int should_cache)
{
	struct spf_eval_state *st = spf_eval_st;
	if (st == NULL)
		return SPF_dns_rr_new_init(srv, domain, type, 0, NO_RECOVERY);
	bool first = st->queries++ == 0;
	/* §4.6.4: include, a, mx, ptr, exists and redirect each count once;
	 * the A/AAAA lookups of MX and PTR targets do not */
	if (!first && (type == ns_t_txt || type == ns_t_mx || type == ns_t_ptr ||
		       ((type == ns_t_a || type == ns_t_aaaa) && !eval_is_follow(st, domain))))
		st->lookups++;
	st->temp_last_txt = false;
	unsigned char *ans = xmalloc(FILTER_DNS_MAX_ANSWER);
	size_t len = 0;
	enum filter_dns_status ds =
		filter_dns_query(spf_eval_dns, domain, type, ans, FILTER_DNS_MAX_ANSWER, &len);
	SPF_dns_rr_t *rr = eval_answer(srv, st, domain, type, first, ds, ans, len);
	free(ans);
	return rr;
}

/* Turn one reply (or its absence) into libspf2's answer, counting voids and
 * failures in st. ans holds peer bytes: every length is checked. */
static SPF_dns_rr_t *eval_answer(SPF_dns_server_t *srv, struct spf_eval_state *st,
				 const char *domain, ns_type type, bool first,
				 enum filter_dns_status ds, const unsigned char *ans, size_t len)
{
	SPF_dns_rr_t *rr = NULL;
	ns_msg msg;
	if (ds != FILTER_DNS_OK || ns_initparse(ans, (int)len, &msg) < 0) {
		if (ds == FILTER_DNS_ERROR && len == 0 && !filter_hdr_domain_ok(str_of(domain))) {
			/* a name no server could be asked about: it does not exist */
			rr = SPF_dns_rr_new_nxdomain(srv, domain);
			if (!first)
				st->voids++;
			goto out;
		}
		st->temp++;
		st->temp_last_txt = type == ns_t_txt;
		rr = SPF_dns_rr_new_init(srv, domain, type, 0, TRY_AGAIN);
		goto out;
	}
	int rcode = ns_msg_getflag(msg, ns_f_rcode);
	if (rcode == ns_r_nxdomain) {
		if (!first)
			st->voids++;
		rr = SPF_dns_rr_new_nxdomain(srv, domain);
		goto out;
	}
	if (rcode != ns_r_noerror) {
		st->temp++;
		st->temp_last_txt = type == ns_t_txt;
		rr = SPF_dns_rr_new_init(srv, domain, type, 0, TRY_AGAIN);
		goto out;
	}
	rr = SPF_dns_rr_new_init(srv, domain, type, 0, NETDB_SUCCESS);
	if (rr == NULL)
		goto out;
	int cnt = 0;
	int nans = ns_msg_count(msg, ns_s_an);
	struct buf rec;
	buf_init(&rec, SPF_RECORD_MAX * 2 + 64);
	for (int i = 0; i < nans; i++) {
		ns_rr r;
		if (ns_parserr(&msg, ns_s_an, i, &r) < 0)
			break;
		if (ns_rr_type(r) != type || ns_rr_class(r) != ns_c_in)
			continue; /* CNAMEs: the server followed them for us */
		const unsigned char *rd = ns_rr_rdata(r);
		size_t rdl = ns_rr_rdlen(r);
		char name[NS_MAXDNAME];
		bool ok = true;
		switch (type) {
		case ns_t_a:
			if (rdl != 4)
				continue;
			ok = eval_rr_put(rr, cnt, rd, 4, false);
			break;
		case ns_t_aaaa:
			if (rdl != 16)
				continue;
			ok = eval_rr_put(rr, cnt, rd, 16, false);
			break;
		case ns_t_mx:
			if (rdl < 3 || ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd + 2,
							  name, sizeof(name)) < 0)
				continue;
			eval_add_follow(st, name);
			ok = eval_rr_put(rr, cnt, name, strlen(name), true);
			break;
		case ns_t_ptr:
			if (cnt >= SPF_EVAL_MAX_PTR)
				continue; /* §5.5: names past the 10th are ignored */
			if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), rd, name,
					       sizeof(name)) < 0)
				continue;
			eval_add_follow(st, name);
			ok = eval_rr_put(rr, cnt, name, strlen(name), true);
			break;
		case ns_t_txt: {
			/* join the character-strings, keeping any NUL to judge it */
			struct buf t;
			buf_init(&t, 65536);
			for (size_t k = 0; k < rdl;) {
				size_t l = rd[k++];
				if (l > rdl - k)
					l = rdl - k;
				buf_append(&t, rd + k, l);
				k += l;
			}
			const char *why;
			if (spf_record_is_spf(t.data ? t.data : "", t.len)) {
				if (spf_record_check(t.data, t.len, &rec, &why) < 0) {
					st->bad_record = why;
					/* libspf2 still gets a record, one that fails */
					buf_reset(&rec);
					buf_puts(&rec, "v=spf1 ?all");
				}
				ok = eval_rr_put(rr, cnt, rec.data, rec.len, true);
			} else {
				/* not SPF: cut at a NUL, libspf2 reads C strings */
				size_t l = t.data ? strnlen(t.data, t.len) : 0;
				ok = eval_rr_put(rr, cnt, t.data ? t.data : "", l, true);
			}
			buf_free(&t);
			break;
		}
		default:
			continue;
		}
		if (!ok)
			break;
		cnt++;
	}
	buf_free(&rec);
	rr->num_rr = cnt;
	if (cnt == 0) {
		rr->herrno = NO_DATA;
		if (!first)
			st->voids++;
	}
out:
	return rr;
}

int spf_eval_answer_test(const char *domain, int type, const unsigned char *ans, size_t len,
			 char *first_txt, size_t first_txt_len, const char **bad_r)
{
	static SPF_dns_server_t dummy = { .name = "test" };
	struct spf_eval_state *st = xcalloc(1, sizeof(*st));
	SPF_dns_rr_t *rr = eval_answer(spf_eval_layer ? spf_eval_layer : &dummy, st, domain,
				       (ns_type)type, false, FILTER_DNS_OK, ans, len);
	int n = -1;
	if (rr != NULL) {
		n = rr->num_rr;
		if (first_txt_len > 0)
			first_txt[0] = '\0';
		if (type == ns_t_txt && n > 0 && first_txt_len > 0)
			snprintf(first_txt, first_txt_len, "%s", rr->rr[0]->txt);
		SPF_dns_rr_free(rr);
	}
	*bad_r = st->bad_record;
	free(st);
	return n;
}

static void eval_layer_free(SPF_dns_server_t *srv)
{
	free(srv);
}

int spf_eval_init(const struct filter_dns *dns, const char *receiver, const char **error_r)
{
	spf_eval_dns = dns;
	spf_eval_layer = xcalloc(1, sizeof(*spf_eval_layer));
	spf_eval_layer->destroy = eval_layer_free;
	spf_eval_layer->lookup = eval_lookup;
	spf_eval_layer->name = "postern";
	spf_eval_server = SPF_server_new_dns(spf_eval_layer, 0);
	if (spf_eval_server == NULL) {
		*error_r = "libspf2 initialisation failed";
		return -1;
	}
	if (SPF_server_set_rec_dom(spf_eval_server, receiver) != SPF_E_SUCCESS) {
		*error_r = "libspf2 refused the receiver name";
		return -1;
	}
	return 0;
}

void spf_eval_done(void)
{
	if (spf_eval_server != NULL)
		SPF_server_free(spf_eval_server); /* frees the layer too */
	spf_eval_server = NULL;
	spf_eval_layer = NULL;
}

/*
 * SPF_request_query_mailfrom() without its first step: libspf2 passes any
 * client in 127.0.0.0/8 or ::1 without a look at the record ("localhost is
 * always allowed"). RFC 7208 has no such rule; InternalHosts is where a
 * site exempts its own hosts, so a loopback client is checked like any
 * other. The rest is what libspf2 does: pick the domain, fetch the record
 * through our layer, interpret it.
 */
static SPF_response_t *eval_query(SPF_request_t *req)
{
	SPF_response_t *resp = SPF_response_new(req);
	if (resp == NULL)
		return NULL;
	req->cur_dom = req->use_helo ? req->helo_dom : req->env_from_dp;
	SPF_record_t *rec = NULL;
	SPF_errcode_t err = SPF_server_get_record(spf_eval_server, req, resp, &rec);
	if (err != SPF_E_SUCCESS) {
		if (rec != NULL)
			SPF_record_free(rec);
		SPF_i_done(resp, resp->result, resp->reason, resp->err);
		return resp;
	}
	resp->spf_record_exp = rec;
	(void)SPF_record_interpret(rec, req, resp, 0);
	SPF_record_free(rec);
	resp->spf_record_exp = NULL;
	return resp;
}

static enum spf_eval_result eval_map(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS:
		return SPF_EVAL_PASS;
	case SPF_RESULT_FAIL:
		return SPF_EVAL_FAIL;
	case SPF_RESULT_SOFTFAIL:
		return SPF_EVAL_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:
		return SPF_EVAL_NEUTRAL;
	case SPF_RESULT_NONE:
		return SPF_EVAL_NONE;
	case SPF_RESULT_TEMPERROR:
		return SPF_EVAL_TEMPERROR;
	default:
		return SPF_EVAL_PERMERROR;
	}
}

static void eval_set(struct spf_eval *r, enum spf_eval_result res, const char *fmt, ...)
	PRINTF_LIKE(3, 4);
static void eval_set(struct spf_eval *r, enum spf_eval_result res, const char *fmt, ...)
{
	r->result = res;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->comment, sizeof(r->comment), fmt, ap);
	va_end(ap);
	/* comments may quote peer text: keep them printable and paren-free */
	for (char *p = r->comment; *p; p++)
		if (*p < ' ' || *p > '~' || *p == '(' || *p == ')' || *p == '\\')
			*p = '?';
}

void spf_eval_check(const struct sockaddr *sa, const char *helo, const char *sender,
		    struct spf_eval *r)
{
	memset(r, 0, sizeof(*r));
	bool null_sender = sender == NULL || *sender == '\0';
	/* the domain checked: after the last '@' of MAIL FROM, else the HELO */
	const char *dom = null_sender ? helo : strrchr(sender, '@');
	if (!null_sender)
		dom = dom ? dom + 1 : helo;
	/* RFC 8616 §4: a domain in U-labels is checked as its A-labels; one
	 * that cannot be converted (bad UTF-8, a disallowed code point, a
	 * label too long) is malformed, and §4.3 makes that "none" */
	struct buf ace, ahelo;
	buf_init(&ace, NS_MAXDNAME);
	buf_init(&ahelo, NS_MAXDNAME);
	char *asender = NULL;
	int conv = dom ? filter_hdr_domain_ascii(str_of(dom), &ace) : -1;
	snprintf(r->domain, sizeof(r->domain), "%s", conv == 0 ? buf_cstr(&ace) : "");
	if (conv < 0 || strchr(r->domain, '.') == NULL) {
		/* §2.3/§4.3: no FQDN to check (an address literal HELO, a
		 * malformed domain) */
		bool intl = false;
		for (const char *p = dom ? dom : ""; *p; p++)
			intl |= (unsigned char)*p >= 0x80;
		eval_set(r, SPF_EVAL_NONE, intl ? "internationalised domain not usable"
						 : "no domain to check");
		buf_free(&ace);
		buf_free(&ahelo);
		return;
	}
	/* libspf2 sees A-labels everywhere: the checked domain, the sender's
	 * domain part (its local part stays as given) and %{h} */
	if (helo != NULL && filter_hdr_domain_ascii(str_of(helo), &ahelo) == 0)
		helo = buf_cstr(&ahelo);
	if (!null_sender) {
		const char *at = strrchr(sender, '@');
		if (at != NULL)
			sender = asender = xasprintf("%.*s@%s", (int)(at - sender), sender, r->domain);
	}
	SPF_request_t *req = SPF_request_new(spf_eval_server);
	SPF_response_t *resp = NULL;
	struct spf_eval_state *st = xcalloc(1, sizeof(*st));
	char ip[INET6_ADDRSTRLEN] = "";
	if (sa != NULL && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			/* §5: an IPv4-mapped address is checked as IPv4 */
			struct in_addr v4;
			memcpy(&v4, s6->sin6_addr.s6_addr + 12, 4);
			SPF_request_set_ipv4(req, v4);
			inet_ntop(AF_INET, &v4, ip, sizeof(ip));
		} else {
			SPF_request_set_ipv6(req, s6->sin6_addr);
			inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		}
	} else if (sa != NULL && sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		SPF_request_set_ipv4(req, s4->sin_addr);
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
	} else {
		eval_set(r, SPF_EVAL_NONE, "no client address");
		goto out;
	}
	if (helo != NULL && *helo != '\0')
		SPF_request_set_helo_dom(req, helo);
	if (!null_sender && SPF_request_set_env_from(req, sender) != 0) {
		eval_set(r, SPF_EVAL_NONE, "sender address not usable");
		goto out;
	}
	spf_eval_st = st;
	resp = eval_query(req);
	spf_eval_st = NULL;
	r->lookups = st->lookups;
	r->voids = st->voids;
	SPF_result_t lr = resp ? SPF_response_result(resp) : SPF_RESULT_INVALID;
	enum spf_eval_result res = eval_map(lr);
	if (st->bad_record != NULL) {
		eval_set(r, SPF_EVAL_PERMERROR, "invalid SPF record: %s", st->bad_record);
	} else if (st->lookups > SPF_EVAL_MAX_LOOKUPS) {
		eval_set(r, SPF_EVAL_PERMERROR, "more than %d DNS-querying terms",
			 SPF_EVAL_MAX_LOOKUPS);
	} else if (st->voids > SPF_EVAL_MAX_VOIDS) {
		eval_set(r, SPF_EVAL_PERMERROR, "more than %d void lookups", SPF_EVAL_MAX_VOIDS);
	} else if (st->temp > 0 && !(res == SPF_EVAL_FAIL && st->temp == 1 && st->temp_last_txt)) {
		/* §4.4/§5: a DNS failure ends check_host with temperror (the
		 * one exception: the exp= lookup after a fail) */
		eval_set(r, SPF_EVAL_TEMPERROR, "DNS lookup failed");
	} else if (lr == SPF_RESULT_INVALID) {
		eval_set(r, SPF_EVAL_PERMERROR, "record not usable");
	} else {
		const char *c = resp ? SPF_response_get_header_comment(resp) : NULL;
		eval_set(r, res, "%s", c ? c : spf_eval_name(res));
		/* libspf2 writes "<receiver>: ..." itself; keep only the text */
		const char *colon = strstr(r->comment, ": ");
		if (colon != NULL)
			memmove(r->comment, colon + 2, strlen(colon + 2) + 1);
	}
out:
	if (resp)
		SPF_response_free(resp);
	SPF_request_free(req);
	free(st);
	free(asender);
	buf_free(&ace);
	buf_free(&ahelo);
}
