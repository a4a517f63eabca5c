"""The doctor against Xen Orchestra's Health view (issue 24): one scenario per check XO shows
about storage and VM state, each with exactly one instance, on a clean two-host pool that
gives no finding at all. XO's checks (xo-web dashboard/health, xo-server getVdiChainsInfo):
SR usage (80 % and 90 %), VDIs to coalesce, VDIs with an invalid VHD parent, orphaned VDIs and
orphaned VDI snapshots, VDIs attached to the control domain, a local default SR in a pool of
several hosts, a pool without a default SR, orphaned VM snapshots, too many snapshots,
snapshots older than thirty days, alarms. docs/doctor.md has the table."""

import copy
import time

import pytest

from doctor_pools import XL_LIST, add_sr, add_vdi, add_vm, member, u  # noqa: F401
from doctor_pools import run  # noqa: F401  (the fixture)

DAY = 86400


def stamp(seconds_ago):
    return time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))


def clean(tmp_path):
    """Two hosts; a shared NFS SR as the pool's default, 10 % used; VM "app" running on xcp-b
    (its domain there) with its disk on the NFS SR and two recent snapshots; the control
    domains with no VBD; no message but a routine one."""
    s = {c: {} for c in ("host", "host_metrics", "SR", "PBD", "VDI", "VBD", "VM", "pool", "message")}
    s["host"]["OpaqueRef:host-a"] = {"uuid": "a0000000-0000-4000-8000-00000000000a", "name_label": "xcp-a",
                                     "enabled": True, "metrics": "OpaqueRef:hm-a", "PBDs": [],
                                     "resident_VMs": []}
    s["host_metrics"]["OpaqueRef:hm-a"] = {"uuid": u(102), "live": True}
    b = member(s, tmp_path, "b", 60,
               xl=XL_LIST.splitlines()[0] + "\nDomain-0 0 4096 8 r----- 1.0\napp 5 2048 2 -b---- 1.0\n")
    nfs = add_sr(s, [("OpaqueRef:host-a", True), (b, True)], "NFS", "nfs",
                 {"server": "192.0.2.9", "serverpath": "/export"}, True, 70, shared=True)
    s["SR"][nfs].update(physical_size="1000", physical_utilisation="100")
    s["pool"]["OpaqueRef:pool"] = {"uuid": u(1), "master": "OpaqueRef:host-a", "default_SR": nfs,
                                   "suspend_image_SR": "OpaqueRef:NULL", "crash_dump_SR": "OpaqueRef:NULL"}
    disk = add_vdi(s, nfs, "app disk", 171)
    app = add_vm(s, "app", 80, "Running", b, "5", vdis=[disk])
    for i in range(2):
        snap = add_vm(s, "app snapshot %d" % i, 81 + i, "Halted")
        s["VM"][snap].update(is_a_snapshot=True, snapshot_of=app, snapshot_time=stamp(DAY * (i + 1)))
        s["VM"][app].setdefault("snapshots", []).append(snap)
    for h, n in (("OpaqueRef:host-a", 90), (b, 91)):
        dom0 = add_vm(s, "Control domain", n, "Running", h, "0")
        s["VM"][dom0]["is_control_domain"] = True
    s["message"]["OpaqueRef:message-1"] = {"uuid": u(400), "name": "VM_STARTED", "priority": "5",
                                           "cls": "VM", "obj_uuid": u(80),
                                           "timestamp": stamp(60), "body": ""}
    return s


def findings(run, s):
    report, _ = run(s, pvs=[]).doctor()
    return [(f["code"], f["subject"].split()[1]) for f in report["findings"]], report


def test_a_clean_pool_gives_no_finding(run, tmp_path):
    got, report = findings(run, clean(tmp_path))
    assert got == [], report["findings"]


def usage(s, used):
    s["SR"]["OpaqueRef:sr-70"]["physical_utilisation"] = str(used)


def chain_to_coalesce(s):
    base = add_vdi(s, "OpaqueRef:sr-70", "base copy", 172)
    s["VDI"][base]["managed"] = False
    s["VDI"]["OpaqueRef:vdi-171"]["sm_config"] = {"vhd-parent": u(172)}


def invalid_parent(s):
    s["VDI"]["OpaqueRef:vdi-171"]["sm_config"] = {"vhd-parent": u(999)}


def orphaned_vdi(s, snapshot=False):
    v = add_vdi(s, "OpaqueRef:sr-70", "left over", 173)
    s["VDI"][v]["is_a_snapshot"] = snapshot


def on_control_domain(s):
    v = add_vdi(s, "OpaqueRef:sr-70", "export in progress", 174)
    s["VBD"]["OpaqueRef:vbd-dom0"] = {"uuid": u(474), "VM": "OpaqueRef:vm-90", "VDI": v,
                                      "device": "xvdb", "userdevice": "1", "type": "Disk",
                                      "mode": "RW", "currently_attached": False}
    s["VM"]["OpaqueRef:vm-90"]["VBDs"].append("OpaqueRef:vbd-dom0")
    s["VDI"][v]["VBDs"].append("OpaqueRef:vbd-dom0")


def local_default(s):
    local = add_sr(s, "OpaqueRef:host-a", "Local storage", "lvm", {"device": "/dev/sdb"}, True, 75)
    s["SR"][local].update(physical_size="1000", physical_utilisation="10")
    s["pool"]["OpaqueRef:pool"]["default_SR"] = local


def no_default(s):
    s["pool"]["OpaqueRef:pool"]["default_SR"] = "OpaqueRef:NULL"


def orphaned_snapshot(s):
    snap = add_vm(s, "snapshot of a deleted VM", 85, "Halted")
    s["VM"][snap].update(is_a_snapshot=True, snapshot_of="OpaqueRef:vm-deleted",
                         snapshot_time=stamp(DAY))


def too_many(s):
    for i in range(4):  # two already: six in all
        snap = add_vm(s, "more %d" % i, 86 + i, "Halted")
        s["VM"][snap].update(is_a_snapshot=True, snapshot_of="OpaqueRef:vm-80", snapshot_time=stamp(DAY))
        s["VM"]["OpaqueRef:vm-80"]["snapshots"].append(snap)


def old_snapshot(s):
    s["VM"]["OpaqueRef:vm-81"]["snapshot_time"] = stamp(DAY * 45)


def alarm(s):
    for i, ago in enumerate((3600, 60)):  # two of one alarm: one finding, the newest said
        s["message"]["OpaqueRef:message-alarm-%d" % i] = {
            "uuid": u(410 + i), "name": "ALARM", "priority": "3", "cls": "SR", "obj_uuid": u(70),
            "timestamp": stamp(ago),
            "body": "value: 0.85\nconfig:\n<variable>\n<name value=\"physical_utilisation\"/>\n</variable>"}


SCENARIOS = [
    ("sr_usage_high", u(70), lambda s: usage(s, 850)),
    ("sr_nearly_full", u(70), lambda s: usage(s, 950)),
    ("vdi_to_coalesce", u(171), chain_to_coalesce),
    ("broken_vhd_chain", u(171), invalid_parent),
    ("orphaned_vdi", u(173), orphaned_vdi),
    ("orphaned_vdi", u(173), lambda s: orphaned_vdi(s, snapshot=True)),
    ("vdi_on_control_domain", u(174), on_control_domain),
    ("default_sr_local", u(1), local_default),
    ("no_default_sr", u(1), no_default),
    ("orphaned_vm_snapshot", u(85), orphaned_snapshot),
    ("too_many_snapshots", u(80), too_many),
    ("old_snapshot", u(81), old_snapshot),
    ("alarm", u(70), alarm),
]


@pytest.mark.parametrize("check, subject, change", SCENARIOS,
                         ids=[c + ("-snapshot" if i == 5 else "") for i, (c, _, _) in enumerate(SCENARIOS)])
def test_each_of_xos_checks_fires_once_on_its_scenario(run, tmp_path, check, subject, change):
    s = clean(tmp_path)
    change(s)
    got, report = findings(run, copy.deepcopy(s))
    assert got == [(check, subject)], report["findings"]
    f = report["findings"][0]
    assert f["plan"] and f["evidence"], f
    assert "safe_action" not in f  # none of them is applied by --apply: plans only


def test_alarms_are_one_finding_per_object_with_the_newest(run, tmp_path):
    s = clean(tmp_path)
    alarm(s)
    _, report = findings(run, s)
    (f,) = report["findings"]
    assert f["evidence"]["count"] == 2 and f["evidence"]["newest"] == s["message"]["OpaqueRef:message-alarm-1"]["timestamp"]


def test_the_refcount_check_works_without_device_mapper(run, tmp_path):
    """This machine has no device-mapper: no mapping can be open, so a refcount SM keeps for a
    VDI nothing here uses is stale all the same (SM's runtime directory pointed at the test's)."""
    import os
    s = clean(tmp_path)
    sm = tmp_path / "sm"
    (sm / "refcount" / ("lvm-" + u(70))).mkdir(parents=True)
    (sm / "refcount" / ("lvm-" + u(70)) / u(171)).write_text("0 1\n")
    r = run(s, pvs=[])
    r.env["DMHEAL_SM_RUN_DIR"] = str(sm)
    report, _ = r.doctor()
    if os.path.exists("/dev/mapper/control"):
        pytest.skip("this machine has device-mapper: the kernel tests cover the refcount check")
    assert [(f["code"], f["subject"].split()[1]) for f in report["findings"]] == [("stale_sm_refcount", u(171))]
    assert not any("device-mapper" in x for x in report["unchecked"])
