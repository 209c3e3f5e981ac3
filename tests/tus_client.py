#!/usr/bin/env python3
"""A tus client nobody here wrote (tuspy, from PyPI) uploads to ferry.
Arguments: the server's base URL, the file to upload, the chunk size.
Prints the upload URL."""
import sys

from tusclient import client

base, path, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = client.TusClient(base + "/.ferry/tus/")
up = c.uploader(path, chunk_size=chunk, metadata={"filename": "from-tuspy.bin", "folder": "inbox"})
up.upload()
print(up.url)
