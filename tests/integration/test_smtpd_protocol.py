"""smtpd speaks RFC 5321 and its extensions: the happy paths.

Runs postern-smtpd alone with tests/integration/fake_queue.py on its queue
channel (the real queue process did not exist when these were written; the
stand-in also shows exactly which envelope and content smtpd handed over).
"""
import smtplib

from tests.integration.fake_queue import Client, smtpd_factory  # noqa: F401
from tests.pylib import util

MSG = b"Subject: hello\r\nMessage-ID: <m1@client.test>\r\n\r\nline one\r\n.leading dot\r\n"


def committed(s, n=1):
    return util.wait_for(lambda: len(s.queue.committed()) >= n and s.queue.committed(), 10, "commit")


def test_ehlo_keywords_and_happy_path(smtpd_factory):
    s = smtpd_factory()
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        code, text = c.ehlo("client.test")
        assert code == 250
        kws = text.decode().split("\n")
        assert kws[0] == "postern.test"
        for k in ("PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
                  "SMTPUTF8", "CHUNKING"):
            assert k in kws
        assert "STARTTLS" not in kws  # no certificate configured
        assert c.mail("sender@client.test") == (250, b"2.1.0 Ok")
        assert c.rcpt("alice@example.test") == (250, b"2.1.5 Ok")
        code, text = c.data(MSG)
        assert code == 250
        qid = text.decode().split()[-1]
        assert text.decode() == "2.0.0 Ok: queued as " + qid
    m = committed(s)[0]
    assert m.qid == qid
    assert m.sender == "sender@client.test"
    assert m.rcpts == [("alice@example.test", "", 0)]
    body = m.content()
    first, rest = body.split(b"\r\n", 1)
    assert first == b"Received: from client.test (localhost [127.0.0.1])"
    assert b"\tby postern.test (Postern) with ESMTP id " + qid.encode() + b"\r\n" in body
    assert b"\tfor <alice@example.test>; " in body
    # dot-unstuffed, CRLF, nothing else
    assert body.endswith(b"\r\n\r\nline one\r\n.leading dot\r\n")
    assert m.commit["size"] == len(body)
    assert m.commit["protocol"] == "ESMTP" and m.commit["helo"] == "client.test"
    assert m.commit["addr"] == "127.0.0.1" and m.commit["msgid"] == "<m1@client.test>"


def test_two_recipients_no_for_clause_and_helo_protocol(smtpd_factory):
    s = smtpd_factory()
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        c.helo("old.client.test")
        c.sendmail("<>", ["alice@example.test", "bob@example.test"], b"Subject: x\r\n\r\nhi\r\n")
    m = committed(s)[0]
    assert m.sender == ""
    assert [r[0] for r in m.rcpts] == ["alice@example.test", "bob@example.test"]
    assert b"\tfor <" not in m.content()
    assert b" with SMTP id " in m.content()


def test_pipelined_transaction_replies_in_order(smtpd_factory):
    s = smtpd_factory()
    c = Client(s.port)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    c.send("MAIL FROM:<a@client.test>\r\nRCPT TO:<alice@example.test>\r\n"
           "RCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
    assert [c.reply()[0] for _ in range(5)] == [250, 250, 550, 250, 354]
    c.send("Subject: p\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    code, lines = c.reply()
    assert code == 250 and lines[0].startswith("250 2.0.0 Ok: queued as ")
    assert c.reply()[0] == 221
    assert c.closed()
    m = committed(s)[0]
    assert [r[0] for r in m.rcpts] == ["alice@example.test", "bob@example.test"]


def test_many_messages_one_session(smtpd_factory):
    s = smtpd_factory()
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        for i in range(30):
            c.sendmail("a@client.test", ["bob@example.test"], b"Subject: %d\r\n\r\nx\r\n" % i)
    ms = committed(s, 30)
    assert len({m.qid for m in ms}) == 30
    assert s.queue.aborts == []


def test_bdat_chunks(smtpd_factory):
    s = smtpd_factory()
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<a@client.test> BODY=BINARYMIME")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    part1 = b"Subject: chunked\r\n\r\n.not stuffed\r\n"
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    code, lines = c.reply()
    assert code == 250 and lines[0] == "250 2.0.0 Ok: %d bytes" % len(part1)
    part2 = b"\x00binary\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    code, lines = c.reply()
    assert code == 250 and "queued as" in lines[0]
    m = committed(s)[0]
    assert m.content().endswith(part1 + part2)
    assert m.sender_flags & 0x10  # BINARYMIME
    # BDAT 0 LAST is a legal empty end; DATA after BDAT is not
    c.cmd("MAIL FROM:<a@client.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    assert c.cmd("BDAT 0 LAST")[0] == 250
    c.cmd("MAIL FROM:<a@client.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    c.send(b"BDAT 3\r\nabc")
    assert c.reply()[0] == 250
    assert c.cmd("DATA")[1][0] == "503 5.5.1 Error: DATA after BDAT"


def test_bdat_without_transaction_still_reads_the_chunk(smtpd_factory):
    s = smtpd_factory()
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    # the chunk text looks like commands; it must be skipped, not executed
    chunk = b"MAIL FROM:<x@y>\r\nRCPT TO:<alice@example.test>\r\n"
    c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    assert c.reply()[1][0] == "503 5.5.1 Error: need RCPT command"
    assert c.cmd("NOOP")[0] == 250
    assert s.queue.messages == {}


def test_dsn_and_smtputf8_parameters_reach_the_queue(smtpd_factory):
    s = smtpd_factory()
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<j\u00f6rg@client.test> SMTPUTF8 BODY=8BITMIME RET=HDRS ENVID=env+2B1 SIZE=100")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice+2Bx@example.test")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: \u00fcml\u00e4ut\r\n\r\nb\r\n.\r\n")
    assert c.reply()[0] == 250
    m = committed(s)[0]
    assert m.sender == "j\u00f6rg@client.test"
    assert m.sender_flags == 0x01 | 0x02 | 0x08
    assert m.envid == "env+1"
    assert m.rcpts == [("alice@example.test", "rfc822;alice+x@example.test", 0x01 | 0x02)]
    assert m.commit["protocol"] == "UTF8SMTP"


def test_utf8_address_needs_smtputf8(smtpd_factory):
    s = smtpd_factory()
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<j\u00f6rg@client.test>")[1][0] == \
        "553 5.6.7 Must declare SMTPUTF8 to send unicode address"


def test_small_commands(smtpd_factory):
    s = smtpd_factory()
    c = Client(s.port)
    c.reply()
    assert c.cmd("NOOP") == (250, ["250 2.0.0 Ok"])
    assert c.cmd("HELO client.test") == (250, ["250 postern.test"])
    assert c.cmd("VRFY alice") == (252, ["252 2.0.0 alice"])
    assert c.cmd("HELP")[0] == 214
    assert c.cmd("RSET") == (250, ["250 2.0.0 Ok"])
    assert c.cmd("EXPN staff")[0] == 502
    assert c.cmd("AUTH PLAIN AGFAYg==")[1][0] == "503 5.5.1 Error: authentication not enabled"
    assert c.cmd("STARTTLS")[1][0] == "502 5.5.2 Error: command not recognized"
    assert c.cmd("QUIT") == (221, ["221 2.0.0 Bye"])
    assert c.closed()


def test_rset_and_ehlo_abandon_the_transaction(smtpd_factory):
    s = smtpd_factory()
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<a@client.test>")
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("RSET")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[1][0] == "503 5.5.1 Error: need MAIL command"
    c.cmd("MAIL FROM:<a@client.test>")
    c.cmd("EHLO again.test")
    assert c.cmd("DATA")[1][0] == "503 5.5.1 Error: need RCPT command"
    assert s.queue.messages == {}


def test_swaks_delivers(smtpd_factory):
    import shutil
    import subprocess
    s = smtpd_factory()
    swaks = shutil.which("swaks")
    if swaks is None:
        import pytest
        pytest.fail("swaks not installed (scripts/deps.sh installs it)")
    r = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(s.port), "--from", "x@client.test",
                        "--to", "bob@example.test", "--pipeline", "--header", "Subject: swaks"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    m = committed(s)[0]
    assert m.rcpts[0][0] == "bob@example.test"
    assert b"Subject: swaks" in m.content()


def test_main_cf_switches(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_helo_required": "yes", "disable_vrfy_command": "yes",
                               "strict_rfc821_envelopes": "yes",
                               "smtpd_discard_ehlo_keywords": "chunking, dsn"})
    c = Client(s.port)
    c.reply()
    assert c.cmd("MAIL FROM:<a@client.test>")[1][0] == "503 5.5.1 Error: send HELO/EHLO first"
    code, lines = c.cmd("EHLO client.test")
    assert "250-PIPELINING" in lines and not any("CHUNKING" in x or "DSN" in x for x in lines)
    assert c.cmd("VRFY alice")[1][0] == "502 5.5.1 VRFY command is disabled"
    assert c.cmd("MAIL FROM:a@client.test")[1][0] == "501 5.1.7 Bad sender address syntax"
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    # DSN not offered: its parameters are unknown options
    assert c.cmd("RCPT TO:<alice@example.test> NOTIFY=NEVER")[1][0] == "555 5.5.4 Unsupported option"


def test_junk_commands_count_as_errors(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_junk_command_limit": "3", "smtpd_hard_error_limit": "2"})
    c = Client(s.port)
    c.reply()
    for _ in range(5):  # the 4th and 5th are errors
        assert c.cmd("NOOP")[0] == 250
    assert c.reply()[1][0] == "421 4.7.0 postern.test Error: too many errors"
    assert c.closed()


def test_ipv6_client(smtpd_factory):
    import socket
    s = smtpd_factory(host="::1", main_cf={"mynetworks": "[::1]/128"})
    with smtplib.SMTP("::1", s.port) as c:
        c.ehlo("v6.client.test")
        c.sendmail("a@client.test", ["victim@elsewhere.test"], b"Subject: v6\r\n\r\nx\r\n")  # relay: trusted
    m = committed(s)[0]
    assert m.content().startswith(b"Received: from v6.client.test (")
    assert b" [IPv6:::1])\r\n" in m.content().split(b"\r\n\t")[0] + b"\r\n"
    assert m.commit["addr"] == "::1"
    s.wait_log("[::1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")
