"""A syslog receiver for the real-kernel tests: binds /dev/log (datagram) and appends every
message, raw (with its <priority>), to argv[2]. Lets a test check facility LOCAL2 and SM's
"[pid] message" format exactly as rsyslog would receive them."""

import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
if os.path.exists(path):
    os.unlink(path)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
with open(out, "a") as f:
    f.write("ready\n")
while True:
    data = sock.recv(65536)
    with open(out, "a") as f:
        f.write(data.decode("utf-8", "replace").rstrip("\n\0") + "\n")
