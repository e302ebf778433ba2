/*
 * queue_ctl_client.c - the CLI side of the control socket (see queue_ctl.h).
 *
 * Purpose: one blocking request/reply with the running queue process.
 * Owns: one socket per request. Never: waits longer than
 * QUEUE_CTL_TIMEOUT_MS; trusts the reply's framing (lib/ipc checks it).
 * Tests: tests/integration/test_queue_ctl.py.
 */
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mta/queue/queue_ctl.h"
#include "lib/ipc.h"
#include "lib/common.h"

char *queue_ctl_path(const struct cfg *cfg)
{
	return xasprintf("%s/private/%s", cfg->queue_directory, QUEUE_CTL_NAME);
}

int queue_ctl_request(const struct cfg *cfg, const char *verb, const char *id, struct buf *reply,
		      const char **error_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *path = queue_ctl_path(cfg);
	if (strlen(path) >= sizeof(sun.sun_path)) {
		free(path);
		*error_r = "control socket path too long";
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	free(path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = "cannot create a socket";
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		*error_r = errno == EACCES || errno == EPERM
				   ? "permission denied on the queue control socket"
				   : "the queue process is not running (no control socket)";
		close(fd);
		return -1;
	}
	struct ipc_msg m;
	ipc_msg_init(&m, QUEUE_CTL_REQUEST, 1);
	ipc_put_cstr(&m, verb);
	ipc_put_cstr(&m, id ? id : "");
	int rc = ipc_send(fd, &m);
	ipc_msg_free(&m);
	if (rc < 0) {
		*error_r = "cannot send the request to the queue process";
		close(fd);
		return -1;
	}
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, QUEUE_CTL_TIMEOUT_MS) <= 0) {
		*error_r = "no answer from the queue process";
		close(fd);
		return -1;
	}
	const char *err = NULL;
	struct ipc_msg r;
	rc = ipc_recv(fd, &r, &err);
	close(fd);
	uint32_t status = 0;
	struct str text;
	if (rc <= 0 || r.type != QUEUE_CTL_REPLY || !ipc_get_u32(&r, &status) ||
	    !ipc_get_str(&r, &text) || !ipc_get_end(&r)) {
		if (rc >= 0)
			ipc_msg_free(&r);
		*error_r = "bad answer from the queue process";
		return -1;
	}
	buf_append(reply, text.p, text.len);
	ipc_msg_free(&r);
	return status == 0 ? 0 : 1;
}
