/*
 * milter_log.c - Postfix-shaped milter log lines (milter_log.h).
 *
 * Purpose: write milter-reject / milter-hold / milter-discard lines and the
 *          milter fault warning in one place.
 * Owns: nothing.
 * Never: writes peer text unescaped (buf_escape, bounded).
 * Limits: each escaped field is cut at 300-500 bytes.
 * Tests: tests/interop/test_milter_replies.py (test_reject_log_lines),
 *        tests/interop/test_milter_faults.py (one warning per fault).
 */
#include "mta/milter/milter_log.h"
#include "lib/log.h"
#include "lib/common.h"

/* The address without one pair of angle brackets. */
static struct str milter_log_bare(const char *a)
{
	struct str s = str_of(a);
	if (s.len >= 2 && s.p[0] == '<' && s.p[s.len - 1] == '>') {
		s.p++;
		s.len -= 2;
	}
	return s;
}

void milter_log_fault(const char *queue_id, const char *milter, const char *what,
		      const char *action)
{
	struct buf esc;
	buf_init(&esc, 1024);
	(void)buf_escape(&esc, what, strlen(what), 400);
	log_warning("%s%smilter %s: %s; default_action=%s", queue_id && *queue_id ? queue_id : "",
		    queue_id && *queue_id ? ": " : "", milter, buf_cstr(&esc), action);
	buf_free(&esc);
}

void milter_log_verdict(const struct milter_verdict *v, const char *queue_id,
			const char *client, const char *from, const char *to,
			const char *proto, const char *helo)
{
	const char *what;
	struct buf line;
	buf_init(&line, 4096);
	switch (v->type) {
	case MILTER_VERDICT_REJECT:
	case MILTER_VERDICT_TEMPFAIL:
	case MILTER_VERDICT_SHUTDOWN:
		what = "milter-reject";
		break;
	case MILTER_VERDICT_DISCARD:
		what = "milter-discard";
		break;
	default:
		if (v->quarantine == NULL) {
			buf_free(&line);
			return;
		}
		what = "milter-hold";
		break;
	}
	(void)buf_printf(&line, "%s: %s: %s from ", queue_id ? queue_id : "NOQUEUE", what,
			 milter_stage_name(v->stage));
	(void)buf_escape(&line, client ? client : "unknown", strlen(client ? client : "unknown"), 300);
	(void)buf_puts(&line, ": ");
	if (v->type == MILTER_VERDICT_DISCARD) {
		(void)buf_puts(&line, "milter triggers DISCARD action");
	} else if (what[7] == 'h') {
		(void)buf_puts(&line, "milter triggers HOLD action: ");
		(void)buf_escape(&line, v->quarantine, strlen(v->quarantine), 300);
	} else {
		/* first line only; Postfix's cleanup logs END-OF-MESSAGE replies
		 * without the 3-digit code, smtpd logs the others with it */
		const char *r = v->reply ? v->reply : "";
		size_t n = strcspn(r, "\r\n"), skip = 0;
		if (v->stage == MILTER_STAGE_EOM && n >= 4)
			skip = 4;
		(void)buf_escape(&line, r + skip, n - skip, 500);
	}
	(void)buf_puts(&line, ";");
	const char *names[4] = { "from", "to", "proto", "helo" };
	const char *vals[4] = { from, to, proto, helo };
	for (int i = 0; i < 4; i++) {
		if (vals[i] == NULL)
			continue;
		bool br = i != 2;
		struct str val = br ? milter_log_bare(vals[i]) : str_of(vals[i]);
		(void)buf_printf(&line, " %s=%s", names[i], br ? "<" : "");
		(void)buf_escape(&line, val.p, val.len, 300);
		if (br)
			(void)buf_putc(&line, '>');
	}
	log_info("%s", buf_cstr(&line));
	buf_free(&line);
}
