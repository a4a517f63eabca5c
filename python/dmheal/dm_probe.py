"""Does the kernel have a device-mapper device of this name? One DM_DEV_STATUS ioctl.

The SM hook runs before every LVHD activation, and almost always there is no mapping: asking
this one question in-process keeps that path free of a process start (the dmheal binary) or
a JSON round trip (the native module). Everything beyond "is there anything to look at?" is
the core's job. Python 3.6 compatible; any failure answers None ("cannot tell").
"""

import errno
import fcntl
import os
import struct

CONTROL = "/dev/mapper/control"

# struct dm_ioctl (linux/dm-ioctl.h): version[3], data_size, data_start, target_count,
# open_count, flags, event_nr, padding, dev, name[128], uuid[129], data[7] -> 312 bytes.
_DM_IOCTL = struct.Struct("=3IIIIiIIIQ128s129s7s")
_DM_VERSION = (4, 0, 0)
# _IOWR(0xfd, DM_DEV_STATUS_CMD = 7, struct dm_ioctl)
_DM_DEV_STATUS = (3 << 30) | (_DM_IOCTL.size << 16) | (0xFD << 8) | 7


def mapping_exists(name):
    """True / False for a DM name, or None when the kernel cannot be asked."""
    raw = name.encode("ascii", "strict") if not isinstance(name, bytes) else name
    if not raw or len(raw) > 127 or b"\0" in raw:
        return None
    buf = bytearray(_DM_IOCTL.size)
    _DM_IOCTL.pack_into(buf, 0, _DM_VERSION[0], _DM_VERSION[1], _DM_VERSION[2],
                        _DM_IOCTL.size, _DM_IOCTL.size, 0, 0, 0, 0, 0, 0, raw, b"", b"")
    try:
        fd = os.open(CONTROL, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.ioctl(fd, _DM_DEV_STATUS, buf, True)
        return True
    except OSError as e:
        if e.errno == errno.ENXIO:
            return False
        return None
    finally:
        os.close(fd)


def dm_name_of_lv_path(path):
    """LVM's DM name for /dev/<vg>/<lv> (hyphens doubled), or None for any other shape."""
    parts = path.split("/")
    if len(parts) != 4 or parts[0] != "" or parts[1] != "dev" or not parts[2] or not parts[3]:
        return None
    return parts[2].replace("-", "--") + "-" + parts[3].replace("-", "--")
