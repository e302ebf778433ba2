/*
 * filter_dns.h - a small synchronous DNS client with a configurable server.
 *
 * Every filter sends its DNS questions through this module so that the
 * resolver address is one setting (Nameservers 127.0.0.1@5353), which lets
 * tests serve records from dnsmasq on a loopback port. Questions go over UDP
 * to one server, with TCP when the answer is truncated. Each call blocks the
 * calling thread for at most timeout x tries; it is thread-safe (no shared
 * mutable state), as libmilter runs one thread per connection.
 */
#ifndef POSTERN_FILTER_DNS_H
#define POSTERN_FILTER_DNS_H

#include <sys/socket.h>

#include "lib/common.h"

#define FILTER_DNS_MAX_ANSWER 65535 /* largest reply read (TCP length field) */

struct filter_dns {
	struct sockaddr_storage server; /* where questions go */
	socklen_t server_len;           /* bytes used in server */
	unsigned timeout_ms;            /* per try */
	unsigned tries;                 /* UDP attempts before giving up */
};

enum filter_dns_status {
	FILTER_DNS_OK,       /* a reply arrived (any RCODE) */
	FILTER_DNS_TIMEOUT,  /* no reply within the tries */
	FILTER_DNS_ERROR,    /* bad name, socket error, or malformed reply */
};

/* Configure d. spec is "ADDR", "ADDR@PORT", "ADDR:PORT" (IPv4), "[ADDR]:PORT"
 * or NULL/"" for the first nameserver of /etc/resolv.conf. Returns 0, or -1
 * with *error_r (static per-thread storage). */
int filter_dns_init(struct filter_dns *d, const char *spec, unsigned timeout_ms,
		    unsigned tries, const char **error_r);

/* Ask for (name, type, class IN). On FILTER_DNS_OK the whole reply message is
 * in ans[0..*len_r), its ID and question checked against ours; the caller
 * reads the RCODE. Blocks. */
enum filter_dns_status filter_dns_query(const struct filter_dns *d, const char *name,
					int type, unsigned char *ans, size_t anslen,
					size_t *len_r);

/* Build a query message for name/type with the given ID into out (at least
 * 512 bytes). Returns its length, or 0 for a name that is not a valid
 * presentation-form domain (empty label, label > 63, name > 253). Pure. */
size_t filter_dns_make_query(const char *name, int type, uint16_t id, unsigned char *out,
			     size_t outlen);

/* The printable server address ("127.0.0.1@5353"), for logs. */
const char *filter_dns_server_str(const struct filter_dns *d, char *out, size_t outlen);

#endif
