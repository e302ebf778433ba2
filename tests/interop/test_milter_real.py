"""The milter client with real Debian milters: opendkim signing (key from
opendkim-genkey) through postern_milter's chain, the signature checked by
opendkim -t (its own verifier, key served by dnsmasq) and by opendkim in
verify mode as the next milter of the same chain; a chain of three milters."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "milter"))

from milterlib import ScriptMilter, drive, free_port, stop, wait_listening  # noqa: E402
from tests.pylib.dnsmasq import Dnsmasq  # noqa: E402
from tests.pylib.milterpeers import dkim_key  # noqa: E402

PLAIN = (b"From: Alice <alice@d.test>\r\n"
         b"To: Bob <bob@example.org>\r\n"
         b"Subject: plain\r\n"
         b"\tfolded\r\n"
         b"\r\n"
         b"Hello\r\n")

# header whitespace that simple canonicalization keeps: only a client that
# passes headers byte-exact (SMFIP_HDR_LEADSPC) gets a verifying signature
MSG = (b"From: Alice <alice@d.test>\r\n"
       b"To: Bob <bob@example.org>\r\n"
       b"Subject:   odd   spacing\r\n"
       b"\tand a folded line\r\n"
       b"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
       b"Message-ID: <m1@d.test>\r\n"
       b"\r\n"
       b"Hello Bob,\r\n"
       b"  indented line with trailing blanks  \r\n"
       b"\r\n"
       b"bye\r\n")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


class Env:
    pass


@pytest.fixture(scope="module")
def env():
    e = Env()
    e.w = tempfile.mkdtemp(prefix="milter-real-")
    os.chmod(e.w, 0o755)
    e.procs = []
    e.dns = None
    try:
        e.keyfile, record = dkim_key(os.path.join(e.w, "keys"))
        assert "p=" in record
        e.dns = Dnsmasq(os.path.join(e.w, "dns"), txt={"sel._domainkey.d.test": [record]}).start()
        e.unbound = write(os.path.join(e.w, "unbound.conf"),
                          'server:\n  local-zone: "test." nodefault\n')
        e.sign = start_opendkim(e, "sign", "Mode s\nDomain d.test\nSelector sel\nKeyFile %s\n"
                                "InternalHosts 192.0.2.1\n" % e.keyfile)
        e.verify = start_opendkim(e, "verify", "Mode v\nAuthservID verify.test\n"
                                  "InternalHosts 203.0.113.250\n")
        yield e
    finally:
        for p in e.procs:
            stop(p, sig=9)
        if e.dns:
            e.dns.stop()
        shutil.rmtree(e.w, ignore_errors=True)


def start_opendkim(e, name, lines):
    port = free_port()
    conf = write(os.path.join(e.w, name + ".conf"),
                 "Socket inet:%d@127.0.0.1\nSyslog no\nRequireSafeKeys false\nBackground no\n"
                 "Nameservers %s\nResolverConfiguration %s\n%s" % (
                     port, e.dns.spec, e.unbound, lines))
    p = subprocess.Popen(["/usr/sbin/opendkim", "-f", "-x", conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    e.procs.append(p)
    wait_listening(port, p)
    return "inet:127.0.0.1:%d" % port


def opendkim_verify(e, tmp_path, raw):
    eml = tmp_path / "check.eml"
    # opendkim -t reads a Unix file (LF line ends, as in a mailbox) and adds
    # the CR itself: a CRLF file would be checked with CR CR LF line ends
    eml.write_bytes(raw.replace(b"\r\n", b"\n"))
    conf = write(str(tmp_path / "t.conf"), "Mode v\nSyslog no\nNameservers %s\n"
                 "ResolverConfiguration %s\n" % (e.dns.spec, e.unbound))
    r = subprocess.run(["/usr/sbin/opendkim", "-x", conf, "-t", str(eml)], capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def run(tmp_path, milters, message=MSG):
    return drive(tmp_path, milters, message=message, rcpts=["<bob@example.org>"],
                 maincf=["milter_default_action = tempfail"])


def test_opendkim_signs_and_signature_verifies(env, tmp_path):
    r = run(tmp_path, env.sign, message=PLAIN)
    assert r.verdict("END-OF-MESSAGE") in ("continue", "accept"), r.stdout + r.stderr
    assert r.stderr.count("warning:") == 0, r.stderr
    # opendkim inserts its signature at the very top (insheader index 0)
    assert r.message.startswith(b"DKIM-Signature: v=1;")
    assert any(l.startswith("mod: insheader 0 DKIM-Signature") for l in r.lines)
    # everything else is byte for byte what came in
    assert r.message.endswith(PLAIN)
    rc, out = opendkim_verify(env, tmp_path, r.message)
    assert rc == 0 and "verification (s=sel, d=d.test, 2048-bit key) succeeded" in out, out
    # the check can fail: a changed body does not verify
    rc, out = opendkim_verify(env, tmp_path, r.message.replace(b"Hello", b"HELLO"))
    assert "succeeded" not in out, out


def auth_results(raw):
    m = re.search(rb"Authentication-Results: verify.test;(.*?)\r\n(?=\S)", raw, re.S)
    return m.group(1) if m else b""


def test_signed_message_verifies_byte_exact(env, tmp_path):
    """Odd header whitespace survives: the saved signed message, fed again
    through the chain to opendkim in verify mode, passes; changed, it fails.
    (opendkim -t cannot check this one: its file reader collapses the blanks
    after the colon.)"""
    r = run(tmp_path, env.sign)
    assert r.verdict("END-OF-MESSAGE") in ("continue", "accept"), r.stdout + r.stderr
    assert r.message.endswith(MSG)
    signed = r.message
    v = run(tmp_path, env.verify, message=signed)
    assert b"dkim=pass" in auth_results(v.message), v.message
    v = run(tmp_path, env.verify, message=signed.replace(b"odd   spacing", b"odd spacing"))
    assert b"dkim=fail" in auth_results(v.message), v.message


def test_next_milter_verifies_what_the_first_signed(env, tmp_path):
    """opendkim (verify mode) after opendkim (sign mode) in one chain sees
    the signed message and says pass in its Authentication-Results."""
    r = run(tmp_path, "%s, %s" % (env.sign, env.verify))
    assert r.verdict("END-OF-MESSAGE") in ("continue", "accept"), r.stdout + r.stderr
    assert b"dkim=pass" in auth_results(r.message), r.message


def test_chain_of_three(env, tmp_path):
    first = ScriptMilter(tmp_path, ["--mod", "addheader:X-First:added before signing",
                                    "--mod", "chgheader:1:Subject:   rewritten   subject"],
                         name="first")
    third = ScriptMilter(tmp_path, ["--mod", "addheader:X-Third:added after signing",
                                    "--mod", "addrcpt:<archive@example.org>"], name="third")
    try:
        r = run(tmp_path, "%s, %s, %s" % (first.endpoint, env.sign, third.endpoint))
        assert r.verdict("END-OF-MESSAGE") in ("continue", "accept"), r.stdout + r.stderr
        # the third milter saw the first's edits and the second's signature
        log3 = third.log()
        assert any(l.startswith("header DKIM-Signature:") for l in log3)
        assert "header X-First:added before signing" in log3
        assert "header Subject:   rewritten   subject" in log3
        msg = r.message
        assert msg.startswith(b"DKIM-Signature:")
        assert b"\r\nX-First: added before signing\r\nX-Third: added after signing\r\n\r\n" in msg
        assert r.field("rcpt") == ["<bob@example.org>", "<archive@example.org> added"]
        # the signature covers the message as the first milter left it
        v = run(tmp_path, env.verify, message=msg)
        assert b"dkim=pass" in auth_results(v.message), v.message
    finally:
        first.stop()
        third.stop()
