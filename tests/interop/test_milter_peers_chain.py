"""A chain of three real Debian milters in one Postern: clamav-milter, then
opendkim signing, then spamass-milter rejecting at score 15. Clean mail is
delivered carrying each one's mark (X-Virus-Status, a DKIM-Signature that
verifies, X-Spam-Status), and the last milter saw what the earlier ones
added; GTUBE passes the first two and the last one's reject wins; EICAR is
refused by the first. The same chain as non_smtpd_milters does the same to
mail submitted with sendmail(1), and Postfix with the same chain agrees."""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

from test_milter_real import opendkim_verify  # noqa: E402
from test_submit import EX_NOPERM, sendmail  # noqa: E402
from tests.pylib.dnsmasq import Dnsmasq  # noqa: E402
from tests.pylib.milterpeers import (EICAR, GTUBE, Clamav, Group, Opendkim, Spamd,  # noqa: E402
                                     SpamassMilter, delivered, dkim_key, send, unbound_conf,
                                     wait_milter_reject)
from tests.pylib.postern import Postern  # noqa: E402
from tests.pylib.postfix import Listener, Postfix  # noqa: E402


def message(token, body):
    return (b"From: Sender <s@d.test>\r\n"
            b"To: alice@example.test\r\n"
            b"Subject: " + token.encode() + b"\r\n"
            b"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
            b"Message-ID: <" + token.encode() + b"@d.test>\r\n"
            b"\r\n" + body + b"\r\n")


@pytest.fixture(scope="module")
def env():
    with Group("postern-chain-") as g:
        keyfile, record = dkim_key(os.path.join(g.w, "keys"))
        # the key in DNS, for checking the delivered signature with opendkim -t
        g.dns = g.start(Dnsmasq(os.path.join(g.w, "dns"), txt={"sel._domainkey.d.test": [record]}))
        g.unbound = unbound_conf(os.path.join(g.w, "unbound.conf"))
        av = g.start(Clamav(g.w))
        sign = g.start(Opendkim(g.w, "sign", ["Mode s", "Domain d.test", "Selector sel",
                                              "KeyFile " + keyfile, "InternalHosts 127.0.0.1",
                                              "RequireSafeKeys false"]))
        # two rules of our own show what the third milter was given: the
        # first milter's header and the second one's signature
        spamd = g.start(Spamd(g.w, local_cf=[
            "header CHAIN_SAW_AV X-Virus-Status =~ /^Clean$/", "score CHAIN_SAW_AV 0.01",
            "header CHAIN_SAW_DKIM exists:DKIM-Signature", "score CHAIN_SAW_DKIM 0.01"]))
        sa = g.start(SpamassMilter(g.w, spamd, reject_score=15))
        g.chain = chain = "%s, %s, %s" % (av.endpoint, sign.endpoint, sa.endpoint)
        g.postern = g.start(Postern(main_cf={"smtpd_milters": chain, "non_smtpd_milters": chain,
                                             "milter_default_action": "tempfail"}))
        yield g


def test_clean_mail_carries_all_three_marks(env, tmp_path):
    p = env.postern
    code, text = send(p.port, "s@d.test", ["alice@example.test"],
                      message("clean", b"Shall we meet at noon by the fountain?"))
    assert code == 250, text
    got = delivered(p, "clean")
    head = got.split(b"\n\n", 1)[0] + b"\n"
    # opendkim inserts at the top of what smtpd queued (before our Received)
    assert re.search(rb"^Return-Path: <s@d\.test>\nDelivered-To: alice@example\.test\n"
                     rb"DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=d\.test;", got), got
    # the two others add at the end, in chain order
    i_virus = head.index(b"\nX-Virus-Status: Clean\n")
    i_spam = head.index(b"\nX-Spam-Status: No, score=")
    assert i_virus < i_spam
    # the third milter saw the first one's header and the second one's
    # signature: both of our SpamAssassin rules fired
    m = re.search(rb"\nX-Spam-Status: No, score=\S+ required=5\.0 tests=((?:[^\n]|\n\t)*)", head)
    tests = m.group(1).replace(b"\n\t", b"").split(b" ")[0].split(b",")
    assert b"CHAIN_SAW_AV" in tests and b"CHAIN_SAW_DKIM" in tests, head
    # and the signature still verifies after the third milter's additions
    rc, out = opendkim_verify(env, tmp_path, got)
    assert rc == 0 and "verification (s=sel, d=d.test, 2048-bit key) succeeded" in out, out
    assert got.endswith(b"\n\nShall we meet at noon by the fountain?\n")


def test_last_milter_reject_wins(env):
    p = env.postern
    code, text = send(p.port, "s@d.test", ["alice@example.test"], message("spam", GTUBE))
    assert (code, text) == (550, "5.7.1 Blocked by SpamAssassin")
    wait_milter_reject(p, "5.7.1 Blocked by SpamAssassin", sender="s@d.test")
    send(p.port, "s@d.test", ["alice@example.test"], message("after-spam", b"ok"))
    delivered(p, "after-spam")
    assert not any(b"Subject: spam\n" in m for m in p.maildir_messages("alice"))


def test_first_milter_reject_ends_the_chain(env):
    """EICAR and GTUBE in one message: the first milter (clamav) refuses and
    its reply is the one the client gets."""
    p = env.postern
    code, text = send(p.port, "s@d.test", ["alice@example.test"],
                      message("both", EICAR + b"\r\n" + GTUBE))
    assert (code, text) == (550, "5.7.1 Virus found: " + Clamav.signature)
    wait_milter_reject(p, "5.7.1 Virus found: " + Clamav.signature, sender="s@d.test")
    send(p.port, "s@d.test", ["alice@example.test"], message("after-virus", b"ok"))
    delivered(p, "after-virus")
    assert not any(b"Subject: both\n" in m for m in p.maildir_messages("alice"))


def test_sendmail_submission_through_the_chain(env, tmp_path):
    p = env.postern
    r = sendmail(p, ["alice@example.test"],
                 message("submitted", b"Posted with sendmail.").replace(b"\r\n", b"\n"))
    assert r.returncode == 0, r.stderr
    got = delivered(p, "submitted")
    head = got.split(b"\n\n", 1)[0] + b"\n"
    assert b"\nDKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=d.test;" in head, head
    assert b"\nX-Virus-Status: Clean\n" in head and b"\nX-Spam-Status: No, score=" in head, head
    rc, out = opendkim_verify(env, tmp_path, got)
    assert rc == 0 and "verification (s=sel, d=d.test, 2048-bit key) succeeded" in out, out


def test_sendmail_spam_refused(env):
    p = env.postern
    r = sendmail(p, ["alice@example.test"], message("sent-spam", GTUBE).replace(b"\r\n", b"\n"))
    assert r.returncode == EX_NOPERM, r
    assert b"550 5.7.1 Blocked by SpamAssassin" in r.stderr, r.stderr
    send(p.port, "s@d.test", ["alice@example.test"], message("after-sent-spam", b"ok"))
    delivered(p, "after-sent-spam")
    assert not any(b"Subject: sent-spam\n" in m for m in p.maildir_messages("alice"))


def test_postfix_same_chain(env, tmp_path):
    """Postfix 3.7 with the same three milters: the last one's reject wins
    there too, and clean mail carries the same marks, signature verifying."""
    with Group("postfix-chain-") as g:
        pf = g.start(Postfix(g.w, listeners=[Listener(milters=env.chain)],
                             mailboxes=["alice@example.test"]))
        assert send(pf.port(0), "s@d.test", ["alice@example.test"], message("pf-spam", GTUBE)) \
            == (550, "5.7.1 Blocked by SpamAssassin")
        code, text = send(pf.port(0), "s@d.test", ["alice@example.test"],
                          message("pf-clean", b"Shall we meet at noon by the fountain?"))
        assert code == 250, text
        got = pf.wait_messages("alice@example.test", 1)
        assert len(got) == 1
        head = got[0].split(b"\n\n", 1)[0] + b"\n"
        assert b"\nX-Virus-Status: Clean\n" in head and b"CHAIN_SAW_DKIM" in head, head
        rc, out = opendkim_verify(env, tmp_path, got[0])
        assert rc == 0 and "verification (s=sel, d=d.test, 2048-bit key) succeeded" in out, out
