"""postern-queue on its own: accepting messages from smtpd channels.

Why stand-ins: these tests start build/bin/postern-queue without master or
smtpd, so that the queue's contract can be checked exactly at its IPC
boundary (what is acked when, what a hostile smtpd can and cannot do). The
test plays master on fd 3 (it hands over smtpd channels with IPC_M_CLIENT
and answers IPC_M_DELIVER with a small Python stand-in for postern-lda that
writes a Maildir file) and plays smtpd on those channels. The real master,
smtpd and postern-lda are exercised together by the end-to-end tests.
"""
import os
import re
import signal
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from tests.pylib import ipc  # noqa: E402
from tests.pylib.util import BIN, wait_for  # noqa: E402

BODY = "Received: from client.test\r\nSubject: hello\r\nMessage-ID: <%s@test>\r\n\r\nbody %s\r\n"


@pytest.fixture
def q(tmp_path):
    h = ipc.QueueHarness(tmp_path, BIN).start()
    yield h
    rc = h.stop()
    assert rc == 0, h.output()
    assert h.bad_requests == []


def test_accept_and_deliver_to_virtual_maildir(q):
    s = q.smtpd()
    body = BODY % ("m1", "one")
    qid, mtype, r = s.send_message("alice@example.org", ["ann@virt.test"], body, msgid="<m1@test>")
    assert mtype == ipc.Q_COMMITTED, r.data
    assert r.str() == qid
    assert len(qid) == 14 and qid == qid.upper()
    msgs = wait_for(lambda: q.maildir("ann"), what="delivery")
    assert msgs == [body.encode()]
    wait_for(lambda: "%s: removed" % qid in q.logtext(), what="removed line")
    log = q.logtext()
    assert "%s: from=<alice@example.org>, size=%d, nrcpt=1 (queue active)" % (qid, len(body)) in log
    line = [l for l in log.splitlines() if "%s: to=<ann@virt.test>" % qid in l][0]
    assert ", relay=virtual, delay=" in line and ", delays=" in line
    assert line.endswith(", dsn=2.0.0, status=sent (delivered to maildir)")
    # the LDA was asked exactly as documented
    kind, args, _env = q.deliveries[0]
    assert kind == ipc.MD_LDA
    assert args[:-2] == ["postern-lda", "-f", "alice@example.org", "-a", "ann@virt.test",
                         "-r", "ann@virt.test", "-d", "ann@virt.test",
                         "--maildir", os.path.join(q.vmail, "ann/"), "-e"]
    # the same delivery ID on every attempt: arrival seconds, queue ID,
    # recipient index, hash of the target
    assert args[-2] == "--delivery-id"
    assert re.fullmatch(r"\d+\.%s_0_[0-9A-F]{8}" % qid, args[-1]), args[-1]
    wait_for(lambda: not q.files("active") and not q.files("content"), what="queue empty")


def test_committed_means_on_disk(q):
    """At IPC_Q_COMMITTED the envelope and content exist (here the
    recipient is remote, so the message stays queued)."""
    s = q.smtpd()
    q.hold_deliveries.clear()
    qid, mtype, _ = s.send_message("a@example.org", ["x@remote.example"], BODY % ("m2", "two"))
    assert mtype == ipc.Q_COMMITTED
    assert os.path.exists(os.path.join(q.qdir, "content", qid))
    assert any(os.path.exists(os.path.join(q.qdir, d, qid)) for d in ("active", "deferred"))
    wait_for(lambda: qid in q.files("deferred"), what="deferred")
    assert "status=deferred (no outbound transport yet)" in q.logtext()
    q.hold_deliveries.set()


def test_many_sessions_share_commits(q):
    """20 channels, 200 messages: all acked, each delivered once."""
    n_ch, per = 20, 10
    acked = []
    lock = threading.Lock()

    def run(i):
        s = q.smtpd("smtpd[%d]" % i)
        for k in range(per):
            tag = "c%d-%d" % (i, k)
            qid, mtype, _ = s.send_message("a@example.org", ["bob@virt.test"], BODY % (tag, tag))
            assert mtype == ipc.Q_COMMITTED
            with lock:
                acked.append(tag)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_ch)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acked) == n_ch * per
    wait_for(lambda: len(q.maildir("bob")) == n_ch * per, what="all delivered")
    bodies = q.maildir("bob")
    for tag in acked:
        assert sum(1 for b in bodies if b.endswith(("body %s\r\n" % tag).encode())) == 1


def test_abort_removes_content(q):
    s = q.smtpd()
    qid, fd = s.open()
    os.write(fd, b"partial")
    os.close(fd)
    assert qid in q.files("content")
    s.request(ipc.Q_ABORT, ipc.Writer().str(qid).bytes())
    wait_for(lambda: qid not in q.files("content"), what="content removed")


def test_size_mismatch_is_refused(q):
    s = q.smtpd()
    qid, fd = s.open()
    os.write(fd, b"12345")
    os.close(fd)
    s.sender(qid, "a@example.org")
    s.rcpt(qid, "ann@virt.test")
    rid = s.commit_request(qid, 999)
    mtype, reqid, r, _ = s.reply()
    assert (mtype, reqid) == (ipc.Q_ERROR, rid)
    assert r.str() == qid and r.str().startswith("451 4.3.0")
    assert qid not in q.files("content")
    assert not q.files("active")


def expect_closed(s, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            m = s.reply(timeout=timeout)
        except ConnectionResetError:
            return
        if m is None:
            return
    raise AssertionError("channel still open")


def test_hostile_smtpd_cannot_touch_other_messages(q):
    victim, evil = q.smtpd("smtpd[1]"), q.smtpd("smtpd[2]")
    vqid, vfd = victim.open()
    os.write(vfd, b"mine")
    os.close(vfd)
    victim.sender(vqid, "a@example.org")
    # the other channel tries to add a recipient to the victim's message
    evil.rcpt(vqid, "ann@virt.test")
    expect_closed(evil)
    assert "IPC_Q_RCPT for a queue ID this channel does not own" in q.logtext()
    # the victim's transaction is intact
    victim.rcpt(vqid, "bob@virt.test")
    rid = victim.commit_request(vqid, 4)
    mtype, reqid, _r, _ = victim.reply()
    assert (mtype, reqid) == (ipc.Q_COMMITTED, rid)
    wait_for(lambda: q.maildir("bob") == [b"mine"], what="victim delivered")
    assert q.maildir("ann") == []


@pytest.mark.parametrize("payload, why", [
    (ipc.encode(ipc.Q_SENDER, 1, b"\x05\x00\x00\x00ab"), "malformed IPC_Q_SENDER"),
    (ipc.encode(ipc.M_DELIVERED, 1, b""), "unexpected message type 102"),
    (b"\x00" * 5, "short packet"),
    (ipc.encode(ipc.Q_RCPT, 1, ipc.Writer().str("../../etc").str("a@b").str("").u32(0).bytes()),
     "does not own"),
])
def test_malformed_messages_close_the_channel(q, payload, why):
    s = q.smtpd()
    qid, fd = s.open()
    os.close(fd)
    s.sock.send(payload)
    expect_closed(s)
    wait_for(lambda: why in q.logtext(), what=why)
    # its uncommitted content is discarded with it
    wait_for(lambda: qid not in q.files("content"), what="content discarded")


def test_control_characters_and_too_many_recipients(tmp_path):
    h = ipc.QueueHarness(tmp_path, BIN, "smtpd_recipient_limit = 3\n").start()
    try:
        s = h.smtpd()
        qid, fd = s.open()
        os.close(fd)
        s.sender(qid, "a@example.org")
        s.rcpt(qid, "bad\r\nRCPT@virt.test")
        expect_closed(s)
        assert "malformed IPC_Q_RCPT" in h.logtext()
        s = h.smtpd("smtpd[9]")
        qid, fd = s.open()
        os.close(fd)
        s.sender(qid, "a@example.org")
        for i in range(4):
            s.rcpt(qid, "r%d@virt.test" % i)
        expect_closed(s)
        assert "too many recipients" in h.logtext()
    finally:
        assert h.stop() == 0, h.output()


def test_closed_channel_discards_uncommitted(q):
    s = q.smtpd()
    qid, fd = s.open()
    os.close(fd)
    s.close()
    wait_for(lambda: qid not in q.files("content"), what="content discarded")


def test_ids_sort_by_arrival(q):
    s = q.smtpd()
    ids = [s.open()[0] for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50


def test_descriptor_from_smtpd_closes_channel(q):
    """smtpd never sends the queue a descriptor: one that does is cut off."""
    s = q.smtpd()
    r, w = os.pipe()
    ipc.send(s.sock, ipc.Q_OPEN, 1, b"", fd=r)
    os.close(r)
    os.close(w)
    expect_closed(s)
    wait_for(lambda: "unexpected descriptor" in q.logtext(), what="logged")
