"""Stand-in of SM's lvmcache.LVMCache: refcounted activation through lvutil."""
try:  # SM 4.1.1+ package layout
    from sm import lvutil
    from sm.core import util
    from sm.core.lock import Lock
    from sm.refcounter import RefCounter
except ImportError:  # /opt/xensource/sm
    import lvutil
    import util
    from lock import Lock
    from refcounter import RefCounter


def lazyInit(op):
    def wrapper(self, *args):
        if not self.initialized:
            self.initialized = True
        return op(self, *args)
    return wrapper


class LVMCache(object):
    def __init__(self, vgName):
        self.vgName = vgName
        self.initialized = False

    def _getPath(self, lvName):
        return "/dev/%s/%s" % (self.vgName, lvName)

    @lazyInit
    def activate(self, ns, ref, lvName, binary):
        lock = Lock(ref, ns)
        lock.acquire()
        try:
            count = RefCounter.get(ref, binary, ns)
            if count == 1:
                try:
                    self.activateNoRefcount(lvName)
                except util.CommandException:
                    RefCounter.put(ref, binary, ns)
                    raise
        finally:
            lock.release()

    @lazyInit
    def activateNoRefcount(self, lvName, refresh=False):
        lvutil.activateNoRefcount(self._getPath(lvName), refresh)
