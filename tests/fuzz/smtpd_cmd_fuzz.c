/*
 * smtpd_cmd_fuzz.c - libFuzzer target for the SMTP command-line parser:
 * any bytes as one command line, then MAIL/RCPT parameter checks and xtext
 * decoding. Must never crash, overrun or leak; views stay inside the line.
 */
#include "mta/smtpd/smtpd_cmd.h"
#include "lib/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpd_cmd cmd;
	const char *reply = NULL;
	struct str line = { (const char *)data, size };
	if (smtpd_cmd_parse(line, &cmd, &reply) < 0) {
		CHECK(reply != NULL && (reply[0] == '5' || reply[0] == '4'));
		return 0;
	}
	CHECK(cmd.arg.len <= size && cmd.n_params <= SMTPD_CMD_MAX_PARAMS);
	if (cmd.path.len > 0)
		CHECK(cmd.path.p >= line.p && cmd.path.p + cmd.path.len <= line.p + size);
	struct smtpd_mail_params mp;
	struct smtpd_rcpt_params rp;
	smtpd_cmd_mail_params(&cmd, true, true, &mp, &reply);
	smtpd_cmd_rcpt_params(&cmd, true, &rp, &reply);
	CHECK(strlen(mp.envid) < sizeof(mp.envid) && strlen(rp.orcpt) < sizeof(rp.orcpt));
	char x[64];
	smtpd_cmd_xtext_decode(line, x, sizeof(x));
	return 0;
}
