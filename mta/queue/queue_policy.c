/*
 * queue_policy.c - the scheduler's arithmetic and exit-code policy
 * (see queue_policy.h).
 *
 * Purpose: pure decisions, kept apart so unit tests reach them.
 * Owns: nothing. Never: does I/O.
 * Tests: tests/unit/queue/queue_policy_test.c.
 */
#include "mta/queue/queue_policy.h"
#include "lib/common.h"

int64_t queue_policy_backoff(int64_t age_s, int64_t min_s, int64_t max_s)
{
	if (max_s < min_s)
		max_s = min_s;
	if (age_s < min_s)
		return min_s;
	if (age_s > max_s)
		return max_s;
	return age_s;
}

const char *queue_policy_map_status(int64_t status, bool command, const char *output,
				   char dsn_r[16], bool *defer_r)
{
	/* an enhanced status code at the start of the output, "4.x.y text" */
	bool has_code = false;
	const char *o = output;
	if ((o[0] == '4' || o[0] == '5') && o[1] == '.') {
		size_t i = 2, d1 = 0, d2 = 0;
		while (o[i] >= '0' && o[i] <= '9' && d1 < 3)
			i++, d1++;
		if (d1 > 0 && o[i] == '.') {
			i++;
			while (o[i] >= '0' && o[i] <= '9' && d2 < 3)
				i++, d2++;
			if (d2 > 0 && (o[i] == ' ' || o[i] == '\0')) {
				has_code = true;
				snprintf(dsn_r, 16, "%.*s", (int)i, o);
				o += i;
				while (*o == ' ')
					o++;
			}
		}
	}
	if (status < 0) {
		*defer_r = true;
		if (!has_code || dsn_r[0] != '4')
			snprintf(dsn_r, 16, "4.3.0");
		return o;
	}
	static const struct {
		int code;
		const char *dsn;
	} table[] = {
		{ 64, "5.3.0" }, { 65, "5.6.0" }, { 66, "5.3.0" }, { 67, "5.1.1" }, { 68, "5.1.2" },
		{ 69, "5.3.0" }, { 70, "5.3.0" }, { 71, "4.3.0" }, { 72, "5.3.0" }, { 73, "5.2.0" },
		{ 74, "5.3.0" }, { 75, "4.3.0" }, { 76, "5.5.0" }, { 77, "5.7.0" }, { 78, "5.3.5" },
	};
	const char *tdsn = "5.3.0";
	for (size_t i = 0; i < ARRAY_LEN(table); i++)
		if (table[i].code == status)
			tdsn = table[i].dsn;
	if (command && has_code) {
		/* mailbox-formats.md §6: a command's own code decides */
		*defer_r = dsn_r[0] == '4';
		return o;
	}
	*defer_r = status == 75 || status == 71;
	if (!has_code || dsn_r[0] != (*defer_r ? '4' : '5'))
		snprintf(dsn_r, 16, "%s", tdsn);
	return o;
}

