/*
 * filter_net.c - network lists and address printing (see filter_net.h).
 *
 * Purpose: decide whether a client address lies in a configured network.
 * Owns: the list entries. Never: resolves names (a host name in a list is
 * a configuration error, not a DNS lookup).
 * Tests: tests/unit/filters/filter_net_test.c.
 */
#include <arpa/inet.h>

#include "filters/common/filter_net.h"
#include "lib/common.h"

static __thread char net_error[256];

static bool net_parse_item(const char *item, struct filter_net *n)
{
	char host[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(item, '/');
	size_t hlen = slash ? (size_t)(slash - item) : strlen(item);
	if (hlen == 0 || hlen >= sizeof(host))
		return false;
	memcpy(host, item, hlen);
	host[hlen] = '\0';
	unsigned max;
	if (inet_pton(AF_INET, host, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else {
		return false;
	}
	n->prefix = max;
	if (slash) {
		const char *p = slash + 1;
		if (*p < '0' || *p > '9' || strlen(p) > 3)
			return false;
		unsigned v = 0;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return false;
			v = v * 10 + (unsigned)(*p - '0');
		}
		if (v > max)
			return false;
		n->prefix = v;
	}
	/* ::ffff:a.b.c.d/n is stored as the IPv4 network it names */
	if (n->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((struct in6_addr *)n->addr) &&
	    n->prefix >= 96) {
		memmove(n->addr, n->addr + 12, 4);
		n->family = AF_INET;
		n->prefix -= 96;
	}
	return true;
}

int filter_netlist_parse(struct filter_netlist *list, const char *text, const char **error_r)
{
	filter_netlist_free(list);
	const char *p = text;
	while (*p) {
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		size_t n = strcspn(p, ", \t");
		char *item = xmemdup(p, n);
		struct filter_net net;
		memset(&net, 0, sizeof(net));
		bool ok = net_parse_item(item, &net);
		if (!ok) {
			snprintf(net_error, sizeof(net_error), "bad network \"%.64s\"", item);
			free(item);
			filter_netlist_free(list);
			*error_r = net_error;
			return -1;
		}
		free(item);
		list->v = xreallocarray(list->v, list->n + 1, sizeof(*list->v));
		list->v[list->n++] = net;
		p += n;
	}
	return 0;
}

static bool net_prefix_eq(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

/* The address bytes and family of sa, with IPv4-mapped IPv6 as IPv4. */
static int net_addr_of(const struct sockaddr *sa, unsigned char out[16])
{
	if (sa == NULL)
		return AF_UNSPEC;
	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			memcpy(out, a->s6_addr + 12, 4);
			return AF_INET;
		}
		memcpy(out, a->s6_addr, 16);
		return AF_INET6;
	}
	return AF_UNSPEC;
}

bool filter_netlist_match(const struct filter_netlist *list, const struct sockaddr *sa)
{
	unsigned char a[16];
	int fam = net_addr_of(sa, a);
	if (fam == AF_UNSPEC)
		return false;
	for (size_t i = 0; i < list->n; i++)
		if (list->v[i].family == fam && net_prefix_eq(a, list->v[i].addr, list->v[i].prefix))
			return true;
	return false;
}

bool filter_netlist_match_str(const struct filter_netlist *list, const char *addr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else
		return false;
	return filter_netlist_match(list, (struct sockaddr *)&ss);
}

void filter_netlist_free(struct filter_netlist *list)
{
	free(list->v);
	list->v = NULL;
	list->n = 0;
}

const char *filter_net_ntop(const struct sockaddr *sa, char *out, size_t outlen)
{
	unsigned char a[16];
	int fam = net_addr_of(sa, a);
	if (fam == AF_UNSPEC || inet_ntop(fam, a, out, (socklen_t)outlen) == NULL) {
		snprintf(out, outlen, "unknown");
	}
	return out;
}
