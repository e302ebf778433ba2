/*
 * addrmap_test.c - Postfix's address lookup order: which key answers for
 * virtual alias, virtual mailbox and alias tables, with extensions.
 */
#include "tests/unit/unit.h"

#include <unistd.h>

#include "lib/addrmap.h"
#include "lib/table.h"
#include "lib/common.h"

static void test_order(void **state)
{
	const char *err;
	/* each key's value names the key, so the hit shows which form won */
	struct table_list *all = table_list_open(
		"inline:{ user+ext@example.com=full, user@example.com=full-stripped, user+ext=local,"
		" user=local-stripped, @example.com=domain }",
		&err);
	assert_non_null(all);
	struct table_list *no_full = table_list_open(
		"inline:{ user@example.com=full-stripped, user+ext=local, user=local-stripped, @example.com=domain }", &err);
	struct table_list *only_local = table_list_open("inline:{ user=local-stripped, @example.com=domain }", &err);
	struct table_list *only_domain = table_list_open("inline:{ @example.com=domain }", &err);
	static const struct {
		int list; /* 0 all, 1 no_full, 2 only_local, 3 only_domain */
		const char *addr;
		const char *delims;
		int flags;
		const char *want; /* NULL: not found */
		const char *ext;  /* extension handed back, or NULL */
	} cases[] = {
		{ 0, "user+ext@example.com", "+", ADDRMAP_VIRTUAL_ALIAS, "full", NULL },
		{ 0, "User+Ext@Example.COM", "+", ADDRMAP_VIRTUAL_ALIAS, "full", NULL },
		{ 1, "user+ext@example.com", "+", ADDRMAP_VIRTUAL_ALIAS, "full-stripped", "ext" },
		{ 1, "user+ext@example.com", "+", ADDRMAP_VIRTUAL_ALIAS | ADDRMAP_LOCALPART, "full-stripped", "ext" },
		{ 2, "user+ext@example.com", "+", ADDRMAP_VIRTUAL_ALIAS | ADDRMAP_LOCALPART, "local-stripped", "ext" },
		{ 2, "user+ext@example.com", "+", ADDRMAP_VIRTUAL_ALIAS, "domain", NULL },
		{ 2, "user+ext@example.com", "+", ADDRMAP_ALIAS, "local-stripped", "ext" },
		{ 2, "user@example.com", "+", ADDRMAP_ALIAS, "local-stripped", NULL },
		{ 2, "user", "+", ADDRMAP_ALIAS, "local-stripped", NULL },
		{ 2, "user+ext@example.com", "", ADDRMAP_ALIAS, NULL, NULL },
		{ 2, "user+ext@example.com", NULL, ADDRMAP_VIRTUAL_MAILBOX, "domain", NULL },
		{ 3, "someone@example.com", "+", ADDRMAP_VIRTUAL_MAILBOX, "domain", NULL },
		{ 3, "someone@example.com", "+", ADDRMAP_ALIAS, NULL, NULL },
		{ 3, "someone@other.example", "+", ADDRMAP_VIRTUAL_MAILBOX, NULL, NULL },
		/* several delimiter characters: the first one found splits */
		{ 2, "user-a+b@example.com", "+-", ADDRMAP_ALIAS, "local-stripped", "a+b" },
		/* never strip down to an empty user */
		{ 2, "+user@example.com", "+", ADDRMAP_ALIAS, NULL, NULL },
		/* the domain follows the last '@' */
		{ 3, "\"a@b\"@example.com", "+", ADDRMAP_VIRTUAL_MAILBOX, "domain", NULL },
		/* no '@': no domain forms */
		{ 3, "example.com", "+", ADDRMAP_VIRTUAL_MAILBOX, NULL, NULL },
	};
	struct table_list *lists[] = { all, no_full, only_local, only_domain };
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *v = NULL, *ext = (char *)1;
		int rc = addrmap_lookup(lists[cases[i].list], cases[i].addr, cases[i].delims, cases[i].flags,
					&v, &ext, &err);
		if (cases[i].want == NULL) {
			if (rc != 0)
				fail_msg("case %zu: found %s", i, v);
			assert_null(ext);
			continue;
		}
		if (rc != 1)
			fail_msg("case %zu: rc %d", i, rc);
		if (strcmp(v, cases[i].want) != 0)
			fail_msg("case %zu: \"%s\", want \"%s\"", i, v, cases[i].want);
		if (cases[i].ext == NULL)
			assert_null(ext);
		else
			assert_string_equal(ext, cases[i].ext);
		free(v);
		free(ext);
	}
	for (size_t i = 0; i < ARRAY_LEN(lists); i++)
		table_list_free(&lists[i]);
}

static void test_error_is_not_notfound(void **state)
{
	const char *err;
	char path[] = "/tmp/addrmap_test.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "a@b x\n", 6), 6);
	close(fd);
	assert_int_equal(table_compile(path, &err), 0);
	char *spec = xasprintf("lmdb:%s", path);
	struct table_list *l = table_list_open(spec, &err);
	assert_non_null(l);
	char *db = xasprintf("%s.lmdb", path);
	assert_int_equal(unlink(db), 0);
	char *v, *ext;
	assert_int_equal(addrmap_lookup(l, "a@b", "+", ADDRMAP_VIRTUAL_MAILBOX, &v, &ext, &err), -1);
	assert_null(v);
	table_list_free(&l);
	unlink(path);
	free(db);
	free(spec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_error_is_not_notfound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
