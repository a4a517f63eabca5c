"""The cross-layer doctor on simulator scenarios (issue 5): the seed incident's pool gives
exactly the expected findings and plan; --apply leaves the simulator as xapi would be left; for
every check a near miss where it must not fire."""

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
    ("duplicate_sr", u(11)), ("duplicate_sr", u(12)), ("duplicate_sr", u(14)),
    ("sr_without_pbds", u(12)), ("pbd_host_not_in_database", u(21)), ("stale_host_key", u(31)),
    ("vdi_on_control_domain", u(34)), ("orphaned_vdi", u(35)),
}


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
    assert by[("duplicate_sr", u(11))]["evidence"]["duplicate"]["pbd_hosts"] == ["<not in database>"]
    safe = {k for k, f in by.items() if "safe_action" in f}
    assert safe == {("duplicate_sr", u(11)), ("duplicate_sr", u(12)), ("vm_without_domain", u(51))}
    # The duplicate DVD SR has a PBD on a live host: a recommendation, not a safe action, and its
    # unplugged PBD is not reported twice.
    assert ("pbd_unplugged", u(23)) not in keys(report)
    assert any("device-mapper mappings not scanned" in x for x in report["unchecked"]) or \
        os.path.exists("/dev/mapper/control")


def test_apply_does_the_safe_subset_and_leaves_xapi_as_expected(run):
    r = run()
    report, code = r.doctor("--apply")
    assert code == 3  # findings that are not safe to fix by itself remain (README's exit codes)
    assert sorted((a["action"], a["result"]) for a in report["applied"]) == [
        ("SR.forget", "done"), ("SR.forget", "done"), ("VM.power_state_reset", "done")]
    x = r.sim.session().xenapi
    srs = {rec["uuid"] for rec in x.SR.get_all_records().values()}
    assert u(11) not in srs and u(12) not in srs
    assert {u(10), u(13), u(14), u(15)} <= srs  # kept: the plugged copies and the unsafe duplicate
    with pytest.raises(XenAPI.Failure):
        x.VDI.get_by_uuid(u(35))  # forgotten with its SR
    web = x.VM.get_record(x.VM.get_by_uuid(u(51)))
    assert web["power_state"] == "Halted" and web["domid"] == "-1"
    assert x.VM.get_record(x.VM.get_by_uuid(u(52)))["power_state"] == "Running"
    journal = [json.loads(l) for l in open(r.env["DMHEAL_JOURNAL"])]
    assert [e["event"] for e in journal] == ["xapi_action"] * 3
    again, _ = r.doctor()
    assert not {k for k in keys(again) if k[0] in ("vm_without_domain",) or k[1] in (u(11), u(12))}
    assert ("duplicate_sr", u(14)) in keys(again)


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


def test_orphan_false_positives_stay_quiet(run):
    report, _ = run().doctor()
    quiet = {u(32), u(33), u(36)}  # base copy (unmanaged), snapshot, CD in a udev SR
    assert not {k for k in keys(report) if k[0] == "orphaned_vdi" and k[1] in quiet}


def test_the_plugin_runs_the_doctor(run):
    r = run()
    x = r.sim.session().xenapi
    host = x.host.get_by_uuid(HOST_A)
    report = json.loads(x.host.call_plugin(host, "dmheal", "doctor", {}))
    assert keys(report) == SEED_FINDINGS
    with pytest.raises(XenAPI.Failure) as e:
        x.host.call_plugin(host, "dmheal", "doctor", {"apply": "perhaps"})
    assert e.value.details[0] == "DMHEAL_BAD_ARGS"
