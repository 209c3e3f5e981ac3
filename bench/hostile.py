#!/usr/bin/env python3
"""The hostile figures: what the attacks of docs/THREAT_MODEL.md cost a
running server. Starts `ferry serve` (the binary given, a release build for
figures worth quoting) on a free loopback port and prints, for each attack,
what it achieved and what it cost:

  rooms     50 text clients join rooms and say a line in each, for 20 s:
            rooms made, and the state folder's size before and after
  plans     16 folder-upload manifests of 32 MiB at once: the server's peak
            and settled RSS
  guesses   64 connections from one address send wrong tokens for 10 s:
            guesses answered per second
  idle      4,000 connections that say nothing, held, then closed: RSS
            before, while held, and 5 s after

Every loop is bounded in count and time, and only loopback is used.

    cargo build --release && python3 bench/hostile.py target/release/ferry
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
import threading
import time


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def folder_bytes(path):
    total = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
            except OSError:
                pass
    return total


class Server:
    def __init__(self, binary, extra=(), env=None):
        self.root = tempfile.mkdtemp()
        self.state = tempfile.mkdtemp()
        e = dict(os.environ)
        e.pop("FERRY_TOKEN", None)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [binary, "serve", self.root, "--listen", "127.0.0.1:0",
             "--state-dir", self.state, "--no-discovery", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=e, text=True)
        for line in self.proc.stdout:
            if line.startswith("listening on "):
                self.port = int(line.split()[2].rsplit(":", 1)[1])
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.state, ignore_errors=True)


def frame(kind, header, body_len=0):
    h = json.dumps(header).encode()
    return b"\xf0FRY" + bytes([1, kind]) + struct.pack(">IQ", len(h), body_len) + h


def read_frames(sock, want, deadline):
    buf = b""
    frames = []
    while len(frames) < want and time.time() < deadline:
        sock.settimeout(max(0.01, deadline - time.time()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 18:
            hl, bl = struct.unpack(">IQ", buf[6:18])
            if len(buf) < 18 + hl + bl:
                break
            frames.append((buf[5], buf[18:18 + hl]))
            buf = buf[18 + hl + bl:]
    return frames


def rooms(binary):
    s = Server(binary)
    before = folder_bytes(s.state)
    made = [0]
    lock = threading.Lock()
    stop_at = time.time() + 20

    def client(i):
        try:
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        except OSError:
            return
        c.settimeout(5)
        f = c.makefile("rb")
        k = 0
        try:
            f.readline()  # welcome
            while time.time() < stop_at and k < 2000:
                room = f"flood{i}x{k}"
                c.sendall(f"/join {room}\nfilling {room} {'x' * 100}\n".encode())
                while True:
                    line = f.readline().decode(errors="replace")
                    if not line:
                        return
                    if line.startswith(f"[{room}] -> "):
                        with lock:
                            made[0] += 1
                        c.sendall(f"/part {room}\n".encode()) if k % 2 else None
                        break
                    if line.startswith("! ") and "room" in line:
                        break
                k += 1
        except OSError:
            pass
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    time.sleep(11)  # a checkpoint
    after = folder_bytes(s.state)
    s.stop()
    print(f"rooms: 50 clients for 20 s made {made[0]} rooms; "
          f"state folder {before / 1e3:.0f} KB -> {after / 1e6:.1f} MB")


def plans(binary):
    s = Server(binary, ["--allow-upload"])
    parts = []
    size = 2
    i = 0
    while size < (32 << 20) - 200:
        e = json.dumps({"path": f"d{i % 100}/file-{i:08}.bin", "kind": "file", "size": 1})
        parts.append(e)
        size += len(e) + 1
        i += 1
    body = ("[" + ",".join(parts) + "]").encode()
    idle = rss_kib(s.proc.pid)
    peak = [idle]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(s.proc.pid))
            time.sleep(0.02)

    def one(n, answers):
        try:
            c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
            c.sendall(frame(1, {"op": "hello", "versions": [1]}))
            c.sendall(frame(1, {"op": "plan", "path": f"up{n}", "force": False}, len(body)))
            c.sendall(body)
            got = read_frames(c, 2, time.time() + 120)
            answers.append(got[-1][0] if got else None)
            c.close()
        except OSError:
            answers.append(None)

    threading.Thread(target=watch, daemon=True).start()
    answers = []
    started = time.time()
    threads = [threading.Thread(target=one, args=(n, answers)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    took = time.time() - started
    done.set()
    time.sleep(2)
    settled = rss_kib(s.proc.pid)
    s.stop()
    ok = sum(1 for a in answers if a == 3)
    print(f"plans: 16 x {len(body) / 2**20:.0f} MiB manifests ({i} entries each): {ok} ok in {took:.1f} s; "
          f"RSS idle {idle / 1024:.0f} MB, peak {peak[0] / 1024:.0f} MB, settled {settled / 1024:.0f} MB")


def guesses(binary):
    s = Server(binary, [], {"FERRY_TOKEN": "the-right-token-123"})
    answered = [0]
    refused = [0]
    lock = threading.Lock()
    stop_at = time.time() + 10

    def conn(i):
        while time.time() < stop_at:
            try:
                c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
                c.sendall(frame(1, {"op": "hello", "versions": [1]}))
                read_frames(c, 1, stop_at)
                for k in range(3):
                    c.sendall(frame(1, {"op": "auth", "token": f"guess-{i}-{k}"}))
                    got = read_frames(c, 1, stop_at)
                    if not got:
                        break
                    code = json.loads(got[0][1]).get("code")
                    with lock:
                        if code == "auth_failed":
                            answered[0] += 1
                        else:
                            refused[0] += 1
                    if code != "auth_failed":
                        break
                c.close()
            except OSError:
                time.sleep(0.05)

    threads = [threading.Thread(target=conn, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    s.stop()
    print(f"guesses: 64 connections from 127.0.0.1 for 10 s: {answered[0]} checked "
          f"({answered[0] / 10:.1f}/s), {refused[0]} refused unchecked")


def idle(binary):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20000), hard))
    s = Server(binary, ["--max-connections", "8000"])
    time.sleep(1)
    before = rss_kib(s.proc.pid)
    socks = []
    for _ in range(4000):
        try:
            socks.append(socket.create_connection(("127.0.0.1", s.port), timeout=5))
        except OSError:
            break
    time.sleep(3)  # past the sniffing second: they are chat clients now
    held = rss_kib(s.proc.pid)
    for c in socks:
        c.close()
    after = []
    for wait in (5, 10, 15):
        time.sleep(5)
        after.append(f"{rss_kib(s.proc.pid) / 1024:.0f} MB at {wait} s")
    s.stop()
    print(f"idle: {len(socks)} idle connections: RSS {before / 1024:.0f} MB before, "
          f"{held / 1024:.0f} MB held; after they closed: {', '.join(after)}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    which = sys.argv[2:] or ["rooms", "plans", "guesses", "idle"]
    for name in which:
        globals()[name](sys.argv[1])
