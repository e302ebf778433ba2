"""A Postern instance for tests: own config, queue and mailboxes in a temp dir.

    inst = Postern(main_cf={"message_size_limit": "100000"})
    inst.start()                 # postern start-fg; returns once smtpd greets
    inst.port                    # the smtpd port on 127.0.0.1
    inst.maildir_messages("alice")  # bytes of each message in alice's new/
    inst.log_text()              # the maillog_file so far
    inst.cli("queue")            # run the postern command on this config
    inst.stop()                  # SIGTERM, wait for exit
    inst.cleanup()

Started by root (CI), the daemon runs as the ordinary user `posterntest`
(issue: "started as a normal user, everything runs as that user"), in a
directory that user owns; as any other user it runs as that user. Pass
as_root=True to start master as root (children then run as mail_owner
`postern`).

Default main.cf: host postern.test; virtual mailbox domain example.test with
users alice, bob and carol delivered to Maildir under <dir>/mail; local
domain localhost; mynetworks 127.0.0.1/32 only, so a client bound to
127.0.0.2 is an outsider for relay tests.
"""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile

from . import runas, util

TEST_USER = runas.TEST_USER


class Postern:
    def __init__(self, main_cf=None, master_cf=None, port=None, as_root=False, users=("alice", "bob", "carol")):
        self.dir = tempfile.mkdtemp(prefix="postern-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "queue")
        self.mail = os.path.join(self.dir, "mail")
        self.log = os.path.join(self.dir, "maillog")
        self.port = port or util.free_port()
        self.as_root = as_root
        self.proc = None
        self.run_as = None
        if os.geteuid() == 0 and not as_root:
            self.run_as = TEST_USER
        os.makedirs(self.conf)
        os.makedirs(self.mail)
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            for d in (self.dir, self.mail, self.conf):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        vmaps = ", ".join("%s@example.test=%s/Maildir/" % (u, u) for u in users)
        self.main_cf = {
            "myhostname": "postern.test",
            "mydomain": "postern.test",
            "mydestination": "localhost",
            "queue_directory": self.queue,
            "maillog_file": self.log,
            "mynetworks": "127.0.0.1/32",
            "virtual_mailbox_domains": "example.test",
            "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": "inline:{ %s }" % vmaps,
            "alias_maps": "",
            "local_recipient_maps": "",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        }
        if as_root:
            self.main_cf["virtual_uid_maps"] = "static:%d" % pwd.getpwnam(TEST_USER).pw_uid
            self.main_cf["virtual_gid_maps"] = "static:%d" % pwd.getpwnam(TEST_USER).pw_gid
            os.chown(self.mail, pwd.getpwnam(TEST_USER).pw_uid, pwd.getpwnam(TEST_USER).pw_gid)
        self.main_cf.update(main_cf or {})
        self.master_cf = master_cf or "127.0.0.1:%d inet n - n - - smtpd\n" % self.port
        self.write_config()

    def write_config(self):
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            for k, v in self.main_cf.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(self.master_cf)

    def _preexec(self):
        return runas.as_user if self.run_as else None

    def env(self):
        e = dict(os.environ)
        if self.run_as:
            e["HOME"] = self.dir
        return e

    def start(self, wait=True):
        self.proc = subprocess.Popen(
            [os.path.join(runas.reachable_bin(util.BIN), "postern"), "-c", self.conf, "start-fg"],
            preexec_fn=self._preexec(), env=self.env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if wait:
            util.wait_for_greeting(self.port, proc=self.proc)
        return self

    def stop(self, timeout=20):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_all()
                self.proc.wait()
        out = self.proc.stdout.read() if self.proc.stdout else b""
        rc = self.proc.returncode
        self.proc = None
        return rc, out

    def pids(self, name):
        """PIDs of processes named name (e.g. 'postern-smtpd') that belong
        to this instance (their command line names this config dir)."""
        return [pid for pid, argv in util.processes()
                if argv and os.path.basename(argv[0]).decode(errors="replace") == name
                and self.conf.encode() in argv]

    def kill_all(self):
        for name in ("postern-smtpd", "postern-submit", "postern-queue", "postern"):
            for pid in self.pids(name):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def cli(self, *args, check=False, input=None):
        """Run `postern -c CONF args...` as the instance's user."""
        return subprocess.run([os.path.join(runas.reachable_bin(util.BIN), "postern"), "-c", self.conf]
                              + list(args),
                              preexec_fn=self._preexec(), env=self.env(), input=input,
                              capture_output=True, check=check)

    def log_text(self):
        try:
            with open(self.log, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def maildir(self, user):
        return os.path.join(self.mail, user, "Maildir")

    def maildir_messages(self, user):
        d = os.path.join(self.maildir(user), "new")
        out = []
        if os.path.isdir(d):
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), "rb") as f:
                    out.append(f.read())
        return out

    def wait_delivered(self, user, count, timeout=30):
        return util.wait_for(lambda: len(self.maildir_messages(user)) >= count and self.maildir_messages(user),
                             timeout, "%d message(s) for %s" % (count, user))

    def cleanup(self):
        if self.proc is not None:
            self.stop()
        self.kill_all()
        shutil.rmtree(self.dir, ignore_errors=True)
