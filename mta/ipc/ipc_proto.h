/*
 * ipc_proto.h - every message type that crosses a Postern process boundary.
 *
 * This is the contract between master, smtpd and queue (and later smtp):
 * fields are listed in wire order, written with ipc_put_* and read with
 * ipc_get_* (lib/ipc.h). "cstr" is a string field without NUL bytes, "str"
 * may hold any bytes. A reply echoes the request's reqid. Who may send what
 * is fixed: a process that receives a type it does not expect from that peer
 * logs it and closes the channel.
 */
#ifndef POSTERN_IPC_PROTO_H
#define POSTERN_IPC_PROTO_H

enum ipc_type {
	/* ---- smtpd -> queue: building one message ------------------------ */
	IPC_Q_OPEN = 1,     /* ask for a new queue file. no fields.
	                     * reply IPC_Q_OPENED or IPC_Q_ERROR */
	IPC_Q_OPENED = 2,   /* queue -> smtpd: cstr qid (QFILE_ID_LEN uppercase hex
	                     * digits, lib/qfile.h); fd = the content file,
	                     * opened read/write at offset 0, empty. smtpd writes
	                     * the message content (see below) and never reads back
	                     * anything it did not write. */
	IPC_Q_SENDER = 3,   /* cstr qid, cstr sender ("" = null sender),
	                     * u32 flags (IPC_QF_*), cstr envid (DSN ENVID, xtext
	                     * decoded; "" none). Exactly once, before any RCPT. */
	IPC_Q_RCPT = 4,     /* cstr qid, cstr recipient, cstr orcpt (DSN ORCPT as
	                     * "type;address", "" none), u32 notify (IPC_QN_*).
	                     * Once per accepted recipient, in RCPT order. */
	IPC_Q_COMMIT = 5,   /* cstr qid, u64 content size in bytes (the whole
	                     * content file, Received header included; the queue
	                     * checks it against fstat),
	                     * i64 arrival time (microseconds since the epoch),
	                     * cstr client hostname ("unknown" when none),
	                     * cstr client address, u32 client port,
	                     * cstr helo name, cstr protocol (SMTP, ESMTP, ESMTPS...),
	                     * cstr message-id ("" none, for logs only),
	                     * u32 flags (IPC_QC_*), cstr hold reason ("" none).
	                     * The content must be complete. reply IPC_Q_COMMITTED
	                     * only once content, envelope and directory entries are
	                     * durable, else IPC_Q_ERROR. */
	IPC_Q_COMMITTED = 6, /* queue -> smtpd: cstr qid. The message is ours. */
	IPC_Q_ERROR = 7,    /* queue -> smtpd: cstr qid ("" if none yet),
	                     * cstr SMTP reply ("451 4.3.0 Error: queue file write
	                     * error"). The queue file, if any, is gone. */
	IPC_Q_ABORT = 8,    /* smtpd -> queue: cstr qid. Transaction abandoned
	                     * (RSET, QUIT, disconnect, reject at end of data):
	                     * the queue removes the content. No reply. */

	/* ---- master <-> queue ------------------------------------------- */
	IPC_M_CLIENT = 100, /* master -> queue: cstr peer name ("smtpd[1234]");
	                     * fd = the queue's end of a new smtpd channel. */
	IPC_M_DELIVER = 101, /* queue -> master: run a local delivery.
	                     * u32 kind (IPC_MD_*), u32 uid, u32 gid,
	                     * cstr working directory,
	                     * u32 argc, then argc cstr arguments,
	                     * u32 envc, then envc cstr "NAME=value";
	                     * fd = message content to use as standard input.
	                     * For IPC_MD_LDA master runs daemon_directory's
	                     * postern-lda with these arguments (argv[0] ignored);
	                     * for IPC_MD_PIPE it runs /bin/sh -c argv[1].
	                     * Master refuses uid 0 and any other kind.
	                     * reply IPC_M_DELIVERED (same reqid). */
	IPC_M_DELIVERED = 102, /* master -> queue: i64 status: exit code >= 0,
	                     * or -signal number; cstr output: the first line
	                     * of the child's stderr+stdout, at most 512 bytes,
	                     * escaped printable; or a reason from master when it
	                     * could not run the child (status 75). */
	IPC_M_RELOAD = 103, /* master -> queue: main.cf changed; reload. */
	IPC_M_FLUSH = 104,  /* master -> queue: attempt delivery of every deferred
	                     * message now (postern flush). */

	/* ---- sendmail(1) -> smtpd "submit": local submission ------------- */
	/* On a connection to $queue_directory/public/submit (see below), in
	 * this order: SUBMIT, RCPT x n (1..IPC_SUBMIT_RCPT_MAX), DATA; smtpd
	 * answers exactly one RESULT and closes. A message out of order, a
	 * malformed one, a missing or unusable descriptor also gets a RESULT
	 * (or, for bytes that are not a message at all, just the close).
	 * After RESULT smtpd shuts its sending side and drops whatever the
	 * client still sends until it closes (a client refused early may be
	 * mid-request; it reads the RESULT when its sending fails).
	 * reqid: any value; RESULT echoes the one of the message it answers. */
	IPC_S_SUBMIT = 200, /* client: cstr sender as given by -f/-r ("" or "<>" =
	                     * null sender; the client sends its login name when
	                     * no -f was given; unqualified gets @$myorigin),
	                     * u32 flags (IPC_QF_8BITMIME, IPC_QF_RET_FULL,
	                     * IPC_QF_RET_HDRS only), cstr envid (-V, "" none),
	                     * cstr full name (-F, "" none: the From: header smtpd
	                     * adds when the message has none then has no phrase). */
	IPC_S_RCPT = 201,   /* client: cstr recipient (RFC 5321 mailbox, with or
	                     * without <>, unqualified gets @$myorigin),
	                     * cstr orcpt ("type;address" or ""), u32 notify
	                     * (IPC_QN_*; 0 = not given). */
	IPC_S_DATA = 202,   /* client: no fields; fd = the message, a regular
	                     * file (memfd or unlinked temp file) holding exactly
	                     * the input as read: LF or CRLF lines, not dot-
	                     * stuffed, an mbox "From " line allowed on top.
	                     * smtpd reads it from offset 0 to its end (at most
	                     * message_size_limit bytes). */
	IPC_S_RESULT = 203, /* smtpd: u32 status (sysexits.h: 0 queued,
	                     * 64 usage/bad address/too many recipients,
	                     * 65 bad data (too big, NUL, hops), 69 refused,
	                     * 75 try again later, 76 a request smtpd could
	                     * not use (order, fields, no or non-regular fd),
	                     * 77 not authorised or rejected by policy),
	                     * cstr text (one printable
	                     * line for the user, e.g. "queued as QID" or the
	                     * SMTP-style reason), cstr qid ("" unless queued). */
};

#define IPC_SUBMIT_RCPT_MAX 10000 /* recipients per submission (and
                                   * smtpd_recipient_limit when lower) */

/* IPC_Q_SENDER flags */
#define IPC_QF_8BITMIME 0x01   /* BODY=8BITMIME */
#define IPC_QF_SMTPUTF8 0x02   /* MAIL ... SMTPUTF8 */
#define IPC_QF_RET_FULL 0x04   /* DSN RET=FULL */
#define IPC_QF_RET_HDRS 0x08   /* DSN RET=HDRS */
#define IPC_QF_BINARYMIME 0x10 /* BODY=BINARYMIME */

/* IPC_Q_COMMIT flags */
#define IPC_QC_HOLD 0x01 /* commit straight into hold/ (milter quarantine) */

/* IPC_Q_RCPT notify bits (RFC 3461); 0 = not given */
#define IPC_QN_SUCCESS 0x01
#define IPC_QN_FAILURE 0x02
#define IPC_QN_DELAY 0x04
#define IPC_QN_NEVER 0x08

/* IPC_M_DELIVER kinds */
#define IPC_MD_LDA 1  /* postern-lda */
#define IPC_MD_PIPE 2 /* "|command" from trusted aliases, via /bin/sh -c */

/*
 * Content file written by smtpd: the message exactly as it will be handed
 * on, after dot-unstuffing: header lines and body with CRLF line ends
 * (bare LF normalised per smtpd_forbid_bare_newline), starting with the
 * Received: header smtpd prepends. No envelope data, no terminator.
 *
 * Process start-up (master -> child, by exec):
 *   postern-queue -c CONFDIR          fd 3: channel to master
 *   postern-smtpd -c CONFDIR -n SERVICE [-o name=value ...]
 *                                     fd 3: channel to master (unused yet)
 *                                     fd 4: channel to queue
 *                                     fd 5.. : listening sockets, count in
 *                                     env POSTERN_LISTEN_FDS. One smtpd runs
 *                                     per master.cf service, so implicit TLS
 *                                     is that service's -o
 *                                     smtpd_tls_wrappermode=yes (smtpd also
 *                                     honours env POSTERN_TLS_WRAPPER, a
 *                                     comma-separated list of fd indexes,
 *                                     which master does not set).
 *   postern-smtpd -c CONFDIR -n submit
 *                                     local submission: same binary and
 *                                     fds 3, 4; env POSTERN_SUBMIT_FD=5 and
 *                                     fd 5 = the listening SOCK_SEQPACKET
 *                                     unix socket $queue_directory/public/
 *                                     submit (public/ mode 0755 owned by
 *                                     mail_owner, the socket 0666, bound
 *                                     by master). Its only listener. The
 *                                     submitter is named by SO_PEERCRED
 *                                     (uid, gid, pid), never by a field.
 */

#endif
