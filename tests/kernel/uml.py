"""Run shell scenarios inside a real Linux kernel: Debian's user-mode Linux, with dm-mod loaded,
the host's root as hostfs, and Debian's real lvm2 and dmsetup.

Each call boots a fresh kernel (about 2-5 s), runs one bash script as init's child with a
prelude of helpers, powers off, and returns what the script printed plus any files it wrote
to $OUT. Nothing the guest writes leaves its work directory: /run, /dev and the LVM
configuration are private to the guest, and the disk is a sparse image file.
"""

import os
import shutil
import sys
import subprocess
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
LINUX = shutil.which("linux.uml") or "/usr/bin/linux.uml"

# Fixed ids so scenarios and assertions agree; real-shaped uuids.
SR = "9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b"
VDI = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
VG = "VG_XenStorage-" + SR
LV = "VHD-" + VDI
DM_NAME = VG.replace("-", "--") + "-" + LV.replace("-", "--")

LVM_CONF = """\
devices { filter = [ "a|^/dev/ubd|", "r|.*|" ] obtain_device_list_from_udev = 0 }
activation { udev_sync = 0 udev_rules = 0 verify_udev_operations = 0 }
backup { backup = 0 archive = 0 }
global { locking_dir = "/run/lock/lvm" }
"""


def available():
    """Why the real-kernel tests cannot run here, or None when they can."""
    if not os.path.exists(LINUX):
        return "user-mode-linux is not installed"
    if not shutil.which("lvm", path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")):
        return "lvm2 is not installed"
    if not shutil.which("insmod", path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")):
        return "kmod (insmod) is not installed"
    return None


class Result(object):
    def __init__(self, rc, output, out_dir, console):
        self.rc = rc
        self.output = output
        self.out_dir = out_dir
        self.console = console

    def file(self, name):
        with open(os.path.join(self.out_dir, name)) as f:
            return f.read()

    def has(self, name):
        return os.path.exists(os.path.join(self.out_dir, name))


def run(script, dmheal_bin, timeout=180, env=None, keep=False, disk_mb=256, second_disk_mb=0):
    """Boot a kernel, run `script` (bash) with the prelude, return a Result. `second_disk_mb`:
    also attach /dev/ubdb (a disk of another VG, or no PV at all)."""
    work = tempfile.mkdtemp(prefix="dmheal-uml-")
    out_dir = os.path.join(work, "out")
    os.makedirs(out_dir)
    os.makedirs(os.path.join(work, "lvm"))
    with open(os.path.join(work, "lvm", "lvm.conf"), "w") as f:
        f.write(LVM_CONF)
    disk = os.path.join(work, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(disk_mb * 1024 * 1024)
    disks = ["ubd0=" + disk]
    if second_disk_mb:
        with open(disk + ".b", "wb") as f:
            f.truncate(second_disk_mb * 1024 * 1024)
        disks.append("ubd1=" + disk + ".b")

    exports = {
        "OUT": out_dir,
        "WORK": work,
        "DMHEAL": dmheal_bin,
        "SR": SR,
        "VDI": VDI,
        "VG": VG,
        "LV": LV,
        "DM_NAME": DM_NAME,
        "HELPERS": HERE,
        "PYTHON": os.environ.get("DMHEAL_TEST_PYTHON", shutil.which("python3") or "python3"),
        # Test infrastructure (xapi simulator, syslog sink, Fairlock server) always runs on this
        # Python, whatever $PYTHON the product's adapters are tried on.
        "SIMPY": sys.executable,
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "STANDIN": os.path.join(os.path.dirname(HERE), "sm_standin"),
    }
    exports.update(env or {})
    with open(os.path.join(work, "scenario.sh"), "w") as f:
        f.write(script)
    init = os.path.join(work, "init")
    with open(init, "w") as f:
        f.write("#!/bin/bash\n")
        f.write("export PATH=/usr/sbin:/usr/bin:/sbin:/bin:%s\n" % os.path.dirname(exports["PYTHON"]))
        for k, v in sorted(exports.items()):
            f.write("export %s=%s\n" % (k, _quote(v)))
        f.write(textwrap.dedent(INIT_BODY))
    os.chmod(init, 0o755)

    argv = [
        LINUX,
        "mem=768M",
        "root=/dev/root",
        "rootfstype=hostfs",
        "rootflags=/",
        "rw",
    ] + disks + [
        "init=" + init,
        "con=null",
        "con0=fd:0,fd:1",
    ]
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=timeout,
        )
        console = proc.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        console = (e.stdout or b"").decode("utf-8", "replace")
        raise AssertionError("the user-mode kernel did not finish in %d s:\n%s" % (timeout, console[-3000:]))
    rc_path = os.path.join(work, "rc")
    if not os.path.exists(rc_path):
        raise AssertionError("the scenario never finished; console:\n" + console[-4000:])
    with open(rc_path) as f:
        rc = int(f.read().strip() or "-1")
    with open(os.path.join(work, "output")) as f:
        output = f.read()
    result = Result(rc, output, out_dir, console)
    if not keep:
        os.unlink(disk)
    return result


def _quote(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


# Runs as PID 1 in the guest: private /proc, /sys, /run, /dev; dm-mod; then the scenario.
INIT_BODY = r"""
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /run/lock/lvm /run/dmheal
insmod /usr/lib/uml/modules/$(uname -r)/kernel/drivers/md/dm-mod.ko
export LVM_SYSTEM_DIR="$WORK/lvm"
# dmheal's journal lives on the guest's tmpfs unless a scenario says otherwise; never the host's /var/lib.
export DMHEAL_JOURNAL=/run/dmheal/journal.jsonl
cd "$WORK"
( set -u; source "$HELPERS/prelude.sh"; source "$WORK/scenario.sh" ) > "$WORK/output" 2>&1
echo $? > "$WORK/rc"
cp /run/dmheal/journal.jsonl "$OUT/journal.jsonl" 2>/dev/null
sync
echo o > /proc/sysrq-trigger
sleep 10
"""
