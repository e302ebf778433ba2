/*
 * cfg_fuzz.c - libFuzzer target for the main.cf and master.cf parsers.
 *
 * The input is parsed as main.cf text (cfg_parse_text) and as master.cf text
 * (cfg_master_parse_text). A configuration that loads is also printed,
 * duplicated and overridden, so expansion and conversion run on it. Nothing
 * may crash, leak or loop; errors are fine.
 */
#include "lib/cfg.h"
#include "lib/log.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		const char *e;
		(void)log_open("cfg_fuzz", "/dev/null", &e); /* warnings are expected */
		quiet = true;
	}
	const char *err;
	struct cfg *c = cfg_parse_text("/etc/postern", "main.cf", (const char *)data, size, &err);
	if (c != NULL) {
		FILE *null = fopen("/dev/null", "w");
		if (null != NULL) {
			(void)cfg_print(c, CFG_PRINT_ALL, NULL, null);
			(void)cfg_print(c, CFG_PRINT_NONDEFAULT, NULL, null);
			fclose(null);
		}
		struct cfg *d = cfg_dup(c);
		(void)cfg_override(d, "myhostname", "fuzz.example.com", &err);
		(void)cfg_override(d, "smtpd_banner", "$myhostname ${mydomain?x} $$", &err);
		cfg_free(&d);
		cfg_free(&c);
	}
	struct cfg_service *s;
	size_t n;
	if (cfg_master_parse_text("master.cf", (const char *)data, size, &s, &n, &err) == 0)
		cfg_master_free(&s, n);
	return 0;
}
