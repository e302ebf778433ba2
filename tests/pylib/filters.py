"""Helpers shared by the interop tests of our milters (postern-spf,
postern-dkim, postern-dmarc) behind a real Postfix."""
import email
import email.policy
import os
import subprocess

from .util import wait_for

MILTERTEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop", "miltertest")


def write(path, text, mode=None):
    """Write text to path (chmod to mode when given); return path."""
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


def find_delivered(pf, rcpt, token):
    """The delivered message for rcpt whose Subject or X-Test-Id is token,
    parsed, or None."""
    for m in pf.messages(rcpt):
        msg = email.message_from_bytes(m, policy=email.policy.compat32)
        if token in (msg["X-Test-Id"], msg["Subject"]):
            return msg
    return None


def wait_delivered(pf, rcpt, token, extra_logs=()):
    """Wait for find_delivered(); on timeout the error carries the tail of
    Postfix's log and of each file in extra_logs."""
    try:
        return wait_for(lambda: find_delivered(pf, rcpt, token), timeout=20,
                        what="delivery of " + token)
    except TimeoutError:
        logs = pf.log()[-3000:]
        for path in extra_logs:
            try:
                with open(path) as f:
                    logs += "\n--- %s\n" % os.path.basename(path) + f.read()[-2000:]
            except OSError:
                pass
        raise TimeoutError("no delivery of %s:\n%s" % (token, logs))


def run_miltertest(script, port):
    """Run tests/interop/miltertest/<script> against the milter on
    127.0.0.1:port and assert that it ends with "ok"."""
    r = subprocess.run(["miltertest", "-s", os.path.join(MILTERTEST_DIR, script)],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, MILTER_SOCKET="inet:%d@127.0.0.1" % port,
                                MILTERTEST_DIR=MILTERTEST_DIR))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


def check_config_cases(binary, name, tmp_path, cases):
    """`binary -V` names the program; `binary -t -c FILE` accepts each
    (text, ok) case exactly when ok (text is appended to a minimal config)."""
    r = subprocess.run([binary, "-V"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith(name + " ")
    for text, ok in cases:
        p = write(str(tmp_path / "c.conf"), "Socket inet:1@127.0.0.1\nUserID postern\n"
                  "Nameservers 127.0.0.1\n" + text)
        r = subprocess.run([binary, "-t", "-c", p], capture_output=True, text=True)
        assert (r.returncode == 0) == ok, (text, r.stderr)
