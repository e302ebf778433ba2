/*
 * filter_net.h - lists of networks ("127.0.0.0/8, ::1, 192.0.2.0/24").
 *
 * Used for InternalHosts / TrustedNetworks: clients whose mail is signed
 * (postern-dkim) or not checked (postern-spf, postern-dmarc). IPv4-mapped
 * IPv6 addresses (::ffff:a.b.c.d) match IPv4 entries, as RFC 7208 §5 treats
 * them as the IPv4 address they carry.
 */
#ifndef POSTERN_FILTER_NET_H
#define POSTERN_FILTER_NET_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "lib/common.h"

struct filter_net {
	int family;            /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network bytes, 4 or 16 used */
	unsigned prefix;       /* prefix length in bits */
};

struct filter_netlist {
	struct filter_net *v; /* owned array */
	size_t n;             /* entries in v */
};

/* Parse a comma- or blank-separated list of addresses and address/prefix
 * items into *list (which is reset first). Returns 0, or -1 with *error_r
 * (static storage, per thread) naming the bad item. */
int filter_netlist_parse(struct filter_netlist *list, const char *text, const char **error_r);
/* True when the socket address (AF_INET or AF_INET6) is inside one entry. */
bool filter_netlist_match(const struct filter_netlist *list, const struct sockaddr *sa);
/* Same for a textual address; false when it does not parse. */
bool filter_netlist_match_str(const struct filter_netlist *list, const char *addr);
/* Release the entries; the list is empty afterwards. */
void filter_netlist_free(struct filter_netlist *list);

/* Write the printable address of sa (IPv4-mapped IPv6 shown as IPv4) into
 * out; returns out, or "unknown" for other families. */
const char *filter_net_ntop(const struct sockaddr *sa, char *out, size_t outlen);

#endif
