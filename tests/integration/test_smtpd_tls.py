"""STARTTLS (RFC 3207) and implicit TLS (smtpd_tls_wrappermode, RFC 8314)
in postern-smtpd, with tests/integration/fake_queue.py on its queue channel
(written before the real queue existed; it shows the protocol name smtpd
hands over). Commands pipelined after STARTTLS are never executed
(CVE-2011-0411).
"""
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from tests.integration.fake_queue import Client, smtpd_factory  # noqa: F401
from tests.pylib import util


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=postern.test", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    return str(crt), str(key)


def tls_conf(cert, **kw):
    c = {"smtpd_tls_cert_file": cert[0], "smtpd_tls_key_file": cert[1]}
    c.update(kw)
    return c


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def committed(s):
    return util.wait_for(lambda: s.queue.committed(), 10, "commit")


def test_starttls_then_mail(smtpd_factory, cert):
    s = smtpd_factory(main_cf=tls_conf(cert))
    with smtplib.SMTP("127.0.0.1", s.port) as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls")
        assert c.starttls(context=client_ctx())[0] == 220
        c.ehlo("client.test")
        assert not c.has_extn("starttls")  # RFC 3207 §4.2: not offered again
        assert c.sock.version() is not None
        c.sendmail("a@client.test", ["alice@example.test"], b"Subject: tls\r\n\r\nsecret\r\n")
    m = committed(s)[0]
    assert m.commit["protocol"] == "ESMTPS"
    assert b" with ESMTPS id " in m.content()
    s.wait_log("disconnect from localhost[127.0.0.1] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7")


def test_commands_pipelined_after_starttls_are_discarded(smtpd_factory, cert):
    s = smtpd_factory(main_cf=tls_conf(cert, smtpd_forbid_unauth_pipelining="no"))
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    c.send("STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\nRCPT TO:<alice@example.test>\r\n")
    assert c.reply()[1][0] == "554 5.5.0 Error: SMTP protocol synchronization"
    assert c.closed()
    s.wait_log("improper command pipelining after STARTTLS from localhost[127.0.0.1]: MAIL FROM:<injected@evil.test>")
    assert s.queue.messages == {}


def test_starttls_refused_in_transaction_and_with_arguments(smtpd_factory, cert):
    s = smtpd_factory(main_cf=tls_conf(cert))
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("STARTTLS now")[1][0] == "501 5.5.4 Syntax: STARTTLS"
    c.cmd("MAIL FROM:<a@client.test>")
    assert c.cmd("STARTTLS")[1][0] == "503 5.5.1 Error: MAIL transaction in progress"


def test_encrypt_level_requires_starttls(smtpd_factory, cert):
    s = smtpd_factory(main_cf=tls_conf(cert, smtpd_tls_security_level="encrypt"))
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<a@client.test>")[1][0] == "530 5.7.0 Must issue a STARTTLS command first"


def test_garbage_handshake_does_not_hurt(smtpd_factory, cert):
    s = smtpd_factory(main_cf=tls_conf(cert))
    c = Client(s.port)
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("STARTTLS")[0] == 220
    c.send(b"this is not a TLS client hello\r\n" * 10)
    assert c.closed()
    s.wait_log("lost connection after STARTTLS from localhost[127.0.0.1]")
    d = Client(s.port)
    assert d.reply()[0] == 220


def test_wrapper_mode(smtpd_factory, cert):
    s = smtpd_factory(main_cf=tls_conf(cert), overrides=["smtpd_tls_wrappermode=yes"], start=False)
    s.start(wait=False)

    def greet():
        try:
            raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        except OSError:
            return None
        return client_ctx().wrap_socket(raw)
    tls = util.wait_for(greet, 10, "TLS listener")
    tls.close()
    with smtplib.SMTP_SSL("127.0.0.1", s.port, context=client_ctx()) as c:
        c.ehlo("client.test")
        assert not c.has_extn("starttls")
        c.sendmail("a@client.test", ["bob@example.test"], b"Subject: wrapped\r\n\r\nx\r\n")
    assert committed(s)[0].commit["protocol"] == "ESMTPS"


def test_swaks_starttls(smtpd_factory, cert):
    swaks = shutil.which("swaks")
    if swaks is None:
        pytest.fail("swaks not installed (scripts/deps.sh installs it)")
    s = smtpd_factory(main_cf=tls_conf(cert))
    r = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(s.port), "--tls",
                        "--from", "x@client.test", "--to", "alice@example.test"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert committed(s)[0].commit["protocol"] == "ESMTPS"


def test_unreadable_certificate_disables_starttls(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_tls_cert_file": "/nonexistent/cert.pem"})
    c = Client(s.port)
    c.reply()
    code, lines = c.cmd("EHLO client.test")
    assert code == 250 and "250-STARTTLS" not in lines
    s.wait_log("cannot load the TLS certificate, STARTTLS disabled")
