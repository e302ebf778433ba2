"""Helpers shared by the interop tests of our milters (postern-spf,
postern-dkim, postern-dmarc) behind an MTA (tests/pylib/mta.py)."""
import os
import shutil
import subprocess
import tempfile

from .postfix import milter_ready
from .util import BIN, free_port, stop

MILTERTEST_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop",
                              "miltertest")


def write(path, text, mode=None):
    """Write text to path (chmod to mode when given); return path."""
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


class FilterEnv:
    """One test module's peers: a work directory, our filters (and other
    milters) as child processes, dnsmasq, a silent UDP port, the MTA.
    close() stops them all by pid and removes the directory."""

    def __init__(self, prefix):
        self.w = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.w, 0o755)
        self.procs, self.mta, self.dns, self.silent = [], None, None, None

    def start_filter(self, program, name, conf):
        """Start build/bin/<program> on a free loopback port with the
        settings every test gives (Socket, UserID postern, LogFile
        <w>/<name>.log) and conf; return the port once it negotiates."""
        port = free_port()
        path = write(os.path.join(self.w, name + ".conf"),
                     "Socket inet:%d@127.0.0.1\nUserID postern\nLogFile %s\n%s\n" % (
                         port, os.path.join(self.w, name + ".log"), conf), 0o644)
        return self.start_milter([os.path.join(BIN, program), "-c", path], port)

    def start_milter(self, argv, port):
        """Run a milter (argv) listening on 127.0.0.1:port; return port."""
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        milter_ready(port, p)
        return port

    def close(self):
        if self.mta is not None:
            self.mta.stop()
        for p in self.procs:
            stop(p, sig=9)  # libmilter daemons take seconds over SIGTERM
            if p.stderr:
                p.stderr.close()
        if self.dns is not None:
            self.dns.stop()
        if self.silent is not None:
            self.silent.close()
        shutil.rmtree(self.w, ignore_errors=True)


def run_miltertest(script, port):
    """Run tests/interop/miltertest/<script> against the milter on
    127.0.0.1:port and assert that it ends with "ok"."""
    r = subprocess.run(["miltertest", "-s", os.path.join(MILTERTEST_DIR, script)],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, MILTER_SOCKET="inet:%d@127.0.0.1" % port,
                                MILTERTEST_DIR=MILTERTEST_DIR))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


def check_config_cases(binary, name, tmp_path, cases):
    """`binary -V` names the program; `binary -t -c FILE` accepts each
    (text, ok) case exactly when ok (text is appended to a minimal config)."""
    r = subprocess.run([binary, "-V"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith(name + " ")
    for text, ok in cases:
        p = write(str(tmp_path / "c.conf"), "Socket inet:1@127.0.0.1\nUserID postern\n"
                  "Nameservers 127.0.0.1\n" + text)
        r = subprocess.run([binary, "-t", "-c", p], capture_output=True, text=True)
        assert (r.returncode == 0) == ok, (text, r.stderr)
