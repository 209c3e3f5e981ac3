#!/usr/bin/env python3
"""The classic socket client of the old exercise, kept as it was.

It frames with struct.pack('i', len(header)) and a JSON header, sends a put's
bytes right after the header, and reads a get's reply the same way.

    classic_client.py HOST PORT put LOCAL_PATH [REMOTE_NAME] [--no-reply]
    classic_client.py HOST PORT get REMOTE_NAME LOCAL_PATH
"""
import json
import os
import socket
import struct
import sys


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(min(n - len(data), 65536))
        if not chunk:
            raise ConnectionError("connection closed early")
        data += chunk
    return data


def recv_header(sock):
    (length,) = struct.unpack("i", recv_exact(sock, 4))
    return json.loads(recv_exact(sock, length).decode("utf-8"))


def put(sock, path, name, wait_reply):
    size = os.path.getsize(path)
    header = json.dumps({"cmd": "put", "filename": name, "filesize": size}).encode("utf-8")
    sock.send(struct.pack("i", len(header)))
    sock.send(header)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1024)
            if not chunk:
                break
            sock.sendall(chunk)
    if wait_reply:
        print(json.dumps(recv_header(sock)))


def get(sock, name, dest):
    header = json.dumps({"cmd": "get", "filename": name}).encode("utf-8")
    sock.send(struct.pack("i", len(header)))
    sock.send(header)
    reply = recv_header(sock)
    if "error" in reply:
        print(json.dumps(reply))
        return 1
    left = reply["filesize"]
    with open(dest, "wb") as f:
        while left > 0:
            chunk = sock.recv(min(left, 65536))
            if not chunk:
                raise ConnectionError("connection closed early")
            f.write(chunk)
            left -= len(chunk)
    print(json.dumps(reply))
    return 0


def main():
    host, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sock = socket.create_connection((host, port))
    if cmd == "put":
        path = sys.argv[4]
        name = sys.argv[5] if len(sys.argv) > 5 and not sys.argv[5].startswith("--") else os.path.basename(path)
        put(sock, path, name, "--no-reply" not in sys.argv)
        rc = 0
    else:
        rc = get(sock, sys.argv[4], sys.argv[5])
    sock.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())
