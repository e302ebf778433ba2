/*
 * lines.c - Postfix logical lines (lines.h).
 *
 * Purpose: one splitter for every Postfix-syntax text file we read.
 * Owns: nothing beyond each call.
 * Never: passes on a line with a NUL byte or longer than the caller's limit.
 * Tests: tests/unit/lib/cfg_test.c, table_test.c, tests/fuzz/cfg_fuzz.c.
 */
#include <ctype.h>

#include "lib/buf.h"
#include "lib/lines.h"
#include "lib/common.h"

const char *lines_problem_text(enum lines_problem p)
{
	switch (p) {
	case LINES_NUL:
		return "NUL byte in line";
	case LINES_ORPHAN:
		return "line starts with whitespace but continues nothing";
	case LINES_TOO_LONG:
		return "logical line longer than";
	}
	return "bad line";
}

int lines_logical(const char *text, size_t len, size_t line_max, const struct lines_ops *ops,
		  void *ctx)
{
	struct buf cur;
	buf_init(&cur, line_max);
	int cur_line = 0;     /* 0: no logical line open */
	bool cur_bad = false; /* the open logical line had a problem: dropped */
	int lineno = 0, rc = 0;
	size_t i = 0;
	while (i < len && rc >= 0) {
		lineno++;
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len;
		const char *l = text + i;
		size_t ll = end - i;
		i = nl ? end + 1 : len;
		if (ll > 0 && l[ll - 1] == '\r')
			ll--;
		size_t lead = 0;
		while (lead < ll && isspace((unsigned char)l[lead]))
			lead++;
		if (lead < ll && l[lead] == '#')
			continue; /* comments never end a logical line */
		if (lead == ll) {
			/* a blank line ends the logical line */
			if (cur_line && !cur_bad)
				rc = ops->line(ctx, cur.data ? cur.data : "", cur.len, cur_line);
			cur_line = 0;
			buf_reset(&cur);
			continue;
		}
		bool nul = memchr(l, 0, ll) != NULL;
		if (lead > 0) {
			if (cur_line == 0) {
				rc = ops->problem(ctx, LINES_ORPHAN, lineno);
				continue;
			}
			if (cur_bad)
				continue;
			if (nul) {
				rc = ops->problem(ctx, LINES_NUL, lineno);
				cur_bad = true;
			} else if (buf_putc(&cur, ' ') < 0 || buf_append(&cur, l + lead, ll - lead) < 0) {
				rc = ops->problem(ctx, LINES_TOO_LONG, cur_line);
				cur_bad = true;
			}
			continue;
		}
		if (cur_line && !cur_bad && (rc = ops->line(ctx, cur.data ? cur.data : "", cur.len,
							      cur_line)) < 0)
			break;
		buf_reset(&cur);
		cur_line = lineno;
		cur_bad = false;
		if (nul) {
			rc = ops->problem(ctx, LINES_NUL, lineno);
			cur_bad = true;
		} else if (buf_append(&cur, l, ll) < 0) {
			rc = ops->problem(ctx, LINES_TOO_LONG, lineno);
			cur_bad = true;
		}
	}
	if (rc >= 0 && cur_line && !cur_bad)
		rc = ops->line(ctx, cur.data ? cur.data : "", cur.len, cur_line);
	buf_free(&cur);
	return rc < 0 ? rc : 0;
}
