"""Long-lived postern-lda workers (mta/master/master_ldaw.c): one exec serves
many deliveries, runs as the recipient and never as root, and a delivery it
cannot finish in command_time_limit is killed and deferred, then retried."""
import fcntl
import os
import pwd
import smtplib

import pytest

from tests.pylib import runas, util


def send(inst, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", inst.port) as s:
        s.sendmail("sender@remote.test", [rcpt],
                   "From: sender@remote.test\r\nSubject: %s\r\n\r\nbody\r\n" % subject)


def proc_status(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return line.split()[1:]
    except OSError:
        return None
    return None


def workers(inst):
    """PIDs of the postern-lda workers of this instance's master."""
    masters = set(inst.pids("postern"))
    found = []
    for pid, argv in util.processes():
        ppid = proc_status(pid, "PPid")
        if len(argv) >= 2 and os.path.basename(argv[0]) == b"postern-lda" and \
                argv[1] == b"--worker" and ppid and int(ppid[0]) in masters:
            found.append(pid)
    return found


def test_one_worker_serves_many_as_the_recipient(postern_factory):
    if os.geteuid() != 0:
        pytest.fail("needs root: master must run as root to switch to the recipient (CI runs as root)")
    inst = postern_factory(as_root=True).start()
    uid = pwd.getpwnam(runas.TEST_USER).pw_uid
    seen = set()
    fds = []
    for i in range(6):
        send(inst, "alice@example.test", "reuse %d" % i)
        inst.wait_delivered("alice", i + 1)
        # the queue logs the result once the worker has answered (and so
        # has finished the delivery)
        util.wait_for(lambda: inst.log_text().count("status=sent") >= i + 1, 30, "sent %d" % i)
        seen.update(workers(inst))
        # deliveries run inside the worker: none may leave a descriptor open
        fds.append([sorted(os.listdir("/proc/%d/fd" % w)) for w in workers(inst)])
    # sent one at a time: the first worker took every delivery
    assert len(seen) == 1, seen
    assert all(f == fds[0] for f in fds), fds
    pid = seen.pop()
    assert proc_status(pid, "Uid") == [str(uid)] * 4
    assert proc_status(pid, "Gid")[0] != "0"
    for name in os.listdir(os.path.join(inst.maildir("alice"), "new")):
        assert os.stat(os.path.join(inst.maildir("alice"), "new", name)).st_uid == uid
    assert "delivered to maildir" in inst.log_text()


def test_time_limit_kills_the_worker_and_defers(postern_factory):
    inst = postern_factory(main_cf={
        "virtual_mailbox_maps": "inline:{ alice@example.test=alice/Maildir/, bob@example.test=bob.mbox }",
        "command_time_limit": "2s",
    })
    mbox = os.path.join(inst.mail, "bob.mbox")
    with open(mbox, "wb"):
        pass
    os.chmod(mbox, 0o600)
    if inst.run_as:
        pw = pwd.getpwnam(inst.run_as)
        os.chown(mbox, pw.pw_uid, pw.pw_gid)
    inst.start()
    holder = open(mbox, "r+b")
    try:
        # the mailbox is locked: the delivery waits on the lock until the
        # time limit kills the worker and its delivery process
        fcntl.lockf(holder, fcntl.LOCK_EX)
        send(inst, "bob@example.test", "locked out")
        util.wait_for(lambda: "command time limit exceeded" in inst.log_text(), 30, "time limit")
        log = inst.log_text()
        assert "to=<bob@example.test>" in log and "status=deferred" in log
        assert os.path.getsize(mbox) == 0
        # the killed worker is gone (reaped), not left behind
        util.wait_for(lambda: not workers(inst), 10, "killed worker reaped")
    finally:
        fcntl.lockf(holder, fcntl.LOCK_UN)
        holder.close()
    # the retry (backoff 1-2 s) delivers it, once
    util.wait_for(lambda: b"Subject: locked out" in open(mbox, "rb").read(), 30, "retry delivered")
    util.wait_for(lambda: "to=<bob@example.test>" in inst.log_text() and
                  "status=sent" in inst.log_text(), 30, "sent line")
    data = open(mbox, "rb").read()
    assert data.count(b"Subject: locked out") == 1
    assert data.startswith(b"From sender@remote.test ")
    # and other deliveries were never held up by it
    send(inst, "alice@example.test", "after")
    inst.wait_delivered("alice", 1)


def test_killed_worker_is_replaced(postern):
    postern_inst = postern
    send(postern_inst, "alice@example.test", "one")
    postern_inst.wait_delivered("alice", 1)
    first = util.wait_for(lambda: workers(postern_inst), 10, "a worker")
    for pid in first:
        os.kill(pid, 9)
    util.wait_for(lambda: not set(workers(postern_inst)) & set(first), 10, "worker gone")
    send(postern_inst, "alice@example.test", "two")
    msgs = postern_inst.wait_delivered("alice", 2)
    assert sum(b"Subject: two" in m for m in msgs) == 1
    assert not set(workers(postern_inst)) & set(first)
