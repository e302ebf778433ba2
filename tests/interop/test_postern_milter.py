"""Real milters from Debian in Postern's smtpd_milters, through the real
daemon: opendkim signs what smtpd receives and the DKIM-Signature of the
message delivered to the Maildir verifies (opendkim -t, key served by
dnsmasq); opendkim in verify mode as the next milter of the same chain says
pass; a chain of three milters (script, opendkim, script)."""
import os
import re
import shutil
import smtplib
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "milter"))
sys.path.insert(0, os.path.dirname(__file__))

from milterlib import ScriptMilter, stop  # noqa: E402
from test_milter_real import Env, opendkim_verify, start_opendkim, write  # noqa: E402
from tests.pylib.dnsmasq import Dnsmasq  # noqa: E402
from tests.pylib.milterpeers import dkim_key  # noqa: E402

MSG = (b"From: Alice <alice@d.test>\r\n"
       b"To: alice@example.test\r\n"
       b"Subject:   odd   spacing\r\n"
       b"\tand a folded line\r\n"
       b"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
       b"Message-ID: <pm1@d.test>\r\n"
       b"\r\n"
       b"Hello Alice,\r\n"
       b"  indented line\r\n"
       b"\r\n"
       b"bye\r\n")

# opendkim -t's file reader collapses blanks after a header colon: the
# messages it checks have ordinary spacing (MSG's odd spacing is checked by
# opendkim in verify mode, which gets the headers byte-exact)
PLAIN = (b"From: Alice <alice@d.test>\r\n"
         b"To: alice@example.test\r\n"
         b"Subject: plain\r\n"
         b"\tfolded\r\n"
         b"Message-ID: <pm2@d.test>\r\n"
         b"\r\n"
         b"Hello Alice,\r\n"
         b"\r\n"
         b"bye\r\n")


@pytest.fixture(scope="module")
def env():
    e = Env()
    e.w = tempfile.mkdtemp(prefix="postern-milter-")
    os.chmod(e.w, 0o755)
    e.procs = []
    e.dns = None
    try:
        keyfile, record = dkim_key(os.path.join(e.w, "keys"))
        e.dns = Dnsmasq(os.path.join(e.w, "dns"), txt={"sel._domainkey.d.test": [record]}).start()
        e.unbound = write(os.path.join(e.w, "unbound.conf"),
                          'server:\n  local-zone: "test." nodefault\n')
        # smtpd's client is 127.0.0.1: an internal host, so opendkim signs
        e.sign = start_opendkim(e, "sign", "Mode s\nDomain d.test\nSelector sel\nKeyFile %s\n"
                                "InternalHosts 127.0.0.1\n" % keyfile)
        e.verify = start_opendkim(e, "verify", "Mode v\nAuthservID verify.test\n"
                                  "InternalHosts 203.0.113.250\n")
        yield e
    finally:
        for p in e.procs:
            stop(p, sig=9)
        if e.dns:
            e.dns.stop()
        shutil.rmtree(e.w, ignore_errors=True)


def send(p, msg=MSG):
    with smtplib.SMTP("127.0.0.1", p.port, timeout=60) as s:
        s.ehlo("client.test")
        assert s.mail("alice@d.test")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        s.putcmd("data")
        assert s.getreply()[0] == 354
        s.send(msg + b".\r\n")
        code, text = s.getreply()
        assert code == 250, text


def start(postern_factory, milters):
    return postern_factory(main_cf={"smtpd_milters": milters}).start()


def test_opendkim_signature_verifies_after_delivery(env, postern_factory, tmp_path):
    p = start(postern_factory, env.sign)
    send(p, PLAIN)
    got = p.wait_delivered("alice", 1)[0]
    # the LDA's lines, then opendkim's signature at the top of what smtpd
    # queued, then our Received header, then the message byte for byte
    head = got.split(b"\nDKIM-Signature:", 1)
    assert len(head) == 2, got
    assert b"\nReceived: from client.test" in head[1]
    assert got.endswith(PLAIN.replace(b"\r\n", b"\n"))
    rc, out = opendkim_verify(env, tmp_path, got)
    assert rc == 0 and "verification (s=sel, d=d.test, 2048-bit key) succeeded" in out, out
    # the check can fail
    rc, out = opendkim_verify(env, tmp_path, got.replace(b"Hello Alice", b"Hello ALICE"))
    assert "succeeded" not in out, out


def auth_results(raw):
    m = re.search(rb"Authentication-Results: verify.test;(.*?)\n(?=\S)", raw, re.S)
    return m.group(1) if m else b""


def test_sign_then_verify_in_one_chain(env, postern_factory):
    p = start(postern_factory, "%s, %s" % (env.sign, env.verify))
    send(p)
    got = p.wait_delivered("alice", 1)[0]
    assert b"dkim=pass" in auth_results(got), got


def test_delivered_odd_spacing_verifies_downstream(env, postern_factory):
    """What one Postern signed and delivered (odd header blanks kept byte
    for byte), sent on to a second Postern whose milter is opendkim in
    verify mode, passes there; changed, it fails."""
    p = start(postern_factory, env.sign)
    send(p)
    signed = p.wait_delivered("alice", 1)[0].replace(b"\n", b"\r\n")
    assert signed.endswith(MSG)
    # without the LDA's Return-Path and Delivered-To (a loop to the LDA)
    signed = signed[signed.index(b"DKIM-Signature:"):]
    q = start(postern_factory, env.verify)
    send(q, signed)
    send(q, signed.replace(b"odd   spacing", b"odd spacing"))
    got = q.wait_delivered("alice", 2)
    results = sorted(auth_results(m) for m in got)
    assert any(b"dkim=pass" in r for r in results), got
    assert any(b"dkim=fail" in r for r in results), got


def test_chain_of_three_with_opendkim(env, postern_factory, tmp_path):
    first = ScriptMilter(tmp_path, ["--mod", "addheader:X-First:before signing"], name="first")
    third = ScriptMilter(tmp_path, ["--mod", "addheader:X-Third:after signing",
                                    "--mod", "addrcpt:<bob@example.test>"], name="third")
    try:
        p = start(postern_factory, "%s, %s, %s" % (first.endpoint, env.sign, third.endpoint))
        send(p, PLAIN)
        a = p.wait_delivered("alice", 1)[0]
        b = p.wait_delivered("bob", 1)[0]
        for got in (a, b):
            assert b"\nX-First: before signing\nX-Third: after signing\n\n" in got
            rc, out = opendkim_verify(env, tmp_path, got)
            assert rc == 0 and "succeeded" in out, out
        assert any(line.startswith("header DKIM-Signature:") for line in third.log())
    finally:
        first.stop()
        third.stop()
