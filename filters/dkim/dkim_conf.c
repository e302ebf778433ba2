/*
 * dkim_conf.c - postern-dkim's settings and libopendkim set-up.
 *
 * Purpose: read postern-dkim's settings and set up libopendkim with our
 * DNS client (filter_dns), so Nameservers applies to key lookups.
 * Owns: dkim_settings and the DKIM_LIB. Never: drops the keys in use
 * because a reload failed (SIGHUP: all of the new set loads, or none).
 * Tests: tests/unit/filters/dkim_milter_test.c (settings),
 * tests/interop/test_filter_dkim.py.
 */
#include <strings.h>
#include <sys/time.h>

#include "filters/common/filter_dns.h"
#include "filters/common/filter_main.h"
#include "filters/dkim/dkim_milter.h"
#include "lib/log.h"
#include "lib/common.h"

struct dkim_settings dkim_settings;

const char *const dkim_keys_names[] = {
	"Mode", "Domain", "Selector", "KeyFile", "KeyTable", "SigningTable", "SubDomains",
	"Canonicalization", "OversignHeaders", "MinimumKeyBits", "TemporaryFailure",
	"MaximumHeaderBytes", "MaximumHeaders", NULL,
};

/* libopendkim's pluggable resolver: one synchronous filter_dns_query per
 * question, done in start; waitreply hands the result over. */
struct dkim_conf_dnsq {
	enum filter_dns_status st; /* outcome of the query */
	size_t len;                /* reply bytes written into the caller's buffer */
};

static int dkim_conf_dns_start(void *srv, int type, unsigned char *query, unsigned char *buf,
			  size_t buflen, void **qh)
{
	const struct filter_dns *d = srv;
	struct dkim_conf_dnsq *q = xcalloc(1, sizeof(*q));
	q->st = filter_dns_query(d, (const char *)query, type, buf, buflen, &q->len);
	*qh = q;
	return q->st == FILTER_DNS_ERROR ? DKIM_DNS_ERROR : DKIM_DNS_SUCCESS;
}

static int dkim_conf_dns_wait(void *srv, void *qh, struct timeval *to, size_t *bytes, int *error,
			 int *dnssec)
{
	struct dkim_conf_dnsq *q = qh;
	if (bytes)
		*bytes = q->len;
	if (error)
		*error = 0;
	if (dnssec)
		*dnssec = DKIM_DNSSEC_UNKNOWN;
	return q->st == FILTER_DNS_OK ? DKIM_DNS_SUCCESS : DKIM_DNS_EXPIRED;
}

static int dkim_conf_dns_cancel(void *srv, void *qh)
{
	free(qh);
	return 0;
}

static int dkim_conf_dns_init(void **srv)
{
	*srv = &filter_common.dns;
	return 0;
}

static void dkim_conf_dns_close(void *srv)
{
}

static int dkim_conf_dns_nslist(void *srv, const char *list)
{
	return 0;
}

static int dkim_conf_canon(const char *v, dkim_canon_t *h, dkim_canon_t *b)
{
	char hs[16], bs[16];
	const char *slash = strchr(v, '/');
	size_t hl = slash ? (size_t)(slash - v) : strlen(v);
	if (hl == 0 || hl >= sizeof(hs))
		return -1;
	memcpy(hs, v, hl);
	hs[hl] = '\0';
	snprintf(bs, sizeof(bs), "%s", slash ? slash + 1 : "simple");
	dkim_canon_t *out[2] = { h, b };
	const char *in[2] = { hs, bs };
	for (int i = 0; i < 2; i++) {
		if (strcasecmp(in[i], "relaxed") == 0)
			*out[i] = DKIM_CANON_RELAXED;
		else if (strcasecmp(in[i], "simple") == 0)
			*out[i] = DKIM_CANON_SIMPLE;
		else
			return -1;
	}
	return 0;
}

/* Load the signing keys from the saved settings into a new set, or NULL
 * with *error_r. */
static struct dkim_keys *dkim_conf_keys(const char **error_r)
{
	struct dkim_settings *s = &dkim_settings;
	struct dkim_keys *k = xcalloc(1, sizeof(*k));
	int rc = s->keytable != NULL
			 ? dkim_keys_load_tables(k, s->keytable, s->signtable, error_r)
			 : dkim_keys_load_single(k, s->domains, s->selector, s->keyfile,
						 s->subdomains, error_r);
	if (rc == 0) {
		bool ed = dkim_libfeature(s->lib, DKIM_FEATURE_ED25519);
		for (size_t i = 0; i < k->nkeys; i++)
			if (k->keys[i].alg == DKIM_KEYS_ED25519 && !ed) {
				*error_r = "this libopendkim cannot sign with Ed25519 keys";
				rc = -1;
				break;
			}
	}
	if (rc < 0) {
		dkim_keys_free(k);
		free(k);
		return NULL;
	}
	return k;
}

void dkim_reload(void)
{
	if (!dkim_settings.sign) {
		log_info("SIGHUP: not signing, nothing to reload");
		return;
	}
	const char *err = NULL;
	struct dkim_keys *k = dkim_conf_keys(&err);
	if (k == NULL) {
		log_warning("SIGHUP: keys not reloaded, the old ones stay in use: %s", err);
		return;
	}
	size_t nkeys = k->nkeys, nrules = k->nrules;
	dkim_keys_install(k);
	log_info("SIGHUP: signing keys reloaded: %zu keys, %zu signing rules", nkeys, nrules);
}

int dkim_configure(const struct filter_cfg *cfg, const struct filter_common *common,
		   const char **error_r)
{
	struct dkim_settings *s = &dkim_settings;
	const char *v = filter_cfg_get(cfg, "Mode");
	if (v == NULL)
		v = "sv";
	s->sign = strchr(v, 's') != NULL;
	s->verify = strchr(v, 'v') != NULL;
	if (strspn(v, "sv") != strlen(v) || (!s->sign && !s->verify)) {
		*error_r = "Mode wants s, v or sv";
		return -1;
	}
	v = filter_cfg_get(cfg, "Canonicalization");
	if (dkim_conf_canon(v ? v : "relaxed/relaxed", &s->hdr_canon, &s->body_canon) < 0) {
		*error_r = "Canonicalization wants simple or relaxed, as HEADER/BODY";
		return -1;
	}
	v = filter_cfg_get(cfg, "TemporaryFailure");
	if (v == NULL || strcasecmp(v, "accept") == 0)
		s->tempfail = false;
	else if (strcasecmp(v, "tempfail") == 0)
		s->tempfail = true;
	else {
		*error_r = "TemporaryFailure wants accept or tempfail";
		return -1;
	}
	unsigned long minbits;
	if (filter_cfg_uint(cfg, "MinimumKeyBits", 1024, 512, 16384, &minbits, error_r) < 0 ||
	    filter_cfg_uint(cfg, "MaximumHeaderBytes", 1024 * 1024, 1024, 64 * 1024 * 1024,
			    &s->max_header_bytes, error_r) < 0 ||
	    filter_cfg_uint(cfg, "MaximumHeaders", 1000, 10, 100000, &s->max_headers,
			    error_r) < 0 ||
	    filter_cfg_bool(cfg, "SubDomains", false, &s->subdomains, error_r) < 0)
		return -1;
	const char *kt = filter_cfg_get(cfg, "KeyTable");
	const char *st = filter_cfg_get(cfg, "SigningTable");
	const char *dom = filter_cfg_get(cfg, "Domain");
	const char *sel = filter_cfg_get(cfg, "Selector");
	const char *kf = filter_cfg_get(cfg, "KeyFile");
	if (s->sign) {
		if (kt != NULL || st != NULL) {
			if (kt == NULL || st == NULL) {
				*error_r = "KeyTable and SigningTable go together";
				return -1;
			}
			s->keytable = xstrdup(kt);
			s->signtable = xstrdup(st);
		} else if (dom != NULL || sel != NULL || kf != NULL) {
			if (dom == NULL || sel == NULL || kf == NULL) {
				*error_r = "Domain, Selector and KeyFile go together";
				return -1;
			}
			s->domains = xstrdup(dom);
			s->selector = xstrdup(sel);
			s->keyfile = xstrdup(kf);
		} else {
			*error_r = "Mode s needs KeyTable+SigningTable or Domain+Selector+KeyFile";
			return -1;
		}
	}
	s->lib = dkim_init(NULL, NULL);
	if (s->lib == NULL) {
		*error_r = "libopendkim initialisation failed";
		return -1;
	}
	if (s->sign) {
		struct dkim_keys *k = dkim_conf_keys(error_r);
		if (k == NULL)
			return -1;
		dkim_keys_install(k);
	}
	/* BADSIGHANDLES keeps failed signatures so each one gets its result */
	unsigned int flags = DKIM_LIBFLAGS_BADSIGHANDLES;
	unsigned int timeout = common->dns.timeout_ms * common->dns.tries / 1000 + 1;
	if (dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
		    DKIM_STAT_OK ||
	    dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_TIMEOUT, &timeout, sizeof(timeout)) !=
		    DKIM_STAT_OK) {
		*error_r = "libopendkim refused its options";
		return -1;
	}
	unsigned int mb = (unsigned int)minbits;
	if (dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &mb, sizeof(mb)) !=
	    DKIM_STAT_OK) {
		*error_r = "libopendkim refused MinimumKeyBits";
		return -1;
	}
	/* OversignHeaders (default From): sign one more instance than present,
	 * so that a From added later breaks the signature (RFC 6376 §8.15) */
	v = filter_cfg_get(cfg, "OversignHeaders");
	static char *oversign[32];
	static char oversign_text[1024];
	snprintf(oversign_text, sizeof(oversign_text), "%s", v ? v : "From");
	size_t n = 0;
	for (char *p = oversign_text; *p && n + 1 < ARRAY_LEN(oversign);) {
		p += strspn(p, ", \t");
		size_t l = strcspn(p, ", \t");
		if (l == 0)
			break;
		oversign[n++] = p;
		p += l;
		if (*p)
			*p++ = '\0';
	}
	oversign[n] = NULL;
	if (n > 0 && dkim_options(s->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, oversign,
				  sizeof(char **)) != DKIM_STAT_OK) {
		*error_r = "libopendkim refused OversignHeaders";
		return -1;
	}
	dkim_dns_set_query_service(s->lib, (void *)&common->dns);
	dkim_dns_set_init(s->lib, dkim_conf_dns_init);
	dkim_dns_set_close(s->lib, dkim_conf_dns_close);
	dkim_dns_set_nslist(s->lib, dkim_conf_dns_nslist);
	dkim_dns_set_query_start(s->lib, dkim_conf_dns_start);
	dkim_dns_set_query_waitreply(s->lib, dkim_conf_dns_wait);
	dkim_dns_set_query_cancel(s->lib, dkim_conf_dns_cancel);
	return 0;
}
