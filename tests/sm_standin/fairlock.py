"""Stand-in of SM's fairlock (misc/fairlock/fairlock.py): one Fairlock per name per process,
not re-entrant; the lock is held from the server's first bytes until the socket closes."""
import os
import socket
import time

SOCKDIR = "/run/fairlock"


class FairlockDeadlock(Exception):
    pass


class SingletonWithArgs(type):
    _instances = {}

    def __call__(cls, *args):
        key = (cls, args)
        if key not in cls._instances:
            cls._instances[key] = super(SingletonWithArgs, cls).__call__(*args)
        return cls._instances[key]


class Fairlock(metaclass=SingletonWithArgs):
    def __init__(self, name):
        self.name = name
        self.sockname = os.path.join(SOCKDIR, name)
        self.connected = False
        self.sock = None

    def __enter__(self):
        if self.connected:
            raise FairlockDeadlock("Deadlock on Fairlock resource '%s'" % self.name)
        if os.path.exists(self.sockname):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(self.sockname)
            while not self.sock.recv(10):
                pass
            self.sock.send(("%d - %s" % (os.getpid(), time.monotonic())).encode())
        self.connected = True
        return self

    def __exit__(self, typ, value, traceback):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.connected = False
        return False
