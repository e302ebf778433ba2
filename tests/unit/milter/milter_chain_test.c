/*
 * milter_chain_test.c - the chain on one event loop with in-process fake
 * milters on unix sockets: a session waiting on a hung milter never stalls
 * another; freeing a chain with a call pending calls nothing back; a chain
 * without milters answers every stage; a stage call never calls back from
 * inside itself.
 */
#include "tests/unit/unit.h"

#include <event2/event.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mta/milter/milter_chain.h"
#include "lib/common.h"

/* ---- a fake milter served from the test's own loop ---- */

struct fake {
	int lfd;              /* listening socket */
	struct event *accept; /* on lfd */
	bool hang;            /* never answer anything */
	char path[108];       /* socket path */
	struct event *conn[8];
	int nconn;
};

struct fake_conn {
	struct fake *f;
	int fd;
	struct buf in;
};

static void fake_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct fake_conn *c = arg;
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n <= 0)
		return;
	CHECK(buf_append(&c->in, tmp, (size_t)n) == 0);
	for (;;) {
		size_t total;
		const char *err;
		if (milter_proto_frame(c->in.data, c->in.len, 1 << 20, &total, &err) != 1)
			return;
		char cmd = c->in.data[4];
		buf_consume(&c->in, total);
		if (c->f->hang || cmd == 'D' || cmd == 'A' || cmd == 'Q')
			continue;
		struct buf out;
		buf_init(&out, 64);
		if (cmd == 'O')
			CHECK(milter_proto_put_optneg(&out, 6, 0x1FF, 0) == 0);
		else
			CHECK(milter_proto_put(&out, 'c', NULL, 0) == 0);
		CHECK(write(fd, out.data, out.len) == (ssize_t)out.len);
		buf_free(&out);
	}
}

static struct fake_conn *conns[16];
static int n_conns;

static void fake_on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	int s = accept(fd, NULL, NULL);
	if (s < 0)
		return;
	struct fake_conn *c = xcalloc(1, sizeof(*c));
	c->f = f;
	c->fd = s;
	buf_init(&c->in, 1 << 20);
	CHECK(f->nconn < 8 && n_conns < 16);
	conns[n_conns++] = c;
	f->conn[f->nconn] = event_new(event_get_base(f->accept), s, EV_READ | EV_PERSIST, fake_on_read, c);
	event_add(f->conn[f->nconn++], NULL);
}

static void fake_start(struct fake *f, struct event_base *base, const char *name, bool hang)
{
	memset(f, 0, sizeof(*f));
	f->hang = hang;
	(void)snprintf(f->path, sizeof(f->path), "/tmp/milter_chain_test.%d.%s", (int)getpid(), name);
	unlink(f->path);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(f->lfd >= 0);
	CHECK(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	CHECK(listen(f->lfd, 8) == 0);
	f->accept = event_new(base, f->lfd, EV_READ | EV_PERSIST, fake_on_accept, f);
	event_add(f->accept, NULL);
}

static void fake_stop(struct fake *f)
{
	for (int i = 0; i < f->nconn; i++)
		event_free(f->conn[i]);
	event_free(f->accept);
	close(f->lfd);
	unlink(f->path);
}

static void conns_free(void)
{
	for (int i = 0; i < n_conns; i++) {
		close(conns[i]->fd);
		buf_free(&conns[i]->in);
		free(conns[i]);
	}
	n_conns = 0;
}

static struct milter_conf *conf_for(const char *path, const char *timeout)
{
	struct milter_defaults d = { 5000, 5000, 5000, MILTER_ACT_TEMPFAIL, 6, false, false };
	struct milter_conf *c = xcalloc(1, sizeof(*c));
	char *err = NULL;
	char *list = path ? xasprintf("{ unix:%s, connect_timeout=%s, command_timeout=%s }", path,
				      timeout, timeout)
			  : xstrdup("");
	CHECK(milter_conf_parse_list(list, &d, &c->milters, &c->n, &err) == 0);
	free(list);
	for (int i = 0; i < MILTER_MACROS_COUNT; i++)
		c->macros[i] = xstrdup("");
	c->daemon_name = xstrdup("mx");
	c->v = xstrdup("Postern");
	return c;
}

/* ---- sessions ---- */

struct session {
	struct milter_chain *ch;
	struct event_base *base;
	const char *name;
	int step;                        /* next stage to run */
	int in_call;                     /* > 0 while a chain call is on the stack */
	char log[256];                   /* "stage:verdict " ... */
	int *order;                      /* shared: completion counter */
	int finished_at;                 /* order value when the session ended */
};

static void session_next(struct session *s);

static void session_done(struct milter_chain *ch, const struct milter_verdict *v, void *ctx)
{
	struct session *s = ctx;
	assert_int_equal(s->in_call, 0); /* never called back from inside a call */
	size_t n = strlen(s->log);
	(void)snprintf(s->log + n, sizeof(s->log) - n, "%s:%s ", milter_stage_name(v->stage),
		       milter_verdict_name(v->type));
	if (v->type == MILTER_VERDICT_TEMPFAIL || v->type == MILTER_VERDICT_REJECT) {
		s->finished_at = ++*s->order;
		return;
	}
	session_next(s);
}

static void session_next(struct session *s)
{
	s->in_call++;
	switch (s->step++) {
	case 0:
		milter_chain_connect(s->ch, "client", "192.0.2.1", 1234, '4');
		break;
	case 1:
		milter_chain_helo(s->ch, "client");
		break;
	case 2:
		milter_chain_mail(s->ch, "<a@b>", NULL, 0);
		break;
	case 3:
		milter_chain_rcpt(s->ch, "<c@d>", NULL, 0);
		break;
	case 4:
		milter_chain_data(s->ch);
		break;
	case 5:
		CHECK(milter_chain_message(s->ch, "Subject: x\r\n\r\nbody\r\n", 20) == 0);
		milter_chain_eom(s->ch);
		break;
	default:
		s->finished_at = ++*s->order;
		break;
	}
	s->in_call--;
}

static void test_hung_milter_does_not_stall_another(void **state)
{
	struct event_base *base = event_base_new();
	struct fake hung, good;
	int order = 0;
	fake_start(&hung, base, "hung", true);
	fake_start(&good, base, "good", false);
	struct milter_conf *ca = conf_for(hung.path, "1s"), *cb = conf_for(good.path, "1s");
	struct session a = { .base = base, .name = "a", .order = &order };
	struct session b = { .base = base, .name = "b", .order = &order };
	a.ch = milter_chain_new(base, ca, 1 << 20, NULL, session_done, &a);
	b.ch = milter_chain_new(base, cb, 1 << 20, NULL, session_done, &b);
	session_next(&a);
	session_next(&b);
	while (a.finished_at == 0 || b.finished_at == 0)
		event_base_loop(base, EVLOOP_ONCE);
	/* b ran its whole session while a waited for its milter's timeout */
	assert_int_equal(b.finished_at, 1);
	assert_int_equal(a.finished_at, 2);
	assert_string_equal(b.log, "CONNECT:continue HELO:continue MAIL:continue RCPT:continue "
				   "DATA:continue END-OF-MESSAGE:continue ");
	assert_string_equal(a.log, "CONNECT:tempfail ");
	milter_chain_free(&a.ch);
	milter_chain_free(&b.ch);
	assert_null(a.ch);
	fake_stop(&hung);
	fake_stop(&good);
	conns_free();
	milter_conf_free(&ca);
	milter_conf_free(&cb);
	event_base_free(base);
}

static void never_called(struct milter_chain *ch, const struct milter_verdict *v, void *ctx)
{
	fail_msg("callback after free");
}

static void test_free_with_call_pending(void **state)
{
	struct event_base *base = event_base_new();
	struct fake hung;
	fake_start(&hung, base, "hung2", true);
	struct milter_conf *c = conf_for(hung.path, "200ms");
	struct milter_chain *ch = milter_chain_new(base, c, 1 << 20, NULL, never_called, NULL);
	milter_chain_connect(ch, "client", "192.0.2.1", 1, '4');
	/* let it connect and send the option negotiation, then free mid-wait */
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	milter_chain_free(&ch);
	struct timeval tv = { 0, 400000 };
	event_base_loopexit(base, &tv);
	event_base_dispatch(base); /* the timeout would have fired by now */
	fake_stop(&hung);
	conns_free();
	milter_conf_free(&c);
	event_base_free(base);
}

static void test_no_milters(void **state)
{
	struct event_base *base = event_base_new();
	struct milter_conf *c = conf_for(NULL, NULL);
	int order = 0;
	struct session s = { .base = base, .name = "s", .order = &order };
	s.ch = milter_chain_new(base, c, 1 << 20, NULL, session_done, &s);
	session_next(&s);
	while (s.finished_at == 0)
		event_base_loop(base, EVLOOP_ONCE);
	assert_string_equal(s.log, "CONNECT:continue HELO:continue MAIL:continue RCPT:continue "
				   "DATA:continue END-OF-MESSAGE:continue ");
	milter_chain_free(&s.ch);
	milter_conf_free(&c);
	event_base_free(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hung_milter_does_not_stall_another),
		cmocka_unit_test(test_free_with_call_pending),
		cmocka_unit_test(test_no_milters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
