/*
 * ipc.h - typed, length-checked messages between Postern processes.
 *
 * Children talk over SOCK_SEQPACKET socketpairs made by master: one packet is
 * one message, so boundaries need no parsing and a descriptor passed with
 * SCM_RIGHTS belongs to exactly one message. Wire form (host byte order; both
 * ends are the same build on the same machine):
 *
 *   u32 length   whole packet, header included, <= IPC_MSG_MAX
 *   u16 type     enum ipc_type (mta/ipc/ipc_proto.h)
 *   u16 flags    0 (reserved; nonzero is malformed)
 *   u32 reqid    request ID chosen by the requester, echoed in the reply
 *   payload      fields in the order the type documents:
 *                u32 / u64 / i64 fixed width; strings as u32 length + bytes
 *
 * Readers use ipc_get_*; each returns false once a field would overrun, and
 * ipc_get_end() fails unless the payload was consumed exactly. A malformed
 * message from a less-trusted process closes that channel (STYLE.md, IPC).
 */
#ifndef POSTERN_IPC_H
#define POSTERN_IPC_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/buf.h"

#define IPC_HDR_LEN 12
#define IPC_MSG_MAX (64 * 1024) /* largest packet, header included */
#define IPC_STR_MAX (16 * 1024) /* largest string field */

struct ipc_msg {
	uint16_t type;    /* enum ipc_type */
	uint32_t reqid;   /* request ID, echoed by replies */
	struct buf body;  /* payload, max IPC_MSG_MAX - IPC_HDR_LEN */
	size_t rpos;      /* read cursor into body */
	int fd;           /* descriptor travelling with the message, or -1; owned */
	bool bad;         /* a put overflowed or a get overran */
};

/* Start an empty message to send. */
void ipc_msg_init(struct ipc_msg *m, uint16_t type, uint32_t reqid);
/* Free the body and close m->fd if still owned. */
void ipc_msg_free(struct ipc_msg *m);
/* Attach a descriptor to send; the message owns it afterwards. */
void ipc_msg_set_fd(struct ipc_msg *m, int fd);
/* Take the received descriptor (-1 if none); the caller owns it then. */
int ipc_msg_take_fd(struct ipc_msg *m);

/* Append a field. On overflow m->bad is set and ipc_send refuses the message. */
void ipc_put_u32(struct ipc_msg *m, uint32_t v);
void ipc_put_u64(struct ipc_msg *m, uint64_t v);
void ipc_put_i64(struct ipc_msg *m, int64_t v);
void ipc_put_str(struct ipc_msg *m, struct str s);
void ipc_put_cstr(struct ipc_msg *m, const char *s); /* NULL is sent as "" */

/* Read the next field; false (and m->bad) when it is not there whole. */
bool ipc_get_u32(struct ipc_msg *m, uint32_t *v);
bool ipc_get_u64(struct ipc_msg *m, uint64_t *v);
bool ipc_get_i64(struct ipc_msg *m, int64_t *v);
/* Borrowed view into the message body (valid until ipc_msg_free). */
bool ipc_get_str(struct ipc_msg *m, struct str *s);
/* Owned NUL-terminated copy; fails on an embedded NUL byte. */
bool ipc_get_cstr(struct ipc_msg *m, char **s);
/* True when every get succeeded and the payload was consumed exactly. */
bool ipc_get_end(struct ipc_msg *m);

/* Serialise m (header + body) into out. Returns 0, or -1 when m->bad. */
int ipc_encode(const struct ipc_msg *m, struct buf *out);
/* Parse one packet (pure: no I/O). On success m is initialised for reading
 * (fd = -1) and 0 is returned; on a malformed packet -1 and *error_r. */
int ipc_decode(const void *p, size_t n, struct ipc_msg *m, const char **error_r);

/* A SOCK_SEQPACKET socketpair, close-on-exec. Returns 0 or -1 (errno). */
int ipc_socketpair(int sv[2]);
/* Send one message (with m->fd if >= 0, which stays owned by m). Returns 0,
 * or -1 with errno (EAGAIN on a full non-blocking socket). Never blocks
 * unless the socket is blocking. */
int ipc_send(int sock, const struct ipc_msg *m);
/* Receive one message into m (initialised here; the caller frees it
 * whatever the result). Returns 1 for a
 * message, 0 when the peer closed, -1 with errno (EAGAIN: nothing yet) or
 * with *error_r set and errno EPROTO for a malformed packet. */
int ipc_recv(int sock, struct ipc_msg *m, const char **error_r);

#endif
