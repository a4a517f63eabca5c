import lvutil


class LVMCache(object):
    def __init__(self, vgName):
        self.vgName = vgName

    def _getPath(self, lvName):
        return "/dev/%s/%s" % (self.vgName, lvName)

    def activateNoRefcount(self, lvName, refresh=False):
        lvutil.activateNoRefcount(self._getPath(lvName), refresh)
