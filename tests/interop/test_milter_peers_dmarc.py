"""opendmarc (Debian's) at the end of a Postern milter chain: opendkim signs
(d.test key from opendkim-genkey), opendkim verifies, opendmarc reads the
verifier's Authentication-Results and adds its own. opendmarc has no
nameserver option, so it and the verifier run in a network namespace whose
port 53 is dnsmasq with the test's records, and serve Postern through unix
sockets. Aligned signed mail: dmarc=pass; unsigned mail from a p=none
domain: dmarc=fail, delivered; from a p=reject domain: 550 5.7.1 with
RejectFailures, logged as milter-reject, nothing delivered; a From field
with two addresses is left unjudged, or refused with RejectMultiValueFrom.
Postfix with the same chain gives the same reply."""
import re

import pytest

from tests.pylib.milterpeers import (Group, Netns, Opendkim, Opendmarc, delivered, dkim_key,
                                     send, wait_milter_reject)
from tests.pylib.postern import Postern
from tests.pylib.postfix import Listener, Postfix


def message(sender, token):
    return ("From: Sender <%s>\r\n"
            "To: alice@example.test\r\n"
            "Subject: %s\r\n"
            "Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
            "Message-ID: <%s@dmarc.test>\r\n"
            "\r\n"
            "Hello.\r\n" % (sender, token, token)).encode()


# opendkim signing with this key, an opendkim that verifies and opendmarc
# (both inside the namespace whose DNS holds the key and the DMARC records);
# one Postern with the three as smtpd_milters, shared by the cases: each
# reads only its own message (by Subject)
@pytest.fixture(scope="module")
def peers():
    with Group("postern-dmarc-") as g:
        keyfile, record = dkim_key(g.w + "/keys")
        g.ns = ns = g.start(Netns(g.w, txt={"sel._domainkey.d.test": [record],
                                            "_dmarc.d.test": ["v=DMARC1; p=reject"],
                                            "_dmarc.none.test": ["v=DMARC1; p=none"],
                                            "_dmarc.reject.test": ["v=DMARC1; p=reject"]}))
        # signs mail from d.test sent by 127.0.0.1 (an internal host)
        g.sign = sign = g.start(Opendkim(g.w, "sign", [
            "Mode s", "Domain d.test", "Selector sel", "KeyFile " + keyfile,
            "InternalHosts 127.0.0.1", "RequireSafeKeys false"]))
        # verifies, in the namespace (its libunbound asks 127.0.0.1:53 there);
        # InternalHosts elsewhere, or 127.0.0.1 would count as our own
        g.verify = verify = g.start(Opendkim(g.w, "verify", [
            "Mode v", "AuthservID mx.test", "InternalHosts 203.0.113.250"], netns=ns))
        dmarc = g.start(Opendmarc(g.w, ns, ["AuthservID mx.test", "TrustedAuthservIDs mx.test",
                                            "RejectFailures true"]))
        g.chain = "%s, %s, %s" % (sign.endpoint, verify.endpoint, dmarc.endpoint)
        g.postern = g.start(Postern(main_cf={"smtpd_milters": g.chain,
                                             "milter_default_action": "tempfail"}))
        yield g


@pytest.fixture(scope="module")
def postern_dmarc(peers):
    return peers.postern


def auth_results(raw, method):
    """The result word of method in the Authentication-Results fields that
    name mx.test (unfolded), e.g. 'pass'."""
    out = []
    for m in re.finditer(rb"^Authentication-Results: mx\.test;((?:[^\n]|\n[ \t])*)", raw, re.M):
        for r in re.finditer(rb"\b%s=(\w+)" % method.encode(), m.group(1)):
            out.append(r.group(1).decode())
    return out


def test_aligned_signed_message_passes(postern_dmarc):
    code, text = send(postern_dmarc.port, "s@d.test", ["alice@example.test"],
                      message("s@d.test", "aligned"))
    assert code == 250, text
    got = delivered(postern_dmarc, "aligned")
    assert got.startswith(b"Return-Path: <s@d.test>\n")
    assert b"\nDKIM-Signature: v=1; a=rsa-sha256;" in got
    assert auth_results(got, "dkim") == ["pass"], got
    assert auth_results(got, "dmarc") == ["pass"], got
    assert re.search(rb"dmarc=pass \(p=reject dis=none\) header\.from=d\.test", got), got


def test_unaligned_p_none_fails_but_is_delivered(postern_dmarc):
    code, text = send(postern_dmarc.port, "s@none.test", ["alice@example.test"],
                      message("s@none.test", "pnone"))
    assert code == 250, text
    got = delivered(postern_dmarc, "pnone")
    assert b"DKIM-Signature" not in got
    assert auth_results(got, "dmarc") == ["fail"], got
    assert re.search(rb"dmarc=fail \(p=none dis=none\) header\.from=none\.test", got), got


def test_p_reject_refused_with_milter_reply(postern_dmarc):
    code, text = send(postern_dmarc.port, "s@reject.test", ["alice@example.test"],
                      message("s@reject.test", "preject"))
    assert (code, text) == (550, "5.7.1 rejected by DMARC policy for reject.test")
    wait_milter_reject(postern_dmarc, text, sender="s@reject.test")
    # a later message on the same instance arrives; the refused one never does
    send(postern_dmarc.port, "s@d.test", ["alice@example.test"], message("s@d.test", "after"))
    delivered(postern_dmarc, "after")
    assert not any(b"Subject: preject" in m for m in postern_dmarc.maildir_messages("alice"))


def test_several_from_addresses_refused_when_configured(peers, postern_factory):
    """A From field with two addresses (one of a p=reject domain): opendmarc
    adds no verdict by default (the message is delivered unjudged), and
    with RejectMultiValueFrom it refuses the message with its generic reply."""
    multi = message("s@d.test", "multi").replace(b"From: Sender <s@d.test>",
                                                  b"From: a@d.test, b@reject.test")
    assert send(peers.postern.port, "s@d.test", ["alice@example.test"], multi)[0] == 250
    got = delivered(peers.postern, "multi")
    assert auth_results(got, "dmarc") == [], got
    with Group("postern-dmarc-multi-") as g:
        strict = g.start(Opendmarc(g.w, peers.ns, ["AuthservID mx.test",
                                                   "TrustedAuthservIDs mx.test",
                                                   "RejectFailures true",
                                                   "RejectMultiValueFrom true"]))
        p = postern_factory(main_cf={"smtpd_milters": "%s, %s, %s" % (
            peers.sign.endpoint, peers.verify.endpoint, strict.endpoint)}).start()
        multi = multi.replace(b"Subject: multi", b"Subject: multi2")
        assert send(p.port, "s@d.test", ["alice@example.test"], multi) == \
            (550, "5.7.1 Command rejected")
        wait_milter_reject(p, "5.7.1 Command rejected", sender="s@d.test")
        # one address is fine there
        one = message("s@d.test", "one")
        assert send(p.port, "s@d.test", ["alice@example.test"], one)[0] == 250
        assert auth_results(delivered(p, "one"), "dmarc") == ["pass"]


def test_postfix_same_chain_same_results(peers):
    with Group("postfix-dmarc-") as g:
        pf = g.start(Postfix(g.w, listeners=[Listener(milters=peers.chain)],
                             mailboxes=["alice@example.test"]))
        port = pf.port(0)
        assert send(port, "s@reject.test", ["alice@example.test"], message("s@reject.test", "x")) \
            == (550, "5.7.1 rejected by DMARC policy for reject.test")
        wait_milter_reject(pf, "5.7.1 rejected by DMARC policy for reject.test",
                           sender="s@reject.test")
        assert send(port, "s@d.test", ["alice@example.test"], message("s@d.test", "pf"))[0] == 250
        got = pf.wait_messages("alice@example.test", 1)
        assert len(got) == 1
        assert auth_results(got[0], "dmarc") == ["pass"], got[0]
