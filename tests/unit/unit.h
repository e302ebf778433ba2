/* unit.h - what every cmocka unit test includes first (cmocka needs these). */
#ifndef POSTERN_UNIT_H
#define POSTERN_UNIT_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

/* Write text into the file dir/name (created or truncated); fails the test
 * if it cannot. */
static inline void unit_write_file(const char *dir, const char *name, const char *text)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}
#endif
