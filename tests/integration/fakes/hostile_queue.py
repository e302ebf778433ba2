#!/usr/bin/python3
"""A hostile stand-in for postern-queue, used by test_master_trust.py.

It must be a fake: the real queue never sends these requests. Master execs
it as daemon_directory/postern-queue -c CONFDIR with fd 3 = its channel. It
sends one malformed or forbidden IPC_M_DELIVER per case and writes every
reply to <instance>/results/replies.txt as "case status text". Then it sends
a message type the queue never sends, which master must answer by killing
and restarting it (each copy records its pid; the restarted one waits).
The test copies this file and tests/pylib/ipc.py into one directory."""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ipc  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(sys.argv[2])), "results")


def deliver(kind=ipc.MD_LDA, uid=None, gid=None, args=("postern-lda", "--maildir", "/nonexistent/"),
            env=("PATH=/usr/bin:/bin",), argc=None, cut=None):
    w = ipc.Writer().u32(kind).u32(os.getuid() if uid is None else uid)
    w.u32(os.getgid() if gid is None else gid).str("/")
    w.u32(len(args) if argc is None else argc)
    for a in args:
        w.str(a)
    w.u32(len(env))
    for e in env:
        w.str(e)
    b = w.bytes()
    return b if cut is None else b[:cut]


def main():
    chan = socket.socket(fileno=3)
    with open(os.path.join(RESULTS, "pids.txt"), "a") as f:
        f.write("%d\n" % os.getpid())
    if os.path.exists(os.path.join(RESULTS, "done")):
        # the restarted copy: stay up quietly
        while ipc.recv(chan) is not None:
            pass
        return
    devnull = os.open("/dev/null", os.O_RDONLY)
    cases = [
        ("truncated", deliver(cut=6), devnull),
        ("argc-too-large", deliver(argc=100000), devnull),
        ("env-without-equals", deliver(env=("NOEQUALS",)), devnull),
        ("no-descriptor", deliver(), None),
        ("unknown-kind", deliver(kind=9), devnull),
        ("pipe-without-command", deliver(kind=ipc.MD_PIPE, args=("sh",)), devnull),
        ("as-root", deliver(uid=0, gid=0), devnull),
    ]
    replies = []
    for reqid, (name, payload, fd) in enumerate(cases, 1):
        ipc.send(chan, ipc.M_DELIVER, reqid, payload, fd=fd)
        while True:
            m = ipc.recv(chan, timeout=30)
            if m is None:
                return
            mtype, rid, r, _fd = m
            if mtype == ipc.M_DELIVERED and rid == reqid:
                replies.append("%s %d %s" % (name, r.i64(), r.str()))
                break
    with open(os.path.join(RESULTS, "replies.txt"), "w") as f:
        f.write("\n".join(replies) + "\n")
    open(os.path.join(RESULTS, "done"), "w").close()
    # a type the queue never sends: master must close this channel and
    # restart the queue
    chan.send(struct.pack("=IHHI", 12, 999, 0, 1))
    while ipc.recv(chan) is not None:
        pass


main()
