"""An adversary that holds SM's Fairlock (as SM does around its LVM work) while the scene
changes under it: connect, wait for b"LOCK", then optionally wait until a file says a given
text (the process being raced has reached the point to race), run a shell command (the
change), keep the lock at least --hold seconds in all, and release it. Logs to --log.

    hold_sm_lock.py SOCKET --hold 1.5 [--when FILE TEXT] [--then 'shell command'] --log LOG
"""

import argparse
import socket
import subprocess
import time

p = argparse.ArgumentParser()
p.add_argument("socket")
p.add_argument("--hold", type=float, default=0.0)
p.add_argument("--when", nargs=2, metavar=("FILE", "TEXT"))
p.add_argument("--then")
p.add_argument("--log", required=True)
a = p.parse_args()


def say(what):
    with open(a.log, "a") as f:
        f.write(what + "\n")


start = time.time()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(a.socket)
s.sendall(b"hold_sm_lock")
said = b""
while not said.endswith(b"\0"):
    said += s.recv(16)
say("held")
if a.when:
    path, text = a.when
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    break
        except OSError:
            pass
        time.sleep(0.02)
    else:
        say("timed out waiting for %r in %s" % (text, path))
    say("saw %r" % text)
if a.then:
    rc = subprocess.call(["bash", "-c", a.then])
    say("changed (rc %d)" % rc)
time.sleep(max(0.0, a.hold - (time.time() - start)))
s.close()
say("released")
