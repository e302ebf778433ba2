/*
 * filter_cfg_fuzz.c - libFuzzer target for the filters' config file parser
 * and the settings read from it (filters/common/filter_cfg.c, filter_main.c).
 */
#include "filters/common/filter_cfg.h"
#include "filters/common/filter_main.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct filter_cfg *cfg = NULL;
	const char *err;
	if (filter_cfg_parse((const char *)data, size, &cfg, &err) < 0) {
		CHECK(cfg == NULL && err != NULL);
		return 0;
	}
	for (size_t i = 0; i < cfg->n; i++)
		CHECK(filter_cfg_get(cfg, cfg->v[i].key) != NULL);
	bool b;
	unsigned long n;
	(void)filter_cfg_bool(cfg, "Flag", false, &b, &err);
	(void)filter_cfg_uint(cfg, "Number", 0, 0, 1000, &n, &err);
	/* common settings, except Nameservers unset (it would read resolv.conf) */
	if (filter_cfg_get(cfg, "Nameservers") != NULL) {
		struct filter_common c;
		(void)filter_common_read(cfg, &c, &err);
		filter_common_free(&c);
	}
	filter_cfg_free(&cfg);
	return 0;
}
