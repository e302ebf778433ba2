/*
 * addrmap.c - Postfix's address lookup order (virtual(5), aliases(5)).
 *
 * Purpose: find the table entry for an address by trying, in order,
 * user+ext@domain, user@domain, user+ext, user, @domain, as the caller's
 * flags allow (see addrmap.h for which tables use which forms).
 * Owns: nothing; the keys it builds are freed before returning.
 * Never: interprets the value; decides which domains are local.
 * Tests: tests/unit/lib/addrmap_test.c.
 */
#include "lib/addrmap.h"
#include "lib/table.h"
#include "lib/common.h"

/* Try one key; 1/0/-1 as table_list_lookup. */
static int addrmap_try(struct table_list *maps, char *key, char **value_r, const char **error_r)
{
	int rc = table_list_lookup(maps, key, value_r, error_r);
	free(key);
	return rc;
}

int addrmap_lookup(struct table_list *maps, const char *addr, const char *delims, int flags,
		   char **value_r, char **ext_r, const char **error_r)
{
	*value_r = NULL;
	if (ext_r)
		*ext_r = NULL;
	/* the domain starts after the last '@' (a quoted local part may hold '@') */
	const char *at = strrchr(addr, '@');
	size_t llen = at ? (size_t)(at - addr) : strlen(addr);
	const char *domain = at ? at + 1 : NULL;
	/* user and extension: split at the first delimiter character, unless
	 * that would leave the user empty */
	size_t ulen = llen;
	if (delims != NULL && *delims != 0) {
		for (size_t i = 0; i < llen; i++) {
			if (strchr(delims, addr[i]) != NULL && addr[i] != 0) {
				ulen = i;
				break;
			}
		}
		if (ulen == 0)
			ulen = llen;
	}
	bool has_ext = ulen < llen;
	int rc;

	if ((flags & ADDRMAP_FULL) && domain != NULL) {
		if ((rc = addrmap_try(maps, xstrdup(addr), value_r, error_r)) != 0)
			return rc;
		if (has_ext) {
			rc = addrmap_try(maps, xasprintf("%.*s@%s", (int)ulen, addr, domain), value_r, error_r);
			if (rc != 0)
				goto found_stripped;
		}
	}
	if (flags & ADDRMAP_LOCALPART) {
		if ((rc = addrmap_try(maps, xmemdup(addr, llen), value_r, error_r)) != 0)
			return rc;
		if (has_ext) {
			rc = addrmap_try(maps, xmemdup(addr, ulen), value_r, error_r);
			if (rc != 0)
				goto found_stripped;
		}
	}
	if ((flags & ADDRMAP_DOMAIN) && domain != NULL) {
		if ((rc = addrmap_try(maps, xasprintf("@%s", domain), value_r, error_r)) != 0)
			return rc;
	}
	return 0;

found_stripped:
	if (rc == 1 && ext_r != NULL)
		*ext_r = xmemdup(addr + ulen + 1, llen - ulen - 1);
	return rc;
}
