"""postern-spf behind each MTA (a real Postfix, and Postern itself: see
tests/pylib/mta.py), SPF records served by dnsmasq.

Clients are outside addresses: claimed with XCLIENT under Postfix, bound
as their loopback twins (127.0.2.10 for 192.0.2.10) under Postern, so the
records authorise both. InternalHosts is 127.0.0.1 only. Each case sends
one message and reads the Received-SPF and Authentication-Results fields of
the delivered copy, or the SMTP reply when the filter refuses.

Chains (listeners) of the one MTA instance:
  TAG     postern-spf that only adds headers
  STRICT  postern-spf with RejectFail yes, TempErrorAction tempfail,
          PermErrorAction reject
  HELO    postern-spf with RejectHELOFail yes
"""
import os
import re
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from pylib.dnsmasq import Dnsmasq, silent_udp_port  # noqa: E402
from pylib.util import BIN, SRC  # noqa: E402
from pylib.filters import FilterEnv, check_config_cases, run_miltertest  # noqa: E402
from pylib import mta as mtas  # noqa: E402
from pylib.mta import MTAS, POSTFIX_ONLY, Chain, spf_ip4, twin  # noqa: E402

# A private Postfix and UserID postern need root (as CI runs the tests).
if os.geteuid() != 0:
    raise RuntimeError("these tests need root (CI runs as root)")

PS = os.path.join(BIN, "postern-spf")
RCPT = "a@r.test"
TAG, STRICT, HELO = 0, 1, 2
CLIENT = "192.0.2.10"

HOSTS = {"h%d.test" % i: ["198.51.100.%d" % i] for i in range(1, 13)}
HOSTS["mx1.mx.test"] = [CLIENT]
HOSTS["mx2.mx.test"] = [twin(CLIENT)]  # one IPv4 address per dnsmasq host-record
NET = spf_ip4("192.0.2.0/24")
TXT = {
    "pass.test": ["v=spf1 " + NET + " -all"],
    "fail.test": ["v=spf1 ip4:198.51.100.0/24 -all"],
    "soft.test": ["v=spf1 ~all"],
    "neutral.test": ["v=spf1 ?all"],
    "other.test": ["not an spf record", "google-site-verification=x"],
    "perm.test": ["v=spf1 " + NET + " foo:bar -all"],
    "two.test": ["v=spf1 -all", "v=spf1 +all"],
    "loop.test": ["v=spf1 include:loop.test -all"],
    "temp-inc.test": ["v=spf1 include:t.temp.test -all"],
    "many.test": ["v=spf1 include:inc1.test include:inc2.test -all"],
    "inc1.test": ["v=spf1 " + " ".join("a:h%d.test" % i for i in range(1, 6)) + " ?all"],
    "inc2.test": ["v=spf1 " + " ".join("a:h%d.test" % i for i in range(6, 11)) + " ?all"],
    "nine.test": ["v=spf1 " + " ".join("a:h%d.test" % i for i in range(1, 10)) +
                  " " + NET + " -all"],
    "void.test": ["v=spf1 a:nx1.test a:nx2.test a:nx3.test " + NET + " -all"],
    "void2.test": ["v=spf1 a:nx1.test a:nx2.test " + NET + " -all"],
    "zero.test": ["v=spf1 ip4:0.0.0.0/0 -all"],
    "mod.test": ["v=spf1 x-custom.mod=foo " + NET + " -all"],
    "dupredir.test": ["v=spf1 redirect=pass.test redirect=fail.test"],
    "badmacro.test": ["v=spf1 exists:%{z}.test -all"],
    "nodot.test": ["v=spf1 a:localhost -all"],
    "numtop.test": ["v=spf1 a:h1.123 " + NET + " -all"],
    "macro.test": ["v=spf1 exists:%{l99999999r+-.}.%{d4}.%{i}.%{v}.%{h}.x.test"
                   " " + NET + " -all"],
    "macro2.test": ["v=spf1 exists:%{o0}.x.test -all"],
    "redir.test": ["v=spf1 redirect=pass.test"],
    "mx.test": ["v=spf1 mx -all"],
    "long.test": [tuple(["v=spf1 "] + ["ip4:203.0.113.%d " % i for i in range(1, 30)] +
                        ["" + NET + " -all"])],
    "six.test": ["v=spf1 ip6:2001:db8::/32 -all"],
    # internationalised names, published as their A-labels (RFC 8616)
    "xn--bcher-kva.test": ["v=spf1 " + NET + " -all"],       # b\u00fccher.test
    "xn--strae-oqa.test": ["v=spf1 ip4:198.51.100.0/24 -all"],  # stra\u00dfe.test
    "strasse.test": ["v=spf1 " + NET + " -all"],             # what IDNA2003 would ask
    "xn--r8jz45g.test": ["v=spf1 include:xn--bcher-kva.test -all"],  # \u4f8b\u3048.test
}


@pytest.fixture(scope="module", params=MTAS)
def env(request):
    e = FilterEnv("filter-spf-")
    try:
        e.silent, sport = silent_udp_port()
        # t.temp.test is forwarded to a server that never answers
        e.dns = Dnsmasq(os.path.join(e.w, "dns"), txt=TXT, hosts=HOSTS,
                        mx=[("mx.test", "mx1.mx.test", 10), ("mx.test", "mx2.mx.test", 20)],
                        extra=["--server=/temp.test/127.0.0.1#%d" % sport]).start()
        ports = [e.start_filter("postern-spf", name, "AuthservID postern.test\n"
                                "InternalHosts 127.0.0.1, ::1\nNameservers %s\nDNSTimeout 2\n%s"
                                % (e.dns.spec, extra))
                 for name, extra in (("tag", ""),
                                     ("strict", "RejectFail yes\nTempErrorAction tempfail\n"
                                                "PermErrorAction reject\n"),
                                     ("helo", "RejectHELOFail yes\nHeloCheck no\n"))]
        e.tag_port = ports[0]
        e.mta = mtas.make(request.param, e.w, [Chain("inet:127.0.0.1:%d" % p) for p in ports],
                          [RCPT], main={"smtputf8_enable": "yes", "inet_protocols": "all"})
        e.mta.start()
        e.client = e.mta.client_ip(CLIENT)
        yield e
    finally:
        e.close()


def send(env, listener, sender, client=CLIENT, helo="client.test", extra=""):
    token = "spf-" + uuid.uuid4().hex
    raw = ("From: <x@pass.test>\r\nTo: <a@r.test>\r\nSubject: %s\r\n%s\r\nbody\r\n" % (
        token, extra))
    code, text = env.mta.send(listener, sender, [RCPT], raw, client=client, helo=helo)
    if code != 250:
        return code, text, None
    return code, text, env.mta.delivered(RCPT, token)


def spf_of(msg):
    """(Received-SPF result, {identity: result} from our A-R)."""
    rs = msg["Received-SPF"]
    ar = [re.sub(r"\s+", " ", v) for v in msg.get_all("Authentication-Results") or []
          if v.strip().startswith("postern.test;")]
    assert len(ar) == 1, ar
    res = {}
    for m in re.finditer(r"spf=(\w+) smtp\.(mailfrom|helo)=", ar[0]):
        res[m.group(2)] = m.group(1)
    return (rs.split()[0] if rs else None), res


@pytest.mark.parametrize("sender,want", [
    ("a@pass.test", "pass"),
    ("a@fail.test", "fail"),
    ("a@soft.test", "softfail"),
    ("a@neutral.test", "neutral"),
    ("a@other.test", "none"),
    ("a@nothing.test", "none"),        # NXDOMAIN
    ("a@perm.test", "permerror"),      # unknown mechanism
    ("a@two.test", "permerror"),       # two SPF records (§4.5)
    ("a@loop.test", "permerror"),      # include of itself
    ("a@t.temp.test", "temperror"),    # DNS timeout on the record
    ("a@temp-inc.test", "temperror"),  # DNS timeout inside include:
    ("a@many.test", "permerror"),      # 12 lookups over two includes (libspf2 alone: fail)
    ("a@nine.test", "pass"),           # 9 lookups: within the limit
    ("a@void.test", "permerror"),      # 3 void lookups (libspf2 alone: pass)
    ("a@void2.test", "pass"),          # 2 void lookups: allowed
    ("a@zero.test", "pass"),           # ip4:0.0.0.0/0 (libspf2 alone: refused)
    ("a@mod.test", "pass"),            # modifier name with '.' and '-' (libspf2 alone: refused)
    ("a@dupredir.test", "permerror"),  # duplicate redirect= (libspf2 alone: accepted)
    ("a@badmacro.test", "permerror"),  # bad macro letter
    ("a@nodot.test", "permerror"),     # domain-spec without a dot
    ("a@numtop.test", "permerror"),    # numeric top label
    ("a@macro.test", "pass"),          # huge digit transformer, every macro letter
    ("a@macro2.test", "permerror"),    # digit transformer 0
    ("a@redir.test", "pass"),
    ("a@mx.test", "pass"),
    ("a@long.test", "pass"),           # one record in several TXT strings
    ("a@six.test", "fail"),
    ("postmaster", "none"),            # no domain: checked as the HELO, which has none
])
def test_mailfrom_results(env, sender, want):
    code, text, msg = send(env, TAG, sender)
    assert code == 250, (code, text)
    rs, ar = spf_of(msg)
    assert (rs, ar.get("mailfrom")) == (want, want), msg["Received-SPF"]
    assert "client-ip=%s;" % env.client in msg["Received-SPF"]
    assert "identity=mailfrom;" in msg["Received-SPF"]


def test_log_lines(env):
    code, text, msg = send(env, TAG, "a@fail.test")
    with open(os.path.join(env.w, "tag.log")) as f:
        log = f.read()
    assert re.search(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postern/spf\[\d+\]: SPF fail: "
                     r"client=%s, mailfrom=<a@fail\.test>, domain=fail\.test \("
                     % re.escape(env.client),
                     log, re.M), log[-600:]
    # peer bytes reach the log escaped
    send(env, TAG, "x\u00e9y@none.test")
    with open(os.path.join(env.w, "tag.log")) as f:
        assert "mailfrom=<x\\303\\251y@none.test>" in f.read()


def test_null_sender_checks_helo(env):
    code, text, msg = send(env, TAG, "", helo="pass.test")
    rs, ar = spf_of(msg)
    assert rs == "pass" and ar == {"helo": "pass"}
    assert "identity=helo;" in msg["Received-SPF"]
    code, text, msg = send(env, TAG, "", helo="fail.test")
    assert spf_of(msg)[1] == {"helo": "fail"}


def test_helo_also_reported(env):
    code, text, msg = send(env, TAG, "a@pass.test", helo="fail.test")
    assert spf_of(msg)[1] == {"mailfrom": "pass", "helo": "fail"}


def test_address_literal_helo_is_none(env):
    code, text, msg = send(env, TAG, "", helo="[192.0.2.10]")
    assert spf_of(msg)[1] == {"helo": "none"}


@POSTFIX_ONLY  # an IPv4-mapped IPv6 client: claimed with XCLIENT, which Postern lacks
def test_ipv4_mapped_client_checked_as_ipv4(env):
    code, text, msg = send(env, TAG, "a@pass.test", client="IPV6:::ffff:192.0.2.10")
    assert code == 250, text
    assert spf_of(msg)[1]["mailfrom"] == "pass", msg["Received-SPF"]


@POSTFIX_ONLY  # an IPv6 client: claimed with XCLIENT, which Postern lacks
def test_ipv6_client(env):
    code, text, msg = send(env, TAG, "a@six.test", client="IPV6:2001:db8::25")
    assert code == 250, (code, text)
    assert spf_of(msg)[1]["mailfrom"] == "pass"


def test_internal_client_not_checked(env):
    code, text, msg = send(env, TAG, "a@fail.test", client=None)
    assert msg["Received-SPF"] is None
    assert not [v for v in msg.get_all("Authentication-Results") or []
                if v.strip().startswith("postern.test")]


@pytest.mark.parametrize("sender,want", [
    ("j\u00f6rg@b\u00fccher.test", "pass"),     # U-labels checked as xn--bcher-kva.test
    ("jorg@B\u00dcCHER.test", "pass"),           # mapped to lower case first
    ("j\u00f6rg@stra\u00dfe.test", "fail"),      # IDNA2008: xn--strae-oqa, not strasse
    ("a@\u4f8b\u3048.test", "pass"),              # include: of another A-label name
    ("j\u00f6rg@k\u00e4se.test", "none"),         # converts; nothing published
    ("a@\u2603.test", "none"),                    # U+2603: no A-label exists (RFC 7208 4.3)
    ("a@a\u0301\u0301x.test", "none"),           # converts (NFC), nothing published
])
def test_smtputf8_sender(env, sender, want):
    code, text, msg = send(env, TAG, sender)
    assert code == 250, text
    assert spf_of(msg)[1]["mailfrom"] == want, msg["Received-SPF"]
    assert "client-ip=" in msg["Received-SPF"]
    if want != "none":
        assert "identity=mailfrom;" in msg["Received-SPF"]
    assert all(p.poll() is None for p in env.procs)


def test_u_label_helo(env):
    # a null sender is checked as the HELO name, here in U-labels
    code, text, msg = send(env, TAG, "", helo="b\u00fccher.test")
    assert code == 250, text
    assert spf_of(msg)[1] == {"helo": "pass"}, msg["Received-SPF"]
    code, text, msg = send(env, TAG, "", helo="stra\u00dfe.test")
    assert spf_of(msg)[1] == {"helo": "fail"}, msg["Received-SPF"]
    code, text, msg = send(env, TAG, "", helo="\u2603.test")
    assert spf_of(msg)[1] == {"helo": "none"}, msg["Received-SPF"]


def test_smtputf8_refusal_names_a_label(env):
    c, text, msg = send(env, STRICT, "j\u00f6rg@stra\u00dfe.test")
    assert c == 550 and text.startswith("5.7.23"), (c, text)
    assert "xn--strae-oqa.test" in text  # reply text stays ASCII


def test_hostile_sender_is_quoted(env):
    code, text, msg = send(env, TAG, '"a;b=c\\"x"@pass.test')
    assert code == 250, text
    rs, ar = spf_of(msg)
    assert ar["mailfrom"] == "pass"
    v = re.sub(r"\s+", " ", msg["Received-SPF"])
    assert 'envelope-from="\\"a;b=c\\\\\\"x\\"@pass.test";' in v, v


def test_forged_authentication_results_removed(env):
    code, text, msg = send(env, TAG, "a@fail.test",
                           extra="Authentication-Results: postern.test; spf=pass "
                                 "smtp.mailfrom=a@fail.test\r\n")
    assert spf_of(msg)[1] == {"mailfrom": "fail", "helo": "none"}


@pytest.mark.parametrize("sender,code,status", [
    ("a@fail.test", 550, "5.7.23"),
    ("a@t.temp.test", 451, "4.7.24"),
    ("a@perm.test", 550, "5.7.24"),
])
def test_strict_refusals(env, sender, code, status):
    c, text, msg = send(env, STRICT, sender)
    assert c == code and text.startswith(status), (c, text)


@pytest.mark.parametrize("sender", ["a@pass.test", "a@soft.test", "a@neutral.test"])
def test_strict_accepts(env, sender):
    c, text, msg = send(env, STRICT, sender)
    assert c == 250


@pytest.mark.parametrize("helo,sender,code", [
    ("fail.test", "a@pass.test", 550),     # HELO fails: refused, MAIL FROM passing or not
    ("fail.test", "", 550),
    ("pass.test", "a@fail.test", 250),     # only the HELO identity is judged here
    ("soft.test", "a@pass.test", 250),
    ("nothing.test", "a@pass.test", 250),  # none
    ("[192.0.2.10]", "a@pass.test", 250),  # an address literal: nothing to check
])
def test_reject_helo_fail(env, helo, sender, code):
    c, text, msg = send(env, HELO, sender, helo=helo)
    assert c == code, (c, text)
    if code == 550:
        assert text.startswith("5.7.23") and "HELO fail.test" in text, text
    else:
        # HeloCheck no, yet the HELO result is reported: it was checked
        assert "helo" in spf_of(msg)[1], msg["Authentication-Results"]


def test_reject_helo_fail_off_by_default(env):
    c, text, msg = send(env, TAG, "a@pass.test", helo="fail.test")
    assert c == 250 and spf_of(msg)[1]["helo"] == "fail"


def test_config_test(env, tmp_path):
    check_config_cases(PS, "postern-spf", tmp_path,
                       (("TempErrorAction tempfail\n", True), ("TempErrorAction maybe\n", False),
                        ("RejectHELOFail yes\n", True), ("RejectHELOFail maybe\n", False),
                        ("RejectFail perhaps\n", False), ("Unknown 1\n", False)))
    assert all(p.poll() is None for p in env.procs)
    # the shipped example is a valid configuration (every setting it names exists)
    example = os.path.join(SRC, "examples", "filters", "postern-spf.conf")
    r = subprocess.run([PS, "-t", "-c", example], capture_output=True, text=True)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r.stderr


def test_miltertest(env):
    run_miltertest("spf.lua", env.tag_port)
    assert all(p.poll() is None for p in env.procs)
