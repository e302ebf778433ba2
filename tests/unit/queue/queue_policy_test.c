/*
 * queue_policy_test.c - backoff arithmetic and the exit-code policy of
 * reference/mailbox-formats.md §6.
 */
#include "tests/unit/unit.h"

#include "mta/queue/queue_policy.h"
#include "lib/common.h"

static void test_backoff(void **state)
{
	static const struct {
		int64_t age, min, max, want;
	} c[] = {
		{ 0, 300, 4000, 300 },     { 299, 300, 4000, 300 },   { 301, 300, 4000, 301 },
		{ 3999, 300, 4000, 3999 }, { 86400, 300, 4000, 4000 }, { 10, 1, 2, 2 },
		{ 5, 10, 3, 10 }, /* max below min: min wins */
	};
	for (size_t i = 0; i < ARRAY_LEN(c); i++)
		assert_int_equal(queue_policy_backoff(c[i].age, c[i].min, c[i].max), c[i].want);
}

static void test_exit_codes(void **state)
{
	static const struct {
		int64_t status;
		bool command;
		const char *out;
		bool defer;
		const char *dsn, *rest;
	} c[] = {
		{ 75, false, "", true, "4.3.0", "" },
		{ 71, false, "", true, "4.3.0", "" },
		{ -9, false, "", true, "4.3.0", "" },
		{ 67, false, "", false, "5.1.1", "" },
		{ 77, false, "5.2.2 Mailbox full", false, "5.2.2", "Mailbox full" },
		{ 75, false, "4.2.2 Quota exceeded", true, "4.2.2", "Quota exceeded" },
		/* a code whose class disagrees with the exit status: the table wins */
		{ 75, false, "5.1.1 nope", true, "4.3.0", "nope" },
		{ 73, false, "", false, "5.2.0", "" },
		{ 78, false, "", false, "5.3.5", "" },
		{ 1, false, "", false, "5.3.0", "" },
		{ 255, false, "garbage", false, "5.3.0", "garbage" },
		/* a command's own enhanced status code decides (4 = defer) */
		{ 1, true, "4.7.1 try later", true, "4.7.1", "try later" },
		{ 75, true, "5.7.1 go away", false, "5.7.1", "go away" },
		{ 1, true, "no code here", false, "5.3.0", "no code here" },
		{ -15, true, "5.0.0 x", true, "4.3.0", "x" },
		/* not codes */
		{ 1, true, "4.x.1 no", false, "5.3.0", "4.x.1 no" },
		{ 1, true, "5.1234.1 no", false, "5.3.0", "5.1234.1 no" },
	};
	for (size_t i = 0; i < ARRAY_LEN(c); i++) {
		char dsn[16] = "";
		bool defer = !c[i].defer;
		const char *rest = queue_policy_map_status(c[i].status, c[i].command, c[i].out, dsn, &defer);
		assert_int_equal(defer, c[i].defer);
		assert_string_equal(dsn, c[i].dsn);
		assert_string_equal(rest, c[i].rest);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_exit_codes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
