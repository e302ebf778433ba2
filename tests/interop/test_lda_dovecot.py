"""Dovecot reads what postern-lda delivers: every message fetched through
IMAP and POP3 byte for byte, RFC822.SIZE equal to the ,W= in the file name,
sizes from ,S= honoured, flags as for new mail, and `doveadm force-resync`
has nothing to repair. Both a Maildir (with a Maildir++ folder) and an mbox."""
import imaplib
import os
import poplib
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from pylib.dovecot import Dovecot, DovecotUser  # noqa: E402
from pylib.runas import ROOT, USER, as_user, reachable_bin  # noqa: E402

BIN = os.environ.get("POSTERN_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))
LDA = os.path.join(BIN, "postern-lda")

MESSAGES = [
    b"From: a@example.net\r\nTo: bob@example.org\r\nSubject: plain\r\n\r\nHello Bob.\r\n",
    b"From: a@example.net\nSubject: lf only\n\nline\nFrom the start\n>From quoted\n.\n..dots\n",
    b"From: a@example.net\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9 \xe2\x82\xac\r\n",
    b"From: a@example.net\r\nSubject: big\r\n\r\n" + b"".join(b"%06d %s\r\n" % (i, b"x" * 90) for i in range(3000)),
    b"Subject: no final newline\r\n\r\nlast line",
    b"Subject: bare cr\r\n\r\nbefore\rafter\r\n",
    b"Subject: cr cr lf\r\n\r\nodd\r\r\nline\r\n" + b"y" * 1200 + b"\r\n",
]


LDA = os.path.join(reachable_bin(BIN), "postern-lda")

def deliver(args, data):
    p = subprocess.run([LDA] + args, input=data, capture_output=True, preexec_fn=as_user, timeout=60)
    assert (p.returncode, p.stderr) == (0, b""), p.stderr


def crlf(b):
    """What IMAP/POP3 send for stored bytes: every LF as CRLF."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", b)


@pytest.fixture(scope="module")
def env():
    w = tempfile.mkdtemp(prefix="lda-dovecot-")
    os.chmod(w, 0o755)
    home = os.path.join(w, "bob")
    home2 = os.path.join(w, "carol")
    for d in (home, home2, os.path.join(home2, "mail")):
        os.makedirs(d)
        if ROOT:
            os.chown(d, USER.pw_uid, USER.pw_gid)
    md = os.path.join(home, "Maildir")
    mbox = os.path.join(home2, "inbox")
    for i, m in enumerate(MESSAGES):
        deliver(["-f", "a@example.net", "-a", "bob@example.org", "-d", "bob", "--maildir", md, "-e"], m)
        deliver(["-f", "a@example.net", "-a", "carol@example.org", "-d", "carol", "--mbox", mbox, "-e"], m)
    deliver(["-f", "a@example.net", "-a", "bob@example.org", "-m", "Work", "--maildir", md], MESSAGES[0])
    # a UTF-8 folder name, as dovecot-lda -m takes it, two levels deep
    deliver(["-f", "a@example.net", "-m", "Caf\u00e9.\u65e5\u672c", "--maildir", md], MESSAGES[1])
    files = {}
    for name in os.listdir(os.path.join(md, "new")):
        files[name] = open(os.path.join(md, "new", name), "rb").read()
    mbox_bytes = open(mbox, "rb").read()      # before Dovecot rewrites it
    dv = Dovecot(w, [
        DovecotUser("bob", "pw1", USER.pw_uid, USER.pw_gid, home, "maildir:" + md),
        DovecotUser("carol", "pw2", USER.pw_uid, USER.pw_gid, home2,
                    "mbox:%s:INBOX=%s" % (os.path.join(home2, "mail"), mbox)),
    ])
    dv.start()
    yield dict(w=w, md=md, mbox=mbox, files=files, mbox_bytes=mbox_bytes, dv=dv)
    dv.stop()
    shutil.rmtree(w, ignore_errors=True)


def order_by_time(files):
    """Maildir files in delivery order (seconds, then microseconds)."""
    def key(n):
        m = re.match(r"^(\d+)\.M(\d+)P", n)
        return (int(m.group(1)), int(m.group(2)))
    return sorted(files, key=key)


def imap_fetch_all(dv, user, pw, box="INBOX"):
    c = imaplib.IMAP4("127.0.0.1", dv.imap_port)
    try:
        c.login(user, pw)
        typ, data = c.select(box, readonly=True)
        assert typ == "OK", data
        n = int(data[0])
        out = []
        if n:
            typ, data = c.fetch("1:*", "(RFC822.SIZE FLAGS BODY.PEEK[])")
            assert typ == "OK"
            for item in data:
                if isinstance(item, tuple):
                    meta = item[0]
                    size = int(re.search(rb"RFC822\.SIZE (\d+)", meta).group(1))
                    flags = re.search(rb"FLAGS \(([^)]*)\)", meta).group(1)
                    out.append((size, flags, item[1]))
        typ, boxes = c.list()
        c.logout()
        return out, boxes
    except Exception:
        c.shutdown()
        raise


def test_imap_maildir_bytes_sizes_flags(env):
    dv = env["dv"]
    names = order_by_time(env["files"])
    msgs, boxes = imap_fetch_all(dv, "bob", "pw1")
    assert len(msgs) == len(MESSAGES) == len(names)
    for name, (size, flags, body) in zip(names, msgs):
        stored = env["files"][name]
        s = int(re.search(r",S=(\d+)", name).group(1))
        wsize = int(re.search(r",W=(\d+)", name).group(1))
        assert s == len(stored)
        assert body == crlf(stored), name
        assert size == wsize == len(body), name
        assert b"\\Seen" not in flags and b"\\Deleted" not in flags
    # the message contents are the input with our two headers on top
    for (size, flags, body), m in zip(msgs, MESSAGES):
        assert body == crlf(b"Return-Path: <a@example.net>\nDelivered-To: bob@example.org\n" + m.replace(b"\r\n", b"\n"))
    assert any(b'"Work"' in b or b" Work" in b for b in boxes), boxes
    work, _ = imap_fetch_all(dv, "bob", "pw1", "Work")
    assert len(work) == 1 and work[0][2].endswith(b"Hello Bob.\r\n")
    # Dovecot lists it under its modified UTF-7 name and reads it
    assert any(b.rstrip(b'"').endswith(b'Caf&AOk-.&ZeVnLA-') for b in boxes), boxes
    cafe, _ = imap_fetch_all(dv, "bob", "pw1", '"Caf&AOk-.&ZeVnLA-"')
    assert len(cafe) == 1 and cafe[0][2].endswith(b"..dots\r\n")


def test_pop3_maildir(env):
    dv = env["dv"]
    names = order_by_time(env["files"])
    p = poplib.POP3("127.0.0.1", dv.pop3_port, timeout=30)
    try:
        p.user("bob")
        p.pass_("pw1")
        count, total = p.stat()
        assert count == len(names)
        wsizes = [int(re.search(r",W=(\d+)", n).group(1)) for n in names]
        assert total == sum(wsizes)
        _, listing, _ = p.list()
        assert [int(x.split()[1]) for x in listing] == wsizes
        for i, name in enumerate(names):
            _, lines, octets = p.retr(i + 1)
            got = b"\r\n".join(lines) + b"\r\n"
            want = crlf(env["files"][name])
            if not want.endswith(b"\r\n"):
                want += b"\r\n"      # POP3 ends the last line itself
            assert got == want, name
    finally:
        p.quit()


def test_imap_and_pop3_mbox(env):
    dv = env["dv"]
    raw = env["mbox_bytes"]
    assert raw.count(b"\nFrom a@example.net ") + raw.startswith(b"From a@example.net ") == len(MESSAGES)
    msgs, _ = imap_fetch_all(dv, "carol", "pw2")
    assert len(msgs) == len(MESSAGES)
    for (size, flags, body), m in zip(msgs, MESSAGES):
        stored = b"Return-Path: <a@example.net>\nDelivered-To: carol@example.org\n" + m.replace(b"\r\n", b"\n")
        stored = re.sub(rb"(?m)^(>*From )", rb">\1", stored)    # Dovecot returns mboxrd quoting as stored
        if not stored.endswith(b"\n"):
            stored += b"\n"                                      # mbox adds the final newline
        assert body == crlf(stored)
        assert size == len(body)
        assert b"\\Seen" not in flags
    p = poplib.POP3("127.0.0.1", dv.pop3_port, timeout=30)
    try:
        p.user("carol")
        p.pass_("pw2")
        count, total = p.stat()
        assert count == len(MESSAGES)
        assert total == sum(m[0] for m in msgs)
        for i, (size, flags, body) in enumerate(msgs):
            _, lines, octets = p.retr(i + 1)
            assert b"\r\n".join(lines) + b"\r\n" == body
    finally:
        p.quit()


def test_doveadm_force_resync_finds_nothing(env):
    dv = env["dv"]
    for user in ("bob", "carol"):
        r = dv.doveadm("force-resync", "-u", user, "*")
        assert r.returncode == 0 and r.stdout == b"" and r.stderr == b"", (user, r)
    log = dv.read_log()
    assert "rror" not in log and "Broken" not in log and "Corrupted" not in log, log


def test_delivery_while_dovecot_runs(env):
    """New mail delivered after Dovecot built its indexes shows up too."""
    dv = env["dv"]
    before, _ = imap_fetch_all(dv, "bob", "pw1")
    deliver(["-f", "z@example.net", "-a", "bob@example.org", "--maildir", env["md"]], b"Subject: late\n\nhi\n")
    after, _ = imap_fetch_all(dv, "bob", "pw1")
    assert len(after) == len(before) + 1
    assert after[-1][2].endswith(b"Subject: late\r\n\r\nhi\r\n")
    r = dv.doveadm("force-resync", "-u", "bob", "INBOX")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


def quota_rows(out):
    """`doveadm quota get` table -> {type: (value, limit)}."""
    rows = {}
    for line in out.decode().splitlines()[1:]:
        cols = line.split()
        rows[cols[-4]] = (int(cols[-3]), cols[-2])
    return rows


def test_dovecot_quota_reads_our_maildirsize():
    """Dovecot's maildir quota backend and postern-lda share maildirsize."""
    w = tempfile.mkdtemp(prefix="lda-dovecot-quota-")
    os.chmod(w, 0o755)
    home = os.path.join(w, "dave")
    os.makedirs(home)
    if ROOT:
        os.chown(home, USER.pw_uid, USER.pw_gid)
    md = os.path.join(home, "Maildir")
    dv = Dovecot(w, [DovecotUser("dave", "pw3", USER.pw_uid, USER.pw_gid, home, "maildir:" + md)],
                 extra_conf="mail_plugins = $mail_plugins quota\n"
                            "plugin {\n  quota = maildir:User quota\n  quota_rule = *:storage=10K:messages=3\n}\n")
    try:
        for i in range(2):
            deliver(["-f", "a@example.net", "-o", "maildir_quota=10240S,3C", "--maildir", md],
                    b"Subject: q%d\n\n" % i + b"z" * 2000 + b"\n")
        stored = sum(os.path.getsize(os.path.join(md, "new", n)) for n in os.listdir(os.path.join(md, "new")))
        dv.start()
        r = dv.doveadm("quota", "get", "-u", "dave")
        assert r.returncode == 0, r
        rows = quota_rows(r.stdout)
        assert rows["MESSAGE"] == (2, "3"), r.stdout
        assert rows["STORAGE"][0] == (stored + 1023) // 1024 and rows["STORAGE"][1] == "10", r.stdout
        # over Dovecot's message limit as counted by both: postern-lda refuses the 4th
        deliver(["-f", "a@example.net", "--maildir", md], b"Subject: third\n\nx\n")
        p = subprocess.run([LDA, "-f", "a@example.net", "--maildir", md], input=b"Subject: 4\n\nx\n",
                           capture_output=True, preexec_fn=as_user, timeout=60)
        assert p.returncode == 75 and p.stderr.startswith(b"4.2.2 "), p.stderr
        r = dv.doveadm("quota", "get", "-u", "dave")
        assert quota_rows(r.stdout)["MESSAGE"] == (3, "3"), r.stdout
    finally:
        dv.stop()
        shutil.rmtree(w, ignore_errors=True)
