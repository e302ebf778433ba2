"""Local submission through the real daemon: build/bin/sendmail, run as
ordinary users, hands messages to the "submit" smtpd over
$queue_directory/public/submit; what a user checks is the exit code, the
delivered Maildir message, the log, and that hostile clients of the socket
get nothing queued while others keep being served."""
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "milter"))
sys.path.insert(0, os.path.dirname(__file__))

from tests.pylib import ipc, runas, util  # noqa: E402

# the scriptable-milter fixture of the smtpd_milters tests (one definition)
from test_smtpd_milter import milters  # noqa: E402,F401

# mta/ipc/ipc_proto.h: local submission
S_SUBMIT, S_RCPT, S_DATA, S_RESULT = 200, 201, 202, 203
QF_8BITMIME = 0x01
EX_USAGE, EX_DATAERR, EX_PROTOCOL, EX_TEMPFAIL, EX_NOPERM = 64, 65, 76, 75, 77
OTHER_USER = "nobody"


def other_user():
    """preexec_fn: a second ordinary uid (nobody), not the daemon's user."""
    pw = pwd.getpwnam(OTHER_USER)
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)


def sendmail(p, args, data, user="test", env=None):
    """Run build/bin/sendmail -C CONF args with data on stdin; returns the
    CompletedProcess. user: "test" (posterntest), "other" (nobody)."""
    pre = runas.demote() if user == "test" else other_user
    e = {"PATH": "/usr/bin:/bin"}
    e.update(env or {})
    return subprocess.run([os.path.join(runas.reachable_bin(util.BIN), "sendmail"), "-C", p.conf]
                          + list(args), input=data, preexec_fn=pre, env=e,
                          capture_output=True, timeout=60)


def uid_of(user):
    return pwd.getpwnam(runas.TEST_USER if user == "test" else OTHER_USER).pw_uid


def wait_log(p, pattern, timeout=30):
    rx = re.compile(pattern, re.M)
    return util.wait_for(lambda: rx.search(p.log_text()), timeout, pattern)


def queued_files(p):
    out = []
    for sub in ("incoming", "active", "deferred", "hold", "content"):
        d = os.path.join(p.queue, sub)
        for root, _, files in os.walk(d):
            out += files
    return out


def header_block(msg):
    return msg.split(b"\n\n", 1)[0] if b"\r\n\r\n" not in msg else msg.split(b"\r\n\r\n", 1)[0]


def lines(msg):
    return msg.replace(b"\r\n", b"\n").split(b"\n")


@pytest.fixture
def inst(postern_factory):
    return postern_factory().start()


# ---- delivered content ----------------------------------------------------------


def test_headers_added_and_received_names_the_uid(inst):
    r = sendmail(inst, ["-F", "Test User", "alice@example.test"],
                 b"Subject: plain\nBcc: secret@example.test\n\nhello\n")
    assert r.returncode == 0, r.stderr
    msg = inst.wait_delivered("alice", 1)[0]
    text = msg.replace(b"\r\n", b"\n").decode()
    uid = uid_of("test")
    assert re.search(r"^Received: by postern\.test \(Postern, from userid %d\)\n\tid [0-9A-F]+; " % uid,
                     text, re.M), text
    assert re.search(r"^From: Test User <%s@postern\.test>$" % runas.TEST_USER, text, re.M), text
    assert re.search(r"^Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", text, re.M), text
    assert re.search(r"^Message-ID: <\d{14}\.[0-9A-F]+@postern\.test>$", text, re.M), text
    assert "Bcc:" not in text and "secret" not in text
    assert text.endswith("\n\nhello\n")
    # the message as the user wrote it comes after what we prepend
    assert text.index("Subject: plain") > text.index("Received:")


def test_existing_headers_are_kept_not_duplicated(inst):
    data = (b"From: Someone <someone@elsewhere.test>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
            b"Message-ID: <fixed-1@elsewhere.test>\nSubject: x\n\nbody\n")
    r = sendmail(inst, ["alice@example.test"], data)
    assert r.returncode == 0, r.stderr
    text = inst.wait_delivered("alice", 1)[0].replace(b"\r\n", b"\n").decode()
    assert text.count("\nFrom:") == 1 and "From: Someone <someone@elsewhere.test>" in text
    assert text.count("\nDate:") == 1 and text.count("\nMessage-ID:") == 1
    wait_log(inst, r"postern/submit\[\d+\]: [0-9A-F]+: message-id=<fixed-1@elsewhere\.test>")


def test_dot_ends_input_without_i_and_not_with_i(inst):
    data = b"Subject: dots\n\n..two dots stay\nbefore\n.\nafter\n"
    r = sendmail(inst, ["alice@example.test"], data)
    assert r.returncode == 0, r.stderr
    body = inst.wait_delivered("alice", 1)[0].replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
    assert body == b"..two dots stay\nbefore\n"
    for flag in ("-i", "-oi"):
        r = sendmail(inst, [flag, "bob@example.test"], data)
        assert r.returncode == 0, r.stderr
    msgs = inst.wait_delivered("bob", 2)
    for m in msgs:
        assert m.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1] == b"..two dots stay\nbefore\n.\nafter\n"


def test_crlf_and_lf_input_give_the_same_message_and_from_line_dropped(inst):
    lf = b"From someone@x Mon Jan  1 00:00:00 2024\nSubject: eol\nMessage-ID: <eol@x.test>\n\nline one\nline two\n"
    crlf = lf.replace(b"\n", b"\r\n")
    assert sendmail(inst, ["alice@example.test"], lf).returncode == 0
    assert sendmail(inst, ["alice@example.test"], crlf).returncode == 0
    a, b = inst.wait_delivered("alice", 2)
    strip = [b"\n".join(x for x in lines(m) if not x.startswith((b"Received", b"\tid", b"Date"))) for m in (a, b)]
    assert strip[0] == strip[1]
    assert b"From someone@x" not in a and b"From someone@x" not in b
    assert b"\r\r" not in a and b"\r\r" not in b


def test_t_extracts_recipients_and_removes_bcc(inst):
    data = (b"To: Alice <alice@example.test>, \"Bob, B.\" <bob@example.test>\n"
            b"Cc: (comment) carol@example.test\nBcc: hidden: alice@example.test;\n"
            b"Subject: t\n\nbody\n")
    r = sendmail(inst, ["-t"], data)
    assert r.returncode == 0, r.stderr
    for u in ("alice", "bob", "carol"):
        m = inst.wait_delivered(u, 1)[0]
        assert b"Bcc:" not in m and b"hidden" not in m
    # Resent-* present: only those count; command-line recipients are added
    data = b"To: alice@example.test\nResent-To: bob@example.test\nSubject: r\n\nbody\n"
    r = sendmail(inst, ["-t", "carol@example.test"], data)
    assert r.returncode == 0, r.stderr
    inst.wait_delivered("bob", 2)
    inst.wait_delivered("carol", 2)
    wait_log(inst, r"to=<carol@example\.test>.*status=sent(.|\n)*to=<carol@example\.test>.*status=sent")
    # the second message went to bob and carol only
    assert len(inst.maildir_messages("alice")) == 1


def test_unqualified_recipient_gets_myorigin_and_sender_f(postern_factory):
    p = postern_factory(main_cf={"myorigin": "example.test"}).start()
    r = sendmail(p, ["-f", "bob", "alice"], b"Subject: q\n\nx\n")
    assert r.returncode == 0, r.stderr
    m = p.wait_delivered("alice", 1)[0]
    assert b"From: bob@example.test" in m
    wait_log(p, r"postern/submit\[\d+\]: [0-9A-F]+: uid=%d from=<bob@example\.test>" % uid_of("test"))


# ---- exit codes -------------------------------------------------------------------------


def test_no_recipients_is_64(inst):
    r = sendmail(inst, [], b"Subject: x\n\nx\n")
    assert r.returncode == EX_USAGE
    assert b"Recipient addresses must be specified" in r.stderr
    r = sendmail(inst, ["-t"], b"Subject: x\n\nx\n")
    assert r.returncode == EX_USAGE
    assert b"No recipient addresses found in message header" in r.stderr
    r = sendmail(inst, ["-bp", "alice@example.test"], b"")
    assert r.returncode == EX_USAGE
    r = sendmail(inst, ["-bp"], b"")
    assert r.returncode == 0 and b"Mail queue is empty" in r.stdout, r
    r = sendmail(inst, ["-bs"], b"")
    assert r.returncode == EX_USAGE and b"not supported yet" in r.stderr
    r = sendmail(inst, ["-N", "bogus", "alice@example.test"], b"x\n")
    assert r.returncode == EX_USAGE


def test_ignored_options_are_accepted(inst):
    r = sendmail(inst, ["-oi", "-om", "-Am", "-U", "-v", "-h", "5", "-L", "tag", "-G", "-n", "-m",
                        "-o7", "-B", "8BITMIME", "-N", "success,failure", "-R", "hdrs", "-V", "env-1",
                        "-q30m", "-bm", "--", "alice@example.test"], b"Subject: o\n\nx\n")
    assert r.returncode == 0, r.stderr
    inst.wait_delivered("alice", 1)


def test_daemon_down_is_75(inst):
    inst.stop()
    r = sendmail(inst, ["alice@example.test"], b"Subject: x\n\nx\n")
    assert r.returncode == EX_TEMPFAIL, r
    assert b"mail system is down" in r.stderr
    os.unlink(sock_path(inst))  # never started at all: no socket
    r = sendmail(inst, ["alice@example.test"], b"Subject: x\n\nx\n")
    assert r.returncode == EX_TEMPFAIL, r
    assert b"mail system is down" in r.stderr and b"No such file" in r.stderr


def test_oversize_is_refused_and_nothing_queued(postern_factory):
    p = postern_factory(main_cf={"message_size_limit": "2000"}).start()
    r = sendmail(p, ["alice@example.test"], b"Subject: big\n\n" + (b"x" * 70 + b"\n") * 100)
    assert r.returncode == EX_DATAERR, r
    assert b"message file too big" in r.stderr
    assert queued_files(p) == []
    wait_log(p, r"postern/submit\[\d+\]: reject: uid=\d+: message file too big")


def test_authorized_submit_users(postern_factory):
    p = postern_factory(main_cf={"authorized_submit_users": "!%s, static:anyone" % OTHER_USER}).start()
    r = sendmail(p, ["alice@example.test"], b"Subject: a\n\nx\n", user="other")
    assert r.returncode == EX_NOPERM, r
    assert b"User nobody(%d) is not allowed to submit mail" % uid_of("other") in r.stderr
    r = sendmail(p, ["alice@example.test"], b"Subject: b\n\nx\n", user="test")
    assert r.returncode == 0, r.stderr
    assert len(p.wait_delivered("alice", 1)) == 1


def test_another_uid_is_named_in_received(inst):
    r = sendmail(inst, ["alice@example.test"], b"Subject: other\n\nx\n", user="other")
    assert r.returncode == 0, r.stderr
    m = inst.wait_delivered("alice", 1)[0]
    assert b"(Postern, from userid %d)" % uid_of("other") in m
    assert re.search(rb"^From: (nobody )?<?nobody@postern\.test>?$", m, re.M), m
    wait_log(inst, r"postern/submit\[\d+\]: [0-9A-F]+: uid=%d from=<nobody@postern\.test>" % uid_of("other"))


# ---- hostile clients of the socket ------------------------------------------------------


def sock_path(p):
    return os.path.join(p.queue, "public", "submit")


def raw(p):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(30)
    s.connect(sock_path(p))
    return s


def msg_file(data):
    fd, path = tempfile.mkstemp()
    os.unlink(path)
    os.write(fd, data)
    return fd


def submit_payload(sender="s@example.test", flags=0, envid="", name=""):
    return ipc.Writer().str(sender).u32(flags).str(envid).str(name).bytes()


def rcpt_payload(addr, orcpt="", notify=0):
    return ipc.Writer().str(addr).str(orcpt).u32(notify).bytes()


def result_of(s):
    """(code, text) of the one RESULT, or None when the server just closed."""
    try:
        got = ipc.recv(s, timeout=30)
    except (ConnectionResetError, OSError):
        return None
    if got is None:
        return None
    mtype, _, rd, fd = got
    if fd is not None:
        os.close(fd)
    assert mtype == S_RESULT
    code, text = rd.u32(), rd.str()
    rd.str()  # the queue ID
    rd.end()
    text = text.decode() if isinstance(text, bytes) else text
    return code, text


def try_send(s, *a, **kw):
    try:
        ipc.send(s, *a, **kw)
    except (BrokenPipeError, ConnectionResetError):
        pass


def still_serves(p, user="alice", count=1):
    r = sendmail(p, ["%s@example.test" % user], b"Subject: still\n\nx\n")
    assert r.returncode == 0, r.stderr
    p.wait_delivered(user, count)


def hostile(p, steps):
    s = raw(p)
    for st in steps:
        try_send(s, *st[:3], **({"fd": st[3]} if len(st) > 3 else {}))
    res = result_of(s)
    s.close()
    return res


@pytest.mark.parametrize("case", ["order", "no_fd", "pipe", "socket", "directory", "garbage",
                                  "bad_rcpt", "data_first"])
def test_hostile_input_gets_error_and_nothing_queued(inst, case):
    fd = None
    if case == "pipe":
        rfd, wfd = os.pipe()
        fd = rfd
    elif case == "socket":
        a, b = socket.socketpair()
        fd = a.fileno()
    elif case == "directory":
        fd = os.open("/tmp", os.O_RDONLY | os.O_DIRECTORY)
    steps = {
        "order": [(S_RCPT, 1, rcpt_payload("alice@example.test"))],
        "data_first": [(S_DATA, 1, b"", msg_file(b"x\n"))],
        "no_fd": [(S_SUBMIT, 1, submit_payload()), (S_RCPT, 2, rcpt_payload("alice@example.test")),
                  (S_DATA, 3, b"")],
        "pipe": [(S_SUBMIT, 1, submit_payload()), (S_RCPT, 2, rcpt_payload("alice@example.test")),
                 (S_DATA, 3, b"", fd)],
        "socket": [(S_SUBMIT, 1, submit_payload()), (S_RCPT, 2, rcpt_payload("alice@example.test")),
                   (S_DATA, 3, b"", fd)],
        "directory": [(S_SUBMIT, 1, submit_payload()), (S_RCPT, 2, rcpt_payload("alice@example.test")),
                      (S_DATA, 3, b"", fd)],
        "garbage": [(S_SUBMIT, 1, b"\xff\xff\xff\xff")],
        "bad_rcpt": [(S_SUBMIT, 1, submit_payload()), (S_RCPT, 2, rcpt_payload("a@@b<>"))],
    }[case]
    res = hostile(inst, steps)
    assert res is None or res[0] != 0
    if case in ("pipe", "socket", "directory"):
        assert res is not None and res[0] == EX_PROTOCOL and "not a regular file" in res[1]
    if case == "order":
        assert res is not None and res[0] == EX_PROTOCOL
    assert queued_files(inst) == []
    still_serves(inst)
    # the delivered message leaves the queue: nothing else is in it
    util.wait_for(lambda: queued_files(inst) == [], 30, "an empty queue")


def test_raw_garbage_frames_close_the_connection(inst):
    s = raw(inst)
    s.send(b"\x01\x02")  # shorter than a header
    assert result_of(s) is None
    s.close()
    still_serves(inst)


def test_file_truncated_after_fstat_is_read_as_it_is(inst):
    """The server reads the file to its end, whatever fstat said: a file
    shrunk after being handed over is queued as it then is (no crash, no
    stale bytes); grown past the limit it is refused."""
    fd = msg_file(b"Subject: trunc\n\n" + b"y" * 5000 + b"\n")
    s = raw(inst)
    ipc.send(s, S_SUBMIT, 1, submit_payload())
    ipc.send(s, S_RCPT, 2, rcpt_payload("alice@example.test"))
    os.ftruncate(fd, 16)
    ipc.send(s, S_DATA, 3, b"", fd=fd)
    code, text = result_of(s)
    s.close()
    assert code == 0, text
    m = inst.wait_delivered("alice", 1)[0]
    assert b"Subject: trunc" in m and b"yyyy" not in m


def test_huge_recipient_count_is_refused(postern_factory):
    p = postern_factory(main_cf={"smtpd_recipient_limit": "50"}).start()
    s = raw(p)
    try_send(s, S_SUBMIT, 1, submit_payload())
    for i in range(200):
        try_send(s, S_RCPT, 2, rcpt_payload("user%d@example.test" % i))
    res = result_of(s)
    s.close()
    assert res is not None and res[0] == EX_USAGE and "too many recipients" in res[1]
    assert queued_files(p) == []
    still_serves(p)


def test_silent_client_is_timed_out(postern_factory):
    p = postern_factory(main_cf={"smtpd_timeout": "2s"}).start()
    s = raw(p)
    ipc.send(s, S_SUBMIT, 1, submit_payload())
    res = result_of(s)
    assert res is not None and res[0] == EX_TEMPFAIL and "timeout" in res[1]
    s.close()
    still_serves(p)


# ---- non_smtpd_milters -----------------------------------------------------------------


def with_milter(postern_factory, m):
    return postern_factory(main_cf={"non_smtpd_milters": m.endpoint}).start()


def test_milter_reject_fails_and_queues_nothing(postern_factory, milters):
    m = milters("--at", "eom=reject")
    p = with_milter(postern_factory, m)
    r = sendmail(p, ["alice@example.test"], b"Subject: m\n\nx\n")
    assert r.returncode == EX_NOPERM, r
    assert b"550 5.7.1" in r.stderr
    wait_log(p, r"[0-9A-F]+: milter-reject: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]: ")
    assert queued_files(p) == []
    log = open(m.logpath).read()
    assert "connect localhost 127.0.0.1" in log
    assert re.search(r"^helo localhost$", log, re.M)
    assert re.search(r"^mail %s@postern\.test" % runas.TEST_USER, log, re.M)


def test_milter_tempfail_is_75(postern_factory, milters):
    m = milters("--at", "mail=tempfail")
    p = with_milter(postern_factory, m)
    r = sendmail(p, ["alice@example.test"], b"Subject: m\n\nx\n")
    assert r.returncode == EX_TEMPFAIL, r
    assert queued_files(p) == []


def test_milter_rcpt_reject_is_a_configuration_problem(postern_factory, milters):
    m = milters("--at", "rcpt=reject")
    p = with_milter(postern_factory, m)
    r = sendmail(p, ["alice@example.test"], b"Subject: m\n\nx\n")
    assert r.returncode == EX_TEMPFAIL, r
    assert b"4.3.5" in r.stderr
    assert queued_files(p) == []


def test_milter_header_edit_is_delivered(postern_factory, milters):
    m = milters("--mod", "addheader:X-Local-Milter:seen", "--mod", "chgheader:1:Subject:changed")
    p = with_milter(postern_factory, m)
    r = sendmail(p, ["alice@example.test"], b"Subject: original\n\nbody\n")
    assert r.returncode == 0, r.stderr
    msg = p.wait_delivered("alice", 1)[0]
    assert b"X-Local-Milter: seen" in msg
    assert b"Subject: changed" in msg and b"original" not in msg
    assert b"from userid" in msg  # our Received header survives, unseen by the milter
    assert "Received" not in open(m.logpath).read()


def test_milter_quarantine_holds(postern_factory, milters):
    m = milters("--mod", "quarantine:local check")
    p = with_milter(postern_factory, m)
    r = sendmail(p, ["alice@example.test"], b"Subject: q\n\nx\n")
    assert r.returncode == 0, r.stderr
    rx = wait_log(p, r"([0-9A-F]+): milter-hold: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]")
    qid = rx.group(1)
    util.wait_for(lambda: os.path.exists(os.path.join(p.queue, "hold", qid)), 30, "held file")
    assert p.maildir_messages("alice") == []
    # sendmail -bp and mailq list it (postern queue's layout): '!' = on hold
    r = sendmail(p, ["-bp"], b"")
    assert r.returncode == 0, r.stderr
    assert re.search(rb"^%s!" % qid.encode(), r.stdout, re.M), r.stdout
    link = os.path.join(p.dir, "mailq")
    os.symlink(os.path.join(runas.reachable_bin(util.BIN), "sendmail"), link)
    q = subprocess.run([link, "-C", p.conf], preexec_fn=runas.demote(), capture_output=True, timeout=60)
    assert q.returncode == 0 and q.stdout == r.stdout, q


def test_milter_discard_exits_0_and_delivers_nothing(postern_factory, milters):
    m = milters("--at", "eom=discard")
    p = with_milter(postern_factory, m)
    r = sendmail(p, ["alice@example.test"], b"Subject: d\n\nx\n")
    assert r.returncode == 0, r.stderr
    wait_log(p, r"milter-discard: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]")
    # the queue file opened for it is given back
    util.wait_for(lambda: queued_files(p) == [], 30, "an empty queue")


# ---- crash of the submit service ----------------------------------------------------


def submit_pid(p):
    for pid, argv in util.processes():
        if argv and os.path.basename(argv[0]) == b"postern-submit" and p.conf.encode() in argv:
            return pid
    return None


def test_kill_submit_smtpd_loses_no_acknowledged_message(inst):
    results = []
    lock = threading.Lock()

    def worker(k):
        for i in range(8):
            r = sendmail(inst, ["alice@example.test"], b"Subject: crash-%d-%d\n\nx\n" % (k, i))
            with lock:
                results.append((b"crash-%d-%d" % (k, i), r.returncode))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    util.wait_for(lambda: len(results) >= 3, 60, "first submissions")
    old = submit_pid(inst)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    for t in threads:
        t.join(120)
    ok = [tag for tag, rc in results if rc == 0]
    assert all(rc in (0, EX_TEMPFAIL) for _, rc in results), results
    assert len(results) == 24
    util.wait_for(lambda: submit_pid(inst) not in (None, old), 30, "a new submit smtpd")
    got = inst.wait_delivered("alice", len(ok))
    delivered = b"".join(got)
    for tag in ok:
        assert tag in delivered, tag
    still_serves(inst, count=len(ok) + 1)


def test_socket_modes_and_owner(inst):
    import stat
    pub = os.stat(os.path.join(inst.queue, "public"))
    sk = os.stat(sock_path(inst))
    assert stat.S_ISDIR(pub.st_mode) and stat.S_IMODE(pub.st_mode) == 0o755
    assert stat.S_ISSOCK(sk.st_mode) and stat.S_IMODE(sk.st_mode) == 0o666
    owner = uid_of("test") if os.geteuid() == 0 else os.getuid()
    assert pub.st_uid == owner and sk.st_uid == owner


def test_as_root_socket_belongs_to_mail_owner_and_submit_runs_as_it(postern_factory):
    if os.geteuid() != 0:
        pytest.fail("needs root (CI runs tests as root)")
    p = postern_factory(as_root=True).start()
    owner = pwd.getpwnam("postern").pw_uid
    assert os.stat(os.path.join(p.queue, "public")).st_uid == owner
    assert os.stat(sock_path(p)).st_uid == owner
    pid = submit_pid(p)
    with open("/proc/%d/status" % pid) as f:
        uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
    assert set(int(u) for u in uids) == {owner}
    r = sendmail(p, ["alice@example.test"], b"Subject: root\n\nx\n", user="other")
    assert r.returncode == 0, r.stderr
    p.wait_delivered("alice", 1)


def test_reload_replaces_the_submit_service(inst):
    old = submit_pid(inst)
    master = inst.proc.pid
    os.kill(master, signal.SIGHUP)
    util.wait_for(lambda: submit_pid(inst) not in (None, old), 30, "a new submit smtpd")
    util.wait_for(lambda: not os.path.exists("/proc/%d" % old) or
                  open("/proc/%d/stat" % old).read().split()[2] == "Z", 30, "the old one to exit")
    still_serves(inst)


def test_too_many_received_headers_is_65(postern_factory):
    p = postern_factory(main_cf={"hopcount_limit": "5"}).start()
    data = b"Received: from x by y\n" * 5 + b"Subject: loop\n\nx\n"
    r = sendmail(p, ["alice@example.test"], data)
    assert r.returncode == EX_DATAERR, r
    assert b"too many hops" in r.stderr
    r = sendmail(p, ["alice@example.test"], b"Received: from x by y\n" * 4 + b"Subject: ok\n\nx\n")
    assert r.returncode == 0, r.stderr
    p.wait_delivered("alice", 1)
    util.wait_for(lambda: queued_files(p) == [], 30, "an empty queue")


def test_milter_changes_envelope(postern_factory, milters):
    m = milters("--mod", "delrcpt:<alice@example.test>", "--mod", "addrcpt:<carol@example.test>",
                "--mod", "chgfrom:<changed@example.test>")
    p = with_milter(postern_factory, m)
    r = sendmail(p, ["alice@example.test", "bob@example.test"], b"Subject: env\n\nx\n")
    assert r.returncode == 0, r.stderr
    p.wait_delivered("bob", 1)
    msg = p.wait_delivered("carol", 1)[0]
    assert b"Return-Path: <changed@example.test>" in msg
    wait_log(p, r"to=<carol@example\.test>.*status=sent")
    assert p.maildir_messages("alice") == []
