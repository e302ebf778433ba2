/*
 * spf_conf.c - postern-spf's settings (see spf_milter.h).
 *
 * Purpose: read RejectFail, RejectHELOFail, TempErrorAction, PermErrorAction, HeloCheck,
 * AddReceivedSPF and set up libspf2 with our DNS layer.
 * Owns: spf_settings. Tests: tests/interop/test_filter_spf.py (-t cases).
 */
#include <strings.h>

#include "filters/spf/spf_eval.h"
#include "filters/spf/spf_milter.h"
#include "lib/common.h"

struct spf_settings spf_settings;

const char *const spf_keys_names[] = {
	"RejectFail", "RejectHELOFail", "TempErrorAction", "PermErrorAction", "HeloCheck", "AddReceivedSPF", NULL,
};

static int spf_conf_action(const struct filter_cfg *cfg, const char *key, const char *def,
			   const char *other, bool *r, const char **error_r)
{
	const char *v = filter_cfg_get(cfg, key);
	if (v == NULL || strcasecmp(v, def) == 0) {
		*r = false;
		return 0;
	}
	if (strcasecmp(v, other) == 0) {
		*r = true;
		return 0;
	}
	static __thread char msg[128];
	snprintf(msg, sizeof(msg), "%s wants %s or %s", key, def, other);
	*error_r = msg;
	return -1;
}

int spf_configure(const struct filter_cfg *cfg, const struct filter_common *common,
		  const char **error_r)
{
	struct spf_settings *s = &spf_settings;
	if (filter_cfg_bool(cfg, "RejectFail", false, &s->reject_fail, error_r) < 0 ||
	    filter_cfg_bool(cfg, "RejectHELOFail", false, &s->reject_helo_fail, error_r) < 0 ||
	    filter_cfg_bool(cfg, "HeloCheck", true, &s->helo_check, error_r) < 0 ||
	    filter_cfg_bool(cfg, "AddReceivedSPF", true, &s->received_spf, error_r) < 0 ||
	    spf_conf_action(cfg, "TempErrorAction", "accept", "tempfail", &s->tempfail_temperror,
			    error_r) < 0 ||
	    spf_conf_action(cfg, "PermErrorAction", "accept", "reject", &s->reject_permerror,
			    error_r) < 0)
		return -1;
	return spf_eval_init(&common->dns, common->authserv_id, error_r);
}
