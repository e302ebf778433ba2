/*
 * qfile.h - the queue file format: envelope records, per-recipient status
 * records, queue IDs.
 *
 * An envelope file is a sequence of records, each
 *
 *   u8 type | u32 length (little endian) | payload[length] | u32 CRC-32
 *
 * where the CRC-32 (IEEE 802.3, reflected) covers type, length and payload.
 * The envelope proper is VERSION, ID, ARRIVAL, SIZE, SENDER, CLIENT, RCPT...,
 * END (END carries the recipient count); it is written once, fsynced and
 * renamed into place by the queue process. After END the queue process
 * appends ATTEMPT records (a delivery handed to master) and STATUS records
 * (one per recipient or target outcome), each fsynced before it is acted
 * upon. Records hold addresses and numbers only, never commands
 * or paths: what to run is decided at delivery time from configuration.
 *
 * Every reader treats the file as hostile: qfile_parse() never trusts a
 * length or a count before checking it against the bytes present and the
 * limits below, and returns an error instead of crashing. One exception is
 * deliberate: a damaged record that is the LAST thing in the file after END
 * is a torn append (the process died mid-write, so the outcome was never
 * relied upon); it is ignored and env->valid_len says where the good part
 * ends, so the writer truncates it before appending again.
 *
 * Queue IDs: QFILE_ID_LEN (14) uppercase hex digits of the arrival time in
 * microseconds since the epoch, so a plain string sort is arrival order and
 * the ID is a fixed-width file name. Uniqueness: the single queue process
 * hands out IDs strictly increasing (max(now, last + 1)), starts above the
 * largest ID found in the queue at start-up, and creates the content file
 * with O_EXCL (an ID already taken is skipped). Only a clock set back past
 * the life of every message in the queue could repeat an old, gone ID.
 *
 * Pure functions except qfile_read_file (one read of a file). Nothing logs.
 * Tests: tests/unit/lib/qfile_test.c, tests/fuzz/qfile_fuzz.c.
 */
#ifndef POSTERN_QFILE_H
#define POSTERN_QFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define QFILE_ID_LEN 14              /* hex digits of a queue ID */
#define QFILE_VERSION 1              /* VERSION record value */
#define QFILE_REC_MAX (64 * 1024)    /* largest record payload */
#define QFILE_STR_MAX 4096           /* largest string field */
#define QFILE_RCPT_MAX 20000         /* hard cap on recipients per message */
#define QFILE_STATUS_MAX 200000      /* hard cap on status records per file */
#define QFILE_FILE_MAX (64 * 1024 * 1024) /* largest envelope file read */

enum qfile_rec_type {
	QFILE_REC_VERSION = 'V', /* u32 QFILE_VERSION */
	QFILE_REC_ID = 'I',      /* queue ID text */
	QFILE_REC_ARRIVAL = 'T', /* i64 arrival, microseconds since the epoch */
	QFILE_REC_SIZE = 'S',    /* u64 content bytes */
	QFILE_REC_SENDER = 'F',  /* str sender, u32 flags (IPC_QF_*), str envid */
	QFILE_REC_CLIENT = 'C',  /* str name, str addr, u32 port, str helo,
	                          * str protocol, str message-id */
	QFILE_REC_RCPT = 'R',    /* str address, str orcpt, u32 notify */
	QFILE_REC_END = 'E',     /* u32 recipient count: end of the envelope */
	QFILE_REC_STATUS = 'D',  /* u32 rcpt index, u32 state, i64 time (us),
	                          * str target ("" = the recipient as a whole),
	                          * str dsn, str reason */
	QFILE_REC_ATTEMPT = 'A', /* u32 rcpt index, u32 request ID, i64 time (us),
	                          * str target: a delivery was handed to master;
	                          * open until a STATUS for that target (or for
	                          * the whole recipient) follows */
};

enum qfile_rstate {
	QFILE_RS_PENDING = 0,  /* not yet finished */
	QFILE_RS_SENT = 1,     /* delivered */
	QFILE_RS_BOUNCED = 2,  /* failed permanently */
	QFILE_RS_DEFERRED = 3, /* last attempt failed temporarily (still pending) */
};

struct qfile_attempt {
	char *target;   /* target key; owned */
	uint32_t reqid; /* IPC_M_DELIVER request ID it was sent with */
	int64_t when;   /* when (us) */
};

struct qfile_rcpt {
	char *addr;     /* recipient address; owned */
	char *orcpt;    /* DSN ORCPT "type;address" or ""; owned */
	uint32_t notify; /* IPC_QN_* bits */
	enum qfile_rstate state; /* latest whole-recipient state */
	int64_t when;   /* time of that state (us), 0 if none */
	char *dsn;      /* its enhanced status code, "" if none; owned */
	char *reason;   /* its text, "" if none; owned */
	char **done;    /* targets (alias expansions) already finished; owned */
	size_t ndone;   /* entries in done */
	struct qfile_attempt *att; /* deliveries started, outcome not recorded */
	size_t natt;    /* entries in att */
};

struct qfile_env {
	char qid[QFILE_ID_LEN + 1]; /* queue ID */
	int64_t arrival;    /* microseconds since the epoch */
	uint64_t size;      /* content bytes */
	char *sender;       /* "" = null sender; owned */
	uint32_t flags;     /* IPC_QF_* */
	char *envid;        /* DSN ENVID or ""; owned */
	char *client_name;  /* owned */
	char *client_addr;  /* owned */
	uint32_t client_port;
	char *helo;         /* owned */
	char *protocol;     /* owned */
	char *msgid;        /* message-id for logs, "" none; owned */
	struct qfile_rcpt *rcpt; /* owned array */
	size_t nrcpt;       /* entries in rcpt, 1..QFILE_RCPT_MAX */
	size_t valid_len;   /* bytes of the file through the last good record */
};

/* Free every owned field and zero *env. Takes a zeroed env. */
void qfile_env_free(struct qfile_env *env);

/* Encode the envelope (records VERSION through END; status ignored) into
 * out (appended). Returns 0, or -1 with *error_r when a field breaks a limit
 * (too long, NUL byte, bad ID, no or too many recipients). */
int qfile_encode_env(const struct qfile_env *env, struct buf *out, const char **error_r);

/* Append one STATUS record to out. target may be "" (whole recipient).
 * Returns 0, or -1 with *error_r when a string breaks a limit. */
int qfile_encode_status(struct buf *out, uint32_t rcpt_index, enum qfile_rstate state,
			int64_t when, const char *target, const char *dsn, const char *reason,
			const char **error_r);

/* Append one ATTEMPT record to out (written, durably, before a delivery
 * is handed to master, so that after a crash its late result can still be
 * matched). Returns as qfile_encode_status. */
int qfile_encode_attempt(struct buf *out, uint32_t rcpt_index, uint32_t reqid, int64_t when,
			 const char *target, const char **error_r);

/* Parse a whole file held in memory (len bytes of data). On success fills
 * *env (owned by the caller; free with qfile_env_free) and returns 0. On any
 * malformation returns -1 with *error_r a static reason and *env zeroed.
 * Never reads outside data[0..len). */
int qfile_parse(const void *data, size_t len, struct qfile_env *env, const char **error_r);

/* Read the file name relative to dirfd (AT_FDCWD for a path) into out,
 * refusing more than QFILE_FILE_MAX bytes. Returns 0, or -1 with errno
 * (EFBIG when too large; ENOENT when it vanished). Blocks on the read. */
int qfile_read_file(int dirfd, const char *name, struct buf *out);

/* True when s is exactly a queue ID (QFILE_ID_LEN uppercase hex digits):
 * the check that keeps an ID from ever naming another path. */
bool qfile_id_valid(const char *s);

/* Write the ID for now_us into out: max(now_us, *last + 1), then *last =
 * that value. out has room for QFILE_ID_LEN + 1 bytes. */
void qfile_id_next(int64_t now_us, uint64_t *last, char out[QFILE_ID_LEN + 1]);

/* The numeric value of a valid ID (0 for an invalid one). */
uint64_t qfile_id_value(const char *id);

/* Name of a recipient state for logs and listings ("sent", "bounced", ...). */
const char *qfile_rstate_name(enum qfile_rstate s);

/* CRC-32 (IEEE) of n bytes, continuing from crc (start with 0). */
uint32_t qfile_crc32(uint32_t crc, const void *p, size_t n);

#endif
