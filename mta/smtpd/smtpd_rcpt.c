/*
 * smtpd_rcpt.c - recipient acceptance at RCPT time (see smtpd_rcpt.h).
 *
 * Purpose: reject unknown local and virtual recipients (550 5.1.1) and
 * relay attempts (554 5.7.1) with Postfix's reply texts.
 * Owns: nothing. Never: relays an address with routing in its local part
 * (percent hack, bang path, quoted '@') to one of our domains; treats a
 * table error as "unknown" (it is a 451).
 * Limits: none. Tests: tests/integration/test_smtpd_rcpt.py.
 */
#include <strings.h>

#include "mta/smtpd/smtpd_rcpt.h"
#include "lib/addrmap.h"
#include "lib/common.h"

/* Lookup key: unquoted local part @ domain (Postfix's internal form). */
static char *smtpd_rcpt_key(const struct addr *a)
{
	struct buf local;
	buf_init(&local, ADDR_TEXT_SIZE);
	if (addr_local_unquoted(a, &local) < 0) {
		buf_free(&local);
		return NULL;
	}
	struct str d = addr_domain(a);
	char *key = xasprintf("%s@%.*s", buf_cstr(&local), (int)d.len, d.p);
	buf_free(&local);
	return key;
}

/* 1 found, 0 not, -1 error */
static int smtpd_rcpt_find(struct table_list *maps, const char *key, const char *delims, int flags)
{
	if (maps == NULL)
		return 0;
	char *val = NULL, *ext = NULL;
	const char *err;
	int r = addrmap_lookup(maps, key, delims, flags, &val, &ext, &err);
	free(val);
	free(ext);
	return r;
}

/* "CODE <addr>: text" */
static int smtpd_rcpt_reply(char *reply, size_t n, const struct addr *a, const char *code,
			    const char *text)
{
	snprintf(reply, n, "%s <%s>: %s", code, a->text, text);
	return -1;
}

int smtpd_rcpt_check(struct smtpd_conf *conf, const struct addr *a, bool trusted, char *reply,
		     size_t n)
{
	const struct cfg *cfg = conf->cfg;
	struct str domain = addr_domain(a);
	const char *err;
		int local = smtpd_conf_domain_match(&conf->mydest, domain, false, &err);
	int valias = local == 1 ? 0 : smtpd_conf_domain_match(&conf->valias_domains, domain, false, &err);
	int vmbox = local == 1 || valias == 1 ? 0
					      : smtpd_conf_domain_match(&conf->vmbox_domains, domain, false, &err);
	int relay = local == 1 || valias == 1 || vmbox == 1
			    ? 0
			    : smtpd_conf_domain_match(&conf->relay, domain, true, &err);
	if (local < 0 || valias < 0 || vmbox < 0 || relay < 0)
		return smtpd_rcpt_reply(reply, n, a, "451 4.3.0", "Temporary lookup failure");
	bool ours = local == 1 || valias == 1 || vmbox == 1 || relay == 1;
	if (!ours) {
		/* not our domain: relay only for mynetworks */
		if (!trusted)
			return smtpd_rcpt_reply(reply, n, a, "554 5.7.1", "Relay access denied");
		return 0;
	}
	/* Our domain, but the local part routes elsewhere (a%b@ours,
	 * b!a@ours, "a@b"@ours): another hop would read it as a relay
	 * request. Postfix refuses these as relay attempts; so do we, for
	 * every client. */
	if (a->flags & ADDR_F_ROUTING)
		return smtpd_rcpt_reply(reply, n, a, "554 5.7.1", "Relay access denied");
	if (conf->table_error != NULL)
		return smtpd_rcpt_reply(reply, n, a, "451 4.3.0", "Temporary lookup failure");
	if (!cfg->smtpd_reject_unlisted_recipient)
		return 0;
	char *key = smtpd_rcpt_key(a);
	if (key == NULL) {
		snprintf(reply, n, "501 5.1.3 Bad recipient address syntax");
		return -1;
	}
	const char *delims = cfg->recipient_delimiter;
	int r;
	const char *unknown;
	char codebuf[8];
	long long code = 550;
	if (local == 1) {
		/* local_recipient_maps empty: no check (Postfix) */
		if (cfg->local_recipient_maps[0] == '\0' || conf->local_rcpt == NULL) {
			free(key);
			return 0;
		}
		r = smtpd_rcpt_find(conf->local_rcpt, key, delims, ADDRMAP_ALIAS);
		if (r == 0)
			r = smtpd_rcpt_find(conf->valias, key, delims, ADDRMAP_VIRTUAL_ALIAS | ADDRMAP_LOCALPART);
		unknown = "User unknown in local recipient table";
		code = cfg->unknown_local_recipient_reject_code;
	} else if (valias == 1) {
		r = smtpd_rcpt_find(conf->valias, key, delims, ADDRMAP_VIRTUAL_ALIAS);
		unknown = "User unknown in virtual alias table";
		code = 550;
	} else if (vmbox == 1) {
		r = smtpd_rcpt_find(conf->valias, key, delims, ADDRMAP_VIRTUAL_ALIAS);
		if (r == 0)
			r = smtpd_rcpt_find(conf->vmbox, key, delims, ADDRMAP_VIRTUAL_MAILBOX);
		unknown = "User unknown in virtual mailbox table";
		code = cfg->unknown_virtual_mailbox_reject_code;
	} else {
		if (conf->relay_rcpt == NULL) {
			free(key);
			return 0;
		}
		r = smtpd_rcpt_find(conf->relay_rcpt, key, delims, ADDRMAP_VIRTUAL_MAILBOX);
		unknown = "User unknown in relay recipient table";
		code = cfg->unknown_relay_recipient_reject_code;
	}
	free(key);
	if (r < 0)
		return smtpd_rcpt_reply(reply, n, a, "451 4.3.0", "Temporary lookup failure");
	if (r == 1)
		return 0;
	if (code < 400 || code > 599)
		code = 550;
	snprintf(codebuf, sizeof(codebuf), "%lld", code);
	snprintf(reply, n, "%s %c.1.1 <%s>: Recipient address rejected: %s", codebuf, codebuf[0],
		 a->text, unknown);
	return -1;
}
