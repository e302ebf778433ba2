"""postern-dmarc behind each MTA (a real Postfix, and Postern itself: see
tests/pylib/mta.py), after postern-spf and postern-dkim.

Chains (listeners) of one MTA instance:
  SIGN    postern-dkim signing for d.test (mail is delivered to s@r.test,
          and the test re-sends the signed copy through CHECK or STRICT)
  CHECK   smtpd_milters = postern-spf, postern-dkim (verify), postern-dmarc
          (report only)
  STRICT  the same with postern-dmarc RejectFailures, QuarantineFailures,
          BadFromAction reject
  SELF    postern-dmarc alone, SPFSelfValidate yes, RejectFailures yes
The three filters share AuthservID postern.test; postern-dmarc reads the
results the two before it added (the MTA shows each milter the edits of
the earlier ones). Clients are outside addresses: claimed with XCLIENT
under Postfix, bound as their loopback twins under Postern (127.0.2.10 for
192.0.2.10), so records and InternalHosts name both.
"""
import base64
import os
import re
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from pylib.dnsmasq import Dnsmasq, silent_udp_port  # noqa: E402
from pylib.util import BIN  # noqa: E402
from pylib.filters import FilterEnv, check_config_cases, run_miltertest  # noqa: E402
from pylib import mta as mtas  # noqa: E402
from pylib.mta import MTAS, Chain, spf_ip4, twin  # noqa: E402

# A private Postfix and UserID postern need root (as CI runs the tests).
if os.geteuid() != 0:
    raise RuntimeError("these tests need root (CI runs as root)")

RCPT, SIGNED = "a@r.test", "s@r.test"
SIGN, CHECK, STRICT, SELF = 0, 1, 2, 3
GOOD_IP, BAD_IP, INTERNAL_IP = "192.0.2.10", "203.0.113.5", "192.0.2.250"


def pubkey_b64(keyfile):
    der = subprocess.run(["openssl", "pkey", "-in", keyfile, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    return base64.b64encode(der).decode()


def start(env, prog, name, conf):
    port = env.start_filter(prog, name, "AuthservID postern.test\nNameservers %s\nDNSTimeout 2\n"
                            "InternalHosts %s, %s\n%s" % (env.dns.spec, INTERNAL_IP,
                                                          twin(INTERNAL_IP), conf))
    return "inet:127.0.0.1:%d" % port


@pytest.fixture(scope="module", params=MTAS)
def env(request):
    e = FilterEnv("filter-dmarc-")
    try:
        key = os.path.join(e.w, "sel.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", key], check=True, capture_output=True)
        os.chmod(key, 0o600)
        spf = "v=spf1 %s -all" % spf_ip4("192.0.2.0/24")
        txt = {
            "d.test": [spf], "q.test": [spf], "n.test": [spf], "pct0.test": [spf],
            "badrec.test": [spf], "two.test": [spf], "t.temp.test": [spf],
            "_dmarc.d.test": ["v=DMARC1; p=reject; rua=mailto:agg@d.test"],
            "_dmarc.q.test": ["v=DMARC1; p=quarantine"],
            "_dmarc.n.test": ["v=DMARC1; p=none"],
            "_dmarc.pct0.test": ["v=DMARC1; p=reject; pct=0"],
            "_dmarc.badrec.test": ["v=DMARC1; p=bogus"],
            "_dmarc.two.test": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
            "_dmarc.strict.test": ["v=DMARC1; p=reject; aspf=s"],
            "strict.test": [spf], "sub.strict.test": [spf],
            # b\u00fccher.test, published as its A-labels (RFC 8616)
            "xn--bcher-kva.test": [spf], "_dmarc.xn--bcher-kva.test": ["v=DMARC1; p=reject"],
            "sel._domainkey.d.test": ["v=DKIM1; k=rsa; p=" + pubkey_b64(key)],
        }
        e.silent, sport = silent_udp_port()
        e.dns = Dnsmasq(os.path.join(e.w, "dns"), txt=txt,
                        extra=["--server=/temp.test/127.0.0.1#%d" % sport]).start()
        e.history = os.path.join(e.w, "history")
        signer = start(e, "postern-dkim", "sign", "Mode s\nDomain d.test\nSelector sel\n"
                       "KeyFile %s\nInternalHosts 127.0.0.0/8\n" % key)
        spfm = start(e, "postern-spf", "spf", "")
        dkimv = start(e, "postern-dkim", "dkimv", "Mode v\n")
        report = start(e, "postern-dmarc", "dmarc", "HistoryFile %s\n" % e.history)
        e.report_port = int(report.rsplit(":", 1)[1])
        strict = start(e, "postern-dmarc", "dmarc-strict", "RejectFailures yes\n"
                       "QuarantineFailures yes\nBadFromAction reject\n"
                       "TempErrorAction tempfail\n")
        selfv = start(e, "postern-dmarc", "dmarc-self", "SPFSelfValidate yes\n"
                      "RejectFailures yes\n")
        e.mta = mtas.make(request.param, e.w, [
            Chain(signer),
            Chain(", ".join([spfm, dkimv, report])),
            Chain(", ".join([spfm, dkimv, strict])),
            Chain(selfv),
        ], [RCPT, SIGNED])
        e.mta.start()
        yield e
    finally:
        e.close()


def make(frm="From: <alice@d.test>\r\n", extra=""):
    token = "dm-" + uuid.uuid4().hex
    return token, ("%sTo: <a@r.test>\r\nSubject: %s\r\nDate: Mon, 23 Nov 2026 18:00:00 +0000\r\n"
                   "Message-ID: <%s@d.test>\r\n%s\r\nHello.\r\n" % (frm, token, token, extra))


def wait_msg(env, rcpt, token):
    return env.mta.delivered(rcpt, token)


def send(env, listener, raw, token, sender="alice@d.test", client=GOOD_IP):
    code, text = env.mta.send(listener, sender, [RCPT], raw, client=client)
    if code != 250:
        return code, text, None
    return code, text, wait_msg(env, RCPT, token)


def signed(env, frm="From: <alice@d.test>\r\n"):
    """A message signed by postern-dkim for d.test, plus an unsigned
    X-Test-Id to find the re-sent copy."""
    token, raw = make(frm)
    code, text = env.mta.send(SIGN, "alice@d.test", [SIGNED], raw)
    assert code == 250, text
    msg = wait_msg(env, SIGNED, token)
    t2 = "rs-" + uuid.uuid4().hex
    sig = msg["DKIM-Signature"].replace("\r\n", "\n").replace("\n", "\r\n")
    return t2, "X-Test-Id: %s\r\nDKIM-Signature: %s\r\n%s" % (t2, sig, raw)


def results(msg):
    """{method: result} from the postern.test A-R fields."""
    out = {}
    for v in msg.get_all("Authentication-Results") or []:
        v = re.sub(r"\s+", " ", v)
        if not v.strip().startswith("postern.test;"):
            continue
        for m in re.finditer(r"(spf|dkim|dmarc)=(\w+)", v):
            out.setdefault(m.group(1), m.group(2))
    return out


def dmarc_ar(msg):
    for v in msg.get_all("Authentication-Results") or []:
        v = re.sub(r"\s+", " ", v)
        if "dmarc=" in v and v.strip().startswith("postern.test;"):
            return v
    return None


def test_spf_aligned_pass(env):
    token, raw = make()
    code, text, msg = send(env, CHECK, raw, token)
    assert results(msg) == {"spf": "pass", "dkim": "none", "dmarc": "pass"}, \
        msg.get_all("Authentication-Results")
    assert "header.from=d.test" in dmarc_ar(msg)


def test_unaligned_fails_reject_policy(env):
    token, raw = make()
    code, text, msg = send(env, CHECK, raw, token, sender="bob@other.test")
    assert results(msg)["dmarc"] == "fail"
    assert "p=reject" in dmarc_ar(msg) and "dis=reject" in dmarc_ar(msg)
    token, raw = make()
    code, text, msg = send(env, STRICT, raw, token, sender="bob@other.test")
    assert code == 550 and "5.7.1 rejected by DMARC policy for d.test" in text, (code, text)


def test_dkim_aligned_pass_from_elsewhere(env):
    token, raw = signed(env)
    code, text, msg = send(env, STRICT, raw, token, sender="bob@other.test", client=BAD_IP)
    assert code == 250, text
    r = results(msg)
    assert r["dkim"] == "pass" and r["dmarc"] == "pass", msg.get_all("Authentication-Results")


def test_spf_fail_but_dkim_pass(env):
    token, raw = signed(env)
    code, text, msg = send(env, CHECK, raw, token, sender="alice@d.test", client=BAD_IP)
    assert results(msg) == {"spf": "fail", "dkim": "pass", "dmarc": "pass"}


def test_relaxed_alignment_through_org_domain(env):
    token, raw = make("From: <alice@sub.d.test>\r\n")
    code, text, msg = send(env, STRICT, raw, token, sender="alice@d.test")
    assert code == 250, text
    assert results(msg)["dmarc"] == "pass"
    assert "header.from=sub.d.test" in dmarc_ar(msg)


def test_strict_spf_alignment(env):
    token, raw = make("From: <alice@sub.strict.test>\r\n")
    code, text, msg = send(env, STRICT, raw, token, sender="alice@strict.test")
    assert code == 550, (code, text)


def test_forged_results_not_trusted(env):
    forged = ("Authentication-Results: postern.test; dkim=pass header.d=d.test header.s=sel\r\n"
              "Authentication-Results: evil.test; spf=pass smtp.mailfrom=alice@d.test\r\n"
              "Authentication-Results: postern.test; dmarc=pass header.from=d.test\r\n")
    token, raw = make(extra=forged)
    code, text, msg = send(env, CHECK, raw, token, sender="bob@other.test")
    assert results(msg) == {"spf": "none", "dkim": "none", "dmarc": "fail"}, \
        msg.get_all("Authentication-Results")
    ours = [v for v in msg.get_all("Authentication-Results") if "postern.test" in v]
    assert len(ours) == 3  # one each from spf, dkim, dmarc; the forged ones are gone
    token, raw = make(extra=forged)
    code, text, msg = send(env, STRICT, raw, token, sender="bob@other.test")
    assert code == 550


def test_quarantine_policy_holds(env):
    token, raw = make("From: <q@q.test>\r\n")
    code, text, msg = send(env, CHECK, raw, token, sender="bob@other.test")
    assert results(msg)["dmarc"] == "fail" and "dis=quarantine" in dmarc_ar(msg)
    token, raw = make("From: <q@q.test>\r\n")
    code, text = env.mta.send(STRICT, "bob@other.test", [RCPT], raw, client=GOOD_IP)
    assert code == 250
    env.mta.wait_held()


@pytest.mark.parametrize("frm,want", [
    ("From: <n@n.test>\r\n", ("fail", "dis=none")),          # p=none: report only
    ("From: <x@nothing.test>\r\n", ("none", None)),          # no record at all
    ("From: <x@badrec.test>\r\n", ("none", "invalid")),      # p=bogus
    ("From: <x@two.test>\r\n", ("none", None)),              # two records
    ("From: <x@t.temp.test>\r\n", ("temperror", None)),      # DNS timeout
    ("From: <a@d.test>\r\nFrom: <b@d.test>\r\n", ("permerror", "several From fields")),
    ("From: a@d.test, b@e.test\r\n", ("permerror", "several From addresses")),
    ("From: undisclosed:;\r\n", ("permerror", "no usable From address")),
    ("From: <a@d..test>\r\n", ("permerror", "no usable From address")),
    ("From: J\u00f6rg <j@b\u00fccher.test>\r\n", ("fail", "header.from=xn--bcher-kva.test")),
    ("From: <j@k\u00e4se.test>\r\n", ("none", "header.from=xn--kse-qla.test")),
    ("From: <j@\u2603.test>\r\n", ("permerror", "From domain not usable")),  # no A-label
])
def test_policies_and_bad_from(env, frm, want):
    token, raw = make(frm)
    code, text, msg = send(env, CHECK, raw, token, sender="bob@other.test")
    assert code == 250, text
    assert results(msg)["dmarc"] == want[0], dmarc_ar(msg)
    if want[1]:
        assert want[1] in dmarc_ar(msg)


def test_missing_from(env):
    """No From field: Postfix's cleanup adds one from the envelope sender
    before the milters see the message; Postern passes the message on as it
    came, so postern-dmarc sees no From (RFC 7489 6.6.1: permerror, or
    refused with BadFromAction reject)."""
    token = "dm-" + uuid.uuid4().hex
    raw = "To: <a@r.test>\r\nSubject: %s\r\n\r\nHello.\r\n" % token
    code, text, msg = send(env, CHECK, raw, token, sender="bob@other.test")
    assert code == 250, text
    if env.mta.kind == "postfix":
        assert msg.get_all("From") == ["bob@other.test"]
        assert results(msg)["dmarc"] == "none" and "header.from=other.test" in dmarc_ar(msg)
    else:
        assert msg.get_all("From") is None
        assert "dmarc=permerror (no From field)" in dmarc_ar(msg), dmarc_ar(msg)
        c, text = env.mta.send(STRICT, "bob@other.test", [RCPT], raw, client=GOOD_IP)
        assert c == 550 and text.startswith("5.7.1"), (c, text)


def test_internationalised_from_aligned(env):
    """SMTPUTF8 mail from b\u00fccher.test: SPF and the From domain both as
    xn--bcher-kva.test, aligned, so DMARC passes where p=reject."""
    token, raw = make("From: J\u00f6rg <j\u00f6rg@B\u00fccher.test>\r\n")
    code, text, msg = send(env, STRICT, raw, token, sender="j\u00f6rg@b\u00fccher.test")
    assert code == 250, text
    assert results(msg) == {"spf": "pass", "dkim": "none", "dmarc": "pass"}, \
        msg.get_all("Authentication-Results")
    assert "header.from=xn--bcher-kva.test" in dmarc_ar(msg)
    # from elsewhere: refused under the published p=reject
    token, raw = make("From: J\u00f6rg <j\u00f6rg@b\u00fccher.test>\r\n")
    code, text, msg = send(env, STRICT, raw, token, sender="j\u00f6rg@b\u00fccher.test",
                           client=BAD_IP)
    assert code == 550 and "xn--bcher-kva.test" in text, (code, text)


@pytest.mark.parametrize("frm,code,status", [
    ("From: <a@d.test>\r\nFrom: <b@d.test>\r\n", 550, "5.7.1"),
    ("From: <j@\u2603.test>\r\n", 550, "5.7.1"),
    ("From: <x@t.temp.test>\r\n", 451, "4.7.5"),
    ("From: <x@pct0.test>\r\n", 250, None),  # pct=0: never rejected
])
def test_strict_actions(env, frm, code, status):
    token, raw = make(frm)
    c, text = env.mta.send(STRICT, "bob@other.test", [RCPT], raw, client=GOOD_IP)
    assert c == code, (c, text)
    if status:
        assert text.startswith(status)


def test_many_authentication_results(env):
    # 300 untrusted fields and 100 trusted-looking ones with junk: bounded,
    # and the real results still decide
    junk = "".join("Authentication-Results: evil%d.test; spf=pass smtp.mailfrom=a@d.test; "
                   "dkim=pass header.d=d.test\r\n" % i for i in range(300))
    junk += "".join("Authentication-Results: postern.test; spf=%s smtp.mailfrom=\"x\r\n\t(y\r\n"
                    % ("pass" * 50) for _ in range(100))
    token, raw = make(extra=junk)
    code, text, msg = send(env, CHECK, raw, token, sender="bob@other.test")
    assert code == 250, text
    assert results(msg)["dmarc"] == "fail"
    token, raw = make(extra=junk)
    code, text, msg = send(env, CHECK, raw, token, sender="alice@d.test")
    assert results(msg)["dmarc"] == "pass"


def test_spf_self_validate(env):
    token, raw = make()
    code, text, msg = send(env, SELF, raw, token, sender="alice@d.test")
    assert code == 250, text
    assert results(msg) == {"dmarc": "pass"}  # SPF computed, not reported
    token, raw = make()
    code, text, msg = send(env, SELF, raw, token, sender="alice@d.test", client=BAD_IP)
    assert code == 550, (code, text)
    # a trusted result, when present, is used instead of our own check
    token, raw = make(extra="Authentication-Results: postern.test; spf=pass "
                            "smtp.mailfrom=alice@d.test\r\n")
    code, text, msg = send(env, SELF, raw, token, sender="alice@d.test", client=BAD_IP)
    assert code == 250, (code, text)


def test_internal_client_not_evaluated(env):
    token, raw = make()
    code, text, msg = send(env, CHECK, raw, token, sender="bob@other.test", client=INTERNAL_IP)
    assert "dmarc" not in results(msg)


def test_history_records(env):
    token, raw = make()
    send(env, CHECK, raw, token, sender="bob@other.test")
    with open(env.history) as f:
        lines = f.read().splitlines()
    assert any("from=d.test result=fail policy=reject disposition=reject" in line
               for line in lines), lines[-5:]


def test_config_test(env, tmp_path):
    check_config_cases(os.path.join(BIN, "postern-dmarc"), "postern-dmarc", tmp_path,
                       (("RejectFailures yes\n", True), ("BadFromAction maybe\n", False),
                        ("PublicSuffixList /nonexistent\n", False), ("Foo 1\n", False)))
    assert all(p.poll() is None for p in env.procs)


def test_miltertest(env):
    run_miltertest("dmarc.lua", env.report_port)
    assert all(p.poll() is None for p in env.procs)
