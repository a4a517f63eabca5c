"""From the VM that will not start to the ghost on the right host, on the real kernel (issue 15).

A pool of three: xcp-a (the migration's source) is down, xcp-b — this kernel, with the real
plugin — holds a ghost of S-Domino's system disk (the failed migration's destination), xcp-c
never answers. `pool scan` names the ghost with its VM and tells the pool (a xapi message,
once however often it scans); `dmheal vm` puts the ghost on xcp-b first with the command that
heals it; `--apply` heals it there through the plugin, the kernel agrees, LVM can activate the
LV, and the pool is told it was removed.
"""

import json
import os
import sys

import uml

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "xapi_sim")
sys.path.insert(0, SIM)

import pools  # noqa: E402

SCRIPT = r"""
export DMHEAL_BIN="$DMHEAL" PATH="$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="%(sim)s:$PYTHONPATH"
make_sr_vg
make_ghost
start_xapi_sim "%(scenario)s"

capture pool1 "$DMHEAL" --json pool scan --host-timeout 5
capture pool2 "$DMHEAL" pool scan --host-timeout 5
capture vm "$DMHEAL" --json vm S-Domino --host-timeout 5
capture vm_text "$DMHEAL" vm S-Domino --host-timeout 5
dm_state "$DM_NAME" > "$OUT/state.before"
capture vm_apply "$DMHEAL" --json vm %(vm)s --apply --host-timeout 5
dm_state "$DM_NAME" > "$OUT/state.after"
capture lvchange lvchange -ay "$VG/$LV"
"$SIMPY" - > "$OUT/messages.json" <<'PY'
import json, XenAPI
s = XenAPI.Session("http://_run_xapi_xapi/", transport=XenAPI.UDSTransport())
s.xenapi.login_with_password("root", "", "1.0", "dmheal-tests")
print(json.dumps(list(s.xenapi.message.get_all_records().values())))
PY
cat /run/dmheal/journal-xcp-b.jsonl > "$OUT/journal-b.jsonl"
"""


def test_the_ghost_on_the_destination_is_found_from_the_vm_and_healed_there(kernel, dmheal_bin, tmp_path):
    scenario = pools.write(pools.migration_failed(hosts=3, down=(0,), hanging=(2,)),
                           str(tmp_path / "pool.json"))
    r = kernel.run(SCRIPT % {"sim": SIM, "scenario": scenario, "vm": pools.VM_UUID}, dmheal_bin,
                   timeout=300)
    assert r.rc == 0, r.output
    b = pools.host_uuid(1)

    # The pool scan names it: host, SR, VDI, the VM whose disk it is.
    scan = json.loads(r.file("pool1.out"))
    (g,) = scan["findings"]
    assert (g["host_uuid"], g["sr_uuid"], g["vdi_uuid"]) == (b, uml.SR, uml.VDI)
    assert [v["name_label"] for v in g["vms"]] == ["S-Domino"] and g["verdict"] == "ghost"
    assert int(r.file("pool1.rc")) == 3

    # dmheal vm: the ghost on xcp-b first, with the command for that host.
    vm = json.loads(r.file("vm.out"))
    assert int(r.file("vm.rc")) == 3
    first = vm["findings"][0]
    assert (first["code"], first["host_name"], first["vdi_uuid"]) == ("ghost", "xcp-b", uml.VDI)
    assert first["plan"][0] == ("xe host-call-plugin host-uuid=%s plugin=dmheal fn=heal "
                                "args:vdi_uuid=%s args:apply=true" % (b, uml.VDI))
    codes = {f["code"]: f for f in vm["findings"]}
    assert "xcp-c" in codes["host_unanswered"]["summary"]
    assert codes["host_skipped"]["host_name"] == "xcp-a"
    b_view = [h for h in vm["hosts"] if h["host_name"] == "xcp-b"][0]["answer"]
    (vol,) = b_view["volumes"]
    assert vol["dm_name"] == uml.DM_NAME and vol["verdict"] == "ghost"
    assert any(x["code"] == "xapi_free_here" or x["layer"] == "xapi" for x in vol["reasons"])
    assert r.file("state.before").split()[0] == uml.DM_NAME
    assert "BLOCKING" in r.file("vm_text.out")

    # --apply: healed on xcp-b by its own plugin, journalled there; nothing blocks any more.
    applied = json.loads(r.file("vm_apply.out"))
    assert [(h["host_name"], h["action"]) for h in applied["healed"]] == [("xcp-b", "removed")]
    assert not any(f["severity"] == "blocking" for f in applied["findings"])
    assert int(r.file("vm_apply.rc")) == 0, r.file("vm_apply.err")
    assert r.file("state.after").strip() == "absent"
    assert int(r.file("lvchange.rc")) == 0, r.file("lvchange.err")
    events = [json.loads(l)["event"] for l in r.file("journal-b.jsonl").splitlines()]
    assert events[-2:] == ["removal", "outcome"]

    # The pool was told: one warning that it was found (two scans, one message), one
    # information that it was removed, both on the VDI.
    messages = json.loads(r.file("messages.json"))
    by_name = {}
    for m in messages:
        by_name.setdefault(m["name"], []).append(m)
    (found,) = by_name["DMHEAL_GHOST_FOUND"]
    (removed,) = by_name["DMHEAL_GHOST_REMOVED"]
    assert (found["cls"], found["obj_uuid"], found["priority"]) == ("VDI", uml.VDI, "3")
    assert (removed["cls"], removed["obj_uuid"], removed["priority"]) == ("VDI", uml.VDI, "5")
    assert "fn=heal args:vdi_uuid=%s" % uml.VDI in found["body"]
    assert uml.DM_NAME in removed["body"] and "dmheal restore" in removed["body"]
