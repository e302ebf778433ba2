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


def tls_postern(postern_factory, m, wrapper=False, extra=None):
    """A Postern with a self-signed certificate (in its own directory, so
    the unprivileged daemon can read it) and milter m (anything with an
    endpoint); extra: more main.cf settings."""
    import pwd
    import ssl  # noqa: F401
    import subprocess
    port = util.free_port()
    master = "127.0.0.1:%d inet n - n - - smtpd%s\n" % (
        port, " -o smtpd_tls_wrappermode=yes" if wrapper else "")
    cf = {"smtpd_milters": m.endpoint}
    cf.update(extra or {})
    p = postern_factory(main_cf=cf, master_cf=master, port=port)
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


# ---- smtpd_milter_maps (Postfix 3.2) --------------------------------------------------

def from_addr(p, source):
    """An SMTP session from the loopback address source (127.0.0.x)."""
    return smtplib.SMTP("127.0.0.1", p.port, timeout=30, source_address=(source, 0))


def connects(m):
    return [line for line in m.log() if line.startswith("connect ")]


def mapped_postern(postern_factory, default, table_lines, maps=None):
    """Postern with smtpd_milters=default and smtpd_milter_maps=cidr:FILE
    holding table_lines (maps overrides the whole parameter)."""
    port = util.free_port()
    p = postern_factory(main_cf={"smtpd_milters": default.endpoint}, port=port,
                        master_cf="127.0.0.1:%d inet n - n - - smtpd\n" % port)
    path = os.path.join(p.dir, "milter_map.cidr")
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in table_lines))
    os.chmod(path, 0o644)
    p.main_cf["smtpd_milter_maps"] = maps or "cidr:" + path
    p.write_config()
    return p.start()


def test_milter_maps_choose_the_chain_per_client_address(postern_factory, milters):
    """127.0.0.1 gets the map's milter, 127.0.0.2 DISABLE (none), an
    address not in the table smtpd_milters."""
    default, special = milters(), milters("--at", "mail=reject")
    p = mapped_postern(postern_factory, default,
                       ["# per client", "127.0.0.1/32 { %s, command_timeout=10s }" % special.endpoint,
                        "127.0.0.2/32 disable"])
    with from_addr(p, "127.0.0.1") as s:
        s.ehlo("client.test")
        assert s.mail("s@remote.test")[0] == 550
    # the readiness probe of start() came from 127.0.0.1 too
    assert {c.split()[2] for c in connects(special)} == {"127.0.0.1"}
    assert connects(default) == []
    n_special = len(connects(special))
    with from_addr(p, "127.0.0.2") as s:
        s.ehlo("client.test")
        assert s.mail("s@remote.test")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        code, text = s.data(MSG)
        assert code == 250, text
    p.wait_delivered("alice", 1)
    assert connects(default) == [] and len(connects(special)) == n_special
    with from_addr(p, "127.0.0.3") as s:
        s.ehlo("client.test")
        assert s.mail("s@remote.test")[0] == 250
    assert [c.split()[2] for c in connects(default)] == ["127.0.0.3"]
    assert len(connects(special)) == n_special


@pytest.mark.parametrize("broken", ["lmdb", "cidr"])
def test_milter_maps_lookup_error_tempfails_every_command(postern_factory, milters, broken):
    """A table that cannot be read (an lmdb: map never built, a cidr: file
    with a bad line) is not "no milters": the client is greeted, every
    command but QUIT gets 451 4.3.0, one warning per session is logged, and
    no milter is asked."""
    default = milters()
    if broken == "lmdb":
        p = mapped_postern(postern_factory, default, [], maps="lmdb:/nonexistent/postern-milter-map")
    else:
        p = mapped_postern(postern_factory, default, ["127.0.0.1/33 DISABLE", "garbage line"])
    with from_addr(p, "127.0.0.1") as s:
        code, text = s.ehlo("client.test")
        assert (code, text) == (451, b"4.3.0 Error: server configuration error")
        assert s.mail("s@remote.test")[0] == 451
        assert s.docmd("RCPT TO:<alice@example.test>")[0] == 451
        assert s.docmd("DATA")[0] == 451
        assert s.quit()[0] == 221
    wait_log(p, r"disconnect from localhost\[127\.0\.0\.1\] ehlo=0/1 .*quit=1")
    # one warning per session (start()'s readiness probe is one too)
    log = p.log_text()
    assert re.search(r"warning: smtpd_milter_maps lookup error for 127\.0\.0\.1: .+", log)
    assert log.count("smtpd_milter_maps lookup error") == len(re.findall(r"\]: connect from", log))
    assert connects(default) == []
    assert p.maildir_messages("alice") == []


def test_milter_maps_bad_value_refuses_the_session(postern_factory, milters):
    default = milters()
    p = mapped_postern(postern_factory, default, ["127.0.0.2/32 bogus:endpoint"])
    with pytest.raises(smtplib.SMTPConnectError) as e:
        from_addr(p, "127.0.0.2")
    assert e.value.smtp_code == 421 and e.value.smtp_error.startswith(b"4.3.5")
    wait_log(p, r"warning: smtpd_milter_maps: .*reject connection from unknown\[127\.0\.0\.2\]")
    assert {c.split()[2] for c in connects(default)} == {"127.0.0.1"}


# ---- macros ---------------------------------------------------------------------------

def macro_values(m, stage, name):
    prefix = "macro %s %s=" % (stage, name)
    return [line[len(prefix):] for line in m.log() if line.startswith(prefix)]


def test_route_and_client_macros(postern_factory, milters):
    """{mail_host}/{mail_mailer}, {rcpt_host}/{rcpt_mailer}: transport and
    next hop as Postfix resolves them (local:$myhostname, virtual, relay,
    smtp + domain); {client_connections}, {client_resolve}; the AUTH
    macros are absent without AUTH."""
    want = ["{mail_host}", "{mail_mailer}", "{rcpt_host}", "{rcpt_mailer}", "{client_connections}",
            "{client_resolve}", "{auth_type}", "{auth_authen}", "{auth_author}"]
    m = milters(*sum((["--want-macro", w] for w in want), []))
    p = start_postern(postern_factory, m, extra={
        "relay_domains": "relay.test",
        "milter_connect_macros": "j {daemon_name} {daemon_addr} v _ {client_connections} {client_resolve}"})
    wait_log(p, r"disconnect from localhost\[127\.0\.0\.1\] commands=0")  # start()'s probe
    with session(p) as s, session(p) as s2:
        s2.ehlo("second.test")
        s.ehlo("client.test")
        assert s.mail("s@remote.test")[0] == 250
        for r in ("alice@example.test", "someone@localhost", "x@relay.test", "y@Far.Example"):
            assert s.rcpt(r)[0] == 250, r
        s.rset()
        assert s.mail("")[0] == 250
    assert macro_values(m, "mail", "{mail_mailer}") == ["smtp", "local"]
    assert macro_values(m, "mail", "{mail_host}") == ["remote.test", "postern.test"]
    assert macro_values(m, "rcpt", "{rcpt_mailer}") == ["virtual", "local", "relay", "smtp"]
    assert macro_values(m, "rcpt", "{rcpt_host}") == ["example.test", "postern.test", "relay.test",
                                                       "Far.Example"]
    assert macro_values(m, "connect", "{client_connections}")[-2:] == ["1", "2"]
    assert macro_values(m, "connect", "{client_resolve}")[-2:] == ["OK", "OK"]
    assert not any("{auth_" in line for line in m.log())
    # an outside client without a confirmed name
    with from_addr(p, "127.0.0.2") as s:
        s.ehlo("client.test")
    assert macro_values(m, "connect", "{client_resolve}")[-1] == "FAIL"


def test_relayhost_is_the_next_hop_macro(postern_factory, milters):
    m = milters("--want-macro", "{rcpt_host}", "--want-macro", "{rcpt_mailer}")
    p = start_postern(postern_factory, m, extra={"relayhost": "[smarthost.test]:587",
                                                  "virtual_alias_domains": "alias.test",
                                                  "virtual_alias_maps": "inline:{ a@alias.test=alice@example.test }"})
    with session(p) as s:
        s.ehlo("client.test")
        s.mail("s@remote.test")
        assert s.rcpt("y@far.example")[0] == 250
        assert s.rcpt("a@alias.test")[0] == 250
    assert macro_values(m, "rcpt", "{rcpt_host}") == ["[smarthost.test]:587",
                                                       "5.1.1 User unknown in virtual alias table"]
    assert macro_values(m, "rcpt", "{rcpt_mailer}") == ["smtp", "error"]


def tls_raw_connect(p):
    """A TCP connection to an implicit-TLS listener, once it listens."""
    def attempt():
        try:
            return socket.create_connection(("127.0.0.1", p.port), timeout=30)
        except OSError:
            return None
    return util.wait_for(attempt, 30, "implicit TLS listener")


def assert_nothing_before_handshake(sock):
    """No plaintext byte reached the client before its TLS handshake."""
    sock.setblocking(False)
    try:
        data = sock.recv(4096)
    except BlockingIOError:
        data = None
    sock.setblocking(True)
    assert data is None, data


def tls_read_reply(tls):
    """Read until a final reply line arrives or the server closes."""
    buf = b""
    while not re.search(rb"(^|\n)\d{3} [^\n]*\n", buf):
        d = tls.recv(4096)
        if not d:
            break
        buf += d
    return buf


def tls_reply_lines(sock):
    """Handshake on sock, then read the first reply (see tls_read_reply)."""
    tls = tls_ctx().wrap_socket(sock, server_hostname="postern.test")
    return tls, tls_read_reply(tls)


def test_implicit_tls_connect_reject_comes_after_the_handshake(postern_factory, milters):
    """A milter REJECT at CONNECT on an smtps (port 465 style) listener:
    the 554 greeting is sent inside TLS, after the handshake, never in
    clear text before it; the milter's 5xx then answers MAIL."""
    m = milters("--at", "connect=reject")
    p = tls_postern(postern_factory, m, wrapper=True)
    sock = tls_raw_connect(p)
    wait_log(p, r"milter-reject: CONNECT from localhost\[127\.0\.0\.1\]")
    assert_nothing_before_handshake(sock)
    tls, got = tls_reply_lines(sock)
    assert got == b"554 postern.test ESMTP not accepting connections\r\n"
    tls.sendall(b"EHLO client.test\r\n")
    got = tls_read_reply(tls)
    assert got.startswith(b"250-postern.test"), got
    tls.sendall(b"MAIL FROM:<s@remote.test>\r\n")
    got = tls_read_reply(tls)
    assert got.startswith(b"550 5.7.1"), got
    tls.close()


def test_implicit_tls_connect_shutdown_comes_after_the_handshake(postern_factory, milters):
    """milter_default_action=shutdown with a milter that is down: the 421
    greeting is sent after the handshake, and the session then ends."""
    class Dead:
        endpoint = "inet:127.0.0.1:%d" % util.free_port()
    p = tls_postern(postern_factory, Dead(), wrapper=True,
                    extra={"milter_default_action": "shutdown", "milter_connect_timeout": "5s"})
    sock = tls_raw_connect(p)
    wait_log(p, r"milter inet:127\.0\.0\.1:\d+: .*default_action=shutdown")
    assert_nothing_before_handshake(sock)
    tls, got = tls_reply_lines(sock)
    assert got == b"421 postern.test Service unavailable - try again later\r\n"
    tls.settimeout(10)
    try:
        rest = tls.recv(4096)
    except (ConnectionResetError, OSError):
        rest = b""
    assert rest == b"", rest  # closed, no further greeting
    tls.close()


# ---- connection reuse (QUIT_NC) ------------------------------------------------------

def sessions_in_a_row(p, n):
    for i in range(n):
        msg = MSG.replace(b"milter-1@", b"reuse-%d@" % i)
        _, (code, text) = send(p, msg=msg)
        assert code == 250, text
    return p.wait_delivered("alice", n)


def test_connection_kept_for_the_next_session(postern_factory, milters):
    """Three SMTP sessions one after the other: the milter negotiates once
    and sees three whole sessions on one connection (libmilter's close
    callback runs at each 'K'), each with its own connect and message.
    (Every count below includes the start-up probe's session, which ends
    without a message and so with a plain QUIT.)"""
    m = milters()
    p = start_postern(postern_factory, m)
    got = sessions_in_a_row(p, 3)
    assert len(got) == 3
    log = m.log()
    assert sum(line.startswith("negotiate ") for line in log) == 2, log
    assert sum(line.startswith("connect localhost 127.0.0.1") for line in log) == 4
    heads = [line for line in log if line.startswith("header Message-ID:")]
    assert heads == ["header Message-ID:<reuse-%d@remote.test>" % i for i in range(3)]
    # after the first real session's negotiation: one connection, and no
    # ABORT after a finished message (libmilter takes none there)
    tail = log[[i for i, l in enumerate(log) if l.startswith("negotiate ")][1]:]
    assert "abort" not in tail
    assert tail.count("close") >= 2


def test_reuse_off_per_milter_and_globally(postern_factory, milters):
    m1, m2 = milters(), milters()
    p = start_postern(postern_factory, "{ %s, reuse=no }" % m1.endpoint, m2)
    sessions_in_a_row(p, 2)
    assert sum(line.startswith("negotiate ") for line in m1.log()) == 3  # probe + 2
    assert sum(line.startswith("negotiate ") for line in m2.log()) == 2  # probe + 1
    m3 = milters()
    q = start_postern(postern_factory, m3, extra={"milter_connection_reuse": "no"})
    sessions_in_a_row(q, 2)
    assert sum(line.startswith("negotiate ") for line in m3.log()) == 3


def test_filter_that_closes_on_quit_nc(postern_factory, fakes):
    """A filter that does not know 'K' closes: the idle connection is
    dropped and the next session connects anew, with no fault."""
    f = fakes(fault="k_close")
    p = start_postern(postern_factory, f)
    sessions_in_a_row(p, 2)
    assert f.seen.count("O") == 3  # probe, then one per session
    # the second session ends with 'K' again, unless it found the kept
    # connection dead only after taking it (then that filter is not reused)
    assert f.seen.count("K") >= 1
    assert not re.search(r"milter .*(failed|closed|timed out)", p.log_text())


def test_reused_connection_lost_before_its_answer_is_retried(postern_factory, fakes):
    """The kept connection dies when the next session's first command
    arrives: that command is sent again on a new connection (the filter
    never answered it), the session goes on, nothing is logged as a fault,
    and that filter is not reused again."""
    f = fakes(fault="k_drop_next")
    p = start_postern(postern_factory, f)
    sessions_in_a_row(p, 3)
    # probe; session 1 ends with K; session 2's C is dropped and sent again
    # on a new connection, which then ends with Q (no more reuse); session 3
    assert f.seen.count("O") == 4, f.seen
    assert f.seen.count("K") == 1, f.seen
    assert f.seen.count("E") == 3
    assert not re.search(r"milter .*(failed|closed|timed out)", p.log_text())


def test_filter_that_speaks_between_sessions_is_not_reused(postern_factory, fakes):
    """Hostile: a filter that sends an unasked reply after QUIT_NC. If the
    bytes come while the connection is idle, or before the next session
    asked anything, that session gets a new connection; if they come just
    after it asked, they cannot be told from the answer: that one session
    gets the default action (451, logged with the milter's name), and the
    filter is not reused again. Nothing answered 250 is lost."""
    f = fakes(fault="k_chatter")
    p = start_postern(postern_factory, f)
    codes = []
    for i in range(4):
        msg = MSG.replace(b"milter-1@", b"chatter-%d@" % i)
        with session(p) as s:
            s.ehlo("client.test")
            codes.append(s.mail("s@remote.test")[0])
            if codes[-1] != 250:
                continue
            assert s.rcpt("alice@example.test")[0] == 250
            code, _ = s.data(msg)
            codes[-1] = code
    assert all(c in (250, 451) for c in codes), codes
    assert codes.count(451) <= 1, codes
    assert codes[-1] == 250 and codes[-2] == 250, codes
    assert len(p.wait_delivered("alice", codes.count(250))) == codes.count(250)
    if 451 in codes:
        assert re.search(r"milter inet:127\.0\.0\.1:%d: .* default_action=tempfail" % f.port,
                         p.log_text())
    # after a failure on a kept connection the filter is not reused: at
    # most two sessions ended with QUIT_NC
    assert f.seen.count("K") <= 2, f.seen
