/*
 * milter_script.c - a scriptable test milter on libmilter: returns any reply
 * at any stage and performs any modification, as told on its command line,
 * and records what it saw.
 *
 * Purpose: the real-libmilter peer of tests/interop/test_milter_replies.py.
 * Usage: milter-script -p inet:PORT@127.0.0.1 [-l LOGFILE] [options]
 *   --at STAGE=REPLY    STAGE: connect helo mail rcpt data unknown header eoh
 *                       body eom; REPLY: continue accept reject tempfail
 *                       discard skip replycode (uses --reply / --reply-ml)
 *   --match-rcpt ADDR   the rcpt reply applies only to this recipient
 *   --reply "550 5.7.1 text"      text for replycode (code, xcode, message)
 *   --reply-ml LINE     add a line of a multi-line replycode (repeatable)
 *   --mod KIND:ARGS     at END-OF-MESSAGE, in order (repeatable):
 *       addheader:NAME:VALUE     insheader:IDX:NAME:VALUE
 *       chgheader:IDX:NAME:VALUE (empty VALUE deletes)   addrcpt:ADDR
 *       addrcpt_par:ADDR:ARGS    delrcpt:ADDR   chgfrom:ADDR[:ARGS]
 *       replbody:TEXT ("\n" in TEXT is a line end)   quarantine:REASON
 *       progress
 *   --leadspc           ask for SMFIP_HDR_LEADSPC
 *   --nr-hdr            ask for SMFIP_NR_HDR (no header replies)
 *   --rcpt-rej          ask for SMFIP_RCPT_REJ (also get rejected recipients)
 *   --no STAGE          ask not to get STAGE (connect helo mail rcpt body
 *                       header eoh data unknown)
 *   --symlist N:"names" ask for macro list N (SMFIM_*) via smfi_setsymlist
 *   --want-macro NAME   log NAME's value (smfi_getsymval) at every stage
 * Log lines (one per callback): "connect HOST ADDR", "helo H", "mail A ARGS",
 * "rcpt A", "data", "unknown L", "header NAME:VALUE" (value escaped: \n \r
 * \t as text), "eoh", "body N", "eom BODYHEX...", "abort", "close",
 * "macro STAGE NAME=VALUE".
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <libmilter/mfapi.h>
#include <netinet/in.h>
#include <pthread.h>

#include "lib/common.h"

enum { ST_CONNECT, ST_HELO, ST_MAIL, ST_RCPT, ST_DATA, ST_UNKNOWN, ST_HEADER, ST_EOH, ST_BODY,
       ST_EOM, ST_COUNT };
static const char *const stage_names[ST_COUNT] = { "connect", "helo", "mail", "rcpt", "data",
						   "unknown", "header", "eoh", "body", "eom" };
static const unsigned long no_bits[ST_COUNT] = {
	SMFIP_NOCONNECT, SMFIP_NOHELO, SMFIP_NOMAIL, SMFIP_NORCPT, SMFIP_NODATA,
	SMFIP_NOUNKNOWN, SMFIP_NOHDRS, SMFIP_NOEOH, SMFIP_NOBODY, 0
};

static const char *at[ST_COUNT];
static const char *match_rcpt;
static char reply_code[4] = "550", reply_xcode[16] = "5.7.1";
static const char *reply_text = "rejected by milter-script";
static const char *reply_ml[8];
static int n_reply_ml;
static const char *mods[64];
static int n_mods;
static bool leadspc, nr_hdr, rcpt_rej;
static unsigned long no_mask;
static const char *symlists[7];
static const char *want_macros[16];
static int n_want;
static FILE *log_fp;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* per connection: body bytes seen */
struct priv {
	size_t body_len;
	unsigned char *body;
};

static void logline(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void logline(const char *fmt, ...)
{
	if (log_fp == NULL)
		return;
	va_list ap;
	pthread_mutex_lock(&log_lock);
	va_start(ap, fmt);
	vfprintf(log_fp, fmt, ap);
	va_end(ap);
	fputc('\n', log_fp);
	fflush(log_fp);
	pthread_mutex_unlock(&log_lock);
}

static char *escape(const char *s)
{
	size_t n = strlen(s);
	char *o = xmalloc(n * 2 + 1), *p = o;
	for (; *s; s++) {
		if (*s == '\n')
			*p++ = '\\', *p++ = 'n';
		else if (*s == '\r')
			*p++ = '\\', *p++ = 'r';
		else if (*s == '\t')
			*p++ = '\\', *p++ = 't';
		else
			*p++ = *s;
	}
	*p = 0;
	return o;
}

static void log_macros(SMFICTX *ctx, int st)
{
	for (int i = 0; i < n_want; i++) {
		const char *v = smfi_getsymval(ctx, (char *)want_macros[i]);
		if (v != NULL)
			logline("macro %s %s=%s", stage_names[st], want_macros[i], v);
	}
}

static sfsistat reply_for(SMFICTX *ctx, int st)
{
	const char *r = at[st];
	log_macros(ctx, st);
	if (r == NULL || strcmp(r, "continue") == 0)
		return SMFIS_CONTINUE;
	if (strcmp(r, "accept") == 0)
		return SMFIS_ACCEPT;
	if (strcmp(r, "reject") == 0)
		return SMFIS_REJECT;
	if (strcmp(r, "tempfail") == 0)
		return SMFIS_TEMPFAIL;
	if (strcmp(r, "discard") == 0)
		return SMFIS_DISCARD;
	if (strcmp(r, "skip") == 0)
		return SMFIS_SKIP;
	if (strcmp(r, "replycode") == 0) {
		if (n_reply_ml > 0)
			smfi_setmlreply(ctx, reply_code, reply_xcode, reply_ml[0],
					n_reply_ml > 1 ? reply_ml[1] : NULL,
					n_reply_ml > 2 ? reply_ml[2] : NULL, NULL);
		else
			smfi_setreply(ctx, reply_code, reply_xcode, (char *)reply_text);
		return reply_code[0] == '4' ? SMFIS_TEMPFAIL : SMFIS_REJECT;
	}
	fprintf(stderr, "milter-script: unknown reply %s\n", r);
	return SMFIS_CONTINUE;
}

static sfsistat x_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
			    unsigned long f3, unsigned long *pf0, unsigned long *pf1,
			    unsigned long *pf2, unsigned long *pf3)
{
	*pf0 = f0; /* every action offered */
	*pf1 = no_mask & f1;
	if (f1 & SMFIP_SKIP)
		*pf1 |= SMFIP_SKIP;
	if (leadspc && (f1 & SMFIP_HDR_LEADSPC))
		*pf1 |= SMFIP_HDR_LEADSPC;
	if (nr_hdr && (f1 & SMFIP_NR_HDR))
		*pf1 |= SMFIP_NR_HDR;
	if (rcpt_rej && (f1 & SMFIP_RCPT_REJ))
		*pf1 |= SMFIP_RCPT_REJ;
	*pf2 = 0;
	*pf3 = 0;
	for (int i = 0; i < 7; i++)
		if (symlists[i] != NULL)
			smfi_setsymlist(ctx, i, (char *)symlists[i]);
	logline("negotiate version-offered actions=%#lx protocol=%#lx", f0, f1);
	return SMFIS_CONTINUE;
}

static sfsistat x_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
	char addr[INET6_ADDRSTRLEN] = "-";
	struct priv *p = xcalloc(1, sizeof(*p));
	smfi_setpriv(ctx, p);
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, addr, sizeof(addr));
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof(addr));
	logline("connect %s %s", host, addr);
	return reply_for(ctx, ST_CONNECT);
}

static sfsistat x_helo(SMFICTX *ctx, char *helo)
{
	logline("helo %s", helo);
	return reply_for(ctx, ST_HELO);
}

static sfsistat x_envfrom(SMFICTX *ctx, char **argv)
{
	struct priv *p = smfi_getpriv(ctx);
	char args[1024] = "";
	size_t n = 0;
	for (int i = 1; argv[i] && n < sizeof(args) - 2; i++)
		n += (size_t)snprintf(args + n, sizeof(args) - n, " %s", argv[i]);
	if (p) {
		free(p->body);
		p->body = NULL;
		p->body_len = 0;
	}
	logline("mail %s%s", argv[0], args);
	return reply_for(ctx, ST_MAIL);
}

static sfsistat x_envrcpt(SMFICTX *ctx, char **argv)
{
	logline("rcpt %s", argv[0]);
	if (match_rcpt && strcasecmp(match_rcpt, argv[0]) != 0) {
		log_macros(ctx, ST_RCPT);
		return SMFIS_CONTINUE;
	}
	return reply_for(ctx, ST_RCPT);
}

static sfsistat x_data(SMFICTX *ctx)
{
	logline("data");
	return reply_for(ctx, ST_DATA);
}

static sfsistat x_unknown(SMFICTX *ctx, const char *cmd)
{
	logline("unknown %s", cmd);
	return reply_for(ctx, ST_UNKNOWN);
}

static sfsistat x_header(SMFICTX *ctx, char *name, char *value)
{
	if (log_fp != NULL) {
		char *e = escape(value);
		logline("header %s:%s", name, e);
		free(e);
	}
	return reply_for(ctx, ST_HEADER);
}

static sfsistat x_eoh(SMFICTX *ctx)
{
	logline("eoh");
	return reply_for(ctx, ST_EOH);
}

static sfsistat x_body(SMFICTX *ctx, unsigned char *b, size_t len)
{
	struct priv *p = smfi_getpriv(ctx);
	logline("body %zu", len);
	if (p && log_fp != NULL) { /* kept for the eom line only */
		p->body = xrealloc(p->body, p->body_len + len + 1);
		memcpy(p->body + p->body_len, b, len);
		p->body_len += len;
	}
	return reply_for(ctx, ST_BODY);
}

/* "a:b:c" -> fields; returns count (at most max); fields point into s. */
static int split(char *s, char **f, int max)
{
	int n = 0;
	f[n++] = s;
	while (n < max && (s = strchr(s, ':')) != NULL) {
		*s++ = 0;
		f[n++] = s;
	}
	return n;
}

static char *unescape_nl(const char *s)
{
	char *o = xstrdup(s), *p = o;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] == 'n') {
			*p++ = '\n';
			s++;
		} else if (s[0] == '\\' && s[1] == 'r') {
			*p++ = '\r';
			s++;
		} else if (s[0] == '\\' && s[1] == 't') {
			*p++ = '\t';
			s++;
		} else {
			*p++ = *s;
		}
	}
	*p = 0;
	return o;
}

static sfsistat x_eom(SMFICTX *ctx)
{
	struct priv *p = smfi_getpriv(ctx);
	if (log_fp != NULL) {
		/* hex of the body so tests can compare it exactly (only when
		 * logging: a benchmark's no-op milter must not pay for it) */
		static const char digits[] = "0123456789abcdef";
		size_t bl = p ? p->body_len : 0;
		char *hex = xmalloc(bl * 2 + 1);
		for (size_t i = 0; i < bl; i++) {
			hex[2 * i] = digits[p->body[i] >> 4];
			hex[2 * i + 1] = digits[p->body[i] & 15];
		}
		hex[bl * 2] = 0;
		logline("eom %s", hex);
		free(hex);
	}
	for (int i = 0; i < n_mods; i++) {
		char *copy = xstrdup(mods[i]), *f[5] = { NULL };
		int n = split(copy, f, 5);
		int rc = MI_SUCCESS;
		if (strcmp(f[0], "addheader") == 0 && n >= 3) {
			char *v = unescape_nl(f[2]);
			rc = smfi_addheader(ctx, f[1], v);
			free(v);
		} else if (strcmp(f[0], "insheader") == 0 && n >= 4) {
			char *v = unescape_nl(f[3]);
			rc = smfi_insheader(ctx, (int)strtol(f[1], NULL, 10), f[2], v);
			free(v);
		} else if (strcmp(f[0], "chgheader") == 0 && n >= 4) {
			char *v = unescape_nl(f[3]);
			rc = smfi_chgheader(ctx, f[2], (int)strtol(f[1], NULL, 10), *v ? v : NULL);
			free(v);
		} else if (strcmp(f[0], "addrcpt") == 0 && n >= 2) {
			rc = smfi_addrcpt(ctx, f[1]);
		} else if (strcmp(f[0], "addrcpt_par") == 0 && n >= 3) {
			rc = smfi_addrcpt_par(ctx, f[1], f[2]);
		} else if (strcmp(f[0], "delrcpt") == 0 && n >= 2) {
			rc = smfi_delrcpt(ctx, f[1]);
		} else if (strcmp(f[0], "chgfrom") == 0 && n >= 2) {
			rc = smfi_chgfrom(ctx, f[1], n >= 3 ? f[2] : NULL);
		} else if (strcmp(f[0], "replbody") == 0 && n >= 2) {
			/* the rest of the spec, colons included */
			const char *text = mods[i] + strlen("replbody:");
			char *v = unescape_nl(text);
			rc = smfi_replacebody(ctx, (unsigned char *)v, (int)strlen(v));
			free(v);
		} else if (strcmp(f[0], "quarantine") == 0 && n >= 2) {
			rc = smfi_quarantine(ctx, f[1]);
		} else if (strcmp(f[0], "progress") == 0) {
			rc = smfi_progress(ctx);
		} else {
			fprintf(stderr, "milter-script: bad --mod %s\n", mods[i]);
		}
		if (rc != MI_SUCCESS)
			logline("modfail %s", mods[i]);
		free(copy);
	}
	return reply_for(ctx, ST_EOM);
}

static sfsistat x_abort(SMFICTX *ctx)
{
	logline("abort");
	return SMFIS_CONTINUE;
}

static sfsistat x_close(SMFICTX *ctx)
{
	struct priv *p = smfi_getpriv(ctx);
	logline("close");
	if (p) {
		free(p->body);
		free(p);
		smfi_setpriv(ctx, NULL);
	}
	return SMFIS_CONTINUE;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "at", 1, NULL, 'a' },        { "match-rcpt", 1, NULL, 'M' },
		{ "reply", 1, NULL, 'r' },     { "reply-ml", 1, NULL, 'L' },
		{ "mod", 1, NULL, 'm' },       { "leadspc", 0, NULL, 'S' },
		{ "nr-hdr", 0, NULL, 'H' },    { "no", 1, NULL, 'n' },
		{ "symlist", 1, NULL, 'y' },   { "want-macro", 1, NULL, 'w' },
		{ "rcpt-rej", 0, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL, *logpath = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "p:l:", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			sock = optarg;
			break;
		case 'l':
			logpath = optarg;
			break;
		case 'a': {
			char *eq = strchr(optarg, '=');
			int i;
			if (eq == NULL)
				return 2;
			*eq = 0;
			for (i = 0; i < ST_COUNT; i++)
				if (strcmp(stage_names[i], optarg) == 0)
					break;
			if (i == ST_COUNT)
				return 2;
			at[i] = eq + 1;
			break;
		}
		case 'M':
			match_rcpt = optarg;
			break;
		case 'r': {
			/* "550 5.7.1 text" */
			char *s = xstrdup(optarg), *sp1 = strchr(s, ' '), *sp2;
			if (sp1 == NULL || sp1 - s != 3)
				return 2;
			memcpy(reply_code, s, 3);
			sp2 = strchr(sp1 + 1, ' ');
			if (sp2 && (size_t)(sp2 - sp1 - 1) < sizeof(reply_xcode)) {
				memcpy(reply_xcode, sp1 + 1, (size_t)(sp2 - sp1 - 1));
				reply_xcode[sp2 - sp1 - 1] = 0;
				reply_text = sp2 + 1;
			}
			break;
		}
		case 'L':
			if (n_reply_ml < 3)
				reply_ml[n_reply_ml++] = optarg;
			break;
		case 'm':
			if (n_mods < 64)
				mods[n_mods++] = optarg;
			break;
		case 'S':
			leadspc = true;
			break;
		case 'H':
			nr_hdr = true;
			break;
		case 'J':
			rcpt_rej = true;
			break;
		case 'n':
			for (int i = 0; i < ST_COUNT; i++)
				if (strcmp(stage_names[i], optarg) == 0)
					no_mask |= no_bits[i];
			break;
		case 'y': {
			char *colon = strchr(optarg, ':');
			if (colon == NULL || optarg[0] < '0' || optarg[0] > '6')
				return 2;
			symlists[optarg[0] - '0'] = colon + 1;
			break;
		}
		case 'w':
			if (n_want < 16)
				want_macros[n_want++] = optarg;
			break;
		default:
			return 2;
		}
	}
	if (sock == NULL) {
		fprintf(stderr, "usage: milter-script -p SOCKET [-l LOG] [options]\n");
		return 2;
	}
	if (logpath) {
		log_fp = fopen(logpath, "a");
		if (log_fp == NULL)
			return 2;
	}
	struct smfiDesc desc = {
		.xxfi_name = "milter-script",
		.xxfi_version = SMFI_VERSION,
		.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT |
			      SMFIF_ADDRCPT_PAR | SMFIF_DELRCPT | SMFIF_QUARANTINE | SMFIF_CHGFROM |
			      SMFIF_SETSYMLIST,
		.xxfi_connect = x_connect,
		.xxfi_helo = x_helo,
		.xxfi_envfrom = x_envfrom,
		.xxfi_envrcpt = x_envrcpt,
		.xxfi_header = x_header,
		.xxfi_eoh = x_eoh,
		.xxfi_body = x_body,
		.xxfi_eom = x_eom,
		.xxfi_abort = x_abort,
		.xxfi_close = x_close,
		.xxfi_unknown = x_unknown,
		.xxfi_data = x_data,
		.xxfi_negotiate = x_negotiate,
	};
	if (smfi_setconn((char *)sock) == MI_FAILURE || smfi_register(desc) == MI_FAILURE ||
	    smfi_opensocket(1) == MI_FAILURE) {
		fprintf(stderr, "milter-script: cannot set up %s\n", sock);
		return 1;
	}
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
