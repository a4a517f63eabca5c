"""Servers that accept and never answer, for the deadline tests: a hung toolstack and a dead
DNS server.

usage: silent_servers.py xapi SOCKET      a unix socket that accepts every connection, reads
                                          what is sent, and never answers (xapi hung, as in the
                                          seed incident, where the operators restarted it)
       silent_servers.py dns ADDRESS PORT a UDP socket that takes every query and answers none
Writes "ready" to stdout once listening."""

import os
import socket
import sys
import threading
import time


def swallow(c):
    try:
        while c.recv(65536):
            pass
    except OSError:
        pass
    time.sleep(3600)


def main():
    kind = sys.argv[1]
    if kind == "xapi":
        path = sys.argv[2]
        if os.path.exists(path):
            os.unlink(path)
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(path)
        srv.listen(64)
        print("ready", flush=True)
        while True:
            c, _ = srv.accept()
            threading.Thread(target=swallow, args=(c,), daemon=True).start()
    elif kind == "dns":
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.bind((sys.argv[2], int(sys.argv[3])))
        print("ready", flush=True)
        while True:
            srv.recvfrom(4096)
    else:
        sys.exit("unknown kind %r" % kind)


if __name__ == "__main__":
    main()
