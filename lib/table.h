/*
 * table.h - Postfix-style lookup tables behind one interface.
 *
 * A table is named "type:name" as in main.cf. Supported types, one backend
 * per file (lib/table_<type>.c):
 *   inline:{ k1=v1, k2=v2, { k3 = value, with comma } }   keys and values in the spec
 *   static:value   static:{ value with spaces }            every key finds value
 *   texthash:/path   Postfix text table ("key value" lines, continuation lines
 *                    start with whitespace, '#' comment lines), read at open
 *   lmdb:/path       /path.lmdb compiled from /path by table_compile; reopened
 *                    when the file is replaced (checked on each lookup); a
 *                    missing file makes lookups fail (-1), not the open
 *   hash:/path btree:/path   aliases of lmdb: (with one warning per open) so a
 *                    Debian main.cf saying alias_maps = hash:/etc/aliases works
 *   regexp:/path     POSIX ERE, regexp_table(5): "/re/flags result" with $1..$9,
 *                    "!/re/ result", "if /re/" ... "endif"
 *   pcre:/path       PCRE2, pcre_table(5): same syntax, PCRE flags
 *   cidr:/path       cidr_table(5): "network/prefix result", IPv4 and IPv6,
 *                    first match wins; "!" negation and if/endif as for regexp
 *   unix:passwd.byname   the local user database (getpwnam): key user, value
 *                    "user:x:uid:gid:gecos:home:shell"
 * "proxy:" in front of a spec is accepted and ignored (Postern has no
 * proxymap; tables are opened by each process).
 *
 * Keys: fixed-string tables (inline, texthash, lmdb, unix) fold the key to
 * lowercase, at compile time and at lookup, as Postfix does by default.
 * regexp and pcre patterns are case-insensitive unless the flag 'i' toggles
 * it; cidr keys are IP addresses.
 *
 * Error strings (*error_r) are owned by this module and valid until the next
 * table_ call. Lookups block only on local file reads. Nothing calls back.
 * Not thread-safe: a multi-threaded user (a milter) opens one table per
 * thread and copies error strings.
 * Tests: tests/unit/lib/table_test.c, tests/fuzz/table_fuzz.c.
 */
#ifndef POSTERN_TABLE_H
#define POSTERN_TABLE_H

#include <stdbool.h>
#include <stddef.h>

struct table;

/*
 * Open one table from its "type:name" spec. File-backed tables read (and
 * for regexp/pcre/cidr compile) their file now; a syntax error fails the
 * open with "PATH:LINE: reason". Returns an owned table, or NULL with
 * *error_r (unknown type, missing file, bad line). A spec without "type:"
 * is an error ("unknown table type").
 */
struct table *table_open(const char *spec, const char **error_r);

/*
 * Look key (NUL-terminated) up. Returns 1 and *value_r (owned by the caller,
 * free()) when found, 0 when not found (*value_r NULL), -1 with *error_r when
 * the table cannot be read (lmdb file vanished, I/O error): callers treat -1
 * as a temporary failure, never as "not found".
 */
int table_lookup(struct table *t, const char *key, char **value_r, const char **error_r);

/* The spec the table was opened with (owned by t). */
const char *table_spec(const struct table *t);

/* Close and release; *t becomes NULL. Takes NULL and a NULL *t. */
void table_free(struct table **t);

/*
 * A list of tables as main.cf writes it ("lmdb:/etc/aliases, texthash:/x"):
 * separated by commas and/or whitespace, "{ }" keeping an inline:/static:
 * spec in one piece. Lookups try each table in order; the first hit wins;
 * an error of an earlier table stops the search (no answer is safer than a
 * wrong one). An empty list finds nothing.
 */
struct table_list;

/* Open every table of list; NULL with *error_r naming the failing spec. */
struct table_list *table_list_open(const char *list, const char **error_r);
/* As table_lookup, over the list. */
int table_list_lookup(struct table_list *l, const char *key, char **value_r, const char **error_r);
/* Number of tables in the list. */
size_t table_list_count(const struct table_list *l);
/* Release; *l becomes NULL. Takes NULL. */
void table_list_free(struct table_list **l);

/*
 * postmap: compile "lmdb:/path" (also "hash:", "btree:", or a bare path,
 * all meaning lmdb) from the text file /path ("key value" lines as for
 * texthash) into /path.lmdb, atomically (temp file in the same directory,
 * fsync, rename). "texthash:/path" only checks the syntax. Keys are folded
 * to lowercase; a duplicate key keeps its first value and warns
 * (log_warning). Returns 0, or -1 with *error_r ("PATH:LINE: reason").
 */
int table_compile(const char *spec, const char **error_r);

/*
 * newaliases: like table_compile, but /path is in aliases(5) format:
 * "name: value, value" with continuation lines, '#' comment lines; keys
 * (the names, quotes removed) are folded to lowercase, values kept as
 * written with continuation lines joined. Returns as table_compile.
 */
int table_compile_aliases(const char *spec, const char **error_r);

#endif
