/*
 * ipc_chan_test.c - the libevent IPC channel: ordered delivery of many
 * messages (more than a socket buffer holds), descriptor passing, and a
 * garbage packet closing the channel instead of reaching the owner.
 */
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>

#include "mta/ipc/ipc_chan.h"
#include "lib/common.h"

struct rx {
	uint32_t next;       /* next expected reqid */
	int fds;             /* descriptors received */
	int closes;          /* close callbacks */
	const char *reason;  /* last close reason */
	uint32_t want;       /* stop the loop after this many messages */
	struct event_base *base;
};

static void rx_msg(struct ipc_chan *c, struct ipc_msg *m, void *ctx)
{
	struct rx *rx = ctx;
	uint32_t v = 0;
	assert_int_equal(m->reqid, rx->next);
	assert_true(ipc_get_u32(m, &v));
	assert_int_equal(v, rx->next * 3);
	assert_true(ipc_get_end(m));
	int fd = ipc_msg_take_fd(m);
	if (fd >= 0) {
		rx->fds++;
		close(fd);
	}
	if (++rx->next == rx->want)
		event_base_loopbreak(rx->base);
}

static void rx_close(struct ipc_chan *c, const char *reason, void *ctx)
{
	struct rx *rx = ctx;
	rx->closes++;
	rx->reason = reason;
	event_base_loopbreak(rx->base);
}

static void test_many_messages_in_order(void **state)
{
	struct event_base *base = event_base_new();
	int sv[2];
	assert_int_equal(ipc_socketpair(sv), 0);
	struct rx rx = { .want = 5000, .base = base }, tx = { .base = base };
	struct ipc_chan *a = ipc_chan_new(base, sv[0], "a", rx_msg, rx_close, &tx);
	struct ipc_chan *b = ipc_chan_new(base, sv[1], "b", rx_msg, rx_close, &rx);
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (uint32_t i = 0; i < rx.want; i++) {
		struct ipc_msg m;
		ipc_msg_init(&m, 1, i);
		ipc_put_u32(&m, i * 3);
		if (i % 100 == 0)
			m.fd = devnull; /* duplicated by the channel */
		assert_int_equal(ipc_chan_send(a, &m), 0);
		m.fd = -1;
		ipc_msg_free(&m);
	}
	/* the socket buffer cannot hold 5000 packets: some wait in the queue */
	assert_true(ipc_chan_pending(a) > 0);
	event_base_dispatch(base);
	assert_int_equal(rx.next, rx.want);
	assert_int_equal(rx.fds, 50);
	assert_int_equal(ipc_chan_pending(a), 0);
	close(devnull);
	ipc_chan_free(&a);
	assert_null(a);
	/* the peer's close is reported once */
	event_base_dispatch(base);
	assert_int_equal(rx.closes, 1);
	assert_string_equal(rx.reason, "peer closed");
	ipc_chan_free(&b);
	event_base_free(base);
}

static void test_garbage_closes_channel(void **state)
{
	struct event_base *base = event_base_new();
	int sv[2];
	assert_int_equal(ipc_socketpair(sv), 0);
	struct rx rx = { .want = 1, .base = base };
	struct ipc_chan *b = ipc_chan_new(base, sv[1], "b", rx_msg, rx_close, &rx);
	assert_int_equal(send(sv[0], "garbage!", 8, 0), 8);
	event_base_dispatch(base);
	assert_int_equal(rx.next, 0);
	assert_int_equal(rx.closes, 1);
	assert_string_equal(rx.reason, "short packet");
	/* a closed channel refuses to send */
	struct ipc_msg m;
	ipc_msg_init(&m, 1, 0);
	assert_int_equal(ipc_chan_send(b, &m), -1);
	ipc_msg_free(&m);
	ipc_chan_free(&b);
	close(sv[0]);
	event_base_free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_messages_in_order),
		cmocka_unit_test(test_garbage_closes_channel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
