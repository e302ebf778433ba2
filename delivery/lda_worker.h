/*
 * lda_worker.h - postern-lda's worker mode: many deliveries, one exec.
 *
 * `postern-lda --worker` is started by Postern's master, already running as
 * the recipient's uid/gid (never root), with a SOCK_SEQPACKET socket on
 * fd 0. It waits for requests; each one runs the one-shot postern-lda
 * delivery in this process (the request's argv, the message descriptor
 * instead of stdin, the status line into the reply instead of stderr) and
 * is answered with the exit code and that line. So a delivery costs no
 * fork of master, no exec, no dynamic linking and no fork at all. Every
 * delivery frees what it allocated; master replaces a worker after a
 * bounded number of requests anyway, and a worker that crashes only
 * fails the delivery it was doing (master defers it). All deliveries of
 * one worker are for the same uid, which can write all those mailboxes
 * anyway: nothing one delivery could leave behind crosses a privilege
 * boundary. One request at a time; the worker exits when its socket closes.
 *
 * Wire form: lib/ipc.h messages.
 *   LDA_WORKER_REQ  master -> worker, reqid chosen by master:
 *                   u32 argc (1..LDA_WORKER_ARGS_MAX), argc strings (argv,
 *                   argv[0] ignored), str working directory ("" = "/");
 *                   the message content rides along as the descriptor.
 *   LDA_WORKER_DONE worker -> master, same reqid: i64 status (sysexits.h
 *                   code, 0 delivered), str "<dsn> <text>" when it failed,
 *                   at most LDA_WORKER_OUTPUT_MAX bytes (raw: master
 *                   escapes them before any log).
 * A malformed request ends the worker (master then defers that delivery).
 */
#ifndef POSTERN_LDA_WORKER_H
#define POSTERN_LDA_WORKER_H

#define LDA_WORKER_FLAG "--worker"  /* the only argument of worker mode */
#define LDA_WORKER_REQ 1            /* message types, see above */
#define LDA_WORKER_DONE 2
#define LDA_WORKER_ARGS_MAX 64      /* largest argc in a request */
#define LDA_WORKER_OUTPUT_MAX 512   /* output bytes returned */

#include "lib/buf.h"

/* One delivery: argv as the command line, the message on in_fd (owned by
 * the caller). Appends the failure line to out (bounded by out's max) and
 * returns the exit code. Must not exit and must free what it allocates. */
typedef int lda_worker_serve_fn(int argc, char **argv, int in_fd, struct buf *out);

/* Serve requests on fd 0 until it closes, each in this process (after a
 * chdir to the request's directory). Returns the process exit code: 0 at
 * end of input, non-zero when started as root or on a malformed request.
 * Blocks. */
int lda_worker_main(lda_worker_serve_fn *serve);

#endif
