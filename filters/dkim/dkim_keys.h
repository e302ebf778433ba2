/*
 * dkim_keys.h - which key signs which sender (opendkim-compatible tables).
 *
 * KeyTable lines: "NAME DOMAIN:SELECTOR:PATH" (PATH of a PEM private key).
 * SigningTable lines: "PATTERN NAME" where PATTERN is an address, a domain,
 * or (when the SigningTable setting starts with "refile:") a pattern with
 * '*' wildcards such as "*@example.com". Or one key for a list of domains:
 * Domain, Selector, KeyFile. Every key is read into memory at start-up (as
 * root, before privileges are dropped), and again on SIGHUP (as UserID):
 * the set in use is reference-counted, so a message being signed keeps the
 * keys it started with while a reload installs new ones.
 */
#ifndef POSTERN_DKIM_KEYS_H
#define POSTERN_DKIM_KEYS_H

#include "lib/common.h"

enum dkim_keys_alg {
	DKIM_KEYS_RSA,     /* rsa-sha256 */
	DKIM_KEYS_ED25519, /* ed25519-sha256 (RFC 8463) */
};

struct dkim_key {
	char *name;              /* KeyTable name, owned */
	char *domain;            /* d= (lower case), owned */
	char *selector;          /* s=, owned */
	char *pem;               /* private key text, NUL-terminated, owned, wiped on free */
	enum dkim_keys_alg alg;  /* from the key's type */
	unsigned bits;           /* key size, for logs */
};

struct dkim_sign_rule {
	char *pattern;           /* address, domain or wildcard pattern, owned */
	struct dkim_key *key;    /* borrowed from the table's keys */
};

struct dkim_keys {
	struct dkim_key *keys;        /* owned array */
	size_t nkeys;                 /* entries in keys */
	struct dkim_sign_rule *rules; /* owned array, file order */
	size_t nrules;                /* entries in rules */
	bool wildcard;                /* SigningTable is refile: */
	bool subdomains;              /* single-key mode: also sign subdomains */
	unsigned refs;                /* references while installed (dkim_keys_install) */
};

/* Load KeyTable and SigningTable (paths; SigningTable may carry "refile:").
 * Returns 0, or -1 with *error_r (static per-thread storage). */
int dkim_keys_load_tables(struct dkim_keys *k, const char *keytable, const char *signtable,
			  const char **error_r);
/* Single-key mode: domains is a comma/space list; same convention. */
int dkim_keys_load_single(struct dkim_keys *k, const char *domains, const char *selector,
			  const char *keyfile, bool subdomains, const char **error_r);
/* The key for a From address and its lower-case domain, or NULL (no signing).
 * The result is borrowed from k. */
const struct dkim_key *dkim_keys_find(const struct dkim_keys *k, const char *addr,
				      const char *domain);
/* Free everything; k is empty afterwards. */
void dkim_keys_free(struct dkim_keys *k);

/*
 * The set in use. dkim_keys_install makes k (heap-allocated, loaded) the
 * current set and takes it over (NULL: none); the previous one is freed
 * once its last user releases it. dkim_keys_acquire returns the current set with a
 * reference (NULL when none is installed); dkim_keys_release drops one and
 * clears *kp. Thread-safe (one mutex); never blocks beyond it.
 */
void dkim_keys_install(struct dkim_keys *k);
struct dkim_keys *dkim_keys_acquire(void);
void dkim_keys_release(struct dkim_keys **kp);

/* Read a PEM private key file and learn its type and size. Returns 0, or -1
 * with *error_r. */
int dkim_keys_read_pem(const char *path, char **pem_r, enum dkim_keys_alg *alg_r,
		       unsigned *bits_r, const char **error_r);

#endif
