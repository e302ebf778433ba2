/*
 * smtpd_rcpt.h - may this recipient be accepted? Postfix's address
 * classes: mydestination (local_recipient_maps), virtual_alias_domains and
 * virtual_mailbox_domains (their maps), relay_domains (relay_recipient_maps),
 * anything else only from mynetworks. Relay tricks never relay.
 *
 * Blocks only on local table reads. Tests: tests/integration/test_smtpd_rcpt.py.
 */
#ifndef POSTERN_SMTPD_RCPT_H
#define POSTERN_SMTPD_RCPT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/addr.h"
#include "mta/smtpd/smtpd_conf.h"

/*
 * Check recipient a (kind ADDR_MAILBOX, already qualified) for a client
 * that is (trusted) or is not in mynetworks. Returns 0 to accept; else -1
 * with the full reply in reply (size n), e.g. "554 5.7.1 <x@y>: Relay access
 * denied" or "550 5.1.1 <x@y>: Recipient address rejected: User unknown in
 * local recipient table".
 */
int smtpd_rcpt_check(struct smtpd_conf *conf, const struct addr *a, bool trusted, char *reply,
		     size_t n);

#endif
