"""postern-lda: Maildir delivery, headers, exit codes, configuration, safety,
quota and a full disk. Runs the built binary as the `posterntest` user (it
refuses root) in directories that user owns."""
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from pylib.runas import ROOT, USER, as_user, reachable_bin  # noqa: E402

BIN = os.environ.get("POSTERN_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "bin"))
LDA = os.path.join(BIN, "postern-lda")
STATUS_LINE = re.compile(rb"^[45]\.\d{1,3}\.\d{1,3} \S.*\n$")

MSG = (b"From: Alice <alice@example.net>\r\nTo: bob@example.org\r\nSubject: hello\r\n"
       b"Message-ID: <1@example.net>\r\n\r\nline one\r\nFrom the start\r\n>From quoted\r\n")


LDA = os.path.join(reachable_bin(BIN), "postern-lda")

def lda(args, data=MSG, user=True, timeout=60):
    """Run postern-lda; returns (exit code, stderr bytes)."""
    p = subprocess.run([LDA] + args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       preexec_fn=as_user if user else None, timeout=timeout)
    return p.returncode, p.stderr


def ok(args, data=MSG):
    rc, err = lda(args, data)
    assert (rc, err) == (0, b""), err
    return rc


def fails(args, code, dsn, data=MSG):
    rc, err = lda(args, data)
    assert rc == code, (rc, err)
    assert STATUS_LINE.match(err), err          # exactly one line, status code first
    assert err.startswith(dsn.encode() + b" "), err
    return err


@pytest.fixture
def w():
    d = tempfile.mkdtemp(prefix="lda-")
    os.chmod(d, 0o755)
    if ROOT:
        os.chown(d, USER.pw_uid, USER.pw_gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tree(d):
    """Every file under d with its bytes (for byte-identical comparisons)."""
    out = {}
    for base, dirs, files in os.walk(d):
        for f in files:
            p = os.path.join(base, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
        for x in dirs:
            out[os.path.relpath(os.path.join(base, x), d) + "/"] = None
    return out


def only_file(d):
    names = os.listdir(d)
    assert len(names) == 1, names
    return names[0], open(os.path.join(d, names[0]), "rb").read()


# ---------------------------------------------------------------- Maildir

def test_maildir_bytes_name_and_modes(w):
    md = os.path.join(w, "Maildir")
    ok(["-f", "alice@example.net", "-a", "bob@example.org", "-d", "bob", "--maildir", md, "-e"])
    name, body = only_file(os.path.join(md, "new"))
    want = (b"Return-Path: <alice@example.net>\nDelivered-To: bob@example.org\n"
            + MSG.replace(b"\r\n", b"\n"))
    assert body == want
    m = re.match(r"^(\d+)\.M(\d+)P(\d+)Q(\d+)\.([^/:]+),S=(\d+),W=(\d+)$", name)
    assert m, name
    assert int(m.group(6)) == len(body)
    assert int(m.group(7)) == len(body.replace(b"\n", b"\r\n"))
    assert os.listdir(os.path.join(md, "tmp")) == [] and os.listdir(os.path.join(md, "cur")) == []
    assert stat.S_IMODE(os.stat(os.path.join(md, "new", name)).st_mode) == 0o600
    for sub in ("", "tmp", "new", "cur"):
        st = os.stat(os.path.join(md, sub))
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == USER.pw_uid


def test_postern_queue_call_with_final_recipient(w):
    """The queue's call: -f -a ORIGINAL -r FINAL -d USER --maildir -e."""
    md = os.path.join(w, "Maildir")
    ok(["-f", "<a@b.example>", "-a", "alias@d.example", "-r", "bob@d.example", "-d", "bob",
        "--maildir", md, "-e"])
    _, body = only_file(os.path.join(md, "new"))
    assert body.startswith(b"Return-Path: <a@b.example>\nX-Original-To: alias@d.example\n"
                           b"Delivered-To: bob@d.example\nFrom: Alice")
    # the same call for a bounce (null sender) into an mbox
    mbox = os.path.join(w, "bob.mbox")
    ok(["-f", "", "-a", "alias@d.example", "-r", "bob@d.example", "-d", "bob", "--mbox", mbox, "-e"])
    data = open(mbox, "rb").read()
    assert re.match(rb"^From MAILER-DAEMON \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n"
                    rb"Return-Path: <>\nX-Original-To: alias@d.example\nDelivered-To: bob@d.example\n"
                    rb"From: Alice", data), data[:200]
    assert data.endswith(b"\n>From the start\n>>From quoted\n\n")


def test_missing_parents_of_a_maildir_are_created(w):
    """As Postfix's maildir delivery: /base/user/Maildir with no user dir yet."""
    md = os.path.join(w, "mail", "alice", "Maildir")
    ok(["-f", "a@b", "-r", "alice@example.test", "-d", "alice", "--maildir", md])
    assert len(os.listdir(os.path.join(md, "new"))) == 1
    for d in (os.path.join(w, "mail"), os.path.join(w, "mail", "alice"), md):
        st = os.stat(d)
        assert st.st_uid == USER.pw_uid and stat.S_IMODE(st.st_mode) == 0o700
    # an mbox's directory is not created (as Postfix): 5.2.0
    fails(["--mbox", os.path.join(w, "nodir", "mbox")], 73, "5.2.0")
    assert not os.path.exists(os.path.join(w, "nodir"))


def test_two_deliveries_get_distinct_names(w):
    md = os.path.join(w, "Maildir")
    for _ in range(5):
        ok(["-f", "a@b", "--maildir", md])
    assert len(os.listdir(os.path.join(md, "new"))) == 5


def test_odd_input_is_stored_as_given(w):
    md = os.path.join(w, "Maildir")
    data = b"Subject: odd\x00\r\nX: bare\rcr\r\n\r\n" + b"x" * 2000 + b"\r\nnul\x00byte\r\r\nno final newline"
    ok(["-f", "a@b", "-r", "u@d", "--maildir", md], data)
    name, body = only_file(os.path.join(md, "new"))
    assert body == b"Return-Path: <a@b>\nDelivered-To: u@d\n" + data.replace(b"\r\n", b"\n")
    assert name.endswith(",S=%d,W=%d" % (len(body), len(body) + body.count(b"\n") - body.count(b"\r\n")))


def test_leading_from_line_is_envelope(w):
    md = os.path.join(w, "Maildir")
    ok(["-r", "u@d", "--maildir", md], b"From zed@y.example  Mon Jan  1 09:05:00 2024\nSubject: s\n\nb\n")
    _, body = only_file(os.path.join(md, "new"))
    assert body == b"Return-Path: <zed@y.example>\nDelivered-To: u@d\nSubject: s\n\nb\n"


def test_folder_maildirplusplus(w):
    md = os.path.join(w, "Maildir")
    ok(["-f", "a@b", "-m", "Lists.Postern", "--maildir", md])
    folder = os.path.join(md, ".Lists.Postern")
    assert os.path.isfile(os.path.join(folder, "maildirfolder"))
    assert len(os.listdir(os.path.join(folder, "new"))) == 1
    assert os.listdir(os.path.join(md, "new")) == []
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    ok(["-f", "a@b", "-m", "INBOX", "--maildir", md])
    assert len(os.listdir(os.path.join(md, "new"))) == 1


def test_delivered_to_loop(w):
    md = os.path.join(w, "Maildir")
    data = b"Received: from x\nDelivered-To: Bob@Example.org\nSubject: loop\n\nb\n"
    err = fails(["-f", "a@b", "-a", "bob@example.org", "--maildir", md], 65, "5.4.6", data)
    assert b"loop" in err
    assert not os.path.exists(os.path.join(md, "new")) or os.listdir(os.path.join(md, "new")) == []
    # another recipient's Delivered-To is no loop
    ok(["-f", "a@b", "-a", "carol@example.org", "--maildir", md], data)


# ---------------------------------------------------------------- exit codes, CLI, config

def test_refuses_root(w):
    if not ROOT:
        pytest.fail("needs root (CI runs as root)")
    rc, err = lda(["--maildir", os.path.join(w, "M")], user=False)
    assert rc == 75 and err.startswith(b"4.3.5 ") and STATUS_LINE.match(err)
    assert not os.path.exists(os.path.join(w, "M"))


def test_usage_errors(w):
    fails(["-x"], 64, "5.3.0")
    fails(["--maildir", w + "/a", "--mbox", w + "/b"], 64, "5.3.0")
    fails(["-o", "novalue", "--maildir", w + "/a"], 64, "5.3.0")
    fails(["-f", "a@b\nBcc: evil@x", "--maildir", w + "/a"], 64, "5.1.7")
    fails(["-a", "a@b\r\nX: y", "--maildir", w + "/a"], 64, "5.1.3")
    assert os.listdir(w) == []


def test_unknown_user_and_bad_config(w):
    conf = os.path.join(w, "conf")
    os.mkdir(conf)
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write("home_mailbox = Maildir/\n")
    fails(["-c", conf, "-d", "no-such-user-xyz"], 67, "5.1.1")
    fails(["-c", os.path.join(w, "missing")], 78, "4.3.5")
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write("home_mailbox = ../escape/\n")
    fails(["-c", conf], 78, "4.3.5")
    fails(["-o", "maildir_quota=lots", "--maildir", w + "/a"], 78, "4.3.5")
    fails(["-o", "lock_timeout=-1", "--maildir", w + "/a"], 78, "4.3.5")


def test_main_cf_home_mailbox_and_spool(w):
    conf = os.path.join(w, "conf")
    os.mkdir(conf)
    rel = "lda-test-%d/" % os.getpid()
    target = os.path.join(USER.pw_dir, rel)
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write("home_mailbox = %s\n" % rel)
    try:
        ok(["-c", conf, "-f", "a@b", "-d", USER.pw_name])
        assert len(os.listdir(os.path.join(target, "new"))) == 1
        ok(["-c", conf, "-f", "a@b"])           # no -d: the running user
        assert len(os.listdir(os.path.join(target, "new"))) == 2
    finally:
        shutil.rmtree(target, ignore_errors=True)
    spool = os.path.join(w, "spool")
    os.mkdir(spool)
    if ROOT:
        os.chown(spool, USER.pw_uid, USER.pw_gid)
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write("mail_spool_directory = %s\n" % spool)
    ok(["-c", conf, "-f", "a@b", "-d", USER.pw_name])
    body = open(os.path.join(spool, USER.pw_name), "rb").read()
    assert body.startswith(b"From a@b ") and body.endswith(b"\n\n")
    # -o overrides main.cf for the spool too
    spool2 = os.path.join(w, "spool2")
    os.mkdir(spool2)
    if ROOT:
        os.chown(spool2, USER.pw_uid, USER.pw_gid)
    ok(["-c", conf, "-o", "mail_spool_directory=" + spool2, "-f", "a@b"])
    assert os.path.getsize(os.path.join(spool2, USER.pw_name)) > 0


def test_dovecot_style_c_file(w):
    """dovecot-lda's -c takes a file: main.cf is read from its directory, a
    dovecot.conf is ignored with an explicit target and refused without."""
    conf = os.path.join(w, "conf")
    os.mkdir(conf)
    spool = os.path.join(w, "spool")
    os.mkdir(spool)
    if ROOT:
        os.chown(spool, USER.pw_uid, USER.pw_gid)
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write("mail_spool_directory = %s\n" % spool)
    with open(os.path.join(conf, "dovecot.conf"), "w") as f:
        f.write("mail_location = maildir:~/Maildir\n")
    ok(["-c", os.path.join(conf, "main.cf"), "-f", "a@b"])
    assert os.path.getsize(os.path.join(spool, USER.pw_name)) > 0
    ok(["-c", os.path.join(conf, "dovecot.conf"), "-f", "a@b", "--maildir", os.path.join(w, "M")])
    fails(["-c", os.path.join(conf, "dovecot.conf"), "-f", "a@b"], 78, "4.3.5")


def test_unknown_o_is_warned_not_fatal(w):
    log = os.path.join(w, "lda.log")
    md = os.path.join(w, "Maildir")
    ok(["-o", "no_such_thing=1", "-o", "maillog_file=" + log, "--maildir", md])
    text = open(log).read()
    assert "postern/lda[" in text and "no_such_thing: unknown parameter" in text
    assert "status=sent" in text


# ---------------------------------------------------------------- safety

def test_bad_user_and_folder_names_write_nothing(w):
    box = os.path.join(w, "box")
    os.mkdir(box)
    if ROOT:
        os.chown(box, USER.pw_uid, USER.pw_gid)
    before = tree(w)
    for name in ("../x", "a/b", "..", "a\nb", ""):
        fails(["-d", name, "-f", "a@b"], 67, "5.1.3")
    for folder in ("../../escape", "a/b", "..x", ".hidden", "x.", "a..b", "t\tab", b"Caf\xe9"):
        fails(["-m", folder, "--maildir", os.path.join(box, "Maildir")], 73, "5.2.0")
    # a target built from an address ("/srv/mail/${user}") cannot climb out
    fails(["--maildir", os.path.join(box, "..", "escaped")], 73, "5.2.0")
    fails(["--mbox", os.path.join(box, "..", "..", "escaped")], 73, "5.2.0")
    assert tree(w) == before


def test_symlinked_maildir_and_subdir_refused(w):
    outside = os.path.join(w, "outside")
    os.mkdir(outside)
    os.symlink(outside, os.path.join(w, "Maildir"))
    fails(["--maildir", os.path.join(w, "Maildir")], 77, "5.7.1")
    md = os.path.join(w, "M2")
    os.mkdir(md)
    if ROOT:
        os.chown(md, USER.pw_uid, USER.pw_gid)
    os.symlink(outside, os.path.join(md, "tmp"))
    fails(["--maildir", md], 77, "5.7.1")
    os.mkdir(os.path.join(w, "M3"))
    if ROOT:
        os.chown(os.path.join(w, "M3"), USER.pw_uid, USER.pw_gid)
    os.symlink(outside, os.path.join(w, "M3", ".Evil"))
    fails(["-m", "Evil", "--maildir", os.path.join(w, "M3")], 77, "5.7.1")
    assert os.listdir(outside) == []
    if ROOT:   # a maildir (or its new/) owned by someone else
        foreign = os.path.join(w, "M4")
        os.makedirs(os.path.join(foreign, "new"))
        fails(["--maildir", foreign], 77, "5.7.1")
        os.chown(foreign, USER.pw_uid, USER.pw_gid)
        os.chmod(os.path.join(foreign, "new"), 0o777)
        fails(["--maildir", foreign], 77, "5.7.1")
        assert os.listdir(os.path.join(foreign, "new")) == []


def test_symlinked_or_linked_or_foreign_mbox_refused(w):
    victim = os.path.join(w, "victim")
    with open(victim, "wb") as f:
        f.write(b"precious\n")
    if ROOT:
        os.chown(victim, USER.pw_uid, USER.pw_gid)
    os.symlink(victim, os.path.join(w, "mbox"))
    fails(["--mbox", os.path.join(w, "mbox")], 77, "5.7.1")
    os.link(victim, os.path.join(w, "hard"))
    fails(["--mbox", os.path.join(w, "hard")], 77, "5.7.1")
    assert open(victim, "rb").read() == b"precious\n"
    if ROOT:
        foreign = os.path.join(w, "foreign")
        with open(foreign, "wb") as f:
            f.write(b"root's\n")
        os.chmod(foreign, 0o666)
        fails(["--mbox", foreign], 77, "5.7.1")
        assert open(foreign, "rb").read() == b"root's\n"
    # a dangling symlink is not followed to create a file either
    os.symlink(os.path.join(w, "created-outside"), os.path.join(w, "dangling"))
    rc, err = lda(["--mbox", os.path.join(w, "dangling")])
    assert rc == 77, err
    assert not os.path.exists(os.path.join(w, "created-outside"))


# ---------------------------------------------------------------- quota

def test_quota_from_maildirsize_tempfail_then_permanent(w):
    md = os.path.join(w, "Maildir")
    ok(["-f", "a@b", "--maildir", md])                    # creates the maildir
    size = len(os.listdir(os.path.join(md, "new"))[0])    # any file: recount below
    used = sum(os.path.getsize(os.path.join(md, "new", n)) for n in os.listdir(os.path.join(md, "new")))
    with open(os.path.join(md, "maildirsize"), "w") as f:
        f.write("%dS,10C\n%d 1\n" % (used + 100, used))
    if ROOT:
        os.chown(os.path.join(md, "maildirsize"), USER.pw_uid, USER.pw_gid)
    ok(["-f", "a@b", "--maildir", md], b"Subject: small\n\nx\n")   # fits
    lines = open(os.path.join(md, "maildirsize")).read().splitlines()
    assert lines[0] == "%dS,10C" % (used + 100) and re.match(r"^\d+ 1$", lines[-1])
    before = tree(md)
    err = fails(["-f", "a@b", "--maildir", md], 75, "4.2.2")
    assert b"quota" in err
    fails(["-f", "a@b", "-o", "quota_full_tempfail=no", "--maildir", md], 77, "5.2.2")
    after = tree(md)
    after.pop("maildirsize", None), before.pop("maildirsize", None)   # may be recalculated
    assert after == before
    assert size > 0


def test_quota_from_option_and_count_limit(w):
    md = os.path.join(w, "Maildir")
    ok(["-o", "maildir_quota=1000000S,2C", "-f", "a@b", "--maildir", md])
    assert open(os.path.join(md, "maildirsize")).readline() == "1000000S,2C\n"
    ok(["-o", "maildir_quota=1000000S,2C", "-f", "a@b", "--maildir", md])
    fails(["-o", "maildir_quota=1000000S,2C", "-f", "a@b", "--maildir", md], 75, "4.2.2")
    assert len(os.listdir(os.path.join(md, "new"))) == 2
    # a wrong maildirsize is recalculated from the real files when over quota
    with open(os.path.join(md, "maildirsize"), "w") as f:
        f.write("1000000S,3C\n0 0\n5 5\n")
    ok(["-f", "a@b", "--maildir", md])
    assert len(os.listdir(os.path.join(md, "new"))) == 3


# ---------------------------------------------------------------- disk full

@pytest.fixture
def tiny_fs(w):
    if not ROOT:
        pytest.fail("mounting a tmpfs needs root (CI runs as root)")
    mnt = os.path.join(w, "tiny")
    os.mkdir(mnt)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755,uid=%d,gid=%d"
                    % (USER.pw_uid, USER.pw_gid), "tmpfs", mnt], check=True)
    yield mnt
    subprocess.run(["umount", mnt], check=True)


def test_disk_full_maildir_and_mbox(tiny_fs):
    md = os.path.join(tiny_fs, "Maildir")
    mbox = os.path.join(tiny_fs, "mbox")
    ok(["-f", "a@b", "--maildir", md])
    ok(["-f", "a@b", "--mbox", mbox])
    big = b"Subject: big\n\n" + (b"y" * 76 + b"\n") * 2000       # ~154 KiB > 64 KiB
    before = tree(tiny_fs)
    fails(["-f", "a@b", "--maildir", md], 75, "4.3.1", big)
    fails(["-f", "a@b", "--mbox", mbox], 75, "4.3.1", big)
    assert tree(tiny_fs) == before        # byte-identical, no tmp file, no lock left
    ok(["-f", "a@b", "--mbox", mbox])     # and the mailbox still works


def test_input_file_and_cli_limits(w):
    md = os.path.join(w, "Maildir")
    src = os.path.join(w, "msg.eml")
    with open(src, "wb") as f:
        f.write(b"Subject: from a file\n\nb\n")
    ok(["-p", src, "-f", "a@b", "--maildir", md], b"ignored stdin")
    _, body = only_file(os.path.join(md, "new"))
    assert body.endswith(b"Subject: from a file\n\nb\n")
    fails(["-p", os.path.join(w, "nope"), "--maildir", md], 66, "5.3.0")
    fails(["-d", "u" * 256, "-f", "a@b"], 67, "5.1.3")
    fails(["-m", "f" * 256, "--maildir", md], 73, "5.2.0")
    fails(["-f", "a" * 999 + "@b", "--maildir", md], 64, "5.1.7")
    fails(sum([["-o", "x%d=1" % i] for i in range(65)], []) + ["--maildir", md], 64, "5.3.0")
    fails(["--maildir", md, "extra-arg"], 64, "5.3.0")
    assert len(os.listdir(os.path.join(md, "new"))) == 1
