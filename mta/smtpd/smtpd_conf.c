/*
 * smtpd_conf.c - smtpd's view of main.cf (see smtpd_conf.h).
 *
 * Purpose: load the configuration once per process and derive what the
 * sessions need from it. Owns: the struct cfg, the tables, the nets, the
 * SSL_CTX. Never: exits (errors return), reads network input.
 * Limits: SMTPD_CONF_MILTER_CHOICES_MAX distinct smtpd_milter_maps values. Tests: tests/integration/test_smtpd_*.py.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>

#include "mta/smtpd/smtpd_conf.h"
#include "mta/smtpd/smtpd_tls.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/common.h"

#define SMTPD_CONF_MILTER_CHOICES_MAX 256 /* distinct smtpd_milter_maps values kept */

static char *smtpd_conf_error;

static void smtpd_conf_set_error(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void smtpd_conf_set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	free(smtpd_conf_error);
	if (vasprintf(&smtpd_conf_error, fmt, ap) < 0)
		smtpd_conf_error = NULL;
	va_end(ap);
}

/* Next list item: separators are commas and blanks outside { }. */
static bool smtpd_conf_next_item(const char **pp, const char **start, size_t *len)
{
	const char *p = *pp;
	while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p == '\0')
		return false;
	*start = p;
	int depth = 0;
	while (*p != '\0') {
		if (*p == '{')
			depth++;
		else if (*p == '}' && depth > 0)
			depth--;
		else if (depth == 0 && (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			break;
		p++;
	}
	*len = (size_t)(p - *start);
	*pp = p;
	return true;
}

static int smtpd_conf_parse_net(const char *s, size_t n, struct smtpd_net *out)
{
	char tmp[80];
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	char *slash = strchr(tmp, '/');
	unsigned prefix = 0;
	bool has_prefix = false;
	if (slash != NULL) {
		*slash = '\0';
		char *end;
		unsigned long v = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || slash[1] == '\0' || v > 128)
			return -1;
		prefix = (unsigned)v;
		has_prefix = true;
	}
	char *a = tmp;
	size_t alen = strlen(a);
	if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
		a[alen - 1] = '\0';
		a++;
	}
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, a, out->a) == 1) {
		out->family = AF_INET;
		if (!has_prefix)
			prefix = 32;
		if (prefix > 32)
			return -1;
	} else if (inet_pton(AF_INET6, a, out->a) == 1) {
		out->family = AF_INET6;
		if (!has_prefix)
			prefix = 128;
	} else {
		return -1;
	}
	out->prefix = prefix;
	return 0;
}

struct smtpd_net *smtpd_conf_parse_nets(const char *param, const char *list, size_t *n_r)
{
	struct smtpd_net *nets = NULL;
	size_t n = 0;
	const char *p = list, *s;
	size_t len;
	while (smtpd_conf_next_item(&p, &s, &len)) {
		struct smtpd_net net;
		if (smtpd_conf_parse_net(s, len, &net) < 0) {
			log_warning("%s: ignoring entry \"%.*s\" (not an address or network)", param,
				    (int)(len > 100 ? 100 : len), s);
			continue;
		}
		nets = xreallocarray(nets, n + 1, sizeof(*nets));
		nets[n++] = net;
	}
	*n_r = n;
	return nets;
}

static bool smtpd_conf_prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool smtpd_conf_net_match(const struct smtpd_net *nets, size_t n, const struct sockaddr *sa)
{
	unsigned char a[16];
	int fam;
	if (sa->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		fam = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			memcpy(a, in6->s6_addr + 12, 4);
			fam = AF_INET;
		} else {
			memcpy(a, in6->s6_addr, 16);
			fam = AF_INET6;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (nets[i].family == fam && smtpd_conf_prefix_eq(a, nets[i].a, nets[i].prefix))
			return true;
	return false;
}

/* Split a domain list into plain names and table specs; open the tables. */
static void smtpd_conf_domains(struct smtpd_conf *c, struct smtpd_domains *d, const char *name,
			       const char *list)
{
	struct buf names, tables;
	buf_init(&names, SIZE_MAX / 2);
	buf_init(&tables, SIZE_MAX / 2);
	const char *p = list, *s;
	size_t len;
	while (smtpd_conf_next_item(&p, &s, &len)) {
		struct buf *b = memchr(s, ':', len) != NULL ? &tables : &names;
		if (b->len > 0)
			buf_puts(b, b == &tables ? ", " : " ");
		buf_append(b, s, len);
	}
	d->names = xstrdup(buf_cstr(&names));
	if (tables.len > 0) {
		const char *err;
		d->tables = table_list_open(buf_cstr(&tables), &err);
		if (d->tables == NULL) {
			log_warning("%s: %s", name, err);
			if (c->table_error == NULL)
				c->table_error = xasprintf("%s: %s", name, err);
		}
	}
	buf_free(&names);
	buf_free(&tables);
}

static struct table_list *smtpd_conf_tables(struct smtpd_conf *c, const char *name, const char *list)
{
	const char *p = list, *s;
	size_t len;
	if (!smtpd_conf_next_item(&p, &s, &len))
		return NULL;
	const char *err;
	struct table_list *l = table_list_open(list, &err);
	if (l == NULL) {
		log_warning("%s: %s", name, err);
		if (c->table_error == NULL)
			c->table_error = xasprintf("%s: %s", name, err);
	}
	return l;
}

int smtpd_conf_domain_match(const struct smtpd_domains *d, struct str domain, bool subdomains,
			    const char **error_r)
{
	if (addr_domain_in_list(domain, d->names, subdomains))
		return 1;
	if (d->tables == NULL)
		return 0;
	char *key = str_dup(domain);
	char *val = NULL;
	int r = table_list_lookup(d->tables, key, &val, error_r);
	free(val);
	free(key);
	return r;
}

struct smtpd_conf *smtpd_conf_load(const char *confdir, char **overrides, size_t n_overrides,
				   const char **error_r)
{
	const char *err = NULL;
	struct cfg *cfg = cfg_load(confdir, &err);
	if (cfg == NULL) {
		smtpd_conf_set_error("%s", err);
		*error_r = smtpd_conf_error;
		return NULL;
	}
	for (size_t i = 0; i < n_overrides; i++) {
		char *eq = strchr(overrides[i], '=');
		if (eq == NULL) {
			smtpd_conf_set_error("-o %s: expected name=value", overrides[i]);
			cfg_free(&cfg);
			*error_r = smtpd_conf_error;
			return NULL;
		}
		char *name = xmemdup(overrides[i], (size_t)(eq - overrides[i]));
		int r = cfg_override(cfg, name, eq + 1, &err);
		free(name);
		if (r < 0) {
			smtpd_conf_set_error("%s", err);
			cfg_free(&cfg);
			*error_r = smtpd_conf_error;
			return NULL;
		}
	}
	struct smtpd_conf *c = xcalloc(1, sizeof(*c));
	c->refs = 1;
	c->cfg = cfg;
	c->nets = smtpd_conf_parse_nets("mynetworks", cfg->mynetworks, &c->n_nets);
	c->bare_lf_exempt = smtpd_conf_parse_nets("smtpd_forbid_bare_newline_exclusions",
						  cfg->smtpd_forbid_bare_newline_exclusions,
						  &c->n_bare_lf_exempt);
	smtpd_conf_domains(c, &c->mydest, "mydestination", cfg->mydestination);
	smtpd_conf_domains(c, &c->vmbox_domains, "virtual_mailbox_domains", cfg->virtual_mailbox_domains);
	smtpd_conf_domains(c, &c->valias_domains, "virtual_alias_domains", cfg->virtual_alias_domains);
	smtpd_conf_domains(c, &c->relay, "relay_domains", cfg->relay_domains);
	c->local_rcpt = smtpd_conf_tables(c, "local_recipient_maps", cfg->local_recipient_maps);
	c->vmbox = smtpd_conf_tables(c, "virtual_mailbox_maps", cfg->virtual_mailbox_maps);
	c->valias = smtpd_conf_tables(c, "virtual_alias_maps", cfg->virtual_alias_maps);
	c->relay_rcpt = smtpd_conf_tables(c, "relay_recipient_maps", cfg->relay_recipient_maps);
	c->bare_lf = smtpd_data_bare_lf_mode(cfg->smtpd_forbid_bare_newline);
	c->bare_lf_note = strcasecmp(cfg->smtpd_forbid_bare_newline, "note") == 0;
	c->banner = xasprintf("220 %s\r\n", cfg->smtpd_banner);
	c->wrapper = cfg->smtpd_tls_wrappermode;
	if (cfg->smtpd_milters[0] != '\0') {
		char *merr = NULL;
		c->milters = milter_conf_from_cfg(cfg, cfg->smtpd_milters, cfg->milter_macro_defaults,
						  &merr);
		if (c->milters == NULL) {
			c->milter_error = xasprintf("smtpd_milters: %s", merr ? merr : "bad value");
			free(merr);
		} else if (c->milters->n == 0) {
			milter_conf_free(&c->milters);
		}
	}
	if (cfg->smtpd_milter_maps[0] != '\0') {
		/* Postfix 3.2 smtpd_milter_maps; a table that cannot be opened
		 * makes every session tempfail rather than run unfiltered */
		const char *terr;
		c->milter_maps = table_list_open(cfg->smtpd_milter_maps, &terr);
		if (c->milter_maps == NULL) {
			c->milter_maps_error = xasprintf("smtpd_milter_maps: %s", terr);
			log_warning("%s", c->milter_maps_error);
		}
	}
	c->event_exempt = smtpd_conf_parse_nets("smtpd_client_event_limit_exceptions",
						cfg->smtpd_client_event_limit_exceptions,
						&c->n_event_exempt);
	const char *level = cfg->smtpd_tls_security_level;
	c->tls_required = strcmp(level, "encrypt") == 0 || cfg->smtpd_enforce_tls;
	bool want_tls = strcmp(level, "none") != 0 &&
			(cfg->smtpd_tls_cert_file[0] != '\0' || cfg->smtpd_tls_chain_files[0] != '\0');
	if (want_tls || c->wrapper || c->tls_required) {
		c->tls = smtpd_tls_ctx_new(cfg, &err);
		if (c->tls == NULL && !c->wrapper && !c->tls_required) {
			/* opportunistic TLS only: run without it, as Postfix does
			 * ("TLS not available due to local problem") */
			c->tls_warning = xasprintf("cannot load the TLS certificate, STARTTLS disabled: %s",
						   err);
		} else if (c->tls == NULL) {
			smtpd_conf_set_error("TLS: %s", err);
			smtpd_conf_unref(&c);
			*error_r = smtpd_conf_error;
			return NULL;
		}
	}
	return c;
}

/* The parsed form of one smtpd_milter_maps value (cached: parsing may
 * resolve host names, which must not happen per session). */
static const struct smtpd_milter_choice *smtpd_conf_milter_choice(struct smtpd_conf *c,
								 const char *value)
{
	for (size_t i = 0; i < c->n_milter_choices; i++)
		if (strcmp(c->milter_choices[i].value, value) == 0)
			return &c->milter_choices[i];
	/* sessions use the parsed entries while they live, so none is ever
	 * evicted; a table producing ever new values ($1 of a regexp) is
	 * stopped at a bound instead of growing the process */
	if (c->n_milter_choices >= SMTPD_CONF_MILTER_CHOICES_MAX)
		return NULL;
	struct smtpd_milter_choice ch = { xstrdup(value), NULL, NULL };
	if (strcasecmp(value, "DISABLE") != 0) {
		char *merr = NULL;
		ch.milters = milter_conf_from_cfg(c->cfg, value, c->cfg->milter_macro_defaults, &merr);
		if (ch.milters == NULL) {
			ch.error = xasprintf("smtpd_milter_maps: %s", merr ? merr : "bad value");
			free(merr);
		} else if (ch.milters->n == 0) {
			milter_conf_free(&ch.milters);
		}
	}
	c->milter_choices = xreallocarray(c->milter_choices, c->n_milter_choices + 1,
					  sizeof(*c->milter_choices));
	c->milter_choices[c->n_milter_choices] = ch;
	return &c->milter_choices[c->n_milter_choices++];
}

enum smtpd_milter_pick smtpd_conf_milters_for(struct smtpd_conf *c, const char *addr,
					      const struct milter_conf **milters_r,
					      const char **error_r)
{
	*milters_r = NULL;
	if (c->milter_maps_error != NULL) {
		*error_r = c->milter_maps_error;
		return SMTPD_MP_TEMP;
	}
	if (c->milter_maps != NULL) {
		char *val = NULL;
		int r = table_list_lookup(c->milter_maps, addr, &val, error_r);
		if (r < 0)
			return SMTPD_MP_TEMP;
		if (r > 0) {
			const struct smtpd_milter_choice *ch = smtpd_conf_milter_choice(c, val);
			free(val);
			if (ch == NULL) {
				*error_r = "smtpd_milter_maps: more distinct values than smtpd keeps";
				return SMTPD_MP_TEMP;
			}
			if (ch->error != NULL) {
				*error_r = ch->error;
				return SMTPD_MP_BAD;
			}
			*milters_r = ch->milters;
			return SMTPD_MP_USE;
		}
	}
	if (c->milter_error != NULL) {
		*error_r = c->milter_error;
		return SMTPD_MP_BAD;
	}
	*milters_r = c->milters;
	return SMTPD_MP_USE;
}

void smtpd_conf_ref(struct smtpd_conf *c)
{
	c->refs++;
}

static void smtpd_conf_domains_free(struct smtpd_domains *d)
{
	free(d->names);
	table_list_free(&d->tables);
}

void smtpd_conf_unref(struct smtpd_conf **cp)
{
	struct smtpd_conf *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	if (--c->refs > 0)
		return;
	cfg_free(&c->cfg);
	free(c->nets);
	free(c->bare_lf_exempt);
	smtpd_conf_domains_free(&c->mydest);
	smtpd_conf_domains_free(&c->vmbox_domains);
	smtpd_conf_domains_free(&c->valias_domains);
	smtpd_conf_domains_free(&c->relay);
	table_list_free(&c->local_rcpt);
	table_list_free(&c->vmbox);
	table_list_free(&c->valias);
	table_list_free(&c->relay_rcpt);
	free(c->table_error);
	if (c->tls)
		SSL_CTX_free(c->tls);
	free(c->banner);
	free(c->tls_warning);
	milter_conf_free(&c->milters);
	free(c->milter_error);
	table_list_free(&c->milter_maps);
	free(c->milter_maps_error);
	for (size_t i = 0; i < c->n_milter_choices; i++) {
		free(c->milter_choices[i].value);
		milter_conf_free(&c->milter_choices[i].milters);
		free(c->milter_choices[i].error);
	}
	free(c->milter_choices);
	free(c->event_exempt);
	free(c);
}
