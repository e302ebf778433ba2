"""Milter faults: a fake milter (tests/milter/fake_milter.py: a fake on
purpose, since real milters do not misbehave on demand) breaks the protocol
at every stage; the chain must apply the milter's default_action, log one
line naming the milter and what it did, and finish the session cleanly."""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "milter"))

from fake_milter import FakeMilter  # noqa: E402
from milterlib import MESSAGE, drive, free_port  # noqa: E402

# command letter -> where the chain reports it
CHAIN_STAGE = {"O": "CONNECT", "C": "CONNECT", "H": "HELO", "M": "MAIL", "R": "RCPT",
               "T": "DATA", "L": "END-OF-MESSAGE", "N": "END-OF-MESSAGE",
               "B": "END-OF-MESSAGE", "E": "END-OF-MESSAGE"}
FAULTS = ["hang", "close", "close_mid", "zero", "oversized", "unknown", "illegal", "extra"]
ACTION_VERDICT = {
    "reject": "reject 550 5.5.0 Service unavailable",
    "tempfail": "tempfail 451 4.7.1 Service unavailable - try again later",
    "shutdown": "shutdown 421 4.7.1 Service unavailable - try again later",
}
CONFIG_VERDICT = {
    "reject": "tempfail 451 4.3.5 Server configuration problem - try again later",
    "tempfail": "tempfail 451 4.3.5 Server configuration problem - try again later",
    "shutdown": "shutdown 421 4.3.5 Server configuration problem - try again later",
}
# what each fault must be called in the log line
FAULT_WORDS = {
    "hang": "timed out", "close": "closed the connection", "close_mid": "closed the connection",
    "zero": "zero-length packet", "oversized": "oversized packet", "unknown": "unknown reply",
    "illegal": "", "extra": "sent data", "badtext": "reply line without a 4xx/5xx code",
}


@pytest.fixture
def fake():
    made = []

    def make(**kw):
        f = FakeMilter(**kw)
        made.append(f)
        return f
    yield make
    for f in made:
        f.stop()


def group(endpoint, action, timeout="400ms"):
    return ("{ %s, connect_timeout=%s, command_timeout=%s, content_timeout=%s, "
            "default_action=%s }" % (endpoint, timeout, timeout, timeout, action))


def milter_warnings(stderr):
    return [l for l in stderr.splitlines() if "warning:" in l and " milter inet:" in l]


def check(r, endpoint, letter, action, fault=None):
    assert r.rc == 0, r.stderr
    stage = CHAIN_STAGE[letter]
    warns = milter_warnings(r.stderr)
    assert len(warns) == 1, r.stderr
    assert "milter %s: " % endpoint in warns[0]
    assert warns[0].endswith("default_action=%s" % action)
    if fault and FAULT_WORDS[fault]:
        assert FAULT_WORDS[fault] in warns[0]
    expected = dict(ACTION_VERDICT)
    if fault == "badtext" or (fault == "illegal" and letter == "E"):
        # a malformed reply text or edit request: Postfix's configuration problem
        expected = CONFIG_VERDICT
    if action in expected:
        if fault == "extra" and r.verdict(stage) != ACTION_VERDICT[action]:
            # the extra bytes came in a later segment: noticed at the next request
            later = list(dict.fromkeys(CHAIN_STAGE.values()))
            later = later[later.index(stage) + 1:]
            assert any(r.verdict(s) == expected[action] for s in later), r.stdout
            return
        assert r.verdict(stage) == expected[action], r.stdout
        if stage in ("CONNECT", "HELO") or action == "shutdown":
            # sticks for the session: nothing after it reached END-OF-MESSAGE
            assert r.verdict("END-OF-MESSAGE") in (None, expected[action])
    else:
        assert r.verdict(stage) in ("continue", "accept"), r.stdout
        assert r.verdict("END-OF-MESSAGE") in ("continue", "accept"), r.stdout
        # nothing accepted is lost or changed
        assert r.message == MESSAGE
        assert r.field("rcpt") == ["<b@example.org>"]
        if action == "quarantine":
            assert r.field("quarantine") == ["milter %s failed" % endpoint]
        else:
            assert r.field("quarantine") == []


@pytest.mark.parametrize("letter", list(CHAIN_STAGE))
@pytest.mark.parametrize("fault", FAULTS)
def test_fault_every_stage(tmp_path, fake, fault, letter):
    f = fake(fault=fault, at=letter)
    r = drive(tmp_path, group(f.endpoint, "tempfail"))
    check(r, f.endpoint, letter, "tempfail", fault)


@pytest.mark.parametrize("letter", list(CHAIN_STAGE))
@pytest.mark.parametrize("action", ["accept", "reject", "tempfail", "quarantine", "shutdown"])
def test_default_action_every_stage(tmp_path, fake, action, letter):
    f = fake(fault="unknown", at=letter)
    r = drive(tmp_path, group(f.endpoint, action))
    check(r, f.endpoint, letter, action, "unknown")


@pytest.mark.parametrize("action", ["accept", "reject", "tempfail", "quarantine", "shutdown"])
def test_connection_refused(tmp_path, action):
    endpoint = "inet:127.0.0.1:%d" % free_port()
    r = drive(tmp_path, group(endpoint, action))
    check(r, endpoint, "C", action)
    assert "connect failed: Connection refused" in milter_warnings(r.stderr)[0]


def test_unix_socket_missing(tmp_path):
    endpoint = "unix:%s/none.sock" % tmp_path
    r = drive(tmp_path, endpoint, maincf=["milter_default_action = accept"])
    assert r.verdict("CONNECT") == "accept"
    assert r.message == MESSAGE
    assert len(milter_warnings(r.stderr.replace("milter unix:", "milter inet:"))) == 1


def test_main_cf_default_action_and_queue_id_in_log(tmp_path, fake):
    f = fake(fault="zero", at="E")
    r = drive(tmp_path, f.endpoint, maincf=["milter_default_action = reject",
                                            "milter_content_timeout = 5s"])
    assert r.verdict("END-OF-MESSAGE") == ACTION_VERDICT["reject"]
    (warn,) = milter_warnings(r.stderr)
    assert re.search(r"warning: 4DRIVEQID: milter %s: sent a zero-length packet at END-OF-MESSAGE;"
                     r" default_action=reject$" % re.escape(f.endpoint), warn)


def test_progress_extends_timeout(tmp_path, fake):
    f = fake(fault="progress", at="E", progress_for=0.8)
    r = drive(tmp_path, group(f.endpoint, "tempfail", timeout="300ms"))
    assert r.verdict("END-OF-MESSAGE") == "continue", r.stderr
    assert milter_warnings(r.stderr) == []


def test_shutdown_reply(tmp_path, fake):
    f = fake(fault="shutdown", at="M")
    r = drive(tmp_path, f.endpoint)
    assert r.verdict("MAIL") == "shutdown 421 4.7.0 Server closing connection"
    assert r.verdict("RCPT") is None
    assert milter_warnings(r.stderr) == []


def test_failed_milter_skipped_next_one_still_asked(tmp_path, fake):
    bad = fake(fault="close", at="H")
    good = fake()
    r = drive(tmp_path, "%s, %s" % (group(bad.endpoint, "accept"), good.endpoint))
    assert r.verdict("END-OF-MESSAGE") == "continue"
    assert "E" in good.seen
    # the failed milter got no events after HELO
    assert "M" not in bad.seen
    assert len(milter_warnings(r.stderr)) == 1


@pytest.mark.parametrize("letter", ["O", "C", "M", "E"])
def test_reply_trickled_byte_by_byte(tmp_path, fake, letter):
    f = fake(fault="trickle", at=letter)
    r = drive(tmp_path, f.endpoint)
    assert r.verdict("END-OF-MESSAGE") == "continue", r.stdout + r.stderr
    assert milter_warnings(r.stderr) == []
    if letter == "E":
        assert b"X-Trickled: yes\r\n" in r.message


@pytest.mark.parametrize("letter", ["C", "R", "E"])
@pytest.mark.parametrize("action", ["accept", "reject", "tempfail", "quarantine", "shutdown"])
def test_malformed_reply_text(tmp_path, fake, action, letter):
    f = fake(fault="badtext", at=letter)
    r = drive(tmp_path, group(f.endpoint, action))
    check(r, f.endpoint, letter, action, "badtext")
