/*
 * lda_worker_test.c - postern-lda --worker: requests in, status and the
 * failure line back, in order, with no descriptor kept from one request to
 * the next; a crashing delivery ends the worker unanswered; malformed
 * requests end it; it refuses to run as root.
 */
#include "tests/unit/unit.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "delivery/lda_worker.h"
#include "lib/ipc.h"
#include "lib/common.h"

/* Stands in for the LDA's delivery: argv[1] says what to do. */
static int fake_serve(int argc, char **argv, int in_fd, struct buf *out)
{
	char buf[256];
	if (argc < 2)
		return EX_USAGE;
	if (strcmp(argv[1], "ok") == 0)
		return 0;
	if (strcmp(argv[1], "echo") == 0) {
		ssize_t n = read(in_fd, buf, sizeof(buf));
		if (n > 0)
			buf_append(out, buf, (size_t)n);
		return 0;
	}
	if (strcmp(argv[1], "fail") == 0) {
		buf_printf(out, "5.1.1 %s", argc > 2 ? argv[2] : "no such user");
		return EX_NOUSER;
	}
	if (strcmp(argv[1], "crash") == 0)
		raise(SIGKILL);
	if (strcmp(argv[1], "cwd") == 0) {
		if (getcwd(buf, sizeof(buf)) != NULL)
			buf_puts(out, buf);
		return 0;
	}
	if (strcmp(argv[1], "fds") == 0) {
		/* the descriptors of earlier requests are closed */
		int open_fds = 0;
		for (int fd = 3; fd < 64; fd++)
			open_fds += fd != in_fd && fcntl(fd, F_GETFD) >= 0;
		buf_printf(out, "%d", open_fds);
		return 0;
	}
	return EX_USAGE;
}

struct worker {
	pid_t pid;
	int sock; /* our end */
};

static void worker_start(struct worker *w, bool drop_root)
{
	int sv[2];
	assert_int_equal(ipc_socketpair(sv), 0);
	w->pid = fork();
	assert_true(w->pid >= 0);
	if (w->pid == 0) {
		if (drop_root && geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(99);
		if (dup2(sv[1], 0) < 0)
			_exit(98);
		close(sv[0]);
		close(sv[1]);
		_exit(lda_worker_main(fake_serve));
	}
	close(sv[1]);
	w->sock = sv[0];
}

static int worker_end(struct worker *w)
{
	int st = 0;
	close(w->sock);
	assert_int_equal(waitpid(w->pid, &st, 0), w->pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

static int message_fd(const char *text)
{
	char path[] = "/tmp/lda-worker-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void send_req(struct worker *w, uint32_t reqid, const char *const *args, size_t n,
		     const char *cwd, int fd)
{
	struct ipc_msg m;
	ipc_msg_init(&m, LDA_WORKER_REQ, reqid);
	ipc_put_u32(&m, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		ipc_put_cstr(&m, args[i]);
	ipc_put_cstr(&m, cwd);
	if (fd >= 0)
		ipc_msg_set_fd(&m, fd);
	assert_int_equal(ipc_send(w->sock, &m), 0);
	ipc_msg_free(&m);
}

/* One request, its reply: returns the status, fills out (NUL-terminated). */
static int64_t deliver(struct worker *w, uint32_t reqid, const char *what, const char *input,
		       char *out, size_t outsz)
{
	const char *args[] = { "postern-lda", what };
	send_req(w, reqid, args, 2, "/", message_fd(input));
	struct ipc_msg r;
	const char *err = NULL;
	assert_int_equal(ipc_recv(w->sock, &r, &err), 1);
	assert_int_equal(r.type, LDA_WORKER_DONE);
	assert_int_equal(r.reqid, reqid);
	int64_t status = 0;
	struct str text;
	assert_true(ipc_get_i64(&r, &status));
	assert_true(ipc_get_str(&r, &text));
	assert_true(ipc_get_end(&r));
	snprintf(out, outsz, "%.*s", (int)text.len, text.p ? text.p : "");
	ipc_msg_free(&r);
	return status;
}

static void test_requests(void **state)
{
	struct worker w;
	char out[1024];
	char before[16];
	worker_start(&w, true);
	assert_int_equal(deliver(&w, 6, "fds", "", before, sizeof(before)), 0);
	assert_int_equal(deliver(&w, 7, "ok", "", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(deliver(&w, 8, "echo", "the message", out, sizeof(out)), 0);
	assert_string_equal(out, "the message");
	assert_int_equal(deliver(&w, 9, "fail", "", out, sizeof(out)), EX_NOUSER);
	assert_string_equal(out, "5.1.1 no such user");
	/* no descriptor of the requests before stays open */
	assert_int_equal(deliver(&w, 10, "fds", "", out, sizeof(out)), 0);
	assert_string_equal(out, before);
	assert_int_equal(worker_end(&w), 0);
}

/* A delivery that crashes takes the worker with it, unanswered: master
 * sees the end of the socket and defers that delivery. */
static void test_crash_ends_worker(void **state)
{
	struct worker w;
	worker_start(&w, true);
	const char *args[] = { "postern-lda", "crash" };
	send_req(&w, 1, args, 2, "", message_fd(""));
	char b[16];
	assert_int_equal(recv(w.sock, b, sizeof(b), 0), 0);
	assert_int_equal(worker_end(&w), 1000 + SIGKILL);
}

static void test_cwd_and_output_limit(void **state)
{
	struct worker w;
	char out[2048];
	worker_start(&w, true);
	const char *args[] = { "postern-lda", "cwd" };
	send_req(&w, 1, args, 2, "/tmp", message_fd(""));
	struct ipc_msg r;
	const char *err = NULL;
	assert_int_equal(ipc_recv(w.sock, &r, &err), 1);
	int64_t st;
	struct str text;
	assert_true(ipc_get_i64(&r, &st) && ipc_get_str(&r, &text) && ipc_get_end(&r));
	assert_int_equal(st, 0);
	assert_int_equal(text.len, 4);
	assert_memory_equal(text.p, "/tmp", 4);
	ipc_msg_free(&r);
	/* output beyond LDA_WORKER_OUTPUT_MAX is refused, not overrun */
	char big[1500];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(deliver(&w, 2, "echo", big, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 256); /* fake_serve reads 256 bytes */
	const char *args2[] = { "postern-lda", "fail", big };
	send_req(&w, 3, args2, 3, "", message_fd(""));
	assert_int_equal(ipc_recv(w.sock, &r, &err), 1);
	assert_true(ipc_get_i64(&r, &st) && ipc_get_str(&r, &text) && ipc_get_end(&r));
	assert_int_equal(st, EX_NOUSER);
	assert_true(text.len <= LDA_WORKER_OUTPUT_MAX);
	ipc_msg_free(&r);
	assert_int_equal(worker_end(&w), 0);
}

/* Each malformed request ends the worker with EX_PROTOCOL, answering nothing. */
static void test_malformed(void **state)
{
	for (int k = 0; k < 6; k++) {
		struct worker w;
		worker_start(&w, true);
		struct ipc_msg m;
		ipc_msg_init(&m, k == 0 ? LDA_WORKER_DONE : LDA_WORKER_REQ, 1);
		if (k == 1) {
			ipc_put_u32(&m, 0); /* argc 0 */
			ipc_put_cstr(&m, "");
		} else if (k == 2) {
			ipc_put_u32(&m, LDA_WORKER_ARGS_MAX + 1);
			for (int i = 0; i < LDA_WORKER_ARGS_MAX + 1; i++)
				ipc_put_cstr(&m, "x");
			ipc_put_cstr(&m, "");
		} else if (k == 3) {
			ipc_put_u32(&m, 3); /* claims more strings than sent */
			ipc_put_cstr(&m, "postern-lda");
		} else {
			ipc_put_u32(&m, 2);
			ipc_put_cstr(&m, "postern-lda");
			ipc_put_cstr(&m, "ok");
			ipc_put_cstr(&m, "/");
			if (k == 4)
				ipc_put_u32(&m, 42); /* trailing bytes */
			/* k == 5: no message descriptor */
		}
		if (k < 5)
			ipc_msg_set_fd(&m, message_fd(""));
		assert_int_equal(ipc_send(w.sock, &m), 0);
		ipc_msg_free(&m);
		char b[16];
		assert_int_equal(recv(w.sock, b, sizeof(b), 0), 0); /* no reply: closed */
		assert_int_equal(worker_end(&w), EX_PROTOCOL);
	}
}

static void test_refuses_root(void **state)
{
	if (geteuid() != 0)
		fail_msg("needs root to check the refusal (CI runs as root)");
	struct worker w;
	worker_start(&w, false);
	assert_int_equal(worker_end(&w), EX_TEMPFAIL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_crash_ends_worker),
		cmocka_unit_test(test_cwd_and_output_limit),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_refuses_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
