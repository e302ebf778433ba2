/*
 * spf_main.c - postern-spf: program entry.
 *
 * Purpose: hand postern-spf's settings and callbacks to filter_main.
 * Tests: tests/interop/test_filter_spf.py.
 */
#include "filters/common/filter_main.h"
#include "filters/spf/spf_milter.h"
#include "lib/common.h"

static const struct filter_desc spf_desc = {
	.name = "spf",
	.keys = spf_keys_names,
	.configure = spf_configure,
	.milter = &spf_milter,
};

int main(int argc, char **argv)
{
	return filter_main(argc, argv, &spf_desc);
}
