"""Helpers for the milter client tests (tests/interop/test_milter_*.py).

milter-drive (tests/milter/milter_drive.c) runs one session through the
postern_milter chain and prints one line per stage; milter-script
(tests/milter/milter_script.c) is a scriptable libmilter milter. Both are
built into build/tests/milter/.
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from tests.pylib.util import BIN, free_port, stop, wait_for  # noqa: E402,F401

TOOLS = os.path.normpath(os.path.join(BIN, "..", "tests", "milter"))
DRIVE = os.path.join(TOOLS, "milter-drive")
SCRIPT = os.path.join(TOOLS, "milter-script")

MESSAGE = (b"From: Alice <a@example.net>\r\n"
           b"To: Bob <b@example.org>\r\n"
           b"Subject: hello\r\n"
           b" folded\r\n"
           b"X-Remove: x\r\n"
           b"\r\n"
           b"body line\r\n"
           b"second line\r\n")


def wait_listening(port, proc=None, timeout=20.0):
    """Poll until something accepts TCP connections on 127.0.0.1:port (a
    milter sends no greeting, so an accepted connection is the signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("milter exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError("nothing listens on port %d" % port)


class ScriptMilter:
    """A running milter-script on 127.0.0.1; .log() returns its record."""

    def __init__(self, workdir, args, name="m"):
        self.port = free_port()
        self.logpath = os.path.join(str(workdir), name + ".log")
        open(self.logpath, "w").close()
        self.proc = subprocess.Popen([SCRIPT, "-p", "inet:%d@127.0.0.1" % self.port,
                                      "-l", self.logpath] + list(args),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_listening(self.port, self.proc)

    @property
    def endpoint(self):
        return "inet:127.0.0.1:%d" % self.port

    def log(self):
        with open(self.logpath) as f:
            return f.read().splitlines()

    def stop(self):
        # libmilter takes seconds to exit on SIGTERM; SIGKILL is fine for a test peer
        stop(self.proc, sig=9)


class Result:
    """What milter-drive printed: stage verdict lines, envelope, message."""

    def __init__(self, proc, out_path):
        self.rc = proc.returncode
        self.stdout = proc.stdout.decode()
        self.stderr = proc.stderr.decode()
        self.lines = self.stdout.splitlines()
        self.message = None
        if out_path and os.path.exists(out_path):
            with open(out_path, "rb") as f:
                self.message = f.read()

    def verdict(self, stage):
        """'continue', 'reject 550 5.7.1 ...' etc. for the LAST line of stage."""
        found = None
        for line in self.lines:
            if line.startswith(stage + " "):
                found = line[len(stage) + 1:]
        return found

    def field(self, name):
        return [line[len(name) + 2:] for line in self.lines if line.startswith(name + ": ")]


def drive(workdir, milters, *args, message=MESSAGE, maincf=(), timeout=60, rcpts=None):
    """Run milter-drive with smtpd_milters=milters and a standard session:
    HELO, MAIL FROM:<a@example.net> SIZE=100, RCPT TO each of rcpts, DATA,
    the message. Extra args pass through."""
    msg = os.path.join(str(workdir), "in.eml")
    out = os.path.join(str(workdir), "out.eml")
    if os.path.exists(out):
        os.unlink(out)
    with open(msg, "wb") as f:
        f.write(message)
    cmd = [DRIVE, "-o", "smtpd_milters = " + milters]
    for line in maincf:
        cmd += ["-o", line]
    cmd += ["--helo", "client.example.net", "--from", "<a@example.net>", "--mail-arg", "SIZE=100"]
    for r in (rcpts or ["<b@example.org>"]):
        cmd += ["--rcpt", r]
    cmd += ["--message", msg, "--out", out] + list(args)
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    return Result(proc, out)
