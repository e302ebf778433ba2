"""clamav-milter (Debian's, with clamd loading one local signature that
matches the EICAR test string) in Postern's smtpd_milters: the EICAR message
is refused with the milter's own reply, Postern logs Postfix's milter-reject
line and delivers nothing; clean mail is delivered with clamav-milter's
X-Virus-Status: Clean. Postfix with the same milter gives the same reply."""
import base64
import os
import re

import pytest

from tests.pylib import util
from tests.pylib.milterpeers import EICAR, Clamav, Group, send, wait_milter_reject
from tests.pylib.postfix import Listener, Postfix

CLEAN = (b"From: Sender <s@remote.test>\r\n"
         b"To: alice@example.test\r\n"
         b"Subject: clean\r\n"
         b"Message-ID: <clean-1@remote.test>\r\n"
         b"\r\n"
         b"Nothing to see here.\r\n")

# EICAR inline in a plain body, and as a base64 attachment (clamd decodes
# MIME before it scans, so the encoded file is found as well)
INFECTED = (b"From: Sender <s@remote.test>\r\n"
            b"To: alice@example.test\r\n"
            b"Subject: infected\r\n"
            b"\r\n"
            b"see below\r\n" + EICAR + b"\r\n")


def attachment(data):
    return (b"From: Sender <s@remote.test>\r\n"
            b"To: alice@example.test\r\n"
            b"Subject: attachment\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
            b"\r\n"
            b"--b1\r\n"
            b"Content-Type: text/plain\r\n"
            b"\r\n"
            b"see attached\r\n"
            b"--b1\r\n"
            b"Content-Type: application/octet-stream; name=\"eicar.com\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"eicar.com\"\r\n"
            b"\r\n" + base64.encodebytes(data).replace(b"\n", b"\r\n") +
            b"--b1--\r\n")


@pytest.fixture(scope="module")
def clamav():
    with Group("postern-clamav-") as g:
        yield g.start(Clamav(g.w))


def start(postern_factory, av, action="tempfail"):
    return postern_factory(main_cf={"smtpd_milters": av.endpoint,
                                    "milter_default_action": action}).start()


def to_alice(port, msg):
    return send(port, "s@remote.test", ["alice@example.test"], msg)


@pytest.fixture
def postern_av(clamav, postern_factory):
    return start(postern_factory, clamav)


VIRUS_REPLY = "5.7.1 Virus found: " + Clamav.signature
TEMPFAIL_REPLY = (451, "4.7.1 Service unavailable - try again later")


def test_eicar_rejected_with_milter_reply(postern_av):
    assert to_alice(postern_av.port, INFECTED) == (550, VIRUS_REPLY)
    qid = wait_milter_reject(postern_av, VIRUS_REPLY).group(1)
    # a clean message afterwards is the only one delivered
    assert to_alice(postern_av.port, CLEAN)[0] == 250
    got = postern_av.wait_delivered("alice", 1)
    assert len(got) == 1 and b"Subject: clean" in got[0]
    assert not re.search(r"%s: .*status=sent" % qid, postern_av.log_text())


def test_eicar_attachment_rejected(postern_av):
    assert to_alice(postern_av.port, attachment(EICAR)) == (550, VIRUS_REPLY)
    # the same file with one byte changed is clean: the signature is what matches
    changed = EICAR.replace(b"ANTIVIRUS", b"ANTIVIRAL")
    assert to_alice(postern_av.port, attachment(changed))[0] == 250
    got = postern_av.wait_delivered("alice", 1)
    assert len(got) == 1 and b"X-Virus-Status: Clean" in got[0]


def test_clean_mail_delivered_with_status_header(postern_av):
    code, text = to_alice(postern_av.port, CLEAN)
    assert code == 250, text
    got = postern_av.wait_delivered("alice", 1)[0]
    head, body = got.split(b"\n\n", 1)
    assert b"\nX-Virus-Status: Clean\n" in head + b"\n"
    assert re.search(rb"\nX-Virus-Scanned: clamav-milter [0-9.]+ at \S+\n", head + b"\n"), head
    # the message itself is unchanged
    assert body == b"Nothing to see here.\n"
    assert b"Subject: clean\nMessage-ID: <clean-1@remote.test>" in head


def test_per_listener_milters_in_master_cf(clamav, postern_factory):
    """docs/milters.md: smtpd_milters per listener, `-o { ... }` in
    master.cf; the other listener (no milters) takes EICAR."""
    scanned, plain = util.free_port(), util.free_port()
    p = postern_factory(port=scanned, master_cf=(
        "127.0.0.1:%d inet n - n - - smtpd -o { smtpd_milters = %s }\n"
        "127.0.0.1:%d inet n - n - - smtpd\n" % (scanned, clamav.endpoint, plain))).start()
    util.wait_for_greeting(plain)
    assert to_alice(scanned, INFECTED) == (550, VIRUS_REPLY)
    assert to_alice(plain, INFECTED)[0] == 250
    got = p.wait_delivered("alice", 1)
    assert len(got) == 1 and b"X-Virus-Status" not in got[0]


def test_clamd_down_defers_per_milter_config(postern_factory):
    """clamav-milter's own OnFail Defer (clamd unreachable) reaches the
    client as a tempfail: nothing is accepted that was not scanned. (With
    milter_default_action = accept, the 451 can only be the milter's own
    answer, not Postern's reaction to a broken milter.)"""
    with Group("postern-clamav-fail-") as g:
        av = g.start(Clamav(g.w))
        av.clamd.kill()
        av.clamd.wait()
        p = start(postern_factory, av, "accept")
        assert to_alice(p.port, CLEAN) == TEMPFAIL_REPLY
        wait_milter_reject(p, TEMPFAIL_REPLY[1])
        assert p.maildir_messages("alice") == []


def test_quarantine_puts_eicar_on_hold(postern_factory):
    """Debian's shipped clamav-milter.conf says OnInfected Quarantine: the
    message is accepted (250), logged as milter-hold, kept in hold/ and not
    delivered."""
    with Group("postern-clamav-hold-") as g:
        av = g.start(Clamav(g.w, on_infected="Quarantine"))
        p = start(postern_factory, av)
        code, text = to_alice(p.port, INFECTED)
        assert code == 250, text
        qid = text.rsplit(" ", 1)[1]
        # the reason is clamav-milter's quarantine text
        util.wait_for(lambda: re.search(
            r"^.*: %s: milter-hold: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]: milter "
            r"triggers HOLD action: quarantined by clamav-milter; from=<s@remote\.test> "
            r"to=<alice@example\.test> proto=ESMTP helo=<client\.test>$" % qid,
            p.log_text(), re.M), 30, "milter-hold line")
        assert os.path.exists(os.path.join(p.queue, "hold", qid))
        assert to_alice(p.port, CLEAN)[0] == 250
        got = p.wait_delivered("alice", 1)
        assert len(got) == 1 and b"Subject: clean" in got[0]


@pytest.mark.parametrize("action", ["tempfail", "accept"])
def test_milter_gone_gets_default_action(postern_factory, action):
    """clamav-milter killed under a running Postern: one warning naming the
    milter, then milter_default_action: tempfail refuses the transaction,
    accept delivers the message unscanned (no X-Virus-Status)."""
    with Group("postern-clamav-gone-") as g:
        av = g.start(Clamav(g.w))
        p = start(postern_factory, av, action)
        assert to_alice(p.port, CLEAN)[0] == 250
        assert b"X-Virus-Status: Clean" in p.wait_delivered("alice", 1)[0]
        av.milter.kill()
        av.milter.wait()
        code, text = to_alice(p.port, CLEAN)
        warning = re.escape("warning: milter %s: connect failed: Connection refused; "
                            "default_action=%s" % (av.endpoint, action))
        util.wait_for(lambda: re.search(warning, p.log_text()), 30, "warning line")
        if action == "tempfail":
            assert (code, text) == TEMPFAIL_REPLY
            assert len(p.maildir_messages("alice")) == 1
        else:
            assert code == 250, text
            got = p.wait_delivered("alice", 2)
            assert [b"X-Virus-Status" in m for m in got].count(False) == 1


def test_postfix_same_reply_and_log(clamav):
    """Postfix 3.7 with the same milter: the same reply and the same
    milter-reject line (queue IDs aside) as Postern."""
    with Group("postfix-clamav-") as g:
        pf = g.start(Postfix(g.w, listeners=[Listener(milters=clamav.endpoint)],
                             mailboxes=["alice@example.test"]))
        assert to_alice(pf.port(0), INFECTED) == (550, VIRUS_REPLY)
        assert to_alice(pf.port(0), CLEAN)[0] == 250
        got = pf.wait_messages("alice@example.test", 1)
        assert len(got) == 1 and b"X-Virus-Status: Clean" in got[0]
        wait_milter_reject(pf, VIRUS_REPLY)
