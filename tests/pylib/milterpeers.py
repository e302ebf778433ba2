"""Real milters from Debian, started on 127.0.0.1 for interop tests.

API
---
    from tests.pylib.milterpeers import Clamav, Spamd, SpamassMilter, Rspamd, \\
        Netns, Opendkim, Opendmarc

    av = Clamav(workdir).start()     # clamd + clamav-milter; EICAR is a virus
    av.endpoint                      # "inet:127.0.0.1:PORT" (main.cf syntax)
    av.signature                     # the name clamd reports for EICAR

    sd = Spamd(workdir).start()      # spamd with Debian's rules, no network
    sa = SpamassMilter(workdir, sd, reject_score=15).start()
    sa.endpoint
    rs = Rspamd(workdir).start()     # rspamd's milter proxy, own config

    ns = Netns(workdir, txt={"_dmarc.d.test": ["v=DMARC1; p=reject"]}).start()
                                     # a network namespace whose port 53 is
                                     # dnsmasq serving only these records
    dk = Opendkim(workdir, "sign", ["Mode s", "Domain d.test", ...]).start()
    dv = Opendkim(workdir, "verify", [...], netns=ns).start()  # unix socket
    dm = Opendmarc(workdir, ns, ["AuthservID mx.test", ...]).start()
    dm.endpoint                      # "unix:/path" (reachable from outside ns)

    x.stop()                         # every launcher: by pid; ns.stop() also
                                     # deletes the namespace and /etc/netns/NS

    w = workdir("prefix-")           # a temp dir Postern's user can traverse
    keyfile, record = dkim_key(w + "/keys")   # opendkim-genkey, TXT text
    send(port, sender, rcpts, msg)   # one SMTP transaction: (code, text)
    delivered(postern, "subject")    # the delivered message with that Subject
    wait_milter_reject(p, "5.7.1 text", sender=..)  # the Postfix-shaped line
    with Group("prefix-") as g:      # a workdir and peers stopped at the end
        av = g.start(Clamav(g.w))
    EICAR, GTUBE                     # the antivirus / antispam test strings

Each start() returns once the peer answers its own protocol (clamd PONG,
spamd PONG, a milter's option negotiation), never after a fixed sleep.
Peers run as root (the tests run as root) except spamd, which drops to
debian-spamd. Nothing is downloaded: clamd loads one local signature that
matches the EICAR test string; SpamAssassin uses the rules Debian ships.
Facts behind each configuration: ../../shared/reference/peers.md.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from .dnsmasq import Dnsmasq
from .filters import write as _write
from .postfix import Postfix, milter_ready
from .util import free_port, stop, wait_for

# The EICAR test file (a harmless string every antivirus reports); kept in
# two halves so that this file itself is not flagged by a scanner.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")

# SpamAssassin's test string (GTUBE): matches rule GTUBE, score 1000.
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*" + b"GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def send(port, sender, rcpts, message, helo="client.test", timeout=60):
    """One SMTP transaction to any MTA on 127.0.0.1:port; (code, text) of
    the DATA reply or of the first refusal. (Postfix.send uses no instance
    state: one way to send for Postern and Postfix alike.)"""
    return Postfix.send(None, port, sender, rcpts, message, helo=helo, timeout=timeout)


def delivered(p, token, user="alice", timeout=30):
    """The message in user's Maildir of Postern p whose Subject is token,
    waiting for it to arrive."""
    def find():
        for m in p.maildir_messages(user):
            if ("\nSubject: %s\n" % token).encode() in m:
                return m
        return None
    return wait_for(find, timeout, "delivery of " + token)


def wait_milter_reject(p, text, sender="s@remote.test", rcpt="alice@example.test",
                       stage="END-OF-MESSAGE", helo="client.test", timeout=30):
    """Wait for Postern p's (or, given Postfix.log, any) Postfix-shaped line
    `QID: milter-reject: STAGE from localhost[127.0.0.1]: TEXT; from=<..>
    to=<..> proto=ESMTP helo=<..>`; returns the match (group 1: queue ID)."""
    rx = re.compile(r"^.*: ([0-9A-F]{10,}): milter-reject: %s from localhost\[127\.0\.0\.1\]: "
                    r"%s; from=<%s> to=<%s> proto=ESMTP helo=<%s>$"
                    % (stage, re.escape(text), re.escape(sender), re.escape(rcpt), re.escape(helo)),
                    re.M)
    log = p.log_text if hasattr(p, "log_text") else p.log
    return wait_for(lambda: rx.search(log()), timeout, "milter-reject: " + text)


def unbound_conf(path):
    """Write a libunbound file for opendkim's ResolverConfiguration that
    lets .test names be asked of the nameserver (libunbound answers the
    .test zone itself otherwise); return path."""
    return _write(path, 'server:\n  local-zone: "test." nodefault\n')


def dkim_key(keydir, domain="d.test", selector="sel"):
    """opendkim-genkey a 2048-bit key into keydir; (private key file, the
    TXT record text to publish at selector._domainkey.domain)."""
    os.makedirs(keydir, exist_ok=True)
    subprocess.run(["opendkim-genkey", "-b", "2048", "-d", domain, "-s", selector, "-D", keydir],
                   check=True, capture_output=True)
    with open(os.path.join(keydir, selector + ".txt")) as f:
        record = "".join(re.findall(r'"([^"]*)"', f.read()))
    return os.path.join(keydir, selector + ".private"), record


def workdir(prefix):
    """A fresh temp directory that the unprivileged Postern user can
    traverse (pytest's tmp_path is 0700 under root), for module fixtures."""
    w = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(w, 0o755)
    return w


class Group:
    """Peers started in order and stopped in reverse order, in a fresh
    workdir() that is removed at the end; a context manager:

        with Group("postern-clamav-") as g:
            av = g.start(Clamav(g.w))
            pf = g.start(Postfix(g.w + "/pf", ...))

    A peer is recorded before it starts, so one that fails half-way is
    stopped too; Postern instances are cleaned up (stopped and removed)."""

    def __init__(self, prefix):
        self.w = workdir(prefix)
        self.started = []

    def start(self, peer):
        self.started.append(peer)
        peer.start()
        return peer

    def stop(self):
        while self.started:
            peer = self.started.pop()
            getattr(peer, "cleanup", peer.stop)()
        shutil.rmtree(self.w, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def _kill(proc):
    # libmilter daemons take seconds to exit on SIGTERM; SIGKILL is fine
    # for a test peer that keeps no state
    stop(proc, sig=9, timeout=5)


def _tail(path, n=2000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


class Clamav:
    """clamd with one local .ndb signature for EICAR, and clamav-milter
    rejecting infected mail with "550 5.7.1 Virus found: <name>" (or, with
    on_infected="Quarantine", asking the MTA to hold it) and adding
    X-Virus-Status to clean mail (AddHeader Replace)."""

    signature = "Local.Test.EICAR.NDB.UNOFFICIAL"

    def __init__(self, workdir, on_infected="Reject", extra_milter_lines=()):
        self.w = os.path.join(str(workdir), "clamav")
        self.on_infected = on_infected  # Reject; Debian's default is Quarantine
        self.extra = list(extra_milter_lines)
        self.clamd = self.milter = None
        self.clamd_port = self.port = None

    @property
    def endpoint(self):
        return "inet:127.0.0.1:%d" % self.port

    def milter_conf_lines(self):
        """The clamav-milter.conf lines that matter (docs/milters.md)."""
        return ["MilterSocket inet:%d@127.0.0.1" % self.port,
                "ClamdSocket tcp:127.0.0.1:%d" % self.clamd_port,
                "OnInfected " + self.on_infected,
                'RejectMsg "Virus found: %v"',
                "OnFail Defer",
                "AddHeader Replace"] + self.extra

    def start(self):
        db = os.path.join(self.w, "db")
        tmp = os.path.join(self.w, "tmp")
        os.makedirs(db, exist_ok=True)
        os.makedirs(tmp, exist_ok=True)
        # an .ndb body signature matches EICAR anywhere in a message; a hash
        # (.hdb) would match only an attachment that is exactly the file
        _write(os.path.join(db, "local.ndb"),
               "Local.Test.EICAR.NDB:0:*:%s\n" % b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE".hex())
        self.clamd_port = free_port()
        conf = _write(os.path.join(self.w, "clamd.conf"), "\n".join([
            "Foreground yes", "User root", "DatabaseDirectory " + db,
            "TCPSocket %d" % self.clamd_port, "TCPAddr 127.0.0.1",
            "PidFile " + os.path.join(self.w, "clamd.pid"),
            "TemporaryDirectory " + tmp, "LogFile " + os.path.join(self.w, "clamd.log"),
            "SelfCheck 0", ""]))
        self.clamd = subprocess.Popen(["/usr/sbin/clamd", "-c", conf],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._clamd_pong, 30, "clamd PONG (log: %s)" % os.path.join(self.w, "clamd.log"))
        self.port = free_port()
        mconf = _write(os.path.join(self.w, "clamav-milter.conf"), "\n".join(
            ["Foreground yes", "User root", "PidFile " + os.path.join(self.w, "milter.pid"),
             "TemporaryDirectory " + tmp, "LogFile " + os.path.join(self.w, "milter.log"),
             "LogInfected Full", "LogClean Basic"] + self.milter_conf_lines() + [""]))
        self.milter = subprocess.Popen(["/usr/sbin/clamav-milter", "-c", mconf],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        milter_ready(self.port, self.milter)
        return self

    def _clamd_pong(self):
        if self.clamd.poll() is not None:
            raise RuntimeError("clamd exited: " + _tail(os.path.join(self.w, "clamd.log")))
        try:
            with socket.create_connection(("127.0.0.1", self.clamd_port), timeout=2) as s:
                s.sendall(b"zPING\0")
                return s.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def log(self):
        return _tail(os.path.join(self.w, "milter.log"), 100000)

    def stop(self):
        _kill(self.milter)
        stop(self.clamd, timeout=5)


class Spamd:
    """spamd on 127.0.0.1 with Debian's shipped rules and no network tests;
    drops to debian-spamd. local_cf: more local.cf lines (own rules)."""

    def __init__(self, workdir, local_cf=()):
        self.w = os.path.join(str(workdir), "spamd")
        self.local_cf = list(local_cf)
        self._log = None
        self.port = None
        self.proc = None

    def start(self):
        site = os.path.join(self.w, "site")
        home = os.path.join(self.w, "home")
        os.makedirs(site, exist_ok=True)
        os.makedirs(home, exist_ok=True)
        shutil.chown(home, "debian-spamd", "debian-spamd")
        os.chmod(self.w, 0o755)
        for pre in glob.glob("/etc/spamassassin/*.pre"):
            shutil.copy(pre, site)
        # no DNS, no network checks, no learning: the verdict depends on the
        # message alone (GTUBE scores 1000 whatever else fires)
        _write(os.path.join(site, "local.cf"),
               "dns_available no\nskip_rbl_checks 1\nuse_bayes 0\nuse_razor2 0\n"
               "use_pyzor 0\nreport_safe 0\nuse_auto_whitelist 0\n"
               + "".join(line + "\n" for line in self.local_cf))
        self.port = free_port()
        self._log = open(os.path.join(self.w, "spamd.log"), "wb")
        self.proc = subprocess.Popen(
            ["/usr/sbin/spamd", "--listen=127.0.0.1:%d" % self.port, "--allowed-ips=127.0.0.1",
             "-L", "-x", "--siteconfigpath=" + site, "-u", "debian-spamd", "-g", "debian-spamd",
             "-H", home, "-s", "stderr", "-m", "2", "--min-spare=1", "--max-spare=1"],
            stdout=subprocess.DEVNULL, stderr=self._log)
        wait_for(self._pong, 60, "spamd PONG")
        return self

    def _pong(self):
        if self.proc.poll() is not None:
            raise RuntimeError("spamd exited: " + _tail(os.path.join(self.w, "spamd.log")))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.sendall(b"PING SPAMC/1.5\r\n\r\n")
                return b"PONG" in s.recv(64)
        except OSError:
            return False

    def stop(self):
        stop(self.proc, timeout=10)
        if self._log:
            self._log.close()
            self._log = None


class SpamassMilter:
    """spamass-milter talking to a Spamd; -m (headers only); with
    reject_score it rejects at that score with 550 5.7.1."""

    def __init__(self, workdir, spamd, reject_score=None):
        self.spamd = spamd
        self.reject_score = reject_score
        self.port = None
        self.proc = None

    @property
    def endpoint(self):
        return "inet:127.0.0.1:%d" % self.port

    def argv(self):
        a = ["/usr/sbin/spamass-milter", "-p", "inet:%d@127.0.0.1" % self.port, "-m"]
        if self.reject_score is not None:
            a += ["-r", str(self.reject_score)]
        return a + ["--", "-d", "127.0.0.1", "-p", str(self.spamd.port)]

    def start(self):
        self.port = free_port()
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        milter_ready(self.port, self.proc)
        return self

    def stop(self):
        _kill(self.proc)


class Rspamd:
    """rspamd in milter mode (its proxy worker scanning in-process), with
    its own minimal configuration: Debian's Lua rules and plugins but no
    /etc/rspamd (which would turn on every network module), DNS pointed at
    a dead loopback port, a three-line TLD list (the stock one costs a 15 s
    first start), milter_headers adding its headers even for local clients.
    Built-in GTUBE gets "554 5.7.1 Gtube pattern"."""

    def __init__(self, workdir):
        self.w = os.path.join(str(workdir), "rspamd")
        self.port = None
        self.proc = None

    @property
    def endpoint(self):
        return "inet:127.0.0.1:%d" % self.port

    def conf_lines(self):
        """The rspamd.conf text that matters for milter mode (docs/milters.md)."""
        return ('worker "rspamd_proxy" {\n'
                '  bind_socket = "127.0.0.1:%d";\n'
                '  milter = yes;\n'
                '  timeout = 120s;\n'
                '  upstream "local" { default = yes; self_scan = yes; }\n'
                '}\n'
                'milter_headers {\n'
                '  skip_local = false;\n'
                '  skip_authenticated = false;\n'
                '  use = ["x-spamd-result", "x-spam-status", "authentication-results"];\n'
                '}\n' % self.port)

    def start(self):
        for d in ("hs", "tmp", "db"):
            os.makedirs(os.path.join(self.w, d), exist_ok=True)
        tld = _write(os.path.join(self.w, "tld.dat"), "test\ncom\norg\n")
        self.port = free_port()
        conf = _write(os.path.join(self.w, "rspamd.conf"), (
            'lua = "/usr/share/rspamd/rules/rspamd.lua";\n'
            'modules { path = "/usr/share/rspamd/plugins"; }\n'
            'options {\n'
            '  filters = "";\n'
            '  url_tld = "%s";\n'
            '  hs_cache_dir = "%s";\n  tempdir = "%s";\n  dbdir = "%s";\n'
            '  pidfile = "%s";\n'
            '  dns { nameserver = ["127.0.0.1:9"]; }\n'
            '}\n'
            'logging { type = "file"; filename = "%s"; level = "notice"; }\n'
            % (tld, os.path.join(self.w, "hs"), os.path.join(self.w, "tmp"),
               os.path.join(self.w, "db"), os.path.join(self.w, "rspamd.pid"),
               os.path.join(self.w, "rspamd.log"))) + self.conf_lines())
        self.proc = subprocess.Popen(["/usr/bin/rspamd", "-f", "-u", "root", "-g", "root",
                                      "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        milter_ready(self.port, self.proc, timeout=60)
        return self

    def stop(self):
        stop(self.proc, timeout=10)


class Netns:
    """A network namespace NS with lo up whose /etc/resolv.conf (through
    /etc/netns/NS) names 127.0.0.1, where dnsmasq answers on port 53 with
    the given records (tests.pylib.dnsmasq.Dnsmasq's arguments). For milters
    that resolve only through the system resolver (opendmarc): they run
    inside it on a unix socket, which the MTA outside reaches as a file."""

    count = 0

    def __init__(self, workdir, txt=None, hosts=None, mx=None):
        self.w = os.path.join(str(workdir), "netns")
        Netns.count += 1
        self.name = "pm%d-%d" % (os.getpid(), Netns.count)
        self.dns = Dnsmasq(self.w, txt=txt, hosts=hosts, mx=mx)
        self.dns_proc = None
        self.created = False

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def start(self):
        os.makedirs(self.w, exist_ok=True)
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self.created = True
        subprocess.run(self.exec_argv(["ip", "link", "set", "lo", "up"]), check=True)
        os.makedirs("/etc/netns/" + self.name, exist_ok=True)
        _write("/etc/netns/%s/resolv.conf" % self.name, "nameserver 127.0.0.1\n")
        self.dns.port = 53
        self.dns_proc = subprocess.Popen(self.exec_argv(self.dns.args()),
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # wait for an answer from inside the namespace (its port 53 cannot
        # be reached from here): one child that polls until dnsmasq replies
        poll = ("import sys, time; sys.path.insert(0, %r)\n"
                "from pylib.dnsmasq import query\n"
                "t = time.monotonic() + 10\n"
                "while time.monotonic() < t:\n"
                "    if query(53, 'ready.test', 1, 0.2) is not None: sys.exit(0)\n"
                "    time.sleep(0.02)\n"
                "sys.exit(1)\n") % os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        r = subprocess.run(self.exec_argv([sys.executable, "-c", poll]), capture_output=True)
        if r.returncode != 0:
            raise RuntimeError("dnsmasq in namespace %s does not answer: %s"
                               % (self.name, r.stderr))
        return self

    def stop(self):
        stop(self.dns_proc, timeout=5)
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            self.created = False
        shutil.rmtree("/etc/netns/" + self.name, ignore_errors=True)
        try:
            os.rmdir("/etc/netns")  # only when no other namespace uses it
        except OSError:
            pass


class _SocketMilter:
    """A libmilter daemon started with a config file, on inet 127.0.0.1 or,
    inside a Netns, on a unix socket under workdir."""

    binary = None
    conf_flag = None

    def __init__(self, workdir, name, lines, netns=None):
        self.w = str(workdir)
        self.name = name
        self.lines = list(lines)
        self.netns = netns
        self.port = None
        self.path = None
        self.proc = None

    @property
    def endpoint(self):
        return "unix:" + self.path if self.path else "inet:127.0.0.1:%d" % self.port

    def socket_line(self):
        if self.netns:
            self.path = os.path.join(self.w, self.name + ".sock")
            if os.path.exists(self.path):
                os.unlink(self.path)  # a stale socket file stops the start
            return "Socket local:" + self.path
        self.port = free_port()
        return "Socket inet:%d@127.0.0.1" % self.port

    def start(self):
        conf = _write(os.path.join(self.w, self.name + ".conf"),
                      "\n".join([self.socket_line(), "UMask 0000", "Syslog false",
                                 "Background false"] + self.lines + [""]))
        argv = [self.binary, "-f", self.conf_flag, conf]
        if self.netns:
            argv = self.netns.exec_argv(argv)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if self.path:
            milter_ready(self.path, self.proc)
        else:
            milter_ready(self.port, self.proc)
        return self

    def stop(self):
        _kill(self.proc)
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()


class Opendkim(_SocketMilter):
    """opendkim -f -x CONF; lines are opendkim.conf lines (Mode, Domain,
    Selector, KeyFile, InternalHosts, AuthservID, ...). Inside a Netns its
    libunbound is pointed at the namespace's dnsmasq (Debian's opendkim
    never reads /etc/resolv.conf, and libunbound answers .test itself
    unless told not to)."""
    binary = "/usr/sbin/opendkim"
    conf_flag = "-x"

    def __init__(self, workdir, name, lines, netns=None):
        if netns is not None and not any(line.startswith("Nameservers") for line in lines):
            unbound = unbound_conf(os.path.join(str(workdir), name + "-unbound.conf"))
            lines = list(lines) + ["Nameservers 127.0.0.1", "ResolverConfiguration " + unbound]
        super().__init__(workdir, name, lines, netns=netns)


class Opendmarc(_SocketMilter):
    """opendmarc -f -c CONF inside a Netns (it resolves only through
    /etc/resolv.conf). lines are opendmarc.conf lines; IgnoreHosts points at
    an empty file unless given (the default silently skips 127.0.0.1)."""
    binary = "/usr/sbin/opendmarc"
    conf_flag = "-c"

    def __init__(self, workdir, netns, lines):
        if not any(line.startswith("IgnoreHosts") for line in lines):
            empty = _write(os.path.join(str(workdir), "dmarc-ignore"), "")
            lines = list(lines) + ["IgnoreHosts " + empty]
        super().__init__(workdir, "opendmarc", lines, netns=netns)
