#!/usr/bin/env python3
"""Fan-out through a line chat hub: N receivers and one sender on one port.

The sender writes COUNT lines, one per write, each carrying its sequence
number and the send time, as fast as it can or one every --interval
seconds; receivers (one process, one selector) note when
each line reaches them. Prints deliveries per second (first send to last
delivery) and the latency from send to the last receiver (p50, p99), as one
JSON object. With --stall, one more receiver connects and never reads; the
figures then cover the others, and "complete" says whether they all got
every line within the time limit. "named" counts the delivered lines that
say who sent them (`<nick> ` before the text): a hub that prefixes each
read rather than each line sends most lines without it. "bytes_per_line" is
what a receiver read per line delivered: the hub's decorations (room, nick,
line ending) included, since every one of those bytes crosses the kernel
twice per receiver.

Used by bench/chat.sh for ferry's plain-text door and for `ncat --chat`,
with the same code for both; and by bench/chat_cluster.sh, whose
receivers are spread over the nodes of a cluster (--spread PORT: the
receivers take the sender's port and each one given in turn).
"""
import argparse
import json
import multiprocessing
import re
import selectors
import socket
import time

MARK = re.compile(rb"(> )?BENCH:(\d+):(\d+)")


def receivers(ports, n, count, ready, start, sent, out, limit):
    socks = [socket.create_connection(("127.0.0.1", ports[i % len(ports)])) for i in range(n)]
    time.sleep(1.5)  # past the hub's greeting (ferry waits 1 s for silence)
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    # Drop whatever greeting came first.
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            try:
                key.fileobj.recv(1 << 16)
            except BlockingIOError:
                pass
    # While lines arrive, the receivers only read into memory made ready
    # beforehand and note which bytes came when: the lines are counted and
    # parsed after the run. Counting them as they came (even in C, with
    # bytes.count) made the receivers' time grow with the bytes a hub sends,
    # and the receivers share the machine with the hub.
    block = max(1 << 20, n * count * 64)
    arenas = [bytearray(block)]  # zero-filled, so its pages are in memory
    view, off = memoryview(arenas[0]), 0
    log = []  # (receiver, arrival ns, arena, start, end)
    ready.set()
    start.wait(limit)
    end = time.monotonic_ns() + int(limit * 1e9)
    last = time.monotonic_ns()
    while True:
        now = time.monotonic_ns()
        # Stop once the sender is done and nothing came for half a second
        # (a hub that loses lines would otherwise keep the run to its limit).
        if now > end or (sent.is_set() and now - last > 500_000_000):
            break
        for key, _ in sel.select(0.1):
            if block - off < 1 << 16:
                arenas.append(bytearray(block))
                view, off = memoryview(arenas[-1]), 0
            try:
                size = key.fileobj.recv_into(view[off : off + (1 << 16)])
            except BlockingIOError:
                continue
            if not size:
                sel.unregister(key.fileobj)
                continue
            last = time.monotonic_ns()
            log.append((key.data, last, len(arenas) - 1, off, off + size))
            off += size
    got = [dict() for _ in range(n)]
    bufs = [b""] * n
    named = 0
    total = sum(hi - lo for _, _, _, lo, hi in log)
    for i, now, a, lo, hi in log:
        buf = bufs[i] + bytes(arenas[a][lo:hi])
        cut = buf.rfind(b"\n") + 1
        bufs[i] = buf[cut:]
        for m in MARK.finditer(buf, 0, cut):
            seq = int(m.group(2))
            if seq not in got[i]:
                got[i][seq] = (int(m.group(3)), now)
                # Whether the line says who sent it ("<nick> " before it).
                named += m.group(1) is not None
    out.put((got, named, total))


def drain(s):
    try:
        while s.recv(1 << 16):
            pass
    except OSError:
        pass


def sender(port, count, pad, interval, limit, ready, start, sent, sent_q):
    s = socket.create_connection(("127.0.0.1", port))
    time.sleep(1.5)
    # A hub that stops reading (ncat with a stuck receiver) must not hang
    # the run: give up on a write after the time limit.
    s.settimeout(limit)
    ready.wait(limit)
    # Drain whatever comes back to the sender (a hub that echoes), in a
    # process of its own: a thread would take the sending loop's GIL each
    # time an echo came, and the sender must never be the slow one.
    drainer = multiprocessing.Process(target=drain, args=(s,), daemon=True)
    drainer.start()
    start.set()
    first = time.monotonic_ns()
    filler = b" " + b"." * pad if pad else b""
    sent_q.put(first)
    for seq in range(count):
        if interval:
            # Paced: each line leaves on its own schedule, so latency is the
            # hub's, not the queue of a burst.
            due = first + int(seq * interval * 1e9)
            pause = (due - time.monotonic_ns()) / 1e9
            if pause > 0:
                time.sleep(pause)
        try:
            s.sendall(b"BENCH:%d:%d%s\n" % (seq, time.monotonic_ns(), filler))
        except OSError:  # timed out: the hub stopped reading
            sent.set()
            return
    sent.set()
    # Half-close and read on until the hub closes, as `nc -N` does: closing
    # outright with echoes unread would reset the connection and throw away
    # lines still in this socket's send buffer.
    s.shutdown(socket.SHUT_WR)
    drainer.join(limit)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--receivers", type=int, default=50)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--stall", action="store_true")
    ap.add_argument(
        "--spread", type=int, action="append", default=[], help="another node's port for receivers"
    )
    ap.add_argument("--pad", type=int, default=0, help="bytes of filler per line")
    ap.add_argument("--limit", type=float, default=60.0)
    ap.add_argument(
        "--interval", type=float, default=0.0, help="seconds between lines (0: as fast as possible)"
    )
    a = ap.parse_args()
    stalled = None
    if a.stall:
        stalled = socket.create_connection(("127.0.0.1", a.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ready, start, sent = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Event()
    out, sent_q = multiprocessing.Queue(), multiprocessing.Queue()
    r = multiprocessing.Process(
        target=receivers, args=([a.port] + a.spread, a.receivers, a.count, ready, start, sent, out, a.limit)
    )
    s = multiprocessing.Process(
        target=sender, args=(a.port, a.count, a.pad, a.interval, a.limit, ready, start, sent, sent_q)
    )
    r.start()
    s.start()
    got, named, total = out.get(timeout=a.limit + 30)
    first = sent_q.get(timeout=5)
    r.join()
    s.join(timeout=a.limit + 5)
    if s.is_alive():
        s.kill()
    delivered = sum(len(g) for g in got)
    last = max((max(t for _, t in g.values()) for g in got if g), default=first)
    # Latency of a line: from its send to its arrival at the last receiver,
    # for the lines every receiver got.
    lat = []
    for seq in range(a.count):
        times = [g[seq] for g in got if seq in g]
        if len(times) == a.receivers:
            lat.append(max(t for _, t in times) - times[0][0])
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1e6 if lat else None
    seconds = (last - first) / 1e9
    print(
        json.dumps(
            {
                "receivers": a.receivers,
                "count": a.count,
                "delivered": delivered,
                "complete": delivered == a.receivers * a.count,
                "named": named,
                "bytes_per_line": round(total / max(delivered, 1), 1),
                "seconds": round(seconds, 4),
                "deliveries_per_s": round(delivered / max(seconds, 1e-9)),
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
            }
        )
    )
    if stalled:
        stalled.close()


if __name__ == "__main__":
    main()
