"""The MTA the filter interop tests run our milters behind: a real Postfix
(tests/pylib/postfix.py) or Postern itself (tests/pylib/postern.py), one
interface for both, so each case is written once and parametrized over
MTAS.

    mta = make(kind, workdir, chains=[Chain("inet:127.0.0.1:P1, inet:..."),
                                      Chain(m2, forward_to=0)],
               mailboxes=["a@r.test"])
    mta.start()
    code, text = mta.send(i, sender, rcpts, raw, client="192.0.2.10", helo="x.test")
    msg = mta.delivered("a@r.test", token)   # parsed (email.message), waits
    mta.client_ip("192.0.2.10")   # the address the milters see for it
    mta.wait_held()               # a message was put on hold (quarantine)
    mta.log()                     # the MTA's maillog
    mta.stop()

Chain i is one SMTP listener whose smtpd_milters are the given list.
forward_to=j: a message accepted on i is passed through chain j as well,
as between two MTAs (a signing hop, then a verifying one). Postfix does it
itself (content_filter); Postern has no SMTP client yet, so the helper
takes the delivered copy (without the LDA's Return-Path and Delivered-To)
and sends it through chain j from 127.0.0.1, as Postfix's smtp client
would.

Clients. `client` is an outside address, IPv4 (None: 127.0.0.1, an
internal host in every filter's default InternalHosts). Postfix is told it
with XCLIENT. Postern has no XCLIENT: the test client binds a loopback
twin of the address instead, 127.B.C.D for A.B.C.D (127.0.2.10 for
192.0.2.10); records and InternalHosts that name an outside address name
its twin too (twin(), spf_ip4()), and a filter's InternalHosts must be
narrower than its default 127.0.0.0/8 (say "127.0.0.1, ::1"), or every
twin counts as internal. Cases needing XCLIENT's other powers (an
IPv6 client, an IPv4-mapped one, a HELO name the client cannot say) run
with Postfix only: mark them POSTFIX_ONLY with the reason.
"""
import email
import email.policy
import os
import re
import smtplib

import pytest

from .postfix import Listener, Postfix
from .postern import Postern
from .util import free_port, maildir_new, smtp_send, wait_for, wait_for_greeting  # noqa: F401 (smtp_send: API)

MTAS = ["postfix", "postern"]
# A case that needs something only Postfix has; say what in a comment.
POSTFIX_ONLY = pytest.mark.parametrize("env", ["postfix"], indirect=True)


def twin(addr):
    """The loopback address that stands for the IPv4 address (or
    address/prefix) addr when Postern is the MTA: 127.B.C.D."""
    ip, _, plen = addr.partition("/")
    parts = ip.split(".")
    assert len(parts) == 4, addr
    out = ".".join(["127"] + parts[1:])
    return out + ("/" + plen if plen else "")


def spf_ip4(net):
    """SPF terms authorising net and its loopback twin."""
    return "ip4:%s ip4:%s" % (net, twin(net))


class Chain:
    def __init__(self, milters, forward_to=None):
        self.milters = milters        # smtpd_milters, Postfix syntax
        self.forward_to = forward_to  # index of the next hop's chain


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def token_of(msg):
    return msg["X-Test-Id"], msg["Subject"]


class _Base:
    kind = None

    def delivered(self, rcpt, token, timeout=20):
        """The delivered message for rcpt whose X-Test-Id or Subject is
        token, parsed; waits for it. On timeout the error carries the
        MTA's log."""
        def find():
            for m in self.messages(rcpt):
                msg = parse(m)
                if token in token_of(msg):
                    return msg
            return None
        try:
            return wait_for(find, timeout=timeout, what="delivery of " + token)
        except TimeoutError:
            raise TimeoutError("%s: no delivery of %s:\n%s" % (self.kind, token,
                                                               self.log()[-3000:]))


class PostfixMTA(_Base):
    kind = "postfix"

    def __init__(self, workdir, chains, mailboxes, main=None):
        self.pf = Postfix(os.path.join(workdir, "postfix"), mailboxes=mailboxes, main=main,
                          listeners=[Listener(milters=c.milters, forward_to=c.forward_to,
                                              myhostname="chain%d.test" % i)
                                     for i, c in enumerate(chains)])

    def start(self):
        self.pf.start()
        return self

    def stop(self):
        self.pf.stop()

    def client_ip(self, client):
        return client or "127.0.0.1"

    def send(self, chain, sender, rcpts, raw, client=None, helo="client.test"):
        return smtp_send(self.pf.port(chain), sender, rcpts, raw, helo=helo,
                         xclient_addr=client)

    def messages(self, rcpt):
        return self.pf.messages(rcpt)

    def wait_held(self):
        hold = os.path.join(self.pf.queue, "hold")
        wait_for(lambda: os.path.isdir(hold) and os.listdir(hold), timeout=20,
                 what="a held message")
        assert "milter triggers HOLD action" in self.log()

    def log(self):
        return self.pf.log()


class PosternMTA(_Base):
    kind = "postern"

    def __init__(self, workdir, chains, mailboxes, main=None):
        self.chains = list(chains)
        self.inst = None
        self.mailboxes = list(mailboxes)
        self.main = dict(main or {})

    def start(self):
        domains = sorted({m.split("@", 1)[1] for m in self.mailboxes})
        boxes = ", ".join("%s=%s/Maildir/" % (m, self._box(m)) for m in self.mailboxes)
        main = {"virtual_mailbox_domains": " ".join(domains),
                "virtual_mailbox_maps": "inline:{ %s }" % boxes,
                "milter_default_action": "tempfail"}
        main.update(self.main)
        self.inst = Postern(main_cf=main)
        self.ports = []
        master = ""
        for c in self.chains:
            port = free_port()
            self.ports.append(port)
            master += "127.0.0.1:%d inet n - n - - smtpd\n" % port
            if c.milters:
                master += "  -o { smtpd_milters = %s }\n" % c.milters
        self.inst.port = self.ports[0]
        self.inst.master_cf = master
        self.inst.write_config()
        self.inst.start()
        for port in self.ports[1:]:
            wait_for_greeting(port, proc=self.inst.proc)
        return self

    def stop(self):
        if self.inst is not None:
            self.inst.cleanup()
            self.inst = None

    @staticmethod
    def _box(addr):
        return addr.replace("@", "_")

    def client_ip(self, client):
        return twin(client) if client else "127.0.0.1"

    def _new_dir(self, rcpt):
        return os.path.join(self.inst.mail, self._box(rcpt), "Maildir", "new")

    def messages(self, rcpt):
        return maildir_new(self._new_dir(rcpt))

    def send(self, chain, sender, rcpts, raw, client=None, helo="client.test"):
        if client is not None and ":" in client:
            raise AssertionError("Postern has no XCLIENT: no IPv6 client %s" % client)
        src = self.client_ip(client)
        nxt = self.chains[chain].forward_to
        if nxt is None:
            return smtp_send(self.ports[chain], sender, rcpts, raw, helo=helo, source_addr=src)
        # the first hop delivers; its copy goes on through the next chain
        before = {r: set(os.listdir(self._new_dir(r))) if os.path.isdir(self._new_dir(r))
                  else set() for r in rcpts}
        code, text = smtp_send(self.ports[chain], sender, rcpts, raw, helo=helo,
                               source_addr=src)
        if code != 250:
            return code, text
        for r in rcpts:
            d = self._new_dir(r)
            name = wait_for(lambda: sorted(set(os.listdir(d)) - before[r])
                            if os.path.isdir(d) else None,
                            timeout=20, what="first-hop delivery for " + r)[0]
            path = os.path.join(d, name)
            with open(path, "rb") as f:
                hop = f.read()
            os.unlink(path)
            # the LDA's Return-Path and Delivered-To are not part of what
            # the first MTA would have sent on
            hop = re.sub(rb"\A(?:(?:Return-Path|Delivered-To):[^\n]*\n)+", b"", hop)
            code, text = self.send(nxt, sender, [r], hop.replace(b"\n", b"\r\n"))
            if code != 250:
                return code, text
        return code, text

    def wait_held(self):
        def listed():
            out = self.inst.cli("queue").stdout.decode(errors="replace")
            return re.search(r"^[0-9A-Za-z]+!", out, re.M)
        qid = wait_for(listed, timeout=20, what="a held message in postern queue").group(0)[:-1]
        assert os.path.exists(os.path.join(self.inst.queue, "hold", qid)), qid
        assert "milter triggers HOLD action" in self.log()

    def log(self):
        return self.inst.log_text() if self.inst else ""


def make(kind, workdir, chains, mailboxes, main=None):
    """A PostfixMTA or PosternMTA (kind in MTAS), not started yet. main:
    extra main.cf parameters, given to both (use names both know)."""
    cls = {"postfix": PostfixMTA, "postern": PosternMTA}[kind]
    return cls(workdir, chains, mailboxes, main)
