#!/usr/bin/env python3
"""Accept-rate benchmark of postern-queue's group commit, driving IPC directly.

    python3 bench/queue/queue_bench.py [--sessions 20] [--messages 4000]
            [--size 4096] [--mode held|deferred|delivered] [--bin build/bin]

Starts build/bin/postern-queue alone (tests.pylib.ipc.QueueHarness plays
master and hands it N smtpd channels), then each session loops: IPC_Q_OPEN,
write SIZE bytes into the handed descriptor, IPC_Q_SENDER, IPC_Q_RCPT,
IPC_Q_COMMIT, wait for IPC_Q_COMMITTED (= durable: content, envelope and
directory entries fsynced). Prints messages/s and the commit batches seen.
Modes: held (deliveries are parked: pure accept), deferred (remote
recipient: every message is also deferred, with its status fsync), delivered
(virtual Maildir through the Python stand-in LDA).
The queue directory is under the current directory, so run it on the file
system you care about (a tmpfs makes fsync free and the number meaningless).
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from tests.pylib import ipc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--messages", type=int, default=4000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--mode", choices=("held", "deferred", "delivered"), default="held")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "..", "build", "bin"))
    a = ap.parse_args()
    top = tempfile.mkdtemp(prefix="queue-bench-", dir=os.getcwd())
    extra = "queue_run_delay = 3600s\nminimal_backoff_time = 3600s\nmaximal_backoff_time = 3600s\n"
    h = ipc.QueueHarness(top, a.bin, extra).start()
    if a.mode == "held":
        h.hold_deliveries.clear()
    rcpt = {"held": "ann@virt.test", "deferred": "x@remote.example",
            "delivered": "ann@virt.test"}[a.mode]
    body = ("Subject: bench\r\n\r\n" + "x" * (a.size - 21) + "\r\n").encode()
    per = a.messages // a.sessions
    done = [0]
    lock = threading.Lock()
    chans = [h.smtpd("smtpd[%d]" % i) for i in range(a.sessions)]
    start = threading.Barrier(a.sessions + 1)

    def run(s):
        start.wait()
        for _ in range(per):
            _qid, mtype, _r = s.send_message("bench@example.org", [rcpt], body)
            assert mtype == ipc.Q_COMMITTED
        with lock:
            done[0] += per
    threads = [threading.Thread(target=run, args=(c,)) for c in chans]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    print("mode=%s sessions=%d messages=%d size=%d: %.0f msg/s (%.2f s)"
          % (a.mode, a.sessions, done[0], a.size, done[0] / dt, dt))
    h.hold_deliveries.set()
    h.stop()
    for line in h.logtext().splitlines():
        if "group commits" in line:
            print(line.split(": ", 1)[1])
    shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
