/*
 * addrmap.h - Postfix's address lookup order over a table list.
 *
 * For an address user+ext@domain (recipient_delimiter "+") the keys tried,
 * in this order, stopping at the first hit, are:
 *   1. user+ext@domain           ADDRMAP_FULL
 *   2. user@domain               ADDRMAP_FULL, when there is an extension
 *   3. user+ext                  ADDRMAP_LOCALPART
 *   4. user                      ADDRMAP_LOCALPART, when there is an extension
 *   5. @domain                   ADDRMAP_DOMAIN
 * Which forms a table gets (Postfix virtual(5), virtual(8), aliases(5)):
 *   virtual_alias_maps     ADDRMAP_VIRTUAL_ALIAS: FULL | DOMAIN, plus LOCALPART
 *                          when the domain is local (mydestination etc.; the
 *                          caller knows and adds the flag)
 *   virtual_mailbox_maps, virtual_uid_maps, virtual_gid_maps
 *                          ADDRMAP_VIRTUAL_MAILBOX: FULL | DOMAIN
 *   alias_maps, local_recipient_maps (after unix:passwd.byname)
 *                          ADDRMAP_ALIAS: LOCALPART only (key is the local part)
 * recipient_delimiter may hold several characters; the local part is split
 * at the first of any of them (Postfix >= 2.11). An extension is never
 * stripped when it would leave an empty user. Keys are passed as built; the
 * fixed-string tables fold them to lowercase, so "User@Example.COM" finds
 * "user@example.com". An address without '@' has only local-part forms.
 * Tests: tests/unit/lib/addrmap_test.c.
 */
#ifndef POSTERN_ADDRMAP_H
#define POSTERN_ADDRMAP_H

#include "lib/table.h"

enum addrmap_flags {
	ADDRMAP_FULL = 1 << 0,      /* user+ext@domain, user@domain */
	ADDRMAP_LOCALPART = 1 << 1, /* user+ext, user */
	ADDRMAP_DOMAIN = 1 << 2,    /* @domain */
};

#define ADDRMAP_VIRTUAL_ALIAS (ADDRMAP_FULL | ADDRMAP_DOMAIN)
#define ADDRMAP_VIRTUAL_MAILBOX (ADDRMAP_FULL | ADDRMAP_DOMAIN)
#define ADDRMAP_ALIAS ADDRMAP_LOCALPART

/*
 * Look addr up in maps with the forms flags selects, in the order above.
 * delims is recipient_delimiter (NULL or "" : no extensions).
 * Returns 1 with *value_r (owned), and when ext_r is not NULL *ext_r set to
 * the owned extension (without delimiter) if the hit was on a key with the
 * extension stripped (so the caller can propagate it), else NULL;
 * 0 when no form matched; -1 with *error_r on a table error (temporary).
 */
int addrmap_lookup(struct table_list *maps, const char *addr, const char *delims, int flags,
		   char **value_r, char **ext_r, const char **error_r);

#endif
