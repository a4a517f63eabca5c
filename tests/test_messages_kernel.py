"""Telling the pool never costs the heal: on the real kernel with the simulator, a heal that
removes a ghost sends its xapi message only where that is safe and quick. Found by an
adversary: the message state file beside the journal was opened like any file and locked with
a blocking flock, and message.create was bounded per read — so a held lock or a FIFO hung the
heal (and the SM hook turned a removed ghost into a failed VM start), a symlink had root
overwrite another file, and a xapi answering a byte at a time kept a 3 s heal busy a minute."""

import json
import os

import uml

SIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xapi_sim")
HOST_A = "a0000000-0000-4000-8000-00000000000a"

SCRIPT = r"""
export DMHEAL_BIN="$DMHEAL" PATH="$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="%(sim)s:$PYTHONPATH" DMHEAL_HOST_UUID=%(host_a)s
make_sr_vg
make_ghost
mkdir -p /run/xapi
"$PYTHON" "%(sim)s/simulator.py" "%(sim)s/scenarios/three_hosts.json" --unix /run/xapi/xapi \
    --plugins "$(dirname "$HELPERS")/../xapi-plugin" --ready /run/xapi/ready &
for i in $(seq 100); do [ -e /run/xapi/ready ] && break; sleep 0.1; done
export DMHEAL_XAPI=/run/xapi/xapi
S=/run/dmheal/messages.json
messages() {
"$PYTHON" - <<'PY'
import json, XenAPI
s = XenAPI.Session("http://_run_xapi_xapi/", transport=XenAPI.UDSTransport())
s.xenapi.login_with_password("root", "", "1.0", "dmheal-tests")
print(json.dumps(sorted(m["name"] for m in s.xenapi.message.get_all_records().values())))
PY
}
again() { lvchange -q -ay "$VG/$LV"; make_ghost; }
heal() {  # heal CASE: a heal with a 3 s budget, killed after 30 s if it hangs
    local t0; t0=$(date +%%s%%N)
    timeout 30 "$DMHEAL" --json heal "$DM_NAME" --apply --budget 3 > "$OUT/$1.out" 2> "$OUT/$1.err"
    echo $? > "$OUT/$1.rc"
    echo $(( ($(date +%%s%%N) - t0) / 1000000 )) > "$OUT/$1.ms"
    dm_state "$DM_NAME" > "$OUT/$1.after"
    messages > "$OUT/$1.messages"
}

# (a) another run holds the state file's lock.
mkdir -p /run/dmheal && chmod 700 /run/dmheal
touch $S && chmod 600 $S
flock $S sleep 300 & HOLDER=$!
sleep 0.3
heal locked
# (a') the SM hook's own path, the same lock held: the heal's result reaches SM.
again
mkdir -p /run/conf; printf 'mode = heal\nbudget_seconds = 4\n' > /run/conf/dmheal.conf
DMHEAL_CONF=/run/conf/dmheal.conf DMHEAL_BACKEND=binary "$PYTHON" - "/dev/$VG/$LV" > "$OUT/hook.out" <<'PY'
import json, sys
from dmheal import sm_hook
logged = []
sm_hook.smlog = logged.append
retry = sm_hook.after_busy_failure(sys.argv[1], Exception("lvchange -ay failed: Device or resource busy"))
print(json.dumps({"retry": retry, "smlog": logged}))
PY
dm_state "$DM_NAME" > "$OUT/hook.after"
kill $HOLDER
# (b) a FIFO, (c) a symlink to another root file, (d) a file others may write.
again; rm -f $S; mkfifo -m 600 $S
heal fifo
again; rm -f $S
printf 'precious\n' > /run/victim; chmod 600 /run/victim; ln -s /run/victim $S
heal symlink
cat /run/victim > "$OUT/victim"
again; rm -f $S; echo '{}' > $S; chown 4242:4242 $S; chmod 666 $S
heal foreign
# (e) a time far in the future (a clock wrong once, then fixed) silences nothing.
again; rm -f $S; printf '{"DMHEAL_GHOST_REMOVED:%(vdi)s": 4102444800}' > $S; chmod 600 $S
heal future
# (f) a xapi that answers message.create a byte at a time.
"$PYTHON" "%(sim)s/drip_proxy.py" /run/xapi/drip /run/xapi/xapi message.create &
sleep 0.5
again; rm -f $S
DMHEAL_XAPI=/run/xapi/drip heal drip
# (g) the SM hook on both backends, xapi answering the message and the logout a byte at a
#     time: the heal's result still reaches SM within budget_seconds.
"$PYTHON" "%(sim)s/drip_proxy.py" /run/xapi/drip2 /run/xapi/xapi message.create,session.logout &
sleep 0.5
printf 'mode = heal\nbudget_seconds = 4\n' > /run/conf/dmheal.conf
for backend in binary native; do
    again; rm -f $S
    DMHEAL_XAPI=/run/xapi/drip2 DMHEAL_CONF=/run/conf/dmheal.conf DMHEAL_BACKEND=$backend \
        "$PYTHON" - "/dev/$VG/$LV" > "$OUT/hook_$backend.out" <<'PY'
import json, sys, time
from dmheal import sm_hook
sm_hook.smlog = lambda m: None
t = time.monotonic()
retry = sm_hook.after_busy_failure(sys.argv[1], Exception("lvchange -ay failed: Device or resource busy"))
print(json.dumps({"retry": retry, "seconds": time.monotonic() - t}))
PY
    echo $? > "$OUT/hook_$backend.rc"
    dm_state "$DM_NAME" > "$OUT/hook_$backend.after"
done
"""


def test_a_message_that_cannot_be_sent_quickly_and_safely_is_not_sent(kernel, dmheal_bin):
    r = kernel.run(SCRIPT % {"sim": SIM_DIR, "host_a": HOST_A, "vdi": uml.VDI}, dmheal_bin,
                   timeout=400)
    assert r.rc == 0, r.output

    def healed(case):
        assert int(r.file(case + ".rc")) == 0, (case, r.file(case + ".err"))
        out = json.loads(r.file(case + ".out"))
        assert out["action"] == "removed", (case, out["message"])
        assert r.file(case + ".after").strip() == "absent", case
        # Back well within the budget plus the tools' start-up, not at the 30 s kill.
        assert int(r.file(case + ".ms")) < 12000, (case, r.file(case + ".ms"))
        return json.loads(r.file(case + ".messages"))

    # Nothing was waited for and nothing untrusted was written; no message went out while
    # the state could not be used.
    for case in ("locked", "fifo", "symlink", "foreign"):
        assert healed(case) == [], case
    assert "another dmheal run is updating it" in r.file("locked.err")
    assert "not a regular file" in r.file("fifo.err")
    assert "symlink" in r.file("symlink.err")
    assert r.file("victim") == "precious\n"
    # The hook told SM to retry: the ghost it removed is gone, so the VM start goes on.
    hook = json.loads(r.file("hook.out"))
    assert hook["retry"] is True, hook
    assert r.file("hook.after").strip() == "absent"
    # A future time does not silence the VDI.
    assert healed("future") == ["DMHEAL_GHOST_REMOVED"]
    # A xapi answering a byte at a time costs at most the message bound: the message may
    # arrive in xapi (its side completes), the heal has long returned.
    healed("drip")
    assert "did not answer within" in r.file("drip.err"), r.file("drip.err")
    # The hook: the message and the logout keep to the operation's deadline, so the heal's
    # result reaches SM in time, and the SM process exits cleanly (no thread of the core left
    # to meet a finalizing interpreter).
    for backend in ("binary", "native"):
        assert int(r.file("hook_%s.rc" % backend)) == 0, backend
        hook = json.loads(r.file("hook_%s.out" % backend))
        assert hook["retry"] is True and hook["seconds"] < 4.0, (backend, hook)
        assert r.file("hook_%s.after" % backend).strip() == "absent", backend
