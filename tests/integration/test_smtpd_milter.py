"""smtpd_milters through the real daemon: every message received over SMTP
passes through the milter chain (tests/milter/milter_script.c, a libmilter
milter), and what the milters say shows up in the SMTP replies, the log
(Postfix's milter-reject / milter-discard / milter-hold lines) and in the
message delivered to the Maildir."""
import os
import re
import smtplib
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "milter"))

from milterlib import ScriptMilter  # noqa: E402
from fake_milter import FakeMilter  # noqa: E402
from tests.pylib import util  # noqa: E402

MSG = (b"From: Sender <s@remote.test>\r\n"
       b"To: alice@example.test\r\n"
       b"Subject: hello\r\n"
       b"X-Remove: x\r\n"
       b"Message-ID: <milter-1@remote.test>\r\n"
       b"\r\n"
       b"first line\r\n"
       b"second line\r\n")


@pytest.fixture
def milters(tmp_path):
    started = []

    def start(*args):
        m = ScriptMilter(tmp_path, args, name="m%d" % len(started))
        started.append(m)
        return m
    yield start
    for m in started:
        m.stop()


@pytest.fixture
def fakes():
    started = []

    def start(**kw):
        f = FakeMilter(**kw)
        started.append(f)
        return f
    yield start
    for f in started:
        f.stop()


def start_postern(postern_factory, *endpoints, extra=None, wait=True):
    cf = {"smtpd_milters": ", ".join(e if isinstance(e, str) else e.endpoint for e in endpoints)}
    cf.update(extra or {})
    return postern_factory(main_cf=cf).start(wait=wait)


def session(p):
    s = smtplib.SMTP("127.0.0.1", p.port, timeout=30)
    return s


def send(p, rcpts=("alice@example.test",), msg=MSG, sender="s@remote.test"):
    """One transaction; returns (rcpt replies, data reply)."""
    with session(p) as s:
        assert s.ehlo("client.test")[0] == 250
        code, text = s.mail(sender)
        assert code == 250, text
        rr = [s.rcpt(r) for r in rcpts]
        if not any(c == 250 for c, _ in rr):
            return rr, None
        s.putcmd("data")
        code, text = s.getreply()
        if code != 354:
            return rr, (code, text)
        s.send(msg + b".\r\n")
        return rr, s.getreply()


def wait_log(p, pattern, timeout=30):
    rx = re.compile(pattern, re.M)
    return util.wait_for(lambda: rx.search(p.log_text()), timeout, pattern)


def queue_files(p):
    out = []
    for root, _, files in os.walk(p.queue):
        out += files
    return out


def assert_dropped(p, qid):
    """The queue file of qid is gone (IPC_Q_ABORT) and nothing was delivered."""
    util.wait_for(lambda: qid not in queue_files(p), 20, "queue file %s removed" % qid)
    assert p.maildir_messages("alice") == []


def seen(m):
    """The milter's record without the readiness probe's connection."""
    log = m.log()
    while log and log[0] == "close":
        log.pop(0)
    assert log[0].startswith("negotiate "), log
    log.pop(0)
    return log


def qid_of(reply):
    m = re.search(rb"queued as ([0-9A-F]+)", reply)
    assert m, reply
    return m.group(1).decode()


# ---- pass-through and what the milter sees ----------------------------------------

def test_continue_delivers_unchanged_and_hides_received(postern_factory, milters):
    m = milters()
    p = start_postern(postern_factory, m)
    _, (code, text) = send(p)
    assert code == 250, text
    got = p.wait_delivered("alice", 1)[0]
    assert b"\nReceived: from client.test (localhost [127.0.0.1])" in got
    assert got.endswith(b"Subject: hello\nX-Remove: x\nMessage-ID: <milter-1@remote.test>\n\n"
                        b"first line\nsecond line\n")
    log = seen(m)
    assert log[0].startswith("connect localhost 127.0.0.1")
    assert "helo client.test" in log
    assert any(line.startswith("mail <s@remote.test>") for line in log)
    assert "rcpt <alice@example.test>" in log
    assert "data" in log
    headers = [line for line in log if line.startswith("header ")]
    # every header as received, our own Received not among them
    assert headers == ["header From:Sender <s@remote.test>", "header To:alice@example.test",
                       "header Subject:hello", "header X-Remove:x",
                       "header Message-ID:<milter-1@remote.test>"]
    assert "eoh" in log


def test_macros_reach_the_milter(postern_factory, milters):
    m = milters("--want-macro", "i", "--want-macro", "{daemon_addr}", "--want-macro", "j",
                "--want-macro", "{daemon_name}", "--want-macro", "{mail_addr}")
    p = start_postern(postern_factory, m)
    _, (code, text) = send(p)
    assert code == 250
    qid = qid_of(text)
    log = "\n".join(m.log())
    assert "macro connect {daemon_addr}=127.0.0.1" in log
    assert "macro connect j=postern.test" in log
    assert "macro mail {mail_addr}=s@remote.test" in log
    assert "macro eom i=%s" % qid in log


# ---- replies ------------------------------------------------------------------------

def raw_greeting(p):
    """Start p without waiting for a 220; the first reply of a new session
    and the socket (file) to go on with."""
    def connect():
        try:
            c = socket.create_connection(("127.0.0.1", p.port), timeout=30)
        except OSError:
            return None
        return c
    c = util.wait_for(connect, 30, "smtpd listening")
    f = c.makefile("rb")
    return c, f, f.readline()


def command(c, f, line):
    c.sendall(line + b"\r\n")
    out = []
    while True:
        r = f.readline()
        out.append(r)
        if r[3:4] != b"-":
            return b"".join(out)


def test_connect_reject_554_greeting_then_mail_refused(postern_factory, milters):
    """Postfix: a milter's 5xx at CONNECT makes the greeting 554; HELO/EHLO
    is still answered, MAIL gets the milter's reply."""
    m = milters("--at", "connect=reject")
    p = start_postern(postern_factory, m, wait=False)
    c, f, greeting = raw_greeting(p)
    assert greeting == b"554 postern.test ESMTP not accepting connections\r\n"
    assert command(c, f, b"EHLO client.test").startswith(b"250-postern.test")
    assert command(c, f, b"MAIL FROM:<s@remote.test>") == b"550 5.7.1 Command rejected\r\n"
    assert command(c, f, b"QUIT").startswith(b"221")
    c.close()
    wait_log(p, r"NOQUEUE: milter-reject: CONNECT from localhost\[127\.0\.0\.1\]: 550 5\.7\.1 "
                r"Command rejected; proto=SMTP$")


def test_connect_tempfail_220_then_mail_refused(postern_factory, milters):
    m = milters("--at", "connect=tempfail")
    p = start_postern(postern_factory, m)
    with session(p) as s:
        assert s.ehlo("client.test")[0] == 250
        code, text = s.mail("s@remote.test")
        assert code == 451 and text.startswith(b"4.7.1")


def test_helo_tempfail(postern_factory, milters):
    m = milters("--at", "helo=tempfail")
    p = start_postern(postern_factory, m)
    with session(p) as s:
        code, text = s.ehlo("client.test")
        assert code == 451 and b"4.7.1" in text
    wait_log(p, r"NOQUEUE: milter-reject: HELO from localhost\[127\.0\.0\.1\]: 451 4\.7\.1 .*; "
                r"proto=SMTP helo=<client\.test>$")


def test_mail_reject_then_next_transaction(postern_factory, milters):
    m = milters("--at", "mail=replycode", "--reply", "553 5.7.1 sender refused")
    p = start_postern(postern_factory, m)
    with session(p) as s:
        s.ehlo("client.test")
        code, text = s.mail("s@remote.test")
        assert (code, text) == (553, b"5.7.1 sender refused")
        # smtpd is still usable: RCPT now is out of sequence
        code, _ = s.rcpt("alice@example.test")
        assert code == 503
    wait_log(p, r"NOQUEUE: milter-reject: MAIL from localhost\[127\.0\.0\.1\]: 553 5\.7\.1 sender "
                r"refused; from=<s@remote\.test> proto=ESMTP helo=<client\.test>")


def test_rcpt_reject_one_recipient(postern_factory, milters):
    m = milters("--at", "rcpt=reject", "--match-rcpt", "<bob@example.test>")
    p = start_postern(postern_factory, m)
    rr, (code, text) = send(p, rcpts=("alice@example.test", "bob@example.test"))
    assert rr[0][0] == 250
    assert rr[1][0] == 550 and b"5.7.1" in rr[1][1]
    assert code == 250
    got = p.wait_delivered("alice", 1)[0]
    assert b"Delivered-To: alice@example.test" in got
    assert p.maildir_messages("bob") == []
    wait_log(p, r"NOQUEUE: milter-reject: RCPT from localhost\[127\.0\.0\.1\]: 550 5\.7\.1 "
                r"Command rejected; from=<s@remote\.test> to=<bob@example\.test> proto=ESMTP "
                r"helo=<client\.test>")


def test_data_reject_nothing_queued(postern_factory, milters):
    m = milters("--at", "data=reject")
    p = start_postern(postern_factory, m)
    _, (code, text) = send(p)
    assert code == 550 and b"5.7.1" in text
    line = wait_log(p, r"^.*([0-9A-F]{10,}): milter-reject: DATA from localhost\[127\.0\.0\.1\]: "
                       r"550 5\.7\.1 Command rejected; from=<s@remote\.test> "
                       r"to=<alice@example\.test>.*$")
    assert_dropped(p, line.group(1))


def test_eom_replycode_reject_logged_and_dropped(postern_factory, milters):
    m = milters("--at", "eom=replycode", "--reply", "554 5.7.1 spam detected")
    p = start_postern(postern_factory, m)
    _, (code, text) = send(p)
    assert (code, text) == (554, b"5.7.1 spam detected")
    line = wait_log(p, r"([0-9A-F]{10,}): milter-reject: END-OF-MESSAGE from "
                       r"localhost\[127\.0\.0\.1\]: 5\.7\.1 spam detected; from=<s@remote\.test> "
                       r"to=<alice@example\.test> proto=ESMTP helo=<client\.test>$")
    assert_dropped(p, line.group(1))


def test_eom_tempfail_multiline(postern_factory, milters):
    m = milters("--at", "eom=replycode", "--reply", "451 4.7.1 first",
                "--reply-ml", "line one", "--reply-ml", "line two")
    p = start_postern(postern_factory, m)
    with session(p) as s:
        s.ehlo("client.test")
        s.mail("s@remote.test")
        s.rcpt("alice@example.test")
        s.putcmd("data")
        assert s.getreply()[0] == 354
        s.send(MSG + b".\r\n")
        code, text = s.getreply()
        assert code == 451
        assert text == b"4.7.1 line one\n4.7.1 line two"
        # the session goes on
        assert s.noop()[0] == 250


def test_eom_discard(postern_factory, milters):
    m = milters("--at", "eom=discard")
    p = start_postern(postern_factory, m)
    _, (code, text) = send(p)
    assert code == 250 and b"queued as" in text
    qid = qid_of(text)
    wait_log(p, r"%s: milter-discard: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]: milter "
                r"triggers DISCARD action; from=<s@remote\.test> to=<alice@example\.test> "
                r"proto=ESMTP helo=<client\.test>" % qid)
    assert_dropped(p, qid)


def test_accept_at_connect_skips_the_rest(postern_factory, milters):
    m = milters("--at", "connect=accept")
    p = start_postern(postern_factory, m)
    _, (code, _) = send(p)
    assert code == 250
    p.wait_delivered("alice", 1)
    log = seen(m)
    assert log[0].startswith("connect ")
    assert not any(line.startswith(("helo", "mail", "rcpt", "header", "eom")) for line in log)


def test_quarantine_goes_to_hold(postern_factory, milters):
    """A milter's quarantine puts the message on hold: committed (250),
    logged as Postfix does, listed with '!' by postern queue, not delivered
    until released."""
    m = milters("--mod", "quarantine:looks odd")
    p = start_postern(postern_factory, m)
    _, (code, text) = send(p)
    assert code == 250
    qid = qid_of(text)
    wait_log(p, r"%s: milter-hold: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]: milter triggers "
                r"HOLD action: looks odd; from=<s@remote\.test> to=<alice@example\.test>" % qid)
    wait_log(p, r"%s: hold: looks odd" % qid)
    assert os.path.exists(os.path.join(p.queue, "hold", qid))
    assert re.search(r"^%s!" % qid, p.cli("queue").stdout.decode(), re.M)
    assert p.maildir_messages("alice") == []
    assert "%s: to=<" % qid not in p.log_text()
    # released by the administrator, it is delivered
    assert p.cli("release", qid).returncode == 0
    p.wait_delivered("alice", 1)


def test_shutdown_at_mail(postern_factory, fakes):
    f = fakes(fault="shutdown", at="M")
    p = start_postern(postern_factory, f)
    s = session(p)
    s.ehlo("client.test")
    code, text = s.mail("s@remote.test")
    assert code == 421
    # the server closed the session
    with pytest.raises(smtplib.SMTPServerDisconnected):
        s.noop()
    s.close()


# ---- modifications --------------------------------------------------------------------

def test_header_edits(postern_factory, milters):
    m = milters("--mod", "addheader:X-Added:yes",
                "--mod", "insheader:0:X-Top:first",
                "--mod", "chgheader:1:Subject:changed",
                "--mod", "chgheader:1:X-Remove:")
    p = start_postern(postern_factory, m)
    _, (code, _) = send(p)
    assert code == 250
    got = p.wait_delivered("alice", 1)[0]
    head, body = got.split(b"\n\n", 1)
    lines = head.split(b"\n")
    assert b"X-Added: yes" == lines[-1]
    assert b"Subject: changed" in lines
    assert not any(line.startswith(b"X-Remove") for line in lines)
    # X-Top went above our Received header (index 0 = very top of the message)
    assert lines.index(b"X-Top: first") < next(i for i, l in enumerate(lines) if l.startswith(b"Received: from client.test"))
    assert body == b"first line\nsecond line\n"


def test_body_replaced(postern_factory, milters):
    m = milters("--mod", "replbody:new body\nline two\n")
    p = start_postern(postern_factory, m)
    _, (code, _) = send(p)
    assert code == 250
    got = p.wait_delivered("alice", 1)[0]
    assert got.endswith(b"Subject: hello\nX-Remove: x\nMessage-ID: <milter-1@remote.test>\n\n"
                        b"new body\nline two\n")


def test_recipients_added_and_deleted(postern_factory, milters):
    m = milters("--mod", "addrcpt:<bob@example.test>",
                "--mod", "addrcpt_par:<carol@example.test>:NOTIFY=NEVER",
                "--mod", "delrcpt:<alice@example.test>")
    p = start_postern(postern_factory, m)
    _, (code, _) = send(p)
    assert code == 250
    b = p.wait_delivered("bob", 1)[0]
    c = p.wait_delivered("carol", 1)[0]
    assert b"Delivered-To: bob@example.test" in b
    assert b"Delivered-To: carol@example.test" in c
    wait_log(p, r"to=<carol@example\.test>.*status=sent")
    assert p.maildir_messages("alice") == []


def test_sender_changed(postern_factory, milters):
    m = milters("--mod", "chgfrom:<bounce@remote.test>")
    p = start_postern(postern_factory, m)
    _, (code, _) = send(p)
    assert code == 250
    got = p.wait_delivered("alice", 1)[0]
    assert got.startswith(b"Return-Path: <bounce@remote.test>\n")


def test_every_recipient_deleted_is_discarded(postern_factory, milters):
    m = milters("--mod", "delrcpt:<alice@example.test>")
    p = start_postern(postern_factory, m)
    _, (code, text) = send(p)
    assert code == 250
    qid = qid_of(text)
    wait_log(p, r"%s: milter-discard: END-OF-MESSAGE .*milter deleted every recipient" % qid)
    assert_dropped(p, qid)


# ---- chains, faults, concurrency ---------------------------------------------------------

def test_chain_of_three(postern_factory, milters):
    m1 = milters("--mod", "addheader:X-One:1")
    m2 = milters("--mod", "chgheader:1:Subject:two")
    m3 = milters("--mod", "addheader:X-Three:3")
    p = start_postern(postern_factory, m1, m2, m3)
    _, (code, _) = send(p)
    assert code == 250
    got = p.wait_delivered("alice", 1)[0]
    assert b"\nX-One: 1\nX-Three: 3\n\n" in got
    assert b"\nSubject: two\n" in got
    # later milters see earlier milters' edits
    assert "header X-One:1" in m2.log()
    assert "header Subject:two" in m3.log() and "header X-One:1" in m3.log()


def test_unreachable_milter_default_tempfail(postern_factory):
    port = util.free_port()
    p = start_postern(postern_factory, "inet:127.0.0.1:%d" % port)
    with session(p) as s:
        assert s.ehlo("client.test")[0] == 250
        code, text = s.mail("s@remote.test")
        assert code == 451 and b"4.7.1" in text
    wait_log(p, r"warning: milter inet:127\.0\.0\.1:%d: .*default_action=tempfail" % port)


def test_hung_milter_default_action_while_another_session_proceeds(postern_factory, fakes):
    f = fakes(fault="hang", at="E")
    ep = "{ %s, content_timeout=3s, default_action=accept }" % f.endpoint
    p = start_postern(postern_factory, ep)
    slow = session(p)
    slow.ehlo("client.test")
    slow.mail("s@remote.test")
    slow.rcpt("alice@example.test")
    slow.putcmd("data")
    assert slow.getreply()[0] == 354
    t0 = time.monotonic()
    slow.send(MSG + b".\r\n")
    # meanwhile a second session gets through its commands at once
    with session(p) as s:
        assert s.ehlo("other.test")[0] == 250
        assert s.mail("x@remote.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        assert time.monotonic() - t0 < 2.5
        s.rset()
    code, text = slow.getreply()
    assert code == 250, text
    assert time.monotonic() - t0 >= 2.5
    slow.quit()
    p.wait_delivered("alice", 1)
    wait_log(p, r"warning: [0-9A-F]+: milter inet:127\.0\.0\.1:%d: .*default_action=accept" % f.port)


def test_shutdown_at_connect_is_the_greeting(postern_factory, fakes):
    f = fakes(fault="shutdown", at="C")
    p = start_postern(postern_factory, f, wait=False)
    c, fp, greeting = raw_greeting(p)
    assert greeting == b"421 postern.test Service unavailable - try again later\r\n"
    assert fp.read() == b""  # and the session is over
    c.close()
    wait_log(p, r"NOQUEUE: milter-reject: CONNECT from localhost\[127\.0\.0\.1\]: 421 4\.7\.0 "
                r"Server closing connection; proto=SMTP$")


def bdat_session(p, chunks):
    """EHLO, MAIL, RCPT, then BDAT chunks (last one LAST); replies of the BDATs."""
    c = socket.create_connection(("127.0.0.1", p.port), timeout=30)
    f = c.makefile("rb")

    def reply():
        lines = []
        while True:
            line = f.readline()
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)
    assert reply().startswith(b"220")
    for cmd in (b"EHLO client.test", b"MAIL FROM:<s@remote.test>", b"RCPT TO:<alice@example.test>"):
        c.sendall(cmd + b"\r\n")
        assert reply().startswith(b"250"), cmd
    out = []
    for i, chunk in enumerate(chunks):
        last = b" LAST" if i == len(chunks) - 1 else b""
        c.sendall(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
        out.append(reply())
    c.sendall(b"QUIT\r\n")
    reply()
    f.close()
    c.close()
    return out


def test_bdat_message_edited(postern_factory, milters):
    m = milters("--mod", "addheader:X-Bdat:seen", "--mod", "chgheader:1:Subject:via bdat")
    p = start_postern(postern_factory, m)
    half = len(MSG) // 2
    replies = bdat_session(p, [MSG[:half], MSG[half:]])
    assert replies[0].startswith(b"250 2.0.0 Ok: ")
    assert replies[1].startswith(b"250 2.0.0 Ok: queued as "), replies
    got = p.wait_delivered("alice", 1)[0]
    assert b"\nSubject: via bdat\n" in got and b"\nX-Bdat: seen\n\nfirst line\n" in got


def test_bdat_data_reject_refuses_chunks(postern_factory, milters):
    m = milters("--at", "data=reject")
    p = start_postern(postern_factory, m)
    half = len(MSG) // 2
    replies = bdat_session(p, [MSG[:half], MSG[half:]])
    assert replies[0].startswith(b"550 5.7.1"), replies
    assert replies[1].startswith(b"503 5.5.1"), replies


def test_unknown_command_milter_reply(postern_factory, milters):
    m = milters("--at", "unknown=replycode", "--reply", "550 5.5.1 no such thing here")
    p = start_postern(postern_factory, m)
    with session(p) as s:
        s.ehlo("client.test")
        assert s.docmd("XFOO bar") == (550, b"5.5.1 no such thing here")
    assert "unknown XFOO bar" in seen(m)


def test_unknown_command_without_milter_verdict(postern_factory, milters):
    m = milters()
    p = start_postern(postern_factory, m)
    with session(p) as s:
        s.ehlo("client.test")
        assert s.docmd("XFOO bar")[0] == 502


def test_hostile_edits_ignored(postern_factory, milters):
    """A recipient with blanks or brackets inside, and ESMTP junk on an
    added recipient: the bad recipient is dropped with a warning, the junk
    arguments are ignored, the good recipient gets the mail; a null sender
    from chgfrom is kept (<>)."""
    m = milters("--mod", "addrcpt:<bad addr@example.test>",
                "--mod", "addrcpt:<a<b>@example.test>",
                "--mod", "addrcpt_par:<bob@example.test>:FOO=BAR NOTIFY=BOGUS",
                "--mod", "chgfrom:<>")
    p = start_postern(postern_factory, m)
    _, (code, text) = send(p)
    assert code == 250
    qid = qid_of(text)
    b = p.wait_delivered("bob", 1)[0]
    assert b.startswith(b"Return-Path: <>\n")
    wait_log(p, r"warning: %s: milter added an unusable recipient <bad addr@example\.test>; "
                r"ignored" % qid)
    wait_log(p, r"warning: %s: ignoring ESMTP arguments \"FOO=BAR NOTIFY=BOGUS\"" % qid)


def test_rejected_recipient_shown_to_rcpt_rej_milter(postern_factory, milters):
    """SMFIP_RCPT_REJ: a recipient smtpd refused reaches the milter with
    {rcpt_mailer}=error; the reply stays smtpd's even if the milter accepts."""
    m = milters("--rcpt-rej", "--want-macro", "{rcpt_mailer}", "--want-macro", "{rcpt_host}")
    p = start_postern(postern_factory, m)
    with session(p) as s:
        s.ehlo("client.test")
        s.mail("s@remote.test")
        code, text = s.rcpt("nobody@example.test")
        assert code == 550 and text.startswith(b"5.1.1")
        assert s.rcpt("alice@example.test")[0] == 250
    log = seen(m)
    assert "rcpt <nobody@example.test>" in log
    assert "macro rcpt {rcpt_mailer}=error" in log
    assert "macro rcpt {rcpt_host}=5.1.1" in log


def test_header_value_cannot_inject_headers_or_body(postern_factory, milters):
    r"""A milter's header value with bare line ends ("a\nInjected x\n\n...")
    stays one folded header: no new header, the header block not ended."""
    m = milters("--mod", "addheader:X-Report:first\\nInjected evil\\n\\nfake body\\n")
    p = start_postern(postern_factory, m)
    _, (code, _) = send(p)
    assert code == 250
    got = p.wait_delivered("alice", 1)[0]
    head, body = got.split(b"\n\n", 1)
    assert head.endswith(b"\nX-Report: first\n\tInjected evil\n\t\n\tfake body")
    assert not any(line.startswith(b"Injected") for line in head.split(b"\n"))
    assert body == b"first line\nsecond line\n"


def tls_postern(postern_factory, m, wrapper=False):
    """A Postern with a self-signed certificate (in its own directory, so
    the unprivileged daemon can read it) and milter m."""
    import pwd
    import ssl  # noqa: F401
    import subprocess
    port = util.free_port()
    master = "127.0.0.1:%d inet n - n - - smtpd%s\n" % (
        port, " -o smtpd_tls_wrappermode=yes" if wrapper else "")
    p = postern_factory(main_cf={"smtpd_milters": m.endpoint}, master_cf=master, port=port)
    key, crt = os.path.join(p.dir, "key.pem"), os.path.join(p.dir, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=postern.test", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    if p.run_as:
        pw = pwd.getpwnam(p.run_as)
        for f in (key, crt):
            os.chown(f, pw.pw_uid, pw.pw_gid)
    p.main_cf.update({"smtpd_tls_cert_file": crt, "smtpd_tls_key_file": key})
    p.write_config()
    return p.start(wait=not wrapper)


def tls_ctx():
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_starttls_macros_reach_the_milter(postern_factory, milters):
    m = milters("--want-macro", "{tls_version}", "--want-macro", "{cipher}")
    p = tls_postern(postern_factory, m)
    with session(p) as s:
        s.ehlo("client.test")
        assert s.starttls(context=tls_ctx())[0] == 220
        s.ehlo("client.test")
        assert s.mail("s@remote.test")[0] == 250
    log = seen(m)
    assert any(re.match(r"macro helo \{tls_version\}=TLSv1\.[23]$", line) for line in log), log
    assert any(line.startswith("macro helo {cipher}=") for line in log), log


def test_implicit_tls_greeting_after_milter_connect(postern_factory, milters):
    m = milters()
    p = tls_postern(postern_factory, m, wrapper=True)

    def connect():
        try:
            return smtplib.SMTP_SSL("127.0.0.1", p.port, context=tls_ctx(), timeout=30)
        except (OSError, smtplib.SMTPException):
            return None
    s = util.wait_for(connect, 30, "implicit TLS greeting")
    assert s.ehlo("client.test")[0] == 250
    assert s.mail("s@remote.test")[0] == 250
    s.quit()
    assert any(line.startswith("connect localhost 127.0.0.1") for line in seen(m))
