/* dkim_keys_test.c - KeyTable, SigningTable and single-key settings
 * (filters/dkim/dkim_keys.c), with keys generated into a temp directory. */
#include "tests/unit/unit.h"
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <unistd.h>
#include "filters/dkim/dkim_keys.h"
#include "lib/common.h"

static char dir[] = "/tmp/dkim_keys_test.XXXXXX";

static void write_file(const char *name, const char *text)
{
	unit_write_file(dir, name, text);
}

static void gen_key(const char *name, int type)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(type, NULL);
	EVP_PKEY *pk = NULL;
	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	if (type == EVP_PKEY_RSA)
		EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 1024);
	assert_int_equal(EVP_PKEY_keygen(ctx, &pk), 1);
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	free(p);
	EVP_PKEY_free(pk);
	EVP_PKEY_CTX_free(ctx);
}

static int setup(void **state)
{
	if (mkdtemp(dir) == NULL)
		return -1;
	gen_key("rsa.pem", EVP_PKEY_RSA);
	gen_key("ed.pem", EVP_PKEY_ED25519);
	char *kt = xasprintf("sel._domainkey.d.test d.test:sel:%s/rsa.pem\n"
			     "ed._domainkey.e.test E.Test:ed:%s/ed.pem\n", dir, dir);
	write_file("KeyTable", kt);
	free(kt);
	write_file("SigningTable.exact", "boss@d.test ed._domainkey.e.test\n"
					 "d.test sel._domainkey.d.test # comment\n");
	write_file("SigningTable.re", "# wildcard patterns\n*@d.test sel._domainkey.d.test\n"
				      "*@*.e.test ed._domainkey.e.test\n");
	write_file("SigningTable.bad", "*@d.test nosuchkey\n");
	write_file("notakey.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
	return 0;
}

static int teardown(void **state)
{
	char *cmd = xasprintf("rm -rf %s", dir);
	int r = system(cmd);
	free(cmd);
	return r == 0 ? 0 : -1;
}

static void test_tables(void **state)
{
	struct dkim_keys k;
	const char *err;
	char *kt = xasprintf("%s/KeyTable", dir);
	char *st = xasprintf("%s/SigningTable.exact", dir);
	assert_int_equal(dkim_keys_load_tables(&k, kt, st, &err), 0);
	assert_int_equal(k.nkeys, 2);
	assert_int_equal(k.keys[0].alg, DKIM_KEYS_RSA);
	assert_int_equal(k.keys[1].alg, DKIM_KEYS_ED25519);
	assert_string_equal(k.keys[1].domain, "e.test"); /* lower-cased */
	const struct dkim_key *key = dkim_keys_find(&k, "Boss@D.test", "d.test");
	assert_non_null(key);
	assert_string_equal(key->selector, "ed"); /* the address wins over the domain */
	key = dkim_keys_find(&k, "x@d.test", "d.test");
	assert_string_equal(key->selector, "sel");
	assert_null(dkim_keys_find(&k, "x@sub.d.test", "sub.d.test"));
	assert_null(dkim_keys_find(&k, "x@other.test", "other.test"));
	dkim_keys_free(&k);
	free(st);
	st = xasprintf("refile:%s/SigningTable.re", dir);
	assert_int_equal(dkim_keys_load_tables(&k, kt, st, &err), 0);
	assert_string_equal(dkim_keys_find(&k, "a@d.test", "d.test")->selector, "sel");
	assert_string_equal(dkim_keys_find(&k, "a@x.e.test", "x.e.test")->selector, "ed");
	assert_null(dkim_keys_find(&k, "a@e.test", "e.test"));
	assert_null(dkim_keys_find(&k, "a@d.test.evil", "d.test.evil"));
	dkim_keys_free(&k);
	free(st);
	st = xasprintf("%s/SigningTable.bad", dir);
	assert_int_equal(dkim_keys_load_tables(&k, kt, st, &err), -1);
	assert_non_null(strstr(err, "nosuchkey"));
	free(st);
	free(kt);
}

/* The installed set: a reload replaces it while a message still holds the
 * old one (ASan catches a set freed too early, LeakSanitizer one never
 * freed). */
static void test_install(void **state)
{
	const char *err;
	char *kt = xasprintf("%s/KeyTable", dir);
	char *st = xasprintf("%s/SigningTable.exact", dir);
	assert_null(dkim_keys_acquire());
	struct dkim_keys *k1 = xcalloc(1, sizeof(*k1));
	assert_int_equal(dkim_keys_load_tables(k1, kt, st, &err), 0);
	dkim_keys_install(k1);
	struct dkim_keys *held = dkim_keys_acquire();
	assert_ptr_equal(held, k1);
	const struct dkim_key *key = dkim_keys_find(held, "x@d.test", "d.test");
	/* a reload installs another set */
	struct dkim_keys *k2 = xcalloc(1, sizeof(*k2));
	assert_int_equal(dkim_keys_load_tables(k2, kt, st, &err), 0);
	dkim_keys_install(k2);
	/* the message that held k1 still reads its key */
	assert_string_equal(key->selector, "sel");
	assert_non_null(strstr(key->pem, "PRIVATE KEY"));
	struct dkim_keys *now = dkim_keys_acquire();
	assert_ptr_equal(now, k2);
	dkim_keys_release(&held); /* the last user of k1: freed here */
	assert_null(held);
	dkim_keys_release(&now);
	dkim_keys_release(&now); /* NULL: nothing */
	/* the installation's own reference goes with the next install */
	struct dkim_keys *k3 = xcalloc(1, sizeof(*k3));
	char *kf = xasprintf("%s/rsa.pem", dir);
	assert_int_equal(dkim_keys_load_single(k3, "d.test", "sel", kf, false, &err), 0);
	dkim_keys_install(k3);
	now = dkim_keys_acquire();
	assert_int_equal(now->nkeys, 1);
	dkim_keys_release(&now);
	dkim_keys_install(NULL); /* k3 freed: nothing installed */
	assert_null(dkim_keys_acquire());
	free(kf);
	free(st);
	free(kt);
}

static void test_single(void **state)
{
	struct dkim_keys k;
	const char *err;
	char *kf = xasprintf("%s/rsa.pem", dir);
	assert_int_equal(dkim_keys_load_single(&k, "d.test, f.test", "sel", kf, true, &err), 0);
	assert_string_equal(dkim_keys_find(&k, "a@f.test", "f.test")->domain, "f.test");
	assert_string_equal(dkim_keys_find(&k, "a@x.y.d.test", "x.y.d.test")->domain, "d.test");
	assert_null(dkim_keys_find(&k, "a@xd.test", "xd.test"));
	dkim_keys_free(&k);
	assert_int_equal(dkim_keys_load_single(&k, "d.test", "bad selector!", kf, false, &err), -1);
	assert_int_equal(dkim_keys_load_single(&k, " , ", "sel", kf, false, &err), -1);
	free(kf);
	static const char *const bad[] = { "notakey.pem", "nonexistent.pem", "KeyTable" };
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		kf = xasprintf("%s/%s", dir, bad[i]);
		if (dkim_keys_load_single(&k, "d.test", "sel", kf, false, &err) != -1)
			fail_msg("accepted %s", bad[i]);
		free(kf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_install),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
