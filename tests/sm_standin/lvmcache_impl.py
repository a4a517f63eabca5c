# Shared body of the stand-in `lvmcache`: SM's LVMCache.activateNoRefcount(lvName, refresh)
# calls lvutil.activateNoRefcount(path, refresh) through the module attribute, as SM does.


def make(lvutil):
    class LVMCache(object):
        def __init__(self, vgName):
            self.vgName = vgName

        def _getPath(self, lvName):
            return "/dev/%s/%s" % (self.vgName, lvName)

        def activateNoRefcount(self, lvName, refresh=False):
            lvutil.activateNoRefcount(self._getPath(lvName), refresh)

    return LVMCache
