"""Small helpers shared by every integration and interop test.

Peer starters live in their own modules beside this one (postfix.py,
dovecot.py, dnsmasq.py, postern.py); each starts its daemon on 127.0.0.1
and waits for its greeting, never for a fixed time.
"""
import os
import smtplib
import socket
import subprocess
import time

SRC = os.environ.get("POSTERN_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("POSTERN_BIN", os.path.join(SRC, "build", "bin"))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_greeting(port, prefix=b"220", host="127.0.0.1", timeout=20.0, proc=None):
    """Connect until the server sends a line starting with prefix.

    Returns the greeting line. Raises if proc exits or timeout passes.
    Polls connect() because a daemon's listener appears at an unknown time;
    the poll ends on the greeting itself, not on a sleep."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited with %s before greeting" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=5) as s:
                line = s.makefile("rb").readline()
                if line.startswith(prefix):
                    return line
                last = line
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise TimeoutError("no greeting on %s:%d (last: %r)" % (host, port, last))


def wait_for(predicate, timeout=30.0, what="condition"):
    """Poll predicate() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(0.02)
    raise TimeoutError("timed out waiting for " + what)


def stop(proc, sig=15, timeout=10):
    """Stop a child process by its pid; SIGKILL if it ignores sig."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def processes():
    """(pid, argv as a list of bytes) of every process now running."""
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                yield int(p), f.read().split(b"\0")
        except OSError:
            continue


def smtp_send(port, sender, rcpts, message, helo="client.test", xclient_addr=None,
              source_addr=None, timeout=30):
    """One SMTP transaction to 127.0.0.1:port, from source_addr when given,
    announcing xclient_addr with XCLIENT when given. Returns (code, text)
    of the DATA reply, or of the first refusal."""
    if isinstance(message, str):
        message = message.encode()
    src = (source_addr, 0) if source_addr else None
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=timeout,
                      source_address=src) as s:
        if any(ord(ch) > 127 for ch in helo):
            s.command_encoding = "utf-8"  # a U-label HELO name, as sent
        s.ehlo(helo)
        if xclient_addr:
            code, text = s.docmd("XCLIENT", "ADDR=%s NAME=[UNAVAILABLE]" % xclient_addr)
            if code != 220:
                return code, text.decode(errors="replace")
            s.ehlo(helo)
        opts = []
        if any(ord(ch) > 127 for ch in sender + "".join(rcpts)):
            opts.append("SMTPUTF8")  # smtplib then sends UTF-8
        code, text = s.mail(sender, opts)
        if code != 250:
            return code, text.decode(errors="replace")
        ok, last = 0, None
        for r in rcpts:
            code, text = s.rcpt(r)
            if code in (250, 251):
                ok += 1
            else:
                last = (code, text.decode(errors="replace"))
        if ok == 0:
            return last
        code, text = s.data(message)
        return code, text.decode(errors="replace")


def maildir_new(d):
    """The messages in a Maildir's new/ directory d (bytes), oldest first
    (by modification time, then name); [] when d does not exist."""
    if not os.path.isdir(d):
        return []
    names = sorted(os.listdir(d), key=lambda n: (os.stat(os.path.join(d, n)).st_mtime_ns, n))
    out = []
    for name in names:
        with open(os.path.join(d, name), "rb") as f:
            out.append(f.read())
    return out
