"""postern-queue's control socket: hold, release, requeue, delete, flush.

Why stand-ins: as in test_queue_accept.py, the test plays master and smtpd
around the real postern-queue (tests.pylib.ipc.QueueHarness), and talks to
$queue_directory/private/control with the same framing the postern CLI
uses (mta/queue/queue_ctl.h), so the protocol is checked on its own.
"""
import os
import pwd
import socket
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from tests.pylib import ipc  # noqa: E402
from tests.pylib.util import BIN, wait_for  # noqa: E402


@pytest.fixture
def q(tmp_path):
    h = ipc.QueueHarness(tmp_path, BIN, "queue_run_delay = 3600s\nminimal_backoff_time = 3600s\n"
                         "maximal_backoff_time = 3600s\n").start()
    yield h
    assert h.stop() == 0, h.output()


def queued(q, n=1, rcpt="x@remote.example"):
    s = q.smtpd()
    ids = []
    for i in range(n):
        qid, mtype, _ = s.send_message("a@example.org", [rcpt], "Subject: %d\r\n\r\nx\r\n" % i)
        assert mtype == ipc.Q_COMMITTED
        ids.append(qid)
    wait_for(lambda: all(i in q.files("deferred") for i in ids), what="deferred")
    return ids


def test_hold_release_requeue_delete(q):
    a, b = queued(q, 2)
    assert ipc.ctl_request(q.qdir, "hold", a) == (0, "%s: placed on hold" % a)
    assert a in q.files("hold") and a not in q.files("deferred")
    assert "%s: placed on hold" % a in q.logtext()
    n = q.logtext().count("%s: to=" % a)
    assert ipc.ctl_request(q.qdir, "release", a) == (0, "%s: released from hold" % a)
    wait_for(lambda: q.logtext().count("%s: to=" % a) > n, what="attempt after release")
    wait_for(lambda: a in q.files("deferred"), what="deferred again")
    n = q.logtext().count("%s: to=" % b)
    assert ipc.ctl_request(q.qdir, "requeue", b)[0] == 0
    wait_for(lambda: q.logtext().count("%s: to=" % b) > n, what="attempt after requeue")
    wait_for(lambda: b in q.files("deferred"), what="deferred again")
    assert ipc.ctl_request(q.qdir, "delete", b) == (0, "%s: deleted" % b)
    assert b not in q.files("deferred") and b not in q.files("content")
    assert "%s: removed" % b in q.logtext()
    status, text = ipc.ctl_request(q.qdir, "delete", b)
    assert status == 1 and text == "%s: no such message" % b
    status, text = ipc.ctl_request(q.qdir, "release", b)
    assert status == 1 and "no such message on hold" in text


def test_all_and_flush(q):
    ids = queued(q, 3)
    n = q.logtext().count("status=deferred")
    assert ipc.ctl_request(q.qdir, "flush") == (0, "flush requested")
    wait_for(lambda: q.logtext().count("status=deferred") >= n + 3, what="flushed")
    wait_for(lambda: len(q.files("deferred")) == 3, what="deferred again")
    assert ipc.ctl_request(q.qdir, "hold", "ALL") == (0, "3 messages placed on hold")
    assert sorted(q.files("hold")) == sorted(ids)
    assert ipc.ctl_request(q.qdir, "delete", "ALL") == (0, "3 messages deleted")
    assert not q.files("hold") and not q.files("content")


@pytest.mark.parametrize("verb, qid, want", [
    ("delete", "../../etc/passwd", "not a queue ID: ../../etc/passwd"),
    ("hold", "0660f5c599fad5", "not a queue ID: 0660f5c599fad5"),
    ("hold", "", "not a queue ID: "),
    ("chmod", "ALL", "unknown request: chmod"),
])
def test_bad_requests(q, verb, qid, want):
    assert ipc.ctl_request(q.qdir, verb, qid) == (1, want)


def test_malformed_request_closes_connection(q):
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(os.path.join(q.qdir, "private", "control"))
        ipc.send(s, ipc.CTL_REQUEST, 1, ipc.Writer().str("flush").bytes())  # id missing
        assert ipc.recv(s, 10) is None
    assert "malformed control request" in q.logtext()
    # the socket still serves others
    assert ipc.ctl_request(q.qdir, "flush")[0] == 0


def test_socket_is_private(q):
    st = os.stat(os.path.join(q.qdir, "private"))
    assert st.st_mode & 0o777 == 0o700
    st = os.stat(os.path.join(q.qdir, "private", "control"))
    assert st.st_mode & 0o777 == 0o600
    for d in ("content", "incoming", "active", "deferred", "hold", "corrupt"):
        assert os.stat(os.path.join(q.qdir, d)).st_mode & 0o777 == 0o700


def test_other_users_are_refused():
    """Even past the directory permissions (opened here for the test),
    SO_PEERCRED refuses a uid that is neither root nor the queue's."""
    if os.geteuid() != 0:
        pytest.fail("needs root to try as another user (CI runs as root)")
    import shutil
    import tempfile
    top = tempfile.mkdtemp(prefix="queue-ctl-", dir="/tmp")
    os.chmod(top, 0o755)
    h = ipc.QueueHarness(top, BIN).start()
    try:
        os.chmod(h.qdir, 0o755)
        os.chmod(os.path.join(h.qdir, "private"), 0o755)
        os.chmod(os.path.join(h.qdir, "private", "control"), 0o666)
        pw = pwd.getpwnam("nobody")
        code = ("import socket,sys\n"
                "s=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
                "s.connect(sys.argv[1])\n"
                "s.settimeout(10)\n"
                "sys.exit(0 if s.recv(100) == b'' else 1)\n")
        r = subprocess.run([sys.executable, "-c", code, os.path.join(h.qdir, "private", "control")],
                           preexec_fn=lambda: (os.setgid(pw.pw_gid), os.setuid(pw.pw_uid)))
        assert r.returncode == 0
        wait_for(lambda: "control connection from uid %d refused" % pw.pw_uid in h.logtext(),
                 what="refusal logged")
    finally:
        assert h.stop() == 0, h.output()
        shutil.rmtree(top)


def test_hold_and_delete_while_delivering(tmp_path):
    """With one delivery at a time: the running one finishes, a held
    message waits in hold/, a deleted one is never delivered."""
    h = ipc.QueueHarness(tmp_path, BIN, "local_destination_concurrency_limit = 1\n").start()
    try:
        h.hold_deliveries.clear()
        s = h.smtpd()
        a, _, _ = s.send_message("a@example.org", ["ann@virt.test"], "Subject: a\r\n\r\na\r\n")
        b, _, _ = s.send_message("a@example.org", ["bob@virt.test"], "Subject: b\r\n\r\nb\r\n")
        c, _, _ = s.send_message("a@example.org", ["carl@virt.test"], "Subject: c\r\n\r\nc\r\n")
        assert ipc.ctl_request(h.qdir, "hold", b)[0] == 0
        assert ipc.ctl_request(h.qdir, "delete", c)[0] == 0
        h.hold_deliveries.set()
        wait_for(lambda: "%s: removed" % a in h.logtext() and "%s: removed" % c in h.logtext(),
                 what="a delivered, c deleted")
        wait_for(lambda: b in h.files("hold"), what="b held")
        assert len(h.maildir("ann")) == 1 and h.maildir("bob") == []
        assert not os.path.exists(os.path.join(h.vmail, "carl.mbox"))
        assert ipc.ctl_request(h.qdir, "release", b)[0] == 0
        wait_for(lambda: h.maildir("bob"), what="b delivered after release")
    finally:
        assert h.stop() == 0, h.output()
