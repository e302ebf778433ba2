#!/usr/bin/python3
"""Deliveries per second: postern-lda vs dovecot-lda, same messages, one run.

    bench/lda/bench_lda.py [--lda PATH] [--count N] [--size BYTES] [--jobs J] [--rounds R]

For each format (Maildir, mbox) and each agent, N messages (default 300,
about --size octets each, every one different) are delivered one process
per message, J processes at a time (default 1), into a fresh mailbox, the
way an MTA runs an LDA, the two agents taking turns in R rounds (default
10) so that a change of machine load affects both alike. Both agents run
as the same unprivileged user (`posterntest` when started as root), both
fsync (dovecot-lda's default
mail_fsync = optimized). dovecot-lda runs standalone with its own minimal
config (no userdb lookup, like a mailbox_command without -d); it also
updates its index files on every delivery, which postern-lda never writes.
Use a build without sanitizers for meaningful numbers. Prints one line per
(format, agent) and the ratio. Not a test: it asserts only that every
message arrived.
"""
import argparse
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"


def messages(n, size):
    out = []
    for i in range(n):
        head = ("From: sender%d@example.net\nTo: bench@example.org\nSubject: bench %d\n"
                "Message-ID: <%d.bench@example.net>\nDate: Mon, 23 Nov 2026 10:00:00 +0000\n\n" % (i, i, i)).encode()
        line = (b"%05d " % i) + b"x" * 70 + b"\n"
        body = line * max(1, (size - len(head)) // len(line))
        out.append(head + body)
    return out


def run_all(argvs, msgs, user, env, jobs):
    def one(i):
        p = subprocess.run(argvs[i], input=msgs[i], capture_output=True, preexec_fn=user, env=env)
        if p.returncode != 0:
            raise RuntimeError("%s exited %d: %s" % (argvs[i][0], p.returncode, p.stderr))
    t0 = time.monotonic()
    if jobs == 1:
        for i in range(len(msgs)):
            one(i)
    else:
        with ThreadPoolExecutor(jobs) as ex:
            list(ex.map(one, range(len(msgs))))
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lda", default=os.path.join(os.environ.get("POSTERN_BIN", os.path.join(SRC, "build", "bin")), "postern-lda"))
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=10)
    a = ap.parse_args()

    root = os.getuid() == 0
    pw = pwd.getpwnam("posterntest") if root else pwd.getpwuid(os.getuid())

    def as_user():
        if root:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

    w = tempfile.mkdtemp(prefix="bench-lda-")
    os.chmod(w, 0o755)
    if root:
        os.chown(w, pw.pw_uid, pw.pw_gid)
    env = {"PATH": "/usr/bin:/bin", "HOME": w, "USER": pw.pw_name, "LOGNAME": pw.pw_name}
    msgs = messages(a.count, a.size)
    agents = ("postern-lda", "dovecot-lda")
    results = {}
    try:
        for fmt in ("maildir", "mbox"):
            argvs = {}
            for agent in agents:
                d = os.path.join(w, "%s-%s" % (agent, fmt))
                os.mkdir(d)
                if root:
                    os.chown(d, pw.pw_uid, pw.pw_gid)
                if agent == "postern-lda":
                    target = ["--maildir", d + "/Maildir"] if fmt == "maildir" else ["--mbox", d + "/inbox"]
                    argvs[agent] = [[a.lda, "-e", "-f", "sender%d@example.net" % i, "-a", "bench@example.org"]
                                    + target for i in range(a.count)]
                else:
                    conf = os.path.join(d, "dovecot.conf")
                    loc = ("maildir:%s/Maildir" % d if fmt == "maildir"
                           else "mbox:%s/mail:INBOX=%s/inbox" % (d, d))
                    with open(conf, "w") as f:
                        f.write("mail_location = %s\nbase_dir = %s/run\nlog_path = %s/dovecot.log\n"
                                "ssl = no\nfirst_valid_uid = 1\nmbox_write_locks = fcntl dotlock\n" % (loc, d, d))
                    os.chmod(conf, 0o644)
                    argvs[agent] = [[DOVECOT_LDA, "-c", conf, "-e", "-f", "sender%d@example.net" % i,
                                     "-a", "bench@example.org"] for i in range(a.count)]
            # alternate the agents in rounds so that a change of machine load
            # during the run hits both alike
            secs = dict.fromkeys(agents, 0.0)
            step = max(1, a.count // a.rounds)
            for lo in range(0, a.count, step):
                hi = min(a.count, lo + step)
                for agent in agents:
                    secs[agent] += run_all(argvs[agent][lo:hi], msgs[lo:hi], as_user, env, a.jobs)
            for agent in agents:
                d = os.path.join(w, "%s-%s" % (agent, fmt))
                if fmt == "maildir":
                    got = len(os.listdir(os.path.join(d, "Maildir", "new")))
                else:
                    got = open(os.path.join(d, "inbox"), "rb").read().count(b"\nSubject: bench ")
                assert got == a.count, (agent, fmt, got)
                results[(fmt, agent)] = a.count / secs[agent]
                print("%-8s %-12s %6d msgs  %7.2f s  %8.1f deliveries/s"
                      % (fmt, agent, a.count, secs[agent], a.count / secs[agent]), flush=True)
        for fmt in ("maildir", "mbox"):
            r = results[(fmt, "postern-lda")] / results[(fmt, "dovecot-lda")]
            print("%-8s postern-lda / dovecot-lda = %.2fx" % (fmt, r))
    finally:
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
