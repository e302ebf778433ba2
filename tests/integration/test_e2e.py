"""End to end: SMTP in -> queue -> postern-lda -> Maildir, with the real daemon."""
import smtplib
import socket
import subprocess

from tests.pylib import util


MSG = (b"From: Sender <sender@remote.test>\r\n"
       b"To: alice@example.test\r\n"
       b"Subject: hello\r\n"
       b"Message-ID: <e2e-1@remote.test>\r\n"
       b"\r\n"
       b"first line\r\n"
       b".leading dot\r\n")


def test_smtplib_to_maildir(postern):
    with smtplib.SMTP("127.0.0.1", postern.port) as s:
        code, _ = s.ehlo("client.test")
        assert code == 250
        refused = s.sendmail("sender@remote.test", ["alice@example.test"], MSG)
        assert refused == {}
    msgs = postern.wait_delivered("alice", 1)
    m = msgs[0]
    # the LDA's headers on top, then our Received header, then the message
    assert m.startswith(b"Return-Path: <sender@remote.test>\n")
    assert b"\nDelivered-To: alice@example.test\n" in m
    assert b"\nReceived: from client.test (" in m
    assert b"by postern.test (Postern) with ESMTP id " in m
    assert b"\nSubject: hello\n" in m
    assert m.endswith(b"first line\n.leading dot\n")
    assert b"\r\n" not in m
    # the queue logs status=sent after the LDA's exit: wait for that line
    log = util.wait_for(lambda: (lambda t: t if ": removed" in t else None)(postern.log_text()),
                        30, "removed")
    assert "postern/smtpd[" in log and "client=localhost[127.0.0.1]" in log
    assert "message-id=<e2e-1@remote.test>" in log
    assert "from=<sender@remote.test>, size=" in log and "nrcpt=1 (queue active)" in log
    assert "to=<alice@example.test>, relay=" in log and "status=sent" in log
    assert ": removed" in log


def test_swaks_two_recipients(postern):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(postern.port),
                        "--from", "s@remote.test", "--to", "alice@example.test,bob@example.test",
                        "--helo", "swaks.test", "--header", "Subject: two"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250 2.0.0 Ok: queued as" in r.stdout
    a = postern.wait_delivered("alice", 1)[0]
    b = postern.wait_delivered("bob", 1)[0]
    assert b"Subject: two" in a and b"Subject: two" in b
    # one recipient per copy in Delivered-To
    assert b"Delivered-To: alice@example.test" in a
    assert b"Delivered-To: bob@example.test" in b


def test_unknown_virtual_recipient_rejected(postern):
    with smtplib.SMTP("127.0.0.1", postern.port) as s:
        s.ehlo("client.test")
        s.mail("sender@remote.test")
        code, text = s.rcpt("nobody@example.test")
        assert code == 550
        assert b"5.1.1" in text
        code, _ = s.rcpt("alice@example.test")
        assert code == 250


def test_relay_denied_from_outside_mynetworks(postern):
    """127.0.0.2 is not in mynetworks (127.0.0.1/32): no relaying."""
    sock = socket.create_connection(("127.0.0.1", postern.port), source_address=("127.0.0.2", 0))
    s = smtplib.SMTP()
    s.sock = sock
    s.file = None
    code, _ = s.getreply()
    assert code == 220
    s.ehlo("outsider.test")
    s.mail("a@remote.test")
    code, text = s.rcpt("victim@elsewhere.test")
    assert code == 554 and b"5.7.1" in text and b"Relay access denied" in text
    s.quit()
