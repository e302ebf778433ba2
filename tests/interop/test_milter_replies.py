"""The milter client against a real libmilter milter (tests/milter/milter_script.c):
every reply at every stage, every modification, checked in the verdict,
the envelope and the edited message that postern_milter's chain hands back
(driven by tests/milter/milter_drive.c)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "milter"))

from milterlib import MESSAGE, ScriptMilter, drive  # noqa: E402

# where a reply at a milter stage shows up in the chain's verdicts
# (headers, end of headers and body run inside END-OF-MESSAGE, as in Postfix)
CHAIN_STAGE = {
    "connect": "CONNECT", "helo": "HELO", "mail": "MAIL", "rcpt": "RCPT",
    "data": "DATA", "unknown": "UNKNOWN", "header": "END-OF-MESSAGE",
    "eoh": "END-OF-MESSAGE", "body": "END-OF-MESSAGE", "eom": "END-OF-MESSAGE",
}
STAGES = list(CHAIN_STAGE)


@pytest.fixture
def milters(tmp_path):
    started = []

    def start(*args, name="m"):
        m = ScriptMilter(tmp_path, args, name=name + str(len(started)))
        started.append(m)
        return m
    yield start
    for m in started:
        m.stop()


def run(tmp_path, m, *args, **kw):
    return drive(tmp_path, m.endpoint if hasattr(m, "endpoint") else m,
                 "--unknown", "XFOO bar", *args, **kw)


@pytest.mark.parametrize("stage", STAGES)
def test_reject(tmp_path, milters, stage):
    m = milters("--at", stage + "=reject")
    r = run(tmp_path, m)
    assert r.rc == 0, r.stderr
    assert r.verdict(CHAIN_STAGE[stage]) == "reject 550 5.7.1 Command rejected"
    if stage == "rcpt":
        assert "no recipients" in r.lines
    if CHAIN_STAGE[stage] != "END-OF-MESSAGE":
        assert r.verdict("END-OF-MESSAGE") is None
    assert "milter-reject: %s from" % CHAIN_STAGE[stage] in r.stderr


def test_reject_log_lines(tmp_path, milters):
    """Postfix's shape: smtpd stages keep the code, END-OF-MESSAGE drops it."""
    m = milters("--at", "rcpt=replycode", "--reply", "550 5.7.1 No\tthanks",
                "--match-rcpt", "<bad@example.org>", "--at", "eom=reject")
    r = run(tmp_path, m, rcpts=["<bad@example.org>", "<b@example.org>"])
    lines = [l.split(": ", 1)[1] for l in r.stderr.splitlines() if "milter-" in l]
    assert lines == [
        "4DRIVEQID: milter-reject: RCPT from client[addr]: 550 5.7.1 No\\011thanks; "
        "from=<a@example.net> to=<bad@example.org> proto=ESMTP helo=<client.example.net>",
        "4DRIVEQID: milter-reject: END-OF-MESSAGE from client[addr]: 5.7.1 Command rejected; "
        "from=<a@example.net> to=<b@example.org> proto=ESMTP helo=<client.example.net>",
    ], r.stderr


@pytest.mark.parametrize("stage", STAGES)
def test_tempfail(tmp_path, milters, stage):
    m = milters("--at", stage + "=tempfail")
    r = run(tmp_path, m)
    assert r.verdict(CHAIN_STAGE[stage]) == "tempfail 451 4.7.1 Service unavailable - try again later"


@pytest.mark.parametrize("stage", STAGES)
def test_replycode(tmp_path, milters, stage):
    m = milters("--at", stage + "=replycode", "--reply", "554 5.7.0 Custom 100%% text")
    r = run(tmp_path, m)
    assert r.verdict(CHAIN_STAGE[stage]) == "reject 554 5.7.0 Custom 100% text"


def test_replycode_tempfail_multiline(tmp_path, milters):
    m = milters("--at", "rcpt=replycode", "--reply", "452 4.2.2 x",
                "--reply-ml", "line one", "--reply-ml", "line two")
    r = run(tmp_path, m)
    assert r.verdict("RCPT") == r"tempfail 452-4.2.2 line one\r\n452 4.2.2 line two"


@pytest.mark.parametrize("stage", STAGES)
def test_accept(tmp_path, milters, stage):
    m = milters("--at", stage + "=accept")
    r = run(tmp_path, m)
    chain = CHAIN_STAGE[stage]
    if stage == "unknown":
        # accept of an unknown command ends nothing
        assert r.verdict("UNKNOWN") == "continue"
        assert r.verdict("END-OF-MESSAGE") == "continue"
        return
    assert r.verdict(chain) == "accept"
    log = m.log()
    if stage in ("connect", "helo"):
        # the milter is done for the whole session: no MAIL reaches it
        assert not any(l.startswith("mail ") for l in log)
        assert r.verdict("MAIL") == "accept"
    else:
        assert r.verdict("END-OF-MESSAGE") == "accept"
    if chain != "END-OF-MESSAGE":
        assert not any(l.startswith("eom") for l in log)
    # nothing was changed on the way
    assert r.message == MESSAGE


@pytest.mark.parametrize("stage", STAGES)
def test_discard(tmp_path, milters, stage):
    m = milters("--at", stage + "=discard")
    r = run(tmp_path, m)
    chain = CHAIN_STAGE[stage]
    if stage in ("connect", "helo", "unknown"):
        # Postfix logs and ignores discard outside a transaction
        assert r.verdict(chain) == "continue"
        assert "discard reply at %s ignored" % chain in r.stderr
        assert r.verdict("END-OF-MESSAGE") == "continue"
        return
    assert r.verdict(chain) == "discard"
    assert r.verdict("END-OF-MESSAGE") == "discard"
    assert "milter-discard: END-OF-MESSAGE" in r.stderr


def test_continue_everywhere_keeps_message_exact(tmp_path, milters):
    m = milters("--want-macro", "i")
    r = run(tmp_path, m)
    for stage in ("CONNECT", "UNKNOWN", "HELO", "MAIL", "RCPT", "DATA", "END-OF-MESSAGE"):
        assert r.verdict(stage) == "continue", r.stdout
    assert r.message == MESSAGE
    log = m.log()
    # the milter saw every event, headers as received (one space removed,
    # folding as LF), and the body with CRLF
    assert "connect client.example.net 192.0.2.1" in log
    assert "unknown XFOO bar" in log
    assert "helo client.example.net" in log
    assert "mail <a@example.net> SIZE=100" in log
    assert "rcpt <b@example.org>" in log
    assert "data" in log
    assert "header Subject:hello\\n folded" in log
    assert "header From:Alice <a@example.net>" in log
    assert "eoh" in log
    assert "eom " + b"body line\r\nsecond line\r\n".hex() in log
    assert "close" in log
    assert "macro mail i=4DRIVEQID" in log
    assert not any(l.startswith("macro connect i=") for l in log)


def test_skip_body(tmp_path, milters):
    big = MESSAGE + b"x" * 200000 + b"\r\n"
    m = milters("--at", "body=skip")
    r = run(tmp_path, m, message=big)
    assert r.verdict("END-OF-MESSAGE") == "continue"
    bodies = [l for l in m.log() if l.startswith("body ")]
    assert bodies == ["body 65535"]   # one chunk, then skip
    assert any(l.startswith("eom ") for l in m.log())


def test_body_chunks(tmp_path, milters):
    big = MESSAGE + b"y" * 150000 + b"\r\n"
    m = milters()
    r = run(tmp_path, m, message=big)
    assert r.verdict("END-OF-MESSAGE") == "continue"
    sizes = [int(l.split()[1]) for l in m.log() if l.startswith("body ")]
    body_len = len(big.split(b"\r\n\r\n", 1)[1])
    assert sizes == [65535, 65535, body_len - 2 * 65535]
    assert r.message == big


def test_progress_and_quarantine(tmp_path, milters):
    m = milters("--mod", "progress", "--mod", "quarantine:held for review")
    r = run(tmp_path, m)
    assert r.verdict("END-OF-MESSAGE") == "continue"
    assert r.field("quarantine") == ["held for review"]
    assert "milter-hold: END-OF-MESSAGE" in r.stderr


def test_addheader(tmp_path, milters):
    m = milters("--mod", "addheader:X-Added:yes")
    r = run(tmp_path, m)
    assert r.message == MESSAGE.replace(b"X-Remove: x\r\n", b"X-Remove: x\r\nX-Added: yes\r\n")
    assert r.field("headers_changed") == ["yes"]


def test_addheader_leadspc_multiline(tmp_path, milters):
    m = milters("--leadspc", "--mod", "addheader:X-Lead:\\tverbatim\\n\\tsecond")
    r = run(tmp_path, m)
    assert b"\r\nX-Lead:\tverbatim\r\n\tsecond\r\n\r\n" in r.message
    # with LEADSPC the milter got header values verbatim
    assert "header Subject: hello\\n folded" in m.log()


def test_insheader(tmp_path, milters):
    m = milters("--mod", "insheader:0:X-Top:first", "--mod", "insheader:2:X-Third:3")
    r = run(tmp_path, m)
    assert r.message.startswith(b"X-Top: first\r\nFrom: Alice <a@example.net>\r\nX-Third: 3\r\nTo:")


def test_chgheader_change_and_fold(tmp_path, milters):
    m = milters("--mod", "chgheader:1:Subject:changed\\n\\tfolded")
    r = run(tmp_path, m)
    assert b"Subject: changed\r\n\tfolded\r\nX-Remove: x\r\n" in r.message
    assert b"hello" not in r.message


def test_chgheader_delete(tmp_path, milters):
    m = milters("--mod", "chgheader:1:X-Remove:")
    r = run(tmp_path, m)
    assert r.message == MESSAGE.replace(b"X-Remove: x\r\n", b"")


def test_chgheader_index_counts_same_name(tmp_path, milters):
    msg = b"X-Dup: one\r\nSubject: s\r\nx-dup: two\r\nX-Dup: three\r\n\r\nb\r\n"
    m = milters("--mod", "chgheader:2:X-Dup:second", "--mod", "chgheader:3:X-Dup:",
                "--mod", "chgheader:7:X-New:appended")
    r = run(tmp_path, m, message=msg)
    assert r.message == b"X-Dup: one\r\nSubject: s\r\nx-dup: second\r\nX-New: appended\r\n\r\nb\r\n"


def test_addrcpt(tmp_path, milters):
    m = milters("--mod", "addrcpt:<new@example.org>")
    r = run(tmp_path, m)
    assert r.field("rcpt") == ["<b@example.org>", "<new@example.org> added"]


def test_addrcpt_par(tmp_path, milters):
    m = milters("--mod", "addrcpt_par:<new@example.org>:NOTIFY=NEVER")
    r = run(tmp_path, m)
    assert r.field("rcpt") == ["<b@example.org>", "<new@example.org> args=NOTIFY=NEVER added"]


def test_delrcpt(tmp_path, milters):
    m = milters("--mod", "delrcpt:<B@example.org>")
    r = run(tmp_path, m, rcpts=["<b@example.org>", "<c@example.org>"])
    assert r.field("rcpt") == ["<b@example.org> deleted", "<c@example.org>"]


def test_chgfrom(tmp_path, milters):
    m = milters("--mod", "chgfrom:<bounce@example.org>:BODY=8BITMIME")
    r = run(tmp_path, m)
    assert r.field("sender") == ["<bounce@example.org> BODY=8BITMIME"]


def test_replbody(tmp_path, milters):
    m = milters("--mod", "replbody:new body\\nline two\\n")
    r = run(tmp_path, m)
    head = MESSAGE.split(b"\r\n\r\n")[0]
    assert r.message == head + b"\r\n\r\nnew body\r\nline two\r\n"
    assert r.field("body_changed") == ["yes"]


def test_rcpt_reject_one_of_two(tmp_path, milters):
    m = milters("--at", "rcpt=reject", "--match-rcpt", "<bad@example.org>")
    r = run(tmp_path, m, rcpts=["<bad@example.org>", "<b@example.org>"])
    rc = [l for l in r.lines if l.startswith("RCPT ")]
    assert rc == ["RCPT reject 550 5.7.1 Command rejected", "RCPT continue"]
    assert r.field("rcpt") == ["<b@example.org>"]
    assert r.verdict("END-OF-MESSAGE") == "continue"


def test_macros_and_symlist(tmp_path, milters):
    m = milters("--symlist", "0:{client_addr} j {daemon_name} v", "--want-macro", "{client_addr}",
                "--want-macro", "j", "--want-macro", "{daemon_name}", "--want-macro", "v",
                "--want-macro", "{auth_type}", "--want-macro", "_")
    r = run(tmp_path, m, "--macro-defaults", "{auth_type}=none",
            maincf=["myhostname = mx.postern.test"])
    log = m.log()
    assert "macro connect {client_addr}=192.0.2.1" in log
    assert "macro connect j=mx.postern.test" in log
    assert "macro connect {daemon_name}=mx.postern.test" in log
    assert any(l.startswith("macro connect v=Postern") for l in log)
    # the milter's own list replaced ours: "_" is not sent at connect
    assert not any(l.startswith("macro connect _=") for l in log)
    assert "macro mail {auth_type}=none" in log


def test_no_header_reply_and_no_body(tmp_path, milters):
    m = milters("--nr-hdr", "--no", "body", "--mod", "addheader:X-Ok:1")
    r = run(tmp_path, m)
    assert r.verdict("END-OF-MESSAGE") == "continue"
    log = m.log()
    assert sum(1 for l in log if l.startswith("header ")) == 4
    assert not any(l.startswith("body ") for l in log)
    assert b"X-Ok: 1\r\n" in r.message


def test_protocol_2_sends_no_data_or_unknown(tmp_path, milters):
    m = milters()
    r = run(tmp_path, m, maincf=["milter_protocol = 2"])
    assert r.verdict("END-OF-MESSAGE") == "continue"
    log = m.log()
    assert any(l.startswith("negotiate version-offered actions=0x3f ") for l in log)
    assert "data" not in log
    assert not any(l.startswith("unknown") for l in log)


def test_chain_order_and_edits_seen_by_next(tmp_path, milters):
    first = milters("--mod", "addheader:X-First:1", "--mod", "chgheader:1:Subject:by first")
    second = milters("--mod", "addheader:X-Second:2")
    r = run(tmp_path, "%s, %s" % (first.endpoint, second.endpoint))
    assert r.verdict("END-OF-MESSAGE") == "continue"
    log2 = second.log()
    assert "header X-First:1" in log2
    assert "header Subject:by first" in log2
    assert r.message.split(b"\r\n\r\n")[0].endswith(b"X-First: 1\r\nX-Second: 2")


def test_any_reject_wins(tmp_path, milters):
    first = milters("--at", "mail=accept")
    second = milters("--at", "eom=reject")
    r = run(tmp_path, "%s %s" % (first.endpoint, second.endpoint))
    assert r.verdict("MAIL") == "continue"
    assert r.verdict("END-OF-MESSAGE") == "reject 550 5.7.1 Command rejected"
    # the first milter was not asked again for this message
    assert not any(l.startswith("eom") for l in first.log())


def test_two_messages_in_one_session(tmp_path, milters):
    m = milters()
    r = run(tmp_path, m, "--messages", "2")
    assert [l for l in r.lines if l.startswith("END-OF-MESSAGE")] == ["END-OF-MESSAGE continue"] * 2
    log = m.log()
    assert sum(1 for l in log if l.startswith("mail ")) == 2
    assert sum(1 for l in log if l.startswith("connect ")) == 1


def test_abort_after_failed_transaction(tmp_path, milters):
    first = milters()
    second = milters("--at", "data=tempfail")
    r = run(tmp_path, "%s %s" % (first.endpoint, second.endpoint), "--messages", "2")
    assert [l for l in r.lines if l.startswith("DATA")] == [
        "DATA tempfail 451 4.7.1 Service unavailable - try again later"] * 2
    log = first.log()
    # the first milter was told the transaction was cancelled before the next MAIL
    assert log.index("abort") < [i for i, l in enumerate(log) if l.startswith("mail ")][1]


def test_our_received_header_is_hidden(tmp_path, milters):
    """As in Postfix: milters do not see the Received: header we add; CHGHEADER
    indices skip it, INSHEADER positions count it."""
    msg = b"Received: from relay.example\r\nSubject: s\r\n\r\nb\r\n"
    m = milters("--mod", "chgheader:1:Received:from changed.example",
                "--mod", "insheader:1:X-Ins:after ours")
    r = run(tmp_path, m, "--received", " by mx.postern.test", message=msg)
    assert [l for l in m.log() if l.startswith("header ")] == [
        "header Received:from relay.example", "header Subject:s"]
    assert r.message == (b"Received: by mx.postern.test\r\nX-Ins: after ours\r\n"
                         b"Received: from changed.example\r\nSubject: s\r\n\r\nb\r\n")


@pytest.mark.parametrize("spec,seen", [
    ("client6.example,2001:db8::1,2525,6", "connect client6.example 2001:db8::1"),
    ("[192.0.2.9],192.0.2.9,0,4", "connect [192.0.2.9] 192.0.2.9"),
    ("localhost,/run/x.sock,0,L", "connect localhost -"),
    ("unknown,,0,U", "connect unknown -"),
])
def test_connect_families(tmp_path, milters, spec, seen):
    m = milters()
    r = run(tmp_path, m, "--connect", spec)
    assert r.verdict("END-OF-MESSAGE") == "continue", r.stdout + r.stderr
    assert seen in m.log()


def test_unix_socket_endpoint(tmp_path):
    import subprocess
    from milterlib import SCRIPT, stop as stop_proc, wait_for
    path = str(tmp_path / "m.sock")
    logp = str(tmp_path / "u.log")
    p = subprocess.Popen([SCRIPT, "-p", "unix:" + path, "-l", logp, "--mod", "addheader:X-Unix:1"])
    try:
        def accepting():
            import socket
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(path)
                    return True
                except OSError:
                    return False
        wait_for(accepting, 10, "milter socket")
        r = drive(tmp_path, "unix:" + path)
        assert r.verdict("END-OF-MESSAGE") == "continue", r.stdout + r.stderr
        assert b"X-Unix: 1\r\n" in r.message
    finally:
        stop_proc(p, sig=9)


def test_rejected_recipients_only_for_rcpt_rej(tmp_path, milters):
    """Recipients smtpd rejected go only to milters that asked (SMFIP_RCPT_REJ),
    with Postfix's macros; their verdict does not count."""
    wants = milters("--rcpt-rej", "--at", "rcpt=reject", "--match-rcpt", "<nobody@example.org>",
                    "--want-macro", "{rcpt_mailer}", "--want-macro", "{rcpt_host}",
                    "--want-macro", "{rcpt_addr}")
    plain = milters()
    r = run(tmp_path, "%s %s" % (wants.endpoint, plain.endpoint),
            "--rejected-rcpt", "<nobody@example.org>")
    assert [l for l in r.lines if l.startswith("RCPT ")] == ["RCPT continue", "RCPT continue"]
    assert r.field("rcpt") == ["<b@example.org>"]
    log = wants.log()
    assert "rcpt <nobody@example.org>" in log
    assert "macro rcpt {rcpt_mailer}=error" in log
    assert "macro rcpt {rcpt_host}=5.1.1" in log
    assert ("macro rcpt {rcpt_addr}=<nobody@example.org>: Recipient address rejected: "
            "User unknown") in log
    assert "rcpt <nobody@example.org>" not in plain.log()
    assert "rcpt <b@example.org>" in plain.log()


@pytest.mark.parametrize("version,data,unknown", [(2, False, False), (3, False, True),
                                                  (4, True, True), (6, True, True)])
def test_protocol_versions(tmp_path, milters, version, data, unknown):
    m = milters("--mod", "addheader:X-V:%d" % version)
    r = run(tmp_path, "{ %s, protocol=%d }" % (m.endpoint, version))
    assert r.verdict("END-OF-MESSAGE") == "continue", r.stdout + r.stderr
    log = m.log()
    assert ("data" in log) == data
    assert any(l.startswith("unknown ") for l in log) == unknown
    assert b"X-V: %d\r\n" % version in r.message
