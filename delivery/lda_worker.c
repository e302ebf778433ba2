/*
 * lda_worker.c - postern-lda --worker: serve deliveries over a socket.
 *
 * Purpose: run many one-shot deliveries in one process (lda_worker.h).
 * Owns: fd 0 (the request socket) and each request's message descriptor
 *   until it is answered.
 * Never: runs as root; keeps a descriptor of one delivery into the next;
 *   reads more than it was sent or trusts a length it did not check
 *   (lib/ipc.h); answers a request it could not parse (it exits instead).
 * Limits: LDA_WORKER_ARGS_MAX arguments, LDA_WORKER_OUTPUT_MAX output bytes;
 *   the caller (master) enforces command_time_limit by killing the
 *   worker's process group, and a request count per worker.
 * Tests: tests/unit/delivery/lda_worker_test.c, tests/integration/test_ldaw.py
 *   (and every Maildir/mbox delivery of the integration tests).
 */
#include <signal.h>
#include <sysexits.h>
#include <unistd.h>

#include "delivery/lda_worker.h"
#include "lib/ipc.h"
#include "lib/log.h"
#include "lib/common.h"

int lda_worker_main(lda_worker_serve_fn *serve)
{
	if (getuid() == 0 || geteuid() == 0) {
		log_open("lda", NULL, &(const char *){ NULL });
		log_warning("postern-lda --worker refuses to run as root");
		return EX_TEMPFAIL;
	}
	/* the socket peer may vanish: a failed send is handled, not a signal */
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct ipc_msg m;
		const char *err = NULL;
		int r = ipc_recv(0, &m, &err);
		if (r == 0) {
			ipc_msg_free(&m);
			return 0;
		}
		if (r < 0) {
			ipc_msg_free(&m);
			return EX_PROTOCOL;
		}
		uint32_t argc = 0;
		char *argv[LDA_WORKER_ARGS_MAX + 1] = { 0 };
		char *cwd = NULL;
		bool ok = m.type == LDA_WORKER_REQ && ipc_get_u32(&m, &argc) && argc >= 1 &&
			  argc <= LDA_WORKER_ARGS_MAX;
		for (uint32_t i = 0; ok && i < argc; i++)
			ok = ipc_get_cstr(&m, &argv[i]);
		ok = ok && ipc_get_cstr(&m, &cwd) && ipc_get_end(&m) && m.fd >= 0;
		int rc = 0;
		if (ok) {
			int msg_fd = ipc_msg_take_fd(&m);
			int64_t status;
			struct buf out;
			buf_init(&out, LDA_WORKER_OUTPUT_MAX);
			if (chdir(*cwd ? cwd : "/") < 0 && chdir("/") < 0) {
				status = EX_OSERR;
				buf_puts(&out, "4.3.0 cannot change to the working directory");
			} else {
				status = serve((int)argc, argv, msg_fd, &out);
			}
			close(msg_fd);
			struct ipc_msg rep;
			ipc_msg_init(&rep, LDA_WORKER_DONE, m.reqid);
			ipc_put_i64(&rep, status);
			ipc_put_str(&rep, buf_str(&out));
			if (ipc_send(0, &rep) < 0)
				rc = EX_IOERR; /* master is gone */
			ipc_msg_free(&rep);
			buf_free(&out);
		} else {
			rc = EX_PROTOCOL;
		}
		for (uint32_t i = 0; i < LDA_WORKER_ARGS_MAX; i++)
			free(argv[i]);
		free(cwd);
		ipc_msg_free(&m);
		if (rc != 0)
			return rc;
	}
}
