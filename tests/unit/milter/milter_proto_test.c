/*
 * milter_proto_test.c - milter codec: the captured byte session of the
 * reference, framing limits, every reply letter at every stage, hostile
 * packets, option negotiation and 'y' reply text validation.
 */
#include "tests/unit/unit.h"

#include "mta/milter/milter_proto.h"
#include "lib/common.h"

/* A neg that allows everything v6 offers. */
static struct milter_neg full_neg(void)
{
	struct milter_neg n = { 0 };
	n.version = 6;
	n.actions = 0x1FF;
	n.protocol = MILTER_P_SKIP;
	return n;
}

static void test_encode_captured(void **state)
{
	struct buf b;
	buf_init(&b, 4096);
	assert_int_equal(milter_proto_put_optneg(&b, 6, 0x1FF, 0x1FFFFF), 0);
	static const unsigned char opt[] = { 0, 0, 0, 0x0d, 'O', 0, 0, 0, 6, 0, 0, 1, 0xff,
					     0, 0x1f, 0xff, 0xff };
	assert_int_equal(b.len, sizeof(opt));
	assert_memory_equal(b.data, opt, sizeof(opt));
	buf_reset(&b);
	assert_int_equal(milter_proto_put_connect(&b, "client.example.net", '4', 4567, "192.0.2.1"), 0);
	static const char conn[] = "\0\0\0\x21" "Cclient.example.net\0" "4\x11\xd7" "192.0.2.1";
	assert_int_equal(b.len, sizeof(conn)); /* includes the final NUL */
	assert_memory_equal(b.data, conn, sizeof(conn));
	buf_reset(&b);
	const char *mail[] = { "<alice@example.net>", "SIZE=100" };
	assert_int_equal(milter_proto_put_strs(&b, 'M', mail, 2), 0);
	static const char m[] = "\0\0\0\x1e" "M<alice@example.net>\0SIZE=100";
	assert_int_equal(b.len, sizeof(m));
	assert_memory_equal(b.data, m, sizeof(m));
	buf_reset(&b);
	const char *nv[] = { "j", "mx.example.org", "{client_addr}", "192.0.2.1" };
	assert_int_equal(milter_proto_put_macros(&b, 'C', nv, 2), 0);
	static const char d[] = "\0\0\0\x2b" "DCj\0mx.example.org\0{client_addr}\0" "192.0.2.1";
	assert_int_equal(b.len, sizeof(d));
	assert_memory_equal(b.data, d, sizeof(d));
	buf_reset(&b);
	assert_int_equal(milter_proto_put_connect(&b, "h", 'U', 0, NULL), 0);
	assert_int_equal(b.len, 4 + 1 + 2 + 1);
	/* the buffer maximum is respected: nothing appended */
	struct buf small;
	buf_init(&small, 8);
	assert_int_equal(milter_proto_put_strs(&small, 'H', mail, 1), -1);
	assert_int_equal(small.len, 0);
	buf_free(&small);
	buf_free(&b);
}

static void test_frame(void **state)
{
	size_t total = 0;
	const char *err = NULL;
	static const unsigned char ok[] = { 0, 0, 0, 1, 'c' };
	assert_int_equal(milter_proto_frame(ok, 3, 100, &total, &err), 0);
	assert_int_equal(milter_proto_frame(ok, 4, 100, &total, &err), 0);
	assert_int_equal(total, 5);
	assert_int_equal(milter_proto_frame(ok, 5, 100, &total, &err), 1);
	static const unsigned char zero[] = { 0, 0, 0, 0 };
	assert_int_equal(milter_proto_frame(zero, 4, 100, &total, &err), -1);
	assert_string_equal(err, "zero-length packet");
	static const unsigned char huge[] = { 0xff, 0xff, 0xff, 0xff };
	assert_int_equal(milter_proto_frame(huge, 4, MILTER_REPLY_MAX_DEFAULT, &total, &err), -1);
	assert_string_equal(err, "oversized packet");
	static const unsigned char edge[] = { 0, 0, 0, 101 };
	assert_int_equal(milter_proto_frame(edge, 4, 100, &total, &err), -1);
	static const unsigned char edge2[] = { 0, 0, 0, 100 };
	assert_int_equal(milter_proto_frame(edge2, 4, 100, &total, &err), 0);
	assert_int_equal(total, 104);
}

struct reply_case {
	const char *pkt;             /* command + data */
	size_t len;                  /* bytes in pkt */
	enum milter_stage stage;     /* where it arrives */
	int rc;                      /* 0 ok, -1 refused */
	enum milter_reply_type type; /* when ok */
};

#define P(s) s, sizeof(s) - 1

static const struct reply_case reply_cases[] = {
	{ P("c"), MILTER_STAGE_CONNECT, 0, MILTER_R_CONTINUE },
	{ P("a"), MILTER_STAGE_HELO, 0, MILTER_R_ACCEPT },
	{ P("r"), MILTER_STAGE_RCPT, 0, MILTER_R_REJECT },
	{ P("t"), MILTER_STAGE_MAIL, 0, MILTER_R_TEMPFAIL },
	{ P("d"), MILTER_STAGE_DATA, 0, MILTER_R_DISCARD },
	{ P("4"), MILTER_STAGE_EOM, 0, MILTER_R_SHUTDOWN },
	{ P("p"), MILTER_STAGE_BODY, 0, MILTER_R_PROGRESS },
	{ P("s"), MILTER_STAGE_BODY, 0, MILTER_R_SKIP },
	{ P("s"), MILTER_STAGE_HEADER, -1, 0 },       /* skip only for body */
	{ P("y550 5.7.1 no\0"), MILTER_STAGE_RCPT, 0, MILTER_R_REPLYCODE },
	{ P("y550-5.7.1 one\r\n550 5.7.1 two\0"), MILTER_STAGE_EOM, 0, MILTER_R_REPLYCODE },
	{ P("y250 ok\0"), MILTER_STAGE_RCPT, -1, 0 },  /* not 4xx/5xx */
	{ P("y550 4.7.1 mixed\0"), MILTER_STAGE_RCPT, -1, 0 },
	{ P("y550 5.7.1 no"), MILTER_STAGE_RCPT, -1, 0 }, /* missing NUL */
	{ P("y550 x\0junk"), MILTER_STAGE_RCPT, -1, 0 },  /* bytes after the string */
	{ P("qheld\0"), MILTER_STAGE_EOM, 0, MILTER_R_QUARANTINE },
	{ P("qheld\0"), MILTER_STAGE_MAIL, 0, MILTER_R_QUARANTINE },
	{ P("hX-A\0v\0"), MILTER_STAGE_EOM, 0, MILTER_R_ADDHEADER },
	{ P("hX-A\0v\0"), MILTER_STAGE_BODY, -1, 0 },   /* edits only at EOM */
	{ P("h\0v\0"), MILTER_STAGE_EOM, -1, 0 },       /* empty name */
	{ P("hX A\0v\0"), MILTER_STAGE_EOM, -1, 0 },    /* space in name */
	{ P("hX:A\0v\0"), MILTER_STAGE_EOM, -1, 0 },    /* colon in name */
	{ P("hX-A\0v"), MILTER_STAGE_EOM, -1, 0 },      /* value without NUL */
	{ P("i\0\0\0\0X-Top\0first\0"), MILTER_STAGE_EOM, 0, MILTER_R_INSHEADER },
	{ P("i\0\0\0X\0v\0"), MILTER_STAGE_EOM, -1, 0 }, /* index eats name */
	{ P("i\0\0"), MILTER_STAGE_EOM, -1, 0 },         /* truncated index */
	{ P("m\0\0\0\1Subject\0changed\0"), MILTER_STAGE_EOM, 0, MILTER_R_CHGHEADER },
	{ P("m\0\0\0\1X-Remove\0\0"), MILTER_STAGE_EOM, 0, MILTER_R_CHGHEADER },
	{ P("m\x80\0\0\0X\0v\0"), MILTER_STAGE_EOM, -1, 0 }, /* negative index */
	{ P("+<new@example.org>\0"), MILTER_STAGE_EOM, 0, MILTER_R_ADDRCPT },
	{ P("+\0"), MILTER_STAGE_EOM, -1, 0 },
	{ P("2<n@e>\0NOTIFY=NEVER\0"), MILTER_STAGE_EOM, 0, MILTER_R_ADDRCPT_PAR },
	{ P("2<n@e>\0"), MILTER_STAGE_EOM, 0, MILTER_R_ADDRCPT_PAR },
	{ P("-<bob@example.org>\0"), MILTER_STAGE_EOM, 0, MILTER_R_DELRCPT },
	{ P("e<bounce@example.org>\0BODY=8BITMIME\0"), MILTER_STAGE_EOM, 0, MILTER_R_CHGFROM },
	{ P("e<>\0"), MILTER_STAGE_EOM, 0, MILTER_R_CHGFROM },
	{ P("e<a>\0x\0y\0"), MILTER_STAGE_EOM, -1, 0 },   /* too many strings */
	{ P("bnew body\r\n"), MILTER_STAGE_EOM, 0, MILTER_R_REPLBODY },
	{ P("b"), MILTER_STAGE_EOM, 0, MILTER_R_REPLBODY },
	{ P("c!"), MILTER_STAGE_CONNECT, -1, 0 },        /* data after continue */
	{ P("f"), MILTER_STAGE_CONNECT, -1, 0 },         /* connfail: unsupported */
	{ P("Z"), MILTER_STAGE_HELO, -1, 0 },
	{ P("l"), MILTER_STAGE_HELO, -1, 0 },
	{ P("O"), MILTER_STAGE_HELO, -1, 0 },
	{ P("c"), MILTER_STAGE_ABORT, -1, 0 },           /* nothing is answered there */
	{ P("c"), MILTER_STAGE_OPTNEG, -1, 0 },
};

static void test_replies(void **state)
{
	struct milter_neg neg = full_neg();
	for (size_t i = 0; i < ARRAY_LEN(reply_cases); i++) {
		const struct reply_case *c = &reply_cases[i];
		struct milter_reply r;
		const char *err = NULL;
		int rc = milter_proto_parse_reply(c->pkt, c->len, c->stage, &neg, &r, &err);
		if (rc != c->rc)
			fail_msg("case %zu ('%c' at %s): rc %d, want %d (%s)", i, c->pkt[0],
				 milter_stage_name(c->stage), rc, c->rc, err ? err : "");
		if (rc == 0)
			assert_int_equal(r.type, c->type);
		else
			assert_non_null(err);
	}
}

static void test_reply_fields(void **state)
{
	struct milter_neg neg = full_neg();
	struct milter_reply r;
	const char *err = NULL;
	static const char chg[] = "m\0\0\0\2Subject\0 changed\0";
	assert_int_equal(milter_proto_parse_reply(chg, sizeof(chg) - 1, MILTER_STAGE_EOM, &neg, &r, &err), 0);
	assert_int_equal(r.index, 2);
	assert_true(str_eq(r.name, STR_LIT("Subject")));
	assert_true(str_eq(r.value, STR_LIT(" changed")));
	static const char from[] = "e<b@x>\0BODY=8BITMIME\0";
	assert_int_equal(milter_proto_parse_reply(from, sizeof(from) - 1, MILTER_STAGE_EOM, &neg, &r, &err), 0);
	assert_true(str_eq(r.addr, STR_LIT("<b@x>")));
	assert_true(str_eq(r.args, STR_LIT("BODY=8BITMIME")));
	static const char body[] = "babc\0def";
	assert_int_equal(milter_proto_parse_reply(body, sizeof(body) - 1, MILTER_STAGE_EOM, &neg, &r, &err), 0);
	assert_int_equal(r.body.len, 7);
}

/* An edit needs its action negotiated; skip needs SMFIP_SKIP. */
static void test_reply_needs_negotiation(void **state)
{
	struct milter_neg neg = { .version = 6, .actions = 0, .protocol = 0 };
	struct milter_reply r;
	const char *err = NULL;
	static const char *const edits[] = { "hX\0v\0", "+<a>\0", "-<a>\0", "e<a>\0", "bx", "qr\0" };
	static const size_t lens[] = { 5, 5, 5, 5, 2, 3 };
	for (size_t i = 0; i < ARRAY_LEN(edits); i++)
		assert_int_equal(milter_proto_parse_reply(edits[i], lens[i], MILTER_STAGE_EOM, &neg, &r, &err), -1);
	assert_int_equal(milter_proto_parse_reply("s", 1, MILTER_STAGE_BODY, &neg, &r, &err), -1);
	neg.actions = MILTER_F_ADDHDRS;
	assert_int_equal(milter_proto_parse_reply("hX\0v\0", 5, MILTER_STAGE_EOM, &neg, &r, &err), 0);
	assert_int_equal(milter_proto_parse_reply("m\0\0\0\1X\0v\0", 9, MILTER_STAGE_EOM, &neg, &r, &err), -1);
	assert_int_equal(milter_proto_parse_reply("", 0, MILTER_STAGE_EOM, &neg, &r, &err), -1);
}

struct optneg_case {
	const char *data; /* reply data after 'O' */
	size_t len;
	int rc;
};

static const struct optneg_case optneg_cases[] = {
	{ P("\0\0\0\6\0\0\1\x7f\0\0\4\x80"), 0 },
	{ P("\0\0\0\6\0\0\1\x7f\0\0\4\x80" "\0\0\0\0j {client_addr}\0" "\0\0\0\2i {auth_type}\0"), 0 },
	{ P("\0\0\0\2\0\0\0\x0f\0\0\0\0"), 0 },                  /* v2 filter */
	{ P("\0\0\0\7\0\0\0\0\0\0\0\0"), -1 },                   /* version above ours */
	{ P("\0\0\0\1\0\0\0\0\0\0\0\0"), -1 },                   /* version below 2 */
	{ P("\0\0\0\6\0\0\2\0\0\0\0\0"), -1 },                   /* action 0x200 not offered */
	{ P("\0\0\0\6\0\0\0\0\0\x40\0\0"), -1 },                 /* protocol bit not offered */
	{ P("\0\0\0\6\0\0\0\0\x30\0\0\0"), 0 },                  /* MDS bits are cleared */
	{ P("\0\0\0\6\0\0\1\0\0\0\0"), -1 },                     /* short */
	{ P("\0\0\0\6\0\0\1\0\0\0\0\0\0\0\0\7x\0"), -1 },        /* stage 7 */
	{ P("\0\0\0\6\0\0\1\0\0\0\0\0\0\0\0\1x"), -1 },          /* list without NUL */
	{ P("\0\0\0\6\0\0\1\0\0\0\0\0\0\0"), -1 },               /* truncated stage */
	{ P("\0\0\0\6\0\0\0\0\0\0\0\0\0\0\0\1x\0"), -1 },        /* symlist not granted */
};

static void test_optneg(void **state)
{
	uint32_t a, p;
	assert_int_equal(milter_proto_offer(6, false, &a, &p), 0);
	assert_int_equal(a, 0x1FF);
	assert_int_equal(p, 0x1FFFFF);
	assert_int_equal(milter_proto_offer(2, true, &a, &p), 0);
	assert_int_equal(a, 0x3F);
	assert_int_equal(p, 0xFF);
	assert_int_equal(milter_proto_offer(5, false, &a, &p), -1);
	for (size_t i = 0; i < ARRAY_LEN(optneg_cases); i++) {
		struct milter_neg neg;
		const char *err = NULL;
		int rc = milter_proto_parse_optneg(optneg_cases[i].data, optneg_cases[i].len, 6, 0x1FF,
						   0x1FFFFF, &neg, &err);
		if (rc != optneg_cases[i].rc)
			fail_msg("optneg case %zu: rc %d want %d (%s)", i, rc, optneg_cases[i].rc,
				 err ? err : "");
		if (i == 1) {
			assert_string_equal(neg.symlist[0], "j {client_addr}");
			assert_string_equal(neg.symlist[2], "i {auth_type}");
			assert_null(neg.symlist[1]);
			assert_int_equal(neg.protocol, MILTER_P_NR_HDR | MILTER_P_SKIP);
		}
		if (i == 7)
			assert_int_equal(neg.protocol, 0);
		milter_neg_free(&neg);
	}
}

struct code_case {
	const char *in;  /* raw 'y' text */
	const char *out; /* normalised, NULL when refused */
};

static const struct code_case code_cases[] = {
	{ "550 5.7.1 Go away", "550 5.7.1 Go away" },
	{ "451 4.3.0 later", "451 4.3.0 later" },
	{ "550", "550" },
	{ "550 no enhanced code", "550 no enhanced code" },
	{ "550-5.7.1 line one\r\n550 5.7.1 line two", "550-5.7.1 line one\r\n550 5.7.1 line two" },
	{ "550-one\n550 two", "550-one\r\n550 two" },
	{ "550 100%% sure", "550 100% sure" },
	{ "550 5.7.1 trailing\r\n", "550 5.7.1 trailing" },
	{ "250 ok", NULL },
	{ "550 4.7.1 class", NULL },
	{ "550-only one line", NULL },
	{ "550 one\r\n550 two", NULL },
	{ "550-one\r\n551 two", NULL },
	{ "55", NULL },
	{ "5x0 bad", NULL },
	{ "550x", NULL },
	{ "550 5.7 short", NULL },
	{ "550 bell\a", NULL },
	{ "", NULL },
};

static void test_replycode(void **state)
{
	for (size_t i = 0; i < ARRAY_LEN(code_cases); i++) {
		struct buf out;
		const char *err = NULL;
		buf_init(&out, 1024);
		int rc = milter_proto_replycode(str_of(code_cases[i].in), &out, &err);
		if (code_cases[i].out == NULL) {
			if (rc != -1)
				fail_msg("code case %zu (%s) accepted", i, code_cases[i].in);
		} else {
			if (rc != code_cases[i].in[0])
				fail_msg("code case %zu (%s) refused: %s", i, code_cases[i].in, err);
			assert_string_equal(buf_cstr(&out), code_cases[i].out);
		}
		buf_free(&out);
	}
}

static void test_stage_tables(void **state)
{
	assert_int_equal(milter_stage_cmd(MILTER_STAGE_EOM), 'E');
	assert_string_equal(milter_stage_name(MILTER_STAGE_EOM), "END-OF-MESSAGE");
	assert_int_equal(milter_stage_nr_bit(MILTER_STAGE_HEADER), MILTER_P_NR_HDR);
	assert_int_equal(milter_stage_nr_bit(MILTER_STAGE_EOM), 0);
	assert_int_equal(milter_stage_no_bit(MILTER_STAGE_DATA), MILTER_P_NODATA);
	assert_int_equal(milter_stage_macros(MILTER_STAGE_HEADER), MILTER_MACROS_EOH);
	assert_int_equal(milter_stage_macros(MILTER_STAGE_BODY), MILTER_MACROS_EOM);
	assert_int_equal(milter_stage_macros(MILTER_STAGE_QUIT), -1);
	assert_string_equal(milter_stage_name(MILTER_STAGE_COUNT), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_captured),
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_reply_fields),
		cmocka_unit_test(test_reply_needs_negotiation),
		cmocka_unit_test(test_optneg),
		cmocka_unit_test(test_replycode),
		cmocka_unit_test(test_stage_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
