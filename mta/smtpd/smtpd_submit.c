/*
 * smtpd_submit.c - local submission from sendmail(1) (see smtpd_submit.h).
 *
 * Purpose: the "submit" smtpd service: per connection on public/submit,
 * read SUBMIT, RCPT x n and DATA (a regular file's descriptor), check them,
 * open a queue file, run non_smtpd_milters, write the content with our
 * Received header and the headers cleanup adds, commit, and answer one
 * RESULT with a sysexits code.
 * Owns: the submit listener, the submissions in progress, the queue
 * channel of this process.
 * Never: reads anything but a regular file handed over (a pipe, FIFO,
 * socket or device could block the loop); believes a uid the client
 * claims (SO_PEERCRED names it); answers 0 before IPC_Q_COMMITTED; keeps
 * a submission pointer across a queue round trip (reqid = submission id).
 * Limits: message_size_limit, authorized_submit_users, recipients
 * (IPC_SUBMIT_RCPT_MAX and smtpd_recipient_limit), smtpd_timeout per
 * connection, hopcount_limit, non_smtpd_milters' verdicts.
 * Tests: tests/integration/test_submit.py.
 */
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "mta/ipc/ipc_proto.h"
#include "mta/milter/milter_chain.h"
#include "mta/milter/milter_log.h"
#include "mta/smtpd/smtpd_milter.h"
#include "mta/smtpd/smtpd_queue.h"
#include "mta/smtpd/smtpd_submit.h"
#include "mta/smtpd/smtpd_submit_text.h"
#include "lib/addr.h"
#include "lib/log.h"
#include "lib/table.h"
#include "lib/common.h"

#define SMTPD_SUBMIT_HEADROOM 8192 /* content bytes beyond the input: our headers */
#define SMTPD_SUBMIT_LINGER 5      /* seconds a refused client may keep sending */

enum smtpd_submit_state {
	SMTPD_SUBMIT_ST_SUBMIT,      /* waiting for IPC_S_SUBMIT */
	SMTPD_SUBMIT_ST_RCPT,        /* IPC_S_RCPT or IPC_S_DATA */
	SMTPD_SUBMIT_ST_WAIT_OPEN,   /* IPC_Q_OPEN sent */
	SMTPD_SUBMIT_ST_MILTER,      /* the non_smtpd_milters chain works */
	SMTPD_SUBMIT_ST_WAIT_COMMIT, /* IPC_Q_COMMIT sent */
	SMTPD_SUBMIT_ST_DONE,        /* RESULT sent; freed once the queue is done with us */
};

struct smtpd_submit {
	uint32_t id;               /* queue reqid */
	struct smtpd_submit *next;       /* list of live submissions */
	struct smtpd_server *srv;  /* the process */
	struct ipc_chan *client;   /* sendmail's connection; NULL once gone */
	int client_fd;             /* its socket (owned by client), for shutdown */
	uint32_t client_reqid;     /* echoed in RESULT */
	enum smtpd_submit_state state;   /* see enum */
	struct event *timer;       /* smtpd_timeout for the whole submission */
	uid_t uid;                 /* SO_PEERCRED */
	pid_t pid;                 /* SO_PEERCRED */
	char login[64];            /* login name of uid, or "#uid" */
	char *sender;              /* qualified sender, "" null (owned) */
	unsigned flags;            /* IPC_QF_* */
	char *envid;               /* DSN ENVID or "" (owned) */
	char *fullname;            /* -F or "" (owned) */
	struct smtpd_rcpt *rcpts; /* recipients */
	size_t n_rcpts, cap_rcpts; /* count, capacity */
	struct buf input;          /* the file's bytes */
	struct buf content;        /* queue content: Received + converted input */
	struct smtpd_submit_info info; /* what the conversion found */
	char qid[32];              /* once IPC_Q_OPENED */
	int content_fd;            /* queue content file, -1 none */
	int64_t arrival_us;        /* when DATA arrived */
	struct milter_chain *milters; /* non_smtpd_milters, NULL without */
	char *hold_reason;         /* milter quarantine, or NULL */
	size_t milter_rcpt;        /* recipients given to the chain so far */
	bool committed;            /* IPC_Q_COMMITTED arrived: the queue's message */
};

/* the process's state: one submit service per process */
static struct {
	struct smtpd_submit *list;           /* live submissions */
	uint32_t next_id;              /* next reqid */
	struct milter_conf *milters;   /* non_smtpd_milters, NULL when empty */
	char *milter_error;            /* why non_smtpd_milters is unusable */
} smtpd_submit_g;

static void smtpd_submit_free(struct smtpd_submit **sp);
static void smtpd_submit_milter_start(struct smtpd_submit *s);

static struct smtpd_submit *smtpd_submit_find(uint32_t id)
{
	for (struct smtpd_submit *s = smtpd_submit_g.list; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

/* ---- results ---------------------------------------------------------------- */

/* Answer the client once and close its connection. The queue file, if
 * any, is given back unless the message was committed. */
static void smtpd_submit_result(struct smtpd_submit *s, int code, const char *text)
{
	if (s->client != NULL) {
		struct ipc_msg m;
		ipc_msg_init(&m, IPC_S_RESULT, s->client_reqid);
		ipc_put_u32(&m, (uint32_t)code);
		ipc_put_cstr(&m, text);
		ipc_put_cstr(&m, s->committed ? s->qid : "");
		if (ipc_chan_send(s->client, &m) < 0)
			log_warning("uid=%u: cannot send the result to the client", (unsigned)s->uid);
		ipc_msg_free(&m);
	}
	if (!s->committed && s->qid[0] != '\0' && s->srv->queue != NULL) {
		/* refused, failed or discarded: the queue drops the file */
		struct ipc_msg m;
		ipc_msg_init(&m, IPC_Q_ABORT, 0);
		ipc_put_cstr(&m, s->qid);
		ipc_chan_send(s->srv->queue, &m);
		ipc_msg_free(&m);
	}
	s->state = SMTPD_SUBMIT_ST_DONE;
	if (s->client == NULL) {
		smtpd_submit_free(&s);
		return;
	}
	/* Linger: a refused client may still be sending. Closing now, with
	 * its requests unread, would make the kernel reset the connection and
	 * the client could lose our RESULT; so say EOF, drop what still comes,
	 * and free once the client closes (or SMTPD_SUBMIT_LINGER seconds pass). */
	shutdown(s->client_fd, SHUT_WR);
	struct timeval tv = { SMTPD_SUBMIT_LINGER, 0 };
	evtimer_add(s->timer, &tv);
}

static void smtpd_submit_refuse(struct smtpd_submit *s, int code, const char *text)
{
	struct buf b;
	buf_init(&b, 4096);
	buf_escape(&b, text, strlen(text), 512);
	log_info("%s%sreject: uid=%u: %s", s->qid, s->qid[0] ? ": " : "", (unsigned)s->uid, buf_cstr(&b));
	buf_free(&b);
	smtpd_submit_result(s, code, text);
}

static void smtpd_submit_free(struct smtpd_submit **sp)
{
	struct smtpd_submit *s = *sp;
	if (s == NULL)
		return;
	*sp = NULL;
	for (struct smtpd_submit **pp = &smtpd_submit_g.list; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	ipc_chan_free(&s->client);
	if (s->timer)
		event_free(s->timer);
	milter_chain_free(&s->milters);
	if (s->content_fd >= 0)
		close(s->content_fd);
	free(s->sender);
	free(s->envid);
	free(s->fullname);
	for (size_t i = 0; i < s->n_rcpts; i++) {
		free(s->rcpts[i].addr);
		free(s->rcpts[i].orcpt);
	}
	free(s->rcpts);
	free(s->hold_reason);
	buf_free(&s->input);
	buf_free(&s->content);
	struct smtpd_server *srv = s->srv;
	free(s);
	srv->n_sessions--;
	smtpd_server_maybe_exit(srv);
}

/* ---- checks ----------------------------------------------------------------- */

/*
 * authorized_submit_users: a list of login names, "!name" and type:table
 * (a hit allows; "!type:table" a hit denies); the first match decides,
 * no match denies (Postfix's namadr list). Returns 1 allowed, 0 denied,
 * -1 when a table failed (temporary).
 */
static int smtpd_submit_authorized(const char *list, const char *login)
{
	char *copy = xstrdup(list);
	int result = 0;
	char *p = copy;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		char *w = p;
		int depth = 0;
		while (*p && (depth > 0 || (*p != ' ' && *p != '\t' && *p != ','))) {
			if (*p == '{')
				depth++;
			else if (*p == '}' && depth > 0)
				depth--;
			p++;
		}
		if (*p)
			*p++ = '\0';
		bool neg = w[0] == '!';
		if (neg)
			w++;
		int hit;
		if (strchr(w, ':') != NULL) {
			const char *err = NULL;
			struct table *t = table_open(w, &err);
			char *v = NULL;
			hit = t ? table_lookup(t, login, &v, &err) : -1;
			if (hit < 0)
				log_warning("authorized_submit_users: %s: %s", w, err ? err : "lookup error");
			free(v);
			table_free(&t);
		} else {
			hit = strcasecmp(w, login) == 0;
		}
		if (hit != 0) {
			result = hit < 0 ? -1 : !neg;
			break;
		}
	}
	free(copy);
	return result;
}

/* Text the queue stores as it is (DSN envid, ORCPT): no control bytes,
 * which the queue would take for a malformed request and close our channel. */
static bool smtpd_submit_printable(const char *t, size_t max)
{
	size_t n = strlen(t);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			return false;
	return n <= max;
}

/* Parse and qualify an address from the client. Returns an owned
 * "local@domain" ("" for the null sender when allow_null), or NULL with
 * *error_r. */
static char *smtpd_submit_address(struct smtpd_submit *s, const char *text, bool allow_null,
				  const char **error_r)
{
	const struct cfg *cfg = s->srv->conf->cfg;
	struct str in = str_of(text);
	while (in.len > 0 && (in.p[0] == ' ' || in.p[0] == '\t')) {
		in.p++;
		in.len--;
	}
	while (in.len > 0 && (in.p[in.len - 1] == ' ' || in.p[in.len - 1] == '\t'))
		in.len--;
	if (in.len == 0 || str_eq(in, STR_LIT("<>"))) {
		if (allow_null)
			return xstrdup("");
		*error_r = "empty address";
		return NULL;
	}
	struct addr a;
	if (addr_parse(in, ADDR_O_SMTPUTF8, &a, error_r) < 0)
		return NULL;
	if (a.kind == ADDR_NULL) {
		if (allow_null)
			return xstrdup("");
		*error_r = "empty address";
		return NULL;
	}
	if (a.flags & ADDR_F_UTF8)
		s->flags |= IPC_QF_SMTPUTF8;
	if (a.kind == ADDR_MAILBOX)
		return xstrdup(a.text);
	/* "user" or "Postmaster": qualified with $myorigin (Postfix
	 * append_at_myorigin) */
	return xasprintf("%s@%s", a.text, cfg->myorigin);
}

/* ---- client messages ---------------------------------------------------------- */

static void smtpd_submit_on_submit(struct smtpd_submit *s, struct ipc_msg *m)
{
	char *sender = NULL, *envid = NULL, *fullname = NULL;
	uint32_t flags = 0;
	if (!ipc_get_cstr(m, &sender) || !ipc_get_u32(m, &flags) || !ipc_get_cstr(m, &envid) ||
	    !ipc_get_cstr(m, &fullname) || !ipc_get_end(m)) {
		free(sender);
		free(envid);
		free(fullname);
		smtpd_submit_refuse(s, EX_PROTOCOL, "malformed SUBMIT request");
		return;
	}
	const char *err = NULL;
	s->flags = flags & (IPC_QF_8BITMIME | IPC_QF_RET_FULL | IPC_QF_RET_HDRS);
	s->envid = envid;
	s->fullname = fullname;
	s->sender = smtpd_submit_address(s, sender, true, &err);
	free(sender);
	if (s->sender == NULL) {
		char *t = xasprintf("bad sender address: %s", err);
		smtpd_submit_refuse(s, EX_USAGE, t);
		free(t);
		return;
	}
	if (!smtpd_submit_printable(s->envid, 100)) {
		smtpd_submit_refuse(s, EX_USAGE, "bad DSN envelope ID (too long or control characters)");
		return;
	}
	s->state = SMTPD_SUBMIT_ST_RCPT;
}

static size_t smtpd_submit_rcpt_limit(const struct smtpd_submit *s)
{
	long long l = s->srv->conf->cfg->smtpd_recipient_limit;
	return l > 0 && l < IPC_SUBMIT_RCPT_MAX ? (size_t)l : IPC_SUBMIT_RCPT_MAX;
}

static void smtpd_submit_on_rcpt(struct smtpd_submit *s, struct ipc_msg *m)
{
	char *rcpt = NULL, *orcpt = NULL;
	uint32_t notify = 0;
	if (!ipc_get_cstr(m, &rcpt) || !ipc_get_cstr(m, &orcpt) || !ipc_get_u32(m, &notify) ||
	    !ipc_get_end(m) || (notify & ~(uint32_t)(IPC_QN_SUCCESS | IPC_QN_FAILURE | IPC_QN_DELAY |
						   IPC_QN_NEVER)) ||
	    !smtpd_submit_printable(orcpt, ADDR_PATH_MAX + 32)) {
		free(rcpt);
		free(orcpt);
		smtpd_submit_refuse(s, EX_PROTOCOL, "malformed RCPT request");
		return;
	}
	if (s->n_rcpts >= smtpd_submit_rcpt_limit(s)) {
		free(rcpt);
		free(orcpt);
		smtpd_submit_refuse(s, EX_USAGE, "too many recipients");
		return;
	}
	const char *err = NULL;
	char *addr = smtpd_submit_address(s, rcpt, false, &err);
	for (size_t i = 0; addr != NULL && i < s->n_rcpts; i++)
		if (strcasecmp(s->rcpts[i].addr, addr) == 0) {
			/* a duplicate (-t with To: and Bcc:, ...) is delivered once,
			 * as Postfix's cleanup does */
			free(addr);
			free(rcpt);
			free(orcpt);
			return;
		}
	if (addr == NULL) {
		struct buf b;
		buf_init(&b, 1024);
		buf_escape(&b, rcpt, strlen(rcpt), 300);
		char *t = xasprintf("bad recipient address %s: %s", buf_cstr(&b), err);
		buf_free(&b);
		free(rcpt);
		free(orcpt);
		smtpd_submit_refuse(s, EX_USAGE, t);
		free(t);
		return;
	}
	free(rcpt);
	if (s->n_rcpts == s->cap_rcpts) {
		s->cap_rcpts = s->cap_rcpts ? s->cap_rcpts * 2 : 4;
		s->rcpts = xreallocarray(s->rcpts, s->cap_rcpts, sizeof(*s->rcpts));
	}
	s->rcpts[s->n_rcpts++] = (struct smtpd_rcpt){ addr, orcpt, notify };
}

/* Read the whole file (regular files only: a read never waits for a peer).
 * 0, or -1 with the exit code and text set. */
static int smtpd_submit_read_file(struct smtpd_submit *s, int fd, int *code_r, const char **text_r)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*code_r = EX_PROTOCOL;
		*text_r = "the message is not a regular file";
		return -1;
	}
	long long limit = s->srv->conf->cfg->message_size_limit;
	size_t max = limit > 0 ? (size_t)limit : SIZE_MAX / 4;
	if (limit > 0 && st.st_size > limit) {
		*code_r = EX_DATAERR;
		*text_r = "message file too big";
		return -1;
	}
	/* one byte past the limit tells a file that grew since fstat */
	buf_init(&s->input, max == SIZE_MAX / 4 ? max : max + 1);
	char chunk[65536];
	off_t off = 0;
	for (;;) {
		ssize_t r = pread(fd, chunk, sizeof(chunk), off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*code_r = EX_IOERR;
			*text_r = "cannot read the message file";
			return -1;
		}
		if (r == 0)
			break;
		if (buf_append(&s->input, chunk, (size_t)r) < 0 || (limit > 0 && s->input.len > max)) {
			*code_r = EX_DATAERR;
			*text_r = "message file too big";
			return -1;
		}
		off += r;
	}
	return 0;
}

static void smtpd_submit_on_data(struct smtpd_submit *s, struct ipc_msg *m)
{
	int fd = ipc_msg_take_fd(m);
	if (!ipc_get_end(m) || fd < 0) {
		if (fd >= 0)
			close(fd);
		smtpd_submit_refuse(s, EX_PROTOCOL,
				    fd < 0 ? "DATA without a message file" : "malformed DATA request");
		return;
	}
	if (s->n_rcpts == 0) {
		close(fd);
		smtpd_submit_refuse(s, EX_USAGE, "no recipients specified");
		return;
	}
	int code = 0;
	const char *text = NULL;
	int r = smtpd_submit_read_file(s, fd, &code, &text);
	close(fd);
	if (r < 0) {
		smtpd_submit_refuse(s, code, text);
		return;
	}
	struct timeval now;
	gettimeofday(&now, NULL);
	s->arrival_us = (int64_t)now.tv_sec * 1000000 + now.tv_usec;
	if (s->srv->queue == NULL) {
		smtpd_submit_refuse(s, EX_TEMPFAIL, "mail system is down (no queue)");
		return;
	}
	struct ipc_msg q;
	ipc_msg_init(&q, IPC_Q_OPEN, s->id);
	r = ipc_chan_send(s->srv->queue, &q);
	ipc_msg_free(&q);
	if (r < 0) {
		smtpd_submit_refuse(s, EX_TEMPFAIL, "queue file write error");
		return;
	}
	s->state = SMTPD_SUBMIT_ST_WAIT_OPEN;
}

static void smtpd_submit_on_client_msg(struct ipc_chan *chan, struct ipc_msg *m, void *ctx)
{
	struct smtpd_submit *s = ctx;
	if (s->state == SMTPD_SUBMIT_ST_DONE)
		return; /* lingering: dropped (a descriptor is closed with m) */
	s->client_reqid = m->reqid;
	if (m->type == IPC_S_SUBMIT && s->state == SMTPD_SUBMIT_ST_SUBMIT)
		smtpd_submit_on_submit(s, m);
	else if (m->type == IPC_S_RCPT && s->state == SMTPD_SUBMIT_ST_RCPT)
		smtpd_submit_on_rcpt(s, m);
	else if (m->type == IPC_S_DATA && s->state == SMTPD_SUBMIT_ST_RCPT)
		smtpd_submit_on_data(s, m);
	else if (s->state == SMTPD_SUBMIT_ST_SUBMIT || s->state == SMTPD_SUBMIT_ST_RCPT)
		smtpd_submit_refuse(s, EX_PROTOCOL, "unexpected request (out of order)");
	else {
		/* anything after DATA: the client has nothing more to say */
		log_warning("uid=%u: request type %u after DATA; closing", (unsigned)s->uid,
			    (unsigned)m->type);
		ipc_chan_free(&s->client);
	}
}

static void smtpd_submit_on_client_close(struct ipc_chan *chan, const char *reason, void *ctx)
{
	struct smtpd_submit *s = ctx;
	ipc_chan_free(&s->client);
	if (s->state == SMTPD_SUBMIT_ST_DONE) {
		smtpd_submit_free(&s);
		return;
	}
	if (s->state == SMTPD_SUBMIT_ST_SUBMIT || s->state == SMTPD_SUBMIT_ST_RCPT) {
		if (strcmp(reason, "peer closed") != 0)
			log_warning("uid=%u: %s", (unsigned)s->uid, reason);
		smtpd_submit_free(&s);
	}
	/* otherwise the queue's reply (or the timer) ends it; a message
	 * already on its way is still queued, as when the client waited */
}

static void smtpd_submit_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_submit *s = arg;
	if (s->state == SMTPD_SUBMIT_ST_DONE) { /* the linger time is over */
		smtpd_submit_free(&s);
		return;
	}
	log_warning("%s%suid=%u: timeout in state %d", s->qid, s->qid[0] ? ": " : "", (unsigned)s->uid,
		    (int)s->state);
	if (s->state == SMTPD_SUBMIT_ST_WAIT_COMMIT) {
		/* the queue decides now; keep waiting for it but tell nobody
		 * success we cannot prove */
		ipc_chan_free(&s->client);
		return;
	}
	smtpd_submit_result(s, EX_TEMPFAIL, "timeout");
}

/* ---- queue ---------------------------------------------------------------------- */

static void smtpd_submit_date(char *out, size_t n, time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
}

/* Received header, then the converted input. 0, or -1 (too big). */
static int smtpd_submit_build(struct smtpd_submit *s)
{
	const struct cfg *cfg = s->srv->conf->cfg;
	time_t now = (time_t)(s->arrival_us / 1000000);
	char date[64], stamp[32], msgid[512];
	smtpd_submit_date(date, sizeof(date), now);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
	snprintf(msgid, sizeof(msgid), "<%s.%s@%s>", stamp, s->qid, cfg->myhostname);
	buf_init(&s->content, s->input.max + SMTPD_SUBMIT_HEADROOM);
	buf_printf(&s->content, "Received: by %s (%s, from userid %u)\r\n\tid %s; %s\r\n",
		   cfg->myhostname, cfg->mail_name, (unsigned)s->uid, s->qid, date);
	struct smtpd_submit_fill fill = { s->sender, s->fullname, date, msgid };
	return smtpd_submit_text_convert(s->input.data ? s->input.data : "", s->input.len, &fill,
					 &s->content, &s->info);
}

static void smtpd_submit_commit(struct smtpd_submit *s)
{
	/* write the content: a local file; the queue checks the size */
	size_t off = 0;
	while (off < s->content.len) {
		ssize_t w = write(s->content_fd, s->content.data + off, s->content.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warning("%s: write queue file: %s", s->qid, w < 0 ? strerror(errno) : "short write");
			smtpd_submit_result(s, EX_TEMPFAIL, "queue file write error");
			return;
		}
		off += (size_t)w;
	}
	close(s->content_fd);
	s->content_fd = -1;
	struct buf mid;
	buf_init(&mid, 4096);
	buf_escape(&mid, s->info.msgid, strlen(s->info.msgid), SMTPD_SUBMIT_MSGID_MAX);
	if (mid.len > 0)
		log_info("%s: message-id=%s", s->qid, buf_cstr(&mid));
	struct ipc_chan *q = s->srv->queue;
	struct ipc_msg m;
	int r = 0;
	ipc_msg_init(&m, IPC_Q_SENDER, s->id);
	ipc_put_cstr(&m, s->qid);
	ipc_put_cstr(&m, s->sender);
	ipc_put_u32(&m, s->flags);
	ipc_put_cstr(&m, s->envid);
	r |= q ? ipc_chan_send(q, &m) : -1;
	ipc_msg_free(&m);
	for (size_t i = 0; i < s->n_rcpts && r == 0; i++) {
		ipc_msg_init(&m, IPC_Q_RCPT, s->id);
		ipc_put_cstr(&m, s->qid);
		ipc_put_cstr(&m, s->rcpts[i].addr);
		ipc_put_cstr(&m, s->rcpts[i].orcpt);
		ipc_put_u32(&m, s->rcpts[i].notify);
		r |= ipc_chan_send(q, &m);
		ipc_msg_free(&m);
	}
	if (r == 0) {
		ipc_msg_init(&m, IPC_Q_COMMIT, s->id);
		ipc_put_cstr(&m, s->qid);
		ipc_put_u64(&m, (uint64_t)s->content.len);
		ipc_put_i64(&m, s->arrival_us);
		ipc_put_cstr(&m, "localhost");
		ipc_put_cstr(&m, "127.0.0.1");
		ipc_put_u32(&m, 0);
		ipc_put_cstr(&m, "");
		ipc_put_cstr(&m, "local");
		ipc_put_cstr(&m, buf_cstr(&mid));
		ipc_put_u32(&m, s->hold_reason ? IPC_QC_HOLD : 0);
		ipc_put_cstr(&m, s->hold_reason ? s->hold_reason : "");
		r |= ipc_chan_send(q, &m);
		ipc_msg_free(&m);
	}
	buf_free(&mid);
	if (r != 0) {
		smtpd_submit_result(s, EX_TEMPFAIL, "queue file write error");
		return;
	}
	s->state = SMTPD_SUBMIT_ST_WAIT_COMMIT;
}

/* IPC_Q_OPENED: build the content; milters; commit */
static void smtpd_submit_on_opened(struct smtpd_submit *s, const char *qid, int fd)
{
	snprintf(s->qid, sizeof(s->qid), "%s", qid);
	s->content_fd = fd;
	log_info("%s: uid=%u from=<%s>", s->qid, (unsigned)s->uid, s->sender);
	if (smtpd_submit_build(s) < 0) {
		smtpd_submit_refuse(s, EX_DATAERR, "message file too big");
		return;
	}
	if (s->info.saw_nul) {
		smtpd_submit_refuse(s, EX_DATAERR, "message content contains NUL characters");
		return;
	}
	long long hops = s->srv->conf->cfg->hopcount_limit;
	if (hops > 0 && (long long)s->info.received + 1 > hops) {
		smtpd_submit_refuse(s, EX_DATAERR, "too many hops (Received: headers)");
		return;
	}
	if (smtpd_submit_g.milters != NULL) {
		smtpd_submit_milter_start(s);
		return;
	}
	smtpd_submit_commit(s);
}

/* The queue channel is gone: every submission waiting for it answers 75,
 * and the process leaves once idle (master restarts the pair). */
static void smtpd_submit_queue_lost(struct smtpd_server *srv)
{
	ipc_chan_free(&srv->queue);
	for (struct smtpd_submit *t = smtpd_submit_g.list, *next; t; t = next) {
		next = t->next;
		if (t->state >= SMTPD_SUBMIT_ST_WAIT_OPEN && t->state != SMTPD_SUBMIT_ST_DONE)
			smtpd_submit_result(t, EX_TEMPFAIL, "queue file write error");
	}
	srv->draining = true;
	smtpd_server_maybe_exit(srv);
}

static void smtpd_submit_on_q_opened(struct smtpd_server *srv, uint32_t reqid, const char *qid,
				     int fd)
{
	struct smtpd_submit *s = smtpd_submit_find(reqid);
	if (s == NULL || s->state != SMTPD_SUBMIT_ST_WAIT_OPEN) {
		close(fd);
		smtpd_queue_abort(srv, qid);
		return;
	}
	smtpd_submit_on_opened(s, qid, fd);
}

static void smtpd_submit_on_q_committed(struct smtpd_server *srv, uint32_t reqid, const char *qid)
{
	struct smtpd_submit *s = smtpd_submit_find(reqid);
	if (s == NULL || s->state != SMTPD_SUBMIT_ST_WAIT_COMMIT || strcmp(s->qid, qid) != 0)
		return;
	s->committed = true;
	smtpd_submit_result(s, EX_OK, "queued");
}

static void smtpd_submit_on_q_error(struct smtpd_server *srv, uint32_t reqid, const char *qid,
				    const char *reply)
{
	struct smtpd_submit *s = smtpd_submit_find(reqid);
	if (s == NULL || (s->state != SMTPD_SUBMIT_ST_WAIT_OPEN && s->state != SMTPD_SUBMIT_ST_WAIT_COMMIT))
		return;
	s->qid[0] = '\0'; /* the queue removed it */
	smtpd_submit_result(s, reply[0] == '5' ? EX_UNAVAILABLE : EX_TEMPFAIL, "queue file write error");
}

static const struct smtpd_queue_ops smtpd_submit_queue_ops = {
	smtpd_submit_on_q_opened,
	smtpd_submit_on_q_committed,
	smtpd_submit_on_q_error,
	smtpd_submit_queue_lost,
};

/* ---- non_smtpd_milters ---------------------------------------------------------- */

static const char *smtpd_submit_milter_macro(const char *name, void *ctx)
{
	struct smtpd_submit *s = smtpd_submit_find((uint32_t)(uintptr_t)ctx);
	if (s == NULL)
		return NULL;
	const struct cfg *cfg = s->srv->conf->cfg;
	if (strcmp(name, "i") == 0)
		return s->qid[0] ? s->qid : NULL;
	if (strcmp(name, "j") == 0)
		return cfg->myhostname;
	if (strcmp(name, "_") == 0)
		return "localhost [127.0.0.1]";
	if (strcmp(name, "client_addr") == 0)
		return "127.0.0.1";
	if (strcmp(name, "client_name") == 0 || strcmp(name, "client_ptr") == 0)
		return "localhost";
	if (strcmp(name, "mail_addr") == 0)
		return s->sender;
	if (strcmp(name, "auth_authen") == 0 || strcmp(name, "auth_type") == 0)
		return NULL;
	return NULL;
}

/* the Postfix-shaped milter line (milter_log.c), as for local mail */
static void smtpd_submit_milter_log(struct smtpd_submit *s, const struct milter_verdict *v)
{
	milter_log_verdict(v, s->qid, "localhost[127.0.0.1]", s->sender,
			   s->n_rcpts ? s->rcpts[0].addr : NULL, NULL, NULL);
}

/* An address a milter gave, checked and qualified like a sendmail one. */
static char *smtpd_submit_milter_addr(const char *given, bool sender, void *ctx)
{
	const char *err = NULL;
	return smtpd_submit_address(ctx, given, sender, &err);
}

static void smtpd_submit_milter_eom_done(struct smtpd_submit *s, const struct milter_verdict *v)
{
	if (v->headers_changed || v->body_changed) {
		struct buf out;
		buf_init(&out, s->content.max);
		if (milter_msg_render(v->msg, &out) < 0) {
			buf_free(&out);
			smtpd_submit_refuse(s, EX_DATAERR, "message file too big after milter edits");
			return;
		}
		buf_free(&s->content);
		s->content = out;
	}
	if (smtpd_milter_apply_envelope(s->qid, v, &s->sender, &s->rcpts, &s->n_rcpts, &s->cap_rcpts,
					smtpd_submit_milter_addr, s) == 0) {
		log_info("%s: milter-discard: END-OF-MESSAGE from localhost[127.0.0.1]: "
			 "milter deleted every recipient",
			 s->qid);
		smtpd_submit_result(s, EX_OK, "discarded by a milter");
		return;
	}
	if (v->quarantine != NULL) {
		/* the queue commits it straight into hold/ (IPC_QC_HOLD) */
		smtpd_submit_milter_log(s, v);
		free(s->hold_reason);
		s->hold_reason = xstrdup(v->quarantine);
		for (char *p = s->hold_reason; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?'; /* the queue stores printable text only */
	}
	milter_chain_free(&s->milters);
	smtpd_submit_commit(s);
}

/* One stage's verdict: the next stage, or the end. Local mail has no SMTP
 * client to answer, so (as Postfix) a refusal at any stage refuses the
 * message: reject 77 (policy), tempfail and shutdown 75, discard 0. */
static void smtpd_submit_milter_on_verdict(struct milter_chain *ch, const struct milter_verdict *v,
					   void *ctx)
{
	struct smtpd_submit *s = smtpd_submit_find((uint32_t)(uintptr_t)ctx);
	if (s == NULL || s->milters != ch)
		return;
	if (v->stage == MILTER_STAGE_RCPT &&
	    (v->type == MILTER_VERDICT_REJECT || v->type == MILTER_VERDICT_TEMPFAIL)) {
		/* local mail has no recipient to refuse alone: as Postfix, a
		 * milter that does so is a configuration problem and the mail
		 * waits (4.3.5): try again later */
		smtpd_submit_milter_log(s, v);
		smtpd_submit_result(s, EX_TEMPFAIL,
			      "451 4.3.5 Server configuration problem: a milter refused a recipient of local mail");
		return;
	}
	switch (v->type) {
	case MILTER_VERDICT_REJECT:
		smtpd_submit_milter_log(s, v);
		smtpd_submit_result(s, EX_NOPERM, v->reply ? v->reply : "rejected by a milter");
		return;
	case MILTER_VERDICT_TEMPFAIL:
	case MILTER_VERDICT_SHUTDOWN:
		smtpd_submit_milter_log(s, v);
		smtpd_submit_result(s, EX_TEMPFAIL, v->reply ? v->reply : "milter temporary failure");
		return;
	case MILTER_VERDICT_DISCARD:
		smtpd_submit_milter_log(s, v);
		smtpd_submit_result(s, EX_OK, "discarded by a milter");
		return;
	default:
		break;
	}
	switch (v->stage) {
	case MILTER_STAGE_CONNECT:
		milter_chain_helo(ch, "localhost");
		return;
	case MILTER_STAGE_HELO:
		milter_chain_mail(ch, s->sender, NULL, 0);
		return;
	case MILTER_STAGE_MAIL:
	case MILTER_STAGE_RCPT:
		if (v->stage == MILTER_STAGE_RCPT)
			s->milter_rcpt++;
		if (s->milter_rcpt < s->n_rcpts) {
			milter_chain_rcpt(ch, s->rcpts[s->milter_rcpt].addr, NULL, 0);
			return;
		}
		milter_chain_data(ch);
		return;
	case MILTER_STAGE_DATA:
		if (milter_chain_message_hide(ch, s->content.data, s->content.len, 1) < 0) {
			smtpd_submit_refuse(s, EX_DATAERR, "message file too big");
			return;
		}
		milter_chain_eom(ch);
		return;
	case MILTER_STAGE_EOM:
		smtpd_submit_milter_eom_done(s, v);
		return;
	default:
		smtpd_submit_result(s, EX_SOFTWARE, "unexpected milter stage");
		return;
	}
}

static void smtpd_submit_milter_start(struct smtpd_submit *s)
{
	s->state = SMTPD_SUBMIT_ST_MILTER;
	long long limit = s->srv->conf->cfg->message_size_limit;
	s->milters = milter_chain_new(s->srv->base, smtpd_submit_g.milters,
				      limit > 0 ? (size_t)limit + SMTPD_SUBMIT_HEADROOM : 0, smtpd_submit_milter_macro,
				      smtpd_submit_milter_on_verdict, (void *)(uintptr_t)s->id);
	milter_chain_connect(s->milters, "localhost", "127.0.0.1", 0, '4');
}

/* ---- accept ---------------------------------------------------------------------- */

static void smtpd_submit_on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			     int salen, void *arg)
{
	struct smtpd_server *srv = arg;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warning("submit: SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	struct smtpd_submit *s = xcalloc(1, sizeof(*s));
	s->id = smtpd_submit_g.next_id++;
	s->srv = srv;
	s->uid = cred.uid;
	s->pid = cred.pid;
	s->content_fd = -1;
	s->state = SMTPD_SUBMIT_ST_SUBMIT;
	buf_init(&s->input, 1);
	buf_init(&s->content, 1);
	/* the passwd lookup reads a local file (nsswitch "files" here) */
	struct passwd *pw = getpwuid(cred.uid);
	if (pw != NULL && strlen(pw->pw_name) < sizeof(s->login))
		snprintf(s->login, sizeof(s->login), "%s", pw->pw_name);
	else
		snprintf(s->login, sizeof(s->login), "#%u", (unsigned)cred.uid);
	s->next = smtpd_submit_g.list;
	smtpd_submit_g.list = s;
	srv->n_sessions++;
	char name[64];
	snprintf(name, sizeof(name), "sendmail[%ld]", (long)cred.pid);
	s->client_fd = fd;
	s->client = ipc_chan_new(srv->base, fd, name, smtpd_submit_on_client_msg,
				 smtpd_submit_on_client_close, s);
	s->timer = evtimer_new(srv->base, smtpd_submit_on_timeout, s);
	struct timeval tv = { (time_t)srv->conf->cfg->smtpd_timeout, 0 };
	evtimer_add(s->timer, &tv);
	int ok = smtpd_submit_authorized(srv->conf->cfg->authorized_submit_users, s->login);
	if (ok <= 0) {
		char *t = ok < 0 ? xstrdup("authorized_submit_users lookup failed; try again later")
				 : xasprintf("User %s(%u) is not allowed to submit mail", s->login,
					     (unsigned)s->uid);
		smtpd_submit_refuse(s, ok < 0 ? EX_TEMPFAIL : EX_NOPERM, t);
		free(t);
		return;
	}
	if (smtpd_submit_g.milter_error != NULL) {
		smtpd_submit_refuse(s, EX_TEMPFAIL, "non_smtpd_milters is misconfigured; try again later");
		return;
	}
	if (srv->draining) {
		smtpd_submit_refuse(s, EX_TEMPFAIL, "mail system is shutting down");
		return;
	}
}

static void smtpd_submit_on_accept_error(struct evconnlistener *l, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();
	log_warning("accept: %s", evutil_socket_error_to_string(e));
}

void smtpd_submit_init(struct smtpd_server *srv, int queue_fd, int listen_fd)
{
	smtpd_submit_g.next_id = 1;
	smtpd_queue_init(srv, queue_fd, &smtpd_submit_queue_ops);
	const struct cfg *cfg = srv->conf->cfg;
	if (cfg->non_smtpd_milters[0] != '\0') {
		char *err = NULL;
		smtpd_submit_g.milters = milter_conf_from_cfg(cfg, cfg->non_smtpd_milters,
							cfg->milter_macro_defaults, &err);
		if (smtpd_submit_g.milters == NULL) {
			smtpd_submit_g.milter_error = err ? err : xstrdup("unusable");
			log_warning("non_smtpd_milters: %s; local submissions are refused (75)",
				    smtpd_submit_g.milter_error);
		} else if (smtpd_submit_g.milters->n == 0) {
			milter_conf_free(&smtpd_submit_g.milters);
		}
	}
	evutil_make_socket_nonblocking(listen_fd);
	evutil_make_socket_closeonexec(listen_fd);
	srv->listeners = xcalloc(1, sizeof(*srv->listeners));
	srv->listener_tls = xcalloc(1, sizeof(*srv->listener_tls));
	srv->n_listeners = 1;
	srv->listeners[0] = evconnlistener_new(srv->base, smtpd_submit_on_accept, srv,
					       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, listen_fd);
	if (srv->listeners[0] == NULL)
		log_fatal("cannot listen on the submit socket (fd %d)", listen_fd);
	evconnlistener_set_error_cb(srv->listeners[0], smtpd_submit_on_accept_error);
}
