"""Stand-in of SM 8.2's lvutil (XCP-ng's SM 2.30.x-8.2, Python 2.7): every LVM command under
SM's fcntl lock /var/lock/sm/.nil/lvm (LvmLockContext), no Fairlock and no retry;
activateNoRefcount(path, refresh) runs `lvchange -ay path`, then checks the device exists."""
import os

import lock
import util

CMD_LVCHANGE = "lvchange"
CMD_DMSETUP = "dmsetup"
LVM_LOCK = "lvm"


class LvmLockContext(object):
    def __init__(self, cmd=None):
        self.lock = lock.Lock(LVM_LOCK)
        self.cmd = cmd
        self.locked = False

    def __enter__(self):
        if self.cmd and "--readonly" in self.cmd:
            return
        self.lock.acquire()
        self.locked = True

    def __exit__(self, exc_type, value, traceback):
        if self.locked:
            self.lock.release()


def cmd_lvm(cmd, pread_func=util.pread2, *args):
    with LvmLockContext(cmd):
        return pread_func(cmd, *args)


def _checkActive(path):
    if util.pathexists(path):
        return True
    mapper_device = path[5:].replace("-", "--").replace("/", "-")
    try:
        util.pread2([CMD_DMSETUP, "status", mapper_device])
        exists = True
    except util.CommandException:
        exists = False
    mapper_path = "/dev/mapper/" + mapper_device
    if exists and util.pathexists(mapper_path) and not os.path.lexists(path):
        os.symlink(mapper_path, path)
        return True
    return False


def activateNoRefcount(path, refresh):
    cmd = [CMD_LVCHANGE, "-ay", path]
    cmd_lvm(cmd)
    if not _checkActive(path):
        raise util.CommandException(-1, str(cmd), "LV not activated")
    if refresh:
        cmd_lvm([CMD_LVCHANGE, "--refresh", path])
        mapper_device = path[5:].replace("-", "--").replace("/", "-")
        util.pread([CMD_DMSETUP, "table", mapper_device])
