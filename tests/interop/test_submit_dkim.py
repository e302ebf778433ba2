"""non_smtpd_milters with a real milter from Debian: opendkim (signing mode,
key from opendkim-genkey, public key served by dnsmasq) signs mail
submitted with build/bin/sendmail as an ordinary user, and the signature of
the message delivered to the Maildir verifies with opendkim -t. The
fixtures are those of tests/interop/test_postern_milter.py (one definition)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "milter"))

from test_milter_real import opendkim_verify  # noqa: E402
from test_postern_milter import env  # noqa: E402,F401
from tests.pylib import runas, util  # noqa: E402

MSG = (b"From: Alice <alice@d.test>\n"
       b"To: alice@example.test\n"
       b"Subject: signed local mail\n"
       b"\n"
       b"Hello from the command line,\n"
       b"\n"
       b"bye\n")


def test_sendmail_mail_is_signed_and_verifies(env, postern_factory, tmp_path):  # noqa: F811
    p = postern_factory(main_cf={"non_smtpd_milters": env.sign}).start()
    r = subprocess.run([os.path.join(runas.reachable_bin(util.BIN), "sendmail"), "-C", p.conf,
                        "-f", "alice@d.test", "alice@example.test"], input=MSG,
                       preexec_fn=runas.demote(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = p.wait_delivered("alice", 1)[0]
    head = got.split(b"\nDKIM-Signature:", 1)
    assert len(head) == 2, got
    # signed above our Received header, which opendkim never saw
    assert b"\nReceived: by postern.test (Postern, from userid" in head[1]
    rc, out = opendkim_verify(env, tmp_path, got)
    assert rc == 0 and "verification (s=sel, d=d.test, 2048-bit key) succeeded" in out, out
    rc, out = opendkim_verify(env, tmp_path, got.replace(b"Hello from", b"HELLO from"))
    assert "succeeded" not in out, out
