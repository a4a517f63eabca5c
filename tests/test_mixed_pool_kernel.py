"""A pool in the middle of an 8.2 -> 8.4 rolling upgrade (issue 22), on the real kernel, one
boot: the master xcp-a on XenServer 8.4 (its plugin on this Python, the native module), xcp-b
still on Citrix Hypervisor 8.2 CU1 (the real plugin under CPython 2.7, the binary), xcp-c where
dmheal is not installed yet, xcp-d on 8.4 in maintenance mode (CPython 3.6). `pool scan`,
`dmheal vm` and `doctor` on the master ask every member that is up, show each host's product
and version, and say of xcp-c that dmheal is not installed there, with the command that
installs it. The seed ghost is in the (shared) kernel, so every host that answers sees it."""

import json
import os

import pytest

import uml
from conftest import PACKAGE_SOURCE, PYTHON27, PYTHON27_MISSING, PYTHON36

SIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xapi_sim")
DOUBLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "doubles")
sys_path = __import__("sys").path
sys_path.insert(0, SIM)
import pools  # noqa: E402

VERSIONS = {0: ("XenServer", "8.4.0"), 1: ("Citrix Hypervisor", "8.2.1"),
            2: ("XenServer", "8.4.0"), 3: ("XenServer", "8.4.0")}


def scenario():
    p = pools.migration_failed(hosts=4, down=(), hanging=(), sr_type="lvm")
    p["VM"]["OpaqueRef:vm-s-domino"]["VBDs"] = ["OpaqueRef:vbd-system"]
    for i, (brand, version) in VERSIONS.items():
        p["host"][pools.host_ref(i)]["software_version"] = {
            "product_brand": brand, "product_version": version}
    p["host"][pools.host_ref(3)]["enabled"] = False  # maintenance mode
    p["sim"]["no_plugin_hosts"] = [pools.host_ref(2)]
    p["sim"]["plugin_python"] = {pools.host_ref(1): PYTHON27}
    env = p["sim"]["plugin_env"]
    env[pools.host_ref(1)]["PYTHONPATH"] = os.pathsep.join([SIM, PACKAGE_SOURCE])
    env[pools.host_ref(1)]["DMHEAL_BACKEND"] = "binary"
    if PYTHON36:
        p["sim"]["plugin_python"][pools.host_ref(3)] = PYTHON36
        env[pools.host_ref(3)]["PYTHONPATH"] = os.pathsep.join([SIM, PACKAGE_SOURCE])
    return p


SCRIPT = r"""
export DMHEAL_BIN="$DMHEAL" PATH="%(doubles)s:$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="%(sim)s:$PYTHONPATH" DMHEAL_HOST_UUID=%(master)s DMHEAL_XAPI=/run/xapi/xapi
export XL_LIST_FILE="$WORK/xl" TAPCTL_LIST_FILE="$WORK/taps"
printf 'Name ID Mem VCPUs State Time(s)\nDomain-0 0 4096 8 r----- 1.0\n' > "$WORK/xl"
: > "$WORK/taps"
make_sr_vg
make_ghost
mkdir -p /run/xapi
cat > "$WORK/pool.json" <<'JSON'
%(scenario)s
JSON
"$SIMPY" "%(sim)s/simulator.py" "$WORK/pool.json" --unix /run/xapi/xapi \
    --plugins "$(dirname "$HELPERS")/../xapi-plugin" --ready /run/xapi/ready &
for i in $(seq 100); do [ -e /run/xapi/ready ] && break; sleep 0.1; done
capture scan "$DMHEAL" --json pool scan --host-timeout 60
capture scan_text "$DMHEAL" pool scan --host-timeout 60
capture vm "$DMHEAL" --json vm %(vm)s --host-timeout 60
capture doctor "$DMHEAL" --json doctor --host-timeout 60
"""


def test_a_pool_mid_upgrade_is_asked_host_by_host_with_versions(kernel, dmheal_bin):
    if not PYTHON27:
        pytest.skip(PYTHON27_MISSING)
    r = kernel.run(SCRIPT % {"doubles": DOUBLES, "sim": SIM, "master": pools.host_uuid(0),
                             "vm": pools.VM_UUID,
                             "scenario": json.dumps(scenario(), indent=1)},
                   dmheal_bin, timeout=400)
    assert r.rc == 0, r.output
    scan = json.loads(r.file("scan.out"))
    hosts = {h["host_name"]: h for h in scan["hosts"]}
    for i, (brand, version) in VERSIONS.items():
        assert hosts[pools.host_name(i)]["version"] == "%s %s" % (brand, version)
    # Every member that is up is asked — the 8.2 one under Python 2.7, the one in maintenance.
    for name in ("xcp-a", "xcp-b", "xcp-d"):
        assert hosts[name]["status"] == "asked", (name, hosts[name])
        assert hosts[name]["answer"]["counts"]["ghost"] == 1, (name, hosts[name]["answer"]["counts"])
    assert hosts["xcp-d"]["state"] == "disabled"
    missing = hosts["xcp-c"]
    assert missing["status"] == "failed"
    assert "dmheal is not installed on xcp-c (XenServer 8.4.0)" in missing["error"], missing
    assert "yum install ./dmheal-" in missing["error"]
    text = r.file("scan_text.out")
    assert "Citrix Hypervisor 8.2.1" in text and "dmheal is not installed on xcp-c" in text

    vm = json.loads(r.file("vm.out"))
    by_host = {h["host_name"]: h for h in vm["hosts"]}
    assert by_host["xcp-b"]["status"] == "asked" and by_host["xcp-b"]["version"] == "Citrix Hypervisor 8.2.1"
    ghosts = sorted(f["host_name"] for f in vm["findings"] if f["code"] == "ghost")
    assert ghosts == ["xcp-a", "xcp-b", "xcp-d"], vm["findings"]
    assert any(f["code"] == "host_unanswered" and f["host_name"] == "xcp-c" and "not installed" in f["summary"]
               for f in vm["findings"]), vm["findings"]

    doctor = json.loads(r.file("doctor.out"))
    surveyed = {h["host_name"]: h for h in doctor["hosts"]}
    assert surveyed["xcp-b"]["status"] == "asked" and surveyed["xcp-b"]["version"] == "Citrix Hypervisor 8.2.1"
    assert surveyed["xcp-b"]["answer"]["storage"]["lvm"]["state"] == "read"
    assert surveyed["xcp-c"]["status"] == "failed" and "not installed" in surveyed["xcp-c"]["error"]
    assert any("xcp-c not surveyed" in u for u in doctor["unchecked"]), doctor["unchecked"]
