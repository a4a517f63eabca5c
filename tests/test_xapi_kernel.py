"""xapi end to end on a real kernel: the simulator, the real plugin and the official XenAPI
client inside user-mode Linux, with two ghosts — one whose VDI xapi calls free, one whose VDI
xapi has attached to a running VM on this host."""

import json
import os

import uml

SIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xapi_sim")
VDI_WEB = "1c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
HOST_A = "a0000000-0000-4000-8000-00000000000a"
HOST_B = "b0000000-0000-4000-8000-00000000000b"
HOST_C = "c0000000-0000-4000-8000-00000000000c"
WEB_DM = uml.VG.replace("-", "--") + "-VHD--" + VDI_WEB.replace("-", "--")

SCRIPT = r"""
export DMHEAL_BIN="$DMHEAL" PATH="$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="%(sim)s:$PYTHONPATH" DMHEAL_HOST_UUID=%(host_a)s
make_sr_vg
add_lv "$VG" "VHD-%(web)s"
make_ghost
make_ghost "$VG" "VHD-%(web)s"
mkdir -p /run/xapi
export DMHEAL_XAPI=/run/xapi/xapi  # plugins inherit it from "xapi", as on dom0 they use the default
"$PYTHON" "%(sim)s/simulator.py" "%(sim)s/scenarios/three_hosts.json" --unix /run/xapi/xapi \
    --plugins "$(dirname "$HELPERS")/../xapi-plugin" --ready /run/xapi/ready &
for i in $(seq 100); do [ -e /run/xapi/ready ] && break; sleep 0.1; done

# One command, one xapi session: resolving the VDI and asking its view share it, and it is
# logged out at the end.
"$PYTHON" "%(sim)s/ask.py" /run/xapi/xapi sim.logins > "$OUT/logins.before"
"$PYTHON" "%(sim)s/ask.py" /run/xapi/xapi sim.live_sessions > "$OUT/live.before"
capture cli_heal_web "$DMHEAL" --json heal "%(web)s" --apply
"$PYTHON" "%(sim)s/ask.py" /run/xapi/xapi sim.logins > "$OUT/logins.after"
"$PYTHON" "%(sim)s/ask.py" /run/xapi/xapi sim.live_sessions > "$OUT/live.after"

"$PYTHON" - > "$OUT/calls.json" <<'PY'
import json, XenAPI
s = XenAPI.Session("http://_run_xapi_xapi/", transport=XenAPI.UDSTransport())
s.xenapi.login_with_password("root", "", "1.0", "dmheal-tests")
x = s.xenapi
host = x.host.get_by_uuid("%(host_a)s")
out = {}
def call(name, fn, args):
    try:
        out[name] = {"ok": json.loads(x.host.call_plugin(host, "dmheal", fn, args))}
    except XenAPI.Failure as e:
        out[name] = {"failure": e.details}
call("diagnose_free", "inspect", {"vdi_uuid": "%(vdi)s"})
call("diagnose_web", "inspect", {"vdi_uuid": "%(web)s"})
call("heal_web", "heal", {"vdi_uuid": "%(web)s", "apply": "true"})
call("heal_free_dry", "heal", {"vdi_uuid": "%(vdi)s"})
call("heal_free", "heal", {"vdi_uuid": "%(vdi)s", "apply": "true"})
print(json.dumps(out))
PY
dm_state "$DM_NAME" > "$OUT/state.free"
dm_state "%(web_dm)s" > "$OUT/state.web"
capture lvchange lvchange -ay "$VG/$LV"
capture pool "$DMHEAL" --json pool scan --host-timeout 8
DMHEAL_XAPI=/run/xapi/nonexistent capture dead "$DMHEAL" --json inspect "%(web)s"
"""


def test_plugin_heals_a_free_vdi_refuses_an_attached_one_and_pool_scan_merges(kernel, dmheal_bin):
    r = kernel.run(SCRIPT % {"sim": SIM_DIR, "host_a": HOST_A, "web": VDI_WEB, "vdi": uml.VDI,
                             "web_dm": WEB_DM}, dmheal_bin)
    assert r.rc == 0, r.output
    cli_heal = json.loads(r.file("cli_heal_web.out"))
    assert cli_heal["action"] == "refused" and int(r.file("cli_heal_web.rc")) == 4
    assert int(r.file("logins.after")) - int(r.file("logins.before")) == 1
    assert int(r.file("live.after")) == int(r.file("live.before"))
    calls = json.loads(r.file("calls.json"))

    free = calls["diagnose_free"]["ok"]
    assert free["verdict"] == "ghost"
    assert any(x["code"] == "xapi_free_here" for x in free["reasons"])
    assert free["facts"]["xapi"]["state"] == "known" and free["facts"]["xapi"]["name_label"] == "db disk"

    web = calls["diagnose_web"]["ok"]
    assert web["verdict"] == "in-use" and web["dm_name"] == WEB_DM
    codes = {x["code"] for x in web["reasons"]}
    assert {"xapi_attached", "xapi_host_key"} <= codes
    assert "VM web" in web["summary"]

    refused = calls["heal_web"]["failure"]
    assert refused[0] == "DMHEAL_UNSAFE" and "attached on this host" in refused[1]
    assert json.loads(refused[2])["verdict"] == "in-use"
    assert calls["heal_free_dry"]["ok"]["action"] == "would-remove"
    assert calls["heal_free"]["ok"]["action"] == "removed"

    # The kernel agrees: the free VDI's ghost is gone and its LV activates; the other stays.
    assert r.file("state.free").strip() == "absent"
    assert r.file("state.web").split()[0] == WEB_DM
    assert int(r.file("lvchange.rc")) == 0

    pool = json.loads(r.file("pool.out"))
    hosts = {h["host_uuid"]: h for h in pool["hosts"]}
    a = hosts[HOST_A]
    assert a["status"] == "asked"
    assert a["answer"]["counts"]["in_use"] == 1 and a["answer"]["counts"]["ghost"] == 0
    # Host B shares this kernel in the simulation: to B the web VDI is attached on another
    # host, so B's copy of the mapping is a ghost — the right answer from B's side.
    b = hosts[HOST_B]["answer"]
    assert b["counts"]["ghost"] == 1
    web_on_b = [m for m in b["mappings"] if m["dm_name"] == WEB_DM][0]
    assert any(x["code"] == "xapi_free_here" and "attached elsewhere" in x["state"]
               for x in web_on_b["reasons"])
    assert int(r.file("pool.rc")) == 3, r.file("pool.err")  # a ghost somewhere in the pool
    assert hosts[HOST_C]["status"] == "failed" and "did not answer" in hosts[HOST_C]["error"]
    assert pool["counts"]["failed"] == 1 and pool["counts"]["asked"] == 2

    # xapi dead: reported, and the local layers still decide (the web ghost is locally unused).
    dead = json.loads(r.file("dead.out"))
    xapi = [x for x in dead["reasons"] if x["layer"] == "xapi"][0]
    assert xapi["code"] == "xapi_unreachable"
    assert dead["verdict"] == "ghost"


OLD_VDI = "00000035-0000-4000-8000-000000000035"  # "old disk" in seed_pool.json: no VBD
DOCTOR_SCRIPT = r"""
export DMHEAL_BIN="$DMHEAL" PATH="%(doubles)s:$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="%(sim)s:$PYTHONPATH" DMHEAL_HOST_UUID=%(host_a)s
export DMHEAL_XAPI=/run/xapi/xapi XL_LIST_FILE="$WORK/xl" TAPCTL_LIST_FILE="$WORK/taps"
printf 'Name ID Mem VCPUs State Time(s)\nDomain-0 0 4096 8 r----- 1.0\ndb 8 2048 2 -b---- 1.0\n' > "$WORK/xl"
: > "$WORK/taps"
make_sr_vg
add_lv "$VG" "VHD-%(old)s"
make_ghost "$VG" "VHD-%(old)s"
mkdir -p /run/xapi
"$PYTHON" "%(sim)s/simulator.py" "%(sim)s/scenarios/seed_pool.json" --unix /run/xapi/xapi \
    --plugins "$(dirname "$HELPERS")/../xapi-plugin" --ready /run/xapi/ready &
for i in $(seq 100); do [ -e /run/xapi/ready ] && break; sleep 0.1; done
capture doctor "$DMHEAL" --json doctor
"$DMHEAL" doctor > "$OUT/doctor.txt" 2>&1 || true
"""


def test_doctor_on_the_seed_pool_includes_the_ghost_mapping(kernel, dmheal_bin):
    doubles = os.path.join(os.path.dirname(SIM_DIR), "doubles")
    r = kernel.run(DOCTOR_SCRIPT % {"sim": SIM_DIR, "host_a": HOST_A, "old": OLD_VDI, "doubles": doubles}, dmheal_bin)
    assert r.rc == 0, r.output
    assert int(r.file("doctor.rc")) == 3, r.file("doctor.err")
    report = json.loads(r.file("doctor.out"))
    ghost_dm = uml.VG.replace("-", "--") + "-VHD--" + OLD_VDI.replace("-", "--")
    ghosts = [f for f in report["findings"] if f["code"] == "ghost_mapping"]
    assert [g["subject"] for g in ghosts] == ["mapping " + ghost_dm]
    assert ghosts[0]["plan"] == ["dmheal heal %s --apply" % ghost_dm]
    checks = {f["code"] for f in report["findings"]}
    assert {"vm_without_domain", "duplicate_sr", "broken_vhd_chain", "ghost_mapping"} <= checks
    assert not any("device-mapper" in u for u in report["unchecked"])
    assert "CRITICAL vm_without_domain" in r.file("doctor.txt")


LOCAL_STATE_SCRIPT = r"""
export DMHEAL_BIN="$DMHEAL" PATH="%(doubles)s:$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="%(sim)s:$PYTHONPATH" DMHEAL_HOST_UUID=%(host_a)s
export DMHEAL_XAPI=/run/xapi/xapi XL_LIST_FILE="$WORK/xl" TAPCTL_LIST_FILE="$WORK/taps"
printf 'Name ID Mem VCPUs State Time(s)\nDomain-0 0 4096 8 r----- 1.0\nweb 7 2048 2 -b---- 1.0\n' > "$WORK/xl"
echo "pid=77 minor=0 state=0 args=vhd:/dev/$VG/VHD-%(web)s" > "$WORK/taps"
make_sr_vg
add_lv "$VG" "VHD-%(web)s"
lvchange -q -an "$VG/$LV"
# The db VDI: marked activated on xcp-b, where no VM has it; SM on this host counts a
# reference nothing backs.
"$PYTHON" - > "$WORK/scenario.json" <<'PY'
import json
s = json.load(open("%(sim)s/scenarios/three_hosts.json"))
s["VDI"]["OpaqueRef:vdi-db"]["sm_config"]["host_OpaqueRef:host-b"] = "RW"
s["sim"]["hang_hosts"] = []
print(json.dumps(s))
PY
mkdir -p /run/sm/refcount/lvm-$SR /run/xapi
echo "0 1" > /run/sm/refcount/lvm-$SR/$VDI
"$PYTHON" "%(sim)s/simulator.py" "$WORK/scenario.json" --unix /run/xapi/xapi \
    --plugins "$(dirname "$HELPERS")/../xapi-plugin" --ready /run/xapi/ready &
for i in $(seq 100); do [ -e /run/xapi/ready ] && break; sleep 0.1; done
capture apply "$DMHEAL" --json doctor --apply
ls /run/sm/refcount/lvm-$SR/ > "$OUT/refcounts.after"
"$PYTHON" - > "$OUT/sm_config.after" <<'PY'
import json, XenAPI
s = XenAPI.Session("http://_run_xapi_xapi/", transport=XenAPI.UDSTransport())
s.xenapi.login_with_password("root", "", "1.0", "t")
print(json.dumps(s.xenapi.VDI.get_sm_config(s.xenapi.VDI.get_by_uuid("%(vdi)s"))))
PY
ids=$("$PYTHON" -c "import json; print(' '.join(str(a['journal_id']) for a in json.load(open('$OUT/apply.out'))['applied'] if a['journal_id']))")
for id in $ids; do capture restore_$id "$DMHEAL" --json restore $id; done
echo $ids > "$OUT/ids"
cat /run/sm/refcount/lvm-$SR/$VDI > "$OUT/refcount.restored" 2>/dev/null
# The same mark again, but on xcp-b the VDI's mapping is now held open: xcp-b says it is in
# use, and the mark stays.
lvchange -q -ay "$VG/$LV"
sleep 600 < "/dev/mapper/$DM_NAME" &
capture apply_held "$DMHEAL" --json doctor --apply
"""


def test_doctor_resets_a_stale_refcount_and_removes_a_mark_its_host_disowns(kernel, dmheal_bin):
    """This host's stale SM refcount (no tapdisk, no open mapping, no VM here): reset,
    journalled, restored. Another live host's host_ mark on a VDI no VM there has attached:
    that host, asked through the plugin, confirms nothing uses it, and the mark goes through
    the API; when that host's mapping is open, it says so and the mark stays."""
    doubles = os.path.join(os.path.dirname(SIM_DIR), "doubles")
    r = kernel.run(LOCAL_STATE_SCRIPT % {"sim": SIM_DIR, "host_a": HOST_A, "web": VDI_WEB,
                                         "vdi": uml.VDI, "doubles": doubles}, dmheal_bin)
    assert r.rc == 0, r.output
    report = json.loads(r.file("apply.out"))
    applied = {(a["action"], a["subject"].split()[1]): a for a in report["applied"]}
    assert applied[("refcount.reset", uml.VDI)]["result"] == "done", report["applied"]
    assert applied[("VDI.remove_from_sm_config", uml.VDI)]["result"] == "done", report["applied"]
    assert uml.VDI not in r.file("refcounts.after").split()
    assert "host_OpaqueRef:host-b" not in json.loads(r.file("sm_config.after"))
    evidence = [f for f in report["findings"] if f["code"] == "stale_host_key"][0]
    assert evidence["evidence"]["host"] == HOST_B
    for i in r.file("ids").split():
        out = json.loads(r.file("restore_%s.out" % i))
        assert out.get("undid") in ("refcount.reset", "VDI.remove_from_sm_config"), out
    assert r.file("refcount.restored").split() == ["0", "1"]
    held = json.loads(r.file("apply_held.out"))
    keys = [a for a in held["applied"] if a["action"] == "VDI.remove_from_sm_config"]
    assert keys and keys[0]["result"].startswith("skipped") and "in use" in keys[0]["result"], held["applied"]
