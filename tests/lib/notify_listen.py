"""A fake NOTIFY_SOCKET for the integration tests (what systemd listens on).

    /usr/bin/python3 tests/lib/notify_listen.py SOCKET OUT [PROBE...]

Binds the AF_UNIX datagram socket SOCKET and appends one line to OUT per
datagram received: "<monotonic ms> <its lines joined by '|'>", e.g.
"81234 READY=1|STATUS=epoch 1, peers 0/3, 0 batches, 0 proofs, storage ok".
When a datagram holds READY=1, every PROBE ("tcp:HOST:PORT" or "unix:PATH")
is connected to at once and a line "<ms> PROBE <probe> ok" or
"<ms> PROBE <probe> failed: <error>" follows: the sockets must accept
connections by the time READY=1 is sent. Runs until killed.
"""

import socket
import sys
import time


def now_ms():
    return int(time.monotonic() * 1000)


def probe(spec):
    kind, _, where = spec.partition(":")
    if kind == "tcp":
        host, _, port = where.rpartition(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host, int(port))
    elif kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = where
    else:
        return "failed: unknown probe kind " + kind
    s.settimeout(1.0)
    try:
        s.connect(target)
        return "ok"
    except OSError as e:
        return "failed: " + str(e)
    finally:
        s.close()


def main():
    if len(sys.argv) < 3:
        sys.stderr.write("usage: notify_listen.py SOCKET OUT [PROBE...]\n")
        return 64
    path, out, probes = sys.argv[1], sys.argv[2], sys.argv[3:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    with open(out, "a", buffering=1) as f:
        while True:
            data = sock.recv(65536)
            fields = [x for x in data.decode("utf-8", "replace").split("\n") if x]
            f.write("%d %s\n" % (now_ms(), "|".join(fields)))
            if "READY=1" in fields:
                for p in probes:
                    f.write("%d PROBE %s %s\n" % (now_ms(), p, probe(p)))


if __name__ == "__main__":
    sys.exit(main())
