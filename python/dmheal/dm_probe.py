"""What the kernel has under a DM name: one DM_DEV_STATUS ioctl, in this process.

The SM hook runs before every LVHD activation. Almost always there is no mapping (a fresh
activation) or LVM's own (SM 8.4 refreshes already-active LVs through the same call): asking
this one question in-process keeps both paths free of a process start (the dmheal binary) or
a JSON round trip (the native module). Everything beyond it is the core's job. Python 3.6
compatible (and 2.7's, for Citrix Hypervisor 8.2); any failure answers "cannot tell".
"""

import errno
import fcntl
import os
import struct
import sys

CONTROL = "/dev/mapper/control"

# struct dm_ioctl (linux/dm-ioctl.h): version[3], data_size, data_start, target_count,
# open_count, flags, event_nr, padding, dev, name[128], uuid[129], data[7] -> 312 bytes.
_DM_IOCTL = struct.Struct("=3IIIIiIIIQ128s129s7s")
_DM_VERSION = (4, 0, 0)
# _IOWR(0xfd, DM_DEV_STATUS_CMD = 7, struct dm_ioctl)
_DM_DEV_STATUS = (3 << 30) | (_DM_IOCTL.size << 16) | (0xFD << 8) | 7
if sys.version_info[0] == 2:  # Python 2.7's fcntl.ioctl takes the request as a C int
    _DM_DEV_STATUS = struct.unpack("i", struct.pack("I", _DM_DEV_STATUS))[0]

# The uuid LVM gives an active LV: "LVM-" + VG uuid + LV uuid, 32 characters each, no dashes
# (LVM's id alphabet). A suffix ("-real", "-cow", ...) marks an LVM-internal layer instead.
# Checked without `re`: compiling a pattern costs milliseconds on the first VM start of a
# process, on the path every activation takes.
_LVM_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#")


def _is_lvm_lv_uuid(uuid):
    return (len(uuid) == 68 and uuid.startswith("LVM-")
            and all(c in _LVM_ID_CHARS for c in uuid[4:]))


class Mapping(object):
    """What DM_DEV_STATUS said: ``exists`` True/False, or None when the kernel could not be
    asked; ``uuid`` when it exists."""

    def __init__(self, exists, uuid=None):
        self.exists = exists
        self.uuid = uuid

    def lvm_made(self):
        """True when the mapping carries a uuid of the form LVM gives an active LV."""
        return bool(self.exists and self.uuid and _is_lvm_lv_uuid(self.uuid))


def probe(name):
    """The kernel's mapping of a DM name (see Mapping)."""
    try:
        raw = name.encode("ascii", "strict") if not isinstance(name, bytes) else name
    except UnicodeError:
        return Mapping(None)
    if not raw or len(raw) > 127 or b"\0" in raw:
        return Mapping(None)
    packed = _DM_IOCTL.pack(_DM_VERSION[0], _DM_VERSION[1], _DM_VERSION[2],
                            _DM_IOCTL.size, _DM_IOCTL.size, 0, 0, 0, 0, 0, 0, raw, b"", b"")
    # A mutable buffer the kernel writes the answer into. Python 2.7's ioctl takes an array
    # as one, not a bytearray; Python 3 takes a bytearray (no extension module to load).
    if sys.version_info[0] == 2:
        import array
        buf = array.array("B", packed)
    else:
        buf = bytearray(packed)
    try:
        fd = os.open(CONTROL, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return Mapping(None)
    try:
        fcntl.ioctl(fd, _DM_DEV_STATUS, buf, True)
    except OSError as e:
        return Mapping(False if e.errno == errno.ENXIO else None)
    finally:
        os.close(fd)
    answer = bytes(buf) if isinstance(buf, bytearray) else buf.tostring()  # novermin (2.7: tostring)
    uuid = _DM_IOCTL.unpack_from(answer)[-2].split(b"\0", 1)[0]
    try:
        return Mapping(True, uuid.decode("ascii"))
    except UnicodeError:
        return Mapping(True, "")


def mapping_exists(name):
    """True / False for a DM name, or None when the kernel cannot be asked."""
    return probe(name).exists


def dm_name_of_lv_path(path):
    """LVM's DM name for /dev/<vg>/<lv> (hyphens doubled), or None for any other shape."""
    parts = path.split("/")
    if len(parts) != 4 or parts[0] != "" or parts[1] != "dev" or not parts[2] or not parts[3]:
        return None
    return parts[2].replace("-", "--") + "-" + parts[3].replace("-", "--")
