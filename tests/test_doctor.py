"""The cross-layer doctor on simulator scenarios (issues 5 and 16): the seed incident's pool
gives exactly the expected findings and plan; real pools' shapes (a second live host, a second
disk, a host down, a PBD that failed to plug, a halted VM's disk in a duplicate) are judged by
storage identity per host; --apply leaves the simulator as xapi would be left, journals what
undoes each action, and `dmheal restore` undoes it; for every check a near miss where it must
not fire."""

import copy
import json
import os
import subprocess

import pytest
import XenAPI

from xapi_sim.harness import SCENARIOS, Simulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOUBLES = os.path.join(ROOT, "tests", "doubles")
HOST_A = "a0000000-0000-4000-8000-00000000000a"
WEB_VDI = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"


def u(n):
    return "%08d-0000-4000-8000-%012d" % (n, n)


XL_LIST = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n" \
          "Domain-0                                     0  4096     8     r-----    1234.5\n" \
          "db                                           8  2048     2     -b----      12.0\n"

SEED_FINDINGS = {
    ("vm_without_domain", u(51)), ("broken_vhd_chain", WEB_VDI),
    ("duplicate_sr", u(11)), ("duplicate_sr", u(14)),
    ("sr_without_pbds", u(12)), ("pbd_host_not_in_database", u(21)), ("stale_host_key", u(31)),
    ("vdi_on_control_domain", u(34)), ("orphaned_vdi", u(35)), ("orphaned_vdi", u(33)),
    ("vdi_to_coalesce", u(31)),
}
# What --apply may do by itself on the seed: forget the records nothing refers to, reset the
# domain-less VM, remove the mark of a host that is not in the database.
SEED_SAFE = {("duplicate_sr", u(11)), ("duplicate_sr", u(14)), ("sr_without_pbds", u(12)),
             ("vm_without_domain", u(51)), ("stale_host_key", u(31))}


def seed():
    with open(os.path.join(SCENARIOS, "seed_pool.json")) as f:
        return json.load(f)


class Run(object):
    """A simulator for one scenario and the dmheal CLI pointed at it."""

    def __init__(self, tmp_path, dmheal_bin, scenario, xl=XL_LIST, taps="", xenstore=None):
        path = tmp_path / "scenario.json"
        path.write_text(json.dumps(scenario))
        (tmp_path / "xl").write_text(xl or "")
        (tmp_path / "taps").write_text(taps)
        self.env = dict(os.environ, DMHEAL_JOURNAL=str(tmp_path / "journal.jsonl"),
                        TAPCTL_LIST_FILE=str(tmp_path / "taps"), XL_LIST_FILE=str(tmp_path / "xl"),
                        DMHEAL_HOST_UUID=HOST_A, DMHEAL_BIN=dmheal_bin)
        self.env.pop("XENSTORE_DOMAINS_FILE", None)
        if xenstore is not None:
            (tmp_path / "xenstore").write_text(xenstore)
            self.env["XENSTORE_DOMAINS_FILE"] = str(tmp_path / "xenstore")
        if xl is not None:
            self.env["PATH"] = DOUBLES + os.pathsep + self.env["PATH"]
        else:  # no domain facts at all: no xl, no xenstore-list, but tap-ctl still there
            only = tmp_path / "bin"
            only.mkdir()
            os.symlink(os.path.join(DOUBLES, "tap-ctl"), str(only / "tap-ctl"))
            self.env["PATH"] = str(only) + os.pathsep + self.env["PATH"]
        self.sim = Simulator(str(path), env=self.env)
        self.bin = dmheal_bin

    def doctor(self, *extra):
        p = subprocess.run([self.bin, "--json", "--xapi", self.sim.socket, "doctor"] + list(extra),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           env=self.env, timeout=120)
        assert p.returncode in (0, 3), p.stderr
        return json.loads(p.stdout), p.returncode

    def stop(self):
        self.sim.stop()


@pytest.fixture
def run(tmp_path, dmheal_bin):
    runs = []

    def start(scenario=None, **kw):
        d = tmp_path / ("r%d" % len(runs))
        d.mkdir()
        r = Run(d, dmheal_bin, scenario or seed(), **kw)
        runs.append(r)
        return r
    yield start
    for r in runs:
        r.stop()


def keys(report):
    return {(f["check"], f["subject"].split()[1]) for f in report["findings"]}


def test_the_seed_pool_gives_exactly_the_expected_findings_and_plan(run):
    report, code = run().doctor()
    assert code == 3
    assert keys(report) == SEED_FINDINGS
    by = {(f["check"], f["subject"].split()[1]): f for f in report["findings"]}
    assert report["findings"][0]["severity"] == "critical"
    vm = by[("vm_without_domain", u(51))]
    assert vm["plan"] == ["xe vm-reset-powerstate uuid=%s --force" % u(51)]
    assert vm["evidence"]["domains"] == [0, 8] and vm["evidence"]["domid"] == "7"
    assert by[("duplicate_sr", u(11))]["plan"] == ["xe sr-forget uuid=%s" % u(11), "xe sr-scan uuid=%s" % u(10)]
    assert by[("duplicate_sr", u(11))]["evidence"]["duplicate"]["pbds"][0]["host"] == "<not in database>"
    assert by[("duplicate_sr", u(11))]["evidence"]["identity"] == "lvm device=/dev/sda3"
    safe = {k for k, f in by.items() if "safe_action" in f}
    assert safe == SEED_SAFE
    # sm-config is read-only to xe: the plan says what works.
    assert by[("stale_host_key", u(31))]["plan"][0].startswith("dmheal doctor --apply")
    # The duplicate DVD SR has a PBD on a live host: a recommendation, not a safe action, and its
    # unplugged PBD is not reported twice.
    assert ("pbd_unplugged", u(23)) not in keys(report)
    assert any("device-mapper mappings not scanned" in x for x in report["unchecked"]) or \
        os.path.exists("/dev/mapper/control")


def test_apply_does_the_safe_subset_and_leaves_xapi_as_expected(run):
    r = run()
    report, code = r.doctor("--apply")
    assert code == 3  # findings that are not safe to fix by itself remain (README's exit codes)
    assert sorted((a["action"], a["result"].split(";")[0]) for a in report["applied"]) == [
        ("SR.forget", "done"), ("SR.forget", "done"), ("SR.forget", "done"),
        ("VDI.remove_from_sm_config", "done"), ("VM.power_state_reset", "done")]
    x = r.sim.session().xenapi
    srs = {rec["uuid"] for rec in x.SR.get_all_records().values()}
    assert not {u(11), u(12), u(14)} & srs
    assert {u(10), u(13), u(15)} <= srs  # kept: the plugged copies
    with pytest.raises(XenAPI.Failure):
        x.VDI.get_by_uuid(u(35))  # forgotten with its SR
    web = x.VM.get_record(x.VM.get_by_uuid(u(51)))
    assert web["power_state"] == "Halted" and web["domid"] == "-1"
    assert x.VM.get_record(x.VM.get_by_uuid(u(52)))["power_state"] == "Running"
    db = x.VDI.get_record(x.VDI.get_by_uuid(u(31)))
    assert "host_OpaqueRef:host-gone" not in db["sm_config"]
    # Journalled: an action entry (with what undoes it) before each change, its outcome after.
    journal = [json.loads(l) for l in open(r.env["DMHEAL_JOURNAL"])]
    assert [e["event"] for e in journal] == ["xapi_action", "outcome"] * 5
    assert all(e["undo"] for e in journal if e["event"] == "xapi_action")
    # What remains is reported, and none of what was fixed.
    remaining = keys({"findings": report["remaining"]})
    assert not remaining & SEED_SAFE
    assert ("broken_vhd_chain", WEB_VDI) in remaining
    again, _ = r.doctor()
    assert keys(again) == remaining


def restore(r, entry):
    p = subprocess.run([r.bin, "--json", "--xapi", r.sim.socket, "restore", str(entry)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       env=r.env, timeout=120)
    return json.loads(p.stdout), p.returncode


def test_apply_then_restore_round_trips(run):
    """Every action --apply took is undone by `dmheal restore <id>`: SRs introduced again with
    their uuid, PBDs for the hosts still in the database (plugged where they were), VDIs back
    from the storage; the sm-config mark put back; a power-state reset refused, with what to do."""
    r = run()
    before = r.sim.session().xenapi
    records = {u: before.SR.get_record(before.SR.get_by_uuid(u)) for u in (u(11), u(12), u(14))}
    report, _ = r.doctor("--apply")
    by_subject = {a["subject"].split()[1]: a for a in report["applied"]}
    x = r.sim.session().xenapi
    for sr in (u(11), u(12), u(14)):
        out, code = restore(r, by_subject[sr]["journal_id"])
        assert code == 0, out
        assert out["undid"] == "SR.forget", out
        rec = x.SR.get_record(x.SR.get_by_uuid(sr))
        for field in ("name_label", "type", "content_type", "shared", "sm_config"):
            assert rec[field] == records[sr][field], (sr, field)
    # The DVD duplicate's PBD is back on xcp-a, unplugged as it was; the old record's PBD
    # belonged to a host no longer in the database: not recreated, said so.
    dvd = x.SR.get_record(x.SR.get_by_uuid(u(14)))
    assert len(dvd["PBDs"]) == 1 and not x.PBD.get_record(dvd["PBDs"][0])["currently_attached"]
    assert "not in the database" in restore_message(r, by_subject[u(11)]["journal_id"])
    # Its VDI came back from the storage.
    assert x.VDI.get_record(x.VDI.get_by_uuid(u(35)))["SR"] == x.SR.get_by_uuid(u(11))
    out, _ = restore(r, by_subject[u(31)]["journal_id"])
    assert out["undid"] == "VDI.remove_from_sm_config"
    assert x.VDI.get_record(x.VDI.get_by_uuid(u(31)))["sm_config"]["host_OpaqueRef:host-gone"] == "RW"
    out, code = restore(r, by_subject[u(51)]["journal_id"])
    assert code == 1 and out["error"]["kind"] == "refused"
    assert "xe vm-start uuid=%s" % u(51) in out["error"]["message"]
    # Undone once: a second restore of the same entry is refused.
    out, code = restore(r, by_subject[u(14)]["journal_id"])
    assert code == 1 and "restored it already" in out["error"]["message"]


def restore_message(r, entry):
    journal = [json.loads(l) for l in open(r.env["DMHEAL_JOURNAL"])]
    return [e for e in journal if e["event"] == "restore" and e["of"] == entry][0]["detail"]


def add_host(s, name, live=True, local=None, plugged=True):
    """A second host (and its own local storage on /dev/sda3 unless `local` says otherwise)."""
    ref = "OpaqueRef:host-%s" % name
    n = 60 + len(s["host"])
    s["host"][ref] = {"uuid": u(n), "name_label": name, "hostname": name, "enabled": True,
                      "metrics": "OpaqueRef:hm-%s" % name, "PBDs": [], "resident_VMs": []}
    s["host_metrics"]["OpaqueRef:hm-%s" % name] = {"uuid": u(n + 100), "live": live}
    sr = None
    if local is not False:
        sr = add_sr(s, ref, "Local storage", local or "/dev/sda3", plugged, n + 200)
    return ref, sr


def add_sr(s, host, name, device, plugged, n):
    sr, pbd = "OpaqueRef:sr-%d" % n, "OpaqueRef:pbd-%d" % n
    s["SR"][sr] = {"uuid": u(n), "name_label": name, "type": "lvm", "content_type": "user",
                   "shared": False, "sm_config": {}, "other_config": {}, "PBDs": [pbd], "VDIs": []}
    s["PBD"][pbd] = {"uuid": u(n + 1), "host": host, "SR": sr, "device_config": {"device": device},
                     "currently_attached": plugged}
    s["host"][host]["PBDs"].append(pbd)
    return sr


@pytest.mark.parametrize("shape", ["second live host", "second local disk"])
def test_the_seed_duplicates_stay_duplicates_on_real_pools(run, shape):
    s = seed()
    if shape == "second live host":
        add_host(s, "xcp-b")
    else:
        add_sr(s, "OpaqueRef:host-a", "Local storage", "/dev/sdb", True, 300)
    report, _ = run(s).doctor()
    by = {(f["check"], f["subject"].split()[1]): f for f in report["findings"]}
    assert "safe_action" in by[("duplicate_sr", u(11))]
    assert "safe_action" in by[("sr_without_pbds", u(12))]
    dups = {k[1] for k in by if k[0] == "duplicate_sr"}
    assert dups == {u(11), u(14)}, sorted(by)


@pytest.mark.parametrize("shape", ["host down", "failed to plug"])
def test_a_valid_sr_of_a_host_that_is_down_or_failed_to_plug_is_no_duplicate(run, shape):
    s = seed()
    _, sr = add_host(s, "xcp-b", live=(shape != "host down"), plugged=False)
    report, _ = run(s).doctor()
    by = {(f["check"], f["subject"].split()[1]): f for f in report["findings"]}
    b_sr = s["SR"][sr]["uuid"]
    assert ("duplicate_sr", b_sr) not in by
    assert not any("sr-forget uuid=%s" % b_sr in " ".join(f["plan"]) for f in report["findings"])
    b_pbd = s["SR"][sr]["PBDs"][0]
    check = "pbd_host_down" if shape == "host down" else "pbd_unplugged"
    assert (check, s["PBD"][b_pbd]["uuid"]) in by, sorted(by)


def test_a_duplicate_holding_a_halted_vms_disk_is_not_forgotten(run):
    s = seed()
    # The old record's VDI is the disk of a halted VM: forgetting the SR would drop its VBD.
    s["VM"]["OpaqueRef:vm-old"] = {"uuid": u(53), "name_label": "old", "power_state": "Halted",
                                   "resident_on": "OpaqueRef:NULL", "domid": "-1",
                                   "VBDs": ["OpaqueRef:vbd-old"], "is_control_domain": False}
    s["VBD"]["OpaqueRef:vbd-old"] = {"uuid": u(43), "VM": "OpaqueRef:vm-old",
                                     "VDI": "OpaqueRef:vdi-old", "currently_attached": False,
                                     "device": "xvda"}
    s["VDI"]["OpaqueRef:vdi-old"]["VBDs"] = ["OpaqueRef:vbd-old"]
    r = run(s)
    report, code = r.doctor("--apply")
    by = {(f["check"], f["subject"].split()[1]): f for f in report["findings"]}
    dup = by[("duplicate_sr", u(11))]
    assert "safe_action" not in dup and "Halted" in " ".join(dup["plan"])
    assert code == 3
    x = r.sim.session().xenapi
    assert x.SR.get_by_uuid(u(11))
    assert x.VM.get_record(x.VM.get_by_uuid(u(53)))["VBDs"] == ["OpaqueRef:vbd-old"]


def test_xapi_paused_while_the_domain_runs_is_reported_not_acted_on(run):
    s = seed()
    s["VM"]["OpaqueRef:vm-db"]["power_state"] = "Paused"
    report, _ = run(s).doctor()
    by = {(f["check"], f["subject"].split()[1]): f for f in report["findings"]}
    f = by[("vm_paused_with_domain", u(52))]
    assert "is running" in f["summary"] and "safe_action" not in f


def without(scenario, cls, *refs):
    for ref in refs:
        scenario[cls].pop(ref)
    return scenario


@pytest.mark.parametrize("name", [
    "duplicate_sr: the only copy",
    "duplicate_sr: another device",
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
        absent = {("pbd_unplugged", u(24))}
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


def test_an_unplugged_pbd_on_a_live_host_fires(run):
    s = seed()
    s["PBD"]["OpaqueRef:pbd-removable"]["currently_attached"] = False
    report, _ = run(s).doctor()
    assert ("pbd_unplugged", u(24)) in keys(report)


def test_orphan_false_positives_stay_quiet_and_snapshot_orphans_do_not(run):
    report, _ = run().doctor()
    quiet = {u(32), u(36)}  # base copy (unmanaged), CD in a udev SR
    assert not {k for k in keys(report) if k[0] == "orphaned_vdi" and k[1] in quiet}
    # A snapshot VDI no VM snapshot uses is an orphan, as Xen Orchestra counts them.
    snap = [f for f in report["findings"] if f["check"] == "orphaned_vdi" and u(33) in f["subject"]]
    assert snap and "snapshot VDI" in snap[0]["summary"]


def test_the_plugin_runs_the_doctor(run):
    r = run()
    x = r.sim.session().xenapi
    host = x.host.get_by_uuid(HOST_A)
    report = json.loads(x.host.call_plugin(host, "dmheal", "doctor", {}))
    assert keys(report) == SEED_FINDINGS
    with pytest.raises(XenAPI.Failure) as e:
        x.host.call_plugin(host, "dmheal", "doctor", {"apply": "perhaps"})
    assert e.value.details[0] == "DMHEAL_BAD_ARGS"
