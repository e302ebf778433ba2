/*
 * dmarc_main.c - postern-dmarc: program entry.
 *
 * Purpose: hand postern-dmarc's settings and callbacks to filter_main.
 * Tests: tests/interop/test_filter_dmarc.py.
 */
#include "filters/common/filter_main.h"
#include "filters/dmarc/dmarc_milter.h"
#include "lib/common.h"

static const struct filter_desc dmarc_desc = {
	.name = "dmarc",
	.keys = dmarc_keys_names,
	.configure = dmarc_configure,
	.milter = &dmarc_milter,
};

int main(int argc, char **argv)
{
	return filter_main(argc, argv, &dmarc_desc);
}
