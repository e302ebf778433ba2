"""pflogsumm (Debian's) reads Postern's maillog_file and reports what the
test did: messages received, delivered, recipients rejected."""
import re
import smtplib
import subprocess


def pflogsumm_counts(log_path):
    r = subprocess.run(["pflogsumm", "--syslog-name=postern", log_path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    counts = {}
    for key in ("received", "delivered", "deferred", "bounced", "rejected"):
        m = re.search(r"^\s*(\d+)\s+%s\b" % key, r.stdout, re.M)
        counts[key] = int(m.group(1)) if m else None
    return counts, r.stdout


def test_pflogsumm_counts(postern):
    for i in range(3):
        with smtplib.SMTP("127.0.0.1", postern.port) as s:
            s.sendmail("s%d@remote.test" % i, ["alice@example.test", "bob@example.test"],
                       b"Subject: p%d\r\n\r\nbody\r\n" % i)
    with smtplib.SMTP("127.0.0.1", postern.port) as s:
        s.ehlo("x.test")
        s.mail("s@remote.test")
        code, _ = s.rcpt("nobody@example.test")
        assert code == 550
        s.rset()
    postern.wait_delivered("alice", 3)
    postern.wait_delivered("bob", 3)
    from tests.pylib import util
    util.wait_for(lambda: postern.log_text().count("status=sent") >= 6, 30, "6 sent lines")
    counts, report = pflogsumm_counts(postern.log)
    assert counts["received"] == 3, report
    assert counts["delivered"] == 6, report
    assert counts["rejected"] == 1, report
    assert "example.test" in report
