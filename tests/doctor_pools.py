"""What the doctor's tests share: a simulator per scenario with the dmheal CLI pointed at it
(this host xcp-a, its disks, domains and tapdisks given by the test doubles), members whose
real plugin sees their own, and builders of records in xapi's shapes."""

import json
import os
import subprocess

import pytest

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


def pvs_report(*pvs):
    """What `pvs --reportformat json` prints for PVs (device, VG name, SCSI id unused here)."""
    rows = [{"pv_name": dev, "pv_uuid": "pv%03d" % i, "vg_name": vg, "vg_uuid": "vg%03d" % i,
             "pv_major": "8", "pv_minor": str(i)} for i, (dev, vg) in enumerate(pvs)]
    return json.dumps({"report": [{"pv": rows}]})


# xcp-a's local disk holds the volume group of "Local storage" SR 10.
SEED_PVS = [("/dev/sda3", "VG_XenStorage-" + u(10))]

SEED_FINDINGS = {
    ("vm_without_domain", u(51)), ("broken_vhd_chain", WEB_VDI),
    ("duplicate_sr", u(11)), ("duplicate_sr", u(14)), ("duplicate_sr", u(16)),
    ("sr_without_pbds", u(12)), ("stale_host_key", u(31)),
    ("vdi_on_control_domain", u(34)), ("orphaned_vdi", u(35)), ("orphaned_vdi", u(33)),
    ("vdi_to_coalesce", u(31)), ("no_default_sr", u(1)),
}
# What --apply may do by itself on the seed: only what restore undoes exactly — forget the
# duplicate udev records (their storage is another record's, nothing refers to them, their
# PBDs can be made again) and remove the mark of a host not in the database. Not the old
# Local storage record (its PBD's host is gone: restore could not make that PBD again), not
# the SR without PBDs (nothing proves its storage is another's), not the power-state reset
# (xapi cannot be told a domain runs again).
SEED_SAFE = {("duplicate_sr", u(14)), ("duplicate_sr", u(16)), ("stale_host_key", u(31))}


def seed():
    with open(os.path.join(SCENARIOS, "seed_pool.json")) as f:
        return json.load(f)


class Run(object):
    """A simulator for one scenario and the dmheal CLI pointed at it, on xcp-a."""

    def __init__(self, tmp_path, dmheal_bin, scenario, xl=XL_LIST, taps="", xenstore=None,
                 pvs=SEED_PVS):
        self.tmp = tmp_path
        path = tmp_path / "scenario.json"
        path.write_text(json.dumps(scenario))
        (tmp_path / "xl").write_text(xl or "")
        (tmp_path / "taps").write_text(taps)
        (tmp_path / "pvs.json").write_text(pvs_report(*pvs))
        self.env = dict(os.environ, DMHEAL_JOURNAL=str(tmp_path / "journal.jsonl"),
                        TAPCTL_LIST_FILE=str(tmp_path / "taps"), XL_LIST_FILE=str(tmp_path / "xl"),
                        PVS_REPORT_FILE=str(tmp_path / "pvs.json"),
                        DMHEAL_HOST_UUID=HOST_A, DMHEAL_BIN=dmheal_bin)
        self.env.pop("XENSTORE_DOMAINS_FILE", None)
        if xenstore is not None:
            (tmp_path / "xenstore").write_text(xenstore)
            self.env["XENSTORE_DOMAINS_FILE"] = str(tmp_path / "xenstore")
        if xl is not None:
            self.env["PATH"] = DOUBLES + os.pathsep + self.env["PATH"]
        else:  # no domain facts at all: no xl, no xenstore-list, but tap-ctl and pvs still there
            only = tmp_path / "bin"
            only.mkdir()
            for tool in ("tap-ctl", "pvs"):
                os.symlink(os.path.join(DOUBLES, tool), str(only / tool))
            self.env["PATH"] = str(only) + os.pathsep + self.env["PATH"]
        self.sim = Simulator(str(path), env=self.env)
        self.bin = dmheal_bin

    def doctor(self, *extra):
        p = subprocess.run([self.bin, "--json", "--xapi", self.sim.socket, "doctor",
                            "--host-timeout", "20"] + list(extra),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                           env=self.env, timeout=120)
        assert p.returncode in (0, 3), p.stderr + p.stdout
        return json.loads(p.stdout), p.returncode

    def stop(self):
        self.sim.stop()


def member(s, tmp, name, n, live=True, enabled=True, pvs=(), xl=None, taps=""):
    """Another host, xcp-<name>, whose plugin (the real one, run by the simulator as xapi
    runs it) sees its own disks (`pvs`), domains (`xl`) and tapdisks."""
    ref = "OpaqueRef:host-%s" % name
    s["host"][ref] = {"uuid": u(n), "name_label": "xcp-" + name, "hostname": "xcp-" + name,
                      "enabled": enabled, "metrics": "OpaqueRef:hm-%s" % name, "PBDs": [],
                      "resident_VMs": [], "address": "192.0.2.%d" % (n % 250),
                      "software_version": {"product_brand": "XenServer", "product_version": "8.4.0"}}
    s["host_metrics"]["OpaqueRef:hm-%s" % name] = {"uuid": u(n + 100), "live": live}
    d = tmp / ("host-" + name)
    d.mkdir()
    (d / "pvs.json").write_text(pvs_report(*pvs))
    (d / "xl").write_text(xl if xl is not None else XL_LIST.splitlines()[0] + "\n" + XL_LIST.splitlines()[1] + "\n")
    (d / "taps").write_text(taps)
    s.setdefault("sim", {}).setdefault("plugin_env", {})[ref] = {
        "DMHEAL_HOST_UUID": u(n), "PVS_REPORT_FILE": str(d / "pvs.json"),
        "XL_LIST_FILE": str(d / "xl"), "TAPCTL_LIST_FILE": str(d / "taps"),
        "DMHEAL_JOURNAL": str(d / "journal.jsonl")}
    return ref


def add_sr(s, host, name, kind, config, plugged, n, shared=False):
    """An SR with one PBD per (host, plugged) in `host` (a ref, or a list of (ref, plugged))."""
    hosts = host if isinstance(host, list) else [(host, plugged)]
    sr = "OpaqueRef:sr-%d" % n
    s["SR"][sr] = {"uuid": u(n), "name_label": name, "type": kind, "content_type": "user",
                   "shared": shared, "sm_config": {}, "other_config": {}, "PBDs": [], "VDIs": []}
    for i, (h, p) in enumerate(hosts):
        pbd = "OpaqueRef:pbd-%d-%d" % (n, i)
        s["PBD"][pbd] = {"uuid": u(n * 10 + i), "host": h, "SR": sr, "device_config": dict(config),
                         "other_config": {}, "currently_attached": p}
        s["SR"][sr]["PBDs"].append(pbd)
        if h in s["host"]:
            s["host"][h]["PBDs"].append(pbd)
    return sr


def add_vdi(s, sr, name, n):
    ref = "OpaqueRef:vdi-%d" % n
    s["VDI"][ref] = {"uuid": u(n), "name_label": name, "SR": sr, "VBDs": [], "type": "user",
                     "managed": True, "is_a_snapshot": False, "sm_config": {}, "other_config": {},
                     "virtual_size": "8589934592", "snapshot_of": "OpaqueRef:NULL", "snapshots": []}
    s["SR"][sr]["VDIs"].append(ref)
    return ref


def add_vm(s, name, n, power, host="OpaqueRef:NULL", domid="-1", vdis=()):
    ref = "OpaqueRef:vm-%d" % n
    s["VM"][ref] = {"uuid": u(n), "name_label": name, "power_state": power, "resident_on": host,
                    "domid": domid, "VBDs": [], "is_control_domain": False, "is_a_template": False,
                    "is_a_snapshot": False, "suspend_VDI": "OpaqueRef:NULL"}
    for i, vdi in enumerate(vdis):
        vbd = "OpaqueRef:vbd-%d-%d" % (n, i)
        s["VBD"][vbd] = {"uuid": u(n * 10 + i), "VM": ref, "VDI": vdi, "device": "xvd" + "abcd"[i],
                         "userdevice": str(i), "type": "Disk", "mode": "RW",
                         "currently_attached": power == "Running"}
        s["VM"][ref]["VBDs"].append(vbd)
        s["VDI"][vdi]["VBDs"].append(vbd)
    return ref


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


def keys(report, where="findings"):
    return {(f["code"], f["subject"].split()[1]) for f in report[where]}


def by_key(report):
    return {(f["code"], f["subject"].split()[1]): f for f in report["findings"]}


def plans(report):
    return "\n".join(step for f in report["findings"] for step in f["plan"])


