"""A FAKE milter server that breaks the protocol on demand.

This is deliberately not a real milter: real milters (libmilter, pymilter,
opendkim...) do not hang, send zero-length or oversized packets, close in
the middle of a reply or answer with letters that are illegal at a stage
when asked to. To test how postern_milter's client handles such peers we
speak the wire protocol by hand here. Everything it does that is not the
injected fault is ordinary protocol: it negotiates version 6 with every
action and no protocol flags, and answers 'c' to every event.

Faults (FakeMilter(fault=..., at=LETTER)), where LETTER is the command
letter of the stage ('O' option negotiation, 'C', 'H', 'M', 'R', 'T', 'L',
'N', 'B', 'E'):
  hang        read the command, never answer
  close       close the connection instead of answering
  close_mid   send half a reply packet, then close
  zero        send a zero-length packet
  oversized   send a length of 2 GiB
  unknown     send reply letter 'Z'
  illegal     send a reply that is illegal at that stage (an addheader
              before end of message; at 'E' a header edit with a negative
              index; at 'O' a protocol version above the offered one)
  extra       answer twice (data the client did not ask for)
  progress    at the stage, send 'p' every 0.1 s for `progress_for`
              seconds, then 'c' (not a fault: progress extends the timeout)
  shutdown    answer '4' (a legal reply: 421 and disconnect)
  trickle     answer correctly, one byte at a time (not a fault either)
  badtext     answer 'y' with a malformed reply text ("250 ok")
Two faults concern QUIT_NC ('K', a session ends, the connection stays):
  k_close     close the connection when 'K' arrives (a filter that does not
              know 'K', as libmilter before 8.14)
  k_drop_next after a 'K', close the connection when the next command
              arrives (a filter that lost the session meanwhile)
  k_chatter   answer 'K' with an unasked 'c' and keep the connection (a
              filter out of step between sessions)
"""
import socket
import struct
import threading
import time


def packet(body):
    return struct.pack(">I", len(body)) + body


class FakeMilter:
    def __init__(self, fault=None, at=None, progress_for=0.6):
        self.fault = fault
        self.at = at
        self.progress_for = progress_for
        self.seen = []          # command letters received, all connections
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return "inet:127.0.0.1:%d" % self.port

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.thread.join(5)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_exact(c, n):
        data = b""
        while len(data) < n:
            chunk = c.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self, c):
        after_k = False
        try:
            while True:
                hdr = self._read_exact(c, 4)
                if hdr is None:
                    return
                (n,) = struct.unpack(">I", hdr)
                body = self._read_exact(c, n)
                if body is None:
                    return
                cmd = chr(body[0])
                self.seen.append(cmd)
                if cmd == "K" and self.fault == "k_close":
                    c.close()
                    return
                if after_k and self.fault == "k_drop_next":
                    c.close()
                    return
                after_k = cmd == "K"
                if cmd == "K" and self.fault == "k_chatter":
                    c.sendall(packet(b"c"))
                    continue
                if cmd in "DAK":
                    continue            # never answered
                if cmd == "Q":
                    c.close()
                    return
                if cmd == self.at and self.fault:
                    if self._fault(c, cmd) == "closed":
                        return
                    continue
                c.sendall(self._normal(cmd))
        except OSError:
            return

    @staticmethod
    def _normal(cmd):
        if cmd == "O":
            return packet(b"O" + struct.pack(">III", 6, 0x1FF, 0))
        return packet(b"c")

    def _fault(self, c, cmd):
        f = self.fault
        if f == "hang":
            while self._read_exact(c, 1) is not None:
                pass
            return "closed"
        if f == "close":
            c.close()
            return "closed"
        if f == "close_mid":
            c.sendall(struct.pack(">I", 20) + b"y550 5.7")
            c.close()
            return "closed"
        if f == "zero":
            c.sendall(b"\0\0\0\0")
        elif f == "oversized":
            c.sendall(struct.pack(">I", 0x7FFFFFFF) + b"c" * 100)
        elif f == "unknown":
            c.sendall(packet(b"Z"))
        elif f == "illegal":
            if cmd == "O":
                c.sendall(packet(b"O" + struct.pack(">III", 7, 0x1FF, 0)))
            elif cmd == "E":
                c.sendall(packet(b"m\xff\xff\xff\xffSubject\0x\0") + packet(b"c"))
            else:
                c.sendall(packet(b"hX-Early\0yes\0"))
        elif f == "extra":
            c.sendall(self._normal(cmd) + self._normal(cmd if cmd == "O" else "c"))
        elif f == "progress":
            end = time.monotonic() + self.progress_for
            while time.monotonic() < end:
                c.sendall(packet(b"p"))
                time.sleep(0.1)
            c.sendall(packet(b"c"))
        elif f == "shutdown":
            c.sendall(packet(b"4"))
        elif f == "badtext":
            c.sendall(packet(b"y250 ok\0"))
        elif f == "trickle":
            reply = self._normal(cmd)
            if cmd == "E":
                reply = packet(b"hX-Trickled\0yes\0") + packet(b"c")
            for i in range(len(reply)):
                c.sendall(reply[i:i + 1])
                time.sleep(0.01)
        return "open"
