"""postern-lda into mbox: format, locking, 50 concurrent writers, lock
timeouts, and kill -9 in the middle of writing (Maildir and mbox)."""
import fcntl
import os
import re
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from pylib.runas import ROOT, USER, as_user  # noqa: E402

from test_lda import LDA, lda, w  # noqa: E402,F401 (w: the work directory fixture)

FROM_LINE = re.compile(rb"^From (\S+) (Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                       rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 0-9]\d "
                       rb"\d\d:\d\d:\d\d \d{4}$")


def start(args, data=None):
    return subprocess.Popen([LDA] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=as_user)


def split_mbox(data):
    """Messages of an mbox: a From_ line at the start or after an empty line."""
    assert data.startswith(b"From ")
    msgs = []
    cur = None
    lines = data.split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    for i, line in enumerate(lines):
        if line.startswith(b"From ") and (i == 0 or lines[i - 1] == b""):
            assert FROM_LINE.match(line), line
            if cur is not None:
                msgs.append(cur)
            cur = [line]
        else:
            cur.append(line)
    msgs.append(cur)
    for m in msgs:
        assert m[-1] == b"", "message does not end with an empty line"
    return [(m[0], b"\n".join(m[1:-1]) + b"\n") for m in msgs]


def unquote(body):
    return re.sub(rb"(?m)^>(>*From )", rb"\1", body)


def test_mbox_format_and_mboxrd_quoting(w):
    mbox = os.path.join(w, "mbox")
    msg = b"Subject: q\r\n\r\nFrom start\r\n>From one\r\n>>From two\r\nFromage\r\n"
    assert lda(["-f", "alice@example.net", "-r", "bob@example.org", "--mbox", mbox], msg) == (0, b"")
    assert lda(["-f", "<>", "-r", "bob@example.org", "--mbox", mbox], b"Subject: 2\n\nno newline") == (0, b"")
    data = open(mbox, "rb").read()
    msgs = split_mbox(data)
    assert len(msgs) == 2
    assert msgs[0][0].startswith(b"From alice@example.net ")
    assert msgs[0][1] == (b"Return-Path: <alice@example.net>\nDelivered-To: bob@example.org\n"
                          b"Subject: q\n\n>From start\n>>From one\n>>>From two\nFromage\n")
    assert unquote(msgs[0][1]).endswith(b"\n\nFrom start\n>From one\n>>From two\nFromage\n")
    assert msgs[1][0].startswith(b"From MAILER-DAEMON ")
    assert msgs[1][1] == b"Return-Path: <>\nDelivered-To: bob@example.org\nSubject: 2\n\nno newline\n"
    assert os.stat(mbox).st_mode & 0o777 == 0o600
    assert not os.path.exists(mbox + ".lock")


def test_appends_after_file_without_final_newline(w):
    mbox = os.path.join(w, "mbox")
    with open(mbox, "wb") as f:
        f.write(b"From x@y Mon Jan  1 09:05:00 2024\nSubject: old\n\nbroken tail")
    if ROOT:
        os.chown(mbox, USER.pw_uid, USER.pw_gid)
    assert lda(["-f", "a@b", "--mbox", mbox], b"Subject: new\n\nb\n") == (0, b"")
    msgs = split_mbox(open(mbox, "rb").read())
    assert [m[1].split(b"\n")[0] for m in msgs] == [b"Subject: old", b"Return-Path: <a@b>"]


def test_fifty_concurrent_writers(w):
    mbox = os.path.join(w, "mbox")
    bodies = {}
    procs = []
    for i in range(50):
        # varied sizes, and body lines that need quoting
        body = (b"Subject: msg %d\n\nFrom line in %d\n" % (i, i)) + (b"%02d" % i) * (i * 300) + b"\n"
        bodies[i] = body
        p = start(["-f", "s%d@example.net" % i, "-r", "u@example.org", "--mbox", mbox])
        procs.append(p)
    for i, p in enumerate(procs):
        p.stdin.write(bodies[i])
        p.stdin.close()
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
        p.stderr.close()
        p.stdout.close()
    msgs = split_mbox(open(mbox, "rb").read())
    assert len(msgs) == 50
    seen = set()
    for from_line, text in msgs:
        sender = from_line.split(b" ")[1]
        i = int(sender[1:sender.index(b"@")])
        want = b"Return-Path: <%s>\nDelivered-To: u@example.org\n" % sender + bodies[i]
        assert unquote(text) == want.replace(b"\n>From", b"\nFrom"), i
        seen.add(i)
    assert seen == set(range(50))
    assert not os.path.exists(mbox + ".lock")


def test_lock_timeouts_leave_mbox_alone(w):
    mbox = os.path.join(w, "mbox")
    assert lda(["-f", "a@b", "--mbox", mbox], b"Subject: 1\n\nb\n") == (0, b"")
    before = open(mbox, "rb").read()
    # another process holds the fcntl lock
    with open(mbox, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        t0 = time.monotonic()
        rc, err = lda(["-o", "lock_timeout=1", "-f", "a@b", "--mbox", mbox], b"Subject: 2\n\nb\n")
        assert rc == 75 and err.startswith(b"4.2.0 ") and err.count(b"\n") == 1, err
        assert time.monotonic() - t0 < 10
    # another program holds the dotlock (fresh, not ours to break)
    with open(mbox + ".lock", "wb"):
        pass
    rc, err = lda(["-o", "lock_timeout=1", "-f", "a@b", "--mbox", mbox], b"Subject: 3\n\nb\n")
    assert rc == 75 and err.startswith(b"4.2.0 "), err
    assert open(mbox, "rb").read() == before
    # a dotlock older than the stale limit is broken
    old = time.time() - 3600
    os.utime(mbox + ".lock", (old, old))
    assert lda(["-o", "lock_timeout=5", "-f", "a@b", "--mbox", mbox], b"Subject: 4\n\nb\n") == (0, b"")
    assert len(split_mbox(open(mbox, "rb").read())) == 2


BIG = b"Subject: big\n\n" + (b"z" * 99 + b"\n") * 400000      # 40 MB


def kill_when(p, started, what):
    """SIGKILL p as soon as started() is true. Returns True when the signal
    landed while p was still running (mid-delivery), False when p had
    already finished on its own (then the caller tries again)."""
    deadline = time.monotonic() + 60
    while not started():                 # poll for the write to begin
        if p.poll() is not None:
            break
        assert time.monotonic() < deadline, "no " + what
    if p.poll() is None:
        p.send_signal(signal.SIGKILL)
    p.wait()
    p.stderr.close()
    p.stdout.close()
    return p.returncode == -signal.SIGKILL


def test_kill9_during_maildir_delivery(w):
    md = os.path.join(w, "Maildir")
    assert lda(["--maildir", md], b"Subject: first\n\n")[0] == 0
    tmp = os.path.join(md, "tmp")
    want = b"Return-Path: <a@b>\nDelivered-To: u@d\n" + BIG
    for attempt in range(5):
        p = start(["-f", "a@b", "-r", "u@d", "--maildir", md])
        p.stdin.write(BIG)
        p.stdin.close()
        killed = kill_when(p, lambda: writing_in(p.pid, tmp), "file in tmp/")
        for name in os.listdir(os.path.join(md, "new")):
            data = open(os.path.join(md, "new", name), "rb").read()
            # whatever is in new/ is whole: the first message, or all of this one
            assert data == want or data.endswith(b"Subject: first\n\n"), (name, len(data))
        # the unnamed (O_TMPFILE) file died with the process: tmp/ is clean
        assert os.listdir(tmp) == []
        if killed:
            break
    assert killed, "never caught a delivery in the middle"


def writing_in(pid, directory):
    """Whether process pid has a file in directory open (named or not)."""
    fds = "/proc/%d/fd" % pid
    try:
        names = os.listdir(fds)
    except OSError:
        return False
    for n in names:
        try:
            if os.readlink(os.path.join(fds, n)).startswith(directory + "/"):
                return True
        except OSError:
            pass
    return False


def test_kill9_during_mbox_append_is_cut_back(w):
    mbox = os.path.join(w, "mbox")
    assert lda(["-f", "a@b", "--mbox", mbox], b"Subject: first\n\nb\n") == (0, b"")
    for attempt in range(5):
        before = open(mbox, "rb").read()
        p = start(["-f", "a@b", "--mbox", mbox])
        p.stdin.write(BIG)
        p.stdin.close()
        if kill_when(p, lambda: os.path.getsize(mbox) != len(before), "append"):
            break
        assert p.returncode == 0        # finished first: a whole message, try again
        assert split_mbox(open(mbox, "rb").read())[-1][1].endswith(BIG)
    assert p.returncode == -signal.SIGKILL, "never caught an append in the middle"
    # the killed writer's dotlock still guards the mbox and says where to cut
    lock = open(mbox + ".lock", "rb").read()
    assert lock == b"%d %d\n" % (p.pid, len(before))
    # the next delivery cuts the partial message off before appending
    assert lda(["-f", "c@d", "--mbox", mbox], b"Subject: next\n\nb\n") == (0, b"")
    data = open(mbox, "rb").read()
    assert data.startswith(before)
    msgs = split_mbox(data)
    assert len(msgs) == len(split_mbox(before)) + 1
    assert [re.search(rb"(?m)^Subject: .*$", m[1]).group(0) for m in msgs][-1] == b"Subject: next"
    assert not os.path.exists(mbox + ".lock")


def test_spool_without_dotlock_permission_uses_fcntl_alone(w):
    """Like Debian's /var/mail (root:mail 2775) for a user outside group mail."""
    if not ROOT:
        pytest.fail("needs root to make a spool the user cannot write (CI runs as root)")
    spool = os.path.join(w, "spool")
    os.mkdir(spool, 0o755)                     # owned by root
    mbox = os.path.join(spool, USER.pw_name)
    open(mbox, "wb").close()
    os.chown(mbox, USER.pw_uid, USER.pw_gid)
    procs = [start(["-f", "s%d@x" % i, "--mbox", mbox]) for i in range(10)]
    for i, p in enumerate(procs):
        p.stdin.write(b"Subject: %d\n\n" % i + b"line\n" * (i * 500))
        p.stdin.close()
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read()
        p.stderr.close()
        p.stdout.close()
    msgs = split_mbox(open(mbox, "rb").read())
    assert len(msgs) == 10
    for from_line, text in msgs:
        i = int(from_line.split(b" ")[1][1:].split(b"@")[0])
        assert text.endswith(b"Subject: %d\n\n" % i + b"line\n" * (i * 500))
    assert os.listdir(spool) == [USER.pw_name]
    # and a missing mbox cannot be created there: 5.2.0, not a crash
    other = os.path.join(spool, "other")
    rc, err = lda(["--mbox", other], b"Subject: x\n\n")
    assert rc == 77 and err.startswith(b"5.2.0 "), err


def test_fifty_concurrent_maildir_deliveries(w):
    md = os.path.join(w, "Maildir")
    procs = [start(["-f", "s%d@x" % i, "--maildir", md]) for i in range(50)]
    for i, p in enumerate(procs):
        p.stdin.write(b"Subject: %d\n\nbody %d\n" % (i, i))
        p.stdin.close()
    for p in procs:
        assert p.wait(60) == 0, p.stderr.read()
        p.stderr.close()
        p.stdout.close()
    names = os.listdir(os.path.join(md, "new"))
    assert len(names) == 50 and os.listdir(os.path.join(md, "tmp")) == []
    subjects = set()
    for n in names:
        data = open(os.path.join(md, "new", n), "rb").read()
        assert n.endswith(",S=%d,W=%d" % (len(data), len(data) + data.count(b"\n")))
        subjects.add(re.search(rb"Subject: (\d+)", data).group(1))
    assert len(subjects) == 50
