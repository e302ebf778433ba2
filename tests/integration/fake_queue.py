"""A stand-in for postern-queue's end of smtpd's IPC channel, and a starter
for postern-smtpd alone.

Why it exists: smtpd was written before the real queue process existed, and
this stand-in still has a job afterwards: tests can make the queue fail on
purpose (IPC_Q_ERROR at open or commit, a commit that hangs, a channel that
closes) and can look at exactly what smtpd sent (envelope, content bytes,
aborts) without a queue file format in between.

It speaks lib/ipc.h's packet format over a SOCK_SEQPACKET socketpair:
u32 length, u16 type, u16 flags, u32 reqid, then fields (u32/u64/i64 fixed
width, strings as u32 length + bytes), descriptors with SCM_RIGHTS.
"""
import os
import socket
import struct
import subprocess
import tempfile
import threading
import time

from tests.pylib import util

Q_OPEN, Q_OPENED, Q_SENDER, Q_RCPT, Q_COMMIT, Q_COMMITTED, Q_ERROR, Q_ABORT = range(1, 9)


class Reader:
    def __init__(self, body):
        self.b = body
        self.off = 0

    def u32(self):
        v = struct.unpack_from("=I", self.b, self.off)[0]
        self.off += 4
        return v

    def u64(self):
        v = struct.unpack_from("=Q", self.b, self.off)[0]
        self.off += 8
        return v

    def i64(self):
        v = struct.unpack_from("=q", self.b, self.off)[0]
        self.off += 8
        return v

    def str(self):
        n = self.u32()
        v = self.b[self.off:self.off + n]
        assert len(v) == n
        self.off += n
        return v.decode("utf-8", "surrogateescape")

    def end(self):
        assert self.off == len(self.b), "message not consumed exactly"


def pack(mtype, reqid, *fields):
    body = b""
    for f in fields:
        if isinstance(f, str):
            f = f.encode()
        if isinstance(f, bytes):
            body += struct.pack("=I", len(f)) + f
        else:
            body += struct.pack("=I", f)
    return struct.pack("=IHHI", 12 + len(body), mtype, 0, reqid) + body


class Message:
    def __init__(self, qid, path):
        self.qid = qid
        self.path = path
        self.sender = None
        self.sender_flags = None
        self.envid = None
        self.rcpts = []        # (addr, orcpt, notify)
        self.commit = None     # dict of the IPC_Q_COMMIT fields
        self.committed = False
        self.aborted = False

    def content(self):
        with open(self.path, "rb") as f:
            return f.read()


class FakeQueue:
    """The queue end of fd 4. Behaviour switches (set them any time):
    open_error / commit_error: an SMTP reply text to send as IPC_Q_ERROR;
    hold_commits: do not answer commits until release() is called."""

    def __init__(self, dirname):
        self.dir = dirname
        self.sock, self.peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.messages = {}
        self.order = []
        self.aborts = []
        self.protocol_errors = []
        self.open_error = None
        self.commit_error = None
        self.hold_commits = False
        self.held = []
        self.hold_opens = False
        self.held_opens = []
        self.lock = threading.Lock()
        self.n = 0
        self.closed = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, 70000, 4)
            except OSError:
                return
            if not data:
                return
            for fd in fds:
                os.close(fd)
            try:
                self.handle(data)
            except Exception as e:  # recorded, so a test can assert on it
                self.protocol_errors.append(repr(e))

    def send(self, data, fds=()):
        if self.closed:
            return
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.send(data)

    def handle(self, data):
        length, mtype, flags, reqid = struct.unpack_from("=IHHI", data, 0)
        assert length == len(data) and flags == 0
        r = Reader(data[12:])
        with self.lock:
            if mtype == Q_OPEN:
                r.end()
                if self.hold_opens:
                    self.held_opens.append(reqid)
                    return
                if self.open_error:
                    self.send(pack(Q_ERROR, reqid, "", self.open_error))
                    return
                self.open_file(reqid)
            elif mtype == Q_SENDER:
                qid = r.str()
                m = self.messages[qid]
                m.sender = r.str()
                m.sender_flags = r.u32()
                m.envid = r.str()
                r.end()
            elif mtype == Q_RCPT:
                qid = r.str()
                m = self.messages[qid]
                m.rcpts.append((r.str(), r.str(), r.u32()))
                r.end()
            elif mtype == Q_COMMIT:
                qid = r.str()
                m = self.messages[qid]
                m.commit = dict(size=r.u64(), arrival=r.i64(), host=r.str(), addr=r.str(),
                                port=r.u32(), helo=r.str(), protocol=r.str(), msgid=r.str(),
                                flags=r.u32(), hold=r.str())
                r.end()
                if self.commit_error:
                    os.unlink(m.path)
                    m.aborted = True
                    self.send(pack(Q_ERROR, reqid, qid, self.commit_error))
                elif self.hold_commits:
                    self.held.append((reqid, m))
                else:
                    m.committed = True
                    self.send(pack(Q_COMMITTED, reqid, qid))
            elif mtype == Q_ABORT:
                qid = r.str()
                r.end()
                self.aborts.append(qid)
                if qid in self.messages:
                    self.messages[qid].aborted = True
            else:
                raise AssertionError("unexpected message type %d" % mtype)

    def open_file(self, reqid):
        self.n += 1
        qid = "4F%08X" % self.n
        path = os.path.join(self.dir, qid)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        m = Message(qid, path)
        self.messages[qid] = m
        self.order.append(qid)
        self.send(pack(Q_OPENED, reqid, qid), [fd])
        os.close(fd)
        return qid

    def release_opens(self):
        with self.lock:
            held, self.held_opens = self.held_opens, []
            return [self.open_file(reqid) for reqid in held]

    def send_raw(self, data):
        self.send(data)

    def release(self):
        with self.lock:
            for reqid, m in self.held:
                m.committed = True
                self.send(pack(Q_COMMITTED, reqid, m.qid))
            self.held = []

    def committed(self):
        with self.lock:
            return [self.messages[q] for q in self.order if self.messages[q].committed]

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


DEFAULT_MAIN_CF = {
    "myhostname": "postern.test",
    "mydomain": "postern.test",
    "mydestination": "localhost",
    "mynetworks": "127.0.0.1/32",
    "virtual_mailbox_domains": "example.test",
    "virtual_mailbox_maps": "inline:{ alice@example.test=alice/, bob@example.test=bob/ }",
    "alias_maps": "",
    "local_recipient_maps": "",
    "smtpd_forbid_bare_newline_exclusions": "",
}


class Smtpd:
    """postern-smtpd started the way master starts it (fds 3, 4, 5 and
    POSTERN_LISTEN_FDS), with a FakeQueue on fd 4.

        s = Smtpd(main_cf={...}).start()
        s.port, s.queue, s.log_text(), s.stop()
    """

    def __init__(self, main_cf=None, overrides=(), env=None, host="127.0.0.1"):
        self.host = host
        self.dir = tempfile.mkdtemp(prefix="smtpd-", dir="/tmp")
        self.conf = os.path.join(self.dir, "conf")
        os.makedirs(self.conf)
        self.spool = os.path.join(self.dir, "spool")
        os.makedirs(self.spool)
        self.log = os.path.join(self.dir, "maillog")
        self.main_cf = dict(DEFAULT_MAIN_CF)
        self.main_cf["maillog_file"] = self.log
        self.main_cf["queue_directory"] = self.spool
        self.main_cf.update(main_cf or {})
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in self.main_cf.items():
                f.write("%s = %s\n" % (k, v))
        self.overrides = list(overrides)
        self.env = env or {}
        self.proc = None
        self.queue = None
        self.port = None

    def start(self, wait=True):
        self.queue = FakeQueue(self.spool)
        self.master_sock, master_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        lsock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((self.host, 0))
        lsock.listen(1024)
        self.port = lsock.getsockname()[1]
        # move the three descriptors out of the way of 3, 4, 5 first
        src = [os.dup(master_peer.fileno()), os.dup(self.queue.peer.fileno()), os.dup(lsock.fileno())]
        src = [fcntl_dup_high(fd) for fd in src]

        def preexec():
            for target, fd in zip((3, 4, 5), src):
                os.dup2(fd, target)
        argv = [os.path.join(util.BIN, "postern-smtpd"), "-c", self.conf, "-n", "127.0.0.1:%d" % self.port]
        for o in self.overrides:
            argv += ["-o", o]
        env = dict(os.environ)
        env["POSTERN_LISTEN_FDS"] = "1"
        env.update(self.env)
        self.proc = subprocess.Popen(argv, preexec_fn=preexec, pass_fds=(3, 4, 5), env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for fd in src:
            os.close(fd)
        master_peer.close()
        self.queue.peer.close()
        lsock.close()
        if wait:
            util.wait_for_greeting(self.port, host=self.host, proc=self.proc)
        return self

    def log_text(self):
        try:
            with open(self.log, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=10):
        return util.wait_for(lambda: text in self.log_text(), timeout, "log line %r" % text)

    def stop(self):
        if self.proc is not None:
            util.stop(self.proc)
            out = self.proc.stdout.read()
            self.proc = None
            self.output = out
        if self.queue is not None:
            self.queue.close()
        try:
            self.master_sock.close()
        except Exception:
            pass

    def cleanup(self):
        self.stop()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


def fcntl_dup_high(fd):
    import fcntl
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 30)
    os.close(fd)
    return high


class Client:
    """A raw SMTP client over a socket, for what smtplib will not send."""

    def __init__(self, port, source="127.0.0.1", timeout=10):
        self.sock = socket.socket()
        self.sock.settimeout(timeout)
        if source != "127.0.0.1":
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """One whole (possibly multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if len(ln) < 4 or ln[3] != "-":
                return int(ln[:3]), lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed(self, timeout=10):
        """True once the server closed the connection (after any data)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def now():
    return time.monotonic()


try:
    import pytest

    @pytest.fixture
    def smtpd_factory():
        """Start postern-smtpd instances with a FakeQueue; all stopped and
        removed after the test."""
        made = []

        def make(main_cf=None, overrides=(), env=None, start=True, host="127.0.0.1"):
            s = Smtpd(main_cf=main_cf, overrides=overrides, env=env, host=host)
            made.append(s)
            return s.start() if start else s
        yield make
        for s in made:
            s.cleanup()
except ImportError:  # used outside pytest
    pass
