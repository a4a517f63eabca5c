"""The doctor judging SRs by what is on the storage, on the real kernel (issue 20): Debian's
lvm2 makes the volume groups SM would — "Local storage" on one disk, a shared LUN (named the
way SM's udev rules name it, /dev/disk/by-scsid/<SCSIid>/) on another — and the xapi simulator
holds the records an upgrade left: an old Local storage record of the same disk whose host is
gone, a second record of the LUN unplugged everywhere, two NFS SRs on one export. The survey
is `pvs` and /dev as they are; `--apply` forgets only the phantom, and `restore` gives it back
field by field."""

import json
import os

import uml

SIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xapi_sim")
HOST_A = "a0000000-0000-4000-8000-00000000000a"
HOST_B = "b0000000-0000-4000-8000-00000000000b"
LOCAL = uml.SR
OLD = "00000011-0000-4000-8000-000000000011"
ISCSI = "00000070-0000-4000-8000-000000000070"
PHANTOM = "00000071-0000-4000-8000-000000000071"
SCSI_ID = "360a98000383035537824474d3936556a"


def u(n):
    return "%08d-0000-4000-8000-%012d" % (n, n)


def scenario():
    s = {c: {} for c in ("host", "host_metrics", "SR", "PBD", "VDI", "VBD", "VM", "pool")}
    for h, uuid in (("a", HOST_A), ("b", HOST_B)):
        s["host"]["OpaqueRef:host-" + h] = {
            "uuid": uuid, "name_label": "xcp-" + h, "hostname": "xcp-" + h, "enabled": True,
            "metrics": "OpaqueRef:hm-" + h, "PBDs": [], "resident_VMs": [],
            "software_version": {"product_brand": "XCP-ng", "product_version": "8.3.0"}}
        s["host_metrics"]["OpaqueRef:hm-" + h] = {"uuid": u(100 + ord(h)), "live": True}
    s["pool"]["OpaqueRef:pool"] = {"uuid": u(1), "master": "OpaqueRef:host-a",
                                   "default_SR": "OpaqueRef:sr-iscsi"}

    def sr(ref, uuid, name, kind, config, pbds, shared=False, **extra):
        s["SR"][ref] = dict({"uuid": uuid, "name_label": name, "type": kind,
                             "content_type": "user", "shared": shared, "PBDs": [], "VDIs": []},
                            **extra)
        for i, (host, plugged) in enumerate(pbds):
            p = "%s-pbd%d" % (ref, i)
            s["PBD"][p] = {"uuid": "%s%d" % (uuid[:-1], i), "host": host, "SR": ref,
                           "device_config": dict(config), "currently_attached": plugged,
                           "other_config": {"multipathed": "true"} if kind == "lvmoiscsi" else {}}
            s["SR"][ref]["PBDs"].append(p)
            if host in s["host"]:
                s["host"][host]["PBDs"].append(p)
    a, b = "OpaqueRef:host-a", "OpaqueRef:host-b"
    sr("OpaqueRef:sr-local", LOCAL, "Local storage", "lvm", {"device": "/dev/ubda"}, [(a, True)])
    sr("OpaqueRef:sr-old", OLD, "Local storage", "lvm", {"device": "/dev/ubda"},
       [("OpaqueRef:host-gone", False)])
    sr("OpaqueRef:sr-iscsi", ISCSI, "shared iSCSI", "lvmoiscsi",
       {"SCSIid": SCSI_ID, "target": "192.0.2.50"}, [(a, True), (b, True)], shared=True)
    sr("OpaqueRef:sr-phantom", PHANTOM, "shared iSCSI", "lvmoiscsi",
       {"SCSIid": SCSI_ID, "target": "192.0.2.50"}, [(a, False), (b, False)], shared=True,
       other_config={"auto-scan": "true"}, tags=["old"], sm_config={"allocation": "thick"},
       name_description="introduced again by an upgrade")
    for n in (80, 81):
        sr("OpaqueRef:sr-nfs%d" % n, u(n), "NFS %d" % n, "nfs",
           {"server": "192.0.2.9", "serverpath": "/export/xen"}, [(a, True), (b, True)],
           shared=True)
    # A VM using the iSCSI SR, running on xcp-b.
    s["VDI"]["OpaqueRef:vdi-db"] = {"uuid": u(31), "name_label": "db disk", "SR": "OpaqueRef:sr-iscsi",
                                    "VBDs": ["OpaqueRef:vbd-db"], "type": "user", "managed": True,
                                    "sm_config": {}, "other_config": {}, "virtual_size": "8388608",
                                    "snapshot_of": "OpaqueRef:NULL", "snapshots": []}
    s["SR"]["OpaqueRef:sr-iscsi"]["VDIs"] = ["OpaqueRef:vdi-db"]
    s["VBD"]["OpaqueRef:vbd-db"] = {"uuid": u(41), "VM": "OpaqueRef:vm-db", "VDI": "OpaqueRef:vdi-db",
                                    "device": "xvda", "userdevice": "0", "type": "Disk", "mode": "RW",
                                    "currently_attached": True}
    s["VM"]["OpaqueRef:vm-db"] = {"uuid": u(52), "name_label": "db", "power_state": "Running",
                                  "resident_on": b, "domid": "8", "VBDs": ["OpaqueRef:vbd-db"],
                                  "is_control_domain": False, "suspend_VDI": "OpaqueRef:NULL"}
    s["sim"] = {"password": "", "plugin_env": {b: {"DMHEAL_HOST_UUID": HOST_B,
                                                    "DMHEAL_JOURNAL": "/run/dmheal/journal-b.jsonl"}}}
    return s


SCRIPT = r"""
export DMHEAL_BIN="$DMHEAL" PATH="%(doubles)s:$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="%(sim)s:$PYTHONPATH" DMHEAL_HOST_UUID=%(host_a)s DMHEAL_BACKEND=binary
export DMHEAL_XAPI=/run/xapi/xapi XL_LIST_FILE="$WORK/xl" TAPCTL_LIST_FILE="$WORK/taps"
printf 'Name ID Mem VCPUs State Time(s)\nDomain-0 0 4096 8 r----- 1.0\ndb 8 2048 2 -b---- 1.0\n' > "$WORK/xl"
: > "$WORK/taps"
# Local storage's VG on ubda; the LUN's on ubdb, named as SM's udev rules name a LUN.
pvcreate -q -y /dev/ubda /dev/ubdb >/dev/null
vgcreate -q -s 4m "VG_XenStorage-%(local)s" /dev/ubda >/dev/null
vgcreate -q -s 4m "VG_XenStorage-%(iscsi)s" /dev/ubdb >/dev/null
mkdir -p "/dev/disk/by-scsid/%(scsi)s"
ln -s ../../../ubdb "/dev/disk/by-scsid/%(scsi)s/ubdb"
cat > "$WORK/scenario.json" <<'JSON'
%(scenario)s
JSON
mkdir -p /run/xapi
"$SIMPY" "%(sim)s/simulator.py" "$WORK/scenario.json" --unix /run/xapi/xapi \
    --plugins "$(dirname "$HELPERS")/../xapi-plugin" --ready /run/xapi/ready &
for i in $(seq 100); do [ -e /run/xapi/ready ] && break; sleep 0.1; done
capture survey "$DMHEAL" --json survey
"$SIMPY" "%(sim)s/dump.py" /run/xapi/xapi > "$OUT/db.before"
capture apply "$DMHEAL" --json doctor --apply --host-timeout 30
"$SIMPY" "%(sim)s/dump.py" /run/xapi/xapi > "$OUT/db.applied"
ids=$("$SIMPY" -c "import json; print(' '.join(str(a['journal_id']) for a in json.load(open('$OUT/apply.out'))['applied']))")
echo $ids > "$OUT/ids"
for id in $ids; do capture restore_$id "$DMHEAL" --json restore $id; done
"$SIMPY" "%(sim)s/dump.py" /run/xapi/xapi > "$OUT/db.restored"
"""


def test_the_storage_says_whose_it_is_and_only_a_phantom_is_forgotten(kernel, dmheal_bin):
    doubles = os.path.join(os.path.dirname(SIM_DIR), "doubles")
    r = kernel.run(SCRIPT % {"sim": SIM_DIR, "host_a": HOST_A, "doubles": doubles, "local": LOCAL,
                             "iscsi": ISCSI, "scsi": SCSI_ID,
                             "scenario": json.dumps(scenario(), indent=1)},
                   dmheal_bin, second_disk_mb=64)
    assert r.rc == 0, r.output
    survey = json.loads(r.file("survey.out"))
    pvs = {pv["vg_name"]: pv for pv in survey["storage"]["lvm"]["pvs"]}
    assert pvs["VG_XenStorage-" + ISCSI]["scsi_ids"] == [SCSI_ID], survey
    assert "/dev/disk/by-scsid/%s/ubdb" % SCSI_ID in pvs["VG_XenStorage-" + ISCSI]["names"]
    assert pvs["VG_XenStorage-" + LOCAL]["device"] == "/dev/ubda"

    report = json.loads(r.file("apply.out"))
    by = {(f["code"], f["subject"].split()[1]): f for f in report["findings"]}
    # The phantom LUN record and the old local record are duplicates, by their VGs' names.
    assert by[("duplicate_sr", PHANTOM)]["evidence"]["kept"] == ISCSI
    assert by[("duplicate_sr", OLD)]["evidence"]["kept"] == LOCAL
    assert "safe_action" not in by[("duplicate_sr", OLD)]  # its host is gone: not restorable
    # The real ones, the NFS pair and the VM's SR: nothing.
    for sr in (LOCAL, ISCSI, u(80), u(81)):
        assert not [k for k in by if k[1] == sr], (sr, sorted(by))
    assert [(a["action"], a["subject"].split()[1], a["result"]) for a in report["applied"]] == [
        ("SR.forget", PHANTOM, "done")]
    applied = json.loads(r.file("db.applied"))
    assert PHANTOM not in {x["uuid"] for x in applied["SR"].values()}
    assert OLD in {x["uuid"] for x in applied["SR"].values()}
    for i in r.file("ids").split():
        out = json.loads(r.file("restore_%s.out" % i))
        assert out["undid"] == "SR.forget" and "checked equal" in out["message"], out
    assert json.loads(r.file("db.restored")) == json.loads(r.file("db.before"))
