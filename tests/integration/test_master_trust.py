"""Master treats the queue as less trusted: every malformed or forbidden
delivery request gets a refusal (status 75 and the reason), never a run, and
a message of a type the queue must not send gets the queue killed and
restarted. The queue here is a hostile fake (fakes/hostile_queue.py): the
real one never sends such requests."""
import os
import pwd
import shutil

import pytest

from tests.pylib import runas, util

HERE = os.path.dirname(os.path.abspath(__file__))


def test_master_refuses_hostile_delivery_requests(postern_factory):
    if os.geteuid() != 0:
        pytest.fail("needs root: master's uid checks apply when it runs as root (CI runs as root)")
    inst = postern_factory(as_root=True)
    daemon = os.path.join(inst.dir, "daemon")
    results = os.path.join(inst.dir, "results")
    os.makedirs(daemon)
    os.makedirs(results)
    owner = pwd.getpwnam("postern")
    os.chown(results, owner.pw_uid, owner.pw_gid)
    real = runas.reachable_bin(util.BIN)
    for name in ("postern-smtpd", "postern-lda"):
        os.symlink(os.path.join(real, name), os.path.join(daemon, name))
    shutil.copy(os.path.join(HERE, "fakes", "hostile_queue.py"), os.path.join(daemon, "postern-queue"))
    shutil.copy(os.path.join(HERE, "..", "pylib", "ipc.py"), os.path.join(daemon, "ipc.py"))
    os.chmod(os.path.join(daemon, "postern-queue"), 0o755)
    for d in (inst.dir, daemon):
        os.chmod(d, 0o755)
    inst.main_cf["daemon_directory"] = daemon
    inst.write_config()
    inst.start()

    pids_file = os.path.join(results, "pids.txt")
    util.wait_for(lambda: os.path.exists(pids_file) and len(open(pids_file).read().split()) >= 2,
                  30, "the hostile queue to be restarted")
    replies = open(os.path.join(results, "replies.txt")).read().splitlines()
    got = {line.split(" ", 1)[0]: line.split(" ", 2)[1:] for line in replies}
    want = {
        "truncated": "malformed delivery request",
        "argc-too-large": "malformed delivery request",
        "env-without-equals": "malformed delivery environment",
        "no-descriptor": "malformed delivery request",
        "unknown-kind": "unknown delivery kind",
        "pipe-without-command": "unknown delivery kind",
        "as-root": "refusing to deliver as root",
    }
    for case, reason in want.items():
        assert case in got, replies
        assert got[case] == ["75", reason], (case, got[case])
    log = inst.log_text()
    assert "queue: unexpected message type 999; restarting it" in log
    # nothing was delivered anywhere, and master is still in charge
    assert inst.pids("postern") and inst.proc.poll() is None
