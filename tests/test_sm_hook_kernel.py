"""The SM hook on a real kernel, run the way a host runs it (issues 3 and 12).

SM is played by stand-ins with SM's real modules' shapes and order (tests/sm_standin/README):
LVMCache.activate counts SM's reference before it activates; blktap2's vdi_activate writes
xapi's `activating` and `host_<this host>` marks before that; every LVM and dmsetup call holds
Fairlock. xapi is the simulator, reached over its unix socket; the hook is installed with
`dmheal hook install` and loaded by its .pth; dmheal's SMlog lines are checked as received on
/dev/log. Both backends, both SM layouts plus XenServer 8.4's compatibility modules, and dom0's
CPython 3.6 (which always uses the binary)."""

import json
import os

import pytest

import uml
from conftest import PYTHON27, PYTHON27_MISSING, PYTHON36, PYTHON36_MISSING, guest_env

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "sm_standin")
SIM = os.path.join(HERE, "xapi_sim")
HOST_A = "a0000000-0000-4000-8000-00000000000a"
VDI_WEB = "1c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
LV_WEB = "VHD-" + VDI_WEB
WEB_DM = uml.VG.replace("-", "--") + "-" + LV_WEB.replace("-", "--")

PRELUDE = r"""
export STANDIN=%(standin)s DMHEAL_BIN="$DMHEAL" DMHEAL_CONF="$WORK/dmheal.conf" DMHEAL_PYTHON="$PYTHON"
"$SIMPY" "$HELPERS/syslog_sink.py" /dev/log "$OUT/syslog.txt" &
for i in $(seq 50); do grep -q ready "$OUT/syslog.txt" 2>/dev/null && break; sleep 0.1; done
# SM's Fairlock: every LVM and dmsetup call of SM's, and dmheal's check and remove, take it.
"$SIMPY" "$HELPERS/fairlock_server.py" /run/fairlock/devicemapper "$OUT/fairlock.log" &
for i in $(seq 50); do grep -q ready "$OUT/fairlock.log" 2>/dev/null && break; sleep 0.1; done
mkdir -p "$WORK/site"
"$DMHEAL" hook install --site-dir "$WORK/site" > "$OUT/install.txt"
echo "mode = heal" > "$DMHEAL_CONF"
activate() { "$PYTHON" "$HELPERS/activate.py" "$1" "$2" "${4:-lvmcache}" > "$OUT/$3.json"; }
"""

# xapi present, as on every dom0: the simulator on its unix socket; this host is xcp-a, whose
# VM "web" runs with the web VDI attached; the db VDI (uml.VDI) is free.
XAPI = r"""
mkdir -p /run/xapi
echo "INSTALLATION_UUID='%(host)s'" > "$WORK/inventory"
export DMHEAL_XAPI=/run/xapi/xapi DMHEAL_INVENTORY="$WORK/inventory"
export SM_STANDIN_XAPI=/run/xapi/xapi SM_STANDIN_INVENTORY="$WORK/inventory"
export PYTHONPATH="$PYTHONPATH:%(sim)s"
"$SIMPY" "%(sim)s/simulator.py" "%(sim)s/scenarios/three_hosts.json" --unix /run/xapi/xapi \
    --ready /run/xapi/ready &
for i in $(seq 100); do [ -e /run/xapi/ready ] && break; sleep 0.1; done
sm_config() {  # the VDI's sm-config as xapi has it now
    "$SIMPY" - "$1" > "$OUT/$2.json" <<'PY'
import json, sys, XenAPI
s = XenAPI.Session("http://_run_xapi_xapi/", transport=XenAPI.UDSTransport())
s.xenapi.login_with_password("root", "", "1.0", "t")
print(json.dumps(s.xenapi.VDI.get_sm_config(s.xenapi.VDI.get_by_uuid(sys.argv[1]))))
PY
}
"""


def boot(kernel, dmheal_bin, body, python=None, xapi=False, env=None):
    script = PRELUDE % {"standin": STANDIN}
    if xapi:
        script += XAPI % {"host": HOST_A, "sim": SIM}
    e = guest_env(python)
    e.update(env or {})
    return kernel.run(script + body, dmheal_bin, env=e)


def outcome(r, name):
    return json.loads(r.file(name + ".json"))


def smlog_lines(r):
    """dmheal's SMlog lines as received on /dev/log: priority 150 = LOCAL2 (18) * 8 + INFO (6)."""
    return [l for l in r.file("syslog.txt").splitlines() if "dmheal:" in l]


def journal(r):
    return [json.loads(l) for l in r.file("journal.jsonl").splitlines()] if r.has("journal.jsonl") else []


def same_failure(a, b):
    keys = ("type", "code", "cmd", "reason")
    return not a["ok"] and not b["ok"] and {k: a[k] for k in keys} == {k: b[k] for k in keys}


def codes(entry):
    return {x["code"] for x in entry["inspection"]["reasons"]}


# (layout, backend, python): every layout, both backends, dom0's 3.6 on the binary.
RUNS = [
    pytest.param("legacy", "native", None, id="legacy-native"),
    pytest.param("upstream", "binary", None, id="upstream-binary"),
    pytest.param("xs84", "native", None, id="xs84-native"),
    pytest.param("legacy", "binary", PYTHON36, id="legacy-py36",
                 marks=pytest.mark.skipif(not PYTHON36, reason=PYTHON36_MISSING)),
    pytest.param("xs84", "binary", PYTHON36, id="xs84-py36",
                 marks=pytest.mark.skipif(not PYTHON36, reason=PYTHON36_MISSING)),
    # Citrix Hypervisor 8.2 CU1: SM on Python 2.7, its fcntl LVM lock, no `activating` mark.
    pytest.param("x82", "binary", PYTHON27, id="x82-py27",
                 marks=pytest.mark.skipif(not PYTHON27, reason=PYTHON27_MISSING)),
]


@pytest.mark.parametrize("layout, backend, python", RUNS)
def test_vdi_activation_in_sms_order_heals_the_ghost_with_xapi_present(kernel, dmheal_bin,
                                                                         layout, backend, python):
    """blktap2's order: `activating` and this host's `host_` mark written through xapi, SM's
    reference counted, then lvchange -ay — the hook knows the mark and the reference are the
    activation's own, heals the ghost, and the activation succeeds."""
    r = boot(kernel, dmheal_bin, r"""
export DMHEAL_BACKEND=%(backend)s
if [ %(layout)s = x82 ]; then  # 8.2 has no Fairlock: SM's fcntl lock /var/lock/sm/.nil/lvm
    pkill -f fairlock_server.py; rm -f /run/fairlock/devicemapper; mkdir -p /var/lock/sm/.nil
fi
make_sr_vg
make_ghost
activate %(layout)s off without_hook blktap2
"$PYTHON" - > "$OUT/backend.txt" <<'PY'
import dmheal; print(dmheal.backend_name())
PY
sm_config "$VDI" sm_config.before
activate %(layout)s "$WORK/site" with_hook blktap2
sm_config "$VDI" sm_config.after
dm_state "$DM_NAME" > "$OUT/state.after"
cat /var/run/sm/refcount/lvm-$SR/$VDI > "$OUT/refcount" 2>/dev/null
""" % {"backend": backend, "layout": layout}, python=python, xapi=True)
    assert r.rc == 0, r.output
    assert r.file("backend.txt").strip() == ("binary" if python else backend)
    without = outcome(r, "without_hook")
    assert not without["ok"] and "Device or resource busy" in without["reason"], without
    # SM backed out of the failed activation: marks and reference gone again.
    assert r.file("sm_config.before.json").strip() == '{"vdi_type": "vhd"}'
    with_hook = outcome(r, "with_hook")
    assert with_hook == {"wrapped": True, "pread2_wrapped": True, "ok": True, "activated": True}, r.output
    name, uuid = r.file("state.after").split()[:2]
    assert name == uml.DM_NAME and uuid.startswith("LVM-")
    after = json.loads(r.file("sm_config.after.json"))
    assert after.get("host_OpaqueRef:host-a") == "RW" and "activating" not in after
    assert r.file("refcount").split() == ["0", "1"]
    entries = journal(r)
    assert [e["event"] for e in entries] == ["removal", "outcome"], entries
    assert entries[1]["result"] == "removed"
    assert {"xapi_activating", "sm_refcount_activating", "xapi_free_here"} <= codes(entries[0])

    lines = smlog_lines(r)
    assert any("removed ghost" in l and "before activating /dev/%s/%s" % (uml.VG, uml.LV) in l
               for l in lines), lines
    assert all(l.startswith("<150>") and "SM: [" in l for l in lines)


@pytest.mark.parametrize("backend, python", [
    pytest.param("native", None, id="native"),
    pytest.param("binary", PYTHON36, id="py36",
                 marks=pytest.mark.skipif(not PYTHON36, reason=PYTHON36_MISSING)),
])
def test_the_busy_failure_path_heals_and_retries_once(kernel, dmheal_bin, backend, python):
    """A mapping under the LV's name carrying an LVM-made uuid of no LV of the VG (a stale
    mapping after a rename): the one-ioctl check lets SM's call through, lvchange fails busy,
    the full check proves it a ghost, heals it, and SM's activation is retried once."""
    r = boot(kernel, dmheal_bin, r"""
export DMHEAL_BACKEND=%s
make_sr_vg
table=$(dmsetup table "$DM_NAME")
vg_uuid=$(vgs --noheadings -o vg_uuid "$VG" | tr -d ' -')
lvchange -q -an "$VG/$LV"
dmsetup create "$DM_NAME" --uuid "LVM-${vg_uuid}StaleLvOfARenameXXXXXXXXXXXXXXXX" --table "$table"
dmsetup mknodes "$DM_NAME"
activate legacy "$WORK/site" with_hook blktap2
dm_state "$DM_NAME" > "$OUT/state.after"
""" % backend, python=python, xapi=True)
    assert r.rc == 0, r.output
    assert outcome(r, "with_hook") == {"wrapped": True, "pread2_wrapped": True, "ok": True, "activated": True}, r.output
    assert r.file("state.after").split()[1].startswith("LVM-")
    assert "StaleLv" not in r.file("state.after")
    lines = smlog_lines(r)
    assert any("failed busy" in l and "removed ghost" in l and "retrying" in l for l in lines), lines
    entries = journal(r)
    assert [e["event"] for e in entries] == ["removal", "outcome"]
    assert "StaleLv" in entries[0]["uuid"] and "lvm_inactive" in codes(entries[0])


@pytest.mark.parametrize("backend, python", [
    pytest.param("native", None, id="native"),
    pytest.param("binary", PYTHON36, id="py36",
                 marks=pytest.mark.skipif(not PYTHON36, reason=PYTHON36_MISSING)),
])
def test_with_xapi_present_it_still_refuses_what_is_used(kernel, dmheal_bin, backend, python):
    """The activation's own marks excuse nothing else: a VDI attached by a VBD of a running VM
    on this host, a tapdisk naming it (even paused), an opener — SM's original exception
    stands, the mapping stays, the decision is journalled."""
    r = boot(kernel, dmheal_bin, r"""
export DMHEAL_BACKEND=%s
make_sr_vg
add_lv "$VG" %s
make_ghost
make_ghost "$VG" %s
dm_state "$DM_NAME" > "$OUT/db.before"
dm_state %s > "$OUT/web.before"
activate legacy off baseline

# 1. The web VDI: attached to VM "web", running on this host (SM's own refcounted path).
LV=%s VDI=%s activate legacy "$WORK/site" attached
# 2. The db VDI, free in xapi, named by a paused tapdisk.
echo "pid=4242 minor=3 state=0x20 args=vhd:/dev/$VG/$LV" > "$WORK/taps"
TAPCTL_LIST_FILE="$WORK/taps" PATH="$HELPERS/../doubles:$PATH" activate legacy "$WORK/site" paused_tapdisk blktap2
# 3. The db VDI, held open by a process.
sleep 600 < "/dev/mapper/$DM_NAME" &
holder=$!; echo $holder > "$OUT/pid"; sleep 0.2
activate legacy "$WORK/site" held_open blktap2
kill $holder; wait $holder 2>/dev/null
dm_state "$DM_NAME" > "$OUT/db.after"
dm_state %s > "$OUT/web.after"
""" % (backend, LV_WEB, LV_WEB, WEB_DM, LV_WEB, VDI_WEB, WEB_DM), python=python, xapi=True)
    assert r.rc == 0, r.output
    baseline = outcome(r, "baseline")
    assert "Device or resource busy" in baseline["reason"]
    attached = outcome(r, "attached")
    assert attached["wrapped"] and not attached["ok"]
    assert "Device or resource busy" in attached["reason"]
    for case in ("paused_tapdisk", "held_open"):
        o = outcome(r, case)
        assert o["wrapped"] and same_failure(o, baseline), (case, o, baseline)
    assert r.file("db.after") == r.file("db.before")
    assert r.file("web.after") == r.file("web.before")
    entries = journal(r)
    assert {e["event"] for e in entries} == {"decision"}, entries
    summaries = " | ".join(e["summary"] for e in entries)
    assert "VM web" in summaries and "attached on this host" in summaries
    assert "4242 (paused)" in summaries
    assert "pid %s" % r.file("pid").strip() in summaries


def test_an_already_active_lv_costs_one_ioctl(kernel, dmheal_bin):
    """SM 8.4 refreshes an active LV through the same call: LVM's own mapping is there, and the
    hook calls through without asking the core (a binary that does not exist proves it)."""
    r = boot(kernel, dmheal_bin, r"""
make_sr_vg
DMHEAL_BACKEND=binary DMHEAL_BIN=/nonexistent/dmheal activate legacy "$WORK/site" refresh refresh
dm_state "$DM_NAME" > "$OUT/state.after"
""")
    assert r.rc == 0, r.output
    assert outcome(r, "refresh") == {"wrapped": True, "pread2_wrapped": True, "ok": True}
    assert smlog_lines(r) == []
    assert not r.has("journal.jsonl")


def test_observe_changes_nothing_and_journals_its_decision(kernel, dmheal_bin):
    r = boot(kernel, dmheal_bin, r"""
make_sr_vg
make_ghost
dm_state "$DM_NAME" > "$OUT/state.before"
activate upstream off baseline
echo "mode = observe" > "$DMHEAL_CONF"
DMHEAL_BACKEND=binary activate upstream "$WORK/site" observe
dm_state "$DM_NAME" > "$OUT/state.after"
""")
    assert r.rc == 0, r.output
    assert same_failure(outcome(r, "observe"), outcome(r, "baseline"))
    assert r.file("state.after") == r.file("state.before")
    assert any("mode observe; left in place: a ghost" in l for l in smlog_lines(r))
    entries = journal(r)
    assert [(e["event"], e["action"]) for e in entries] == [("decision", "would-remove")]


def test_the_probe_agrees_with_the_kernel_and_spares_the_core(kernel, dmheal_bin):
    """The in-process probe sees exactly what dmsetup sees, uuid included; with no mapping the
    hook never reaches the core (proved by pointing the binary backend at a binary that does
    not exist)."""
    r = boot(kernel, dmheal_bin, r"""
make_sr_vg
make_ghost
lvcreate -q -y -n VHD-idle -L 8m "$VG" >/dev/null; lvchange -an "$VG/VHD-idle"
lvcreate -q -y -n VHD-active -L 8m "$VG" >/dev/null
dmsetup ls | cut -f1 | sort > "$OUT/dmsetup_ls.txt"
dmsetup info -c --noheadings -o uuid "$(dm_name_of "$VG" VHD-active)" > "$OUT/active_uuid.txt"
"$PYTHON" - > "$OUT/probe.json" <<'PY'
import json, os
from dmheal import dm_probe, sm_hook
vg = os.environ["VG"].replace("-", "--")
names = ["dmheal-not-there", os.environ["DM_NAME"], vg + "-VHD--idle", vg + "-VHD--active"]
out = {n: [dm_probe.probe(n).exists, dm_probe.probe(n).uuid, dm_probe.probe(n).lvm_made()] for n in names}
logs = []
sm_hook.smlog = logs.append
os.environ.update(DMHEAL_BACKEND="binary", DMHEAL_BIN="/nonexistent/dmheal")
sm_hook.before_activation("/dev/%s/VHD-idle" % os.environ["VG"])
sm_hook.before_activation("/dev/%s/VHD-active" % os.environ["VG"])
out["logs_cheap"] = logs[:]
sm_hook.before_activation("/dev/%s/%s" % (os.environ["VG"], os.environ["LV"]))
out["logs_ghost"] = logs[:]
print(json.dumps(out))
PY
""")
    assert r.rc == 0, r.output
    out = json.loads(r.file("probe.json"))
    vg = uml.VG.replace("-", "--")
    listed = r.file("dmsetup_ls.txt").split()
    assert out["dmheal-not-there"] == [False, None, False]
    assert out[uml.DM_NAME] == [True, "", False] and uml.DM_NAME in listed
    assert out[vg + "-VHD--idle"] == [False, None, False]
    assert out[vg + "-VHD--active"] == [True, r.file("active_uuid.txt").strip(), True]
    assert out["logs_cheap"] == []  # neither asked the core (a missing binary here)
    assert len(out["logs_ghost"]) == 1 and "dmheal binary was not found" in out["logs_ghost"][0]
