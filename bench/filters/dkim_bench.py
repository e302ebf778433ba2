#!/usr/bin/python3
"""Messages/s through postern-dkim and opendkim, signing and verifying.

Not a test: run it by hand (as root, after building):
    POSTERN_BIN=build/bin /usr/bin/python3 bench/filters/dkim_bench.py [-n 600] [-c 8] [-r 3]

One Postfix instance (tests/pylib/postfix.py) with five listeners:
no milter (baseline), postern-dkim signing, opendkim signing, postern-dkim
verifying, opendkim verifying. Both filters use the same 2048-bit RSA key
(published by dnsmasq on loopback), relaxed/relaxed, and run with default
thread settings. Accepted mail goes to Postfix's discard transport, so the
figure is the SMTP accept rate with the milter in the path (queue file
writes included, delivery not). The same client (C concurrent SMTP
sessions, persistent, N messages of ~4 KiB in all) drives each listener
in turn, in interleaved rounds; the verify runs send a message signed by
the other filter's signer (each verifier is first checked to say pass).
Prints the median msg/s per case and the postern/opendkim ratios. Use a
build without POSTERN_SANITIZE for figures.
"""
import argparse
import base64
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
from pylib.dnsmasq import Dnsmasq  # noqa: E402
from pylib.postfix import Listener, Postfix  # noqa: E402
from pylib.util import BIN, free_port, stop  # noqa: E402

BODY = "".join("Line %03d of the benchmark message, some text to fill it up.\r\n" % i
               for i in range(64))
MSG = ("From: Alice <alice@d.bench>\r\nTo: <bob@r.test>\r\nSubject: bench\r\n"
       "Date: Mon, 23 Nov 2026 18:00:00 +0000\r\nMessage-ID: <bench@d.bench>\r\n\r\n" + BODY)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def drive(port, message, total, conc):
    """Send total messages over conc sessions; return (seconds, failures)."""
    per = [total // conc + (1 if i < total % conc else 0) for i in range(conc)]
    fails = [0] * conc
    ready = threading.Barrier(conc + 1)

    def worker(i):
        s = smtplib.SMTP("127.0.0.1", port, timeout=60)
        s.ehlo("bench.test")
        ready.wait()
        for _ in range(per[i]):
            try:
                s.sendmail("alice@d.bench", ["bob@r.test"], message)
            except smtplib.SMTPException:
                fails[i] += 1
                s.rset()
        s.quit()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(conc)]
    for t in threads:
        t.start()
    ready.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    return time.monotonic() - t0, sum(fails)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=600, help="messages per case")
    ap.add_argument("-c", type=int, default=8, help="concurrent SMTP sessions")
    ap.add_argument("-r", type=int, default=3, help="rounds (cases interleaved; median kept)")
    args = ap.parse_args()
    w = tempfile.mkdtemp(prefix="dkim-bench-")
    os.chmod(w, 0o755)
    procs, pf, dns = [], None, None
    try:
        key = os.path.join(w, "sel.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", key], check=True, capture_output=True)
        der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        dns = Dnsmasq(os.path.join(w, "dns"), txt={
            "sel._domainkey.d.bench": ["v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()]},
            extra=["--local=/bench/"]).start()

        # unix sockets: over loopback TCP, Postfix's small macro and command
        # packets meet delayed ACKs and every case runs at ~80 msg/s
        def ready(path, p):
            deadline = time.monotonic() + 20
            while not os.path.exists(path):
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("milter did not create " + path)
                time.sleep(0.05)

        def postern(name, conf):
            path = os.path.join(w, name + ".sock")
            c = write(os.path.join(w, name + ".conf"),
                      "Socket unix:%s\nUMask 000\nUserID postern\nLogFile %s/%s.log\n"
                      "Nameservers %s\nAuthservID postern.test\n%s" % (path, w, name, dns.spec,
                                                                        conf))
            p = subprocess.Popen([os.path.join(BIN, "postern-dkim"), "-c", c])
            procs.append(p)
            ready(path, p)
            return "unix:" + path

        def opendkim(name, conf):
            path = os.path.join(w, name + ".sock")
            c = write(os.path.join(w, name + ".conf"),
                      "Socket local:%s\nUMask 000\nSyslog no\nRequireSafeKeys false\n"
                      "AuthservID opendkim.test\n%s" % (path, conf))
            p = subprocess.Popen(["/usr/sbin/opendkim", "-f", "-x", c])
            procs.append(p)
            ready(path, p)
            return "unix:" + path

        sign = "Domain d.bench\nSelector sel\nKeyFile %s\nCanonicalization relaxed/relaxed\n" % key
        milters = [None,
                   postern("p-sign", "Mode s\n" + sign),
                   opendkim("o-sign", "Mode s\nInternalHosts 127.0.0.1\n" + sign),
                   postern("p-verify", "Mode v\nInternalHosts 192.0.2.250\n"),
                   # the domain is under .bench, not .test: opendkim would need
                   # ResolverConfiguration for .test names, and libunbound
                   # re-reads that file per query without a lock, failing
                   # ("fatal flex scanner internal error") under concurrency
                   opendkim("o-verify", "Mode v\nInternalHosts 192.0.2.250\n"
                            "Nameservers %s\n" % dns.spec)]
        pf = Postfix(os.path.join(w, "postfix"), mailboxes=["x@r.test"],
                     listeners=[Listener(milters=m, myhostname="l%d.test" % i)
                                for i, m in enumerate(milters)],
                     main={"virtual_mailbox_domains": "", "relay_domains": "r.test",
                           "transport_maps": "inline:{ r.test=discard: }"})
        pf.start()

        # signed copies for the verify runs: each signer's output, caught by
        # a second, throwaway Postfix that delivers to a Maildir
        cap = Postfix(os.path.join(w, "capture"), mailboxes=["bob@r.test"],
                      listeners=[Listener(milters=milters[1], myhostname="cp.test"),
                                 Listener(milters=milters[2], myhostname="co.test"),
                                 Listener(milters=milters[3], myhostname="vp.test"),
                                 Listener(milters=milters[4], myhostname="vo.test")])
        cap.start()
        signed = {}
        for idx, name in ((0, "postern"), (1, "opendkim")):
            code, text = cap.send(cap.port(idx), "alice@d.bench", ["bob@r.test"], MSG)
            assert code == 250, text
            m = cap.wait_messages("bob@r.test", idx + 1)[idx].decode()
            hdr = m[m.index("DKIM-Signature:"):]
            lines = hdr.split("\n")
            sig = [lines[0]]
            for line in lines[1:]:
                if line[:1] in (" ", "\t"):
                    sig.append(line)
                else:
                    break
            signed[name] = "\r\n".join(s.rstrip("\r") for s in sig) + "\r\n" + MSG
        # each verifier must say pass on the other's signature, or the
        # figures would time a failing verification
        for idx, name, authserv in ((2, "opendkim", "postern.test"), (3, "postern", "opendkim.test")):
            code, text = cap.send(cap.port(idx), "alice@d.bench", ["bob@r.test"], signed[name])
            assert code == 250, text
            m = cap.wait_messages("bob@r.test", idx + 1)[idx].decode()
            ar = " ".join(m.split())
            assert "%s; dkim=pass" % authserv in ar, ar[:600]
        cap.stop()

        cases = [("baseline (no milter)", 0, MSG), ("postern-dkim sign", 1, MSG),
                 ("opendkim sign", 2, MSG), ("postern-dkim verify", 3, signed["opendkim"]),
                 ("opendkim verify", 4, signed["postern"])]
        # warm up each listener (process start, key load, first DNS answer)
        for _, idx, m in cases:
            drive(pf.port(idx), m, args.c, args.c)
        runs = {name: [] for name, _, _ in cases}
        refused = {name: 0 for name, _, _ in cases}
        print("%d messages per case and round, %d rounds, %d sessions, %d-byte messages" % (
            args.n, args.r, args.c, len(MSG)))
        # rounds interleave the cases, so that a busy moment of the machine
        # does not fall on one case only; the median round is kept
        for _ in range(args.r):
            for name, idx, m in cases:
                secs, fails = drive(pf.port(idx), m, args.n, args.c)
                runs[name].append((args.n - fails) / secs)
                refused[name] += fails
        rates = {}
        for name, _, _ in cases:
            rates[name] = sorted(runs[name])[len(runs[name]) // 2]
            print("%-24s %8.1f msg/s  (rounds: %s; %d refused)" % (
                name, rates[name], ", ".join("%.0f" % v for v in runs[name]), refused[name]))
        print("ratio sign   postern/opendkim: %.2f" % (rates["postern-dkim sign"] /
                                                       rates["opendkim sign"]))
        print("ratio verify postern/opendkim: %.2f" % (rates["postern-dkim verify"] /
                                                       rates["opendkim verify"]))
    finally:
        if pf is not None:
            pf.stop()
        for p in procs:
            stop(p, sig=9)
        if dns is not None:
            dns.stop()
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
