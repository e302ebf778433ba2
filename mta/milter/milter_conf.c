/*
 * milter_conf.c - milter lists and milter_* parameters (milter_conf.h).
 *
 * Purpose: turn Postfix-syntax milter configuration into resolved endpoints.
 * Owns: the endpoint array and the macro list strings it returns.
 * Never: connects to anything; logs (errors are returned).
 * Limits: endpoint path <= sizeof(sun_path) - 1; protocol 2/3/4/6; times > 0.
 * Tests: tests/unit/milter/milter_conf_test.c.
 */
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "mta/milter/milter_conf.h"
#include "lib/common.h"

static const char *const milter_action_names[] = {
	[MILTER_ACT_ACCEPT] = "accept",
	[MILTER_ACT_REJECT] = "reject",
	[MILTER_ACT_TEMPFAIL] = "tempfail",
	[MILTER_ACT_QUARANTINE] = "quarantine",
	[MILTER_ACT_SHUTDOWN] = "shutdown",
};

const char *milter_action_name(enum milter_action a)
{
	return (unsigned)a < ARRAY_LEN(milter_action_names) ? milter_action_names[a] : "?";
}

int milter_action_parse(const char *s, enum milter_action *a_r)
{
	for (size_t i = 0; i < ARRAY_LEN(milter_action_names); i++)
		if (strcasecmp(s, milter_action_names[i]) == 0) {
			*a_r = (enum milter_action)i;
			return 0;
		}
	return -1;
}

int milter_conf_parse_time(const char *s, long long *ms_r)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	long long mul;
	if (errno != 0)
		return -1;
	if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "m") == 0)
		mul = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mul = 3600 * 1000;
	else if (strcmp(end, "d") == 0)
		mul = 86400LL * 1000;
	else if (strcmp(end, "w") == 0)
		mul = 7 * 86400LL * 1000;
	else
		return -1;
	if (v <= 0 || __builtin_mul_overflow(v, mul, ms_r))
		return -1;
	return 0;
}

/* "6" or "6;no_header_reply" (also ',' or ' ' before the word). */
static int milter_conf_parse_protocol(const char *s, int *version_r, bool *nhr_r)
{
	if (s[0] < '2' || s[0] > '6' || s[0] == '5')
		return -1;
	*version_r = s[0] - '0';
	*nhr_r = false;
	s++;
	if (*s == 0)
		return 0;
	if (*s != ';' && *s != ',' && *s != ' ')
		return -1;
	while (*s == ';' || *s == ',' || *s == ' ')
		s++;
	if (strcmp(s, "no_header_reply") != 0)
		return -1;
	*nhr_r = true;
	return 0;
}

static char *milter_trim(char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

/* Resolve an endpoint text into e->addr. */
static int milter_conf_endpoint(const char *text, struct milter_endpoint *e, char **error_r)
{
	const char *rest;
	int family = AF_UNSPEC;
	if (strncasecmp(text, "unix:", 5) == 0 || strncasecmp(text, "local:", 6) == 0) {
		rest = strchr(text, ':') + 1;
		struct sockaddr_un *sun = (struct sockaddr_un *)&e->addr;
		size_t n = strlen(rest);
		if (n == 0 || n >= sizeof(sun->sun_path)) {
			*error_r = xasprintf("bad unix socket path in milter endpoint \"%s\"", text);
			return -1;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, rest, n + 1);
		e->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return 0;
	}
	if (strncasecmp(text, "inet:", 5) == 0)
		rest = text + 5;
	else if (strncasecmp(text, "inet6:", 6) == 0) {
		rest = text + 6;
		family = AF_INET6;
	} else {
		*error_r = xasprintf("unknown milter endpoint type in \"%s\" (use unix:, local:, inet:, inet6:)",
				     text);
		return -1;
	}
	char *host, *port;
	char *copy = xstrdup(rest);
	if (copy[0] == '[') {
		char *close = strchr(copy, ']');
		if (close == NULL || close[1] != ':') {
			free(copy);
			*error_r = xasprintf("bad milter endpoint \"%s\"", text);
			return -1;
		}
		*close = 0;
		host = copy + 1;
		port = close + 2;
	} else {
		char *colon = strrchr(copy, ':');
		if (colon == NULL) {
			free(copy);
			*error_r = xasprintf("milter endpoint \"%s\" has no port", text);
			return -1;
		}
		*colon = 0;
		host = copy;
		port = colon + 1;
	}
	if (*host == 0 || *port == 0) {
		free(copy);
		*error_r = xasprintf("bad milter endpoint \"%s\"", text);
		return -1;
	}
	struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM }, *res = NULL;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || res == NULL || res->ai_addrlen > sizeof(e->addr)) {
		*error_r = xasprintf("cannot resolve milter endpoint \"%s\": %s", text,
				     rc != 0 ? gai_strerror(rc) : "no address");
		if (res)
			freeaddrinfo(res);
		free(copy);
		return -1;
	}
	memcpy(&e->addr, res->ai_addr, res->ai_addrlen);
	e->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	free(copy);
	return 0;
}

/* One element: an endpoint, or the inside of a { ... } group. */
static int milter_conf_element(char *text, bool group, const struct milter_defaults *d,
			       struct milter_endpoint *e, char **error_r)
{
	memset(e, 0, sizeof(*e));
	e->connect_timeout_ms = d->connect_timeout_ms;
	e->command_timeout_ms = d->command_timeout_ms;
	e->content_timeout_ms = d->content_timeout_ms;
	e->default_action = d->default_action;
	e->protocol = d->protocol;
	e->no_header_reply = d->no_header_reply;
	e->reuse = d->reuse;
	char *save = NULL, *item;
	char *ep = NULL;
	if (!group) {
		ep = text;
	} else {
		/* group items are comma separated; the first is the endpoint */
		bool first = true;
		for (char *s = text; s != NULL; s = save) {
			char *comma = strchr(s, ',');
			save = comma ? comma + 1 : NULL;
			if (comma)
				*comma = 0;
			item = milter_trim(s);
			if (first) {
				ep = item;
				first = false;
				continue;
			}
			if (*item == 0)
				continue;
			char *eq = strchr(item, '=');
			if (eq == NULL) {
				*error_r = xasprintf("milter setting \"%s\" is not name=value", item);
				return -1;
			}
			*eq = 0;
			char *name = milter_trim(item), *val = milter_trim(eq + 1);
			int bad = 0;
			if (strcmp(name, "connect_timeout") == 0)
				bad = milter_conf_parse_time(val, &e->connect_timeout_ms);
			else if (strcmp(name, "command_timeout") == 0)
				bad = milter_conf_parse_time(val, &e->command_timeout_ms);
			else if (strcmp(name, "content_timeout") == 0)
				bad = milter_conf_parse_time(val, &e->content_timeout_ms);
			else if (strcmp(name, "default_action") == 0)
				bad = milter_action_parse(val, &e->default_action);
			else if (strcmp(name, "protocol") == 0)
				bad = milter_conf_parse_protocol(val, &e->protocol, &e->no_header_reply);
			else if (strcmp(name, "reuse") == 0)
				bad = strcmp(val, "yes") == 0 ? (e->reuse = true, 0)
				      : strcmp(val, "no") == 0 ? (e->reuse = false, 0) : -1;
			else {
				*error_r = xasprintf("unknown milter setting \"%s\"", name);
				return -1;
			}
			if (bad) {
				*error_r = xasprintf("bad value \"%s\" for milter setting %s", val, name);
				return -1;
			}
		}
	}
	if (ep == NULL || *ep == 0) {
		*error_r = xstrdup("milter group without an endpoint");
		return -1;
	}
	if (milter_conf_endpoint(ep, e, error_r) < 0)
		return -1;
	e->name = xstrdup(ep);
	return 0;
}

void milter_endpoints_free(struct milter_endpoint **list, size_t n)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free((*list)[i].name);
	free(*list);
	*list = NULL;
}

int milter_conf_parse_list(const char *value, const struct milter_defaults *d,
			   struct milter_endpoint **list_r, size_t *n_r, char **error_r)
{
	char *copy = xstrdup(value ? value : "");
	char *s = copy;
	struct milter_endpoint *list = *list_r;
	size_t n = *n_r, n0 = *n_r;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == ',' || *s == '\n' || *s == '\r')
			s++;
		if (*s == 0)
			break;
		bool group = *s == '{';
		char *start, *end;
		if (group) {
			start = s + 1;
			end = strchr(start, '}');
			if (end == NULL) {
				*error_r = xstrdup("milter group without a closing '}'");
				goto fail;
			}
			if (memchr(start, '{', (size_t)(end - start)) != NULL) {
				*error_r = xstrdup("nested '{' in a milter group");
				goto fail;
			}
			*end = 0;
			s = end + 1;
		} else {
			start = s;
			while (*s && *s != ' ' && *s != '\t' && *s != ',' && *s != '\n' && *s != '\r')
				s++;
			if (*s)
				*s++ = 0;
			if (strchr(start, '}') != NULL) {
				*error_r = xstrdup("unbalanced '}' in milter list");
				goto fail;
			}
		}
		list = xreallocarray(list, n + 1, sizeof(*list));
		if (milter_conf_element(milter_trim(start), group, d, &list[n], error_r) < 0)
			goto fail;
		n++;
	}
	free(copy);
	*list_r = list;
	*n_r = n;
	return 0;
fail:
	for (size_t i = n0; i < n; i++)
		free(list[i].name);
	*list_r = list;
	*n_r = n0;
	free(copy);
	return -1;
}

/* Split "name=value, name=value" (commas or newlines between pairs). */
static int milter_conf_defaults(struct milter_conf *c, const char *text, char **error_r)
{
	char *copy = xstrdup(text ? text : "");
	char *save, *s;
	for (s = copy; s != NULL; s = save) {
		char *comma = strpbrk(s, ",\n");
		save = comma ? comma + 1 : NULL;
		if (comma)
			*comma = 0;
		char *item = milter_trim(s);
		if (*item == 0)
			continue;
		char *eq = strchr(item, '=');
		if (eq == NULL) {
			*error_r = xasprintf("milter_macro_defaults: \"%s\" is not name=value", item);
			free(copy);
			return -1;
		}
		*eq = 0;
		char *name = milter_trim(item), *val = milter_trim(eq + 1);
		size_t nl = strlen(name);
		if (nl >= 2 && name[0] == '{' && name[nl - 1] == '}') {
			name[nl - 1] = 0;
			name++;
		}
		c->default_names = xreallocarray(c->default_names, c->n_defaults + 1, sizeof(char *));
		c->default_values = xreallocarray(c->default_values, c->n_defaults + 1, sizeof(char *));
		c->default_names[c->n_defaults] = xstrdup(name);
		c->default_values[c->n_defaults] = xstrdup(val);
		c->n_defaults++;
	}
	free(copy);
	return 0;
}

/* A main.cf LIST value with commas turned into spaces (lists may use both). */
static char *milter_conf_words(const char *v)
{
	char *s = xstrdup(v ? v : "");
	for (char *p = s; *p; p++)
		if (*p == ',' || *p == '\t' || *p == '\n' || *p == '\r')
			*p = ' ';
	return s;
}

struct milter_conf *milter_conf_from_cfg(const struct cfg *cfg, const char *list,
					 const char *macro_defaults, char **error_r)
{
	struct milter_defaults d;
	d.connect_timeout_ms = cfg->milter_connect_timeout * 1000;
	d.command_timeout_ms = cfg->milter_command_timeout * 1000;
	d.content_timeout_ms = cfg->milter_content_timeout * 1000;
	if (milter_action_parse(cfg->milter_default_action, &d.default_action) < 0) {
		*error_r = xasprintf("bad milter_default_action \"%s\"", cfg->milter_default_action);
		return NULL;
	}
	d.protocol = (int)cfg->milter_protocol;
	d.no_header_reply = false;
	d.reuse = cfg->milter_connection_reuse;
	if (d.protocol != 2 && d.protocol != 3 && d.protocol != 4 && d.protocol != 6) {
		*error_r = xasprintf("bad milter_protocol %lld (use 2, 3, 4 or 6)", cfg->milter_protocol);
		return NULL;
	}
	if (d.connect_timeout_ms <= 0 || d.command_timeout_ms <= 0 || d.content_timeout_ms <= 0) {
		*error_r = xstrdup("milter timeouts must be positive");
		return NULL;
	}
	struct milter_conf *c = xcalloc(1, sizeof(*c));
	if (milter_conf_parse_list(list, &d, &c->milters, &c->n, error_r) < 0 ||
	    milter_conf_defaults(c, macro_defaults, error_r) < 0) {
		milter_conf_free(&c);
		return NULL;
	}
	c->macros[MILTER_MACROS_CONNECT] = milter_conf_words(cfg->milter_connect_macros);
	c->macros[MILTER_MACROS_HELO] = milter_conf_words(cfg->milter_helo_macros);
	c->macros[MILTER_MACROS_MAIL] = milter_conf_words(cfg->milter_mail_macros);
	c->macros[MILTER_MACROS_RCPT] = milter_conf_words(cfg->milter_rcpt_macros);
	c->macros[MILTER_MACROS_DATA] = milter_conf_words(cfg->milter_data_macros);
	c->macros[MILTER_MACROS_EOM] = milter_conf_words(cfg->milter_end_of_data_macros);
	c->macros[MILTER_MACROS_EOH] = milter_conf_words(cfg->milter_end_of_header_macros);
	c->macros[MILTER_MACROS_UNKNOWN] = milter_conf_words(cfg->milter_unknown_command_macros);
	c->daemon_name = xstrdup(cfg->milter_macro_daemon_name);
	c->v = xstrdup(cfg->milter_macro_v);
	return c;
}

void milter_conf_free(struct milter_conf **cp)
{
	struct milter_conf *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	milter_endpoints_free(&c->milters, c->n);
	for (size_t i = 0; i < MILTER_MACROS_COUNT; i++)
		free(c->macros[i]);
	for (size_t i = 0; i < c->n_defaults; i++) {
		free(c->default_names[i]);
		free(c->default_values[i]);
	}
	free(c->default_names);
	free(c->default_values);
	free(c->daemon_name);
	free(c->v);
	free(c);
}
