/*
 * milter_log.h - the Postfix-shaped log lines of the milter client, made in
 * this one module (STYLE.md: a compatibility surface).
 */
#ifndef POSTERN_MILTER_LOG_H
#define POSTERN_MILTER_LOG_H

#include "mta/milter/milter_chain.h"

/*
 * Write the Postfix-shaped log line for a verdict that rejected, held or
 * discarded (nothing for CONTINUE/ACCEPT without quarantine):
 *   QUEUEID: milter-reject: END-OF-MESSAGE from host[addr]: 5.7.1 text; from=<a> to=<b> proto=ESMTP helo=<h>
 *   NOQUEUE: milter-reject: RCPT from host[addr]: 550 5.7.1 text; from=<a> to=<b> proto=ESMTP helo=<h>
 *   (as Postfix: the code is left out at END-OF-MESSAGE only; first line of a multi-line reply)
 *   QUEUEID: milter-hold: END-OF-MESSAGE from host[addr]: milter triggers HOLD action; from=...
 *   QUEUEID: milter-discard: END-OF-MESSAGE from host[addr]: milter triggers DISCARD action; from=...
 * queue_id NULL gives "NOQUEUE"; from/to/proto/helo NULL are left out; from and
 * to may be given with or without their angle brackets.
 * Peer text is escaped.
 */
void milter_log_verdict(const struct milter_verdict *v, const char *queue_id,
			const char *client, const char *from, const char *to,
			const char *proto, const char *helo);

/*
 * "warning: [QUEUEID: ]milter NAME: WHAT; default_action=ACTION": the one
 * line for a failed milter. queue_id NULL or "" leaves the prefix out; what
 * is escaped.
 */
void milter_log_fault(const char *queue_id, const char *milter, const char *what,
		      const char *action);

#endif
