"""smtpd inside the real daemon (master + queue + postern-lda): what a
forgery, a relay attempt or an oversized message leaves behind in the
mailboxes and the queue. Complements test_smtpd_hostile.py, which checks
the replies against a stand-in queue.
"""
import json
import socket
import subprocess
import time

from tests.integration.fake_queue import Client
from tests.pylib import util


def queue_empty(inst):
    r = inst.cli("queue", "--json")
    if r.returncode != 0:
        return False
    try:
        data = json.loads(r.stdout or b"[]")
    except ValueError:
        return False
    return data == [] or data == {} or (isinstance(data, dict) and not data.get("messages"))


def session(inst, source="127.0.0.1"):
    c = Client(inst.port, source=source)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    return c


def test_smuggled_message_is_not_delivered(postern):
    c = session(postern)
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: real\r\n\r\nreal body\n.\r\n"
           b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
           b"Subject: forged\r\n\r\nforged\r\n.\r\n")
    code, lines = c.reply()
    assert code == 250, lines
    assert c.cmd("QUIT")[0] == 221
    m = postern.wait_delivered("alice", 1)[0]
    assert b"MAIL FROM:<ceo@example.test>" in m and b"Subject: forged" in m
    util.wait_for(lambda: queue_empty(postern), 30, "empty queue")
    assert postern.maildir_messages("bob") == []
    assert postern.log_text().count("nrcpt=") == 1


def test_relay_tricks_leave_nothing_queued(postern):
    c = session(postern, source="127.0.0.2")
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    for rcpt in ("<victim@elsewhere.test>", "<victim%elsewhere.test@example.test>",
                 "<elsewhere.test!victim@example.test>", '<"victim@elsewhere.test"@example.test>',
                 "<@example.test:victim@elsewhere.test>", "<victim@elsewhere.test.>",
                 "<victim@[192.0.2.1]>"):
        code, lines = c.cmd("RCPT TO:%s" % rcpt)
        assert code in (501, 554), (rcpt, lines)
    assert c.cmd("DATA")[1][0] == "554 5.5.1 Error: no valid recipients"
    c.cmd("QUIT")
    postern.stop()
    assert "nrcpt=" not in postern.log_text()
    assert postern.log_text().count("Relay access denied") == 6


def test_oversized_message_leaves_no_trace(postern_factory):
    inst = postern_factory(main_cf={"message_size_limit": "3000"}).start()
    c = session(inst)
    c.cmd("MAIL FROM:<a@client.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: big\r\n\r\n" + b"y" * 5000 + b"\r\n.\r\n")
    assert c.reply()[1][0] == "552 5.3.4 Error: message file too big"
    # the same session still delivers a small one
    c.cmd("MAIL FROM:<a@client.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    c.cmd("DATA")
    c.send(b"Subject: small\r\n\r\nok\r\n.\r\n")
    assert c.reply()[0] == 250
    msgs = inst.wait_delivered("alice", 1)
    time.sleep(0.3)
    assert len(inst.maildir_messages("alice")) == 1 and b"Subject: small" in msgs[0]


def test_bdat_and_pipelining_to_maildir(postern):
    c = session(postern)
    body = b"Subject: chunks\r\n\r\nfirst\r\n.second\r\n"
    c.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<bob@example.test>\r\nBDAT %d LAST\r\n" % len(body) + body)
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 250]
    m = postern.wait_delivered("bob", 1)[0]
    assert m.endswith(b"first\n.second\n")
    assert b"by postern.test (Postern) with ESMTP id " in m


def test_smtpd_killed_is_restarted(postern):
    pids = postern.pids("postern-smtpd")
    assert pids
    import os
    import signal
    os.kill(pids[0], signal.SIGKILL)
    util.wait_for(lambda: postern.pids("postern-smtpd") and postern.pids("postern-smtpd") != pids, 20,
                  "a new smtpd")
    util.wait_for_greeting(postern.port)
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(postern.port), "--from",
                        "s@client.test", "--to", "alice@example.test"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout
    postern.wait_delivered("alice", 1)
