"""Nothing acknowledged is lost, nothing is delivered twice: kill -9 of each
process while 1,000 messages are being sent, then a restart.

Every attempt carries its own X-Attempt header. An attempt whose DATA got
250 is "acked" and must end up in the mailbox exactly once; an attempt that
died with its connection may or may not arrive (the client was never told),
but never twice. Failed attempts are retried as new attempts.
"""
import os
import re
import signal
import smtplib
import threading

from tests.pylib import util

TOTAL = 1000
THREADS = 10


def attempts_in(msgs):
    seen = {}
    for m in msgs:
        found = re.search(rb"X-Attempt: (\S+)", m)
        assert found, m[:300]
        seen[found.group(1).decode()] = seen.get(found.group(1).decode(), 0) + 1
    return seen


def test_kill9_each_process_under_load(postern):
    acked = set()
    lock = threading.Lock()
    stop = threading.Event()
    counter = [0]

    def sender(tid):
        n = 0
        while not stop.is_set():
            with lock:
                if len(acked) >= TOTAL:
                    return
                counter[0] += 1
                attempt = "a%d-%d" % (tid, counter[0])
            body = ("Subject: crash %s\r\nX-Attempt: %s\r\n\r\n" % (attempt, attempt)).encode() \
                + b"x" * 2000 + b"\r\n"
            try:
                with smtplib.SMTP("127.0.0.1", postern.port, timeout=30) as s:
                    s.sendmail("load@remote.test", ["alice@example.test"], body)
                with lock:
                    acked.add(attempt)
            except (OSError, smtplib.SMTPException):
                pass  # not acked: the client may resend as a new attempt
            n += 1

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    try:
        def acked_at_least(k):
            return lambda: len(acked) >= k or not any(t.is_alive() for t in threads)
        # smtpd, then the queue, while mail flows
        util.wait_for(acked_at_least(200), 120, "200 acked")
        os.kill(postern.pids("postern-smtpd")[0], signal.SIGKILL)
        util.wait_for(acked_at_least(450), 120, "450 acked")
        os.kill(postern.pids("postern-queue")[0], signal.SIGKILL)
        util.wait_for(acked_at_least(700), 120, "700 acked")
        # then master itself: its children must go too, and a restart must
        # pick up whatever was left in the queue
        master = postern.proc
        master.send_signal(signal.SIGKILL)
        master.wait()
        util.wait_for(lambda: not postern.pids("postern-smtpd") and not postern.pids("postern-queue"),
                      30, "children to exit after master died")
        postern.proc = None
        postern.start()
        for t in threads:
            t.join(300)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert len(acked) >= TOTAL
    msgs = util.wait_for(lambda: (lambda m: m if set(attempts_in(m)) >= acked else None)(
        postern.maildir_messages("alice")), 180, "every acked message delivered")
    seen = attempts_in(msgs)
    missing = acked - set(seen)
    assert not missing, "acked but lost: %s" % sorted(missing)[:10]
    twice = {a: n for a, n in seen.items() if n > 1}
    assert not twice, "delivered more than once: %s" % twice
    # nothing left behind in the queue once all is delivered
    util.wait_for(lambda: b"Mail queue is empty" in postern.cli("queue").stdout, 60, "empty queue")


def test_restart_with_nonempty_queue(postern_factory):
    """Messages accepted while delivery defers stay queued across a stop and
    are delivered after the next start. Delivery defers because alice's
    Maildir++ quota (maildirsize: 1 byte) is full: postern-lda exits 75."""
    inst = postern_factory()
    md = inst.maildir("alice")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, sub))
    with open(os.path.join(md, "maildirsize"), "w") as f:
        f.write("1S\n0 0\n")
    if inst.run_as:
        import pwd
        pw = pwd.getpwnam(inst.run_as)
        for root, dirs, files in os.walk(os.path.join(inst.mail, "alice")):
            for p in [root] + [os.path.join(root, x) for x in files]:
                os.chown(p, pw.pw_uid, pw.pw_gid)
    inst.start()
    for i in range(5):
        with smtplib.SMTP("127.0.0.1", inst.port) as s:
            s.sendmail("s@remote.test", ["alice@example.test"], b"Subject: q%d\r\n\r\nbody\r\n" % i)
    util.wait_for(lambda: inst.log_text().count("status=deferred") >= 5, 60, "5 deferred attempts")
    rc, _ = inst.stop()
    assert rc == 0
    listing = inst.cli("queue").stdout
    assert listing.count(b"alice@example.test") == 5, listing
    os.unlink(os.path.join(md, "maildirsize"))
    inst.start()
    inst.cli("flush")
    msgs = inst.wait_delivered("alice", 5, timeout=60)
    assert sorted(re.search(rb"Subject: (q\d)", m).group(1) for m in msgs) == [b"q%d" % i for i in range(5)]
    util.wait_for(lambda: b"Mail queue is empty" in inst.cli("queue").stdout, 30, "empty queue")
