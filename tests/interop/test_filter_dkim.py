"""postern-dkim against real peers: Postfix, opendkim, dnsmasq, miltertest;
and behind Postern as the MTA (tests/pylib/mta.py: each case that makes
sense for both runs with each).

One MTA instance with these chains (listeners):
  SIGN_P  smtpd_milters = postern-dkim (signing)  -> forwarded to VERIFY
  SIGN_O  smtpd_milters = opendkim (signing)      -> forwarded to VERIFY
  VERIFY  smtpd_milters = opendkim (verifying), postern-dkim (verifying)
  TEMP    smtpd_milters = postern-dkim with a DNS server that never answers
  ONLY_P  smtpd_milters = postern-dkim (verifying) alone, for hostile input
  TEMP_ACCEPT  like TEMP, with the default TemporaryFailure accept
  RELOAD  smtpd_milters = postern-dkim (signing, tables the test rewrites
          before a SIGHUP)                         -> forwarded to VERIFY
Every key is published by dnsmasq on a loopback port; both verifiers ask it
(postern-dkim through Nameservers, opendkim through Nameservers +
ResolverConfiguration). Mail is delivered to a Maildir and the test reads
the headers a user would see. "-> forwarded to VERIFY": Postfix's
content_filter; under Postern the helper sends the delivered copy through
VERIFY (a second pass, from 127.0.0.1 as Postfix's smtp client would).
"""
import base64
import os
import re
import shutil
import signal
import subprocess
import uuid

import pytest

import sys
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from pylib.dnsmasq import Dnsmasq, silent_udp_port  # noqa: E402
from pylib.util import BIN, free_port, stop, wait_for  # noqa: E402
from pylib.filters import FilterEnv, run_miltertest, write as write_file  # noqa: E402
from pylib import mta as mtas  # noqa: E402
from pylib.mta import MTAS, POSTFIX_ONLY, Chain  # noqa: E402

# A private Postfix and UserID postern need root (as CI runs the tests).
if os.geteuid() != 0:
    raise RuntimeError("these tests need root (CI runs as root)")

PD = os.path.join(BIN, "postern-dkim")
RCPT = "a@r.test"
SIGN_P, SIGN_O, VERIFY, TEMP, ONLY_P, TEMP_ACCEPT, RELOAD = 0, 1, 2, 3, 4, 5, 6


def pubkey_b64(keyfile, ed25519=False):
    der = subprocess.run(["openssl", "pkey", "-in", keyfile, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    if ed25519:
        der = der[-32:]  # RFC 8463: the raw 32-byte key, not SubjectPublicKeyInfo
    return base64.b64encode(der).decode()


def write(path, text, mode=0o644):
    return write_file(path, text, mode)


def start_postern(env, name, conf_lines):
    return env.start_filter("postern-dkim", name, conf_lines)


def write_reload_tables(env, keytable, signtable):
    """RELOAD's KeyTable and SigningTable, and its keys, owned by postern."""
    write(os.path.join(env.rdir, "KeyTable"), keytable)
    write(os.path.join(env.rdir, "SigningTable"), signtable)
    for name in os.listdir(env.rdir):
        shutil.chown(os.path.join(env.rdir, name), "postern")
        if name.endswith(".pem"):
            os.chmod(os.path.join(env.rdir, name), 0o600)


def start_opendkim(env, name, conf_lines):
    port = free_port()
    conf = write(os.path.join(env.w, name + ".conf"),
                 "Socket inet:%d@127.0.0.1\nSyslog no\nRequireSafeKeys false\n"
                 "Nameservers %s\nResolverConfiguration %s\n%s\n" % (
                     port, env.dns.spec, env.unbound_conf, conf_lines))
    return env.start_milter(["/usr/sbin/opendkim", "-f", "-x", conf], port)


@pytest.fixture(scope="module", params=MTAS)
def env(request):
    e = FilterEnv("filter-dkim-")
    try:
        keys = os.path.join(e.w, "keys")
        os.makedirs(keys)
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", os.path.join(keys, "sel.pem")],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                        os.path.join(keys, "ed.pem")], check=True, capture_output=True)
        subprocess.run(["opendkim-genkey", "-b", "2048", "-d", "o.test", "-s", "odk",
                        "-D", keys], check=True, capture_output=True)
        # private keys readable by root only: postern-dkim reads them before
        # dropping to UserID postern
        for k in ("sel.pem", "ed.pem", "odk.private"):
            os.chmod(os.path.join(keys, k), 0o600)
        e.keys = keys
        sel_pub = pubkey_b64(os.path.join(keys, "sel.pem"))
        ed_pub = pubkey_b64(os.path.join(keys, "ed.pem"), True)
        txt = {
            # the keys RELOAD signs with, before and after its SIGHUP
            "a._domainkey.r1.test": ["v=DKIM1; k=rsa; p=" + sel_pub],
            "b._domainkey.r1.test": ["v=DKIM1; k=ed25519; p=" + ed_pub],
            "a._domainkey.r2.test": ["v=DKIM1; k=rsa; p=" + sel_pub],
            "sel._domainkey.d.test": ["v=DKIM1; k=rsa; p=" + pubkey_b64(os.path.join(keys, "sel.pem"))],
            "ed._domainkey.e.test": ["v=DKIM1; k=ed25519; p=" + pubkey_b64(os.path.join(keys, "ed.pem"), True)],
            "odk._domainkey.o.test": ["v=DKIM1; k=rsa; p=" + pubkey_b64(os.path.join(keys, "odk.private"))],
            # RFC 8463 Appendix A.2
            "brisbane._domainkey.football.example.com": [
                "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="],
            "test._domainkey.football.example.com": [(
                "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR",
                "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC",
                "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3",
                "Ip3G+2kryOTIKT+l/K4w3QIDAQAB")],
            # b\u00fccher.test signs as its A-labels (RFC 8616 \u00a73)
            "sel._domainkey.xn--bcher-kva.test": ["v=DKIM1; k=rsa; p=" + sel_pub],
            # a key record that is not one
            "junk._domainkey.d.test": ["v=DKIM1; k=rsa; p=!!!notbase64"],
        }
        e.dns = Dnsmasq(os.path.join(e.w, "dns"), txt=txt).start()
        e.unbound_conf = write(os.path.join(e.w, "unbound.conf"),
                               'server:\n  local-zone: "test." nodefault\n')
        write(os.path.join(e.w, "KeyTable"),
              "sel._domainkey.d.test d.test:sel:%s\ned._domainkey.e.test e.test:ed:%s\n"
              "sel._domainkey.xn--bcher-kva.test xn--bcher-kva.test:sel:%s\n" % (
                  os.path.join(keys, "sel.pem"), os.path.join(keys, "ed.pem"),
                  os.path.join(keys, "sel.pem")))
        write(os.path.join(e.w, "SigningTable"),
              "*@d.test sel._domainkey.d.test\n*@e.test ed._domainkey.e.test\n"
              "*@xn--bcher-kva.test sel._domainkey.xn--bcher-kva.test\n")
        # InternalHosts: not all of 127.0.0.0/8, whose other addresses stand
        # for outside clients under Postern (tests/pylib/mta.py)
        e.sign_p = start_postern(e, "pds", "Mode s\nKeyTable %s\nSigningTable refile:%s\n"
                                 "InternalHosts 127.0.0.1, ::1\n" % (
            os.path.join(e.w, "KeyTable"), os.path.join(e.w, "SigningTable")))
        e.verify_p = start_postern(e, "pdv", "Mode v\nAuthservID postern.test\nNameservers %s\n"
                                   "InternalHosts 192.0.2.250\n" % e.dns.spec)
        e.sv_p = start_postern(e, "pdsv", "Mode sv\nAuthservID postern.test\nNameservers %s\n"
                               "Domain d.test\nSelector sel\nKeyFile %s\n" % (
                                   e.dns.spec, os.path.join(keys, "sel.pem")))
        e.silent, sport = silent_udp_port()
        e.temp_p = start_postern(e, "pdt", "Mode v\nAuthservID postern.test\n"
                                 "Nameservers 127.0.0.1@%d\nDNSTimeout 1\n"
                                 "TemporaryFailure tempfail\n" % sport)
        e.temp_a = start_postern(e, "pdta", "Mode v\nAuthservID postern.test\n"
                                 "Nameservers 127.0.0.1@%d\nDNSTimeout 1\n" % sport)
        e.sign_o = start_opendkim(e, "ods", "Mode s\nDomain o.test\nSelector odk\nKeyFile %s\n"
                                  "InternalHosts 127.0.0.1\nCanonicalization relaxed/relaxed\n"
                                  % os.path.join(keys, "odk.private"))
        e.verify_o = start_opendkim(e, "odv", "Mode v\nAuthservID opendkim.test\n"
                                    "InternalHosts 192.0.2.250\n")
        # re-read on SIGHUP as UserID postern: files that user can read
        e.rdir = os.path.join(e.w, "reload")
        os.makedirs(e.rdir)
        for src, dst in (("sel.pem", "a.pem"), ("ed.pem", "b.pem")):
            shutil.copy(os.path.join(keys, src), os.path.join(e.rdir, dst))
        write_reload_tables(e, "a._domainkey.r1.test r1.test:a:%s\n"
                            % os.path.join(e.rdir, "a.pem"), "*@r1.test a._domainkey.r1.test\n")
        e.reload_p = start_postern(e, "pdr", "Mode s\nKeyTable %s\nSigningTable refile:%s\n"
                                   "InternalHosts 127.0.0.1, ::1\n" % (
                                       os.path.join(e.rdir, "KeyTable"),
                                       os.path.join(e.rdir, "SigningTable")))
        e.reload_proc = e.procs[-1]
        ms = lambda *ports: ", ".join("inet:127.0.0.1:%d" % p for p in ports)  # noqa: E731
        e.mta = mtas.make(request.param, e.w, [
            Chain(ms(e.sign_p), forward_to=VERIFY),
            Chain(ms(e.sign_o), forward_to=VERIFY),
            Chain(ms(e.verify_o, e.verify_p)),
            Chain(ms(e.temp_p)),
            Chain(ms(e.verify_p)),
            Chain(ms(e.temp_a)),
            Chain(ms(e.reload_p), forward_to=VERIFY),
        ], [RCPT], main={"non_smtpd_milters": ms(e.sign_p)})
        e.mta.start()
        yield e
    finally:
        e.close()


def message(sender="alice@d.test", subject=None, body="Hello.\r\nSecond line.\r\n", extra=""):
    subject = subject or "t-" + uuid.uuid4().hex
    return subject, ("From: Alice <%s>\r\nTo: <a@r.test>\r\nSubject: %s\r\n"
                     "Date: Mon, 23 Nov 2026 18:00:00 +0000\r\nMessage-ID: <%s@d.test>\r\n"
                     "%s\r\n%s" % (sender, subject, uuid.uuid4().hex, extra, body))


def deliver(env, listener, raw, subject, sender="alice@d.test", xclient=None):
    """Send raw through a listener; return the delivered message whose
    Subject (or, for re-sent copies, X-Test-Id) is subject."""
    code, text = env.mta.send(listener, sender, [RCPT], raw, client=xclient)
    assert code == 250, (code, text)
    return deliver_wait(env, subject)


def deliver_wait(env, subject):
    return env.mta.delivered(RCPT, subject)


def ar_values(msg, authserv):
    out = []
    for v in msg.get_all("Authentication-Results") or []:
        v = re.sub(r"\s+", " ", v).strip()
        v = re.sub(r"\([^()]*\)", "", v)  # comments, which may hold ';'
        v = re.sub(r" +", " ", v)
        if v.split(";")[0].strip() == authserv:
            out.append(v)
    return out


def dkim_results(msg, authserv):
    """[(result, header.d, header.s, header.b)] from one authserv's A-R fields."""
    res = []
    for v in ar_values(msg, authserv):
        for part in v.split(";")[1:]:
            m = re.match(r"\s*dkim=(\w+)", part)
            if not m:
                continue
            d = re.search(r"header\.d=(\S+)", part)
            s = re.search(r"header\.s=(\S+)", part)
            b = re.search(r"header\.b=(\S+)", part)
            res.append((m.group(1), d and d.group(1), s and s.group(1), b and b.group(1)))
    return res


# -- the program itself --------------------------------------------------------

def test_version_and_config_test(env, tmp_path):
    r = subprocess.run([PD, "-V"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("postern-dkim ")
    good = write(str(tmp_path / "good.conf"), "Socket inet:1@127.0.0.1\nUserID postern\nMode v\n")
    r = subprocess.run([PD, "-t", "-c", good], capture_output=True, text=True)
    assert r.returncode == 0 and "configuration OK" in r.stdout
    bad = {
        "unknown": "Socket inet:1@127.0.0.1\nUserID postern\nNoSuchThing yes\n",
        "socket": "Socket tcp:1\nUserID postern\n",
        "mode": "Socket inet:1@127.0.0.1\nUserID postern\nMode x\n",
        "signing-without-key": "Socket inet:1@127.0.0.1\nUserID postern\nMode s\n",
        "missing-key": "Socket inet:1@127.0.0.1\nUserID postern\nDomain d.test\nSelector s\n"
                       "KeyFile /nonexistent\n",
        "not-a-key": "Socket inet:1@127.0.0.1\nUserID postern\nDomain d.test\nSelector s\n"
                     "KeyFile /etc/hostname\n",
        "nameserver": "Socket inet:1@127.0.0.1\nUserID postern\nNameservers nowhere\n",
        "root": "Socket inet:1@127.0.0.1\nMode v\n",
    }
    for name, text in bad.items():
        path = write(str(tmp_path / (name + ".conf")), text)
        r = subprocess.run([PD, "-t", "-c", path], capture_output=True, text=True)
        assert r.returncode == 1, name
        assert r.stderr.startswith("postern-dkim: "), (name, r.stderr)


def test_drops_privileges(env):
    pid = env.procs[0].pid
    with open("/proc/%d/status" % pid) as f:
        uid_line = [line for line in f if line.startswith("Uid:")][0]
    import pwd
    assert uid_line.split()[1:] == [str(pwd.getpwnam("postern").pw_uid)] * 4


def test_unix_socket_owned_by_userid(env, tmp_path):
    import pwd
    import socket
    import stat
    import struct
    d = tmp_path / "run"
    d.mkdir()
    os.chmod(str(d), 0o755)
    path = str(d / "dkim.sock")
    conf = write(str(tmp_path / "u.conf"), "Socket unix:%s\nUserID postern\nUMask 007\n"
                 "Mode v\nNameservers %s\nLogFile %s\n" % (path, env.dns.spec,
                                                          str(tmp_path / "u.log")))
    p = subprocess.Popen([PD, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: os.path.exists(path) or p.poll() is not None, what="unix socket")
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert st.st_uid == pwd.getpwnam("postern").pw_uid
        assert stat.S_IMODE(st.st_mode) == 0o770
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(path)
            s.sendall(struct.pack(">IcIII", 13, b"O", 6, 0x1FF, 0x1FFFFF))
            assert s.recv(5)[4:5] == b"O"
    finally:
        stop(p, sig=9)
        p.stderr.close()


# -- signing: postern-dkim signs, real opendkim and postern-dkim verify ---------

def test_postern_signs_rsa_opendkim_verifies(env):
    subject, raw = message("alice@d.test")
    msg = deliver(env, SIGN_P, raw, subject)
    sig = re.sub(r"\s+", "", msg["DKIM-Signature"])
    assert "d=d.test;" in sig and "s=sel;" in sig and "a=rsa-sha256;" in sig
    assert "c=relaxed/relaxed;" in sig
    h = re.search(r"(?:^|;)h=([^;]+)", sig).group(1).lower().split(":")
    assert h.count("from") == 2, h  # From oversigned
    assert dkim_results(msg, "opendkim.test")[0][:3] == ("pass", "d.test", "sel")
    assert dkim_results(msg, "postern.test")[0][:3] == ("pass", "d.test", "sel")
    # Postfix-shaped log lines, with the MTA's queue ID of the message
    qid = re.search(r"/(?:cleanup|smtpd)\[\d+\]: ([0-9A-Za-z]+): message-id=<%s" %
                    re.escape(re.search(r"<(.*)>", msg["Message-ID"]).group(1)), env.mta.log())
    with open(os.path.join(env.w, "pds.log")) as f:
        log = f.read()
    line = r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postern/dkim\[\d+\]: %s: " \
           r"DKIM-Signature field added \(s=sel, d=d\.test\)$"
    assert qid and re.search(line % qid.group(1), log, re.M), log[-500:]


def test_postern_signs_ed25519_both_verify(env):
    subject, raw = message("bob@e.test")
    msg = deliver(env, SIGN_P, raw, subject, sender="bob@e.test")
    sig = re.sub(r"\s+", "", msg["DKIM-Signature"])
    assert "a=ed25519-sha256;" in sig and "d=e.test;" in sig
    assert dkim_results(msg, "postern.test")[0][:3] == ("pass", "e.test", "ed")
    assert dkim_results(msg, "opendkim.test")[0][0] == "pass"


def test_smtputf8_from_signed_and_verified(env):
    subject, raw = message("j\u00f6rg@d.test")
    token = "u-" + uuid.uuid4().hex
    raw = raw.replace("Subject: " + subject, "Subject: " + token)
    code, text = env.mta.send(SIGN_P, "j\u00f6rg@d.test", [RCPT], raw.encode())
    assert code == 250, text
    msg = deliver_wait(env, token)
    assert "d=d.test;" in re.sub(r"\s+", "", msg["DKIM-Signature"])
    assert dkim_results(msg, "postern.test")[0][0] == "pass"
    assert dkim_results(msg, "opendkim.test")[0][0] == "pass"


@pytest.mark.parametrize("frm", ["alice@b\u00fccher.test", "j\u00f6rg@B\u00dcCHER.test"])
def test_internationalised_from_signed_as_a_labels(env, frm):
    """A From domain in U-labels finds the SigningTable entry of its
    A-labels; d= is the A-label name (ASCII, RFC 6376), and both verifiers
    pass it."""
    subject, raw = message(frm)
    msg = deliver(env, SIGN_P, raw, subject)
    sig = re.sub(r"\s+", "", msg["DKIM-Signature"] or "")
    assert "d=xn--bcher-kva.test;" in sig and "s=sel;" in sig, msg["DKIM-Signature"]
    assert dkim_results(msg, "postern.test")[0][:3] == ("pass", "xn--bcher-kva.test", "sel")
    assert dkim_results(msg, "opendkim.test")[0][0] == "pass"


@pytest.mark.parametrize("frm", ["alice@\u2603.test", "alice@k\u00e4se.test"])
def test_internationalised_from_without_key_not_signed(env, frm):
    # U+2603 has no A-label; k\u00e4se.test has no key: neither is signed
    subject, raw = message(frm)
    msg = deliver(env, SIGN_P, raw, subject)
    assert msg["DKIM-Signature"] is None
    assert env.procs[0].poll() is None


@POSTFIX_ONLY  # Postern has no sendmail(1) submission through non_smtpd_milters yet
def test_sendmail_submission_signed(env):
    """Mail from sendmail(1) goes through non_smtpd_milters: Postfix shows
    it as a client 127.0.0.1, an internal host."""
    subject, raw = message("alice@d.test")
    r = subprocess.run(["/usr/sbin/sendmail", "-C", env.mta.pf.etc, "-f", "alice@d.test", RCPT],
                       input=raw.replace("\r\n", "\n").encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    msg = deliver_wait(env, subject)
    assert "d=d.test;" in re.sub(r"\s+", "", msg["DKIM-Signature"])


def test_no_key_for_domain_not_signed(env):
    subject, raw = message("carol@elsewhere.test")
    msg = deliver(env, SIGN_P, raw, subject, sender="carol@elsewhere.test")
    assert msg["DKIM-Signature"] is None
    assert dkim_results(msg, "postern.test") == [("none", None, None, None)]


def test_external_client_not_signed(env):
    subject, raw = message("alice@d.test")
    msg = deliver(env, SIGN_P, raw, subject, xclient="192.0.2.10")
    assert msg["DKIM-Signature"] is None


def test_two_from_fields_not_signed(env):
    subject, raw = message("alice@d.test", extra="From: mallory@d.test\r\n")
    msg = deliver(env, SIGN_P, raw, subject)
    assert msg["DKIM-Signature"] is None


# -- SIGHUP: the signing keys are read again ------------------------------------

def reload_log(env):
    with open(os.path.join(env.w, "pdr.log")) as f:
        return f.read()


def sighup_and_wait(env, line):
    """SIGHUP to RELOAD's postern-dkim; wait for one more log line with line."""
    before = reload_log(env).count(line)
    env.reload_proc.send_signal(signal.SIGHUP)
    wait_for(lambda: reload_log(env).count(line) > before, timeout=10, what=line)
    assert env.reload_proc.poll() is None  # still running: SIGHUP is not a stop


def signed_by(env, sender):
    """(d=, s=, postern.test result, opendkim.test result) of a message
    from sender through RELOAD, or None when it was not signed."""
    subject, raw = message(sender)
    msg = deliver(env, RELOAD, raw, subject)
    if msg["DKIM-Signature"] is None:
        return None
    sig = re.sub(r"\s+", "", msg["DKIM-Signature"])
    tags = dict(t.split("=", 1) for t in sig.split(";") if "=" in t)
    return (tags["d"], tags["s"], dkim_results(msg, "postern.test")[0][0],
            dkim_results(msg, "opendkim.test")[0][0])


def test_sighup_rereads_keys(env):
    assert signed_by(env, "x@r1.test") == ("r1.test", "a", "pass", "pass")
    assert signed_by(env, "y@r2.test") is None
    # new tables: r1.test moves to key b (Ed25519), r2.test gets key a
    write_reload_tables(env, "b._domainkey.r1.test r1.test:b:%s\n"
                        "a._domainkey.r2.test r2.test:a:%s\n" % (
                            os.path.join(env.rdir, "b.pem"), os.path.join(env.rdir, "a.pem")),
                        "*@r1.test b._domainkey.r1.test\n*@r2.test a._domainkey.r2.test\n")
    sighup_and_wait(env, "SIGHUP: signing keys reloaded: 2 keys, 2 signing rules")
    assert signed_by(env, "x@r1.test") == ("r1.test", "b", "pass", "pass")
    assert signed_by(env, "y@r2.test") == ("r2.test", "a", "pass", "pass")
    # a broken table: nothing of it is used, the keys in use stay
    write_reload_tables(env, "b._domainkey.r1.test r1.test:b:%s\n"
                        % os.path.join(env.rdir, "gone.pem"), "*@r1.test b._domainkey.r1.test\n")
    sighup_and_wait(env, "SIGHUP: keys not reloaded, the old ones stay in use: key ")
    assert signed_by(env, "y@r2.test") == ("r2.test", "a", "pass", "pass")
    # a key postern cannot read (root's, 0600) is refused the same way
    write_reload_tables(env, "a._domainkey.r1.test r1.test:a:%s\n"
                        % os.path.join(env.keys, "sel.pem"), "*@r1.test a._domainkey.r1.test\n")
    sighup_and_wait(env, "Permission denied")
    assert signed_by(env, "x@r1.test") == ("r1.test", "b", "pass", "pass")


def test_sighup_stops_filters_without_reload():
    """postern-spf has nothing to reload: SIGHUP stops it, as libmilter does
    (no MTA involved: runs once)."""
    fe = FilterEnv("filter-hup-")
    try:
        fe.start_filter("postern-spf", "spf", "Nameservers 127.0.0.1\n")
        p = fe.procs[0]
        p.send_signal(signal.SIGHUP)
        assert p.wait(timeout=20) == 0
    finally:
        fe.close()


# -- verifying: real opendkim signs, postern-dkim verifies ----------------------

def test_opendkim_signs_postern_verifies(env):
    subject, raw = message("olga@o.test")
    msg = deliver(env, SIGN_O, raw, subject, sender="olga@o.test")
    assert "d=o.test" in re.sub(r"\s+", "", msg["DKIM-Signature"])
    res = dkim_results(msg, "postern.test")
    assert len(res) == 1 and res[0][:3] == ("pass", "o.test", "odk")
    b = re.sub(r"\s+", "", msg["DKIM-Signature"]).split("b=")[-1]
    assert b.startswith(res[0][3]) and len(res[0][3]) >= 8
    assert dkim_results(msg, "opendkim.test")[0][0] == "pass"


def signed_by_postern(env, sender="alice@d.test", body="Hello.\r\n"):
    """A message signed by postern-dkim, as raw text, via the signing
    listener (delivered, then taken out of the Maildir), with a new unsigned
    X-Test-Id to find the re-sent copy by."""
    subject, raw = message(sender, body=body)
    msg = deliver(env, SIGN_P, raw, subject, sender=sender)
    token = "r-" + uuid.uuid4().hex
    out = "X-Test-Id: %s\r\nDKIM-Signature: %s\r\n" % (
        token, msg["DKIM-Signature"].replace("\r\n", "\n").replace("\n", "\r\n"))
    return token, out + raw


def test_tampered_body_fails(env):
    subject, raw = signed_by_postern(env, body="Pay 10 EUR.\r\n")
    raw = raw.replace("Pay 10 EUR.", "Pay 99 EUR.")
    msg = deliver(env, VERIFY, raw, subject, xclient="192.0.2.10")
    assert [r[0] for r in dkim_results(msg, "postern.test")] == ["fail"]
    assert [r[0] for r in dkim_results(msg, "opendkim.test")] == ["fail"]


def test_tampered_header_fails(env):
    subject, raw = signed_by_postern(env)
    raw = raw.replace("To: <a@r.test>", "To: <a@r.test>, <x@r.test>")
    msg = deliver(env, VERIFY, raw, subject, xclient="192.0.2.10")
    assert [r[0] for r in dkim_results(msg, "postern.test")] == ["fail"]


def test_two_signatures_each_reported(env):
    subject, raw = signed_by_postern(env)
    # a second, broken signature (unknown selector) before the good one
    bogus = ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=d.test; s=missing;"
             " h=from:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"
             " b=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n")
    msg = deliver(env, VERIFY, bogus + raw, subject, xclient="192.0.2.10")
    res = sorted(dkim_results(msg, "postern.test"))
    assert [(r[0], r[2]) for r in res] == [("pass", "sel"), ("permerror", "missing")]


def test_unsigned_is_none(env):
    subject, raw = message("zed@z.test")
    msg = deliver(env, VERIFY, raw, subject, sender="zed@z.test", xclient="192.0.2.10")
    assert dkim_results(msg, "postern.test") == [("none", None, None, None)]


def test_bad_key_record_permerror(env):
    subject, raw = message("alice@d.test")
    sig = ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=d.test; s=junk;"
           " h=from:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"
           " b=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n")
    msg = deliver(env, VERIFY, sig + raw, subject, xclient="192.0.2.10")
    assert [r[0] for r in dkim_results(msg, "postern.test")] == ["permerror"]


@pytest.mark.parametrize("sig", [
    "v=1; a=rsa-sha256",                              # no d=, s=, b=, bh=
    "garbage without tags",
    "v=1; a=rsa-sha256; d=; s=; h=; bh=; b=",
    "v=1; a=rsa-sha1024; d=d.test; s=sel; h=from; bh=AAAA; b=AAAA",
    "v=1; a=rsa-sha256; d=d.test; s=sel; h=from; bh=AAAA; b=AAAA; l=99999999999999999999",
    "v=1; a=rsa-sha256; d=\"evil\\\"; s=x\"; s=sel; h=from; bh=AAAA; b=AAAA",
    "v=1; a=rsa-sha256; d=d.test; s=" + "x" * 3000 + "; h=from; bh=AAAA; b=AAAA",
    "v=1; a=rsa-sha256; d=d.test; s=sel; h=" + ":".join(["from"] * 2000) + "; bh=AAAA; b=AAAA",
    "v=1; a=ed25519-sha256; d=\xe4.test; s=sel; h=from; bh=AAAA; b=AAAA",
])
def test_malformed_signatures_never_crash(env, sig):
    subject, raw = message("alice@d.test")
    msg = deliver(env, ONLY_P, "DKIM-Signature: " + sig + "\r\n" + raw, subject,
                  xclient="192.0.2.10")
    res = dkim_results(msg, "postern.test")
    assert res and all(r[0] in ("permerror", "fail", "neutral", "policy") for r in res), res
    # every value we echo is a token or a quoted string: one A-R field parses
    for v in ar_values(msg, "postern.test"):
        assert "\n" not in v and v.count("dkim=") == len(res)
    assert env.procs[1].poll() is None  # still running


def test_many_headers_and_huge_header(env):
    subject, raw = signed_by_postern(env)
    many = "".join("X-Filler-%d: %s\r\n" % (i, "y" * 50) for i in range(3000))
    msg = deliver(env, ONLY_P, raw.replace("\r\nSubject:", "\r\n" + many + "Subject:", 1), subject,
                  xclient="192.0.2.10")
    # 3000+ fields pass MaximumHeaders (1000): not processed, said so
    assert [r[0] for r in dkim_results(msg, "postern.test")] == ["permerror"]
    assert "header too large" in msg["Authentication-Results"]
    subject, raw = signed_by_postern(env)
    big = "X-Big: " + "\r\n\t".join(["z" * 70] * 700) + "\r\n"  # 50 KB, under the 64 KB milter packet
    msg = deliver(env, ONLY_P, raw.replace("\r\nSubject:", "\r\n" + big + "Subject:", 1), subject,
                  xclient="192.0.2.10")
    assert [r[0] for r in dkim_results(msg, "postern.test")] == ["pass"], msg["Authentication-Results"]


def test_forged_authentication_results_removed(env):
    subject, raw = message("zed@z.test")
    forged = ("Authentication-Results: postern.test; dkim=pass header.d=bank.test\r\n"
              "Authentication-Results: other.test; dkim=pass header.d=bank.test\r\n")
    msg = deliver(env, VERIFY, forged + raw, subject, sender="zed@z.test", xclient="192.0.2.10")
    ours = ar_values(msg, "postern.test")
    assert len(ours) == 1 and "bank.test" not in ours[0]
    assert len(ar_values(msg, "other.test")) == 1


def test_dns_timeout_tempfail(env):
    subject, raw = signed_by_postern(env)
    code, text = env.mta.send(TEMP, "alice@d.test", [RCPT], raw, client="192.0.2.10")
    assert code == 451 and "4.7.5" in text, (code, text)


def test_dns_timeout_temperror_header(env):
    token, raw = signed_by_postern(env)
    msg = deliver(env, TEMP_ACCEPT, raw, token, xclient="192.0.2.10")
    res = dkim_results(msg, "postern.test")
    assert [r[:3] for r in res] == [("temperror", "d.test", "sel")], res


def test_opendkim_testmode_verifies_postern_signature(env, tmp_path):
    """opendkim -t (no milter, its own resolver) also accepts our signature."""
    subject, raw = signed_by_postern(env)
    eml = write(str(tmp_path / "m.eml"), raw)
    conf = write(str(tmp_path / "odt.conf"),
                 "Mode v\nSyslog no\nNameservers %s\nResolverConfiguration %s\n" % (
                     env.dns.spec, env.unbound_conf))
    r = subprocess.run(["/usr/sbin/opendkim", "-x", conf, "-t", eml], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "verification (s=sel, d=d.test, 2048-bit key) succeeded" in r.stdout, r


# -- miltertest (opendkim-tools' Lua-driven milter client) ----------------------

@pytest.mark.parametrize("script", ["dkim_sign.lua", "dkim_hostile.lua"])
def test_miltertest(env, script):
    run_miltertest(script, env.sv_p)
    assert env.procs[-1].poll() is None


# RFC 8463 Appendix A.3: the RFC 6376 example message signed with Ed25519
# and with RSA (a 1024-bit test key), verbatim from the RFC.
RFC8463_MESSAGE = """\
DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=brisbane; t=1528637909; h=from : to :
 subject : date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus
 Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;
 d=football.example.com; i=@football.example.com;
 q=dns/txt; s=test; t=1528637909; h=from : to : subject :
 date : message-id : from : subject : date;
 bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;
 b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3
 DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz
 dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=
From: Joe SixPack <joe@football.example.com>
To: Suzie Q <suzie@shopping.example.net>
Subject: Is dinner ready?
Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)
Message-ID: <20030712040037.46341.5F8J@football.example.com>

Hi.

We lost the game.  Are you hungry yet?

Joe.
""".replace("\n", "\r\n")


def test_rfc8463_example(env):
    token = "rfc-" + uuid.uuid4().hex
    msg = deliver(env, ONLY_P, "X-Test-Id: %s\r\n" % token + RFC8463_MESSAGE, token,
                  sender="joe@football.example.com", xclient="192.0.2.10")
    res = sorted(r[:3] for r in dkim_results(msg, "postern.test"))
    assert res == [("pass", "football.example.com", "brisbane"),
                   ("pass", "football.example.com", "test")], msg["Authentication-Results"]
    # and a byte changed in the body fails both
    token = "rfc-" + uuid.uuid4().hex
    bad = RFC8463_MESSAGE.replace("hungry", "thirsty")
    msg = deliver(env, ONLY_P, "X-Test-Id: %s\r\n" % token + bad, token,
                  sender="joe@football.example.com", xclient="192.0.2.10")
    assert [r[0] for r in dkim_results(msg, "postern.test")] == ["fail", "fail"]


def test_opendkim_testmsg_verifies_postern_signature(env, tmp_path):
    """opendkim-testmsg resolves through libc (port 53 only): it runs in a
    network namespace whose 127.0.0.1:53 is a dnsmasq with the same
    records (shared/reference/peers.md)."""
    ns = "pdkim%d" % os.getpid()
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        pytest.fail("no network namespaces here")
    etc = "/etc/netns/" + ns
    dns = None
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        os.makedirs(etc)
        write(os.path.join(etc, "resolv.conf"), "nameserver 127.0.0.1\n")
        records = os.path.join(env.dns.w, "dnsmasq-records.conf")
        dns = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/sbin/dnsmasq", "--no-daemon",
                                "--conf-file=" + records, "--port=53",
                                "--listen-address=127.0.0.1", "--bind-interfaces",
                                "--no-resolv", "--no-hosts", "--pid-file=", "--user=root",
                                "--local=/test/"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        token, raw = signed_by_postern(env)
        good = raw.encode()

        def verify(data):
            return subprocess.run(["ip", "netns", "exec", ns, "opendkim-testmsg"], input=data,
                                  capture_output=True, timeout=20)
        # the first success also shows dnsmasq is answering inside ns
        r = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(verify(good)),
                     timeout=15, what="opendkim-testmsg to verify")
        assert r.stdout == b"" and r.stderr == b""
        bad = verify(good.replace(b"Hello.", b"Hullo."))
        assert bad.returncode != 0 and b"signature" in bad.stderr.lower() + bad.stdout.lower()
    finally:
        if dns is not None:
            stop(dns, sig=9)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)
        try:
            os.rmdir("/etc/netns")  # only when no other namespace uses it
        except OSError:
            pass
