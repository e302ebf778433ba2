"""postern-queue on its own: delivery outcomes, retries, recovery, crashes.

Why stand-ins: the test plays master on fd 3 and answers IPC_M_DELIVER
with a Python stand-in for postern-lda (tests.pylib.ipc.standin_deliver)
whose exit status can be chosen per recipient, so every branch of the exit
code policy (mailbox-formats.md §6), the backoff and the per-recipient
durability can be provoked on demand. |command deliveries really run
/bin/sh. The real master + postern-lda path is covered by test_e2e.py.
"""
import os
import signal
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from tests.pylib import ipc  # noqa: E402
from tests.pylib.util import BIN, wait_for  # noqa: E402


def body(tag):
    return "Subject: %s\r\nMessage-ID: <%s@test>\r\n\r\nbody %s\r\n" % (tag, tag, tag)


@pytest.fixture
def harness(tmp_path):
    made = []

    def make(extra=""):
        h = ipc.QueueHarness(tmp_path, BIN, extra)
        made.append(h)
        return h.start()
    yield make
    for h in made:
        rc = h.stop()
        assert rc in (0, -9), h.output()


def lines(h, needle):
    return [l for l in h.logtext().splitlines() if needle in l]


def test_tempfail_defers_then_delivers_once(harness):
    q = harness()
    q.behaviours["tmp@virt.test"] = (75, "4.2.2 Mailbox busy")
    s = q.smtpd()
    qid, mtype, _ = s.send_message("a@example.org", ["tmp@virt.test", "ann@virt.test"], body("t1"))
    assert mtype == ipc.Q_COMMITTED
    wait_for(lambda: qid in q.files("deferred"), what="deferred")
    d = lines(q, "%s: to=<tmp@virt.test>" % qid)
    assert d and d[0].endswith("dsn=4.2.2, status=deferred (Mailbox busy)")
    assert len(q.maildir("ann")) == 1
    # the listing shows why (JSON through the control socket's neighbour)
    q.behaviours.pop("tmp@virt.test")
    wait_for(lambda: lines(q, "%s: removed" % qid), timeout=20, what="retry and removal")
    assert len(q.maildir("tmp")) == 1
    # ann succeeded in the first attempt and was not delivered again
    assert len(q.maildir("ann")) == 1
    assert len([a for _k, a, _e in q.deliveries if "-r" in a and a[a.index("-r") + 1] == "ann@virt.test"]) == 1


def test_permanent_failure_goes_to_hold(harness):
    q = harness()
    q.behaviours["bad@virt.test"] = (67, "5.1.1 no such mailbox")
    s = q.smtpd()
    qid, _, _ = s.send_message("a@example.org", ["bad@virt.test"], body("t2"))
    wait_for(lambda: qid in q.files("hold"), what="held for the bounce")
    line = lines(q, "%s: to=<bad@virt.test>" % qid)[0]
    assert line.endswith("dsn=5.1.1, status=bounced (no such mailbox)")
    assert lines(q, "%s: hold: 1 failed recipient" % qid)
    assert qid in q.files("content")


def test_killed_by_signal_and_unknown_status(harness):
    q = harness()
    q.behaviours["bob@virt.test"] = (-9, "")
    q.behaviours["carl@virt.test"] = (3, "")
    s = q.smtpd()
    qid, _, _ = s.send_message("a@example.org", ["bob@virt.test", "carl@virt.test"], body("t3"))
    wait_for(lambda: len(lines(q, "%s: to=" % qid)) >= 2, what="two results")
    assert lines(q, "to=<bob@virt.test>")[0].endswith(
        "dsn=4.3.0, status=deferred (delivery agent killed by signal 9)")
    assert lines(q, "to=<carl@virt.test>")[0].endswith(
        "dsn=5.3.0, status=bounced (delivery agent failed with status 3)")


def test_aliases_commands_and_files(harness, tmp_path):
    out = tmp_path / "piped"
    mbox = tmp_path / "alias.mbox"
    aliases = tmp_path / "aliases"
    aliases.write_text("postmaster ann@virt.test\n"
                       "pipe |cat > %s\n"
                       "file %s\n"
                       "fail |echo 5.2.2 mailbox full; exit 1\n"
                       "team pipe, file, ann@virt.test\n" % (out, mbox))
    q = harness("alias_maps = texthash:%s\n" % aliases)
    s = q.smtpd()
    qid, _, _ = s.send_message("a@example.org", ["team@mx.test", "fail@mx.test"], body("t4"))
    wait_for(lambda: qid in q.files("hold"), what="done, one failure held")
    assert b"body t4" in out.read_bytes()
    assert b"body t4" in mbox.read_bytes()
    assert len(q.maildir("ann")) == 1
    log = q.logtext()
    assert "to=<team@mx.test>, relay=local" in log
    assert "status=sent (delivered to command: cat > %s)" % out in log
    assert "status=sent (delivered to file: %s)" % mbox in log
    assert "to=<ann@virt.test>, orig_to=<team@mx.test>, relay=virtual" in log
    f = lines(q, "to=<fail@mx.test>")[0]
    assert f.endswith('dsn=5.2.2, status=bounced (Command died with status 1: '
                      '"echo 5.2.2 mailbox full; exit 1". Command output: mailbox full)')
    # the pipe saw the documented environment
    pipe_env = [e for k, _a, e in q.deliveries if k == ipc.MD_PIPE][0]
    assert "SENDER=a@example.org" in pipe_env and "RECIPIENT=pipe@mx.test" in pipe_env
    assert "ORIGINAL_RECIPIENT=team@mx.test" in pipe_env


def test_alias_expansion_partial_retry_skips_finished_targets(harness, tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text("both ann@virt.test, tmp@virt.test\n")
    q = harness("alias_maps = texthash:%s\n" % aliases)
    q.behaviours["tmp@virt.test"] = (75, "")
    s = q.smtpd()
    qid, _, _ = s.send_message("a@example.org", ["both@mx.test"], body("t5"))
    wait_for(lambda: qid in q.files("deferred"), what="deferred")
    q.behaviours.pop("tmp@virt.test")
    wait_for(lambda: lines(q, "%s: removed" % qid), timeout=20, what="removed")
    assert len(q.maildir("ann")) == 1 and len(q.maildir("tmp")) == 1


def test_restart_recovers_and_quarantines(harness, tmp_path):
    q = harness()
    s = q.smtpd()
    qid, _, _ = s.send_message("a@example.org", ["x@remote.example"], body("t6"))
    wait_for(lambda: qid in q.files("deferred"), what="deferred")
    assert q.stop() == 0, q.output()
    # leftovers of a crash: an envelope never renamed, content without an
    # envelope, and a corrupt envelope in active/
    open(os.path.join(q.qdir, "incoming", "0660F5C599FAA0"), "wb").write(b"half")
    open(os.path.join(q.qdir, "content", "0660F5C599FAA1"), "wb").write(b"orphan")
    open(os.path.join(q.qdir, "active", "0660F5C599FAA2"), "wb").write(b"V\x04\x00\x00\x00garbage!")
    open(os.path.join(q.qdir, "content", "0660F5C599FAA2"), "wb").write(b"its content")
    open(os.path.join(q.qdir, "active", "not-a-queue-id"), "wb").write(b"?")
    q.start()
    wait_for(lambda: "0660F5C599FAA2" in q.files("corrupt"), what="quarantine")
    log = q.logtext()
    assert "0660F5C599FAA2: corrupt queue file active/0660F5C599FAA2 (" in log
    assert "0660F5C599FAA1: removed uncommitted content" in log
    assert "0660F5C599FAA2.content" in q.files("corrupt")
    assert not q.files("incoming")
    assert "not-a-queue-id" in q.files("active")  # left alone, reported
    # the deferred message is still queued and retried
    wait_for(lambda: len(lines(q, "%s: to=<x@remote.example>" % qid)) >= 2, timeout=20,
             what="retry after restart")
    # new IDs sort after everything that was there
    new, _fd = q.smtpd("smtpd[2]").open()
    assert new > qid and new > "0660F5C599FAA2"


def test_expired_message_fails_remaining_recipients(harness):
    q = harness("maximal_queue_lifetime = 0\n")
    s = q.smtpd()
    qid, _, _ = s.send_message("a@example.org", ["x@remote.example"], body("t7"))
    wait_for(lambda: qid in q.files("hold"), what="expired to hold")
    assert lines(q, "%s: from=<a@example.org>, status=expired, returned to sender" % qid)


def test_flush_and_reload(harness, tmp_path):
    q = harness("queue_run_delay = 3600s\nminimal_backoff_time = 3600s\nmaximal_backoff_time = 3600s\n")
    s = q.smtpd()
    qid, _, _ = s.send_message("a@example.org", ["new@virt.test"], body("t8"))
    wait_for(lambda: qid in q.files("deferred") or qid in q.files("hold"), what="first attempt")
    assert qid in q.files("hold")  # unknown virtual user: failed
    qid2, _, _ = s.send_message("a@example.org", ["y@remote.example"], body("t9"))
    wait_for(lambda: qid2 in q.files("deferred"), what="deferred")
    n = len(lines(q, "%s: to=" % qid2))
    q.flush()
    wait_for(lambda: len(lines(q, "%s: to=" % qid2)) > n, what="flushed attempt")
    # reload: the new table makes new@virt.test known
    q.write_cf("virtual_mailbox_maps = inline:{ new@virt.test=new/ }\nqueue_run_delay = 3600s\n")
    q.reload()
    wait_for(lambda: "reload: configuration reloaded" in q.logtext(), what="reload")
    qid3, _, _ = s.send_message("a@example.org", ["new@virt.test"], body("t10"))
    wait_for(lambda: q.maildir("new"), what="delivered after reload")


def test_kill9_under_load_loses_nothing_acked(harness, tmp_path):
    """kill -9 of the queue while 20 channels commit and deliveries run:
    after a restart every acked message is delivered. A delivery running at
    the kill is not repeated: its ATTEMPT record is found and the result
    (which master, here the harness, forwards to the new instance) is
    recorded. What remains is the window between a result reaching the
    queue and its STATUS record being fsynced: such a delivery is repeated,
    so duplicates are bounded by the deliveries in flight (concurrency 20,
    twice over for results received but not yet durable)."""
    # a delivery whose ATTEMPT was recorded but never reached master is
    # retried after min(command_time_limit + 5, 30) seconds: keep it short
    q = harness("command_time_limit = 1s\n")
    acked, lock, stop = [], threading.Lock(), threading.Event()

    def run(i):
        try:
            s = q.smtpd("smtpd[%d]" % i)
            k = 0
            while not stop.is_set():
                tag = "k%d-%d" % (i, k)
                k += 1
                qid, mtype, _ = s.send_message("a@example.org", ["bob@virt.test"], body(tag))
                if mtype == ipc.Q_COMMITTED:
                    with lock:
                        acked.append(tag)
        except Exception:  # noqa: BLE001 - the queue is killed under this load
            return
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(20)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 300 and len(q.maildir("bob")) >= 50, timeout=60,
             what="300 acked, 50 delivered")
    q.proc.send_signal(signal.SIGKILL)
    q.proc.wait()
    stop.set()
    for t in threads:
        t.join(10)
    q.stop()
    q.start()
    with lock:
        want = list(acked)
    wait_for(lambda: not q.files("active") and not q.files("deferred"), timeout=60,
             what="queue drained after restart")
    time.sleep(0.5)  # stand-in deliveries of the dead instance may still land
    got = {}
    for b in q.maildir("bob"):
        tag = b.decode().split("body ")[-1].strip()
        got[tag] = got.get(tag, 0) + 1
    missing = [t for t in want if t not in got]
    assert not missing, missing[:5]
    dups = sum(v - 1 for v in got.values())
    assert dups <= 40, dups
    assert not q.files("content") or set(q.files("content")) <= set(q.files("hold"))


def test_sigterm_waits_for_running_deliveries(harness):
    """A clean stop records the outcome of deliveries already running, so
    the next start does not repeat them."""
    q = harness()
    q.hold_deliveries.clear()
    s = q.smtpd()
    qid, _, _ = s.send_message("a@example.org", ["ann@virt.test"], body("t11"))
    wait_for(lambda: len(q.deliveries) == 0 and "%s: from=" % qid in q.logtext(), what="queued")
    q.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping: waiting for 1 running deliveries" in q.logtext(), what="draining")
    q.hold_deliveries.set()
    assert q.proc.wait(20) == 0
    assert "%s: removed" % qid in q.logtext()
    q.stop()
    q.start()
    # a later message's delivery comes after anything the start-up scan
    # would have asked for
    s = q.smtpd()
    s.send_message("a@example.org", ["bob@virt.test"], body("t12"))
    wait_for(lambda: q.maildir("bob"), what="later delivery")
    assert len(q.maildir("ann")) == 1
    assert len(q.deliveries) == 2


def test_late_result_after_crash_is_not_delivered_again(harness):
    """kill -9 while a delivery runs at master: the restarted queue finds
    the ATTEMPT record, waits for the result master forwards, and records
    it instead of delivering a second time."""
    q = harness()
    q.hold_deliveries.clear()
    s = q.smtpd()
    qid, _, _ = s.send_message("a@example.org", ["ann@virt.test"], body("t13"))
    wait_for(lambda: "%s: from=" % qid in q.logtext(), what="accepted")
    wait_for(lambda: q.requested == 1, what="delivery at master")
    q.proc.send_signal(signal.SIGKILL)
    q.proc.wait()
    q.stop()
    q.start()
    wait_for(lambda: "%s: waiting for the outcome of a delivery to <ann@virt.test>" % qid
             in q.logtext(), what="adopted")
    q.hold_deliveries.set()
    wait_for(lambda: "%s: removed" % qid in q.logtext(), what="late result recorded")
    assert len(q.maildir("ann")) == 1
    assert len(q.deliveries) == 1


def test_content_file_reused_only_when_nobody_holds_it(harness):
    """A finished message's content file is reused for a later message
    (creating files is what a busy queue pays most for), but never while a
    delivery process still holds it open: that process would read the next
    message."""
    q = harness()
    s = q.smtpd()

    def content_ino(qid):
        return os.stat(os.path.join(q.qdir, "content", qid)).st_ino

    # 1. nobody keeps a descriptor: the next message gets the same file,
    # truncated (the longer old content leaves nothing behind)
    q.hold_deliveries.clear()
    first, _, _ = s.send_message("a@example.org", ["ann@virt.test"], body("long" * 500))
    ino = content_ino(first)
    q.hold_deliveries.set()
    wait_for(lambda: lines(q, "%s: removed" % first), what="first removed")
    q.hold_deliveries.clear()
    second, _, _ = s.send_message("a@example.org", ["ann@virt.test"], body("short"))
    assert content_ino(second) == ino
    q.hold_deliveries.set()
    wait_for(lambda: lines(q, "%s: removed" % second), what="second removed")
    delivered = sorted(q.maildir("ann"), key=len)
    assert delivered[0].endswith(b"body short\r\n") and b"long" not in delivered[0]

    # 2. the delivery keeps its descriptor: that file is not reused, and
    # the descriptor still reads the message it was given
    q.retain = True
    kept, _, _ = s.send_message("a@example.org", ["ann@virt.test"], body("kept"))
    wait_for(lambda: lines(q, "%s: removed" % kept), what="kept removed")
    q.retain = False
    (fd,) = q.retained
    q.hold_deliveries.clear()
    later, _, _ = s.send_message("a@example.org", ["ann@virt.test"], body("later"))
    assert content_ino(later) != os.fstat(fd).st_ino
    assert os.pread(fd, 1 << 16, 0).endswith(b"body kept\r\n")
    q.hold_deliveries.set()
    wait_for(lambda: lines(q, "%s: removed" % later), what="later removed")
    assert os.pread(fd, 1 << 16, 0).endswith(b"body kept\r\n")
