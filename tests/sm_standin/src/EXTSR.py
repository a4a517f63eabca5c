"""Stand-in of SM's EXTSR (drivers/EXTSR.py; XFSSR's attach is the same, and LargeBlockSR's
ends in it): a local SR whose data is a file system on the one LV of VG XSLocalEXT-<sr>,
/dev/XSLocalEXT-<sr>/<sr>. `attach` (PBD.plug) activates that LV with a bare `lvchange -ay`
through util.pread2 - no lvutil, no LVM lock or Fairlock, no refcount - then fsck and mount,
as SM 8.2, 8.3 and upstream do. Python 2.7 and 3."""
import os

try:  # SM 4.1.1+ package layout
    from sm.core import util, xs_errors
except ImportError:  # /opt/xensource/sm
    import util
    import xs_errors

EXT_PREFIX = "XSLocalEXT-"
MOUNT_BASE = os.environ.get("SM_STANDIN_MOUNT_BASE", "/var/run/sr-mount")


class EXTSR(object):
    DRIVER_TYPE = "ext"

    def __init__(self, sr_uuid, prefix=EXT_PREFIX):
        self.uuid = sr_uuid
        self.vgname = prefix + sr_uuid
        self.remotepath = os.path.join("/dev", self.vgname, sr_uuid)
        self.path = os.path.join(MOUNT_BASE, sr_uuid)
        self.attached = False

    def _checkmount(self):
        return util.pathexists(self.path) and os.path.ismount(self.path)  # novermin (POSIX 2.7 has it)

    def attach(self, sr_uuid):
        if not self._checkmount():
            try:
                # Activate LV
                cmd = ['lvchange', '-ay', self.remotepath]
                util.pread2(cmd)
            except util.CommandException as inst:
                raise xs_errors.XenError(
                    'LVMMount',
                    opterr='Unable to activate LV. Errno is %d' % inst.code)
            try:
                util.pread(["fsck", "-a", self.remotepath])
            except util.CommandException as inst:
                if inst.code != 1:
                    raise xs_errors.XenError(
                        'LVMMount',
                        opterr='FSCK failed on %s. Errno is %d' % (self.remotepath, inst.code))
            if not os.path.isdir(self.path):
                os.makedirs(self.path)
            try:
                util.pread(["mount", self.remotepath, self.path])
            except util.CommandException as inst:
                raise xs_errors.XenError('FileSRCreate',
                                         opterr='fail to mount FileSR. Errno is %s' % inst.code)
        self.attached = True

    def detach(self, sr_uuid):
        if self._checkmount():
            util.pread(["umount", self.path])
        util.pread2(['lvchange', '-an', self.remotepath])
        self.attached = False
