/*
 * queue_local.c - local and virtual recipient resolution (see queue_local.h).
 *
 * Purpose: turn one envelope recipient into delivery targets, from trusted
 * configuration only.
 * Owns: the targets it returns.
 * Never: takes a command or path from the queue file or the network (only
 * alias tables, :include: files and virtual_mailbox_maps, which the
 * administrator owns, may name them); lets a mailbox path climb out of
 * virtual_mailbox_base with "..".
 * Limits: QUEUE_LOCAL_DEPTH_MAX recursion, QUEUE_LOCAL_TARGETS_MAX targets,
 * QUEUE_LOCAL_INCLUDE_MAX bytes per :include: file.
 * Tests: tests/unit/queue/queue_local_test.c.
 */
#include <ctype.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mta/queue/queue_local.h"
#include "lib/common.h"

/* allow_mail_to_* classes */
#define CLASS_ALIAS "alias"
#define CLASS_INCLUDE "include"

struct queue_local {
	const struct cfg *cfg;          /* borrowed */
	queue_local_lookup_fn *lookup;  /* table lookups */
	void *ctx;                      /* for lookup */
};

struct resolve {
	struct queue_local *ql;
	struct queue_targets *out;
	const char *orig;   /* the envelope recipient */
};

struct queue_local *queue_local_new(const struct cfg *cfg, queue_local_lookup_fn *lookup, void *ctx)
{
	struct queue_local *ql = xcalloc(1, sizeof(*ql));
	ql->cfg = cfg;
	ql->lookup = lookup;
	ql->ctx = ctx;
	return ql;
}

void queue_local_free(struct queue_local **qlp)
{
	free(*qlp);
	*qlp = NULL;
}

void queue_target_clear(struct queue_target *x)
{
	free(x->final);
	free(x->user);
	free(x->path);
	free(x->home);
	free(x->dsn);
	free(x->reason);
	free(x->key);
	memset(x, 0, sizeof(*x));
}

void queue_targets_free(struct queue_targets *t)
{
	for (size_t i = 0; i < t->n; i++)
		queue_target_clear(&t->v[i]);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s);
	for (char *p = d; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

/* Append a target; the strings are copied. Duplicates (same key) are
 * dropped, as Postfix drops duplicate deliveries of one message. */
static struct queue_target *add_target(struct resolve *r, enum queue_target_kind kind,
				       const char *final)
{
	struct queue_targets *t = r->out;
	if (t->n >= QUEUE_LOCAL_TARGETS_MAX)
		return NULL;
	t->v = xreallocarray(t->v, t->n + 1, sizeof(*t->v));
	struct queue_target *x = &t->v[t->n++];
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	x->final = xstrdup(final);
	x->user = xstrdup("");
	x->path = xstrdup("");
	x->home = xstrdup("/");
	x->dsn = xstrdup("");
	x->reason = xstrdup("");
	x->relay = "local";
	x->what = "";
	return x;
}

static void set_str(char **p, const char *v)
{
	free(*p);
	*p = xstrdup(v);
}

static void fail_target(struct resolve *r, bool permanent, const char *final, const char *relay,
			const char *dsn, const char *fmt, ...) PRINTF_LIKE(6, 7);

static void fail_target(struct resolve *r, bool permanent, const char *final, const char *relay,
			const char *dsn, const char *fmt, ...)
{
	struct queue_target *x = add_target(r, permanent ? QT_BOUNCE : QT_DEFER, final);
	if (x == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	set_str(&x->reason, text ? text : "resolution failed");
	free(text);
	set_str(&x->dsn, dsn);
	x->relay = relay;
}

static void finish_key(struct queue_target *x)
{
	free(x->key);
	x->key = xasprintf("%d:%s:%s", (int)x->kind, x->final, x->path);
}

/* Split "a, b c" (commas and blanks), honouring "double quotes" so that
 * a quoted "|command with args, and commas" stays one item. Returns an
 * owned NULL-terminated vector. */
static char **split_items(const char *s)
{
	size_t n = 0, cap = 4;
	char **v = xcalloc(cap + 1, sizeof(*v));
	const char *p = s;
	while (*p) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		struct buf item;
		buf_init(&item, 64 * 1024);
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				buf_putc(&item, *p++);
			}
			if (*p == '"')
				p++;
		} else if (*p == '|' || *p == '/' || *p == ':') {
			/* commands, files and :include: run to the next comma */
			while (*p && *p != ',')
				buf_putc(&item, *p++);
			while (item.len > 0 && isspace((unsigned char)item.data[item.len - 1]))
				buf_truncate(&item, item.len - 1);
		} else {
			/* a word; "{ ... }" (inline: tables) stays whole */
			int depth = 0;
			while (*p && (depth > 0 || (*p != ',' && !isspace((unsigned char)*p)))) {
				if (*p == '{')
					depth++;
				else if (*p == '}' && depth > 0)
					depth--;
				buf_putc(&item, *p++);
			}
		}
		if (n == cap) {
			cap *= 2;
			v = xreallocarray(v, cap + 1, sizeof(*v));
		}
		v[n++] = xstrdup(buf_cstr(&item));
		v[n] = NULL;
		buf_free(&item);
	}
	return v;
}

static void free_items(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Does list (a main.cf list value) contain word, ASCII case-insensitive? */
static bool list_has(const char *list, const char *word)
{
	char **v = split_items(list);
	bool found = false;
	for (size_t i = 0; v[i] && !found; i++)
		found = strcasecmp(v[i], word) == 0;
	free_items(v);
	return found;
}

/* Does a domain list (words and type:name tables keyed by domain) match
 * domain? Returns 1, 0, or -1 on a table error. */
static int domain_match(struct queue_local *ql, const char *list, const char *domain)
{
	char **v = split_items(list);
	int rc = 0;
	for (size_t i = 0; v[i] && rc == 0; i++) {
		if (strchr(v[i], ':') != NULL && v[i][0] != '[') {
			char *value = NULL;
			const char *err = NULL;
			int r = ql->lookup(ql->ctx, v[i], domain, &value, &err);
			free(value);
			rc = r < 0 ? -1 : r;
		} else if (strcasecmp(v[i], domain) == 0) {
			rc = 1;
		}
	}
	free_items(v);
	return rc;
}

/* Split the local part at the first recipient_delimiter character:
 * "user+ext" gives base "user" (owned) and returns true. */
static bool split_ext(const char *delims, const char *local, size_t local_len, char **base_r)
{
	if (delims == NULL || *delims == '\0')
		return false;
	for (size_t i = 0; i < local_len; i++)
		if (strchr(delims, local[i]) != NULL && i > 0) {
			*base_r = xmemdup(local, i);
			return true;
		}
	return false;
}

/*
 * Address lookup in Postfix's order for virtual(5) style tables:
 * user+ext@domain, user@domain, @domain. Returns as the lookup callback.
 */
static int lookup_address(struct queue_local *ql, const char *maps, const char *addr, char **value_r)
{
	if (maps == NULL || *maps == '\0')
		return 0;
	const char *err = NULL;
	char *low = lower_dup(addr);
	const char *at = strrchr(low, '@');
	int r = ql->lookup(ql->ctx, maps, low, value_r, &err);
	char *base = NULL;
	if (r == 0 && at != NULL && split_ext(ql->cfg->recipient_delimiter, low, (size_t)(at - low), &base)) {
		char *key = xasprintf("%s%s", base, at);
		r = ql->lookup(ql->ctx, maps, key, value_r, &err);
		free(key);
		free(base);
	}
	if (r == 0 && at != NULL)
		r = ql->lookup(ql->ctx, maps, at, value_r, &err);
	free(low);
	return r;
}

static void resolve_addr(struct resolve *r, const char *addr, int depth);
static void resolve_local(struct resolve *r, const char *addr, const char *user, int depth,
			  const char *cls);

/* Mailbox of a passwd user. */
static void deliver_mailbox(struct resolve *r, const char *final, const char *user)
{
	const struct cfg *cfg = r->ql->cfg;
	struct passwd pw, *res = NULL;
	char pwbuf[4096];
	int e = getpwnam_r(user, &pw, pwbuf, sizeof(pwbuf), &res);
	if (e != 0) {
		fail_target(r, false, final, "local", "4.3.0", "cannot look up user \"%s\": %s", user,
			    strerror(e));
		return;
	}
	if (res == NULL) {
		fail_target(r, true, final, "local", "5.1.1", "unknown user: \"%s\"", user);
		return;
	}
	const char *hm = cfg->home_mailbox;
	struct queue_target *x;
	if (hm[0] == '\0') {
		x = add_target(r, QT_MBOX, final);
		if (x == NULL)
			return;
		free(x->path);
		x->path = xasprintf("%s/%s", cfg->mail_spool_directory, pw.pw_name);
		x->what = "mailbox";
	} else {
		size_t n = strlen(hm);
		bool maildir = hm[n - 1] == '/';
		x = add_target(r, maildir ? QT_MAILDIR : QT_MBOX, final);
		if (x == NULL)
			return;
		free(x->path);
		x->path = xasprintf("%s/%s", pw.pw_dir, hm);
		x->what = maildir ? "maildir" : "mailbox";
	}
	set_str(&x->user, pw.pw_name);
	set_str(&x->home, pw.pw_dir);
	x->uid = (uint32_t)pw.pw_uid;
	x->gid = (uint32_t)pw.pw_gid;
	if (pw.pw_uid == 0) {
		/* never deliver as root (master refuses): default_privs, as
		 * Postfix's local(8) does for root-owned deliveries */
		struct passwd dp, *dres = NULL;
		char dbuf[4096];
		if (getpwnam_r(cfg->default_privs, &dp, dbuf, sizeof(dbuf), &dres) == 0 && dres) {
			x->uid = (uint32_t)dp.pw_uid;
			x->gid = (uint32_t)dp.pw_gid;
		}
	}
	finish_key(x);
}

/* uid/gid for alias |command and /file deliveries: default_privs. */
static bool privs_for_alias(struct resolve *r, uint32_t *uid, uint32_t *gid)
{
	struct passwd pw, *res = NULL;
	char pwbuf[4096];
	if (getpwnam_r(r->ql->cfg->default_privs, &pw, pwbuf, sizeof(pwbuf), &res) != 0 || res == NULL)
		return false;
	*uid = (uint32_t)pw.pw_uid;
	*gid = (uint32_t)pw.pw_gid;
	return true;
}

/* May this alias class deliver to a command/file (allow_mail_to_*), and as
 * whom? false (and the target failed) when not. */
static bool alias_allowed(struct resolve *r, const char *final, const char *allow, const char *cls,
			  const char *what, uint32_t *uid, uint32_t *gid)
{
	if (!list_has(allow, cls)) {
		fail_target(r, true, final, "local", "5.7.1", "mail to %s is restricted", what);
		return false;
	}
	*uid = (uint32_t)getuid();
	*gid = (uint32_t)getgid();
	if (!privs_for_alias(r, uid, gid)) {
		fail_target(r, false, final, "local", "4.3.5", "unknown default_privs user \"%s\"",
			    r->ql->cfg->default_privs);
		return false;
	}
	return true;
}

static void alias_command(struct resolve *r, const char *final, const char *cmd, const char *cls)
{
	uint32_t uid, gid;
	if (!alias_allowed(r, final, r->ql->cfg->allow_mail_to_commands, cls, "command", &uid, &gid))
		return;
	struct queue_target *x = add_target(r, QT_PIPE, final);
	if (x == NULL)
		return;
	set_str(&x->path, cmd);
	x->uid = uid;
	x->gid = gid;
	x->what = "command";
	finish_key(x);
}

static void alias_file(struct resolve *r, const char *final, const char *path, const char *cls)
{
	uint32_t uid, gid;
	if (!alias_allowed(r, final, r->ql->cfg->allow_mail_to_files, cls, "file", &uid, &gid))
		return;
	size_t n = strlen(path);
	struct queue_target *x = add_target(r, path[n - 1] == '/' ? QT_MAILDIR : QT_MBOX, final);
	if (x == NULL)
		return;
	set_str(&x->path, path);
	x->uid = uid;
	x->gid = gid;
	x->what = "file";
	finish_key(x);
}

static void expand_items(struct resolve *r, const char *final, const char *user, const char *value,
			 int depth, const char *cls);

static void alias_include(struct resolve *r, const char *final, const char *user, const char *path,
			  int depth)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		fail_target(r, false, final, "local", "4.3.0", "cannot open include file %s: %s", path,
			    strerror(errno));
		return;
	}
	struct buf text;
	buf_init(&text, QUEUE_LOCAL_INCLUDE_MAX);
	char chunk[4096];
	ssize_t n;
	bool big = false;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(&text, chunk, (size_t)n) < 0) {
			big = true;
			break;
		}
	close(fd);
	if (big || n < 0) {
		fail_target(r, false, final, "local", "4.3.0", "cannot read include file %s", path);
		buf_free(&text);
		return;
	}
	/* one item list per line; '#' lines are comments */
	char *save = NULL;
	for (char *line = strtok_r(text.data ? text.data : (char *)"", "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		while (isspace((unsigned char)*line))
			line++;
		if (*line == '#' || *line == '\0')
			continue;
		expand_items(r, final, user, line, depth + 1, CLASS_INCLUDE);
	}
	buf_free(&text);
}

/* Expand an alias value: addresses, :include:, |command, /file. */
static void expand_items(struct resolve *r, const char *final, const char *user, const char *value,
			 int depth, const char *cls)
{
	if (depth > QUEUE_LOCAL_DEPTH_MAX) {
		fail_target(r, true, final, "local", "5.4.6", "mail forwarding loop for %s", final);
		return;
	}
	char **items = split_items(value);
	for (size_t i = 0; items[i]; i++) {
		const char *it = items[i];
		if (strncasecmp(it, ":include:", 9) == 0) {
			if (it[9] != '/')
				fail_target(r, true, final, "local", "5.3.5", "include file must be an absolute path");
			else
				alias_include(r, final, user, it + 9, depth);
		} else if (it[0] == '|') {
			alias_command(r, final, it + 1, cls);
		} else if (it[0] == '/') {
			alias_file(r, final, it, cls);
		} else if (strchr(it, '@') == NULL) {
			if (strcasecmp(it, user) == 0) {
				/* an alias naming itself: that user's own mailbox */
				deliver_mailbox(r, final, it);
			} else {
				char *addr = xasprintf("%s@%s", it, r->ql->cfg->myorigin);
				resolve_local(r, addr, it, depth + 1, cls);
				free(addr);
			}
		} else {
			resolve_addr(r, it, depth + 1);
		}
	}
	free_items(items);
}

/* A recipient in a mydestination domain (or an unqualified name). */
static void resolve_local(struct resolve *r, const char *addr, const char *local, int depth,
			  const char *cls)
{
	struct queue_local *ql = r->ql;
	char *user = lower_dup(local);
	char *base = NULL;
	bool has_ext = split_ext(ql->cfg->recipient_delimiter, user, strlen(user), &base);
	char *value = NULL;
	const char *err = NULL;
	int found = 0;
	if (ql->cfg->alias_maps[0] != '\0') {
		found = ql->lookup(ql->ctx, ql->cfg->alias_maps, user, &value, &err);
		if (found == 0 && has_ext)
			found = ql->lookup(ql->ctx, ql->cfg->alias_maps, base, &value, &err);
	}
	if (found < 0) {
		fail_target(r, false, addr, "local", "4.3.0", "alias_maps lookup failure: %s",
			    err ? err : "error");
	} else if (found > 0) {
		expand_items(r, addr, has_ext ? base : user, value, depth, CLASS_ALIAS);
	} else {
		deliver_mailbox(r, addr, has_ext ? base : user);
	}
	free(value);
	free(base);
	free(user);
}

/* Virtual mailbox domain recipient. */
static void resolve_virtual(struct resolve *r, const char *addr)
{
	struct queue_local *ql = r->ql;
	const struct cfg *cfg = ql->cfg;
	char *path = NULL, *uidv = NULL, *gidv = NULL;
	int f = lookup_address(ql, cfg->virtual_mailbox_maps, addr, &path);
	if (f < 0) {
		fail_target(r, false, addr, "virtual", "4.3.0", "virtual_mailbox_maps lookup failure");
		goto done;
	}
	if (f == 0) {
		fail_target(r, true, addr, "virtual", "5.1.1", "unknown user: \"%s\"", addr);
		goto done;
	}
	/* relative to virtual_mailbox_base, never climbing out of it */
	if (path[0] == '\0' || strstr(path, "..") != NULL) {
		fail_target(r, false, addr, "virtual", "4.3.5", "bad mailbox path in virtual_mailbox_maps");
		goto done;
	}
	uint32_t uid = (uint32_t)getuid(), gid = (uint32_t)getgid();
	if (cfg->virtual_uid_maps[0] != '\0') {
		char *end = NULL;
		int u = lookup_address(ql, cfg->virtual_uid_maps, addr, &uidv);
		unsigned long v = u > 0 ? strtoul(uidv, &end, 10) : 0;
		if (u <= 0 || end == uidv || *end != '\0' || v > UINT32_MAX ||
		    (long long)v < cfg->virtual_minimum_uid) {
			fail_target(r, false, addr, "virtual", "4.3.5", "no valid uid for %s in virtual_uid_maps",
				    addr);
			goto done;
		}
		uid = (uint32_t)v;
	}
	if (cfg->virtual_gid_maps[0] != '\0') {
		char *end = NULL;
		int g = lookup_address(ql, cfg->virtual_gid_maps, addr, &gidv);
		unsigned long v = g > 0 ? strtoul(gidv, &end, 10) : 0;
		if (g <= 0 || end == gidv || *end != '\0' || v > UINT32_MAX || v == 0) {
			fail_target(r, false, addr, "virtual", "4.3.5", "no valid gid for %s in virtual_gid_maps",
				    addr);
			goto done;
		}
		gid = (uint32_t)v;
	}
	size_t n = strlen(path);
	struct queue_target *x = add_target(r, path[n - 1] == '/' ? QT_MAILDIR : QT_MBOX, addr);
	if (x == NULL)
		goto done;
	const char *base = cfg->virtual_mailbox_base;
	free(x->path);
	x->path = xasprintf("%s%s%s", base, base[0] && base[strlen(base) - 1] != '/' ? "/" : "", path);
	set_str(&x->user, addr);
	set_str(&x->home, base[0] ? base : "/");
	x->uid = uid;
	x->gid = gid;
	x->relay = "virtual";
	x->what = x->kind == QT_MAILDIR ? "maildir" : "mailbox";
	finish_key(x);
done:
	free(path);
	free(uidv);
	free(gidv);
}

static void resolve_addr(struct resolve *r, const char *addr, int depth)
{
	struct queue_local *ql = r->ql;
	const struct cfg *cfg = ql->cfg;
	if (depth > QUEUE_LOCAL_DEPTH_MAX) {
		fail_target(r, true, addr, "none", "5.4.6", "mail forwarding loop for %s", addr);
		return;
	}
	/* 1. virtual aliasing, recursively */
	char *value = NULL;
	int f = lookup_address(ql, cfg->virtual_alias_maps, addr, &value);
	if (f < 0) {
		fail_target(r, false, addr, "none", "4.3.0", "virtual_alias_maps lookup failure");
		return;
	}
	if (f > 0) {
		char **items = split_items(value);
		free(value);
		bool self = false;
		for (size_t i = 0; items[i]; i++) {
			if (strcasecmp(items[i], addr) == 0)
				self = true;
			else
				resolve_addr(r, items[i], depth + 1);
		}
		free_items(items);
		if (!self)
			return;
	}
	/* 2. the domain class */
	const char *at = strrchr(addr, '@');
	if (at == NULL) {
		resolve_local(r, addr, addr, depth, CLASS_ALIAS);
		return;
	}
	char *domain = lower_dup(at + 1);
	char *local = xmemdup(addr, (size_t)(at - addr));
	int m;
	if ((m = domain_match(ql, cfg->mydestination, domain)) != 0) {
		if (m < 0)
			fail_target(r, false, addr, "local", "4.3.0", "mydestination lookup failure");
		else
			resolve_local(r, addr, local, depth, CLASS_ALIAS);
	} else if ((m = domain_match(ql, cfg->virtual_alias_domains, domain)) != 0) {
		if (m < 0)
			fail_target(r, false, addr, "none", "4.3.0", "virtual_alias_domains lookup failure");
		else
			fail_target(r, true, addr, "none", "5.1.1",
				    "User unknown in virtual alias table");
	} else if ((m = domain_match(ql, cfg->virtual_mailbox_domains, domain)) != 0) {
		if (m < 0)
			fail_target(r, false, addr, "virtual", "4.3.0", "virtual_mailbox_domains lookup failure");
		else
			resolve_virtual(r, addr);
	} else {
		/* the outbound smtp client comes with its own issue */
		fail_target(r, false, addr, "none", "4.3.0", "no outbound transport yet");
	}
	free(domain);
	free(local);
}

void queue_local_resolve(struct queue_local *ql, const char *rcpt, struct queue_targets *out)
{
	struct resolve r = { ql, out, rcpt };
	memset(out, 0, sizeof(*out));
	resolve_addr(&r, rcpt, 0);
	if (out->n == 0 || out->n >= QUEUE_LOCAL_TARGETS_MAX) {
		bool many = out->n > 0;
		queue_targets_free(out);
		fail_target(&r, true, rcpt, "local", "5.4.6",
			    many ? "too many recipients from alias expansion" : "alias expands to nothing");
	}
	for (size_t i = 0; i < out->n; i++)
		if (out->v[i].key == NULL)
			finish_key(&out->v[i]);
}
