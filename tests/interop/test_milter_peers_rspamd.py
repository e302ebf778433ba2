"""rspamd (Debian's, milter mode, own minimal configuration, no network) in
Postern's smtpd_milters: GTUBE is refused with rspamd's own reply and
logged as milter-reject, nothing delivered; ham is delivered with rspamd's
X-Spamd-Result, X-Spam-Status and Authentication-Results headers. Postfix
with the same rspamd gives the same reply."""
import re

import pytest

from test_milter_peers_spamass import HAM, SPAM
from tests.pylib.milterpeers import Group, Rspamd, send, wait_milter_reject
from tests.pylib.postfix import Listener, Postfix

GTUBE_REPLY = "5.7.1 Gtube pattern"


@pytest.fixture(scope="module")
def rspamd():
    with Group("postern-rspamd-") as g:
        yield g.start(Rspamd(g.w))


@pytest.fixture
def postern_rs(rspamd, postern_factory):
    return postern_factory(main_cf={"smtpd_milters": rspamd.endpoint,
                                    "milter_default_action": "tempfail"}).start()


def test_gtube_rejected_with_rspamd_reply(postern_rs):
    code, text = send(postern_rs.port, "s@remote.test", ["alice@example.test"], SPAM)
    assert (code, text) == (554, GTUBE_REPLY)
    wait_milter_reject(postern_rs, GTUBE_REPLY)
    assert send(postern_rs.port, "s@remote.test", ["alice@example.test"], HAM)[0] == 250
    got = postern_rs.wait_delivered("alice", 1)
    assert len(got) == 1 and b"Subject: lunch on friday" in got[0]


def test_ham_delivered_with_rspamd_headers(postern_rs):
    code, text = send(postern_rs.port, "s@remote.test", ["alice@example.test"], HAM)
    assert code == 250, text
    got = postern_rs.wait_delivered("alice", 1)[0]
    head, body = got.split(b"\n\n", 1)
    head += b"\n"
    assert re.search(rb"\nX-Spam-Status: No, score=-?\d+\.\d+\n", head), head
    # the symbols rspamd found, one per folded line: it saw our envelope
    # (FROM_EQ_ENVFROM compares From: with MAIL FROM)
    m = re.search(rb"\nX-Spamd-Result: default: False \[[^\]]*\];((?:\n\t[^\n]*)*)", head)
    assert m and b"FROM_EQ_ENVFROM" in m.group(1), head
    # authserv-id from the j macro (myhostname)
    assert b"\nAuthentication-Results: postern.test;" in head, head
    assert body == b"Shall we meet at noon by the fountain?\n"


def test_postfix_same_reply(rspamd):
    with Group("postfix-rspamd-") as g:
        pf = g.start(Postfix(g.w, listeners=[Listener(milters=rspamd.endpoint)],
                             mailboxes=["alice@example.test"]))
        assert send(pf.port(0), "s@remote.test", ["alice@example.test"], SPAM) == (554, GTUBE_REPLY)
        wait_milter_reject(pf, GTUBE_REPLY)
        assert send(pf.port(0), "s@remote.test", ["alice@example.test"], HAM)[0] == 250
        got = pf.wait_messages("alice@example.test", 1)[0]
        assert b"X-Spam-Status: No, score=" in got
