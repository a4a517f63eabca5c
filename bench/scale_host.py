"""Build a dom0-like host at scale inside the user-mode kernel (run there by bench/scale.py and
tests/test_scale.py): one SR volume group with N one-extent LVs restored from LVM text metadata
(lvcreate one at a time is far too slow), N device-mapper mappings created in batches with
`dmsetup create --concise`, some of them ghosts (no uuid), some held open by processes, some
named by a paused tapdisk (the tap-ctl double). Writes the ground truth to $OUT/truth.json.

Ghosts come in both forms: uuid-less (a mapping a failed migration left) and stale-uuid (a
removed LV's LVM uuid, which no LV in the metadata has).

usage: scale_host.py N [GHOST_EVERY]   (env: VG, SR, WORK, OUT, TAPCTL_LIST_FILE)
  default: 1 in 50 a uuid-less ghost, 1 in 50 a stale-uuid ghost, 1 in 50 held open (at most
  200), 1 in 50 served by a tapdisk, the rest LVM's own. GHOST_EVERY=k (the batch benchmark):
  1 in k a ghost, alternately uuid-less and stale-uuid; 1 in k held (at most 200) and 1 in k
  served by a tapdisk; the rest LVM's own.
"""

import json
import os
import random
import string
import subprocess
import sys
import uuid

N = int(sys.argv[1])
GHOST_EVERY = int(sys.argv[2]) if len(sys.argv) > 2 else 0
VG = os.environ["VG"]
WORK, OUT = os.environ["WORK"], os.environ["OUT"]
EXTENT = 8  # sectors: 4 KiB extents
PE_START = 67584  # sectors: after a 32 MiB metadata area
rng = random.Random(1234)


def lvm_id():
    chars = string.ascii_letters + string.digits
    s = "".join(rng.choice(chars) for _ in range(32))
    return "-".join([s[:6], s[6:10], s[10:14], s[14:18], s[18:22], s[22:26], s[26:]])


pv_id, vg_id = lvm_id(), lvm_id()
vdis = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(N)]
lv_ids = [lvm_id() for _ in range(N)]
dev_sectors = int(subprocess.check_output(["blockdev", "--getsz", "/dev/ubda"]).decode())
pe_count = (dev_sectors - PE_START) // EXTENT

lvs = []
for i, (vdi, lid) in enumerate(zip(vdis, lv_ids)):
    lvs.append("""\t\tVHD-%s {
\t\t\tid = "%s"
\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]
\t\t\tflags = []
\t\t\tsegment_count = 1
\t\t\tsegment1 {
\t\t\t\tstart_extent = 0
\t\t\t\textent_count = 1
\t\t\t\ttype = "striped"
\t\t\t\tstripe_count = 1
\t\t\t\tstripes = ["pv0", %d]
\t\t\t}
\t\t}
""" % (vdi, lid, i))
meta = """%s {
\tid = "%s"
\tseqno = 1
\tformat = "lvm2"
\tstatus = ["RESIZEABLE", "READ", "WRITE"]
\tflags = []
\textent_size = %d
\tmax_lv = 0
\tmax_pv = 0
\tmetadata_copies = 0
\tphysical_volumes {
\t\tpv0 {
\t\t\tid = "%s"
\t\t\tdevice = "/dev/ubda"
\t\t\tstatus = ["ALLOCATABLE"]
\t\t\tflags = []
\t\t\tdev_size = %d
\t\t\tpe_start = %d
\t\t\tpe_count = %d
\t\t}
\t}
\tlogical_volumes {
%s\t}
}
contents = "Text Format Volume Group"
version = 1
description = "dmheal scale benchmark"
creation_host = "uml"
creation_time = 0
""" % (VG, vg_id, EXTENT, pv_id, dev_sectors, PE_START, pe_count, "".join(lvs))
path = os.path.join(WORK, "vg.meta")
with open(path, "w") as f:
    f.write(meta)
subprocess.check_call(["pvcreate", "-q", "-ff", "-y", "--uuid", pv_id, "--restorefile", path,
                       "--metadatasize", "32m", "/dev/ubda"], stdout=subprocess.DEVNULL)
subprocess.check_call(["vgcfgrestore", "-q", "-f", path, VG], stdout=subprocess.DEVNULL)

# Roles (see the usage above).
roles = []
for i in range(N):
    if GHOST_EVERY:
        r = i % GHOST_EVERY
        kind = "stale" if (i // GHOST_EVERY) % 2 else "ghost"
        roles.append(kind if r == 0 else "held" if r == 1 else "tapdisk" if r == 2 else "healthy")
    else:
        r = i % 50
        roles.append({0: "ghost", 1: "held", 2: "tapdisk", 3: "stale"}.get(r, "healthy"))
held = [i for i, r in enumerate(roles) if r == "held"][:200]
for i in range(N):
    if roles[i] == "held" and i not in held:
        roles[i] = "healthy"


def dm_name(vdi):
    return VG.replace("-", "--") + "-VHD--" + vdi.replace("-", "--")


specs = []
for i, vdi in enumerate(vdis):
    uuid_ = ""
    if roles[i] == "healthy":
        uuid_ = "LVM-" + vg_id.replace("-", "") + lv_ids[i].replace("-", "")
    elif roles[i] == "stale":  # the LVM uuid of an LV removed since: no LV has that id now
        uuid_ = "LVM-" + vg_id.replace("-", "") + lvm_id().replace("-", "")
    table = "0 %d linear 98:0 %d" % (EXTENT, PE_START + i * EXTENT)
    specs.append("%s,%s,%d,,%s" % (dm_name(vdi), uuid_, i, table))
for k in range(0, N, 200):
    subprocess.check_call(["dmsetup", "create", "--concise", ";".join(specs[k:k + 200])])

with open(os.environ["TAPCTL_LIST_FILE"], "w") as f:
    for i, vdi in enumerate(vdis):
        if roles[i] == "tapdisk":
            f.write("pid=%d minor=%d state=0x20 args=vhd:/dev/%s/VHD-%s\n" % (10000 + i, i, VG, vdi))

holders = []
for i in held:
    holders.append(subprocess.Popen(["sleep", "3600"], stdin=open("/dev/dm-%d" % i)).pid)

healthy, stale = roles.index("healthy"), roles.index("stale")
truth = {"n": N, "vg": VG, "roles": {dm_name(v): roles[i] for i, v in enumerate(vdis)},
         "holders": holders, "ghost_lv": "/dev/%s/VHD-%s" % (VG, vdis[0]),
         "ghost_spec": specs[0],
         "stale_lv": "/dev/%s/VHD-%s" % (VG, vdis[stale]), "stale_spec": specs[stale],
         "ghost_specs": [specs[i] for i, r in enumerate(roles) if r in ("ghost", "stale")],
         "healthy_lv": "/dev/%s/VHD-%s" % (VG, vdis[healthy]),
         "absent_lv": "/dev/%s/VHD-not-mapped" % VG}
with open(os.path.join(OUT, "truth.json"), "w") as f:
    json.dump(truth, f)
print("built %d mappings: %s" % (N, {r: roles.count(r) for r in set(roles)}))
