"""Running the built programs as the ordinary test user.

Tests run as root in CI, but postern-lda refuses root and the daemon runs as
a normal user in most tests: they run as `posterntest`. That user must be
able to reach the binaries; when the build tree lies below a directory only
root may enter (a checkout under /root), reachable_bin() hands out a
world-readable copy of build/bin instead, made once per test process.
"""
import atexit
import os
import pwd
import shutil
import subprocess
import tempfile

TEST_USER = "posterntest"
ROOT = os.geteuid() == 0
USER = pwd.getpwnam(TEST_USER) if ROOT else pwd.getpwuid(os.getuid())

_copies = {}


def as_user():
    """preexec_fn that turns a child into the test user (no-op unless root)."""
    if ROOT:
        os.setgroups([])
        os.setgid(USER.pw_gid)
        os.setuid(USER.pw_uid)


def demote():
    """as_user when running as root, else None (for subprocess preexec_fn)."""
    return as_user if ROOT else None


def reachable_bin(bin_dir):
    """bin_dir if the test user can run programs there, else a copy."""
    bin_dir = os.path.abspath(bin_dir)
    if not ROOT:
        return bin_dir
    if bin_dir in _copies:
        return _copies[bin_dir]
    probe = subprocess.run(["/bin/sh", "-c", 'test -x "$1"', "sh", os.path.join(bin_dir, "postern-lda")],
                           preexec_fn=as_user)
    if probe.returncode == 0:
        _copies[bin_dir] = bin_dir
        return bin_dir
    top = tempfile.mkdtemp(prefix="postern-bin-")
    os.chmod(top, 0o755)
    atexit.register(shutil.rmtree, top, True)
    dst = os.path.join(top, "bin")
    shutil.copytree(bin_dir, dst)
    for name in os.listdir(dst):
        os.chmod(os.path.join(dst, name), 0o755)
    os.chmod(dst, 0o755)
    _copies[bin_dir] = dst
    return dst
