/*
 * dmarc_conf.c - postern-dmarc's settings (see dmarc_milter.h).
 *
 * Purpose: read the settings and set up libopendmarc (with the public
 * suffix list for organisational domains).
 * Owns: dmarc_settings. Tests: tests/interop/test_filter_dmarc.py.
 */
#include <dmarc.h>
#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include "filters/dmarc/dmarc_milter.h"
#include "filters/spf/spf_eval.h"
#include "lib/common.h"

#define DMARC_PSL_DEFAULT "/usr/share/publicsuffix/public_suffix_list.dat"

struct dmarc_settings dmarc_settings;

const char *const dmarc_keys_names[] = {
	"TrustedAuthservIDs", "RejectFailures", "QuarantineFailures", "BadFromAction",
	"TempErrorAction", "PublicSuffixList", "HistoryFile", "SPFSelfValidate", NULL,
};

static OPENDMARC_LIB_T dmarc_lib;

int dmarc_configure(const struct filter_cfg *cfg, const struct filter_common *common,
		    const char **error_r)
{
	struct dmarc_settings *s = &dmarc_settings;
	if (filter_cfg_bool(cfg, "SPFSelfValidate", false, &s->spf_self, error_r) < 0 ||
	    filter_cfg_bool(cfg, "RejectFailures", false, &s->reject, error_r) < 0 ||
	    filter_cfg_bool(cfg, "QuarantineFailures", false, &s->quarantine, error_r) < 0)
		return -1;
	const char *v = filter_cfg_get(cfg, "BadFromAction");
	if (v == NULL || strcasecmp(v, "accept") == 0)
		s->reject_bad_from = false;
	else if (strcasecmp(v, "reject") == 0)
		s->reject_bad_from = true;
	else {
		*error_r = "BadFromAction wants accept or reject";
		return -1;
	}
	v = filter_cfg_get(cfg, "TempErrorAction");
	if (v == NULL || strcasecmp(v, "accept") == 0)
		s->tempfail_temperror = false;
	else if (strcasecmp(v, "tempfail") == 0)
		s->tempfail_temperror = true;
	else {
		*error_r = "TempErrorAction wants accept or tempfail";
		return -1;
	}
	v = filter_cfg_get(cfg, "TrustedAuthservIDs");
	const char *p = v ? v : common->authserv_id;
	while (*p) {
		p += strspn(p, ", \t");
		size_t n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if (s->ntrusted == DMARC_MAX_TRUSTED) {
			*error_r = "TrustedAuthservIDs: too many";
			return -1;
		}
		s->trusted[s->ntrusted++] = xmemdup(p, n);
		p += n;
	}
	v = filter_cfg_get(cfg, "HistoryFile");
	s->history_fd = -1;
	if (v != NULL && *v != '\0') {
		/* opened now, as root, and kept: the file needs no permission
		 * for UserID */
		s->history_fd = open(v, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (s->history_fd < 0) {
			static __thread char msg[300];
			snprintf(msg, sizeof(msg), "HistoryFile %.200s: %s", v, strerror(errno));
			*error_r = msg;
			return -1;
		}
	}
	v = filter_cfg_get(cfg, "PublicSuffixList");
	if (v == NULL && access(DMARC_PSL_DEFAULT, R_OK) == 0)
		v = DMARC_PSL_DEFAULT;
	memset(&dmarc_lib, 0, sizeof(dmarc_lib));
	dmarc_lib.tld_type = OPENDMARC_TLD_TYPE_NONE;
	if (v != NULL && *v != '\0') {
		if (access(v, R_OK) != 0 || strlen(v) >= sizeof(dmarc_lib.tld_source_file)) {
			*error_r = "PublicSuffixList is not readable";
			return -1;
		}
		dmarc_lib.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
		memcpy(dmarc_lib.tld_source_file, v, strlen(v) + 1);
	}
	if (opendmarc_policy_library_init(&dmarc_lib) != DMARC_PARSE_OKAY) {
		*error_r = "libopendmarc initialisation failed (PublicSuffixList?)";
		return -1;
	}
	if (s->spf_self)
		return spf_eval_init(&common->dns, common->authserv_id, error_r);
	return 0;
}
