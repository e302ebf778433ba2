/*
 * cfg_lines.c - what main.cf and master.cf parsing share: reading a file,
 * splitting it into Postfix logical lines, and collecting problems.
 *
 * Purpose: turn file bytes into logical lines (continuations joined, comments
 * skipped) and problems into "FILE:LINE: text" reports.
 * Owns: nothing beyond each call.
 * Never: trusts the bytes (NUL bytes and over-long lines are reported, not
 * passed on), follows a non-regular file.
 * Limits: the caller's file and line maxima.
 * Tests: tests/unit/lib/cfg_test.c, tests/fuzz/cfg_fuzz.c.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/cfg_int.h"
#include "lib/log.h"
#include "lib/fileio.h"
#include "lib/common.h"

/* ---- problem reports ---- */

void cfg_report_add(struct cfg_report *r, int line, bool warning, const char *fmt, ...)
{
	char text[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	char where[600];
	int wn;
	/* log_warning adds its own "warning: " */
	const char *tag = warning && r->out != NULL ? "warning: " : "";
	if (line > 0)
		wn = snprintf(where, sizeof(where), "%.500s:%d: %s", r->file, line, tag);
	else
		wn = snprintf(where, sizeof(where), "%.500s: %s", r->file, tag);
	if (wn < 0)
		where[0] = 0;
	if (r->out != NULL)
		(void)buf_printf(r->out, "%s%s\n", where, text);
	if (warning) {
		if (r->out == NULL)
			log_warning("%s%s", where + 0, text);
		return;
	}
	/* the first error is the one with the lowest line number, so cfg_load
	 * names what a reader of the file meets first */
	bool first = r->errors++ == 0 || (line > 0 && line < r->first_line);
	if (first) {
		r->first_line = line > 0 ? line : INT_MAX;
		if (snprintf(r->first, sizeof(r->first), "%s%s", where, text) < 0)
			r->first[0] = 0;
	}
}

/* ---- reading ---- */

int cfg_read_file(const char *path, size_t max, char **data_r, size_t *len_r)
{
	struct buf b;
	if (file_read_all(AT_FDCWD, path, 0, max, &b) < 0)
		return -1;
	*len_r = b.len;
	*data_r = b.data ? b.data : xstrdup("");
	return 0;
}

void cfg_logical_lines(const char *text, size_t len, struct cfg_report *r, size_t line_max,
		       void (*fn)(void *ctx, const char *line, size_t len, int lineno), void *ctx)
{
	struct buf cur;
	buf_init(&cur, line_max);
	int cur_line = 0;     /* 0: no logical line open */
	bool cur_bad = false; /* the open logical line already got an error */
	int lineno = 0;
	size_t i = 0;
	while (i < len) {
		lineno++;
		const char *nl = memchr(text + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - text) : len;
		const char *l = text + i;
		size_t ll = end - i;
		i = nl ? end + 1 : len;
		if (ll > 0 && l[ll - 1] == '\r')
			ll--; /* tolerate CRLF files */
		size_t lead = 0;
		while (lead < ll && (l[lead] == ' ' || l[lead] == '\t'))
			lead++;
		if (lead < ll && l[lead] == '#')
			continue; /* comments never end a logical line */
		if (lead == ll) {
			/* blank line ends the logical line */
			if (cur_line && !cur_bad)
				fn(ctx, cur.data ? cur.data : "", cur.len, cur_line);
			cur_line = 0;
			buf_reset(&cur);
			continue;
		}
		bool bad = memchr(l, 0, ll) != NULL;
		if (lead > 0) {
			if (cur_line == 0) {
				cfg_report_add(r, lineno, false,
					       "line starts with whitespace but continues nothing");
				continue;
			}
			if (bad && !cur_bad) {
				cfg_report_add(r, lineno, false, "NUL byte in line");
				cur_bad = true;
			}
			if (!cur_bad && (buf_putc(&cur, ' ') < 0 || buf_append(&cur, l + lead, ll - lead) < 0)) {
				cfg_report_add(r, cur_line, false, "logical line longer than %zu bytes",
					       line_max);
				cur_bad = true;
			}
			continue;
		}
		if (cur_line && !cur_bad)
			fn(ctx, cur.data ? cur.data : "", cur.len, cur_line);
		buf_reset(&cur);
		cur_line = lineno;
		cur_bad = false;
		if (bad) {
			cfg_report_add(r, lineno, false, "NUL byte in line");
			cur_bad = true;
		} else if (buf_append(&cur, l, ll) < 0) {
			cfg_report_add(r, lineno, false, "logical line longer than %zu bytes", line_max);
			cur_bad = true;
		}
	}
	if (cur_line && !cur_bad)
		fn(ctx, cur.data ? cur.data : "", cur.len, cur_line);
	buf_free(&cur);
}

