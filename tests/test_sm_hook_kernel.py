"""The SM hook on a real kernel (issue 3): an SM-style activation of a VDI with a ghost under
its LV fails busy without the hook and succeeds with it; it is refused, with SM's original
exception unchanged, when the mapping is held open or named by a paused tapdisk; `observe`
changes nothing. The hook is installed with `dmheal hook install` and loaded by its .pth."""

import json
import os

import pytest

import uml

STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sm_standin")

PRELUDE = r"""
export STANDIN=%(standin)s DMHEAL_BIN="$DMHEAL" DMHEAL_CONF="$WORK/dmheal.conf" DMHEAL_PYTHON="$PYTHON"
export PYTHONPATH="%(pythonpath)s"
"$PYTHON" "$HELPERS/syslog_sink.py" /dev/log "$OUT/syslog.txt" &
for i in $(seq 50); do grep -q ready "$OUT/syslog.txt" 2>/dev/null && break; sleep 0.1; done
mkdir -p "$WORK/site"
"$DMHEAL" hook install --site-dir "$WORK/site" > "$OUT/install.txt"
activate() { "$PYTHON" "$HELPERS/activate.py" "$1" "$2" > "$OUT/$3.json"; }
"""


def boot(kernel, dmheal_bin, body):
    pythonpath = os.environ.get("PYTHONPATH", "")
    return kernel.run(PRELUDE % {"standin": STANDIN, "pythonpath": pythonpath} + body, dmheal_bin)


def outcome(r, name):
    return json.loads(r.file(name + ".json"))


def smlog_lines(r):
    """dmheal's SMlog lines as received on /dev/log: priority 150 = LOCAL2 (18) * 8 + INFO (6)."""
    return [l for l in r.file("syslog.txt").splitlines() if "dmheal:" in l]


def same_failure(a, b):
    keys = ("type", "code", "cmd", "reason")
    return not a["ok"] and not b["ok"] and {k: a[k] for k in keys} == {k: b[k] for k in keys}


@pytest.mark.parametrize("layout, backend", [("legacy", "native"), ("upstream", "binary")])
def test_activation_heals_the_seed_ghost_by_itself(kernel, dmheal_bin, layout, backend):
    r = boot(kernel, dmheal_bin, r"""
export DMHEAL_BACKEND=%s
echo "mode = heal" > "$DMHEAL_CONF"
make_sr_vg
make_ghost
activate %s off without_hook
activate %s "$WORK/site" with_hook
dm_state "$DM_NAME" > "$OUT/state.after"
lv_attr "$VG" "$LV" > "$OUT/attr.after"
""" % (backend, layout, layout))
    assert r.rc == 0, r.output
    assert "installed" in r.file("install.txt")
    without = outcome(r, "without_hook")
    assert not without["ok"] and not without["wrapped"]
    assert "Device or resource busy" in without["reason"]
    assert without["type"].endswith("CommandException")
    with_hook = outcome(r, "with_hook")
    assert with_hook == {"wrapped": True, "ok": True}
    # The kernel now holds LVM's own mapping: the ghost is gone, the LV active.
    name, uuid = r.file("state.after").split()[:2]
    assert name == uml.DM_NAME and uuid.startswith("LVM-")
    assert r.file("attr.after").strip()[4] == "a"
    journal = [json.loads(l) for l in r.file("journal.jsonl").splitlines()]
    assert [e["event"] for e in journal] == ["removal", "outcome"]
    assert journal[0]["dm_name"] == uml.DM_NAME and journal[1]["result"] == "removed"
    lines = smlog_lines(r)
    assert lines, r.file("syslog.txt")
    assert lines[0].startswith("<150>")
    assert "SM: [" in lines[0] and "] dmheal: before activating /dev/%s/%s" % (uml.VG, uml.LV) in lines[0]
    assert "removed ghost" in lines[0]


def test_activation_is_refused_with_the_original_exception_when_the_mapping_is_used(kernel, dmheal_bin):
    r = boot(kernel, dmheal_bin, r"""
echo "mode = heal" > "$DMHEAL_CONF"
make_sr_vg
make_ghost
dm_state "$DM_NAME" > "$OUT/state.before"
activate legacy off baseline

# 1. held open by a process
sleep 600 < "/dev/mapper/$DM_NAME" &
holder=$!; echo $holder > "$OUT/pid"; sleep 0.2
activate legacy "$WORK/site" held_open
kill $holder; wait $holder 2>/dev/null
dm_state "$DM_NAME" > "$OUT/state.after_held"

# 2. named by a paused tapdisk (tap-ctl double)
echo "pid=4242 minor=3 state=0x20 args=vhd:/dev/$VG/$LV" > "$WORK/taps"
TAPCTL_LIST_FILE="$WORK/taps" PATH="$HELPERS/../doubles:$PATH" activate legacy "$WORK/site" paused_tapdisk
dm_state "$DM_NAME" > "$OUT/state.after_paused"

# 3. observe: looks, logs, journals the decision, changes nothing (binary backend here)
echo "mode = observe" > "$DMHEAL_CONF"
DMHEAL_BACKEND=binary activate legacy "$WORK/site" observe
dm_state "$DM_NAME" > "$OUT/state.after_observe"
""")
    assert r.rc == 0, r.output
    baseline = outcome(r, "baseline")
    assert "Device or resource busy" in baseline["reason"]
    for case in ("held_open", "paused_tapdisk", "observe"):
        o = outcome(r, case)
        assert o["wrapped"], case
        assert same_failure(o, baseline), (case, o, baseline)
    before = r.file("state.before")
    for after in ("state.after_held", "state.after_paused", "state.after_observe"):
        assert r.file(after) == before, after
    lines = smlog_lines(r)
    pid = r.file("pid").strip()
    held = [l for l in lines if "held open by pid %s" % pid in l]
    assert held and "the original error stands" in held[-1]
    assert any("paused" in l and "4242" in l for l in lines)
    assert any("observe mode, left in place: a ghost" in l for l in lines)
    journal = [json.loads(l) for l in r.file("journal.jsonl").splitlines()]
    assert {e["event"] for e in journal} == {"decision"}
    assert {e["action"] for e in journal} == {"refused", "would-remove"}
    assert len(journal) == 3  # one decision per activation: held open, paused tapdisk, observe


def test_the_probe_agrees_with_the_kernel_and_spares_the_core(kernel, dmheal_bin):
    """The in-process probe sees exactly what dmsetup sees; with no mapping the hook never
    reaches the core (proved by pointing the binary backend at a binary that does not exist)."""
    r = boot(kernel, dmheal_bin, r"""
echo "mode = heal" > "$DMHEAL_CONF"
make_sr_vg
make_ghost
lvcreate -q -y -n VHD-idle -L 8m "$VG" >/dev/null; lvchange -an "$VG/VHD-idle"
dmsetup ls | cut -f1 | sort > "$OUT/dmsetup_ls.txt"
"$PYTHON" - > "$OUT/probe.json" <<'PY'
import json, os
from dmheal import dm_probe, sm_hook
names = ["dmheal-not-there", os.environ["DM_NAME"], os.environ["VG"].replace("-", "--") + "-VHD--idle"]
out = {n: dm_probe.mapping_exists(n) for n in names}
logs = []
sm_hook.smlog = logs.append
os.environ.update(DMHEAL_BACKEND="binary", DMHEAL_BIN="/nonexistent/dmheal")
sm_hook.before_activation("/dev/%s/VHD-idle" % os.environ["VG"])
out["logs_absent"] = logs[:]
sm_hook.before_activation("/dev/%s/%s" % (os.environ["VG"], os.environ["LV"]))
out["logs_ghost"] = logs[:]
print(json.dumps(out))
PY
""")
    assert r.rc == 0, r.output
    out = json.loads(r.file("probe.json"))
    listed = r.file("dmsetup_ls.txt").split()
    assert out["dmheal-not-there"] is False
    assert out[uml.DM_NAME] is True and uml.DM_NAME in listed
    assert out[uml.VG.replace("-", "--") + "-VHD--idle"] is False
    assert out["logs_absent"] == []  # absent: the core (a missing binary here) was never asked
    assert len(out["logs_ghost"]) == 1 and "dmheal binary was not found" in out["logs_ghost"][0]
