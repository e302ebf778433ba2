/*
 * smtpd_cmd_test.c - command lines split into verb, path and parameters;
 * MAIL/RCPT parameters checked; xtext decoded; bad input gets its reply.
 */
#include "tests/unit/unit.h"

#include "mta/ipc/ipc_proto.h"
#include "mta/smtpd/smtpd_cmd.h"
#include "lib/common.h"

static void test_verbs_and_syntax(void **state)
{
	static const struct {
		const char *line;
		int ret;
		enum smtpd_verb verb;
		const char *reply_prefix; /* when ret == -1 */
	} cases[] = {
		{ "EHLO client.test", 0, SMTPD_V_EHLO, NULL },
		{ "ehlo   client.test  ", 0, SMTPD_V_EHLO, NULL },
		{ "EHLO", -1, SMTPD_V_EHLO, "501 5.5.4 Syntax: EHLO" },
		{ "HELO", -1, SMTPD_V_HELO, "501 5.5.4 Syntax: HELO" },
		{ "MAIL FROM:<a@b.test>", 0, SMTPD_V_MAIL, NULL },
		{ "mail from: <a@b.test>", 0, SMTPD_V_MAIL, NULL },
		{ "MAIL TO:<a@b.test>", -1, SMTPD_V_MAIL, "501 5.5.4 Syntax: MAIL" },
		{ "MAIL FROM:", -1, SMTPD_V_MAIL, "501 5.5.4 Syntax: MAIL" },
		{ "MAIL FROM:<a@b.test", -1, SMTPD_V_MAIL, "501" },
		{ "MAIL FROM:<a@b.test>x", -1, SMTPD_V_MAIL, "501" },
		{ "RCPT TO:<a@b.test>", 0, SMTPD_V_RCPT, NULL },
		{ "RCPT FROM:<a@b.test>", -1, SMTPD_V_RCPT, "501 5.5.4 Syntax: RCPT" },
		{ "DATA", 0, SMTPD_V_DATA, NULL },
		{ "DATA x", -1, SMTPD_V_DATA, "501" },
		{ "RSET", 0, SMTPD_V_RSET, NULL },
		{ "NOOP whatever", 0, SMTPD_V_NOOP, NULL },
		{ "QUIT", 0, SMTPD_V_QUIT, NULL },
		{ "STARTTLS", 0, SMTPD_V_STARTTLS, NULL },
		{ "STARTTLS now", -1, SMTPD_V_STARTTLS, "501" },
		{ "VRFY", -1, SMTPD_V_VRFY, "501" },
		{ "VRFY bob", 0, SMTPD_V_VRFY, NULL },
		{ "BDAT 100", 0, SMTPD_V_BDAT, NULL },
		{ "BDAT 0 LAST", 0, SMTPD_V_BDAT, NULL },
		{ "BDAT x", -1, SMTPD_V_BDAT, "501" },
		{ "BDAT 10 FIRST", -1, SMTPD_V_BDAT, "501" },
		{ "BDAT 99999999999999999999", -1, SMTPD_V_BDAT, "501" },
		{ "BDAT", -1, SMTPD_V_BDAT, "501" },
		{ "GET / HTTP/1.0", 0, SMTPD_V_HTTP, NULL },
		{ "FOO bar", 0, SMTPD_V_UNKNOWN, NULL },
		{ "", 0, SMTPD_V_UNKNOWN, NULL },
		{ "HELP", 0, SMTPD_V_HELP, NULL },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct smtpd_cmd cmd;
		const char *reply = NULL;
		int r = smtpd_cmd_parse(str_of(cases[i].line), &cmd, &reply);
		if (r != cases[i].ret || cmd.verb != cases[i].verb)
			fail_msg("case %zu '%s': ret %d verb %d", i, cases[i].line, r, cmd.verb);
		if (r < 0)
			assert_true(strncmp(reply, cases[i].reply_prefix, strlen(cases[i].reply_prefix)) == 0);
	}
}

static void test_path_and_params(void **state)
{
	struct smtpd_cmd cmd;
	const char *reply;
	assert_int_equal(smtpd_cmd_parse(str_of("MAIL FROM:<\"a >b\"@x.test> SIZE=100 BODY=8BITMIME SMTPUTF8"),
					 &cmd, &reply), 0);
	assert_int_equal(cmd.path.len, strlen("<\"a >b\"@x.test>"));
	assert_int_equal(cmd.n_params, 3);
	assert_true(str_eq(cmd.params[0].key, STR_LIT("SIZE")));
	assert_true(str_eq(cmd.params[0].value, STR_LIT("100")));
	assert_false(cmd.params[2].has_value);

	struct smtpd_mail_params mp;
	assert_int_equal(smtpd_cmd_mail_params(&cmd, true, true, &mp, &reply), 0);
	assert_true(mp.has_size);
	assert_int_equal(mp.size, 100);
	assert_int_equal(mp.flags, IPC_QF_8BITMIME | IPC_QF_SMTPUTF8);
	/* SMTPUTF8 not offered: unknown option */
	assert_int_equal(smtpd_cmd_mail_params(&cmd, false, true, &mp, &reply), -1);
	assert_string_equal(reply, "555 5.5.4 Unsupported option");

	/* bare path without <> */
	assert_int_equal(smtpd_cmd_parse(str_of("RCPT TO:bob@x.test NOTIFY=SUCCESS,DELAY"), &cmd, &reply), 0);
	assert_true(str_eq(cmd.path, STR_LIT("bob@x.test")));
	struct smtpd_rcpt_params rp;
	assert_int_equal(smtpd_cmd_rcpt_params(&cmd, true, &rp, &reply), 0);
	assert_int_equal(rp.notify, IPC_QN_SUCCESS | IPC_QN_DELAY);

	/* too many params */
	char line[600] = "MAIL FROM:<a@b.test>";
	for (int i = 0; i < SMTPD_CMD_MAX_PARAMS + 1; i++)
		memcpy(line + strlen(line), " X=1", 5);
	assert_int_equal(smtpd_cmd_parse(str_of(line), &cmd, &reply), -1);
}

static void test_mail_param_table(void **state)
{
	static const struct {
		const char *line;
		int ret;
		unsigned flags;
		const char *envid;
		const char *reply;
	} cases[] = {
		{ "MAIL FROM:<> RET=FULL ENVID=abc+2Bdef", 0, IPC_QF_RET_FULL, "abc+def", NULL },
		{ "MAIL FROM:<> RET=HDRS", 0, IPC_QF_RET_HDRS, "", NULL },
		{ "MAIL FROM:<> RET=ALL", -1, 0, "", "501 5.5.4 Bad RET parameter syntax" },
		{ "MAIL FROM:<> RET=FULL RET=HDRS", -1, 0, "", "501 5.5.4 Bad RET parameter syntax" },
		{ "MAIL FROM:<> ENVID=a+2", -1, 0, "", "501 5.5.4 Bad ENVID parameter syntax" },
		{ "MAIL FROM:<> ENVID=a+2b", -1, 0, "", "501 5.5.4 Bad ENVID parameter syntax" },
		{ "MAIL FROM:<> ENVID=a+00", -1, 0, "", "501 5.5.4 Bad ENVID parameter syntax" },
		{ "MAIL FROM:<> ENVID=", -1, 0, "", "501 5.5.4 Bad ENVID parameter syntax" },
		{ "MAIL FROM:<> SIZE=", -1, 0, "", "501 5.5.4 Bad message size syntax" },
		{ "MAIL FROM:<> SIZE=12x", -1, 0, "", "501 5.5.4 Bad message size syntax" },
		{ "MAIL FROM:<> SIZE=99999999999999999999", -1, 0, "", "501 5.5.4 Bad message size syntax" },
		{ "MAIL FROM:<> BODY=7BIT", 0, 0, "", NULL },
		{ "MAIL FROM:<> BODY=BINARYMIME", 0, IPC_QF_BINARYMIME, "", NULL },
		{ "MAIL FROM:<> BODY=9BIT", -1, 0, "", "501 5.5.4 Bad BODY keyword syntax" },
		{ "MAIL FROM:<> SMTPUTF8=yes", -1, 0, "", "501 5.5.4 Bad SMTPUTF8 parameter syntax" },
		{ "MAIL FROM:<> AUTH=<>", 0, 0, "", NULL },
		{ "MAIL FROM:<> AUTH=user+40x", 0, 0, "", NULL },
		{ "MAIL FROM:<> XFOO=1", -1, 0, "", "555 5.5.4 Unsupported option" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct smtpd_cmd cmd;
		struct smtpd_mail_params mp;
		const char *reply = NULL;
		assert_int_equal(smtpd_cmd_parse(str_of(cases[i].line), &cmd, &reply), 0);
		int r = smtpd_cmd_mail_params(&cmd, true, true, &mp, &reply);
		if (r != cases[i].ret)
			fail_msg("case %zu '%s': %d", i, cases[i].line, r);
		if (r == 0) {
			assert_int_equal(mp.flags, cases[i].flags);
			assert_string_equal(mp.envid, cases[i].envid);
		} else {
			assert_string_equal(reply, cases[i].reply);
		}
	}
}

static void test_rcpt_param_table(void **state)
{
	static const struct {
		const char *line;
		int ret;
		unsigned notify;
		const char *orcpt;
	} cases[] = {
		{ "RCPT TO:<a@b.test> NOTIFY=NEVER", 0, IPC_QN_NEVER, "" },
		{ "RCPT TO:<a@b.test> NOTIFY=never", 0, IPC_QN_NEVER, "" },
		{ "RCPT TO:<a@b.test> NOTIFY=SUCCESS,FAILURE,DELAY", 0, IPC_QN_SUCCESS | IPC_QN_FAILURE | IPC_QN_DELAY, "" },
		{ "RCPT TO:<a@b.test> NOTIFY=NEVER,SUCCESS", -1, 0, "" },
		{ "RCPT TO:<a@b.test> NOTIFY=SUCCESS,SUCCESS", -1, 0, "" },
		{ "RCPT TO:<a@b.test> NOTIFY=", -1, 0, "" },
		{ "RCPT TO:<a@b.test> NOTIFY=SUCCESS,", -1, 0, "" },
		{ "RCPT TO:<a@b.test> ORCPT=rfc822;user+2Bx@example.org", 0, 0, "rfc822;user+x@example.org" },
		{ "RCPT TO:<a@b.test> ORCPT=rfc822;", -1, 0, "" },
		{ "RCPT TO:<a@b.test> ORCPT=user@example.org", -1, 0, "" },
		{ "RCPT TO:<a@b.test> ORCPT=rf;c822;x", 0, 0, "rf;c822;x" },
		{ "RCPT TO:<a@b.test> ORCPT=r@f;x", -1, 0, "" },
		{ "RCPT TO:<a@b.test> SIZE=1", -1, 0, "" },
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct smtpd_cmd cmd;
		struct smtpd_rcpt_params rp;
		const char *reply = NULL;
		assert_int_equal(smtpd_cmd_parse(str_of(cases[i].line), &cmd, &reply), 0);
		int r = smtpd_cmd_rcpt_params(&cmd, true, &rp, &reply);
		if (r != cases[i].ret)
			fail_msg("case %zu '%s': %d", i, cases[i].line, r);
		if (r == 0) {
			assert_int_equal(rp.notify, cases[i].notify);
			assert_string_equal(rp.orcpt, cases[i].orcpt);
		} else {
			assert_true(reply[0] == '5');
		}
	}
	/* DSN not offered: NOTIFY is an unknown option */
	struct smtpd_cmd cmd;
	struct smtpd_rcpt_params rp;
	const char *reply;
	assert_int_equal(smtpd_cmd_parse(str_of("RCPT TO:<a@b.test> NOTIFY=NEVER"), &cmd, &reply), 0);
	assert_int_equal(smtpd_cmd_rcpt_params(&cmd, false, &rp, &reply), -1);
	assert_string_equal(reply, "555 5.5.4 Unsupported option");
}

static void test_xtext(void **state)
{
	char out[8];
	assert_int_equal(smtpd_cmd_xtext_decode(STR_LIT("abc"), out, sizeof(out)), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(smtpd_cmd_xtext_decode(STR_LIT("a+3Db"), out, sizeof(out)), 3);
	assert_string_equal(out, "a=b");
	assert_int_equal(smtpd_cmd_xtext_decode(STR_LIT("a=b"), out, sizeof(out)), -1);
	assert_int_equal(smtpd_cmd_xtext_decode(STR_LIT("1234567"), out, sizeof(out)), 7);
	assert_int_equal(smtpd_cmd_xtext_decode(STR_LIT("12345678"), out, sizeof(out)), -1);
	assert_int_equal(smtpd_cmd_xtext_decode(STR_LIT("+"), out, sizeof(out)), -1);
	assert_int_equal(smtpd_cmd_xtext_decode(STR_LIT("+4"), out, sizeof(out)), -1);
	assert_int_equal(smtpd_cmd_xtext_decode(STR_LIT("a b"), out, sizeof(out)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verbs_and_syntax),
		cmocka_unit_test(test_path_and_params),
		cmocka_unit_test(test_mail_param_table),
		cmocka_unit_test(test_rcpt_param_table),
		cmocka_unit_test(test_xtext),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
