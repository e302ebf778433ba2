"""A real Postfix from Debian relays mail into Postern (relayhost on
loopback): what Postfix accepted arrives in Postern's Maildir intact."""
import os
import tempfile

from pylib.postfix import Postfix


def test_postfix_relays_into_postern(postern):
    with tempfile.TemporaryDirectory(prefix="pf-relay-") as w:
        pf = Postfix(w, mailboxes=[],
                     main={"relayhost": "[127.0.0.1]:%d" % postern.port,
                           "smtp_tls_security_level": "none",
                           "disable_dns_lookups": "yes"})
        pf.start()
        try:
            msg = (b"From: a@sender.test\r\nTo: alice@example.test\r\n"
                   b"Subject: via postfix\r\nMessage-ID: <relay-1@sender.test>\r\n\r\n"
                   b"line one\r\n..dot line\r\n" + b"8bit \xc3\xa9\r\n")
            code, text = pf.send(pf.port(0), "a@sender.test", ["alice@example.test"], msg)
            assert code == 250, text
            m = postern.wait_delivered("alice", 1, timeout=60)[0]
        finally:
            pf.stop()
    assert b"Subject: via postfix" in m
    assert b"Message-ID: <relay-1@sender.test>" in m
    assert b"\n..dot line\n" in m  # dot-stuffing undone exactly once per hop
    assert b"8bit \xc3\xa9" in m
    # Postfix's Received header is below ours
    ours = m.index(b"by postern.test (Postern)")
    theirs = m.index(b"postfix.test (Postfix)")
    assert ours < theirs
    log = postern.log_text()
    assert "message-id=<relay-1@sender.test>" in log
    assert os.path.exists(postern.log)
