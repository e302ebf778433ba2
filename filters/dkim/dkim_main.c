/*
 * dkim_main.c - postern-dkim: program entry.
 *
 * Purpose: hand postern-dkim's settings and callbacks to filter_main.
 * Tests: tests/interop/test_filter_dkim.py (-t, -V, signing, verifying).
 */
#include "filters/common/filter_main.h"
#include "filters/dkim/dkim_milter.h"
#include "lib/common.h"

static const struct filter_desc dkim_desc = {
	.name = "dkim",
	.keys = dkim_keys_names,
	.configure = dkim_configure,
	.reload = dkim_reload,
	.milter = &dkim_milter,
};

int main(int argc, char **argv)
{
	return filter_main(argc, argv, &dkim_desc);
}
