"""dnsmasq on a 127.0.0.1 port, serving only the records a test gives.

API
---
    from pylib.dnsmasq import Dnsmasq

    dns = Dnsmasq(workdir,
                  txt={"d.test": ["v=spf1 -all"],             # one TXT record
                       "sel._domainkey.d.test": ["v=DKIM1; k=rsa; p=..."],
                       "multi.test": [("part one ", "part two")]},  # one record,
                                                              # several strings
                  hosts={"mx.d.test": ["192.0.2.1", "2001:db8::1"]},
                  mx=[("d.test", "mx.d.test", 10)])
    dns.start()            # returns once dnsmasq answers a query
    dns.port               # UDP and TCP port on 127.0.0.1
    dns.spec               # "127.0.0.1@PORT" (opendkim's Nameservers syntax)
    dns.stop()             # SIGTERM by pid, then SIGKILL if needed

Every name under .test that has no record of the asked type gets NODATA or
NXDOMAIN (--local=/test/), never REFUSED. A TXT string longer than 255
bytes is split by dnsmasq itself. TTLs are 0, so nothing is cached.

silent_udp_port() gives a (socket, port) pair: a bound UDP socket that never
answers, for DNS-timeout cases; close the socket in teardown.
"""
import os
import random
import socket
import struct
import subprocess
import time

from pylib.util import free_port, stop

DNSMASQ = "/usr/sbin/dnsmasq"


def _quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def query(port, name, qtype=16, timeout=1.0):
    """Send one question to 127.0.0.1:port; return the reply bytes or None."""
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(65535)
        except OSError:
            return None
    if len(data) < 12 or struct.unpack(">H", data[:2])[0] != qid:
        return None
    return data


class Dnsmasq:
    def __init__(self, workdir, txt=None, hosts=None, mx=None, extra=None):
        self.w = workdir
        self.txt = dict(txt or {})
        self.hosts = dict(hosts or {})
        self.mx = list(mx or [])
        self.extra = list(extra or [])
        self.port = None
        self.proc = None

    @property
    def spec(self):
        return "127.0.0.1@%d" % self.port

    def args(self):
        # records go in a config file: only there does dnsmasq read quoted
        # strings (on the command line quotes stay and commas split)
        conf = os.path.join(self.w, "dnsmasq-records.conf")
        with open(conf, "w") as f:
            for name, records in self.txt.items():
                for rec in records:
                    parts = rec if isinstance(rec, (tuple, list)) else (rec,)
                    f.write("txt-record=%s,%s\n" % (name, ",".join(_quote(p) for p in parts)))
            for name, addrs in self.hosts.items():
                f.write("host-record=%s,%s\n" % (name, ",".join(addrs)))
            for dom, host, pref in self.mx:
                f.write("mx-host=%s,%s,%d\n" % (dom, host, pref))
        a = [DNSMASQ, "--no-daemon", "--conf-file=" + conf, "--port=%d" % self.port,
             "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
             "--no-hosts", "--pid-file=", "--user=root", "--local=/test/",
             "--log-facility=" + os.path.join(self.w, "dnsmasq.log")]
        return a + self.extra

    def start(self, timeout=10):
        os.makedirs(self.w, exist_ok=True)
        for _ in range(3):
            self.port = free_port()
            self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if query(self.port, "ready.test", 1, 0.2) is not None:
                    return self
                time.sleep(0.02)
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
            stop(self.proc, timeout=2)
            if "Address already in use" not in err:
                raise RuntimeError("dnsmasq did not start: " + err)
        raise RuntimeError("dnsmasq: no free port")

    def stop(self):
        if self.proc is not None:
            stop(self.proc, timeout=5)
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None


def silent_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]
