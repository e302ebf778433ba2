"""Dovecot 2.3 as a test peer: its own instance on 127.0.0.1 ports.

    dv = Dovecot(workdir, users=[DovecotUser("bob", "pw", uid, gid, home,
                                             "maildir:/path/Maildir")])
    dv.start()               # waits for the IMAP "* OK" and POP3 "+OK" greetings
    dv.imap_port, dv.pop3_port, dv.lmtp_port (when lmtp=True)
    dv.doveadm("force-resync", "-u", "bob", "*")   # -> CompletedProcess
    dv.stop()                # SIGTERM by pid

Users come from a passwd-file (no /etc/passwd entries needed); every
runtime path (base_dir, state_dir, log) lies under workdir. Started as root
the instance uses Debian's dovecot/dovenull users; started as a normal user
it runs everything as that user (peers.md). The mail of each user must be
owned by that user's uid.
"""
import collections
import os
import shutil
import subprocess

from . import util

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
DOVECOT_LDA = "/usr/lib/dovecot/dovecot-lda"

DovecotUser = collections.namedtuple("DovecotUser", "name password uid gid home mail")


class Dovecot:
    def __init__(self, workdir, users, lmtp=False, extra_conf=""):
        self.dir = os.path.join(workdir, "dovecot")
        self.users = list(users)
        self.lmtp = lmtp
        self.extra_conf = extra_conf
        self.imap_port = util.free_port()
        self.pop3_port = util.free_port()
        self.lmtp_port = util.free_port() if lmtp else None
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.proc = None

    def _write_conf(self):
        os.makedirs(self.dir, exist_ok=True)
        run = os.path.join(self.dir, "run")
        shutil.rmtree(run, ignore_errors=True)   # a stale socket delays startup
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        passwd = os.path.join(self.dir, "passwd")
        with open(passwd, "w") as f:
            for u in self.users:
                f.write("%s:{PLAIN}%s:%d:%d::%s::userdb_mail=%s\n"
                        % (u.name, u.password, u.uid, u.gid, u.home, u.mail))
        os.chmod(passwd, 0o644)
        root = os.getuid() == 0
        me = None
        if not root:
            import pwd
            me = pwd.getpwuid(os.getuid()).pw_name
        protocols = "imap pop3" + (" lmtp" if self.lmtp else "")
        minuid = min([u.uid for u in self.users] + [500])
        conf = [
            "protocols = %s" % protocols,
            "listen = 127.0.0.1",
            "base_dir = %s" % run,
            "state_dir = %s" % os.path.join(self.dir, "state"),
            "log_path = %s" % self.log,
            "ssl = no",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            "first_valid_uid = %d" % minuid,
            "mail_uid =", "mail_gid =",
            "pop3_uidl_format = %08Xu%08Xv",
            "passdb {\n  driver = passwd-file\n  args = %s\n}" % passwd,
            "userdb {\n  driver = passwd-file\n  args = %s\n}" % passwd,
            "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }\n"
            "  inet_listener imaps {\n    port = 0\n  }\n%s}" % (self.imap_port, "" if root else "  chroot =\n"),
            "service pop3-login {\n  inet_listener pop3 {\n    address = 127.0.0.1\n    port = %d\n  }\n"
            "  inet_listener pop3s {\n    port = 0\n  }\n%s}" % (self.pop3_port, "" if root else "  chroot =\n"),
            "service auth {\n  unix_listener auth-userdb {\n    mode = 0666\n  }\n}",
        ]
        if not root:
            conf += ["default_internal_user = %s" % me, "default_internal_group = %s" % me,
                     "default_login_user = %s" % me, "service anvil {\n  chroot =\n}"]
        if self.lmtp:
            conf.append("service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n"
                        "    port = %d\n  }\n}" % self.lmtp_port)
        conf.append(self.extra_conf)
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        os.chmod(self.conf, 0o644)
        os.chmod(self.dir, 0o755)

    def start(self):
        self._write_conf()
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            util.wait_for_greeting(self.imap_port, b"* OK", proc=self.proc)
            util.wait_for_greeting(self.pop3_port, b"+OK", proc=self.proc)
            if self.lmtp:
                util.wait_for_greeting(self.lmtp_port, b"220", proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError("dovecot did not start: " + self.read_log())
        return self

    def doveadm(self, *args, **kw):
        return subprocess.run([DOVEADM, "-c", self.conf] + list(args), capture_output=True,
                              timeout=kw.get("timeout", 60))

    def lda_command(self, user, sender):
        """argv for dovecot-lda delivering to user through this instance."""
        return [DOVECOT_LDA, "-c", self.conf, "-d", user, "-f", sender]

    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        util.stop(self.proc)
        self.proc = None
