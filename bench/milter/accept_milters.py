#!/usr/bin/python3
"""Accept rate with a chain of three no-op libmilter milters (milter-script,
tests/milter/milter_script.c), Postern vs Postfix in one run, each also
without milters: smtp-source into the MTA, messages / wall time until the
last 250. A measurement, not a test.

    bench/milter/accept_milters.py [--messages 5000] [--sessions 20] [--size 4096]
                                   [--bin build-bench/bin]

Both MTAs use the same three milter processes (one per chain position).
Build Postern without sanitizers for fair figures:
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from accept import run_source  # noqa: E402


def start_milters(bin_dir, n):
    from pylib.util import free_port
    from pylib.postfix import milter_ready
    script = os.path.normpath(os.path.join(bin_dir, "..", "tests", "milter", "milter-script"))
    procs, eps = [], []
    for _ in range(n):
        port = free_port()
        p = subprocess.Popen([script, "-p", "inet:%d@127.0.0.1" % port],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        milter_ready(port, p)
        eps.append("inet:127.0.0.1:%d" % port)
    return procs, ", ".join(eps)


def bench_postfix(a, milters):
    from pylib.postfix import Postfix, Listener
    with tempfile.TemporaryDirectory(prefix="bench-postfix-") as w:
        pf = Postfix(w, listeners=[Listener(milters=milters or None)],
                     mailboxes=["alice@example.test"], main={"milter_default_action": "tempfail"})
        pf.start()
        try:
            return run_source(pf.port(0), a.messages, a.sessions, a.size, "alice@example.test")
        finally:
            pf.stop()


def bench_postern(a, milters):
    from pylib import util
    util.BIN = os.path.abspath(a.bin)
    from pylib.postern import Postern
    cf = {"smtpd_client_connection_count_limit": "0", "smtpd_timeout": "3600s"}
    if milters:
        cf["smtpd_milters"] = milters
    inst = Postern(main_cf=cf)
    try:
        inst.start()
        return run_source(inst.port, a.messages, a.sessions, a.size, "alice@example.test")
    finally:
        inst.cleanup()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--bin", default=os.path.join(ROOT, "build-bench", "bin"))
    a = p.parse_args()
    procs, chain = start_milters(a.bin, 3)
    try:
        res = {}
        for name, fn in (("Postfix", bench_postfix), ("Postern", bench_postern)):
            for label, m in (("no milters", ""), ("3 milters", chain)):
                res[(name, label)] = fn(a, m)
                print("%-8s %-11s: %8.0f msg/s" % (name, label, res[(name, label)]), flush=True)
        for name in ("Postfix", "Postern"):
            print("%-8s 3 milters / none : %5.2f" % (name, res[(name, "3 milters")] /
                                                    res[(name, "no milters")]))
        print("Postern / Postfix, 3 milters: %5.2fx" % (res[("Postern", "3 milters")] /
                                                      res[("Postfix", "3 milters")]))
        print("Postern / Postfix, none     : %5.2fx" % (res[("Postern", "no milters")] /
                                                      res[("Postfix", "no milters")]))
    finally:
        for pr in procs:
            pr.kill()
            pr.wait()


if __name__ == "__main__":
    main()
