"""Bad input gets a clear SMTP reply, and nothing is forged, lost or
relayed (issue point 6), against postern-smtpd with
tests/integration/fake_queue.py on its queue channel (the stand-in was
written before the real queue existed; it also shows exactly what smtpd
handed over, so a forged second message would be seen here).
"""
import os
import socket
import time

import pytest

from tests.integration.fake_queue import Client, smtpd_factory  # noqa: F401
from tests.pylib import util


def session(s, ehlo=True, source="127.0.0.1"):
    c = Client(s.port, source=source)
    assert c.reply()[0] == 220
    if ehlo:
        assert c.cmd("EHLO client.test")[0] == 250
    return c


def start_data(c, rcpt="alice@example.test"):
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    assert c.cmd("DATA")[0] == 354


SMUGGLE_ENDS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r.\r"]


@pytest.mark.parametrize("fake_end", SMUGGLE_ENDS, ids=[repr(e) for e in SMUGGLE_ENDS])
def test_smuggling_never_ends_data(smtpd_factory, fake_end):
    s = smtpd_factory()
    c = session(s)
    start_data(c)
    forged = (b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
              b"Subject: forged\r\n\r\nforged body\r\n")
    c.send(b"Subject: real\r\n\r\nreal body" + fake_end + forged + b".\r\n")
    code, lines = c.reply()
    assert code == 250, lines
    assert c.cmd("QUIT")[0] == 221
    ms = util.wait_for(lambda: s.queue.committed(), 10, "commit")
    time.sleep(0.2)  # a forged second message would have been committed by now
    assert len(s.queue.committed()) == 1
    m = ms[0]
    assert [r[0] for r in m.rcpts] == ["alice@example.test"]
    assert b"MAIL FROM:<ceo@example.test>" in m.content()  # just text
    assert len(s.queue.messages) == 1


def test_bare_lf_reject_mode(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_forbid_bare_newline": "reject"})
    c = session(s)
    start_data(c)
    c.send(b"Subject: x\r\n\r\nline with bare lf\nmore\r\n.\r\n")
    assert c.reply()[1][0] == "550 5.5.2 postern.test Error: bare <LF> received"
    assert s.queue.committed() == []
    util.wait_for(lambda: s.queue.aborts, 5, "abort")
    # a command ending in a bare LF is refused too
    c.send(b"NOOP\n")
    assert c.reply()[0] == 550
    assert c.cmd("NOOP")[0] == 250


def test_bare_lf_normalised_in_content(smtpd_factory):
    s = smtpd_factory()
    c = session(s)
    start_data(c)
    c.send(b"Subject: x\n\nline one\nline two\r\n.\r\n")
    assert c.reply()[0] == 250
    m = util.wait_for(lambda: s.queue.committed(), 5, "commit")[0]
    assert m.content().endswith(b"Subject: x\r\n\r\nline one\r\nline two\r\n")


def test_long_command_line(smtpd_factory):
    s = smtpd_factory()
    c = session(s)
    code, lines = c.cmd("NOOP " + "x" * 5000)
    assert lines[0] == "500 5.5.0 Error: line too long"
    assert c.cmd("NOOP")[0] == 250
    # exactly at the limit (2048 with CRLF) is fine
    assert c.cmd("NOOP " + "y" * (2048 - 7))[0] == 250


def test_long_data_line_kept_whole(smtpd_factory):
    s = smtpd_factory()
    c = session(s)
    start_data(c)
    long_line = b"z" * 5000
    c.send(b"Subject: long\r\n\r\n" + long_line + b"\r\n.\r\n")
    assert c.reply()[0] == 250
    m = util.wait_for(lambda: s.queue.committed(), 5, "commit")[0]
    assert m.content().endswith(long_line + b"\r\n")


def test_overlong_addresses(smtpd_factory):
    s = smtpd_factory()
    c = session(s)
    assert c.cmd("MAIL FROM:<%s@client.test>" % ("l" * 65))[1][0] == "501 5.1.7 Bad sender address syntax"
    assert c.cmd("MAIL FROM:<a@%s.test>" % ("d" * 300))[0] == 501
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<%s@example.test>" % ("l" * 65))[1][0] == "501 5.1.3 Bad recipient address syntax"
    assert c.cmd("RCPT TO:<alice@%s>" % ".".join(["d" * 60] * 5))[0] == 501


def test_recipient_limit(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_recipient_limit": "2",
                               "virtual_mailbox_maps": "inline:{ a@example.test=a/, b@example.test=b/, c@example.test=c/ }"})
    c = session(s)
    c.cmd("MAIL FROM:<x@client.test>")
    assert c.cmd("RCPT TO:<a@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<b@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<c@example.test>")[1][0] == "452 4.5.3 Error: too many recipients"
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: x\r\n\r\n.\r\n")
    assert c.reply()[0] == 250
    m = util.wait_for(lambda: s.queue.committed(), 5, "commit")[0]
    assert [r[0] for r in m.rcpts] == ["a@example.test", "b@example.test"]


def test_size_limits(smtpd_factory):
    s = smtpd_factory(main_cf={"message_size_limit": "2000"})
    c = session(s)
    assert c.cmd("MAIL FROM:<a@client.test> SIZE=2001")[1][0] == "552 5.3.4 Message size exceeds fixed limit"
    s.wait_log("NOQUEUE: reject: MAIL from localhost[127.0.0.1]: 552 5.3.4 Message size exceeds fixed limit;")
    assert c.cmd("MAIL FROM:<a@client.test> SIZE=2000")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    # the whole oversized message is read, then refused
    c.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 100 + b".\r\n")
    assert c.reply()[1][0] == "552 5.3.4 Error: message file too big"
    assert c.cmd("NOOP")[0] == 250  # the terminator was found, the session goes on
    assert s.queue.committed() == []
    util.wait_for(lambda: len(s.queue.aborts) == 1, 5, "abort")


def test_nul_bytes(smtpd_factory):
    s = smtpd_factory()
    c = session(s)
    c.send(b"NOOP \x00x\r\n")
    assert c.reply()[0] == 500
    c.send(b"MAIL FROM:<a\x00b@client.test>\r\n")
    assert c.reply()[0] == 500
    start_data(c)
    c.send(b"Subject: nul\r\n\r\na\x00b\r\n.\r\n")
    assert c.reply()[1][0] == "550 5.6.0 Error: message content contains NUL characters"
    assert s.queue.committed() == []


def test_commands_out_of_order(smtpd_factory):
    s = smtpd_factory()
    c = session(s)
    assert c.cmd("RCPT TO:<alice@example.test>")[1][0] == "503 5.5.1 Error: need MAIL command"
    assert c.cmd("DATA")[1][0] == "503 5.5.1 Error: need RCPT command"
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("MAIL FROM:<a@client.test>")[1][0] == "503 5.5.1 Error: nested MAIL command"
    assert c.cmd("RCPT TO:<nobody@example.test>")[0] == 550
    assert c.cmd("DATA")[1][0] == "554 5.5.1 Error: no valid recipients"


def test_error_limit_disconnects(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_hard_error_limit": "3"})
    c = session(s)
    for _ in range(3):
        assert c.cmd("BOGUS")[1][0] == "502 5.5.2 Error: command not recognized"
    assert c.reply()[1][0] == "421 4.7.0 postern.test Error: too many errors"
    assert c.closed()
    s.wait_log("too many errors after UNKNOWN from localhost[127.0.0.1]")
    s.wait_log("disconnect from localhost[127.0.0.1] ehlo=1 unknown=0/3 commands=1/4")


def test_pipelining_before_ehlo_is_refused(smtpd_factory):
    s = smtpd_factory()
    c = session(s, ehlo=False)
    c.send("HELO client.test\r\nMAIL FROM:<a@client.test>\r\n")
    assert c.reply()[1][0] == "554 5.5.0 Error: SMTP protocol synchronization"
    assert c.closed()
    s.wait_log("improper command pipelining after HELO from localhost[127.0.0.1]: MAIL FROM:<a@client.test>\\015\\012")


def test_pipelining_after_data_is_refused(smtpd_factory):
    s = smtpd_factory()
    c = session(s)
    c.send("MAIL FROM:<a@client.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: early\r\n")
    assert c.reply()[0] == 250
    assert c.reply()[0] == 250
    assert c.reply()[1][0] == "554 5.5.0 Error: SMTP protocol synchronization"
    assert c.closed()
    assert s.queue.messages == {}


def test_pipelining_noted_when_allowed(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_forbid_unauth_pipelining": "no"})
    c = session(s, ehlo=False)
    c.send("HELO client.test\r\nNOOP\r\n")
    assert c.reply()[0] == 250
    assert c.reply()[0] == 250
    s.wait_log("improper command pipelining after HELO from localhost[127.0.0.1]: NOOP")


def test_idle_timeout(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_timeout": "1s"})
    c = session(s)
    t0 = time.monotonic()
    assert c.reply()[1][0] == "421 4.4.2 postern.test Error: timeout exceeded"
    assert c.closed()
    assert time.monotonic() - t0 < 5
    s.wait_log("timeout after EHLO from localhost[127.0.0.1]")


def test_trickled_command_hits_the_command_deadline(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_timeout": "1s"})
    c = session(s)
    t0 = time.monotonic()
    closed = False
    for ch in "NOOP this arrives one byte at a time":
        try:
            c.send(ch)
        except OSError:
            closed = True
            break
        time.sleep(0.2)
        if time.monotonic() - t0 > 6:
            break
    assert closed or c.closed(timeout=3)
    assert "421 4.4.2" in c.buf.decode() or closed
    assert time.monotonic() - t0 < 6


def test_trickled_data_hits_the_minimum_rate(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_timeout": "2s", "smtpd_data_min_rate": "1000"})
    c = session(s)
    start_data(c)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 10:
            c.send(b"x")
            time.sleep(0.3)
    except OSError:
        pass
    assert c.closed(timeout=5)
    assert time.monotonic() - t0 < 8
    s.wait_log("timeout after DATA (")
    assert s.queue.committed() == []
    util.wait_for(lambda: s.queue.aborts, 5, "abort")


def test_shell_metacharacters_are_bytes(smtpd_factory):
    import pathlib
    s = smtpd_factory()
    c = session(s)
    marker = pathlib.Path("/tmp/pw%d" % os.getpid())  # short: a local part holds 64
    assert c.cmd("MAIL FROM:<;touch %s;>" % marker)[0] == 501  # CVE-2020-7247 shape
    sender = '"|touch %s"@client.test' % marker
    assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: $(touch %s) `id`\r\n\r\n.\r\n" % marker)
    assert c.reply()[0] == 250
    m = util.wait_for(lambda: s.queue.committed(), 5, "commit")[0]
    assert m.sender == sender
    assert not marker.exists()


def test_connection_count_limit(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_client_connection_count_limit": "2"})
    a = session(s, ehlo=False, source="127.0.0.2")
    b = session(s, ehlo=False, source="127.0.0.2")
    c = Client(s.port, source="127.0.0.2")
    assert c.reply()[1][0] == "421 4.7.0 postern.test Error: too many connections from 127.0.0.2"
    assert c.closed()
    s.wait_log("warning: Connection concurrency limit exceeded: 3 from unknown[127.0.0.2] for service smtp")
    # mynetworks is exempt (Postfix smtpd_client_event_limit_exceptions)
    d = [session(s, ehlo=False) for _ in range(3)]
    assert all(x.cmd("NOOP")[0] == 250 for x in d)
    a.cmd("QUIT")
    assert a.closed()
    e = util.wait_for(lambda: _try_session(s, "127.0.0.2"), 5, "a free slot")
    assert e.cmd("NOOP")[0] == 250
    b.close()


def _try_session(s, source):
    c = Client(s.port, source=source)
    code, _ = c.reply()
    if code == 220:
        return c
    c.close()
    return None


def test_http_request_is_dropped(smtpd_factory):
    s = smtpd_factory()
    c = session(s, ehlo=False)
    c.send("GET / HTTP/1.0\r\n")
    assert c.reply()[1][0] == "221 2.7.0 Error: I can break rules, too. Goodbye."
    assert c.closed()
    s.wait_log("warning: non-SMTP command from localhost[127.0.0.1]: GET / HTTP/1.0")


def test_many_concurrent_idle_sessions(smtpd_factory):
    s = smtpd_factory()
    socks = []
    for _ in range(200):
        socks.append(socket.create_connection(("127.0.0.1", s.port)))
    for so in socks:
        f = so.makefile("rb")
        assert f.readline().startswith(b"220 ")
    c = session(s)
    assert c.cmd("NOOP")[0] == 250
    for so in socks:
        so.close()
    assert s.proc.poll() is None


def test_talking_before_the_greeting(smtpd_factory):
    import signal
    s = smtpd_factory()
    # smtpd is stopped while the client connects and talks, so its bytes are
    # surely there before the greeting could be (the kernel accepts for it)
    s.proc.send_signal(signal.SIGSTOP)
    try:
        raw = socket.create_connection(("127.0.0.1", s.port))
        raw.sendall(b"EHLO eager.test\r\n")
        time.sleep(0.1)
    finally:
        s.proc.send_signal(signal.SIGCONT)
    data = b""
    raw.settimeout(10)
    while True:
        d = raw.recv(4096)
        if not d:
            break
        data += d
    assert data == b"554 5.5.0 Error: SMTP protocol synchronization\r\n"
    s.wait_log("improper command pipelining after CONNECT from localhost[127.0.0.1]: EHLO eager.test\\015\\012")


def test_mail_loop_is_refused(smtpd_factory):
    s = smtpd_factory(main_cf={"hopcount_limit": "5"})
    c = session(s)
    start_data(c)
    c.send(b"".join(b"Received: from hop%d.test\r\n" % i for i in range(5)) + b"Subject: loop\r\n\r\n.\r\n")
    assert c.reply()[1][0] == "554 5.4.6 Error: too many hops"
    start_data(c)
    c.send(b"".join(b"Received: from hop%d.test\r\n" % i for i in range(4)) + b"Subject: ok\r\n\r\n.\r\n")
    assert c.reply()[0] == 250
    assert len(util.wait_for(lambda: s.queue.committed(), 5, "commit")) == 1


def test_pipelined_burst_replies_in_order(smtpd_factory):
    s = smtpd_factory()
    c = session(s)
    # (rejected recipients would count as errors, and RSETs past
    # smtpd_junk_command_limit too: 20 errors end the session)
    burst = "".join("MAIL FROM:<a%d@client.test>\r\nRCPT TO:<alice@example.test>\r\n"
                    "RCPT TO:<bob@example.test>\r\nRSET\r\n" % i for i in range(95))
    burst += "MAIL FROM:<x@client.test>\r\n" + "RCPT TO:<alice@example.test>\r\n" * 500
    c.send(burst)
    codes = [c.reply()[0] for _ in range(95 * 4 + 501)]
    assert codes == [250, 250, 250, 250] * 95 + [250] * 501
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: burst\r\n\r\n.\r\n")
    assert c.reply()[0] == 250
    m = util.wait_for(lambda: s.queue.committed(), 5, "commit")[0]
    assert len(m.rcpts) == 500


def test_random_garbage_does_not_hurt(smtpd_factory):
    import random
    rnd = random.Random(5321)
    s = smtpd_factory(main_cf={"smtpd_forbid_unauth_pipelining": "no"})
    alphabet = b"\r\n\x00.:<>@\" \tMAILFROMRCPTTODATABDAT0123456789EHLO\xff\xc3"
    for _ in range(40):
        c = Client(s.port, timeout=5)
        c.reply()
        for _ in range(rnd.randint(1, 8)):
            chunk = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 3000)))
            try:
                c.send(chunk)
            except OSError:
                break
        c.close()
    c = session(s)
    start_data(c)
    c.send("Subject: still here\r\n\r\n.\r\n")
    assert c.reply()[0] == 250
    assert s.proc.poll() is None


def test_soft_error_limit_slows_replies(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_soft_error_limit": "2", "smtpd_error_sleep_time": "1s"})
    c = session(s)
    t0 = time.monotonic()
    assert c.cmd("BOGUS1")[0] == 502
    assert c.cmd("BOGUS2")[0] == 502
    assert time.monotonic() - t0 < 0.8  # below the limit: no delay
    t1 = time.monotonic()
    assert c.cmd("NOOP")[0] == 250
    assert c.cmd("NOOP")[0] == 250
    assert time.monotonic() - t1 >= 1.9  # each command waited a second


def test_bare_lf_exclusions_default_to_mynetworks(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_forbid_bare_newline": "reject",
                               "smtpd_forbid_bare_newline_exclusions": "$mynetworks"})
    inside = session(s)
    start_data(inside)
    inside.send(b"Subject: x\n\nbare\n.\r\n.\r\n")
    assert inside.reply()[0] == 250  # exempt: normalised (still never ended early)
    m = util.wait_for(lambda: s.queue.committed(), 5, "commit")[0]
    assert m.content().endswith(b"Subject: x\r\n\r\nbare\r\n.\r\n")
    outside = session(s, source="127.0.0.2")
    start_data(outside)
    outside.send(b"Subject: x\n\nbare\r\n.\r\n")
    assert outside.reply()[1][0] == "550 5.5.2 postern.test Error: bare <LF> received"
