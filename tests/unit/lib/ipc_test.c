/*
 * ipc_test.c - IPC framing: round trips, exact consumption, hostile packets,
 * descriptor passing over a real SEQPACKET socketpair.
 */
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "lib/common.h"

static void test_round_trip(void **state)
{
	struct ipc_msg m, r;
	struct buf wire;
	const char *err = NULL;
	ipc_msg_init(&m, 7, 42);
	ipc_put_u32(&m, 0xdeadbeef);
	ipc_put_cstr(&m, "alice@example.test");
	ipc_put_str(&m, (struct str){ "a\0b", 3 });
	ipc_put_i64(&m, -5);
	buf_init(&wire, IPC_MSG_MAX);
	assert_int_equal(ipc_encode(&m, &wire), 0);
	assert_int_equal(ipc_decode(wire.data, wire.len, &r, &err), 0);
	assert_int_equal(r.type, 7);
	assert_int_equal(r.reqid, 42);
	uint32_t u;
	char *s;
	struct str v;
	int64_t i;
	assert_true(ipc_get_u32(&r, &u));
	assert_int_equal(u, 0xdeadbeef);
	assert_true(ipc_get_cstr(&r, &s));
	assert_string_equal(s, "alice@example.test");
	free(s);
	assert_false(ipc_get_end(&r));
	/* a string with a NUL is refused as a C string */
	size_t save = r.rpos;
	assert_false(ipc_get_cstr(&r, &s));
	r.bad = false;
	r.rpos = save;
	assert_true(ipc_get_str(&r, &v));
	assert_int_equal(v.len, 3);
	assert_true(ipc_get_i64(&r, &i));
	assert_int_equal(i, -5);
	assert_true(ipc_get_end(&r));
	/* reading past the end fails and stays failed */
	assert_false(ipc_get_u32(&r, &u));
	assert_false(ipc_get_end(&r));
	ipc_msg_free(&m);
	ipc_msg_free(&r);
	buf_free(&wire);
}

static void test_hostile_packets(void **state)
{
	struct ipc_msg r;
	const char *err = NULL;
	unsigned char p[32] = { 0 };
	uint32_t len;

	assert_int_equal(ipc_decode(p, 5, &r, &err), -1); /* short */
	ipc_msg_free(&r);
	len = 31; /* says 31, is 32 */
	memcpy(p, &len, 4);
	assert_int_equal(ipc_decode(p, 32, &r, &err), -1);
	ipc_msg_free(&r);
	len = 32;
	memcpy(p, &len, 4);
	p[6] = 1; /* reserved flags */
	assert_int_equal(ipc_decode(p, 32, &r, &err), -1);
	ipc_msg_free(&r);
	p[6] = 0;
	/* string length field larger than the packet */
	uint32_t big = 0xffffff00;
	memcpy(p + IPC_HDR_LEN, &big, 4);
	assert_int_equal(ipc_decode(p, 32, &r, &err), 0);
	struct str v;
	assert_false(ipc_get_str(&r, &v));
	ipc_msg_free(&r);
}

static void test_put_overflow(void **state)
{
	struct ipc_msg m;
	ipc_msg_init(&m, 1, 1);
	char *big = xcalloc(1, IPC_STR_MAX + 1);
	ipc_put_str(&m, (struct str){ big, IPC_STR_MAX + 1 });
	assert_true(m.bad);
	struct buf wire;
	buf_init(&wire, IPC_MSG_MAX);
	assert_int_equal(ipc_encode(&m, &wire), -1);
	buf_free(&wire);
	free(big);
	ipc_msg_free(&m);
}

static void test_socket_with_fd(void **state)
{
	int sv[2];
	assert_int_equal(ipc_socketpair(sv), 0);
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	struct ipc_msg m, r;
	ipc_msg_init(&m, 2, 9);
	ipc_put_cstr(&m, "QID");
	ipc_msg_set_fd(&m, pipefd[1]);
	assert_int_equal(ipc_send(sv[0], &m), 0);
	const char *err = NULL;
	assert_int_equal(ipc_recv(sv[1], &r, &err), 1);
	int fd = ipc_msg_take_fd(&r);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	char c;
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	assert_int_equal(c, 'x');
	close(fd);
	ipc_msg_free(&m);
	ipc_msg_free(&r);
	close(sv[0]);
	assert_int_equal(ipc_recv(sv[1], &r, &err), 0);
	ipc_msg_free(&r);
	close(sv[1]);
	close(pipefd[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_hostile_packets),
		cmocka_unit_test(test_put_overflow),
		cmocka_unit_test(test_socket_with_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
