"""A real Postfix runs postern-lda as its mailbox_command (local(8)):
`postern-lda -f "$SENDER" -a "$RECIPIENT" -c DIR`, the mailbox coming from
home_mailbox in DIR/main.cf. Mail sent over SMTP lands in ~/<home_mailbox>
once, with Postfix's own envelope headers kept and not doubled, and a
postern-lda failure line ("4.2.2 ...") becomes Postfix's deferral reason
and DSN."""
import os
import re
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from pylib.postfix import Postfix  # noqa: E402
from pylib.util import wait_for  # noqa: E402
from pylib.runas import USER, reachable_bin  # noqa: E402

BIN = os.environ.get("POSTERN_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))
if os.getuid() != 0:
    raise RuntimeError("Postfix local(8) delivery needs root (CI runs as root)")
RCPT = "posterntest@local.test"
LDA = os.path.join(reachable_bin(BIN), "postern-lda")


@pytest.fixture(scope="module")
def pf():
    w = tempfile.mkdtemp(prefix="lda-postfix-")
    os.chmod(w, 0o755)
    # exactly the documented command; where the mail goes comes from a
    # Postern main.cf (home_mailbox, relative to the user's home)
    conf = os.path.join(w, "postern")
    os.mkdir(conf)
    rel = "lda-postfix-%d/" % os.getpid()
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write("home_mailbox = %s\n" % rel)
    os.chmod(conf, 0o755)
    md = os.path.join(USER.pw_dir, rel).rstrip("/")
    cmd = '%s -f "$SENDER" -a "$RECIPIENT" -c %s' % (LDA, conf)
    p = Postfix(w, mailboxes=[], main={
        "mydestination": "local.test",
        "virtual_mailbox_domains": "",
        "virtual_mailbox_maps": "",
        "mailbox_command": cmd,
        "local_recipient_maps": "",
        "export_environment": "TZ",
        "mailbox_size_limit": "0",
    })
    p.start()
    yield p, md
    p.stop()
    shutil.rmtree(md, ignore_errors=True)
    shutil.rmtree(w, ignore_errors=True)


def new_files(md):
    d = os.path.join(md, "new")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_postfix_mailbox_command_delivers(pf):
    p, md = pf
    msg = (b"From: alice@example.net\r\nTo: " + RCPT.encode() + b"\r\nSubject: via postfix\r\n"
           b"Message-ID: <pf1@example.net>\r\n\r\nHello.\r\nFrom here on.\r\n")
    code, text = p.send(p.port(0), "alice@example.net", [RCPT], msg)
    assert code == 250, text
    names = wait_for(lambda: new_files(md), timeout=30, what="delivery:\n" + p.log()[-3000:])
    assert len(names) == 1
    data = open(os.path.join(md, "new", names[0]), "rb").read()
    head = data.split(b"\n\n", 1)[0].split(b"\n")
    # Postfix's From_ line is gone; its Return-Path / X-Original-To / Delivered-To
    # are kept once each, on top, and no loop was seen in them
    assert head[0] == b"Return-Path: <alice@example.net>"
    assert sum(h.startswith(b"Return-Path:") for h in head) == 1
    assert sum(h.lower() == b"delivered-to: " + RCPT.encode() for h in head) == 1
    assert not data.startswith(b"From ")
    assert data.endswith(b"\n\nHello.\nFrom here on.\n")
    assert b"Subject: via postfix" in data and b"Received: from" in data
    assert re.search(r",S=%d,W=\d+$" % len(data), names[0])
    log = wait_for(lambda: "status=sent" in p.log() and p.log(), what="postfix log")
    assert re.search(r"to=<%s>.*relay=local.*status=sent \(delivered to command" % re.escape(RCPT), log), log


def test_postfix_defers_on_lda_tempfail_with_its_reason(pf):
    p, md = pf
    before = new_files(md)
    assert before, "needs the first test's delivery"
    used = sum(os.path.getsize(os.path.join(md, "new", n)) for n in before)
    # the limit in maildirsize's first line, as Dovecot or Courier would leave it
    with open(os.path.join(md, "maildirsize"), "w") as f:
        f.write("%dS\n%d %d\n" % (used + 2000, used, len(before)))
    os.chown(os.path.join(md, "maildirsize"), USER.pw_uid, USER.pw_gid)
    big = b"Subject: too big for the quota\r\n\r\n" + b"x" * 76 * 100 + b"\r\n"
    code, text = p.send(p.port(0), "bob@example.net", [RCPT], big)
    assert code == 250, text
    line = wait_for(lambda: next((l for l in p.log().splitlines()
                                  if "status=deferred" in l and "bob@example.net" not in l
                                  and "4.2.2" in l), None),
                    timeout=30, what="deferral in maillog:\n" + p.log()[-3000:])
    assert "dsn=4.2.2" in line and "over quota" in line, line
    assert new_files(md) == before
