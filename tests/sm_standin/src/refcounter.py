"""Stand-in of SM's refcounter.RefCounter: "count binaryCount" in
/var/run/sm/refcount/<ns>/<obj>; the binary count is 0 or 1; the file goes at 0 0."""
import os

BASE_DIR = "/var/run/sm/refcount"


class RefCounter(object):
    @staticmethod
    def get(obj, binary, ns=None):
        """Take a reference; the new total."""
        return RefCounter._adjust(ns, obj, 0 if binary else 1, 1 if binary else 0)

    @staticmethod
    def put(obj, binary, ns=None):
        return RefCounter._adjust(ns, obj, 0 if binary else -1, -1 if binary else 0)

    @staticmethod
    def check(obj, ns=None):
        return RefCounter._read(RefCounter._path(ns, obj))

    @staticmethod
    def _path(ns, obj):
        return os.path.join(BASE_DIR, ns or "", obj)

    @staticmethod
    def _read(path):
        try:
            with open(path) as f:
                count, binary = f.read().split()
            return int(count), int(binary)
        except (IOError, OSError):
            return 0, 0

    @staticmethod
    def _adjust(ns, obj, delta, bin_delta):
        path = RefCounter._path(ns, obj)
        count, binary = RefCounter._read(path)
        count = max(0, count + delta)
        binary = min(1, max(0, binary + bin_delta))
        if count == 0 and binary == 0:
            if os.path.exists(path):
                os.unlink(path)
        else:
            try:
                os.makedirs(os.path.dirname(path))
            except OSError:
                pass  # it exists (Python 2.7 has no exist_ok)
            with open(path, "w") as f:
                f.write("%d %d\n" % (count, binary))
        return count + binary
