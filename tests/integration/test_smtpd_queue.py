"""smtpd and the queue channel: 250 only after IPC_Q_COMMITTED, queue
errors become the client's reply, other sessions keep running while one
waits, and abandoned transactions are aborted.

tests/integration/fake_queue.py stands in for postern-queue: it was written
before the real queue existed, and it can fail or stall on purpose, which
the real one cannot be made to do on cue.
"""
import time

from tests.integration.fake_queue import Client, smtpd_factory  # noqa: F401
from tests.integration.fake_queue import pack, Q_COMMITTED
from tests.pylib import util


def ready(s):
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@client.test>")
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    return c


def test_open_error_becomes_the_reply(smtpd_factory):
    s = smtpd_factory()
    s.queue.open_error = "452 4.3.1 Insufficient system storage"
    c = ready(s)
    assert c.cmd("DATA")[1][0] == "452 4.3.1 Insufficient system storage"
    s.queue.open_error = None
    # the failed transaction is gone; a new one works
    assert c.cmd("DATA")[1][0] == "503 5.5.1 Error: need RCPT command"
    c.cmd("MAIL FROM:<a@client.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: x\r\n\r\n.\r\n")
    assert c.reply()[0] == 250


def test_commit_error_becomes_the_reply(smtpd_factory):
    s = smtpd_factory()
    s.queue.commit_error = "451 4.3.0 Error: queue file write error"
    c = ready(s)
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: x\r\n\r\n.\r\n")
    assert c.reply()[1][0] == "451 4.3.0 Error: queue file write error"
    assert c.cmd("NOOP")[0] == 250
    # a garbage reply text from the queue is not passed on
    s.queue.commit_error = "250 ok\r\nforged"
    c.cmd("MAIL FROM:<a@client.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    c.cmd("DATA")
    c.send("Subject: y\r\n\r\n.\r\n")
    assert c.reply()[1][0] == "451 4.3.0 Error: queue file write error"


def test_250_waits_for_commit_and_others_keep_running(smtpd_factory):
    s = smtpd_factory()
    s.queue.hold_commits = True
    a = ready(s)
    assert a.cmd("DATA")[0] == 354
    a.send("Subject: held\r\n\r\n.\r\n")
    util.wait_for(lambda: s.queue.held, 5, "commit request")
    a.sock.settimeout(0.3)
    try:
        early = a.sock.recv(100)
    except OSError:
        early = b""
    assert early == b""  # no 250 before the queue says so
    b = Client(s.port)
    b.reply()
    assert b.cmd("EHLO other.test")[0] == 250
    assert b.cmd("NOOP")[0] == 250
    s.queue.release()
    a.sock.settimeout(10)
    code, lines = a.reply()
    assert code == 250 and "queued as" in lines[0]


def test_disconnect_mid_data_aborts(smtpd_factory):
    s = smtpd_factory()
    c = ready(s)
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: cut\r\n\r\npartial")
    time.sleep(0.1)
    c.close()
    util.wait_for(lambda: s.queue.aborts, 5, "abort")
    assert s.queue.committed() == []
    s.wait_log("lost connection after DATA (")


def test_late_opened_is_given_back(smtpd_factory):
    s = smtpd_factory()
    s.queue.hold_opens = True
    c = ready(s)
    c.send("DATA\r\n")
    util.wait_for(lambda: s.queue.held_opens, 5, "open request")
    c.close()
    time.sleep(0.2)
    qids = s.queue.release_opens()
    util.wait_for(lambda: s.queue.aborts == qids, 5, "abort of the late file")
    s.wait_log("lost connection after DATA")
    assert s.queue.committed() == []


def test_late_committed_for_unknown_session_is_dropped(smtpd_factory):
    s = smtpd_factory()
    s.queue.send_raw(pack(Q_COMMITTED, 12345, "4FFFFFFFFF"))
    c = ready(s)
    assert c.cmd("NOOP")[0] == 250


def test_queue_gone(smtpd_factory):
    s = smtpd_factory()
    s.queue.hold_commits = True
    a = ready(s)
    assert a.cmd("DATA")[0] == 354
    a.send("Subject: x\r\n\r\n.\r\n")
    util.wait_for(lambda: s.queue.held, 5, "commit request")
    s.queue.close()
    assert a.reply()[1][0] == "451 4.3.0 Error: queue file write error"
    s.wait_log("queue channel closed")
    # between transactions now, and no queue: told so and closed
    assert a.reply()[1][0] == "421 4.3.2 postern.test Service shutting down, closing transmission channel"
    assert a.closed()
    # no sessions left: smtpd exits so master can start a fresh one
    util.wait_for(lambda: s.proc.poll() is not None, 10, "smtpd exit")
    assert s.proc.returncode == 0


def test_malformed_queue_message_closes_the_channel(smtpd_factory):
    s = smtpd_factory()
    a = ready(s)
    s.queue.send_raw(pack(Q_COMMITTED, 1))  # no qid field
    s.wait_log("malformed message type 6 from the queue")
    assert a.cmd("DATA")[1][0] == "451 4.3.0 Error: queue file write error"


def test_sigterm_drains(smtpd_factory):
    s = smtpd_factory()
    idle = Client(s.port)
    idle.reply()
    busy = ready(s)
    s.proc.send_signal(15)
    assert idle.reply()[1][0].startswith("421 4.3.2 postern.test Service shutting down")
    assert idle.closed()
    # the transaction in progress may finish
    assert busy.cmd("DATA")[0] == 354
    busy.send("Subject: last\r\n\r\n.\r\n")
    assert busy.reply()[0] == 250
    assert busy.reply()[0] == 421
    util.wait_for(lambda: s.proc.poll() is not None, 10, "smtpd exit")
    assert len(s.queue.committed()) == 1


def test_open_error_at_bdat_still_reads_the_chunk(smtpd_factory):
    s = smtpd_factory()
    s.queue.open_error = "452 4.3.1 Insufficient system storage"
    c = ready(s)
    c.send(b"BDAT 20 LAST\r\nRSET\r\nQUIT\r\nNOOP\r\nXX")
    assert c.reply()[1][0] == "452 4.3.1 Insufficient system storage"
    assert c.cmd("NOOP")[0] == 250  # the chunk's bytes were not taken as commands
    assert s.queue.messages == {}
