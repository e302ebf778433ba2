/*
 * queue_log.c - delivery log lines in Postfix's shape (see queue_log.h).
 *
 * Purpose: the single producer of "to=<...>, relay=..., status=..." lines.
 * Owns: nothing. Never: writes raw peer bytes (addresses are escaped).
 * Tests: tests/unit/queue/queue_log_test.c (golden lines).
 */
#include "mta/queue/queue_log.h"
#include "lib/common.h"

#define QUEUE_LOG_ADDR_MAX 1024 /* input bytes of one address in a line */
#define QUEUE_LOG_TEXT_MAX 1024 /* input bytes of a reason */

void queue_log_duration(struct buf *out, int64_t us)
{
	if (us < 0)
		us = 0;
	/* two significant digits, at most two decimals, integer part whole */
	int64_t cs = (us + 5000) / 10000; /* hundredths, rounded */
	if (us >= 10000000) {
		buf_printf(out, "%lld", (long long)((us + 500000) / 1000000));
	} else if (us >= 1000000) {
		int64_t ds = (us + 50000) / 100000; /* tenths */
		if (ds % 10 == 0)
			buf_printf(out, "%lld", (long long)(ds / 10));
		else
			buf_printf(out, "%lld.%lld", (long long)(ds / 10), (long long)(ds % 10));
	} else if (cs == 0) {
		buf_puts(out, "0");
	} else if (cs >= 100) {
		buf_puts(out, "1");
	} else if (cs % 10 == 0) {
		buf_printf(out, "0.%lld", (long long)(cs / 10));
	} else {
		buf_printf(out, "0.%02lld", (long long)cs);
	}
}

void queue_log_text(struct buf *out, const char *s, size_t limit)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++) {
		if (i >= limit) {
			buf_puts(out, "...");
			return;
		}
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f)
			buf_putc(out, (char)c);
		else
			buf_printf(out, "\\%03o", c);
	}
}

void queue_log_delivery(struct buf *out, const char *qid, const char *to, const char *orig_to,
			const char *relay, int64_t arrival, int64_t active, int64_t start,
			int64_t end, const char *dsn, const char *status, const char *text)
{
	buf_printf(out, "%s: to=<", qid);
	buf_escape(out, to, strlen(to), QUEUE_LOG_ADDR_MAX);
	buf_puts(out, ">");
	if (orig_to && *orig_to && strcmp(orig_to, to) != 0) {
		buf_puts(out, ", orig_to=<");
		buf_escape(out, orig_to, strlen(orig_to), QUEUE_LOG_ADDR_MAX);
		buf_puts(out, ">");
	}
	buf_printf(out, ", relay=%s, delay=", relay);
	queue_log_duration(out, end - arrival);
	buf_puts(out, ", delays=");
	queue_log_duration(out, active - arrival);
	buf_puts(out, "/");
	queue_log_duration(out, start - active);
	buf_puts(out, "/0/");
	queue_log_duration(out, end - start);
	buf_printf(out, ", dsn=%s, status=%s (", dsn, status);
	queue_log_text(out, text, QUEUE_LOG_TEXT_MAX);
	buf_puts(out, ")");
}

void queue_log_from(struct buf *out, const char *qid, const char *sender, unsigned long long size,
		    size_t nrcpt)
{
	buf_printf(out, "%s: from=<", qid);
	buf_escape(out, sender, strlen(sender), QUEUE_LOG_ADDR_MAX);
	buf_printf(out, ">, size=%llu, nrcpt=%zu (queue active)", size, nrcpt);
}

void queue_log_expired(struct buf *out, const char *qid, const char *sender)
{
	buf_printf(out, "%s: from=<", qid);
	buf_escape(out, sender, strlen(sender), QUEUE_LOG_ADDR_MAX);
	buf_puts(out, ">, status=expired, returned to sender");
}
