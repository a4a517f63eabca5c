"""A Fairlock server for the real-kernel tests, written from SM's protocol: accept one
connection at a time, write b"LOCK\\0", hold until the client closes. Logs to argv[2]."""

import os
import socket
import sys

path, log = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(path), exist_ok=True)
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(64)
with open(log, "a") as f:
    f.write("ready\n")
while True:
    conn, _ = srv.accept()
    with open(log, "a") as f:
        f.write("acquired\n")
    conn.sendall(b"LOCK\0")
    said = b""
    while True:
        chunk = conn.recv(128)
        if not chunk:
            break
        said += chunk
    conn.close()
    with open(log, "a") as f:
        f.write("released after %r\n" % said.decode())
