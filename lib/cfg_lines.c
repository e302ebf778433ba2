/*
 * cfg_lines.c - what main.cf and master.cf parsing share: their logical
 * lines (lib/lines.h, shared with the table files) and collecting problems.
 *
 * Purpose: turn problems into "FILE:LINE: text" reports; every problem of a
 * file is reported, reading goes on.
 * Owns: nothing beyond each call.
 * Never: passes on a line with a NUL byte or over the limit.
 * Limits: the caller's file and line maxima.
 * Tests: tests/unit/lib/cfg_test.c, tests/fuzz/cfg_fuzz.c.
 */
#include "lib/buf.h"
#include "lib/cfg_int.h"
#include "lib/log.h"
#include "lib/lines.h"
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

struct cfg_lines_ctx {
	struct cfg_report *r;
	size_t line_max;
	void (*fn)(void *ctx, const char *line, size_t len, int lineno);
	void *ctx;
};

static int cfg_lines_line(void *ctx, const char *line, size_t len, int lineno)
{
	struct cfg_lines_ctx *c = ctx;
	c->fn(c->ctx, line, len, lineno);
	return 0;
}

/* every problem is reported and reading goes on */
static int cfg_lines_problem(void *ctx, enum lines_problem p, int lineno)
{
	struct cfg_lines_ctx *c = ctx;
	if (p == LINES_TOO_LONG)
		cfg_report_add(c->r, lineno, false, "%s %zu bytes", lines_problem_text(p), c->line_max);
	else
		cfg_report_add(c->r, lineno, false, "%s", lines_problem_text(p));
	return 0;
}

void cfg_logical_lines(const char *text, size_t len, struct cfg_report *r, size_t line_max,
		       void (*fn)(void *ctx, const char *line, size_t len, int lineno), void *ctx)
{
	static const struct lines_ops ops = { cfg_lines_line, cfg_lines_problem };
	struct cfg_lines_ctx c = { r, line_max, fn, ctx };
	(void)lines_logical(text, len, line_max, &ops, &c);
}

