"""smtpd's log lines have Postfix's shape (a compatibility surface:
pflogsumm and log monitors read them). A scripted set of sessions is
compared line by line with tests/integration/golden/smtpd_log.ref after
normalising time, host, pid and queue IDs.

postern-smtpd runs with tests/integration/fake_queue.py on its queue channel
(written before the real queue existed; the queue's own lines are not part
of this file).
"""
import os
import re
import smtplib
import time

from tests.integration.fake_queue import Client, smtpd_factory  # noqa: F401
from tests.pylib import util

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "smtpd_log.ref")


def normalise(text, qids):
    out = []
    for line in text.splitlines():
        m = re.match(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postern/smtpd\[\d+\]: (.*)$", line)
        assert m, "not a Postfix-shaped line: %r" % line
        body = m.group(1)
        for i, q in enumerate(qids):
            body = body.replace(q, "QID%d" % (i + 1))
        out.append(body)
    return out


def test_log_lines_match_golden(smtpd_factory):
    s = smtpd_factory()
    s.wait_log("disconnect from localhost[127.0.0.1] commands=0")  # the start-up probe
    # 1. a message
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        c.ehlo("client.test")
        c.sendmail("a@client.test", ["alice@example.test"],
                   b"Subject: x\r\nMessage-ID: <golden-1@client.test>\r\n\r\nhi\r\n")
    s.wait_log("quit=1 commands=5")
    # 2. relay attempt from outside mynetworks, and an unknown user
    c = Client(s.port, source="127.0.0.2")
    c.reply()
    c.cmd("EHLO outsider.test")
    c.cmd("MAIL FROM:<spam@outsider.test>")
    c.cmd("RCPT TO:<victim@elsewhere.test>")
    c.cmd("RCPT TO:<nobody@example.test>")
    c.cmd("QUIT")
    s.wait_log("disconnect from unknown[127.0.0.2]")
    # 3. connection lost in the middle of DATA
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@client.test>")
    c.cmd("RCPT TO:<bob@example.test>")
    c.cmd("DATA")
    c.send("Subject: cut\r\n\r\n12345")
    time.sleep(0.2)
    c.close()
    s.wait_log("lost connection after DATA")
    s.wait_log("data=0/1 commands=3/4")
    # 4. pipelining before EHLO, then a web browser
    c = Client(s.port)
    c.reply()
    c.send("EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n")
    c.closed()
    s.wait_log("ehlo=0/1 commands=0/1")
    c = Client(s.port)
    c.reply()
    c.send("GET / HTTP/1.1\r\n")
    c.closed()
    s.wait_log("unknown=0/1 commands=0/1")
    qids = [m.qid for m in s.queue.messages.values()]
    got = normalise(s.log_text(), qids)
    with open(GOLDEN) as f:
        want = [ln.rstrip("\n") for ln in f if not ln.startswith("#")]
    assert got == want
