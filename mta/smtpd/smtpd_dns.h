/*
 * smtpd_dns.h - the client's host name, as Postfix finds it: reverse
 * lookup of the address, then a forward lookup of that name that must give
 * the address back ("forward-confirmed"); otherwise "unknown". c-ares on
 * the process's event loop; loopback clients are looked up in /etc/hosts
 * only (no DNS traffic for them).
 *
 * Never blocks. Results go to a callback with the caller's id: the caller
 * looks its session up again (it may be gone).
 * Tests: tests/integration/test_smtpd_log.py (connect from localhost[...]).
 */
#ifndef POSTERN_SMTPD_DNS_H
#define POSTERN_SMTPD_DNS_H

#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

/* name: the confirmed host name or "unknown" (valid during the call). */
typedef void smtpd_dns_fn(uint32_t id, const char *name, void *ctx);

/* Set up the resolvers on base. 0, or -1 (then every name is "unknown"). */
int smtpd_dns_init(struct event_base *base);
/* Start a lookup for sa; fn is called exactly once (maybe before this
 * returns, e.g. when resolving is not available). */
void smtpd_dns_lookup(const struct sockaddr *sa, uint32_t id, smtpd_dns_fn *fn, void *ctx);
/* Cancel everything (callbacks run with "unknown") and free. */
void smtpd_dns_shutdown(void);

#endif
