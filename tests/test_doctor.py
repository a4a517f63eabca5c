"""The cross-layer doctor on simulator scenarios (issues 5, 16 and 20): the seed incident's pool
gives exactly the expected findings and plan; SRs are judged by what is on their storage —
each host's survey, here each simulated host's own `pvs` answer (tests/doubles/pvs; the real
thing on the real kernel is tests/test_doctor_kernel.py) — so real pools' shapes (two NFS SRs
on one export, an in-use SR with a member down or a PBD that failed to plug, a phantom record
unplugged on three hosts, an SR whose only host is gone holding a halted VM's disk, a member in
maintenance mode with a stuck VM) are judged right; `--apply` does only what `restore` undoes
exactly, and a round trip over every finding kind leaves xapi as it was; for every check a
near miss where it must not fire."""

import copy
import json
import os
import subprocess

import pytest
import XenAPI

from xapi_sim.dump import database

from doctor_pools import (  # noqa: F401  (the fixture is used by name)
    DOUBLES, HOST_A, ROOT, SEED_FINDINGS, SEED_PVS, SEED_SAFE, WEB_VDI, XL_LIST, Run, add_sr,
    add_vdi, add_vm, by_key, keys, member, plans, pvs_report, run, seed, u)


def test_the_seed_pool_gives_exactly_the_expected_findings_and_plan(run):
    report, code = run().doctor()
    assert code == 3
    assert keys(report) == SEED_FINDINGS
    by = by_key(report)
    assert report["findings"][0]["severity"] == "critical"
    vm = by[("vm_without_domain", u(51))]
    assert vm["plan"][-1] == "xe vm-reset-powerstate uuid=%s --force" % u(51)
    assert vm["evidence"]["domains"] == [0, 8] and vm["evidence"]["domid"] == "7"
    # The old Local storage record: xcp-a's disk holds SR 10's volume group, and its only PBD
    # belongs to a host no longer in the database — one finding, every PBD's state in it.
    old = by[("duplicate_sr", u(11))]
    assert old["evidence"]["identity"]["state"] == "duplicate_of"
    assert old["evidence"]["kept"] == u(10)
    assert [p["state"] for p in old["evidence"]["pbds"]] == ["host not in database"]
    assert "VG_XenStorage-%s" % u(10) in old["summary"]
    assert old["plan"][0] == "xe sr-forget uuid=%s" % u(11)
    assert "host no longer in the database" in old["plan"][1]
    # The duplicate DVD and removable-storage records: the plugged ones serve /dev/xapi/*.
    for dup, kept in ((u(14), u(13)), (u(16), u(15))):
        assert by[("duplicate_sr", dup)]["evidence"]["kept"] == kept
        assert by[("duplicate_sr", dup)]["plan"] == ["xe sr-forget uuid=%s" % dup]
    safe = {k for k, f in by.items() if "safe_action" in f}
    assert safe == SEED_SAFE
    # sm-config is read-only to xe: the plan says what works.
    assert by[("stale_host_key", u(31))]["plan"][0].startswith("dmheal doctor --apply")
    # A duplicate's PBD is in its finding, not a finding of its own.
    assert not {k for k in by if k[0].startswith("pbd_")}


def test_apply_does_only_what_restore_undoes_exactly(run):
    r = run()
    report, code = r.doctor("--apply")
    assert code == 3  # findings that cannot be undone exactly remain (README's exit codes)
    assert sorted((a["action"], a["subject"].split()[1], a["result"]) for a in report["applied"]) == [
        ("SR.forget", u(14), "done"), ("SR.forget", u(16), "done"),
        ("VDI.remove_from_sm_config", u(31), "done")]
    x = r.sim.session().xenapi
    srs = {rec["uuid"] for rec in x.SR.get_all_records().values()}
    assert not {u(14), u(16)} & srs
    assert {u(10), u(11), u(12), u(13), u(15)} <= srs  # kept: the real ones, and what only a plan may touch
    web = x.VM.get_record(x.VM.get_by_uuid(u(51)))
    assert web["power_state"] == "Running"  # a power-state reset is a plan, never applied
    db = x.VDI.get_record(x.VDI.get_by_uuid(u(31)))
    assert "host_OpaqueRef:host-gone" not in db["sm_config"]
    # Journalled: an action entry (with what undoes it) before each change, its outcome after.
    journal = [json.loads(l) for l in open(r.env["DMHEAL_JOURNAL"])]
    assert [e["event"] for e in journal] == ["xapi_action", "outcome"] * 3
    assert all(e["undo"] for e in journal if e["event"] == "xapi_action")
    # What remains is reported, and none of what was fixed.
    remaining = keys(report, "remaining")
    assert not remaining & SEED_SAFE
    assert ("broken_vhd_chain", WEB_VDI) in remaining and ("vm_without_domain", u(51)) in remaining
    again, _ = r.doctor()
    assert keys(again) == remaining


def restore(r, entry):
    p = subprocess.run([r.bin, "--json", "--xapi", r.sim.socket, "restore", str(entry)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=r.env, timeout=120)
    return json.loads(p.stdout), p.returncode


def every_kind():
    """The seed, plus one instance of every finding kind --apply may act on that the seed lacks:
    a phantom iSCSI record unplugged on two hosts, with other-config, tags and PBD other-config
    that restore must give back exactly; and a member whose stuck VM and PBDs are plans only."""
    s = seed()
    s["host"]["OpaqueRef:host-b"] = {"uuid": u(60), "name_label": "xcp-b", "hostname": "xcp-b",
                                     "enabled": True, "metrics": "OpaqueRef:hm-b", "PBDs": [],
                                     "resident_VMs": []}
    s["host_metrics"]["OpaqueRef:hm-b"] = {"uuid": u(160), "live": True}
    hosts = [("OpaqueRef:host-a", True), ("OpaqueRef:host-b", True)]
    add_sr(s, hosts, "shared iSCSI", "lvmoiscsi", {"SCSIid": "360a98000"}, True, 70, shared=True)
    phantom = add_sr(s, [(h, False) for h, _ in hosts], "shared iSCSI", "lvmoiscsi",
                     {"SCSIid": "360a98000", "target": "192.0.2.50"}, False, 71, shared=True)
    s["SR"][phantom].update(other_config={"dirty": "", "auto-scan": "true"}, tags=["prod", "old"],
                            sm_config={"allocation": "thick", "use_vhd": "true"},
                            name_description="the iSCSI SR, as an upgrade introduced it again")
    for pbd in s["SR"][phantom]["PBDs"]:
        s["PBD"][pbd]["other_config"] = {"multipathed": "true", "mpath-3600a098": "[2, 2]"}
    return s


def test_every_applied_change_is_restored_exactly(run, tmp_path):
    """--apply on a pool holding every kind of finding, then `dmheal restore` of each entry it
    journalled: xapi's whole database is as it was, field by field."""
    s = every_kind()
    lun = ("/dev/disk/by-scsid/360a98000/sdc", "VG_XenStorage-" + u(70))
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    (b_dir / "pvs.json").write_text(pvs_report(lun))
    (b_dir / "xl").write_text(XL_LIST)
    s["sim"]["plugin_env"]["OpaqueRef:host-b"] = {
        "DMHEAL_HOST_UUID": u(60), "PVS_REPORT_FILE": str(b_dir / "pvs.json"),
        "XL_LIST_FILE": str(b_dir / "xl"), "DMHEAL_JOURNAL": str(b_dir / "journal.jsonl")}
    r = run(s, pvs=SEED_PVS + [lun])
    x = r.sim.session().xenapi
    before = database(x)
    report, _ = r.doctor("--apply")
    applied = {a["subject"].split()[1]: a for a in report["applied"]}
    assert set(applied) == {u(14), u(16), u(71), u(31)}, report["applied"]
    assert all(a["result"] == "done" for a in applied.values()), report["applied"]
    assert database(x) != before
    for a in report["applied"]:
        out, code = restore(r, a["journal_id"])
        assert code == 0, out
        assert out["undid"] == a["action"], out
    after = database(x)
    assert after == before, [(k, before.get(k), after.get(k)) for k in set(before) | set(after)
                             if before.get(k) != after.get(k)]
    # Undone once: a second restore of the same entry is refused.
    out, code = restore(r, applied[u(71)]["journal_id"])
    assert code == 1 and "restored it already" in out["error"]["message"]


def test_a_restore_that_cannot_be_exact_changes_nothing(run):
    """A forget whose PBD's host has left the pool since: restore refuses before it touches
    xapi (no half-made SR)."""
    r = run()
    report, _ = r.doctor("--apply")
    dvd = [a for a in report["applied"] if u(14) in a["subject"]][0]
    journal = [json.loads(l) for l in open(r.env["DMHEAL_JOURNAL"])]
    entry = [e for e in journal if e.get("id") == dvd["journal_id"]][0]
    assert entry["undo"]["sr"]["other_config"]["i18n-key"] == "local-hotplug-cd"
    # The host record goes (as if ejected): its uuid is no longer in the database.
    p = subprocess.run([os.sys.executable, os.path.join(ROOT, "tests", "xapi_sim", "ask.py"),
                        r.sim.socket, "sim.forget_host", HOST_A], stdout=subprocess.PIPE,
                       universal_newlines=True)
    assert p.returncode == 0, p.stdout
    x = r.sim.session().xenapi
    before = database(x)
    out, code = restore(r, dvd["journal_id"])
    assert code == 1 and "cannot be made again" in out["error"]["message"], out
    assert database(x) == before
    with pytest.raises(XenAPI.Failure):
        x.SR.get_by_uuid(u(14))


def test_an_old_entry_of_a_power_state_reset_is_refused_with_what_to_do(run, tmp_path):
    r = run()
    with open(r.env["DMHEAL_JOURNAL"], "w") as f:
        f.write(json.dumps({"id": 1, "time": "2026-11-01T00:00:00Z", "host": "xcp-a", "pid": 1,
                            "event": "xapi_action",
                            "action": "VM.power_state_reset", "subject": "VM %s" % u(51),
                            "evidence": {}, "result": "started",
                            "undo": {"vm_uuid": u(51), "power_state": "Running"}}) + "\n")
        f.write(json.dumps({"id": 2, "time": "2026-11-01T00:00:01Z", "host": "xcp-a", "pid": 1,
                            "event": "outcome", "of": 1,
                            "result": "done", "detail": "done"}) + "\n")
    out, code = restore(r, 1)
    assert code == 1 and out["error"]["kind"] == "refused"
    assert "xe vm-start uuid=%s" % u(51) in out["error"]["message"]


def test_two_nfs_srs_on_one_export_are_two_srs(run):
    s = seed()
    for n in (80, 81):
        sr = add_sr(s, "OpaqueRef:host-a", "NFS %d" % n, "nfs",
                    {"server": "192.0.2.9", "serverpath": "/export/xen"}, True, n, shared=True)
        add_vdi(s, sr, "data %d" % n, n + 100)
    report, _ = run(s).doctor("--apply")
    assert not {k for k in keys(report) if k[1] in (u(80), u(81))}, sorted(keys(report))
    assert "sr-forget uuid=%s" % u(80) not in plans(report)
    assert not [a for a in report["applied"] if u(80) in a["subject"] or u(81) in a["subject"]]


@pytest.mark.parametrize("shape", ["member down", "failed to plug", "maintenance and failed"])
def test_the_pools_in_use_iscsi_sr_is_never_a_duplicate(run, tmp_path, shape):
    """The default iSCSI SR, used by a running VM, with one member down or its PBD there not
    plugged: the finding is `xe pbd-plug` there (or wait for the host), never a forget."""
    s = seed()
    lun = ("/dev/disk/by-scsid/360a98000/sdc", "VG_XenStorage-" + u(70))
    b = member(s, tmp_path, "b", 60, live=(shape != "member down"),
               enabled=(shape != "maintenance and failed"), pvs=[lun])
    sr = add_sr(s, [("OpaqueRef:host-a", True), (b, False)], "shared iSCSI", "lvmoiscsi",
                {"SCSIid": "360a98000"}, True, 70, shared=True)
    vdi = add_vdi(s, sr, "db data", 170)
    add_vm(s, "db2", 90, "Running", "OpaqueRef:host-a", "8", vdis=[vdi])
    s["pool"]["OpaqueRef:pool-seed"]["default_SR"] = sr
    report, _ = run(s, pvs=SEED_PVS + [lun]).doctor("--apply")
    mine = {k[0] for k in keys(report) if k[1] == u(70)}
    want = {"host_down"} if shape == "member down" else {"pbd_unplugged"}
    assert mine == want, sorted(keys(report))
    f = [f for f in report["findings"] if f["code"] in want][0]
    assert "xe pbd-plug uuid=%s" % u(701) in " ".join(f["plan"])
    assert "sr-forget uuid=%s" % u(70) not in plans(report)
    assert [p["host"] for p in f["evidence"]["pbds"]] == ["xcp-a", "xcp-b"]


def test_a_phantom_unplugged_on_three_hosts_is_one_finding(run, tmp_path):
    s = seed()
    lun = ("/dev/disk/by-scsid/360a98000/sdc", "VG_XenStorage-" + u(70))
    b = member(s, tmp_path, "b", 60, pvs=[lun])
    c = member(s, tmp_path, "c", 61, pvs=[lun])
    hosts = ["OpaqueRef:host-a", b, c]
    add_sr(s, [(h, True) for h in hosts], "shared iSCSI", "lvmoiscsi", {"SCSIid": "360a98000"},
           True, 70, shared=True)
    add_sr(s, [(h, False) for h in hosts], "shared iSCSI", "lvmoiscsi", {"SCSIid": "360a98000"},
           False, 71, shared=True)
    report, _ = run(s, pvs=SEED_PVS + [lun]).doctor()
    mine = [f for f in report["findings"] if u(71) in f["subject"]]
    assert [f["code"] for f in mine] == ["duplicate_sr"], mine
    assert [p["host"] for p in mine[0]["evidence"]["pbds"]] == ["xcp-a", "xcp-b", "xcp-c"]
    assert mine[0]["evidence"]["kept"] == u(70) and "safe_action" in mine[0]
    assert not [f for f in report["findings"] if u(70) in f["subject"]]


def test_an_sr_whose_only_host_is_gone_holding_a_halted_vms_disk_is_kept(run):
    s = seed()
    sr = add_sr(s, "OpaqueRef:host-gone", "Archive", "lvm", {"device": "/dev/sdb"}, False, 72)
    vdi = add_vdi(s, sr, "archive disk", 172)
    add_vm(s, "archive", 92, "Halted", vdis=[vdi])
    report, _ = run(s).doctor("--apply")
    mine = [f for f in report["findings"] if u(72) in f["subject"]]
    assert [f["code"] for f in mine] == ["pbd_host_not_in_database"], mine
    f = mine[0]
    assert "VM %s (\"archive\", Halted)" % u(92) in f["summary"], f["summary"]
    steps = " ".join(f["plan"])
    assert "pbd-destroy" not in steps and "sr-forget" not in steps
    assert "xe pbd-create" in steps and "device-config:device=/dev/sdb" in steps and "xe pbd-plug" in steps
    assert not [a for a in report["applied"] if u(72) in a["subject"]]


def test_doctor_on_the_master_sees_a_members_stuck_vm_even_in_maintenance(run, tmp_path):
    """A member in maintenance mode (disabled, live) is surveyed like any other: its VM that
    xapi calls Running with no domain there is found; a down member is said as not checked."""
    s = seed()
    b = member(s, tmp_path, "b", 60, enabled=False)  # its xl lists dom0 only
    member(s, tmp_path, "c", 61, live=False)
    add_vm(s, "stuck", 93, "Running", b, "9")
    report, _ = run(s).doctor()
    by = by_key(report)
    stuck = by[("vm_without_domain", u(93))]
    assert "on xcp-b with domid 9" in stuck["summary"] and stuck["evidence"]["host"] == "xcp-b"
    assert "safe_action" not in stuck
    assert any("xcp-c not surveyed" in x for x in report["unchecked"]), report["unchecked"]
    # Its domain there: no finding.
    (tmp_path / "host-b" / "xl").write_text(
        XL_LIST + "stuck                                        9  2048     2     -b----       1.0\n")
    report, _ = run(s).doctor()
    assert ("vm_without_domain", u(93)) not in keys(report)


def test_xapi_paused_while_the_domain_runs_is_reported_not_acted_on(run):
    s = seed()
    s["VM"]["OpaqueRef:vm-db"]["power_state"] = "Paused"
    report, _ = run(s).doctor()
    f = by_key(report)[("vm_paused_with_domain", u(52))]
    assert "is running" in f["summary"] and "safe_action" not in f


def without(scenario, cls, *refs):
    for ref in refs:
        scenario[cls].pop(ref)
    return scenario


@pytest.mark.parametrize("name", [
    "duplicate_sr: the only copy",
    "duplicate_sr: another device",
    "duplicate_sr: the disk is unreadable",
    "duplicate_sr: two copies plugged",
    "vm_without_domain: domain exists",
    "vm_without_domain: tapdisk serves its disk",
    "vm_without_domain: domains unknown",
    "vm_without_domain: xenstore still has it",
    "vm_without_domain: resident elsewhere",
    "stale_host_key: host exists, tapdisk serves",
    "broken_vhd_chain: parent exists",
    "pbd_unplugged: host not live",
    "sr_without_pbds: has a PBD",
])
def test_near_misses_do_not_fire(run, name):
    s = seed()
    kw = {}
    absent = set()
    if name == "duplicate_sr: the only copy":
        s["SR"]["OpaqueRef:sr-local"]["PBDs"] = ["OpaqueRef:pbd-local"]
        without(s, "SR", "OpaqueRef:sr-local-old", "OpaqueRef:sr-local-nopbd")
        without(s, "PBD", "OpaqueRef:pbd-local-old")
        absent = {("duplicate_sr", u(11)), ("duplicate_sr", u(12))}
    elif name == "duplicate_sr: another device":
        s["PBD"]["OpaqueRef:pbd-local-old"]["device_config"] = {"device": "/dev/sdb"}
        absent = {("duplicate_sr", u(11))}
    elif name == "duplicate_sr: the disk is unreadable":
        kw["pvs"] = []  # pvs sees no PV: nothing proves whose /dev/sda3 is
        absent = {("duplicate_sr", u(11))}
    elif name == "duplicate_sr: two copies plugged":
        s["PBD"]["OpaqueRef:pbd-dvd-dup"]["currently_attached"] = True
        absent = {("duplicate_sr", u(14))}
    elif name == "vm_without_domain: domain exists":
        kw["xl"] = XL_LIST + "web                                          7  2048     2     -b----       1.0\n"
        absent = {("vm_without_domain", u(51))}
    elif name == "vm_without_domain: tapdisk serves its disk":
        kw["taps"] = "pid=99 minor=0 state=0 args=vhd:/dev/VG_XenStorage-%s/VHD-%s\n" % (u(10), WEB_VDI)
        absent = {("vm_without_domain", u(51))}
    elif name == "vm_without_domain: domains unknown":
        kw["xl"] = None
        absent = {("vm_without_domain", u(51))}
    elif name == "vm_without_domain: xenstore still has it":
        kw["xenstore"] = "0\n7\n8\n"  # xl lacks 7, xenstore has it: not provably gone
        absent = {("vm_without_domain", u(51))}
    elif name == "vm_without_domain: resident elsewhere":
        s["VM"]["OpaqueRef:vm-web"]["resident_on"] = "OpaqueRef:host-b"
        absent = {("vm_without_domain", u(51))}
    elif name == "stale_host_key: host exists, tapdisk serves":
        vdi = s["VDI"]["OpaqueRef:vdi-db"]["sm_config"]
        vdi.pop("host_OpaqueRef:host-gone")
        vdi["host_OpaqueRef:host-a"] = "RW"
        kw["taps"] = "pid=98 minor=1 state=0 args=vhd:/dev/VG_XenStorage-%s/VHD-%s\n" % (u(10), u(31))
        absent = {("stale_host_key", u(31))}
    elif name == "broken_vhd_chain: parent exists":
        s["VDI"]["OpaqueRef:vdi-web"]["sm_config"]["vhd-parent"] = u(32)
        absent = {("broken_vhd_chain", WEB_VDI)}
    elif name == "pbd_unplugged: host not live":
        s["PBD"]["OpaqueRef:pbd-removable"]["currently_attached"] = False
        s["host_metrics"]["OpaqueRef:hm-a"]["live"] = False
        absent = {("pbd_unplugged", u(15))}
    elif name == "sr_without_pbds: has a PBD":
        s["SR"]["OpaqueRef:sr-local-nopbd"]["PBDs"] = ["OpaqueRef:pbd-extra"]
        s["PBD"]["OpaqueRef:pbd-extra"] = {"uuid": u(25), "host": "OpaqueRef:host-gone",
                                           "SR": "OpaqueRef:sr-local-nopbd", "device_config": {}, "currently_attached": False}
        absent = {("sr_without_pbds", u(12))}
    report, _ = run(s, **kw).doctor()
    assert absent, name
    assert not (absent & keys(report)), (name, sorted(keys(report)))
    if name == "vm_without_domain: domains unknown":
        assert any("running domains unknown" in x for x in report["unchecked"])
    if name == "duplicate_sr: the disk is unreadable":
        assert "sr-forget uuid=%s" % u(11) not in plans(report)


def test_an_unplugged_pbd_on_a_live_host_fires(run):
    s = seed()
    s["PBD"]["OpaqueRef:pbd-removable"]["currently_attached"] = False
    report, _ = run(s).doctor()
    f = by_key(report)[("pbd_unplugged", u(15))]
    assert f["plan"][0].startswith("xe pbd-plug uuid=%s" % u(24))


def test_orphan_false_positives_stay_quiet_and_snapshot_orphans_do_not(run):
    report, _ = run().doctor()
    quiet = {u(32), u(36)}  # base copy (unmanaged), CD in a udev SR
    assert not {k for k in keys(report) if k[0] == "orphaned_vdi" and k[1] in quiet}
    # A snapshot VDI no VM snapshot uses is an orphan, as Xen Orchestra counts them.
    snap = [f for f in report["findings"] if f["code"] == "orphaned_vdi" and u(33) in f["subject"]]
    assert snap and "snapshot VDI" in snap[0]["summary"]


def test_the_plugin_runs_the_doctor_and_the_survey(run):
    r = run()
    x = r.sim.session().xenapi
    host = x.host.get_by_uuid(HOST_A)
    report = json.loads(x.host.call_plugin(host, "dmheal", "doctor", {}))
    assert keys(report) == SEED_FINDINGS
    with pytest.raises(XenAPI.Failure) as e:
        x.host.call_plugin(host, "dmheal", "doctor", {"apply": "perhaps"})
    assert e.value.details[0] == "DMHEAL_BAD_ARGS"
    survey = json.loads(x.host.call_plugin(host, "dmheal", "survey", {}))
    assert survey["host_uuid"] == HOST_A
    assert survey["storage"]["lvm"]["pvs"][0]["vg_name"] == "VG_XenStorage-" + u(10)
    assert survey["domains"]["domids"] == [0, 8]
