#!/usr/bin/env python3
"""The server's memory with many idle clients.

Starts the release `ferry serve` on loopback, opens N connections (default
1000) that each complete the native hello and then sit idle, and prints the
server's resident memory before and with them, beside `ncat --broker`
holding the same number of idle connections. Target: ferry under 50 MB.

    bench/idle.py [N]
"""
import json
import os
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERRY = os.path.join(ROOT, "target", "release", "ferry")

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, N + 512)), hard))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def hello_frame():
    header = json.dumps({"op": "hello", "versions": [1]}).encode()
    return b"\xf0FRY" + bytes([1, 1]) + struct.pack(">IQ", len(header), 0) + header


def open_idle(port, native):
    conns = []
    for _ in range(N):
        s = socket.create_connection(("127.0.0.1", port))
        if native:
            s.sendall(hello_frame())
            prefix = b""
            while len(prefix) < 18:
                prefix += s.recv(18 - len(prefix))
            assert prefix[5] == 3, "hello refused"
            hl = struct.unpack(">I", prefix[6:10])[0]
            got = 0
            while got < hl:
                got += len(s.recv(hl - got))
        conns.append(s)
    return conns


def measure(name, argv, native):
    port = free_port()
    proc = subprocess.Popen([a.replace("PORT", str(port)) for a in argv],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    before = rss_mib(proc.pid)
    conns = open_idle(port, native)
    time.sleep(1.0)
    with_conns = rss_mib(proc.pid)
    for c in conns:
        c.close()
    proc.terminate()
    proc.wait(timeout=20)
    print(f"{name:6} RSS idle server {before:7.1f} MiB   with {N} idle clients {with_conns:7.1f} MiB"
          f"   (+{(with_conns - before) * 1024 / N:.1f} KiB each)")
    return with_conns


if not os.path.exists(FERRY):
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
served = tempfile.mkdtemp()
ferry = measure("ferry", [FERRY, "serve", served, "--listen", "127.0.0.1:PORT"], True)
if shutil.which("ncat"):
    ncat = measure("ncat", ["ncat", "--broker", "-l", "127.0.0.1", "PORT", "-m", str(N + 10)], False)
    print(f"ferry / ncat --broker memory: {ferry / ncat:.2f}x")
print(f"target: ferry under 50 MB with {N} idle clients: {'met' if ferry < 50 else 'NOT met'}")
shutil.rmtree(served)
