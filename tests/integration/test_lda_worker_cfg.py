"""postern-lda --worker keeps the main.cf it read while the file stays the
same, and reads it again when it changes: a worker that lives through a
configuration change must follow it (here: where it logs)."""
import os
import subprocess
import tempfile

from tests.pylib import ipc, runas, util

REQ, DONE = 1, 2  # delivery/lda_worker.h


def request(sock, reqid, confdir, maildir, text):
    args = ["postern-lda", "-c", confdir, "-f", "s@remote.test", "-a", "u@example.test",
            "--maildir", maildir, "-e"]
    w = ipc.Writer()
    w.u32(len(args))
    for a in args:
        w.str(a)
    w.str("")
    fd = os.memfd_create("msg")
    os.write(fd, text.encode())
    os.lseek(fd, 0, 0)
    try:
        ipc.send(sock, REQ, reqid, w.bytes(), fd=fd)
    finally:
        os.close(fd)
    mtype, rid, r, _ = ipc.recv(sock, timeout=30)
    assert (mtype, rid) == (DONE, reqid)
    return r.i64(), r.str()


def test_worker_rereads_a_changed_main_cf():
    with tempfile.TemporaryDirectory(prefix="ldacfg-") as w:
        os.chmod(w, 0o755)
        conf = os.path.join(w, "conf")
        os.mkdir(conf)
        logs = [os.path.join(w, "one.log"), os.path.join(w, "two.log")]
        maildir = os.path.join(w, "Maildir")
        main_cf = os.path.join(conf, "main.cf")
        with open(main_cf, "w") as f:
            f.write("maillog_file = %s\n" % logs[0])
        if os.geteuid() == 0:
            import pwd
            pw = pwd.getpwnam(runas.TEST_USER)
            for p in (w, conf, main_cf):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        bin_dir = runas.reachable_bin(util.BIN)
        ours, theirs = ipc.seqpacket_pair()
        proc = subprocess.Popen([os.path.join(bin_dir, "postern-lda"), "--worker"],
                                stdin=theirs, preexec_fn=runas.demote())
        theirs.close()
        try:
            assert request(ours, 1, conf, maildir, "Subject: one\n\nbody\n") == (0, "")
            assert request(ours, 2, conf, maildir, "Subject: two\n\nbody\n") == (0, "")
            with open(logs[0]) as f:
                assert f.read().count("delivered to maildir") == 2
            # a changed main.cf (another name, so another size) applies to
            # the next delivery of the same worker
            with open(main_cf + ".new", "w") as f:
                f.write("maillog_file = %s\n" % logs[1])
            os.rename(main_cf + ".new", main_cf)
            assert request(ours, 3, conf, maildir, "Subject: three\n\nbody\n") == (0, "")
            with open(logs[1]) as f:
                assert f.read().count("delivered to maildir") == 1
            with open(logs[0]) as f:
                assert f.read().count("delivered to maildir") == 2
            assert len(os.listdir(os.path.join(maildir, "new"))) == 3
            # O_TMPFILE deliveries leave no name behind in tmp/
            assert os.listdir(os.path.join(maildir, "tmp")) == []
        finally:
            ours.close()
            proc.wait(timeout=30)
