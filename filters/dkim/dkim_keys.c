/*
 * dkim_keys.c - KeyTable, SigningTable and single-key settings (dkim_keys.h).
 *
 * Purpose: map a From address to the key that signs it.
 * Owns: the private keys in memory (wiped with explicit_bzero when freed);
 * the installed set and its reference count.
 * Never: frees a set a message still uses; signs for a domain nobody listed.
 * Limits: 64 KiB per key file, 1 MiB per table (filter_cfg's limits).
 * Tests: tests/unit/filters/dkim_keys_test.c.
 */
#include <fnmatch.h>
#include <pthread.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <strings.h>

#include "filters/common/filter_cfg.h"
#include "filters/dkim/dkim_keys.h"
#include "lib/buf.h"
#include "lib/common.h"

#define DKIM_KEYS_PEM_MAX (64 * 1024)

static __thread char keys_error[512];
static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dkim_keys *keys_current; /* installed set, one reference held */

static const char *keys_err(const char *fmt, ...) PRINTF_LIKE(1, 2);
static const char *keys_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(keys_error, sizeof(keys_error), fmt, ap);
	va_end(ap);
	return keys_error;
}

int dkim_keys_read_pem(const char *path, char **pem_r, enum dkim_keys_alg *alg_r,
		       unsigned *bits_r, const char **error_r)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		*error_r = keys_err("key %s: %s", path, strerror(errno));
		return -1;
	}
	char *pem = xmalloc(DKIM_KEYS_PEM_MAX + 1);
	size_t n = fread(pem, 1, DKIM_KEYS_PEM_MAX + 1, f);
	fclose(f);
	if (n > DKIM_KEYS_PEM_MAX || n == 0 || memchr(pem, '\0', n) != NULL) {
		explicit_bzero(pem, DKIM_KEYS_PEM_MAX + 1);
		free(pem);
		*error_r = keys_err("key %s: empty, too large or binary", path);
		return -1;
	}
	pem[n] = '\0';
	BIO *bio = BIO_new_mem_buf(pem, (int)n);
	EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (pk == NULL) {
		explicit_bzero(pem, n);
		free(pem);
		*error_r = keys_err("key %s: not a PEM private key", path);
		return -1;
	}
	int id = EVP_PKEY_base_id(pk);
	*bits_r = (unsigned)EVP_PKEY_bits(pk);
	EVP_PKEY_free(pk);
	if (id == EVP_PKEY_RSA) {
		*alg_r = DKIM_KEYS_RSA;
	} else if (id == EVP_PKEY_ED25519) {
		*alg_r = DKIM_KEYS_ED25519;
	} else {
		explicit_bzero(pem, n);
		free(pem);
		*error_r = keys_err("key %s: neither RSA nor Ed25519", path);
		return -1;
	}
	*pem_r = pem;
	return 0;
}

static void keys_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + 32);
}

/* Split a table line "A rest" (comments and blank lines already gone). */
static bool keys_split(const char *value, char **rest_r)
{
	*rest_r = NULL;
	if (*value == '\0' || strchr(value, ' ') != NULL || strchr(value, '\t') != NULL)
		return false;
	*rest_r = xstrdup(value);
	return true;
}

static int keys_add(struct dkim_keys *k, const char *name, const char *domain,
		    const char *selector, const char *path, const char **error_r)
{
	struct dkim_key key;
	memset(&key, 0, sizeof(key));
	if (*domain == '\0' || *selector == '\0') {
		*error_r = keys_err("key %s: empty domain or selector", name);
		return -1;
	}
	for (const char *p = selector; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_')) {
			*error_r = keys_err("key %s: bad selector \"%.64s\"", name, selector);
			return -1;
		}
	if (dkim_keys_read_pem(path, &key.pem, &key.alg, &key.bits, error_r) < 0)
		return -1;
	key.name = xstrdup(name);
	key.domain = xstrdup(domain);
	keys_lower(key.domain);
	key.selector = xstrdup(selector);
	k->keys = xreallocarray(k->keys, k->nkeys + 1, sizeof(*k->keys));
	k->keys[k->nkeys++] = key;
	return 0;
}

int dkim_keys_load_tables(struct dkim_keys *k, const char *keytable, const char *signtable,
			  const char **error_r)
{
	memset(k, 0, sizeof(*k));
	struct filter_cfg *kt = NULL, *st = NULL;
	int rc = -1;
	if (filter_cfg_load(keytable, &kt, error_r) < 0)
		goto out;
	for (size_t i = 0; i < kt->n; i++) {
		char *spec;
		if (!keys_split(kt->v[i].value, &spec)) {
			*error_r = keys_err("%s line %d: want NAME DOMAIN:SELECTOR:KEYFILE",
					    keytable, kt->v[i].line);
			goto out;
		}
		char *c1 = strchr(spec, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2 == NULL) {
			free(spec);
			*error_r = keys_err("%s line %d: want NAME DOMAIN:SELECTOR:KEYFILE",
					    keytable, kt->v[i].line);
			goto out;
		}
		*c1 = *c2 = '\0';
		int r = keys_add(k, kt->v[i].key, spec, c1 + 1, c2 + 1, error_r);
		free(spec);
		if (r < 0)
			goto out;
	}
	if (strncmp(signtable, "refile:", 7) == 0) {
		k->wildcard = true;
		signtable += 7;
	}
	/* SigningTable keys may hold '*', '@' and '.', which filter_cfg refuses
	 * in keys: read the file as "VALUE NAME" the other way round */
	FILE *f = fopen(signtable, "re");
	if (f == NULL) {
		*error_r = keys_err("%s: %s", signtable, strerror(errno));
		goto out;
	}
	char line[4096];
	int lineno = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char *p = line + strspn(line, " \t");
		p[strcspn(p, "\r\n#")] = '\0';
		if (*p == '\0')
			continue;
		char *pat = p;
		size_t pl = strcspn(pat, " \t");
		char *name = pat + pl;
		name += strspn(name, " \t");
		if (pl == 0 || *name == '\0') {
			fclose(f);
			*error_r = keys_err("%s line %d: want PATTERN KEYNAME", signtable, lineno);
			goto out;
		}
		pat[pl] = '\0';
		name[strcspn(name, " \t")] = '\0';
		struct dkim_key *key = NULL;
		for (size_t i = 0; i < k->nkeys; i++)
			if (strcmp(k->keys[i].name, name) == 0)
				key = &k->keys[i];
		if (key == NULL) {
			fclose(f);
			*error_r = keys_err("%s line %d: no key named \"%.64s\" in KeyTable",
					    signtable, lineno, name);
			goto out;
		}
		k->rules = xreallocarray(k->rules, k->nrules + 1, sizeof(*k->rules));
		k->rules[k->nrules].pattern = xstrdup(pat);
		keys_lower(k->rules[k->nrules].pattern);
		k->rules[k->nrules].key = key;
		k->nrules++;
	}
	fclose(f);
	rc = 0;
out:
	filter_cfg_free(&kt);
	filter_cfg_free(&st);
	if (rc < 0)
		dkim_keys_free(k);
	return rc;
}

int dkim_keys_load_single(struct dkim_keys *k, const char *domains, const char *selector,
			  const char *keyfile, bool subdomains, const char **error_r)
{
	memset(k, 0, sizeof(*k));
	k->subdomains = subdomains;
	/* one key shared by every listed domain: each gets its own entry so
	 * that d= is the domain the mail is from */
	const char *p = domains;
	while (*p) {
		p += strspn(p, ", \t");
		size_t n = strcspn(p, ", \t");
		if (n == 0)
			break;
		char *d = xmemdup(p, n);
		int r = keys_add(k, d, d, selector, keyfile, error_r);
		free(d);
		if (r < 0) {
			dkim_keys_free(k);
			return -1;
		}
		p += n;
	}
	if (k->nkeys == 0) {
		*error_r = "Domain lists no domain";
		return -1;
	}
	/* k->keys may move while growing: add the rules afterwards */
	for (size_t i = 0; i < k->nkeys; i++) {
		k->rules = xreallocarray(k->rules, k->nrules + 1, sizeof(*k->rules));
		k->rules[k->nrules].pattern = xstrdup(k->keys[i].domain);
		k->rules[k->nrules].key = &k->keys[i];
		k->nrules++;
	}
	return 0;
}

const struct dkim_key *dkim_keys_find(const struct dkim_keys *k, const char *addr,
				      const char *domain)
{
	char *laddr = xstrdup(addr);
	keys_lower(laddr);
	const struct dkim_key *found = NULL;
	if (k->wildcard) {
		for (size_t i = 0; i < k->nrules && !found; i++)
			if (fnmatch(k->rules[i].pattern, laddr, 0) == 0 ||
			    fnmatch(k->rules[i].pattern, domain, 0) == 0)
				found = k->rules[i].key;
	} else {
		/* the whole address first, then the domain, then (SubDomains)
		 * each parent domain */
		for (size_t i = 0; i < k->nrules && !found; i++)
			if (strcmp(k->rules[i].pattern, laddr) == 0)
				found = k->rules[i].key;
		for (size_t i = 0; i < k->nrules && !found; i++)
			if (strcmp(k->rules[i].pattern, domain) == 0)
				found = k->rules[i].key;
		for (const char *d = strchr(domain, '.'); k->subdomains && d && !found;
		     d = strchr(d + 1, '.'))
			for (size_t i = 0; i < k->nrules && !found; i++)
				if (strcmp(k->rules[i].pattern, d + 1) == 0)
					found = k->rules[i].key;
	}
	free(laddr);
	return found;
}

void dkim_keys_free(struct dkim_keys *k)
{
	for (size_t i = 0; i < k->nkeys; i++) {
		free(k->keys[i].name);
		free(k->keys[i].domain);
		free(k->keys[i].selector);
		if (k->keys[i].pem) {
			explicit_bzero(k->keys[i].pem, strlen(k->keys[i].pem));
			free(k->keys[i].pem);
		}
	}
	for (size_t i = 0; i < k->nrules; i++)
		free(k->rules[i].pattern);
	free(k->keys);
	free(k->rules);
	memset(k, 0, sizeof(*k));
}

void dkim_keys_install(struct dkim_keys *k)
{
	if (k != NULL)
		k->refs = 1; /* the installation's own reference */
	pthread_mutex_lock(&keys_lock);
	struct dkim_keys *old = keys_current;
	keys_current = k;
	pthread_mutex_unlock(&keys_lock);
	dkim_keys_release(&old);
}

struct dkim_keys *dkim_keys_acquire(void)
{
	pthread_mutex_lock(&keys_lock);
	struct dkim_keys *k = keys_current;
	if (k != NULL)
		k->refs++;
	pthread_mutex_unlock(&keys_lock);
	return k;
}

void dkim_keys_release(struct dkim_keys **kp)
{
	struct dkim_keys *k = *kp;
	if (k == NULL)
		return;
	*kp = NULL;
	pthread_mutex_lock(&keys_lock);
	CHECK(k->refs > 0);
	bool last = --k->refs == 0;
	pthread_mutex_unlock(&keys_lock);
	if (last) {
		dkim_keys_free(k);
		free(k);
	}
}
