"""EXT and XFS local SRs (issue 21): their data is a file system on the one LV of VG
XSLocalEXT-<sr>, which EXTSR/XFSSR.attach (PBD.plug) activates with a bare `lvchange -ay`
through util.pread2 — outside lvutil, so outside the LVHD hook. A ghost under that LV makes
PBD.plug fail (SR_BACKEND_FAILURE_52) and every VM on the host's local storage with it.

On the real kernel, in one boot: the seed ghost under the SR's LV; EXTSR.attach (a stand-in
written from SM's EXTSR, in the 8.3 flat layout, the 4.1.1+ package layout and 8.2's under
CPython 2.7) fails without the hook and mounts with it, each layout in turn; `dmheal heal
/dev/XSLocalEXT-<sr>/<sr>` heals it from the command line; a VDI-named LV in such a VG (SM
never makes one) is not a VDI's, and is never healed."""

import json
import os

import pytest

import uml
from conftest import PACKAGE_SOURCE, PYTHON27, PYTHON27_MISSING, PYTHON36

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "sm_standin")
EXT_VG = "XSLocalEXT-" + uml.SR
EXT_DM = EXT_VG.replace("-", "--") + "-" + uml.SR.replace("-", "--")
STRAY_DM = EXT_VG.replace("-", "--") + "-VHD--" + uml.VDI.replace("-", "--")

SCRIPT = r"""
export STANDIN=%(standin)s DMHEAL_BIN="$DMHEAL" DMHEAL_CONF="$WORK/dmheal.conf"
export SM_STANDIN_MOUNT_BASE=/run/sr-mount
"$SIMPY" "$HELPERS/syslog_sink.py" /dev/log "$OUT/syslog.txt" &
for i in $(seq 50); do grep -q ready "$OUT/syslog.txt" 2>/dev/null && break; sleep 0.1; done
echo "mode = heal" > "$DMHEAL_CONF"
# The local SR as SM creates it: VG XSLocalEXT-<sr>, one LV named <sr>, ext on it.
pvcreate -q -y /dev/ubda >/dev/null
vgcreate -q -s 4m "%(vg)s" /dev/ubda >/dev/null
lvcreate -q -y -n "$SR" -L 64m "%(vg)s" >/dev/null
mkfs.ext4 -q "/dev/%(vg)s/$SR"
lvcreate -q -y -n "VHD-$VDI" -L 8m "%(vg)s" >/dev/null
lvchange -q -an "%(vg)s/$SR"
export VG=%(vg)s LV="$SR"
# One run per SM layout and Python: the seed ghost under the SR's LV, attach without the hook
# (fails), with it (heals, mounts), then detach for the next.
attach_run() {  # attach_run NAME LAYOUT PYTHON BACKEND: dom0's Pythons take the package's
    local name=$1 layout=$2 py=$3 backend=$4 site="$WORK/site-$1"   # source, this one its wheel
    local pkg=""; [ "$py" != "$PYTHON" ] && pkg=%(pkg)s
    mkdir -p "$site"
    DMHEAL_PYTHON="$py" PYTHONPATH=$pkg "$DMHEAL" hook install --site-dir "$site" > "$OUT/install-$name.txt"
    lvchange -q -ay "%(vg)s/$SR"
    make_ghost "%(vg)s" "$SR"
    dm_state "%(dm)s" > "$OUT/$name.before"
    PYTHONPATH=$pkg "$py" "$HELPERS/activate.py" "$layout" off extsr > "$OUT/$name.without.json" 2>"$OUT/$name.err"
    DMHEAL_BACKEND=$backend PYTHONPATH=$pkg "$py" "$HELPERS/activate.py" "$layout" "$site" extsr > "$OUT/$name.with.json" 2>>"$OUT/$name.err"
    dm_state "%(dm)s" > "$OUT/$name.after"
    mountpoint -q "/run/sr-mount/$SR" && echo mounted > "$OUT/$name.mounted"
    umount "/run/sr-mount/$SR" 2>/dev/null
    lvchange -q -an "%(vg)s/$SR"
}
attach_run legacy legacy "%(py3)s" native
attach_run upstream upstream "%(py3)s" binary
%(py36_run)s
%(py27_run)s
# From the command line: the SR's own LV is a known volume; a VDI-named LV in this VG is not.
lvchange -q -ay "%(vg)s/$SR"
make_ghost "%(vg)s" "$SR"
capture cli_heal "$DMHEAL" --json heal "/dev/%(vg)s/$SR" --apply
dm_state "%(dm)s" > "$OUT/cli.after"
lvchange -q -ay "%(vg)s/VHD-$VDI"
make_ghost "%(vg)s" "VHD-$VDI"
capture stray "$DMHEAL" --json heal "/dev/%(vg)s/VHD-$VDI" --apply
dm_state "%(stray)s" > "$OUT/stray.after"
"""


def runs():
    """The runs the script made: the 8.3 flat layout and the 4.1.1+ package on this Python,
    the 8.3 layout on dom0's 3.6, 8.2's on 2.7."""
    return ["legacy", "upstream"] + (["x83py36"] if PYTHON36 else []) + ["x82"]


def test_a_ghost_under_a_local_srs_lv_is_healed_at_pbd_plug(kernel, dmheal_bin):
    if not PYTHON27:
        pytest.skip(PYTHON27_MISSING)
    py3 = "$PYTHON"  # the guest's: this Python, where the native module is installed
    py36_run = 'attach_run x83py36 legacy "%s" binary' % PYTHON36 if PYTHON36 else ""
    py27_run = 'attach_run x82 x82 "%s" binary' % PYTHON27
    r = kernel.run(SCRIPT % {"standin": STANDIN, "vg": EXT_VG, "dm": EXT_DM, "stray": STRAY_DM,
                             "pkg": PACKAGE_SOURCE, "py3": py3, "py36_run": py36_run,
                             "py27_run": py27_run},
                   dmheal_bin, timeout=400)
    assert r.rc == 0, r.output
    for name in runs():
        without = json.loads(r.file(name + ".without.json"))
        assert without["pread2_wrapped"] is False and not without["ok"], (name, without)
        # SR_BACKEND_FAILURE_52: EXTSR.attach turns lvchange's failure into LVMMount.
        assert without["code"] == 52 and "Unable to activate LV" in without["reason"], (name, without)
        with_hook = json.loads(r.file(name + ".with.json"))
        assert with_hook["pread2_wrapped"] is True, (name, with_hook, r.file(name + ".err"))
        assert with_hook["ok"] is True and with_hook["mounted"] is True, (name, with_hook, r.file(name + ".err"))
        assert r.file(name + ".before").split()[1:2] != r.file(name + ".after").split()[1:2]
        assert r.file(name + ".after").split()[1].startswith("LVM-"), (name, r.file(name + ".after"))
        assert r.has(name + ".mounted"), name
    lines = [l for l in r.file("syslog.txt").splitlines() if "dmheal:" in l]
    assert any("removed ghost" in l and "/dev/%s/%s" % (EXT_VG, uml.SR) in l for l in lines), lines
    cli = json.loads(r.file("cli_heal.out"))
    assert cli["action"] == "removed", cli
    assert any(x["code"] == "naming_sr_volume" for x in cli["inspection"]["reasons"])
    assert r.file("cli.after").strip() == "absent"
    stray = json.loads(r.file("stray.out"))
    assert stray["action"] == "refused" and int(r.file("stray.rc")) == 5, stray
    assert any(x["code"] == "naming_unknown_volume" for x in stray["inspection"]["reasons"])
    assert r.file("stray.after").strip() != "absent"
