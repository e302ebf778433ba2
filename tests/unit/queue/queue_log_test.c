/*
 * queue_log_test.c - delivery log lines against golden/queue_log.ref.
 *
 * Each case renders one line with queue_log_delivery(); the file holds the
 * expected lines in order, so a change of shape shows up as a diff.
 */
#include "tests/unit/unit.h"

#include "mta/queue/queue_log.h"
#include "lib/common.h"

#define S 1000000LL /* one second in microseconds */
#define T0 (1700000000LL * S)

static const struct {
	const char *to, *orig, *relay;
	int64_t active, start, end; /* offsets from arrival, us */
	const char *dsn, *status, *text;
} cases[] = {
	{ "ann@virt.test", "ann@virt.test", "virtual", 10000, 10000, 1200000, "2.0.0", "sent",
	  "delivered to maildir" },
	{ "user@mx.test", "postmaster@mx.test", "local", 70000, 80000, 120000, "2.0.0", "sent",
	  "delivered to mailbox" },
	{ "x@remote.example", "", "none", 0, 0, 0, "4.3.0", "deferred", "no outbound transport yet" },
	{ "nobody@virt.test", "nobody@virt.test", "virtual", 3 * S, 3 * S, 3 * S, "5.1.1", "bounced",
	  "unknown user: \"nobody@virt.test\"" },
	{ "a\x01" "b@x", "", "local", 22 * S + 400000, 22 * S + 400000, 338453 * S, "2.0.0", "sent",
	  "delivered to command: /usr/bin/x\ty" },
	{ "pipe@mx.test", "", "local", 5000, 4999, 9 * S + 960000, "5.3.0", "bounced",
	  "Command died with status 1: \"false\". Command output: \\134 ok" },
};

static void test_golden_lines(void **state)
{
	char *path = xasprintf("%s/queue_log.ref", QUEUE_GOLDEN);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	free(path);
	char want[2048];
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct buf b;
		buf_init(&b, 8192);
		queue_log_delivery(&b, "0660F5C599FAD5", cases[i].to, cases[i].orig, cases[i].relay, T0,
				   T0 + cases[i].active, T0 + cases[i].start, T0 + cases[i].end,
				   cases[i].dsn, cases[i].status, cases[i].text);
		assert_non_null(fgets(want, sizeof(want), f));
		want[strcspn(want, "\n")] = '\0';
		assert_string_equal(buf_cstr(&b), want);
		buf_free(&b);
	}
	struct buf b;
	buf_init(&b, 8192);
	queue_log_from(&b, "0660F5C599FAD5", "alice@example.org", 4321, 2);
	assert_non_null(fgets(want, sizeof(want), f));
	want[strcspn(want, "\n")] = '\0';
	assert_string_equal(buf_cstr(&b), want);
	buf_reset(&b);
	queue_log_from(&b, "0660F5C599FAD5", "", 10, 1);
	assert_non_null(fgets(want, sizeof(want), f));
	want[strcspn(want, "\n")] = '\0';
	assert_string_equal(buf_cstr(&b), want);
	buf_reset(&b);
	queue_log_expired(&b, "0660F5C599FAD5", "b\xc3\xa9@example.org");
	assert_non_null(fgets(want, sizeof(want), f));
	want[strcspn(want, "\n")] = '\0';
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
	assert_null(fgets(want, sizeof(want), f));
	fclose(f);
}

static void test_durations(void **state)
{
	static const struct {
		int64_t us;
		const char *out;
	} d[] = {
		{ -5, "0" },         { 0, "0" },         { 4999, "0" },       { 5000, "0.01" },
		{ 10000, "0.01" },   { 94000, "0.09" },  { 100000, "0.1" },   { 394000, "0.39" },
		{ 999000, "1" },     { 1000000, "1" },   { 1250000, "1.3" },  { 9960000, "10" },
		{ 22400000, "22" },  { 338453000000LL, "338453" },
	};
	for (size_t i = 0; i < ARRAY_LEN(d); i++) {
		struct buf b;
		buf_init(&b, 64);
		queue_log_duration(&b, d[i].us);
		assert_string_equal(buf_cstr(&b), d[i].out);
		buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_lines),
		cmocka_unit_test(test_durations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
