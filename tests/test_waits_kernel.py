"""Every wait bounded, in the hook too (issue 13): inside a VM start the SM hook must be back in
SM within budget_seconds whatever happens below it. On the real kernel, for each thing that
used to hang — a udev that never completes a cookie, a Fairlock whose queue is full, a tap-ctl
whose child keeps its stdout, storage that stops answering (a suspended PV: lvs and the
metadata reader in D state) — with both backends: the hook's two steps are timed, the mapping
is left as the verdict allows, and the host (journal, LVM, the binary's exit) stays usable."""

import json

import pytest

import uml

BUDGET = 3.0
SLACK = 0.7  # thread join, killing the binary's group, Python start-up in the user-mode kernel

# Times sm_hook.before_activation and after_busy_failure as SM would call them.
TIMED = r"""
cat > "$WORK/timed.py" <<'PY'
import json, os, sys, time
from dmheal import sm_hook

class CommandException(Exception):
    def __init__(self, code, cmd, reason):
        Exception.__init__(self, code, cmd, reason)
        self.code, self.cmd, self.reason = code, cmd, reason

logs = []
sm_hook.smlog = logs.append
path = "/dev/%%s/%%s" %% (os.environ["VG"], os.environ["LV"])
t = time.monotonic()
sm_hook.before_activation(path)
before = time.monotonic() - t
busy = CommandException(5, "['lvchange', '-ay', '%%s']" %% path, "device-mapper: create ioctl failed: Device or resource busy")
t = time.monotonic()
retry = sm_hook.after_busy_failure(path, busy, recorded=True)
after = time.monotonic() - t
print(json.dumps({"before": before, "after": after, "retry": retry, "logs": logs}))
PY
export DMHEAL_BIN="$DMHEAL" DMHEAL_CONF="$WORK/dmheal.conf"
printf 'mode = heal\nbudget_seconds = %(budget)s\n' > "$DMHEAL_CONF"
timed() { DMHEAL_BACKEND=$1 "$PYTHON" "$WORK/timed.py" > "$OUT/$2.json"; }
"""


def run(kernel, dmheal_bin, body, timeout=240):
    r = kernel.run(TIMED % {"budget": BUDGET} + body, dmheal_bin, timeout=timeout)
    assert r.rc == 0, r.output
    return r


def timed(r, name):
    t = json.loads(r.file(name + ".json"))
    assert t["before"] < BUDGET + SLACK, (name, t)
    assert t["after"] < BUDGET + SLACK, (name, t)
    return t


@pytest.mark.parametrize("backend", ["native", "binary"])
def test_a_udev_that_never_completes_a_cookie_costs_nothing(kernel, dmheal_bin, backend):
    """/run/udev/control exists (udev "running") but nothing processes events: a removal or a
    restore that waited for its udev cookie would never return. None waits; no SysV semaphore
    is left behind."""
    r = run(kernel, dmheal_bin, r"""
make_sr_vg
make_ghost
# udev "running" (its control socket exists) but processing nothing. The test's own dmsetup
# is told not to wait for it (DM_DISABLE_UDEV); dmheal is not.
export DM_DISABLE_UDEV=1
mkdir -p /run/udev
"$SIMPY" -c 'import socket, time; s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.bind("/run/udev/control"); time.sleep(3600)' &
for i in $(seq 50); do [ -S /run/udev/control ] && break; sleep 0.1; done
timed %s hook
dm_state "$DM_NAME" > "$OUT/state.after_heal"
capture restore timeout 20 "$DMHEAL" --json restore 1
dm_state "$DM_NAME" > "$OUT/state.after_restore"
ipcs -s | grep -c '^0x' > "$OUT/semaphores" || true
""" % backend)
    t = timed(r, "hook")
    assert t["before"] < 2.0, t
    assert r.file("state.after_heal").strip() == "absent", t["logs"]
    assert r.file("restore.rc").strip() == "0", r.file("restore.err")
    assert r.file("state.after_restore").split()[0] == uml.DM_NAME
    assert r.file("semaphores").strip() == "0"


@pytest.mark.parametrize("backend", ["native", "binary"])
def test_a_fairlock_with_a_full_queue_costs_the_budget_only(kernel, dmheal_bin, backend):
    r = run(kernel, dmheal_bin, r"""
mkdir -p /run/fairlock
"$SIMPY" - <<'PY' &
import socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("/run/fairlock/devicemapper")
s.listen(0)
waiting = []
while True:  # fill the queue, never accept
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.setblocking(False)
    try:
        c.connect("/run/fairlock/devicemapper")
        waiting.append(c)
    except OSError:
        break
open("/run/fairlock/full", "w").close()
time.sleep(3600)
PY
for i in $(seq 50); do [ -e /run/fairlock/full ] && break; sleep 0.1; done
make_sr_vg
make_ghost
dm_state "$DM_NAME" > "$OUT/state.before"
timed %s hook
dm_state "$DM_NAME" > "$OUT/state.after"
""" % backend)
    t = timed(r, "hook")
    assert t["retry"] is False
    assert r.file("state.after") == r.file("state.before")
    assert any("lock" in l for l in t["logs"]), t["logs"]


@pytest.mark.parametrize("backend", ["native", "binary"])
def test_a_tap_ctl_whose_child_keeps_its_stdout_costs_nothing(kernel, dmheal_bin, backend):
    r = run(kernel, dmheal_bin, r"""
export TAPCTL_LINGER=1 PATH="$HELPERS/../doubles:$PATH"
make_sr_vg
make_ghost
timed %s hook
dm_state "$DM_NAME" > "$OUT/state.after"
""" % backend)
    t = timed(r, "hook")
    assert t["before"] < 2.0, t
    assert r.file("state.after").strip() == "absent", t["logs"]


@pytest.mark.parametrize("backend", ["native", "binary"])
def test_storage_that_stops_answering_costs_the_budget_and_the_host_stays_usable(
        kernel, dmheal_bin, backend):
    """The VG's PV is a mapping that gets suspended: reading it (lvs, the metadata reader)
    sleeps in D state until it is resumed. The hook gives up within its budget and refuses
    (LVM unreadable); the binary, killed at the deadline, does not keep anyone waiting; once
    the storage is back the same ghost heals and the journal reads."""
    r = run(kernel, dmheal_bin, r"""
size=$(blockdev --getsz /dev/ubda)
# The PV is a multipath map, as an iSCSI or FC SR's is: the kind whose paths die.
dmsetup create pvdev --uuid mpath-pvdev --table "0 $size linear /dev/ubda 0"
dmsetup mknodes pvdev
mkdir -p "$WORK/lvm-pv"
sed 's#a|^/dev/ubd|#a|^/dev/mapper/pvdev$|#' "$LVM_SYSTEM_DIR/lvm.conf" > "$WORK/lvm-pv/lvm.conf"
export LVM_SYSTEM_DIR="$WORK/lvm-pv"
pvcreate -q -y /dev/mapper/pvdev >/dev/null
vgcreate -q -s 4m "$VG" /dev/mapper/pvdev >/dev/null
lvcreate -q -y -n "$LV" -L 8m "$VG" >/dev/null
make_ghost
dmsetup suspend pvdev
timed %s hook
start=$(date +%%s%%N)
capture cli timeout 30 "$DMHEAL" --json heal "$DM_NAME" --apply --budget 3
echo $(( ($(date +%%s%%N) - start) / 1000000 )) > "$OUT/cli_ms"
# LVM's own tools (pvs, then lvs) share the one deadline: two runs, not twice the budget.
start=$(date +%%s%%N)
capture cli_lvs timeout 30 "$DMHEAL" --lvm-reader lvs --json heal "$DM_NAME" --apply --budget 3
echo $(( ($(date +%%s%%N) - start) / 1000000 )) > "$OUT/cli_lvs_ms"
dm_state "$DM_NAME" > "$OUT/state.suspended"
dmsetup resume pvdev
sleep 1
capture healed "$DMHEAL" --json heal "$DM_NAME" --apply
capture journal "$DMHEAL" --json journal
""" % backend, timeout=300)
    t = timed(r, "hook")
    assert t["retry"] is False
    assert r.file("state.suspended").strip() != "absent"
    for case in ("cli", "cli_lvs"):
        assert int(r.file(case + "_ms")) < (BUDGET + 3) * 1000, r.file(case + ".err")
        cli = json.loads(r.file(case + ".out"))
        assert cli["action"] == "refused", cli
        assert "lvm_unreadable" in {x["code"] for x in cli["inspection"]["reasons"]}
    healed = json.loads(r.file("healed.out"))
    assert healed["action"] == "removed", healed["message"]
    assert json.loads(r.file("journal.out"))
