/*
 * queue_local.h - where a recipient goes: local and virtual resolution.
 *
 * From trusted configuration only (the queue file holds addresses, never
 * commands or paths), a recipient address becomes a list of delivery
 * targets, in Postfix's order:
 *   1. virtual_alias_maps, recursively (limit QUEUE_LOCAL_DEPTH_MAX levels,
 *      QUEUE_LOCAL_TARGETS_MAX results); an alias listing itself ends there;
 *   2. the domain class: mydestination -> local: alias_maps (addresses,
 *      :include:/file, |command when allow_mail_to_commands permits, /file
 *      when allow_mail_to_files permits), then the passwd user, whose
 *      mailbox is home_mailbox (Maildir when it ends in /) or
 *      mail_spool_directory/USER; virtual_alias_domains -> unknown user;
 *      virtual_mailbox_domains -> virtual_mailbox_maps path under
 *      virtual_mailbox_base, uid/gid from virtual_uid_maps/virtual_gid_maps;
 *      any other domain -> deferred, "no outbound transport yet".
 * Table lookups go through a callback so the resolver is testable with
 * in-memory tables and independent of the table backends.
 *
 * Blocks on table and passwd lookups and on reading :include: files. Not
 * thread-safe. Tests: tests/unit/queue/queue_local_test.c.
 */
#ifndef POSTERN_QUEUE_LOCAL_H
#define POSTERN_QUEUE_LOCAL_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/cfg.h"

#define QUEUE_LOCAL_DEPTH_MAX 20     /* alias recursion levels */
#define QUEUE_LOCAL_TARGETS_MAX 1000 /* targets per recipient */
#define QUEUE_LOCAL_INCLUDE_MAX (1024 * 1024) /* bytes of one :include: file */

enum queue_target_kind {
	QT_MAILDIR, /* postern-lda --maildir path */
	QT_MBOX,    /* postern-lda --mbox path (mailbox or alias /file) */
	QT_PIPE,    /* /bin/sh -c path (alias |command) */
	QT_BOUNCE,  /* permanent failure decided here (dsn, reason) */
	QT_DEFER,   /* temporary failure decided here (dsn, reason) */
};

struct queue_target {
	enum queue_target_kind kind; /* what to do */
	char *final;   /* final recipient address; owned */
	char *user;    /* postern-lda -d value; owned ("" for pipes) */
	char *path;    /* Maildir directory, mbox file or command; owned */
	char *home;    /* working directory for the delivery; owned */
	uint32_t uid;  /* run as (master ignores it when not root) */
	uint32_t gid;
	const char *relay; /* "local", "virtual" or "none"; static */
	const char *what;  /* "maildir", "mailbox", "file", "command"; static */
	char *dsn;     /* enhanced status for QT_BOUNCE/QT_DEFER; owned */
	char *reason;  /* text for QT_BOUNCE/QT_DEFER; owned */
	char *key;     /* stable identity of this target (status records); owned */
};

struct queue_targets {
	struct queue_target *v; /* owned array */
	size_t n;               /* entries */
};

/* Look key up in maps (a main.cf value: "type:name, type:name ..."; the
 * first table that has the key wins). Returns 1 with *value_r (owned by the
 * caller), 0 when not found, -1 on a lookup error (*error_r, temporary). */
typedef int queue_local_lookup_fn(void *ctx, const char *maps, const char *key, char **value_r,
				  const char **error_r);

struct queue_local;

/* cfg is borrowed and must outlive the resolver. */
struct queue_local *queue_local_new(const struct cfg *cfg, queue_local_lookup_fn *lookup, void *ctx);
void queue_local_free(struct queue_local **ql);

/* Resolve one recipient into *out (which the caller frees with
 * queue_targets_free). Always gives at least one target: failures are
 * QT_BOUNCE or QT_DEFER targets. */
void queue_local_resolve(struct queue_local *ql, const char *rcpt, struct queue_targets *out);

void queue_targets_free(struct queue_targets *t);
/* Free the strings of one target (not the target itself). */
void queue_target_clear(struct queue_target *t);

/* The lookup callback over lib/table.h tables (queue_tables.c). */
queue_local_lookup_fn queue_tables_lookup;
/* Forget opened tables (after a reload). */
void queue_tables_flush(void);

#endif
