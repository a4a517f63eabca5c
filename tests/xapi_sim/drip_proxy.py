"""A xapi that answers some methods a byte at a time: `drip_proxy.py LISTEN UPSTREAM METHODS`
forwards every request on unix socket LISTEN to the simulator at UPSTREAM and sends the answer
back, except that answers to METHODS (comma-separated) come one byte every half second — each
read returns well within any per-read timeout, so only a deadline on the whole exchange stops
a client."""

import os
import socket
import sys
import threading
import time


def read_request(c):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        body += c.recv(65536)
    return head + b"\r\n\r\n" + body, body


def handle(c, upstream, methods):
    try:
        got = read_request(c)
        if got is None:
            return
        raw, body = got
        u = socket.socket(socket.AF_UNIX)
        u.connect(upstream)
        u.sendall(raw)
        answer = b""
        while True:
            chunk = u.recv(65536)
            if not chunk:
                break
            answer += chunk
        if any(('"%s"' % m).encode() in body for m in methods):
            for i in range(len(answer)):
                c.sendall(answer[i:i + 1])
                time.sleep(0.5)
        else:
            c.sendall(answer)
    except OSError:
        pass  # the client gave up: that is the point
    finally:
        c.close()


def main():
    listen, upstream, methods = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    if os.path.exists(listen):
        os.unlink(listen)
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(listen)
    srv.listen(64)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c, upstream, methods), daemon=True).start()


if __name__ == "__main__":
    main()
