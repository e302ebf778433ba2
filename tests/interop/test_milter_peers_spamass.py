"""spamass-milter with spamd (Debian's, shipped rules, no network tests) in
Postern's smtpd_milters: the GTUBE test message is tagged X-Spam-Flag: YES,
or refused with 550 5.7.1 when spamass-milter runs with -r; ham is delivered
with SpamAssassin's X-Spam-Status: No header and its body unchanged.
Postfix with the same milters agrees."""
import re
import smtplib

import pytest

from tests.pylib.milterpeers import GTUBE, Group, Spamd, SpamassMilter, send, wait_milter_reject
from tests.pylib.postfix import Listener, Postfix

HAM = (b"From: Sender <s@remote.test>\r\n"
       b"To: alice@example.test\r\n"
       b"Subject: lunch on friday\r\n"
       b"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
       b"Message-ID: <ham-1@remote.test>\r\n"
       b"\r\n"
       b"Shall we meet at noon by the fountain?\r\n")

SPAM = (b"From: Sender <s@remote.test>\r\n"
        b"To: alice@example.test\r\n"
        b"Subject: gtube\r\n"
        b"Date: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
        b"Message-ID: <spam-1@remote.test>\r\n"
        b"\r\n"
        b"This is the GTUBE:\r\n" + GTUBE + b"\r\n")


@pytest.fixture(scope="module")
def peers():
    """One spamd, two milters on it: tagging only, and rejecting at 15."""
    with Group("postern-spamass-") as g:
        g.spamd = g.start(Spamd(g.w))
        g.tag = g.start(SpamassMilter(g.w, g.spamd))
        g.reject = g.start(SpamassMilter(g.w, g.spamd, reject_score=15))
        yield g


def start(postern_factory, milter):
    return postern_factory(main_cf={"smtpd_milters": milter.endpoint,
                                    "milter_default_action": "tempfail"}).start()


def headers(raw):
    return raw.split(b"\n\n", 1)[0] + b"\n"


def test_gtube_tagged_spam(peers, postern_factory):
    p = start(postern_factory, peers.tag)
    code, text = send(p.port, "s@remote.test", ["alice@example.test"], SPAM)
    assert code == 250, text
    got = p.wait_delivered("alice", 1)[0]
    h = headers(got)
    assert b"\nX-Spam-Flag: YES\n" in h, h
    assert re.search(rb"\nX-Spam-Status: Yes, score=\d+\.\d+ required=5\.0 "
                     rb"tests=(?:[^\n]|\n\t)*\bGTUBE\b", h), h
    assert re.search(rb"\nX-Spam-Checker-Version: SpamAssassin \d", h), h
    # -m: neither Subject nor body rewritten
    assert b"\nSubject: gtube\n" in h
    assert got.endswith(b"\n\nThis is the GTUBE:\n" + GTUBE + b"\n")


def test_ham_delivered_with_spam_headers(peers, postern_factory):
    p = start(postern_factory, peers.tag)
    code, text = send(p.port, "s@remote.test", ["alice@example.test"], HAM)
    assert code == 250, text
    got = p.wait_delivered("alice", 1)[0]
    h = headers(got)
    assert re.search(rb"\nX-Spam-Status: No, score=-?\d+\.\d+ required=5\.0", h), h
    assert b"X-Spam-Flag" not in h
    assert got.endswith(b"\n\nShall we meet at noon by the fountain?\n")


def test_gtube_rejected_with_r(peers, postern_factory):
    p = start(postern_factory, peers.reject)
    code, text = send(p.port, "s@remote.test", ["alice@example.test"], SPAM)
    assert (code, text) == (550, "5.7.1 Blocked by SpamAssassin")
    wait_milter_reject(p, "5.7.1 Blocked by SpamAssassin")
    # ham through the same rejecting milter passes; it is the only delivery
    assert send(p.port, "s@remote.test", ["alice@example.test"], HAM)[0] == 250
    got = p.wait_delivered("alice", 1)
    assert len(got) == 1 and b"X-Spam-Status: No" in got[0]


def test_each_message_of_a_session_scored_alone(peers, postern_factory):
    """Two messages on one SMTP connection (the milter session is reused
    after an abort/new MAIL): spam then ham, each gets its own verdict."""
    p = start(postern_factory, peers.tag)
    with smtplib.SMTP("127.0.0.1", p.port, timeout=60) as s:
        s.ehlo("client.test")
        for msg in (SPAM, HAM):
            assert s.sendmail("s@remote.test", ["alice@example.test"], msg) == {}
    got = p.wait_delivered("alice", 2)
    flags = sorted((b"Subject: gtube" in m, b"X-Spam-Flag: YES" in m) for m in got)
    assert flags == [(False, False), (True, True)], got


def test_postfix_same_reply_and_headers(peers):
    """Postfix 3.7 with the same two milters: the same refusal and log
    line, and the same spam headers on a tagged message."""
    with Group("postfix-spamass-") as g:
        pf = g.start(Postfix(g.w, listeners=[Listener(milters=peers.reject.endpoint),
                                             Listener(milters=peers.tag.endpoint)],
                             mailboxes=["alice@example.test"]))
        assert send(pf.port(0), "s@remote.test", ["alice@example.test"], SPAM) == \
            (550, "5.7.1 Blocked by SpamAssassin")
        wait_milter_reject(pf, "5.7.1 Blocked by SpamAssassin")
        assert send(pf.port(1), "s@remote.test", ["alice@example.test"], SPAM)[0] == 250
        h = headers(pf.wait_messages("alice@example.test", 1)[0])
        assert b"\nX-Spam-Flag: YES\n" in h, h
        assert b"\nSubject: gtube\n" in h
