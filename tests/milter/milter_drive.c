/*
 * milter_drive.c - runs one SMTP-like session through a milter chain
 * (mta/milter) on its own event loop and prints what the chain decided.
 *
 * Purpose: lets the pytest tests drive postern_milter against real and fake
 *          milters without smtpd.
 * Usage:
 *   milter-drive -o smtpd_milters=inet:127.0.0.1:PORT [-o name=value]...
 *     [--connect host,addr,port,family] [--helo NAME] [--from '<a@b>']
 *     [--mail-arg ARG]... [--rcpt '<c@d>']... [--rcpt-arg ARG]
 *     [--message FILE] [--out FILE] [--unknown 'LINE'] [--macro name=value]...
 *     [--messages N] [--macro-defaults 'name=value,...'] [--received ' by us']
 *     [--rejected-rcpt '<x@y>']... (recipients smtpd rejected, asked first)
 *   -o lines form main.cf (so milter_* parameters are read through lib/cfg).
 * Output (stdout), one line per stage:
 *   STAGE verdict [reply with CR LF shown as \r\n]
 *   quarantine: REASON
 * after END-OF-MESSAGE:
 *   sender: <a@b> [args]
 *   rcpt: <c@d> [args=...] [added] [deleted]
 *   mod: TYPE ...
 *   headers_changed: yes|no   body_changed: yes|no
 * and the edited message in --out FILE. Exit 0 when the session ran (any
 * verdict), 2 on bad usage or configuration.
 */
#include <getopt.h>
#include <signal.h>

#include "mta/milter/milter_chain.h"
#include "mta/milter/milter_log.h"
#include "lib/cfg.h"
#include "lib/log.h"
#include "lib/common.h"

struct drive {
	struct event_base *base;
	struct milter_chain *ch;
	struct milter_conf *conf;
	/* scenario */
	char *host, *addr, *family;
	unsigned port;
	const char *helo, *from, *unknown, *message_file, *out_file;
	const char *received;   /* our own Received: value, hidden from milters */
	const char *mail_args[32];
	size_t n_mail_args;
	const char *rcpts[64];
	size_t n_rcpts;
	const char *rcpt_arg;
	const char *rej_rcpts[16];   /* recipients "smtpd rejected" (--rejected-rcpt) */
	size_t n_rej, rej_i;
	bool cur_rej;                /* the RCPT being asked is one of them */
	char rej_reply[600];
	char *macro_names[64], *macro_values[64];
	size_t n_macros;
	int messages;
	/* progress */
	int step;
	size_t rcpt_i;
	size_t rcpts_ok;
	int msg_no;
	const char *cur_rcpt;
	char *mail_addr;
	bool in_mail;
};

static const char *drive_macro(const char *name, void *ctx)
{
	struct drive *d = ctx;
	static char tmp[512];
	for (size_t i = 0; i < d->n_macros; i++)
		if (strcmp(d->macro_names[i], name) == 0)
			return d->macro_values[i];
	if (strcmp(name, "j") == 0)
		return "mx.postern.test";
	if (strcmp(name, "_") == 0) {
		(void)snprintf(tmp, sizeof(tmp), "%s [%s]", d->host, d->addr);
		return tmp;
	}
	if (strcmp(name, "client_addr") == 0)
		return d->addr;
	if (strcmp(name, "client_name") == 0)
		return d->host;
	if (strcmp(name, "client_port") == 0) {
		(void)snprintf(tmp, sizeof(tmp), "%u", d->port);
		return tmp;
	}
	if (strcmp(name, "i") == 0)
		return d->in_mail ? "4DRIVEQID" : NULL;
	if (strcmp(name, "mail_addr") == 0)
		return d->in_mail ? d->mail_addr : NULL;
	if (strcmp(name, "rcpt_addr") == 0)
		return d->cur_rcpt;
	return NULL;
}

static void drive_print_escaped(const char *s)
{
	for (; *s; s++) {
		if (*s == '\r')
			fputs("\\r", stdout);
		else if (*s == '\n')
			fputs("\\n", stdout);
		else
			putchar(*s);
	}
}

static void drive_next(struct drive *d);

static void drive_eom_report(struct drive *d, const struct milter_verdict *v)
{
	printf("sender: %s%s%s\n", v->sender ? v->sender : "", v->sender_args ? " " : "",
	       v->sender_args ? v->sender_args : "");
	for (size_t i = 0; i < v->n_rcpts; i++) {
		const struct milter_rcpt *r = &v->rcpts[i];
		printf("rcpt: %s%s%s%s%s\n", r->addr, r->args ? " args=" : "", r->args ? r->args : "",
		       r->added ? " added" : "", r->deleted ? " deleted" : "");
	}
	for (size_t i = 0; i < v->n_mods; i++) {
		const struct milter_mod *m = &v->mods[i];
		printf("mod: %s", milter_reply_name(m->type));
		if (m->type == MILTER_R_INSHEADER || m->type == MILTER_R_CHGHEADER)
			printf(" %u", m->index);
		if (m->name)
			printf(" %s", m->name);
		if (m->value) {
			putchar(' ');
			drive_print_escaped(m->value);
		}
		if (m->addr)
			printf(" %s", m->addr);
		if (m->args)
			printf(" %s", m->args);
		if (m->type == MILTER_R_REPLBODY)
			printf(" %zu bytes", m->body.len);
		putchar('\n');
	}
	printf("headers_changed: %s\nbody_changed: %s\n", v->headers_changed ? "yes" : "no",
	       v->body_changed ? "yes" : "no");
	if (d->out_file && v->msg) {
		struct buf out;
		buf_init(&out, (size_t)1 << 30);
		CHECK(milter_msg_render(v->msg, &out) == 0);
		FILE *f = fopen(d->out_file, "wb");
		if (f == NULL || fwrite(out.data ? out.data : "", 1, out.len, f) != out.len)
			log_fatal("cannot write %s", d->out_file);
		fclose(f);
		buf_free(&out);
	}
}

static void drive_done(struct milter_chain *ch, const struct milter_verdict *v, void *ctx)
{
	struct drive *d = ctx;
	printf("%s %s", milter_stage_name(v->stage), milter_verdict_name(v->type));
	if (v->reply) {
		putchar(' ');
		drive_print_escaped(v->reply);
	}
	putchar('\n');
	if (v->quarantine)
		printf("quarantine: %s\n", v->quarantine);
	if ((v->type != MILTER_VERDICT_CONTINUE && v->type != MILTER_VERDICT_ACCEPT) ||
	    v->quarantine != NULL)
		milter_log_verdict(v, d->in_mail ? "4DRIVEQID" : NULL, "client[addr]", d->from,
					 d->cur_rcpt, "ESMTP", d->helo);
	if (v->stage == MILTER_STAGE_EOM)
		drive_eom_report(d, v);
	fflush(stdout);
	bool bad = v->type == MILTER_VERDICT_REJECT || v->type == MILTER_VERDICT_TEMPFAIL ||
		   v->type == MILTER_VERDICT_SHUTDOWN;
	if (v->stage == MILTER_STAGE_RCPT) {
		if (!bad && !d->cur_rej)
			d->rcpts_ok++;
		bad = false;
	}
	if (bad || (v->type == MILTER_VERDICT_DISCARD && v->stage == MILTER_STAGE_EOM)) {
		if (v->type == MILTER_VERDICT_SHUTDOWN || v->stage == MILTER_STAGE_CONNECT ||
		    v->stage == MILTER_STAGE_HELO || d->msg_no + 1 >= d->messages) {
			event_base_loopbreak(d->base);
			return;
		}
		/* a failed transaction: abort and start the next message */
		milter_chain_abort(d->ch);
		d->msg_no++;
		d->step = 3;
	}
	drive_next(d);
}

/* steps: 0 connect, 1 unknown, 2 helo, 3 mail, 4 rcpts, 5 data, 6 eom, 7 next */
static void drive_next(struct drive *d)
{
	for (;;) {
		switch (d->step++) {
		case 0:
			milter_chain_connect(d->ch, d->host, d->addr, d->port, d->family[0]);
			return;
		case 1:
			if (d->unknown) {
				milter_chain_unknown(d->ch, d->unknown);
				return;
			}
			continue;
		case 2:
			if (d->helo) {
				milter_chain_helo(d->ch, d->helo);
				return;
			}
			continue;
		case 3:
			if (d->from == NULL) {
				d->step = 8;
				continue;
			}
			d->in_mail = true;
			d->rcpt_i = 0;
			d->rej_i = 0;
			d->rcpts_ok = 0;
			d->cur_rcpt = NULL;
			milter_chain_mail(d->ch, d->from, d->mail_args, d->n_mail_args);
			return;
		case 4:
			if (d->rej_i < d->n_rej) {
				d->step = 4;
				d->cur_rcpt = d->rej_rcpts[d->rej_i++];
				d->cur_rej = true;
				(void)snprintf(d->rej_reply, sizeof(d->rej_reply),
					       "550 5.1.1 %s: Recipient address rejected: User unknown",
					       d->cur_rcpt);
				milter_chain_rcpt_rejected(d->ch, d->cur_rcpt, NULL, 0, d->rej_reply);
				return;
			}
			d->cur_rej = false;
			if (d->rcpt_i < d->n_rcpts) {
				d->step = 4;
				d->cur_rcpt = d->rcpts[d->rcpt_i++];
				milter_chain_rcpt(d->ch, d->cur_rcpt, d->rcpt_arg ? &d->rcpt_arg : NULL,
						  d->rcpt_arg ? 1 : 0);
				return;
			}
			if (d->rcpts_ok == 0) {
				printf("no recipients\n");
				d->step = 8;
				continue;
			}
			continue;
		case 5:
			milter_chain_data(d->ch);
			return;
		case 6:
			if (d->received)
				CHECK(milter_chain_header(d->ch, "Received", d->received, true) == 0);
			if (d->message_file) {
				FILE *f = fopen(d->message_file, "rb");
				struct buf msg;
				char chunk[8192];
				size_t n;
				buf_init(&msg, (size_t)1 << 30);
				if (f == NULL)
					log_fatal("cannot open %s", d->message_file);
				while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
					CHECK(buf_append(&msg, chunk, n) == 0);
				fclose(f);
				if (milter_chain_message(d->ch, msg.data ? msg.data : "", msg.len) < 0)
					log_fatal("message too large");
				buf_free(&msg);
			}
			milter_chain_eom(d->ch);
			return;
		case 7:
			if (++d->msg_no < d->messages) {
				milter_chain_abort(d->ch);
				d->step = 3;
				continue;
			}
			continue;
		default:
			event_base_loopbreak(d->base);
			return;
		}
	}
}

static void drive_usage(void)
{
	fprintf(stderr, "usage: milter-drive -o name=value... [--connect host,addr,port,family] "
			"[--helo H] [--from F] [--rcpt R]... [--message FILE] [--out FILE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", 1, NULL, 'c' },  { "helo", 1, NULL, 'h' },
		{ "from", 1, NULL, 'f' },     { "mail-arg", 1, NULL, 'F' },
		{ "rcpt", 1, NULL, 'r' },     { "rcpt-arg", 1, NULL, 'R' },
		{ "message", 1, NULL, 'm' },  { "out", 1, NULL, 'O' },
		{ "unknown", 1, NULL, 'u' },  { "macro", 1, NULL, 'M' },
		{ "messages", 1, NULL, 'n' }, { "macro-defaults", 1, NULL, 'D' },
		{ "received", 1, NULL, 'V' },  { "rejected-rcpt", 1, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	struct drive d = { 0 };
	struct buf maincf;
	const char *macro_defaults = NULL;
	int c;
	buf_init(&maincf, 1 << 20);
	d.host = xstrdup("client.example.net");
	d.addr = xstrdup("192.0.2.1");
	d.family = xstrdup("4");
	d.port = 4567;
	d.messages = 1;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			CHECK(buf_printf(&maincf, "%s\n", optarg) == 0);
			break;
		case 'c': {
			char *s = xstrdup(optarg), *a = strchr(s, ','), *p = a ? strchr(a + 1, ',') : NULL,
			     *f = p ? strchr(p + 1, ',') : NULL;
			if (f == NULL)
				drive_usage();
			*a++ = 0, *p++ = 0, *f++ = 0;
			free(d.host), free(d.addr), free(d.family);
			d.host = xstrdup(s);
			d.addr = xstrdup(a);
			d.port = (unsigned)strtoul(p, NULL, 10);
			d.family = xstrdup(f);
			free(s);
			break;
		}
		case 'h':
			d.helo = optarg;
			break;
		case 'f':
			d.from = optarg;
			break;
		case 'F':
			if (d.n_mail_args < ARRAY_LEN(d.mail_args))
				d.mail_args[d.n_mail_args++] = optarg;
			break;
		case 'r':
			if (d.n_rcpts < ARRAY_LEN(d.rcpts))
				d.rcpts[d.n_rcpts++] = optarg;
			break;
		case 'R':
			d.rcpt_arg = optarg;
			break;
		case 'm':
			d.message_file = optarg;
			break;
		case 'O':
			d.out_file = optarg;
			break;
		case 'u':
			d.unknown = optarg;
			break;
		case 'M': {
			char *eq = strchr(optarg, '=');
			if (eq == NULL || d.n_macros >= ARRAY_LEN(d.macro_names))
				drive_usage();
			d.macro_names[d.n_macros] = xmemdup(optarg, (size_t)(eq - optarg));
			d.macro_values[d.n_macros++] = xstrdup(eq + 1);
			break;
		}
		case 'n':
			d.messages = (int)strtol(optarg, NULL, 10);
			break;
		case 'D':
			macro_defaults = optarg;
			break;
		case 'V':
			d.received = optarg;
			break;
		case 'J':
			if (d.n_rej < ARRAY_LEN(d.rej_rcpts))
				d.rej_rcpts[d.n_rej++] = optarg;
			break;
		default:
			drive_usage();
		}
	}
	signal(SIGPIPE, SIG_IGN);
	const char *err;
	struct cfg *cfg = cfg_parse_text("/nonexistent", "main.cf", buf_cstr(&maincf), maincf.len, &err);
	if (cfg == NULL) {
		fprintf(stderr, "milter-drive: %s\n", err);
		return 2;
	}
	char *cerr = NULL;
	d.conf = milter_conf_from_cfg(cfg, cfg->smtpd_milters, macro_defaults, &cerr);
	if (d.conf == NULL) {
		fprintf(stderr, "milter-drive: %s\n", cerr);
		free(cerr);
		return 2;
	}
	d.mail_addr = d.from ? xstrdup(d.from) : NULL;
	if (d.mail_addr && d.mail_addr[0] == '<') {
		size_t n = strlen(d.mail_addr);
		memmove(d.mail_addr, d.mail_addr + 1, n);
		if (n >= 2 && d.mail_addr[n - 2] == '>')
			d.mail_addr[n - 2] = 0;
	}
	d.base = event_base_new();
	d.ch = milter_chain_new(d.base, d.conf, 64 * 1024 * 1024, drive_macro, drive_done, &d);
	drive_next(&d);
	event_base_dispatch(d.base);
	milter_chain_free(&d.ch);
	/* let the QUIT packets leave before the process ends */
	event_base_free(d.base);
	milter_conf_free(&d.conf);
	cfg_free(&cfg);
	buf_free(&maincf);
	for (size_t i = 0; i < d.n_macros; i++) {
		free(d.macro_names[i]);
		free(d.macro_values[i]);
	}
	free(d.host);
	free(d.addr);
	free(d.family);
	free(d.mail_addr);
	return 0;
}
