"""Recipient checks at RCPT (issue point 5): unknown local and virtual
recipients get 550 5.1.1, only mynetworks relays (554 5.7.1 otherwise), and
relay tricks never relay. Any 127.x.y.z other than 127.0.0.1 is an outsider
here (mynetworks = 127.0.0.1/32).

postern-smtpd runs with tests/integration/fake_queue.py on its queue channel
(written before the real queue existed; RCPT checks never reach the queue).
"""
import pytest

from tests.integration.fake_queue import Client, smtpd_factory  # noqa: F401

CONF = {
    "mydestination": "localhost",
    "myorigin": "localhost",
    "local_recipient_maps": "unix:passwd.byname",
    "virtual_mailbox_domains": "example.test",
    "virtual_mailbox_maps": "inline:{ alice@example.test=alice/, bob@example.test=bob/ }",
    "virtual_alias_domains": "alias.test",
    "virtual_alias_maps": "inline:{ sales@alias.test=alice@example.test, info@example.test=bob@example.test }",
    "relay_domains": "relay.test",
    "relay_recipient_maps": "inline:{ ok@relay.test=x }",
    "recipient_delimiter": "+",
}

OUTSIDER = "127.0.0.2"


@pytest.fixture
def smtpd(smtpd_factory):
    return smtpd_factory(main_cf=CONF)


def rcpt(s, addr, source=OUTSIDER):
    c = Client(s.port, source=source)
    c.reply()
    c.cmd("EHLO client.test")
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    code, lines = c.cmd("RCPT TO:%s" % addr)
    c.cmd("QUIT")
    c.close()
    return code, lines[0]


ACCEPTED = [
    "<alice@example.test>", "<ALICE@Example.TEST>", "<alice+tag@example.test>",
    "<info@example.test>",                       # virtual alias in a mailbox domain
    "<sales@alias.test>", "<root@localhost>", "<root+x@localhost>", "<Postmaster>",
    "<root>",                                     # qualified with myorigin
    "<ok@relay.test>",
]


@pytest.mark.parametrize("addr", ACCEPTED)
def test_accepted_from_outside(smtpd, addr):
    assert rcpt(smtpd, addr)[0] == 250


REJECTED = [
    ("<nobody@example.test>", "550 5.1.1 <nobody@example.test>: Recipient address rejected: "
                              "User unknown in virtual mailbox table"),
    ("<nosuchuser@localhost>", "550 5.1.1 <nosuchuser@localhost>: Recipient address rejected: "
                               "User unknown in local recipient table"),
    ("<other@alias.test>", "550 5.1.1 <other@alias.test>: Recipient address rejected: "
                           "User unknown in virtual alias table"),
    ("<no@relay.test>", "550 5.1.1 <no@relay.test>: Recipient address rejected: "
                        "User unknown in relay recipient table"),
    ("<victim@foreign.test>", "554 5.7.1 <victim@foreign.test>: Relay access denied"),
    # relay tricks: never accepted from outside
    ("<victim%foreign.test@example.test>", "554 5.7.1 <victim%foreign.test@example.test>: Relay access denied"),
    ("<foreign.test!victim@example.test>", "554 5.7.1 <foreign.test!victim@example.test>: Relay access denied"),
    ('<"victim@foreign.test"@example.test>', '554 5.7.1 <"victim@foreign.test"@example.test>: Relay access denied'),
    ("<victim%foreign.test@localhost>", "554 5.7.1 <victim%foreign.test@localhost>: Relay access denied"),
    ("<@example.test:victim@foreign.test>", "554 5.7.1 <victim@foreign.test>: Relay access denied"),
    ("<@example.test,@localhost:victim@foreign.test>", "554 5.7.1 <victim@foreign.test>: Relay access denied"),
    ("<alice@example.test.>", "501 5.1.3 Bad recipient address syntax"),
    ("<victim@foreign.test.>", "501 5.1.3 Bad recipient address syntax"),
    ("<victim@[127.0.0.1]>", "554 5.7.1 <victim@[127.0.0.1]>: Relay access denied"),
    ("<victim@[IPv6:::1]>", "554 5.7.1 <victim@[IPv6:::1]>: Relay access denied"),
    ("<victim@foreign.test@example.test>", "501 5.1.3 Bad recipient address syntax"),
    ("<>", "501 5.1.3 Bad recipient address syntax"),
]


@pytest.mark.parametrize("addr,reply", REJECTED, ids=[a for a, _ in REJECTED])
def test_rejected_from_outside(smtpd, addr, reply):
    assert rcpt(smtpd, addr) == (int(reply[:3]), reply)


def test_mynetworks_may_relay_but_not_tricks(smtpd):
    assert rcpt(smtpd, "<victim@foreign.test>", source="127.0.0.1")[0] == 250
    assert rcpt(smtpd, "<victim@[192.0.2.1]>", source="127.0.0.1")[0] == 250
    # routing through our own domain is refused for everyone
    assert rcpt(smtpd, "<victim%foreign.test@example.test>", source="127.0.0.1")[0] == 554
    assert rcpt(smtpd, "<foreign.test!victim@localhost>", source="127.0.0.1")[0] == 554
    # unknown users stay unknown for insiders too
    assert rcpt(smtpd, "<nobody@example.test>", source="127.0.0.1")[0] == 550


def test_reject_is_logged_postfix_style(smtpd):
    rcpt(smtpd, "<victim@foreign.test>")
    smtpd.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 <victim@foreign.test>: "
                   "Relay access denied; from=<a@client.test> to=<victim@foreign.test> proto=ESMTP "
                   "helo=<client.test>")
    smtpd.wait_log("disconnect from unknown[127.0.0.2] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4")


def test_local_recipient_maps_empty_accepts_any_local(smtpd_factory):
    s = smtpd_factory(main_cf=dict(CONF, local_recipient_maps=""))
    assert rcpt(s, "<whoever@localhost>")[0] == 250


def test_missing_table_tempfails(smtpd_factory):
    s = smtpd_factory(main_cf=dict(CONF, virtual_mailbox_maps="texthash:/nonexistent/vmaps"))
    code, line = rcpt(s, "<alice@example.test>")
    assert line == "451 4.3.0 <alice@example.test>: Temporary lookup failure"
    assert rcpt(s, "<victim@foreign.test>")[0] == 554
