/*
 * ipc.c - typed message framing over SOCK_SEQPACKET (see ipc.h).
 *
 * Owns: nothing beyond each message's body and descriptor.
 * Never: trusts a length field; accepts a packet whose header length differs
 * from what recvmsg() returned, or more than one passed descriptor.
 * Limits: IPC_MSG_MAX per packet, IPC_STR_MAX per string.
 * Tests: tests/unit/lib/ipc_test.c, tests/fuzz/ipc_fuzz.c.
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "lib/common.h"

void ipc_msg_init(struct ipc_msg *m, uint16_t type, uint32_t reqid)
{
	m->type = type;
	m->reqid = reqid;
	buf_init(&m->body, IPC_MSG_MAX - IPC_HDR_LEN);
	m->rpos = 0;
	m->fd = -1;
	m->bad = false;
}

void ipc_msg_free(struct ipc_msg *m)
{
	buf_free(&m->body);
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
}

void ipc_msg_set_fd(struct ipc_msg *m, int fd)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = fd;
}

int ipc_msg_take_fd(struct ipc_msg *m)
{
	int fd = m->fd;
	m->fd = -1;
	return fd;
}

static void ipc_put(struct ipc_msg *m, const void *p, size_t n)
{
	if (buf_append(&m->body, p, n) < 0)
		m->bad = true;
}

void ipc_put_u32(struct ipc_msg *m, uint32_t v)
{
	ipc_put(m, &v, sizeof(v));
}

void ipc_put_u64(struct ipc_msg *m, uint64_t v)
{
	ipc_put(m, &v, sizeof(v));
}

void ipc_put_i64(struct ipc_msg *m, int64_t v)
{
	ipc_put(m, &v, sizeof(v));
}

void ipc_put_str(struct ipc_msg *m, struct str s)
{
	if (s.len > IPC_STR_MAX) {
		m->bad = true;
		return;
	}
	ipc_put_u32(m, (uint32_t)s.len);
	ipc_put(m, s.p, s.len);
}

void ipc_put_cstr(struct ipc_msg *m, const char *s)
{
	ipc_put_str(m, str_of(s ? s : ""));
}

static bool ipc_get(struct ipc_msg *m, void *p, size_t n)
{
	if (m->bad || m->body.len - m->rpos < n) {
		m->bad = true;
		return false;
	}
	if (n > 0)
		memcpy(p, m->body.data + m->rpos, n);
	m->rpos += n;
	return true;
}

bool ipc_get_u32(struct ipc_msg *m, uint32_t *v)
{
	return ipc_get(m, v, sizeof(*v));
}

bool ipc_get_u64(struct ipc_msg *m, uint64_t *v)
{
	return ipc_get(m, v, sizeof(*v));
}

bool ipc_get_i64(struct ipc_msg *m, int64_t *v)
{
	return ipc_get(m, v, sizeof(*v));
}

bool ipc_get_str(struct ipc_msg *m, struct str *s)
{
	uint32_t len;
	if (!ipc_get_u32(m, &len))
		return false;
	if (len > IPC_STR_MAX || m->body.len - m->rpos < len) {
		m->bad = true;
		return false;
	}
	s->p = m->body.data + m->rpos;
	s->len = len;
	m->rpos += len;
	return true;
}

bool ipc_get_cstr(struct ipc_msg *m, char **s)
{
	struct str v;
	if (!ipc_get_str(m, &v))
		return false;
	if (v.len > 0 && memchr(v.p, '\0', v.len) != NULL) {
		m->bad = true;
		return false;
	}
	*s = str_dup(v);
	return true;
}

bool ipc_get_end(struct ipc_msg *m)
{
	return !m->bad && m->rpos == m->body.len;
}

int ipc_encode(const struct ipc_msg *m, struct buf *out)
{
	if (m->bad)
		return -1;
	uint32_t len = (uint32_t)(IPC_HDR_LEN + m->body.len);
	uint16_t flags = 0;
	if (buf_append(out, &len, 4) < 0 || buf_append(out, &m->type, 2) < 0 ||
	    buf_append(out, &flags, 2) < 0 || buf_append(out, &m->reqid, 4) < 0 ||
	    buf_append(out, m->body.data, m->body.len) < 0)
		return -1;
	return 0;
}

int ipc_decode(const void *p, size_t n, struct ipc_msg *m, const char **error_r)
{
	const unsigned char *b = p;
	uint32_t len;
	uint16_t type, flags;
	uint32_t reqid;

	ipc_msg_init(m, 0, 0);
	if (n < IPC_HDR_LEN) {
		*error_r = "short packet";
		return -1;
	}
	if (n > IPC_MSG_MAX) {
		*error_r = "oversized packet";
		return -1;
	}
	memcpy(&len, b, 4);
	memcpy(&type, b + 4, 2);
	memcpy(&flags, b + 6, 2);
	memcpy(&reqid, b + 8, 4);
	if (len != n) {
		*error_r = "length field does not match packet size";
		return -1;
	}
	if (flags != 0) {
		*error_r = "reserved flags set";
		return -1;
	}
	m->type = type;
	m->reqid = reqid;
	if (buf_append(&m->body, b + IPC_HDR_LEN, n - IPC_HDR_LEN) < 0) {
		*error_r = "oversized packet";
		return -1;
	}
	return 0;
}

int ipc_socketpair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv);
}

int ipc_send(int sock, const struct ipc_msg *m)
{
	struct buf out;
	buf_init(&out, IPC_MSG_MAX);
	if (ipc_encode(m, &out) < 0) {
		buf_free(&out);
		errno = EMSGSIZE;
		return -1;
	}
	struct iovec iov = { out.data, out.len };
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr mh = { 0 };
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (m->fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.space;
		mh.msg_controllen = sizeof(ctl.space);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &m->fd, sizeof(int));
	}
	ssize_t w;
	do
		w = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	int saved = errno;
	buf_free(&out);
	errno = saved;
	if (w < 0)
		return -1;
	CHECK((size_t)w == iov.iov_len); /* SEQPACKET sends whole packets */
	return 0;
}

int ipc_recv(int sock, struct ipc_msg *m, const char **error_r)
{
	static char packet[IPC_MSG_MAX + 1];
	struct iovec iov = { packet, sizeof(packet) };
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	struct msghdr mh = { 0 };
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.space;
	mh.msg_controllen = sizeof(ctl.space);
	ipc_msg_init(m, 0, 0); /* the caller frees m whatever we return */
	ssize_t r;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	int fds[4], nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k && nfds < 4; i++)
				memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		}
	}
	if (r == 0 && nfds == 0)
		return 0;
	const char *err = NULL;
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0)
		err = "truncated packet";
	else if (nfds > 1)
		err = "more than one descriptor in a message";
	if (err != NULL || ipc_decode(packet, (size_t)r, m, &err) < 0) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		*error_r = err;
		errno = EPROTO;
		return -1;
	}
	m->fd = nfds == 1 ? fds[0] : -1;
	return 1;
}
