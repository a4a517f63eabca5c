"""Stand-in of SM's lock.Lock(name, ns): an fcntl lock on /var/lock/sm/<ns>/<name>."""
import fcntl
import os

LOCK_DIR = "/var/lock/sm"


class Lock(object):
    def __init__(self, name, ns=None):
        self.path = os.path.join(LOCK_DIR, ns or ".nil", name)
        self.f = None

    def acquire(self):
        try:
            os.makedirs(os.path.dirname(self.path))
        except OSError:
            pass  # it exists (Python 2.7 has no exist_ok)
        self.f = open(self.path, "a+")
        fcntl.lockf(self.f, fcntl.LOCK_EX)

    def release(self):
        fcntl.lockf(self.f, fcntl.LOCK_UN)
        self.f.close()
        self.f = None
