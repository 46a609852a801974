#!/usr/bin/python3
"""Hostile peers for tests/crash/hostile-peers.sh, over qsd's real peer port.

  hostile_peer.py slowloris HOST PORT CONNS SECONDS
      CONNS TCP connections that each send one byte of a TLS ClientHello per
      second; prints how many qsd closed and how long the longest lived.
  hostile_peer.py unknown HOST PORT COUNT WORKDIR
      COUNT TLS 1.3 handshakes with Ed25519 keys no validator has (8 keys made
      in WORKDIR, used in turn); prints how many qsd refused.
  hostile_peer.py noread HOST PORT NODE_DIR CHAIN EPOCH SECONDS RECORD [MAX [GO_FILE]]
      a valid peer (the validator of NODE_DIR, a mkcluster node directory):
      TLS, Hello, then BatchRequests for the digests of RECORD (a qsbench
      record file), over and over for SECONDS (at most MAX of them, then it
      stays silent until SECONDS, or until GO_FILE exists if given), and it
      never reads an answer before that; then it reads until the end of the
      stream to see whether qsd closed it. Prints how many it sent and
      whether qsd closed it.
  hostile_peer.py replay HOST PORT NODE_DIR CHAIN EPOCH SECONDS
      a valid peer that records the BatchMsg and ProofMsg frames qsd sends it
      for SECONDS / 2, then sends every one of them back, twice; prints the
      answers counted by kind.

One JSON object on stdout. Frames: 4-byte big-endian length, one
PeerMessage (docs/PROTOCOL.md); only the few fields needed are encoded here.
"""
import json
import os
import select
import socket
import ssl
import struct
import subprocess
import sys
import time


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def field_bytes(num, b):
    return varint((num << 3) | 2) + varint(len(b)) + b


def hello_frame(epoch, author, chain_id):
    hello = (field_varint(1, epoch) + field_bytes(2, author) + field_varint(3, 1) +
             field_varint(4, chain_id) + field_varint(5, int(time.time() * 1e6)))
    msg = field_bytes(1, hello)
    return struct.pack(">I", len(msg)) + msg


def make_cert(key, cert):
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-new", "-x509", "-key", key, "-subj", "/CN=qsd-test",
                        "-days", "2", "-out", cert], check=True, capture_output=True)


def tls_context(key, cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    return ctx


def recv_exact(s, n, at_boundary):
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except socket.timeout:
            if at_boundary and not buf:
                raise
            continue
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def read_frame(s):
    """One frame; socket.timeout only when none has begun."""
    (n,) = struct.unpack(">I", recv_exact(s, 4, True))
    return recv_exact(s, n, False)


def valid_peer(host, port, node_dir, chain_id, epoch, rcvbuf=None):
    key = os.path.join(node_dir, "keys", "network.key")
    cert = os.path.join(node_dir, "keys", "network.test.crt")
    make_cert(key, cert)
    with open(os.path.join(node_dir, "keys", "signing.pub")) as f:
        author = bytes.fromhex(f.read().strip())
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        # Before connect(), so that the window scale fits the buffer: shrunk
        # afterwards, the kernel drops the segments carrying qsd's ACKs once
        # the buffer is full, and this side can then send nothing either.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(10)
    raw.connect((host, port))
    s = tls_context(key, cert).wrap_socket(raw)
    s.sendall(hello_frame(epoch, author, chain_id))
    return s


def slowloris(host, port, conns, seconds):
    client_hello = bytes.fromhex("160301020001000200fc0303") + os.urandom(500)
    socks = []
    for _ in range(conns):
        s = socket.create_connection((host, port), timeout=5)
        s.setblocking(False)
        socks.append([s, time.monotonic(), None])
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        for entry in socks:
            s, opened, closed = entry
            if closed is not None:
                continue
            try:
                s.send(client_hello[i:i + 1])
                r, _, _ = select.select([s], [], [], 0)
                if r and not s.recv(4096):
                    entry[2] = time.monotonic() - opened
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                entry[2] = time.monotonic() - opened
        i += 1
        time.sleep(1)
    closed = [e[2] for e in socks if e[2] is not None]
    for e in socks:
        e[0].close()
    return {"connections": conns, "closed_by_qsd": len(closed),
            "longest_lived_s": round(max(closed), 1) if closed else None}


def unknown(host, port, count, workdir):
    os.makedirs(workdir, exist_ok=True)
    ctxs = []
    for k in range(8):
        key = os.path.join(workdir, "unknown%d.key" % k)
        cert = os.path.join(workdir, "unknown%d.crt" % k)
        if not os.path.exists(key):
            subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key],
                           check=True, capture_output=True)
        make_cert(key, cert)
        ctxs.append(tls_context(key, cert))
    refused = accepted = 0
    for i in range(count):
        try:
            raw = socket.create_connection((host, port), timeout=5)
            s = ctxs[i % len(ctxs)].wrap_socket(raw)
            s.sendall(hello_frame(1, os.urandom(32), 1))
            s.settimeout(5)
            data = s.recv(4)
            if data:
                accepted += 1
            else:
                refused += 1
            s.close()
        except (ssl.SSLError, OSError, EOFError):
            refused += 1
    return {"attempts": count, "refused": refused, "accepted": accepted}


def noread(host, port, node_dir, chain_id, epoch, seconds, record, most=None, go_file=None):
    with open(record) as f:
        digests = [bytes.fromhex(line.split()[0]) for line in f if line.strip()]
    if not digests:
        raise SystemExit("no digests in " + record)
    s = valid_peer(host, port, node_dir, chain_id, epoch, rcvbuf=4096)
    s.settimeout(1)
    sent = 0
    closed = False
    start = time.monotonic()
    while time.monotonic() - start < seconds and not closed and (most is None or sent < most):
        for d in digests:
            if most is not None and sent >= most:
                break
            req = field_varint(1, sent + 1) + field_bytes(2, d)
            msg = field_bytes(6, req)
            frame = struct.pack(">I", len(msg)) + msg
            # A write that timed out left its TLS record half sent: the same
            # bytes must be written again, or the stream is corrupt.
            while not closed and time.monotonic() - start < seconds:
                try:
                    s.sendall(frame)
                    sent += 1
                    break
                except socket.timeout:
                    continue
                except (ssl.SSLError, OSError):
                    closed = True
            if closed or time.monotonic() - start >= seconds:
                break
        time.sleep(0.05)
    while not closed and time.monotonic() - start < seconds:
        if go_file and os.path.exists(go_file):
            break
        time.sleep(0.2)  # silent, and still not reading
    if not closed:
        # Read only now: a connection qsd closed ends in EOF or a reset.
        # What qsd's kernel still held for us comes first. But a socket qsd
        # closed while our window was shut can be dropped by its kernel
        # without a FIN (an orphan whose zero-window probes ran out): then
        # only something sent brings the reset. So after a quiet second,
        # ask again; a connection still open answers it.
        deadline = time.monotonic() + 30
        s.settimeout(1)
        while not closed and time.monotonic() < deadline:
            try:
                if not s.recv(1 << 20):
                    closed = True
            except socket.timeout:
                req = field_varint(1, sent + 1) + field_bytes(2, digests[0])
                msg = field_bytes(6, req)
                try:
                    s.sendall(struct.pack(">I", len(msg)) + msg)
                except socket.timeout:
                    pass
                except (ssl.SSLError, OSError):
                    closed = True
            except (ssl.SSLError, OSError):
                closed = True
    return {"requests_sent": sent, "closed_by_qsd": closed}


def replay(host, port, node_dir, chain_id, epoch, seconds):
    s = valid_peer(host, port, node_dir, chain_id, epoch)
    s.settimeout(0.5)
    captured = {"batch_msg": [], "proof_msg": []}
    start = time.monotonic()
    while time.monotonic() - start < seconds / 2:
        try:
            frame = read_frame(s)
        except socket.timeout:
            continue
        tag = frame[0] >> 3 if frame else 0
        if tag == 2 and len(captured["batch_msg"]) < 200:
            captured["batch_msg"].append(frame)
        elif tag == 5 and len(captured["proof_msg"]) < 200:
            captured["proof_msg"].append(frame)
    answers = {}
    sent = 0
    frames = captured["batch_msg"] + captured["proof_msg"]
    for _ in range(2):
        for frame in frames:
            s.sendall(struct.pack(">I", len(frame)) + frame)
            sent += 1
    end = time.monotonic() + max(2.0, seconds / 2 - (time.monotonic() - start - seconds / 2))
    names = {3: "signed_batch_info", 4: "batch_nack", 2: "batch_msg", 5: "proof_msg"}
    closed = False
    while time.monotonic() < end:
        try:
            frame = read_frame(s)
        except socket.timeout:
            continue
        except (EOFError, OSError):
            closed = True
            break
        name = names.get(frame[0] >> 3 if frame else 0, "other")
        answers[name] = answers.get(name, 0) + 1
    s.close()
    return {"captured_batch_msgs": len(captured["batch_msg"]),
            "captured_proof_msgs": len(captured["proof_msg"]), "replayed_frames": sent,
            "answers": answers, "closed_by_qsd": closed}


def main():
    a = sys.argv[1:]
    if len(a) == 5 and a[0] == "slowloris":
        out = slowloris(a[1], int(a[2]), int(a[3]), float(a[4]))
    elif len(a) == 5 and a[0] == "unknown":
        out = unknown(a[1], int(a[2]), int(a[3]), a[4])
    elif len(a) in (8, 9, 10) and a[0] == "noread":
        out = noread(a[1], int(a[2]), a[3], int(a[4]), int(a[5]), float(a[6]), a[7],
                     int(a[8]) if len(a) >= 9 else None, a[9] if len(a) == 10 else None)
    elif len(a) == 7 and a[0] == "replay":
        out = replay(a[1], int(a[2]), a[3], int(a[4]), int(a[5]), float(a[6]))
    else:
        sys.stderr.write(__doc__)
        sys.exit(64)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
