"""The master process: start/stop/status, restarts, reload, privileges."""
import os
import pwd
import signal
import smtplib

from tests.pylib import util


def send(port, rcpt="alice@example.test", body=b"Subject: t\r\n\r\nbody\r\n"):
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.sendmail("s@remote.test", [rcpt], body)


def test_start_status_stop_daemon(postern_factory):
    inst = postern_factory()
    r = inst.cli("start")
    assert r.returncode == 0, r.stderr
    util.wait_for_greeting(inst.port)
    r = inst.cli("status")
    assert r.returncode == 0 and b"is running: PID:" in r.stderr
    r = inst.cli("start")
    assert r.returncode != 0 and b"already running" in r.stderr
    r = inst.cli("stop")
    assert r.returncode == 0, r.stderr
    r = inst.cli("status")
    assert r.returncode == 1 and b"not running" in r.stderr
    assert inst.pids("postern-smtpd") == [] and inst.pids("postern-queue") == []


def test_bad_config_refuses_to_start(postern_factory):
    inst = postern_factory(main_cf={"message_size_limit": "12x"})
    r = inst.cli("start")
    assert r.returncode != 0
    assert b"main.cf:" in r.stderr and b"message_size_limit" in r.stderr


def test_killed_children_are_restarted(postern):
    send(postern.port)
    postern.wait_delivered("alice", 1)
    for name in ("postern-smtpd", "postern-queue"):
        old = postern.pids(name)
        assert len(old) == 1, name
        os.kill(old[0], signal.SIGKILL)
        util.wait_for(lambda: postern.pids(name) and postern.pids(name) != old,
                      what="%s restarted" % name)
        # mail flows again through the new processes
        util.wait_for_greeting(postern.port)
    send(postern.port)
    postern.wait_delivered("alice", 2)
    assert "killed by signal 9" in postern.log_text()


def test_reload_keeps_sessions(postern):
    s = smtplib.SMTP("127.0.0.1", postern.port)
    s.ehlo("before.test")
    s.mail("s@remote.test")
    s.rcpt("alice@example.test")
    old = postern.pids("postern-smtpd")
    postern.main_cf["smtpd_banner"] = "$myhostname ESMTP reloaded"
    postern.write_config()
    assert postern.cli("reload").returncode == 0
    util.wait_for(lambda: set(postern.pids("postern-smtpd")) - set(old), what="new smtpd")
    # the session opened before the reload completes in the old process
    code, _ = s.data(b"Subject: across reload\r\n\r\nx\r\n")
    assert code == 250
    s.quit()
    postern.wait_delivered("alice", 1)
    # new sessions see the new configuration
    line = util.wait_for_greeting(postern.port)
    assert b"reloaded" in line
    util.wait_for(lambda: not (set(postern.pids("postern-smtpd")) & set(old)), what="old smtpd exit")


def test_sigterm_stops_everything(postern):
    rc, _ = postern.stop()
    assert rc == 0
    assert postern.pids("postern-smtpd") == [] and postern.pids("postern-queue") == []
    assert "terminating on signal 15" in postern.log_text()


def test_root_start_runs_children_as_mail_owner(postern_factory):
    if os.geteuid() != 0:
        import pytest
        pytest.fail("this test needs root (CI runs as root)")
    inst = postern_factory(as_root=True).start()
    owner = pwd.getpwnam("postern").pw_uid
    for name in ("postern-smtpd", "postern-queue"):
        for pid in inst.pids(name):
            assert os.stat("/proc/%d" % pid).st_uid == owner, name
    master = inst.pids("postern")
    assert master and os.stat("/proc/%d" % master[0]).st_uid == 0
    send(inst.port)
    m = inst.wait_delivered("alice", 1)
    new = os.path.join(inst.maildir("alice"), "new")
    f = os.path.join(new, os.listdir(new)[0])
    assert os.stat(f).st_uid == pwd.getpwnam("posterntest").pw_uid
    assert m[0].startswith(b"Return-Path:")
