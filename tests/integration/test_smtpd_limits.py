"""smtpd's resource limits against hostile clients: header_size_limit
(issue 2: the excess of a longer logical header is discarded, Postfix's
meaning, without holding the message in memory) and
smtpd_client_connection_rate_limit with anvil_rate_time_unit and
smtpd_client_event_limit_exceptions (issue 2), against postern-smtpd with
tests/integration/fake_queue.py on its queue channel, which shows exactly
what smtpd stored."""
from tests.integration.fake_queue import Client, smtpd_factory  # noqa: F401
from tests.pylib import util


def session(s, source="127.0.0.1"):
    c = Client(s.port, source=source)
    assert c.reply()[0] == 220
    assert c.cmd("EHLO client.test")[0] == 250
    return c


def send_message(s, content, bdat=False):
    """One message through DATA (or one BDAT LAST chunk), accepted."""
    c = session(s)
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    if bdat:
        c.send(b"BDAT %d LAST\r\n" % len(content) + content)
    else:
        assert c.cmd("DATA")[0] == 354
        c.send(content + b".\r\n")
    code, lines = c.reply()
    assert code == 250, lines
    c.cmd("QUIT")
    util.wait_for(lambda: s.queue.committed(), 10, "commit")


def headers_after_received(stored):
    """The stored content without our Received header (it is folded)."""
    lines = stored.split(b"\r\n")
    i = 0
    while i < len(lines) and (lines[i].startswith(b"Received:") or lines[i][:1] in (b" ", b"\t")):
        i += 1
    return b"\r\n".join(lines[i:])


# ---- header_size_limit -----------------------------------------------------------

def stored_of(s, content, bdat=False):
    send_message(s, content, bdat)
    return headers_after_received(s.queue.committed()[-1].content())


def test_one_200k_header_is_cut_at_the_default_limit(smtpd_factory):
    s = smtpd_factory()
    value = b"v" * (200 * 1024)
    got = stored_of(s, b"Subject: hi\r\nX-Big: " + value + b"\r\nTo: a@b\r\n\r\nbody\r\n")
    # 102400 bytes of the logical header kept, then its line ends
    assert got == b"Subject: hi\r\nX-Big: " + value[:102400 - 7] + b"\r\nTo: a@b\r\n\r\nbody\r\n"
    # Postfix's cleanup logs nothing for a cut header; neither does smtpd
    assert "warning" not in s.log_text()


def test_many_headers_each_under_the_limit_are_all_kept(smtpd_factory):
    """The limit is per header, not for the block: 3000 headers of 100
    bytes (300 KB) with header_size_limit=1000 all arrive."""
    s = smtpd_factory(main_cf={"header_size_limit": "1000"})
    hdrs = b"".join(b"X-H%04d: %s\r\n" % (i, b"x" * 90) for i in range(3000))
    got = stored_of(s, hdrs + b"\r\nbody\r\n")
    assert got == hdrs + b"\r\nbody\r\n"


def test_folded_header_crossing_the_limit(smtpd_factory):
    """Continuation lines count with their fold; the line that crosses the
    limit is cut, the following continuation lines dropped, the next
    header and the body kept; the header block still ends where it did."""
    s = smtpd_factory(main_cf={"header_size_limit": "50"})
    folded = (b"Subject: " + b"a" * 30 + b"\r\n"     # 39 bytes
              b"\t" + b"b" * 20 + b"\r\n"             # 39 + fold + 21 > 50: cut to 10
              b" " + b"c" * 10 + b"\r\n"              # dropped
              b" dropped: too\r\n")                    # dropped
    got = stored_of(s, folded + b"From: x@y\r\n\r\n continuation-like body line\r\nbody\r\n")
    assert got == (b"Subject: " + b"a" * 30 + b"\r\n\t" + b"b" * 9 + b"\r\nFrom: x@y\r\n\r\n"
                   b" continuation-like body line\r\nbody\r\n")


def test_header_limit_with_bare_lf_inside(smtpd_factory):
    """Bare LF ends a header line like CRLF (normalized) and cannot hide
    bytes from the limit or end the header block early."""
    s = smtpd_factory(main_cf={"header_size_limit": "20"})
    # (the last line ends in CRLF: LF . CRLF would not end DATA)
    got = stored_of(s, b"X-A: " + b"1" * 40 + b"\n 2222\nX-B: ok\n\nbody\r\n")
    assert got == b"X-A: " + b"1" * 15 + b"\r\nX-B: ok\r\n\r\nbody\r\n"


def test_header_limit_applies_to_bdat(smtpd_factory):
    s = smtpd_factory(main_cf={"header_size_limit": "20"})
    got = stored_of(s, b"X-A: " + b"z" * 100 + b"\r\n\r\nbody\r\n", bdat=True)
    assert got == b"X-A: " + b"z" * 15 + b"\r\n\r\nbody\r\n"


def test_body_lines_are_never_cut(smtpd_factory):
    s = smtpd_factory(main_cf={"header_size_limit": "20"})
    body = b"b" * 5000
    got = stored_of(s, b"X-A: 1\r\n\r\n" + body + b"\r\n")
    assert got == b"X-A: 1\r\n\r\n" + body + b"\r\n"


# ---- smtpd_client_connection_rate_limit ------------------------------------------

def try_connect(s, source):
    c = Client(s.port, source=source)
    return c, c.reply()


def test_connection_rate_limit(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_client_connection_rate_limit": "3",
                               "anvil_rate_time_unit": "60s"})
    open_ = []
    for _ in range(3):
        c, (code, _) = try_connect(s, "127.0.0.2")
        assert code == 220
        open_.append(c)
    # closing them does not help: it is a rate, not a concurrency limit
    for c in open_:
        assert c.cmd("QUIT")[0] == 221
    c, (code, lines) = try_connect(s, "127.0.0.2")
    assert lines == ["421 4.7.0 postern.test Error: too many connections from 127.0.0.2"]
    assert c.closed()
    s.wait_log("warning: Connection rate limit exceeded: 4 from unknown[127.0.0.2] for service smtp")
    # refused connections count too (anvil does)
    c, (code, _) = try_connect(s, "127.0.0.2")
    assert code == 421
    s.wait_log("warning: Connection rate limit exceeded: 5 from unknown[127.0.0.2] for service smtp")
    # another client has its own count; mynetworks (the default exceptions) none
    c, (code, _) = try_connect(s, "127.0.0.3")
    assert code == 220
    assert all(try_connect(s, "127.0.0.1")[1][0] == 220 for _ in range(6))


def test_connection_rate_window_restarts(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_client_connection_rate_limit": "1",
                               "anvil_rate_time_unit": "1s"})
    assert try_connect(s, "127.0.0.2")[1][0] == 220
    assert try_connect(s, "127.0.0.2")[1][0] == 421
    # the window is over after one time unit: poll for the next 220
    util.wait_for(lambda: try_connect(s, "127.0.0.2")[1][0] == 220, 5, "a new window")


def test_event_limit_exceptions(smtpd_factory):
    s = smtpd_factory(main_cf={"smtpd_client_connection_rate_limit": "1",
                               "smtpd_client_connection_count_limit": "1",
                               "smtpd_client_event_limit_exceptions": "127.0.0.2"})
    # 127.0.0.2 is exempt from both limits now (4 at once, 4 in the window) ...
    kept = [try_connect(s, "127.0.0.2") for _ in range(4)]
    assert all(r[1][0] == 220 for r in kept)
    # ... and mynetworks (127.0.0.1 in the fake's main.cf) no longer is:
    # start()'s readiness probe was its one connection of the window
    c, (code, lines) = try_connect(s, "127.0.0.1")
    assert lines == ["421 4.7.0 postern.test Error: too many connections from 127.0.0.1"]
    assert c.closed()
