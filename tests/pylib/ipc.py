"""Postern IPC framing for tests (lib/ipc.h, mta/ipc/ipc_proto.h).

One SOCK_SEQPACKET packet is one message:
    u32 length (whole packet) | u16 type | u16 flags (0) | u32 reqid | payload
in host byte order; payload fields are u32/u64/i64 fixed width and strings
as u32 length + bytes. A descriptor travels with SCM_RIGHTS.

Also the queue's harness: QueueHarness starts build/bin/postern-queue on its
own, plays master on fd 3 (answering IPC_M_DELIVER) and hands it smtpd
channels (IPC_M_CLIENT) that a test drives as an smtpd would.
"""
import os
import socket
import struct
import subprocess
import threading
import time

HDR = struct.Struct("=IHHI")
MSG_MAX = 64 * 1024

# mta/ipc/ipc_proto.h
Q_OPEN, Q_OPENED, Q_SENDER, Q_RCPT, Q_COMMIT, Q_COMMITTED, Q_ERROR, Q_ABORT = range(1, 9)
M_CLIENT, M_DELIVER, M_DELIVERED, M_RELOAD, M_FLUSH = range(100, 105)
MD_LDA, MD_PIPE = 1, 2
# mta/queue/queue_ctl.h
CTL_REQUEST, CTL_REPLY = 1, 2


class Writer:
    """Builds a payload field by field."""

    def __init__(self):
        self.parts = []

    def u32(self, v):
        self.parts.append(struct.pack("=I", v))
        return self

    def u64(self, v):
        self.parts.append(struct.pack("=Q", v))
        return self

    def i64(self, v):
        self.parts.append(struct.pack("=q", v))
        return self

    def str(self, s):
        if isinstance(s, str):
            s = s.encode()
        self.parts.append(struct.pack("=I", len(s)) + s)
        return self

    def bytes(self):
        return b"".join(self.parts)


class Reader:
    """Reads a payload field by field; raises ValueError on overrun."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def _take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("field overruns the message")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u32(self):
        return struct.unpack("=I", self._take(4))[0]

    def u64(self):
        return struct.unpack("=Q", self._take(8))[0]

    def i64(self):
        return struct.unpack("=q", self._take(8))[0]

    def str(self):
        return self._take(self.u32()).decode("utf-8", "surrogateescape")

    def end(self):
        if self.pos != len(self.data):
            raise ValueError("trailing bytes")


def encode(mtype, reqid, payload=b""):
    return HDR.pack(HDR.size + len(payload), mtype, 0, reqid) + payload


def send(sock, mtype, reqid, payload=b"", fd=None):
    data = encode(mtype, reqid, payload)
    if fd is None:
        sock.send(data)
    else:
        socket.send_fds(sock, [data], [fd])


def recv(sock, timeout=None):
    """One message: (type, reqid, Reader, fd or None); None when closed."""
    sock.settimeout(timeout)
    data, fds, _flags, _addr = socket.recv_fds(sock, MSG_MAX + 1, 4)
    if not data and not fds:
        return None
    if len(data) < HDR.size:
        raise ValueError("short packet")
    length, mtype, flags, reqid = HDR.unpack_from(data)
    if length != len(data) or flags != 0:
        raise ValueError("bad header")
    for extra in fds[1:]:
        os.close(extra)
    return mtype, reqid, Reader(data[HDR.size:]), (fds[0] if fds else None)


def seqpacket_pair():
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def ctl_request(queue_directory, verb, qid="", timeout=30):
    """One request on $queue_directory/private/control: (status, text)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(os.path.join(queue_directory, "private", "control"))
        send(s, CTL_REQUEST, 7, Writer().str(verb).str(qid).bytes())
        mtype, reqid, r, fd = recv(s, timeout)
        assert mtype == CTL_REPLY and reqid == 7 and fd is None
        status, text = r.u32(), r.str()
        r.end()
        return status, text


class Smtpd:
    """One smtpd channel into the queue, driven synchronously."""

    def __init__(self, sock, name):
        self.sock, self.name, self.reqid = sock, name, 0

    def _next(self):
        self.reqid += 1
        return self.reqid

    def request(self, mtype, payload=b""):
        rid = self._next()
        send(self.sock, mtype, rid, payload)
        return rid

    def reply(self, timeout=30):
        return recv(self.sock, timeout)

    def open(self):
        rid = self.request(Q_OPEN)
        mtype, reqid, r, fd = self.reply()
        assert reqid == rid, (reqid, rid)
        assert mtype == Q_OPENED, (mtype, r.data)
        qid = r.str()
        r.end()
        return qid, fd

    def sender(self, qid, sender, flags=0, envid=""):
        self.request(Q_SENDER, Writer().str(qid).str(sender).u32(flags).str(envid).bytes())

    def rcpt(self, qid, rcpt, orcpt="", notify=0):
        self.request(Q_RCPT, Writer().str(qid).str(rcpt).str(orcpt).u32(notify).bytes())

    def commit_request(self, qid, size, arrival_us=None, msgid="", hold=None):
        """hold: a quarantine reason (IPC_QC_HOLD) or None."""
        w = Writer().str(qid).u64(size).i64(arrival_us or int(time.time() * 1e6))
        w.str("client.test").str("127.0.0.1").u32(40000).str("helo.test").str("ESMTP").str(msgid)
        w.u32(1 if hold is not None else 0).str(hold or "")
        return self.request(Q_COMMIT, w.bytes())

    def send_message(self, sender, rcpts, body, msgid=""):
        """The whole transaction; returns (qid, reply type, reply reader)."""
        qid, fd = self.open()
        data = body.encode() if isinstance(body, str) else body
        os.write(fd, data)
        os.close(fd)
        self.sender(qid, sender)
        for r in rcpts:
            self.rcpt(qid, r)
        rid = self.commit_request(qid, len(data), msgid=msgid)
        mtype, reqid, r, _fd = self.reply()
        assert reqid == rid
        return qid, mtype, r

    def close(self):
        self.sock.close()


def standin_deliver(args, content, behaviours):
    """What postern-lda does, reduced to what the queue's tests observe:
    one file per message in a Maildir's new/ or appended to an mbox.
    behaviours maps a final recipient to (exit status, output) to fake a
    failure. Returns (status, output)."""
    opts = {}
    i = 1
    while i < len(args):
        a = args[i]
        if a in ("-f", "-a", "-r", "-d", "--maildir", "--mbox"):
            opts[a] = args[i + 1]
            i += 2
        else:
            opts[a] = True
            i += 1
    final = opts.get("-r", "")
    if final in behaviours:
        return behaviours[final]
    if "--maildir" in opts:
        d = opts["--maildir"]
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        name = "%d.%d_%d.standin" % (time.time(), os.getpid(), time.monotonic_ns())
        with open(os.path.join(d, "tmp", name), "wb") as f:
            f.write(content)
        os.rename(os.path.join(d, "tmp", name), os.path.join(d, "new", name))
        return 0, ""
    if "--mbox" in opts:
        with open(opts["--mbox"], "ab") as f:
            f.write(b"From %s %s\n" % ((opts.get("-f") or "MAILER-DAEMON").encode(),
                                       time.asctime().encode()))
            f.write(content.replace(b"\r\n", b"\n") + b"\n")
        return 0, ""
    return 64, "5.3.0 stand-in: no mailbox given"


class QueueHarness:
    """postern-queue alone: we are master (fd 3) and the smtpds.

    Deliveries asked with IPC_M_DELIVER are carried out by standin_deliver
    (or by running the |command for IPC_MD_PIPE) in a thread, and answered
    with IPC_M_DELIVERED. Every request is recorded in self.deliveries."""

    def __init__(self, tmp, bin_dir, extra_cf=""):
        self.tmp = str(tmp)
        self.bin = bin_dir
        self.confdir = os.path.join(self.tmp, "conf")
        self.qdir = os.path.join(self.tmp, "queue")
        self.log = os.path.join(self.tmp, "maillog")
        self.vmail = os.path.join(self.tmp, "vmail")
        os.makedirs(self.confdir, exist_ok=True)
        os.makedirs(self.vmail, exist_ok=True)
        self.behaviours = {}
        self.deliveries = []
        self.requested = 0  # IPC_M_DELIVER received (deliveries records the finished ones)
        self.bad_requests = []  # malformed IPC_M_DELIVER seen (tests assert it stays empty)
        self.hold_deliveries = threading.Event()
        self.hold_deliveries.set()
        # when set, each delivery's content descriptor is kept open (a copy
        # in self.retained), as a |command that leaves a child behind would
        self.retain = False
        self.retained = []
        self.proc = None
        self.master = None
        self.lock = threading.Lock()
        self.write_cf(extra_cf)

    def write_cf(self, extra_cf=""):
        with open(os.path.join(self.confdir, "main.cf"), "w") as f:
            f.write("""queue_directory = %(q)s
maillog_file = %(log)s
myhostname = mx.test
mydomain = test
mydestination = localhost, mx.test
alias_maps =
virtual_mailbox_domains = virt.test
virtual_mailbox_base = %(v)s
virtual_mailbox_maps = inline:{ ann@virt.test=ann/, bob@virt.test=bob/, carl@virt.test=carl.mbox, tmp@virt.test=tmp/, bad@virt.test=bad/ }
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
""" % {"q": self.qdir, "log": self.log, "v": self.vmail} + extra_cf)

    def start(self):
        parent, child = seqpacket_pair()
        cfd = child.fileno()

        def to_fd3():
            # Python's fds are close-on-exec; the dup at 3 is inheritable
            # (close_fds must stay off: it would close 3 after this runs)
            os.dup2(cfd, 3)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
        self.proc = subprocess.Popen([os.path.join(self.bin, "postern-queue"), "-c", self.confdir],
                                     close_fds=False, preexec_fn=to_fd3, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        child.close()
        self.master = parent
        self.thread = threading.Thread(target=self._master_loop, daemon=True)
        self.thread.start()
        # ready when the control socket answers
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postern-queue exited: %s" % self.proc.stdout.read().decode())
            try:
                ctl_request(self.qdir, "flush")
                return self
            except OSError:
                time.sleep(0.02)
        raise TimeoutError("postern-queue did not start")

    def _master_loop(self):
        while True:
            try:
                m = recv(self.master)
            except (OSError, ValueError):
                return
            if m is None:
                return
            mtype, reqid, r, fd = m
            if mtype != M_DELIVER:
                continue
            try:
                kind, _uid, _gid, _cwd = r.u32(), r.u32(), r.u32(), r.str()
                args = [r.str() for _ in range(r.u32())]
                envv = [r.str() for _ in range(r.u32())]
                r.end()
            except ValueError as e:
                self.bad_requests.append(str(e))
                continue
            self.requested += 1
            threading.Thread(target=self._deliver, args=(reqid, kind, args, envv, fd),
                             daemon=True).start()

    def _deliver(self, reqid, kind, args, envv, fd):
        self.hold_deliveries.wait()
        if self.retain:
            self.retained.append(os.dup(fd))
        with os.fdopen(fd, "rb") as f:
            content = f.read()
        with self.lock:
            self.deliveries.append((kind, args, envv))
        if kind == MD_PIPE:
            env = dict(e.split("=", 1) for e in envv)
            p = subprocess.run(["/bin/sh", "-c", args[1]], input=content, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out = p.stdout.decode(errors="replace").split("\n")[0]
            status = p.returncode if p.returncode >= 0 else p.returncode
        else:
            status, out = standin_deliver(args, content, self.behaviours)
        # like master: a result goes to whichever queue instance runs now
        # (a restarted queue matches it with its ATTEMPT record)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            master = self.master
            if master is not None:
                try:
                    send(master, M_DELIVERED, reqid,
                         Writer().i64(status).str(out[:512]).bytes())
                    return
                except OSError:
                    pass
            time.sleep(0.05)

    def smtpd(self, name="smtpd[1]"):
        mine, theirs = seqpacket_pair()
        send(self.master, M_CLIENT, 0, Writer().str(name).bytes(), fd=theirs.fileno())
        theirs.close()
        return Smtpd(mine, name)

    def flush(self):
        send(self.master, M_FLUSH, 0)

    def reload(self):
        send(self.master, M_RELOAD, 0)

    def stop(self, sig=15):
        for fd in self.retained:
            os.close(fd)
        self.retained = []
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.master:
            try:
                self.master.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.master.close()
            self.master = None
        return self.proc.returncode if self.proc else None

    def output(self):
        return self.proc.stdout.read().decode(errors="replace") if self.proc else ""

    def logtext(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def files(self, sub):
        try:
            return sorted(os.listdir(os.path.join(self.qdir, sub)))
        except FileNotFoundError:
            return []

    def maildir(self, user):
        d = os.path.join(self.vmail, user, "new")
        try:
            return [open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))]
        except FileNotFoundError:
            return []
