#!/usr/bin/python3
"""Accept rate with a chain of three no-op libmilter milters (milter-script,
tests/milter/milter_script.c), Postern vs Postfix in one run, each also
without milters: smtp-source into the MTA, messages / wall time until the
last 250. A measurement, not a test.

    bench/milter/accept_milters.py [--messages 5000] [--sessions 20] [--size 4096]
                                   [--rounds 3] [--transport inet|unix] [--bin build-bench/bin]

Both MTAs use the same three milter processes (one per chain position).
Build Postern without sanitizers for fair figures:
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import accept  # noqa: E402


def start_milters(bin_dir, n, transport="inet", workdir=None):
    """n milter-script processes on loopback TCP, or on unix sockets in
    workdir (mode 0777: both MTAs' smtpd users must reach them)."""
    from pylib.util import free_port
    from pylib.postfix import milter_ready
    script = os.path.normpath(os.path.join(bin_dir, "..", "tests", "milter", "milter-script"))
    procs, eps = [], []
    for i in range(n):
        if transport == "unix":
            where = os.path.join(workdir, "m%d.sock" % i)
            spec, ep = "unix:" + where, "unix:" + where
        else:
            where = free_port()
            spec, ep = "inet:%d@127.0.0.1" % where, "inet:127.0.0.1:%d" % where
        p = subprocess.Popen([script, "-p", spec], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0))
        procs.append(p)
        milter_ready(where, p)
        eps.append(ep)
    return procs, ", ".join(eps)


def rate(who, a, milters):
    if who == "Postfix":
        return accept.bench_postfix(a, milters)
    return accept.bench_postern(a, [], milters)[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--transport", choices=("inet", "unix"), default="inet",
                   help="how both MTAs reach the milters: loopback TCP or unix sockets")
    p.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "bin"))
    a = p.parse_args()
    w = tempfile.mkdtemp(prefix="bench-milters-")
    os.chmod(w, 0o755)
    accept.LATER.append(lambda: shutil.rmtree(w, ignore_errors=True))
    procs, chain = start_milters(a.bin, 3, a.transport, w)
    try:
        run_all(a, chain)
    finally:
        for pr in procs:
            pr.kill()
            pr.wait()
        for f in accept.LATER:
            f()


def run_all(a, chain):
    """Each round measures both MTAs with and without the chain, the order
    of the MTAs alternating; ratios are medians over the rounds."""
    res = {}
    for r in range(a.rounds):
        order = ("Postfix", "Postern") if r % 2 == 0 else ("Postern", "Postfix")
        for who in order:
            for label, m in (("no milters", ""), ("3 milters", chain)):
                v = rate(who, a, m)
                res.setdefault((who, label), []).append(v)
                print("round %d %-8s %-11s: %8.0f msg/s" % (r + 1, who, label, v), flush=True)

    def median(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    def ratio(w1, l1, w2, l2):
        return median([x / y for x, y in zip(res[(w1, l1)], res[(w2, l2)])])
    for who in ("Postfix", "Postern"):
        print("%-8s 3 milters / none : %5.2f" % (who, ratio(who, "3 milters", who, "no milters")))
    print("Postern / Postfix, 3 milters: %5.2fx (median of %d rounds)"
          % (ratio("Postern", "3 milters", "Postfix", "3 milters"), a.rounds))
    print("Postern / Postfix, none     : %5.2fx" % ratio("Postern", "no milters", "Postfix", "no milters"))


if __name__ == "__main__":
    main()
