"""A pool member (issue 12): SM logs in through the local socket as root on every host, and on
a member xapi trusts that login, keeps the session in the master's database and forwards every
other call to the master (xen-api: api_server.ml's whitelist, xapi_session.ml). The simulator
plays both: the master on /run/xapi/xapi, member xcp-b on /run/xapi/member. On the real kernel,
with the member's layers: the CLI's verdict has xapi's view, the hook heals in SM's order, the
plugin answers through the master's host.call_plugin — and only with the master down is xapi
unreachable, while the local layers still decide."""

import json
import os

import uml

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "xapi_sim")
STANDIN = os.path.join(HERE, "sm_standin")
HOST_B = "b0000000-0000-4000-8000-00000000000b"

SCRIPT = r"""
export DMHEAL_BIN="$DMHEAL" STANDIN=%(standin)s DMHEAL_CONF="$WORK/dmheal.conf" DMHEAL_PYTHON="$PYTHON"
export PYTHONPATH="%(sim)s:$PYTHONPATH" PATH="$(dirname "$SIMPY"):$PATH"
make_sr_vg
make_ghost
mkdir -p /run/xapi "$WORK/site"
# Plugins run where xapi runs them; the one called here runs on the member, whose dmheal uses
# the member's socket (as every dom0 plugin uses its own host's).
DMHEAL_XAPI=/run/xapi/member "$SIMPY" "%(sim)s/simulator.py" "%(sim)s/scenarios/three_hosts.json" --unix /run/xapi/xapi \
    --plugins "$(dirname "$HELPERS")/../xapi-plugin" --ready /run/xapi/ready &
master=$!
for i in $(seq 100); do [ -e /run/xapi/ready ] && break; sleep 0.1; done
"$SIMPY" "%(sim)s/simulator.py" --member-of /run/xapi/xapi --member-host OpaqueRef:host-b \
    --unix /run/xapi/member --ready /run/xapi/member.ready &
for i in $(seq 100); do [ -e /run/xapi/member.ready ] && break; sleep 0.1; done
# This host is the member xcp-b: dmheal and SM both use its local socket.
echo "INSTALLATION_UUID='%(host_b)s'" > "$WORK/inventory"
export DMHEAL_XAPI=/run/xapi/member DMHEAL_INVENTORY="$WORK/inventory"
export SM_STANDIN_XAPI=/run/xapi/member SM_STANDIN_INVENTORY="$WORK/inventory"
live() { "$SIMPY" - <<'PY'
import json, urllib.request, socket, http.client
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect("/run/xapi/xapi")
c = C("x"); c.request("POST", "/jsonrpc", json.dumps({"jsonrpc": "2.0", "method": "sim.live_sessions", "params": ["OpaqueRef:none"], "id": 1}))
print(c.getresponse().read().decode())
PY
}

capture inspect "$DMHEAL" --json inspect "$VDI"
live > "$OUT/sessions.after_cli"

# The hook on the member, in SM's order (xapi marks through the member's socket).
echo "mode = heal" > "$DMHEAL_CONF"
"$DMHEAL" hook install --site-dir "$WORK/site" > /dev/null
"$PYTHON" "$HELPERS/activate.py" legacy "$WORK/site" blktap2 > "$OUT/activate.json"
dm_state "$DM_NAME" > "$OUT/state.after"
"$SIMPY" - > "$OUT/sm_config.json" <<'PY'
import json, XenAPI
s = XenAPI.Session("http://_run_xapi_member/", transport=XenAPI.UDSTransport())
s.xenapi.login_with_password("root", "", "1.0", "t")
x = s.xenapi
print(json.dumps(x.VDI.get_sm_config(x.VDI.get_by_uuid("%(vdi)s"))))
# A slave-local session is the member's alone: the master knows nothing of it.
local = XenAPI.Session("http://_run_xapi_member/", transport=XenAPI.UDSTransport())
local.slave_local_login_with_password("root", "")
try:
    local.xenapi.VDI.get_by_uuid("%(vdi)s")
    print(json.dumps("answered"))
except Exception as e:  # XenAPI retries a SESSION_INVALID login, then gives up with a Fault
    print(json.dumps(str(e)))
PY

# The plugin on the member, called through the master as XenCenter does.
"$SIMPY" - > "$OUT/plugin.json" 2> "$OUT/plugin.err" <<'PY'
import json, XenAPI
s = XenAPI.Session("http://_run_xapi_xapi/", transport=XenAPI.UDSTransport())
s.xenapi.login_with_password("root", "", "1.0", "t")
x = s.xenapi
print(x.host.call_plugin(x.host.get_by_uuid("%(host_b)s"), "dmheal", "inspect", {"vdi_uuid": "%(vdi)s"}))
PY

# The master goes down: the member's xapi cannot answer; the local layers still decide.
kill $master
rm -f "/var/run/sm/refcount/lvm-$SR/$VDI"  # as SM's deactivation would
make_ghost
capture inspect_down "$DMHEAL" --json --tool-timeout 4 inspect "$DM_NAME"
"""


def test_on_a_pool_member_xapi_answers_through_the_local_socket(kernel, dmheal_bin):
    env = {}
    r = kernel.run(SCRIPT % {"standin": STANDIN, "sim": SIM, "host_b": HOST_B, "vdi": uml.VDI},
                   dmheal_bin, env=env)
    assert r.rc == 0, r.output
    i = json.loads(r.file("inspect.out"))
    assert i["verdict"] == "ghost"
    xapi = i["facts"]["xapi"]
    assert xapi["state"] == "known" and xapi["this_host"] == HOST_B, xapi
    assert any(x["code"] == "xapi_free_here" for x in i["reasons"])
    # dmheal logged its session out again (the master's database keeps none of ours).
    assert json.loads(r.file("sessions.after_cli"))["result"] == 0

    assert json.loads(r.file("activate.json")) == {"wrapped": True, "pread2_wrapped": True, "ok": True, "activated": True}
    assert r.file("state.after").split()[1].startswith("LVM-")
    lines = r.file("sm_config.json").splitlines()
    assert json.loads(lines[0]).get("host_OpaqueRef:host-b") == "RW"
    assert "valid session" in json.loads(lines[1])  # the master answered SESSION_INVALID

    plugin = json.loads(r.file("plugin.json"))
    assert plugin["facts"]["xapi"]["state"] == "known"
    assert plugin["facts"]["xapi"]["this_host"] == HOST_B

    down = json.loads(r.file("inspect_down.out"))
    assert down["verdict"] == "ghost"
    assert down["facts"]["xapi"]["state"] == "unreachable"
