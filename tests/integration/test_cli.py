"""The postern command: conf (postconf), map (postmap), check, queue verbs."""
import json
import os
import re
import smtplib
import subprocess

from tests.pylib import util


def test_conf_prints_effective_nondefault_and_default(postern_factory):
    inst = postern_factory(main_cf={"message_size_limit": "2048000"})
    out = inst.cli("conf", "message_size_limit", "myhostname").stdout.decode()
    assert out == "message_size_limit = 2048000\nmyhostname = postern.test\n"
    nondef = inst.cli("conf", "-n").stdout.decode()
    assert "message_size_limit = 2048000\n" in nondef
    assert "smtpd_timeout" not in nondef
    d = inst.cli("conf", "-d", "message_size_limit", "smtpd_recipient_limit").stdout.decode()
    assert d == "message_size_limit = 10240000\nsmtpd_recipient_limit = 1000\n"
    everything = inst.cli("conf").stdout.decode()
    names = [line.split(" = ")[0] for line in everything.splitlines()]
    assert names == sorted(names) and len(names) > 100
    r = inst.cli("conf", "no_such_parameter")
    assert r.returncode != 0 and b"no_such_parameter" in r.stderr


def test_map_compile_and_query(postern_factory):
    inst = postern_factory()
    src = os.path.join(inst.conf, "vmailbox")
    with open(src, "w") as f:
        f.write("# comment\nAlice@Example.Test  alice/Maildir/\nbob@example.test\tbob/\n")
    r = inst.cli("map", "lmdb:" + src)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(src + ".lmdb")
    r = inst.cli("map", "-q", "alice@example.test", "lmdb:" + src)
    assert (r.returncode, r.stdout) == (0, b"alice/Maildir/\n")
    r = inst.cli("map", "-q", "nobody@example.test", "lmdb:" + src)
    assert r.returncode == 1 and r.stdout == b""
    r = inst.cli("map", "-q", "k", "inline:{ k=v }")
    assert r.stdout == b"v\n"


def test_check_names_file_and_line(postern_factory):
    inst = postern_factory()
    with open(os.path.join(inst.conf, "main.cf"), "a") as f:
        f.write("smtpd_timeout = 3 fortnights\nsmtpd_recipient_limit = many\nno_such_thing = 1\n")
    r = inst.cli("check")
    assert r.returncode != 0
    err = r.stderr.decode()
    main = os.path.join(inst.conf, "main.cf")
    lines = open(main).read().splitlines()
    n1 = lines.index("smtpd_timeout = 3 fortnights") + 1
    n2 = lines.index("smtpd_recipient_limit = many") + 1
    assert "%s:%d:" % (main, n1) in err and "smtpd_timeout" in err
    assert "%s:%d:" % (main, n2) in err and "smtpd_recipient_limit" in err
    assert "no_such_thing" in err  # a warning, named too


def test_queue_listing_and_control(postern_factory):
    """Mail for a domain Postern cannot deliver yet (no outbound transport in
    this round) stays in the queue, where the verbs can act on it."""
    inst = postern_factory()
    inst.start()
    ids = []
    for i in range(2):
        with smtplib.SMTP("127.0.0.1", inst.port) as s:
            s.ehlo("c.test")
            s.mail("sender@remote.test")
            s.rcpt("someone@elsewhere.test")  # relayed: 127.0.0.1 is in mynetworks
            code, text = s.data(b"Subject: q\r\n\r\nbody\r\n")
            assert code == 250
            ids.append(re.search(rb"queued as ([0-9A-F]+)", text).group(1).decode())
    util.wait_for(lambda: inst.log_text().count("status=deferred") >= 2, 30, "deferred")
    listing = inst.cli("queue").stdout.decode()
    for qid in ids:
        assert qid in listing
    assert "sender@remote.test" in listing and "someone@elsewhere.test" in listing
    assert re.search(r"-- \d+ Kbytes in 2 Requests\.", listing), listing
    # one JSON object per message and line, as postqueue -j prints
    js = [json.loads(line) for line in inst.cli("queue", "--json").stdout.splitlines() if line.strip()]
    assert sorted(m["queue_id"] for m in js) == sorted(ids)
    shown = inst.cli("show", ids[0]).stdout.decode()
    assert "sender@remote.test" in shown and "Subject: q" in shown
    assert inst.cli("hold", ids[0]).returncode == 0
    util.wait_for(lambda: re.search(re.escape(ids[0]) + r"!", inst.cli("queue").stdout.decode()),
                  10, "held marker")
    assert inst.cli("release", ids[0]).returncode == 0
    assert inst.cli("delete", ids[1]).returncode == 0
    util.wait_for(lambda: ids[1] not in inst.cli("queue").stdout.decode(), 10, "deleted")
    assert inst.cli("delete", "ALL").returncode == 0
    util.wait_for(lambda: b"Mail queue is empty" in inst.cli("queue").stdout, 10, "empty")
    assert inst.cli("show", "NOSUCHID0000").returncode != 0


def test_shipped_examples_pass_check():
    """Every configuration under examples/ is one `postern check` accepts
    as it stands (files it names under /etc may be missing here: only
    those lookups may warn), and every parameter in it is known."""
    examples = os.path.join(util.SRC, "examples")
    dirs = sorted(d for d in os.listdir(examples)
                  if os.path.exists(os.path.join(examples, d, "main.cf")))
    assert {"demo", "local-only", "virtual", "milters"} <= set(dirs)
    for d in dirs:
        conf = os.path.join(examples, d)
        r = subprocess.run([os.path.join(util.BIN, "postern"), "-c", conf, "check"],
                           capture_output=True)
        err = r.stderr.decode()
        problems = [line for line in err.splitlines()
                    if not re.search(r"(No such file or directory|lookups will fail)", line)]
        assert problems == [], (d, err)
        assert "unknown parameter" not in err, (d, err)
        if d != "virtual":  # its tables live in /etc/postern
            assert r.returncode == 0, (d, err)
