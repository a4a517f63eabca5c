"""`dmheal vm` and the named pool scan against the simulator, with pools of several hosts (issue
15): the VM's disk ghosted on one host, held on another, one host down, one hanging, one whose
plugin fails. Hosts here have no kernel of their own, so each answers what the scenario says
its plugin would (the shape `dmheal volumes --json` prints); tests/test_vm_kernel.py runs the
host that holds the ghost on the real kernel with the real plugin."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "xapi_sim"))

import pools  # noqa: E402
from harness import Simulator  # noqa: E402

A, B, C, D, E = range(5)


def ref(i):
    return pools.host_ref(i)


@pytest.fixture
def pool(tmp_path):
    """Five hosts: a down, b holding a ghost of the VM's system disk, c hanging, d holding the
    disk open (a tapdisk left by the failed migration), e whose plugin fails."""
    p = pools.migration_failed(hosts=5, down=(A,), hanging=(C,))
    replies = p["sim"]["plugin_replies"]
    replies[ref(B)] = {
        "volumes": [pools.volumes_reply(B, "ghost", summary="registered in the kernel, used by nothing"),
                    pools.volumes_reply(B, "absent")],
        "heal": [{"value": {"action": "removed", "message": "removed ghost (journal entry 4)"}}],
    }
    replies[ref(D)] = {"volumes": [pools.volumes_reply(D, "in-use", summary="in use: tapdisk 4242")]}
    replies[ref(E)] = {"volumes": [{"failure": ["XENAPI_PLUGIN_FAILURE", "non-zero exit", "", "boom"]}]}
    path = pools.write(p, str(tmp_path / "pool.json"))
    sim = Simulator(path)
    yield sim
    sim.stop()


def dmheal(dmheal_bin, sim, *args):
    p = subprocess.run([dmheal_bin, "--xapi", sim.socket] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    return p


def test_the_ghost_on_the_right_host_comes_first_with_the_command_that_heals_it(pool, dmheal_bin):
    p = dmheal(dmheal_bin, pool, "--json", "vm", pools.VM_NAME, "--host-timeout", "3")
    assert p.returncode == 3, p.stderr  # a ghost blocks the VM
    r = json.loads(p.stdout)
    assert r["vm"]["uuid"] == pools.VM_UUID and r["vm"]["power_state"] == "Halted"
    # Its disks in device order, the empty CD drive left out; only the LVM one is asked about.
    assert [(d["device"], d["vdi_uuid"], d["lvm"]) for d in r["disks"]] == [
        ("0", pools.VDI_SYSTEM, True), ("1", pools.VDI_DATA, False)]
    f = r["findings"]
    first = f[0]
    assert (first["code"], first["host_uuid"], first["vdi_uuid"]) == ("ghost", pools.host_uuid(B), pools.VDI_SYSTEM)
    assert first["plan"][0] == (
        "xe host-call-plugin host-uuid=%s plugin=dmheal fn=heal args:vdi_uuid=%s args:apply=true"
        % (pools.host_uuid(B), pools.VDI_SYSTEM))
    by_code = {}
    for x in f:
        by_code.setdefault(x["code"], []).append(x)
    # The halted VM's disk held on d blocks too; c (hanging) and e (failing) are unknowns.
    assert [x["host_name"] for x in by_code["in_use_elsewhere"]] == ["xcp-d"]
    assert by_code["in_use_elsewhere"][0]["severity"] == "blocking"
    unanswered = {x["host_name"]: x["summary"] for x in by_code["host_unanswered"]}
    assert set(unanswered) == {"xcp-c", "xcp-e"}
    assert "did not answer within 3 s" in unanswered["xcp-c"]
    assert "XENAPI_PLUGIN_FAILURE" in unanswered["xcp-e"]
    assert [x["host_name"] for x in by_code["host_skipped"]] == ["xcp-a"]
    assert pools.VDI_DATA in by_code["not_lvm"][0]["summary"]
    # Blocking before warnings before information.
    order = [x["severity"] for x in f]
    assert order == sorted(order, key=["blocking", "warning", "info"].index)
    hosts = {h["host_name"]: h["status"] for h in r["hosts"]}
    assert hosts == {"xcp-a": "skipped", "xcp-b": "asked", "xcp-c": "failed", "xcp-d": "asked",
                     "xcp-e": "failed"}


def test_the_text_report_says_the_blocking_finding_and_its_command_first(pool, dmheal_bin):
    p = dmheal(dmheal_bin, pool, "vm", pools.VM_UUID, "--host-timeout", "3")
    assert p.returncode == 3, p.stderr
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    assert lines[0].startswith("VM S-Domino (%s): Halted" % pools.VM_UUID)
    first = next(i for i, l in enumerate(lines) if l.startswith("BLOCKING"))
    assert "ghost mapping on xcp-b" in lines[first]
    assert lines[first + 1].strip().startswith("$ xe host-call-plugin host-uuid=%s" % pools.host_uuid(B))


def test_apply_heals_each_ghost_on_its_host_and_asks_again(pool, dmheal_bin):
    p = dmheal(dmheal_bin, pool, "--json", "vm", pools.VM_NAME, "--apply", "--host-timeout", "3")
    r = json.loads(p.stdout)
    assert [(h["host_name"], h["vdi_uuid"], h["action"]) for h in r["healed"]] == [
        ("xcp-b", pools.VDI_SYSTEM, "removed")]
    codes = [x["code"] for x in r["findings"]]
    assert "ghost" not in codes  # b answered "absent" when asked again
    assert codes[0] == "in_use_elsewhere"  # what still blocks: d's user
    assert p.returncode == 5, p.stderr


def test_a_name_that_is_not_one_vm_is_a_clear_error(tmp_path, dmheal_bin):
    p = pools.migration_failed(hosts=2, down=(), hanging=())
    twin = dict(p["VM"]["OpaqueRef:vm-s-domino"], uuid="5d000000-0000-4000-8000-0000000000d1", VBDs=[])
    p["VM"]["OpaqueRef:vm-twin"] = twin
    sim = Simulator(pools.write(p, str(tmp_path / "pool.json")))
    try:
        both = dmheal(dmheal_bin, sim, "--json", "vm", pools.VM_NAME)
        assert both.returncode == 2
        err = json.loads(both.stdout)["error"]
        assert err["kind"] == "bad_input" and twin["uuid"] in err["message"] and pools.VM_UUID in err["message"]
        none = dmheal(dmheal_bin, sim, "--json", "vm", "no such vm")
        assert none.returncode == 1
        assert json.loads(none.stdout)["error"]["kind"] == "not_found"
        # The control domain is not a VM that starts.
        dom0 = dmheal(dmheal_bin, sim, "vm", "Control domain on host: xcp-a")
        assert dom0.returncode == 1
    finally:
        sim.stop()


def test_the_plugin_function_answers_through_xapi_as_xencenter_calls_it(pool):
    import XenAPI
    s = pool.session()
    try:
        x = s.xenapi
        text = x.host.call_plugin(ref(D), "dmheal", "vm", {"vm": pools.VM_UUID})
        r = json.loads(text)
        assert r["findings"][0]["code"] == "ghost" and r["findings"][0]["host_name"] == "xcp-b"
        with pytest.raises(XenAPI.Failure) as e:
            x.host.call_plugin(ref(D), "dmheal", "vm", {})
        assert e.value.details[0] == "DMHEAL_BAD_ARGS"
        with pytest.raises(XenAPI.Failure) as e:
            x.host.call_plugin(ref(A), "dmheal", "volumes", {"vdis": "x;reboot"})
        assert e.value.details[0] == "DMHEAL_BAD_ARGS"
    finally:
        s.xenapi.session.logout()


def test_pool_scan_names_each_ghost_with_its_host_sr_vdi_and_vms(tmp_path, dmheal_bin):
    p = pools.migration_failed(hosts=3, down=(), hanging=(C,))
    dm = "VG_XenStorage--9a3c6ed4--8f0e--4f57--a6c2--1b2d3e4f5a6b-VHD--0c1d2e3f--4a5b--4c6d--8e7f--8091a2b3c4d5"
    mapping = {"dm_name": dm, "verdict": "ghost", "summary": "registered in the kernel, used by nothing",
               "reasons": [], "facts": {"sr": pools.SR_LVM, "vdi": pools.VDI_SYSTEM}}
    counts = {"mappings": 1, "ghost": 1, "in_use": 0, "suspicious": 0, "healthy": 0, "inactive_lvs": 0}
    clean = dict(counts, mappings=0, ghost=0)
    p["sim"]["plugin_replies"] = {
        ref(A): {"scan": [{"value": {"counts": clean, "mappings": [], "inactive_lvs": []}}]},
        ref(B): {"scan": [{"value": {"counts": counts, "mappings": [mapping], "inactive_lvs": []}}]},
    }
    sim = Simulator(pools.write(p, str(tmp_path / "pool.json")))
    try:
        j = dmheal(dmheal_bin, sim, "--json", "pool", "scan", "--host-timeout", "3")
        assert j.returncode == 3, j.stderr
        r = json.loads(j.stdout)
        (g,) = r["findings"]
        assert (g["host_name"], g["sr_uuid"], g["vdi_uuid"], g["vdi_name"]) == (
            "xcp-b", pools.SR_LVM, pools.VDI_SYSTEM, "S-Domino system")
        assert [v["name_label"] for v in g["vms"]] == ["S-Domino"]
        # Each host's whole answer is kept.
        b = [h for h in r["hosts"] if h["host_name"] == "xcp-b"][0]
        assert b["answer"]["mappings"][0]["reasons"] == [] and b["answer"]["inactive_lvs"] == []
        text = dmheal(dmheal_bin, sim, "pool", "scan", "--host-timeout", "3").stdout
        assert "disk of VM S-Domino (%s, Halted)" % pools.VM_UUID in text
        assert "host-uuid=%s plugin=dmheal fn=heal args:vdi_uuid=%s" % (pools.host_uuid(B), pools.VDI_SYSTEM) in text
        # Counts at the bottom.
        assert text.rstrip().splitlines()[-1].startswith("3 hosts: 2 asked, 0 skipped, 1 failed; 1 ghost")
    finally:
        sim.stop()


def test_a_member_in_maintenance_mode_is_asked_and_every_hosts_state_is_said(tmp_path, dmheal_bin):
    """A disabled but live host (maintenance mode, evacuating) runs VMs' storage as much as any:
    `vm` and `pool scan` ask it, and say its state; a host record with fields missing is said
    as such, never as "disabled" or "()" — and asked, since nothing says it is down."""
    p = pools.migration_failed(hosts=4, down=(A,), hanging=())
    p["host"][ref(B)]["enabled"] = False
    p["host"][ref(B)]["software_version"] = {"product_brand": "Citrix Hypervisor",
                                             "product_version": "8.2.1"}
    for field in ("enabled", "name_label", "metrics"):
        p["host"][ref(D)].pop(field)
    clean = {"counts": {"mappings": 0, "ghost": 0, "in_use": 0, "suspicious": 0, "healthy": 0,
                        "inactive_lvs": 0}, "mappings": [], "inactive_lvs": []}
    replies = p["sim"]["plugin_replies"]
    replies[ref(B)] = {"volumes": [pools.volumes_reply(B, "ghost")], "scan": [{"value": clean}]}
    replies[ref(C)] = {"volumes": [pools.volumes_reply(C, "absent")], "scan": [{"value": clean}]}
    replies[ref(D)] = {"volumes": [pools.volumes_reply(D, "absent")], "scan": [{"value": clean}]}
    sim = Simulator(pools.write(p, str(tmp_path / "pool.json")))
    try:
        vm = json.loads(dmheal(dmheal_bin, sim, "--json", "vm", pools.VM_NAME, "--host-timeout", "5").stdout)
        hosts = {h["host_uuid"]: h for h in vm["hosts"]}
        b, d = hosts[pools.host_uuid(B)], hosts[pools.host_uuid(D)]
        assert (b["status"], b["state"], b["version"]) == ("asked", "disabled", "Citrix Hypervisor 8.2.1")
        assert vm["findings"][0]["code"] == "ghost" and vm["findings"][0]["host_name"] == "xcp-b"
        assert (d["status"], d["state"]) == ("asked", "unknown")
        assert d["host_name"] == "(no name-label) %s" % pools.host_uuid(D)
        assert hosts[pools.host_uuid(A)]["state"] == "down"
        scan = dmheal(dmheal_bin, sim, "--json", "pool", "scan", "--host-timeout", "5")
        hosts = {h["host_uuid"]: h for h in json.loads(scan.stdout)["hosts"]}
        assert (hosts[pools.host_uuid(B)]["status"], hosts[pools.host_uuid(B)]["state"]) == ("asked", "disabled")
        assert hosts[pools.host_uuid(D)]["status"] == "asked"
        text = dmheal(dmheal_bin, sim, "pool", "scan", "--host-timeout", "5").stdout
        line = [l for l in text.splitlines() if l.strip().startswith("xcp-b")][0]
        assert "Citrix Hypervisor 8.2.1" in line and "asked, disabled (maintenance mode) but live" in line
        assert "()" not in text and " disabled " not in [l for l in text.splitlines() if "(no name-label)" in l][0]
    finally:
        sim.stop()
