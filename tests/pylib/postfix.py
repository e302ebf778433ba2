"""A private Postfix instance on 127.0.0.1 for interop tests and benchmarks.

API
---
    from pylib.postfix import Postfix, Listener

    pf = Postfix(workdir,                       # a directory the test owns
                 listeners=[Listener(milters="inet:127.0.0.1:12345"),
                            Listener(forward_to=0, myhostname="sign.test")],
                 mailboxes=["a@d.test"],        # virtual Maildir users
                 main={"milter_default_action": "accept"})  # extra main.cf
    pf.start()                 # returns once every listener sent its 220
    pf.port(0)                 # the TCP port of listener 0
    pf.send(port, sender, rcpts, message_bytes, xclient_addr=None, helo=...)
                               # one SMTP transaction; returns (code, text)
                               # of the reply to DATA (or of the first refusal)
    pf.wait_messages("a@d.test", n)   # bytes of the first n delivered messages
    pf.messages("a@d.test")    # bytes of every delivered message, oldest first
    pf.log()                   # the maillog text
    pf.stop()                  # postfix stop; waits until its processes are gone

    milter_ready(where, proc=None) # wait until a milter (127.0.0.1 port, or unix path)
                               # answers an option negotiation (milters send
                               # no greeting; a connect() alone proves little)

Layout under workdir: etc/ (config_directory: main.cf, master.cf), queue/,
data/, mail/<user>/Maildir/, maillog. Nothing is chrooted, every listener
binds 127.0.0.1 only, and delivery is virtual(8) into Maildirs owned by
nobody (65534), so no system users are needed.

Listener(milters=None, forward_to=None, myhostname=None, options=None):
  milters     smtpd_milters for this listener (Postfix syntax, e.g.
              "inet:127.0.0.1:PORT"; several separated by commas)
  forward_to  index of another listener: mail received here is passed on
              through content_filter=smtp:[127.0.0.1]:PORT (so a signing
              milter on one listener and a verifying one on the next both
              see the message, as between two MTAs)
  myhostname  this listener's name (a forwarded-to listener needs its own,
              or Postfix reports a mail loop); default "<name>.postfix.test"
  options     more "-o name=value" pairs for this smtpd

XCLIENT is allowed from 127.0.0.0/8, so tests can claim any client address
(`xclient_addr`), as SPF and DMARC checks need a non-loopback client.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

from pylib.util import free_port, maildir_new, smtp_send, wait_for, wait_for_greeting

POSTFIX = "/usr/sbin/postfix"

# Services Postfix needs for receiving and virtual delivery; no chroot.
_MASTER_BASE = """\
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class Listener:
    def __init__(self, milters=None, forward_to=None, myhostname=None, options=None):
        self.milters = milters
        self.forward_to = forward_to
        self.myhostname = myhostname
        self.options = dict(options or {})
        self.port = None


class Postfix:
    def __init__(self, workdir, listeners=None, mailboxes=("a@d.test",), main=None):
        self.w = os.path.abspath(workdir)
        self.listeners = list(listeners or [Listener()])
        self.mailboxes = list(mailboxes)
        self.main = dict(main or {})
        self.etc = os.path.join(self.w, "etc")
        self.queue = os.path.join(self.w, "queue")
        self.maillog = os.path.join(self.w, "maillog")
        self.mail = os.path.join(self.w, "mail")
        self.running = False
        self._pids = set()

    # -- set-up ---------------------------------------------------------
    def _write_config(self):
        for d in (self.etc, self.queue, os.path.join(self.w, "data"), self.mail):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.w, 0o755)
        shutil.chown(os.path.join(self.w, "data"), "postfix")
        shutil.chown(self.mail, 65534, 65534)
        domains = sorted({m.split("@", 1)[1] for m in self.mailboxes})
        boxes = ", ".join("%s=%s/Maildir/" % (m, m.replace("@", "_")) for m in self.mailboxes)
        for i, l in enumerate(self.listeners):
            if l.port is None:
                l.port = free_port()
            if l.myhostname is None:
                l.myhostname = "l%d.postfix.test" % i
        main = {
            "compatibility_level": "3.6",
            "config_directory": self.etc,
            "queue_directory": self.queue,
            "data_directory": os.path.join(self.w, "data"),
            "maillog_file_prefixes": self.w,
            "maillog_file": self.maillog,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "mx.postfix.test",
            "mydomain": "postfix.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            "disable_dns_lookups": "yes",
            "smtp_host_lookup": "native",
            "virtual_mailbox_domains": " ".join(domains),
            "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": "inline:{ %s }" % boxes if boxes else "",
            "virtual_uid_maps": "static:65534",
            "virtual_gid_maps": "static:65534",
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "milter_default_action": "tempfail",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "1000",
            "smtpd_hard_error_limit": "1000",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "5s",
            "message_size_limit": "52428800",
            "virtual_mailbox_limit": "0",
            "header_size_limit": "4194304",
        }
        main.update(self.main)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in main.items():
                f.write("%s = %s\n" % (k, v))
        master = _MASTER_BASE
        for l in self.listeners:
            opts = {"myhostname": l.myhostname}
            if l.milters:
                opts["smtpd_milters"] = l.milters
            if l.forward_to is not None:
                dst = self.listeners[l.forward_to]
                if dst.port is None:
                    dst.port = free_port()
                opts["content_filter"] = "smtp:[127.0.0.1]:%d" % dst.port
            opts.update(l.options)
            master += "127.0.0.1:%d inet n - n - - smtpd\n" % l.port
            for k, v in opts.items():
                # a value with spaces or commas: the whole pair in braces
                if any(c in str(v) for c in " ,"):
                    master += "  -o { %s = %s }\n" % (k, v)
                else:
                    master += "  -o %s=%s\n" % (k, v)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master)

    def port(self, i=0):
        return self.listeners[i].port

    def start(self, timeout=30):
        self._write_config()
        r = subprocess.run([POSTFIX, "-c", self.etc, "start"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed (%d): %s%s\n%s" % (
                r.returncode, r.stdout, r.stderr, self.log()))
        self.running = True
        for l in self.listeners:
            wait_for_greeting(l.port, timeout=timeout)
        self._pids = self._instance_pids()

    # -- processes ------------------------------------------------------
    def _master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _instance_pids(self):
        """The master and its children (by parent pid)."""
        master = self._master_pid()
        if master is None:
            return set()
        pids = {master}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == master:
                    pids.add(int(d))
            except (OSError, IndexError, ValueError):
                continue
        return pids

    @staticmethod
    def _alive(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def stop(self):
        if not self.running:
            return
        pids = self._pids | self._instance_pids()
        subprocess.run([POSTFIX, "-c", self.etc, "stop"], capture_output=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(self._alive(p) for p in pids):
            time.sleep(0.05)
        for p in pids:
            if self._alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.running = False

    # -- mail -----------------------------------------------------------
    def send(self, port, sender, rcpts, message, xclient_addr=None, helo="client.test",
             timeout=30):
        """One SMTP transaction. Returns (code, text) of the final reply:
        the DATA reply, or the first refusal (MAIL, RCPT or DATA)."""
        return smtp_send(port, sender, rcpts, message, helo=helo, xclient_addr=xclient_addr,
                         timeout=timeout)

    def maildir(self, addr):
        return os.path.join(self.mail, addr.replace("@", "_"), "Maildir")

    def messages(self, addr):
        return maildir_new(os.path.join(self.maildir(addr), "new"))

    def wait_messages(self, addr, n=1, timeout=30):
        try:
            return wait_for(lambda: (lambda m: m if len(m) >= n else None)(self.messages(addr)),
                            timeout=timeout, what="%d message(s) for %s" % (n, addr))
        except TimeoutError:
            raise TimeoutError("no delivery to %s; maillog:\n%s" % (addr, self.log()[-4000:]))

    def clear(self, addr):
        d = os.path.join(self.maildir(addr), "new")
        if os.path.isdir(d):
            for name in os.listdir(d):
                os.unlink(os.path.join(d, name))

    def log(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def milter_ready(where, proc=None, timeout=20.0):
    """Poll until the milter answers OPTNEG with 'O': where is a port on
    127.0.0.1 or the path of a unix socket."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("milter exited with %s" % proc.returncode)
        try:
            unix = isinstance(where, str)
            with socket.socket(socket.AF_UNIX if unix else socket.AF_INET) as s:
                s.settimeout(5)
                s.connect(where if unix else ("127.0.0.1", where))
                s.sendall(struct.pack(">IcIII", 13, b"O", 6, 0x1FF, 0x1FFFFF))
                hdr = s.recv(5)
                if len(hdr) == 5 and hdr[4:5] == b"O":
                    return
                last = hdr
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise TimeoutError("milter on %s not ready (%r)" % (where, last))
