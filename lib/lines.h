/*
 * lines.h - Postfix's logical lines, for main.cf, master.cf and every table
 * file read as text (texthash:, regexp:, pcre:, cidr:).
 *
 * A line that starts with whitespace continues the previous one (joined
 * with one space); a blank line ends a logical line; a line whose first
 * non-blank character is '#' is skipped and never ends one. A trailing CR
 * is dropped (CRLF files). NUL bytes, over-long logical lines and a
 * continuation with nothing to continue are problems, reported to the
 * caller, who decides whether reading goes on.
 */
#ifndef POSTERN_LINES_H
#define POSTERN_LINES_H

#include <stddef.h>

enum lines_problem {
	LINES_NUL,      /* "NUL byte in line" */
	LINES_ORPHAN,   /* "line starts with whitespace but continues nothing" */
	LINES_TOO_LONG, /* "logical line longer than N bytes" */
};

/* The problem's text as the readers report it (LINES_TOO_LONG without N). */
const char *lines_problem_text(enum lines_problem p);

struct lines_ops {
	/* One logical line (NUL-terminated, len bytes) that began on physical
	 * line lineno. Return < 0 to stop reading. */
	int (*line)(void *ctx, const char *line, size_t len, int lineno);
	/* A problem on line lineno (for LINES_TOO_LONG, where the logical line
	 * began). Return < 0 to stop; otherwise that physical line is skipped
	 * (LINES_ORPHAN) or its whole logical line dropped (the others, which
	 * are reported once per logical line). */
	int (*problem)(void *ctx, enum lines_problem p, int lineno);
};

/* Split text (len bytes) into logical lines of at most line_max bytes.
 * Returns 0, or the first negative value a callback returned. */
int lines_logical(const char *text, size_t len, size_t line_max, const struct lines_ops *ops,
		  void *ctx);

#endif
