/*
 * smtpd_submit.h - local submission: the smtpd "submit" service that takes
 * messages from sendmail(1) on $queue_directory/public/submit (protocol:
 * IPC_S_* in mta/ipc/ipc_proto.h) and queues them through the same queue
 * IPC as SMTP sessions, after non_smtpd_milters.
 *
 * Tests: tests/integration/test_submit.py.
 */
#ifndef POSTERN_SMTPD_SUBMIT_H
#define POSTERN_SMTPD_SUBMIT_H

#include "mta/smtpd/smtpd_session.h"

/* Serve submissions on the listening unix socket listen_fd (taken), with
 * queue_fd (taken) as the queue channel. The listener is put in
 * srv->listeners (so draining stops it); each submission counts in
 * srv->n_sessions until it ends. Never blocks; calls back nothing. */
void smtpd_submit_init(struct smtpd_server *srv, int queue_fd, int listen_fd);

#endif
