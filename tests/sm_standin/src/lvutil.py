"""Stand-in of SM's lvutil: LVHD activation, one LVM or dmsetup call at a time under
Fairlock("devicemapper")."""
import os
import time

from fairlock import Fairlock

try:  # SM 4.1.1+ package layout
    from sm.core import util
except ImportError:  # /opt/xensource/sm
    import util

CMD_LVCHANGE = "lvchange"
CMD_DMSETUP = "dmsetup"
LVM_FAIL_RETRIES = 10
LVM_RETRY_ERRORS = ["Incorrect checksum in metadata area header"]


def lvmretry(func):
    def decorated(*args):
        for i in range(LVM_FAIL_RETRIES):
            try:
                return func(*args)
            except util.CommandException as ce:
                if i + 1 >= LVM_FAIL_RETRIES or not any(e in ce.reason for e in LVM_RETRY_ERRORS):
                    raise
                time.sleep(1)
    return decorated


def cmd_lvm(cmd, pread_func=util.pread2, *args):
    with Fairlock("devicemapper"):
        return pread_func(cmd, *args)


def _checkActive(path):
    if util.pathexists(path):
        return True
    mapper_device = path[5:].replace("-", "--").replace("/", "-")
    try:
        with Fairlock("devicemapper"):
            util.pread2([CMD_DMSETUP, "status", mapper_device])
        exists = True
    except util.CommandException:
        exists = False
    mapper_path = "/dev/mapper/" + mapper_device
    if exists and util.pathexists(mapper_path) and not os.path.lexists(path):
        os.symlink(mapper_path, path)
        return True
    return False


@lvmretry
def _activate(path):
    cmd = [CMD_LVCHANGE, "-ay", path]
    cmd_lvm(cmd)
    if not _checkActive(path):
        raise util.CommandException(-1, str(cmd), "LV not activated")


def activateNoRefcount(path, refresh):
    _activate(path)
    if refresh:
        cmd_lvm([CMD_LVCHANGE, "--refresh", path])
        mapper_device = path[5:].replace("-", "--").replace("/", "-")
        with Fairlock("devicemapper"):
            util.pread([CMD_DMSETUP, "table", mapper_device])
