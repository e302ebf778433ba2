#!/usr/bin/python3
"""Accept-rate benchmark: smtp-source into smtp-sink (no MTA), into Postfix and
into Postern, in one run on this machine, plus Postern's memory while holding
idle sessions. Prints messages/s and ratios; it is a measurement, not a test.

    bench/accept.py [--messages 20000] [--sessions 20] [--size 4096]
                    [--idle 1000,10000] [--rounds 3] [--bin build-bench/bin]

Each round runs both MTAs, in alternating order; the ratio reported is the
median over the rounds.

Both MTAs fsync before answering 250 and deliver into virtual Maildirs. The
accept rate is messages / wall time of smtp-source, which ends when the last
250 arrives. Postern's CPU per message (smtpd, queue, master, postern-lda
workers) is printed at the last 250 and once every message is delivered: on
a shared machine it is steadier than the rate. Postern must be built without
sanitizers for fair figures:
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench
"""
import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))


def run_source(port, messages, sessions, size, rcpt):
    cmd = ["/usr/sbin/smtp-source", "-s", str(sessions), "-l", str(size), "-m", str(messages),
           "-f", "bench@remote.test", "-t", rcpt, "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("smtp-source failed: %s %s" % (r.stdout, r.stderr))
    return messages / dt


def bench_sink(a):
    from pylib.util import free_port, wait_for_greeting
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen(["/usr/sbin/smtp-sink"] + user + ["127.0.0.1:%d" % port, "1000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_greeting(port)
        return run_source(port, a.messages, a.sessions, a.size, "x@sink.test")
    finally:
        sink.kill()
        sink.wait()


# Work directories are removed only after the last measurement: on a file
# system that avoids reusing recently freed inodes (ext4 without a journal
# scans past every inode freed in the last minutes), deleting one run's
# 20,000 files would slow the next run's file creation, whichever MTA it is.
LATER = []


def bench_postfix(a, milters=""):
    """Postfix's accept rate (smtpd_milters = milters when given)."""
    from pylib.postfix import Postfix, Listener
    w = tempfile.mkdtemp(prefix="bench-postfix-")
    LATER.append(lambda: shutil.rmtree(w, ignore_errors=True))
    pf = Postfix(w, listeners=[Listener(milters=milters or None)], mailboxes=["alice@example.test"],
                 main={"milter_default_action": "tempfail"})
    pf.start()
    try:
        return run_source(pf.port(0), a.messages, a.sessions, a.size, "alice@example.test")
    finally:
        pf.stop()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    """(own, reaped children's) CPU seconds of pid."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    return (int(st[11]) + int(st[12])) / hz, (int(st[13]) + int(st[14])) / hz


def lda_workers(inst):
    """PIDs of the postern-lda workers whose parent is this instance's master."""
    masters = set(inst.pids("postern"))
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        if "(postern-lda)" in st and int(st.rsplit(")", 1)[1].split()[1]) in masters:
            out.append(int(p))
    return out


def postern_cpu(inst):
    """CPU seconds per role: smtpd, queue, master (+ exited workers), LDA workers."""
    cpu = {"smtpd": 0.0, "queue": 0.0, "master": 0.0, "lda": 0.0}
    for pid in inst.pids("postern-smtpd"):
        cpu["smtpd"] += cpu_s(pid)[0]
    for pid in inst.pids("postern-queue"):
        cpu["queue"] += cpu_s(pid)[0]
    for pid in inst.pids("postern"):
        own, children = cpu_s(pid)
        cpu["master"] += own
        cpu["lda"] += children  # exited workers (and one-shot |commands)
    for pid in lda_workers(inst):
        cpu["lda"] += sum(cpu_s(pid))
    return cpu


def bench_postern(a, idle_counts, milters=""):
    """Postern's accept rate, idle-session RSS for idle_counts, and CPU per
    role at the last 250 and once all is delivered."""
    from pylib import util
    util.BIN = os.path.abspath(a.bin)
    from pylib.postern import Postern
    cf = {"smtpd_client_connection_count_limit": "0", "smtpd_timeout": "3600s"}
    if milters:
        cf["smtpd_milters"] = milters
    inst = Postern(main_cf=cf)
    try:
        inst.start()
        rate = run_source(inst.port, a.messages, a.sessions, a.size, "alice@example.test")
        at_accept = postern_cpu(inst)
        # let the deliveries finish, then count their CPU too
        new = os.path.join(inst.maildir("alice"), "new")
        util.wait_for(lambda: os.path.isdir(new) and len(os.listdir(new)) >= a.messages,
                      600, "every message delivered")
        drained = postern_cpu(inst)
        idle = {}
        for n in idle_counts:
            idle[n] = idle_sessions(inst, n)
        return rate, idle, at_accept, drained
    finally:
        inst.stop()
        LATER.append(inst.cleanup)


def idle_sessions(inst, n):
    """Open n sessions that sit idle after the greeting; RSS of every
    Postern process (master, queue, smtpd) with them open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    socks = []
    try:
        for i in range(n):
            # spread over source addresses: per-client limits stay realistic
            src = "127.0.%d.%d" % (1 + i // 250 % 250, 1 + i % 250)
            s = socket.create_connection(("127.0.0.1", inst.port), source_address=(src, 0))
            socks.append(s)
        for s in socks:
            s.settimeout(30)
            if not s.recv(512).startswith(b"220"):
                raise RuntimeError("no greeting")
        smtpd = sum(rss_kib(p) for p in inst.pids("postern-smtpd"))
        rest = sum(rss_kib(p) for p in inst.pids("postern-queue") + inst.pids("postern"))
        return smtpd, rest
    finally:
        for s in socks:
            s.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--idle", default="1000,10000")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--bin", default=os.path.join(HERE, "..", "build-bench", "bin"))
    a = p.parse_args()
    a.idle = [int(x) for x in a.idle.split(",") if x]
    try:
        run_all(a)
    finally:
        for f in LATER:
            f()


def run_all(a):
    sink = bench_sink(a)
    print("smtp-source -> smtp-sink : %8.0f msg/s (no MTA)" % sink, flush=True)
    ratios = []
    idle = {}
    for r in range(a.rounds):
        # alternate the order: each MTA runs after the other as often
        order = ("postfix", "postern") if r % 2 == 0 else ("postern", "postfix")
        res = {}
        for who in order:
            if who == "postfix":
                res[who] = bench_postfix(a)
            else:
                last = r == a.rounds - 1
                res[who] = bench_postern(a, a.idle if last else [])
        pn, idle_r, at_accept, drained = res["postern"]
        idle.update(idle_r)
        pf = res["postfix"]
        ratios.append(pn / pf)
        print("round %d (%s first): Postfix %6.0f msg/s, Postern %6.0f msg/s, ratio %.2fx"
              % (r + 1, order[0], pf, pn, pn / pf), flush=True)
        for label, cpu in (("at last 250", at_accept), ("all delivered", drained)):
            print("  Postern CPU ms/msg, %-13s: %s, total %.3f"
                  % (label, ", ".join("%s %.3f" % (k, v * 1000.0 / a.messages)
                                      for k, v in cpu.items()),
                     sum(cpu.values()) * 1000.0 / a.messages), flush=True)
    ratios.sort()
    print("Postern / Postfix, median of %d rounds: %.2fx (min %.2fx, max %.2fx)"
          % (a.rounds, ratios[len(ratios) // 2], ratios[0], ratios[-1]))
    print("Postern / smtp-sink (last round): %.2f" % (pn / sink))
    for n, (smtpd, rest) in idle.items():
        print("%6d idle sessions: smtpd RSS %.1f MiB, master+queue %.1f MiB"
              % (n, smtpd / 1024.0, rest / 1024.0))

if __name__ == "__main__":
    main()
