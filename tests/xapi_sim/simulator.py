"""A xapi simulator for the tests: serves xapi's XML-RPC (POST / or /RPC2) and JSON-RPC
(POST /jsonrpc) on a unix socket or loopback TCP, from a pool described in a scenario file.

What it implements is what dmheal and its tests use, with xapi's semantics and error shapes:
session.login_with_password / logout / local_logout / get_this_host
(SESSION_AUTHENTICATION_FAILED, SESSION_INVALID); host.get_API_version_major / minor (and the
API_version_* fields of every host record), host.get_software_version, host.get_servertime;
<class>.get_all, get_all_records, get_all_records_where / get_all_where (xapi's query
language, where.py), get_record, get_by_uuid, get_by_name_label, get_allowed_operations,
get_<field> (HANDLE_INVALID [class, ref], UUID_INVALID [class, uuid], MESSAGE_METHOD_UNKNOWN
[the full method name]); message.create / get_all_records / get_since (the object must exist);
Async.<class>.<method> (a task) and event.from (events of every write, events.py);
MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected, received] — counts without the session,
checked before the session as xapi does — for every method it knows. JSON-RPC answers in the
request's version: v2 `{"jsonrpc": "2.0", "result"}` or `{"error": {"code": 1, "message": CODE,
"data": [params]}}`; v1 (no "jsonrpc") `{"result", "error": null}` or `{"result": null,
"error": [CODE, params...]}` (xen-api's jsonrpc handling, rpc-light).
host.call_plugin(host, plugin, fn, args), which runs the plugin file from the plugin directory
exactly as xapi does: one argument, the XML-RPC methodCall(fn, [session ref, args]), stdout
parsed as a methodResponse; Failure(code, params) is raised as that API error, a crash as
XENAPI_PLUGIN_FAILURE, an absent plugin as XENAPI_MISSING_PLUGIN.

A pool member's xapi (--member-of MASTER_SOCKET --member-host REF), as xen-api's api_server
runs on a slave: `session.login_with_password` over its unix socket is whitelisted and trusted
as root without a password, the session being created in the master's database;
`session.slave_local_login_with_password` makes a session only this member knows (the master
answers SESSION_INVALID to anything done with it); every other call is forwarded to the master
as it came; a password login over TCP answers HOST_IS_SLAVE [master address].

usage: simulator.py SCENARIO.json --unix PATH | --port N [--tls-cert PEM --tls-key PEM] [--plugins DIR]
       simulator.py --member-of MASTER_SOCKET --member-host REF --unix PATH
A scenario maps class names (host, host_metrics, SR, PBD, VDI, VBD, VM, pool) to
{ref: record}; "sim" holds simulator settings: "password", per-host "plugin_env",
"hang_hosts" (call_plugin never answers), "offline_hosts" (HOST_OFFLINE), "no_plugin_hosts"
(dmheal not installed there: XENAPI_MISSING_PLUGIN), per-host "plugin_python" (the interpreter
the plugin runs on there), per-host
"plugin_delay" (seconds before answering) and per-host, per-function "plugin_replies" (what a
host simulated without a kernel of its own answers, in turn). tests/xapi_sim/pools.py builds
pools of any size.
"""

import argparse
import copy
import itertools
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
import xmlrpc.client
from http.server import BaseHTTPRequestHandler

import events as xapi_events
import where

CLASSES = ("host", "host_metrics", "SR", "PBD", "VDI", "VBD", "VM", "pool", "message", "task",
           "session")

# message.create's cls values (xen-api's datamodel), and the table each names.
MESSAGE_CLASSES = {"VM": "VM", "Host": "host", "SR": "SR", "Pool": "pool", "VDI": "VDI",
                   "VMPP": None, "VMSS": None, "PVS_proxy": None, "Certificate": None}

# How many parameters each method takes after the session (xapi counts them so), for the
# methods that are not generic getters.
ARITY = {
    "session.logout": 0, "session.local_logout": 0, "session.get_this_host": 1,
    "host.call_plugin": 4, "host.get_API_version_major": 1, "host.get_API_version_minor": 1,
    "message.create": 5, "message.get_since": 1,
    "SR.forget": 1, "SR.scan": 1, "VM.power_state_reset": 1, "VDI.add_to_sm_config": 3,
    "VDI.remove_from_sm_config": 2, "SR.introduce": 7, "PBD.create": 1, "PBD.plug": 1,
    "SR.set_other_config": 2, "SR.set_tags": 2, "SR.add_tags": 2, "PBD.set_other_config": 2,
    "event.from": 3, "host.get_servertime": 1, "host.get_software_version": 1,
    "task.destroy": 1,
}

# What a record of these classes has in xapi that the scenarios leave out (host records are
# otherwise kept as written, so that a damaged one can be played).
HOST_API_DEFAULTS = {"API_version_major": "2", "API_version_minor": "21",
                     "API_version_vendor": "XenSource", "API_version_vendor_implementation": {}}
# allowed_operations where a record does not say (xen-api computes them; these are what a
# client sees for the records' usual states).
ALLOWED = {"VM": {"Halted": ["start", "start_on", "export", "destroy", "clone", "copy"],
                  "Running": ["clean_shutdown", "clean_reboot", "hard_shutdown", "hard_reboot",
                              "suspend", "pause", "pool_migrate", "snapshot"],
                  "Paused": ["unpause", "hard_shutdown", "hard_reboot"],
                  "Suspended": ["resume", "resume_on", "hard_shutdown"]},
           "SR": ["scan", "vdi_create", "vdi_introduce", "forget", "update", "plug", "unplug"],
           "VDI": ["clone", "copy", "snapshot", "destroy", "forget", "resize"],
           "VBD": ["attach", "plug", "unplug", "eject", "insert"],
           "host": ["provision", "evacuate", "reboot", "shutdown"],
           "PBD": []}


def arity(method):
    """Parameters after the session, or None for a method the simulator does not know."""
    if method in ARITY:
        return ARITY[method]
    op = method.partition(".")[2]
    if op in ("get_all", "get_all_records"):
        return 0
    if op in ("get_all_records_where", "get_all_where"):
        return 1
    if op.startswith("get_"):
        return 1
    return None


class ApiError(Exception):
    def __init__(self, code, *params):
        Exception.__init__(self, code, *params)
        self.code = code
        self.params = [str(p) for p in params]


# Fields every record of these classes has in xapi, with the value a new one gets: a scenario
# may leave them out, the simulator's database never does (host records are kept as written,
# so that a damaged record can be played).
DEFAULTS = {
    "SR": {"name_description": "", "other_config": {}, "sm_config": {}, "tags": [], "PBDs": [],
           "VDIs": [], "shared": False, "content_type": "", "physical_size": "0",
           "physical_utilisation": "0"},
    "PBD": {"device_config": {}, "other_config": {}, "currently_attached": False},
}


class Pool(object):
    def __init__(self, scenario, plugin_dir):
        self.db = {c: copy.deepcopy(scenario.get(c, {})) for c in CLASSES if c != "session"}
        for cls, fields in DEFAULTS.items():
            for rec in self.db[cls].values():
                for k, v in fields.items():
                    rec.setdefault(k, copy.deepcopy(v))
        self.sim = scenario.get("sim", {})
        self.plugin_dir = plugin_dir
        self.sessions = set()
        self.session_host = {}  # a member's sessions: the host they were made on
        self.logins = 0
        self.counter = itertools.count(1)
        self.lock = threading.Lock()
        self.calls = []
        self.events = xapi_events.Events()

    # -- sessions
    def login(self, user, password, *rest):
        if user != "root" or password != self.sim.get("password", ""):
            raise ApiError("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
        ref = "OpaqueRef:session-%d" % next(self.counter)
        with self.lock:
            self.sessions.add(ref)
            self.logins += 1
        return ref

    def check_session(self, ref):
        if ref not in self.sessions:
            raise ApiError("SESSION_INVALID", ref)

    # -- generic object access
    def _table(self, cls, method=None):
        if cls not in self.db:
            raise ApiError("MESSAGE_METHOD_UNKNOWN", method or cls)
        return self.db[cls]

    def master(self):
        pools = list(self.db.get("pool", {}).values())
        return pools[0].get("master", "OpaqueRef:NULL") if pools else "OpaqueRef:NULL"

    def _record(self, cls, ref):
        table = self._table(cls)
        if ref not in table:
            raise ApiError("HANDLE_INVALID", cls, ref)
        return table[ref]

    def dispatch(self, method, params):
        if method in ("session.login_with_password", "session.slave_local_login_with_password"):
            return self.login(*params)
        if method == "sim.live_sessions":
            return len(self.sessions)
        if method == "sim.logins":
            return self.logins
        if method == "sim.forget_host":
            # A host gone from the database (ejected, or its record lost in an upgrade).
            with self.lock:
                for ref, rec in list(self.db["host"].items()):
                    if rec.get("uuid") == params[0]:
                        del self.db["host"][ref]
            return ""
        if method == "sim.member_login":
            # A member writing a session for its local root login into the master's database.
            ref = "OpaqueRef:session-%d" % next(self.counter)
            with self.lock:
                self.sessions.add(ref)
                self.logins += 1
                if params:
                    self.session_host[ref] = params[0]
            return ref
        if method.startswith("Async."):
            return self.async_call(method[len("Async."):], params)
        expected = arity(method)
        if expected is not None and len(params) - 1 != expected:
            raise ApiError("MESSAGE_PARAMETER_COUNT_MISMATCH", method, expected,
                           max(len(params) - 1, 0))
        if not params:
            raise ApiError("SESSION_INVALID", "")
        self.check_session(params[0])
        args = params[1:]
        with self.lock:
            self.calls.append(method)
        if method == "session.logout":
            self.sessions.discard(params[0])
            return ""
        if method == "session.local_logout":
            return ""  # only a pool admin's slave-local sessions; an ordinary session stays
        if method == "session.get_this_host":
            self.check_session(args[0])
            return self.session_host.get(args[0], self.master())
        if method in ("host.get_API_version_major", "host.get_API_version_minor"):
            rec = self._record("host", args[0])
            major = method.endswith("major")
            # int64: text over XML-RPC (as the scenarios hold numbers), a number over JSON-RPC.
            return str(rec.get("API_version_major" if major else "API_version_minor",
                               2 if major else 21))
        if method == "host.get_software_version":
            return self._record("host", args[0]).get("software_version", {})
        if method == "host.get_servertime":
            self._record("host", args[0])
            return xmlrpc.client.DateTime(time.gmtime())
        if method == "event.from":
            classes, token, timeout = args
            counts = {c.lower(): len(t) for c, t in self.db.items()}
            return self.events.since(classes, token, timeout, counts)
        if method == "task.destroy":
            with self.lock:
                self._record("task", args[0])
                del self.db["task"][args[0]]
                self.events.emit("task", "del", args[0])
            return ""
        if method == "message.create":
            with self.lock:
                return self.message_create(*args)
        if method == "message.get_since":
            since = str(args[0])
            return {r: m for r, m in self.db["message"].items() if m["timestamp"] > since}
        if method == "host.call_plugin":
            return self.call_plugin(params[0], *args)
        if method in self.MUTATORS:
            with self.lock:
                before = {c: set(t) for c, t in self.db.items()}
                result = getattr(self, self.MUTATORS[method])(*args)
                self.emit_changes(before, args, result)
                return result
        cls, _, op = method.partition(".")
        table = self._table(cls, method)
        if op == "get_all":
            return sorted(table)
        if op == "get_all_records":
            return {r: self.shown(cls, rec) for r, rec in table.items()}
        if op in ("get_all_records_where", "get_all_where"):
            try:
                test = where.parse(args[0])
            except where.BadExpression as e:
                raise ApiError("INTERNAL_ERROR", "bad expression: %s" % e)
            found = {r: self.shown(cls, rec) for r, rec in table.items() if test(rec)}
            return found if op == "get_all_records_where" else sorted(found)
        if op == "get_record":
            return self.shown(cls, self._record(cls, args[0]))
        if op == "get_allowed_operations":
            rec = self._record(cls, args[0])
            return self.shown(cls, rec)["allowed_operations"]
        if op == "get_by_uuid":
            for ref, rec in table.items():
                if rec.get("uuid") == args[0]:
                    return ref
            raise ApiError("UUID_INVALID", cls, args[0])
        if op == "get_by_name_label":
            return sorted(r for r, rec in table.items() if rec.get("name_label") == args[0])
        if op.startswith("get_"):
            rec = self.shown(cls, self._record(cls, args[0]))
            field = op[len("get_"):]
            if field not in rec:
                raise ApiError("MESSAGE_METHOD_UNKNOWN", method)
            return rec[field]
        raise ApiError("MESSAGE_METHOD_UNKNOWN", method)

    def shown(self, cls, rec):
        """A record as xapi shows it: the fields xapi computes filled in where the scenario
        leaves them out."""
        if cls == "host":
            rec = dict(HOST_API_DEFAULTS, **rec)
        if cls in ALLOWED and "allowed_operations" not in rec:
            allowed = ALLOWED[cls]
            if isinstance(allowed, dict):
                allowed = allowed.get(rec.get("power_state"), [])
            rec = dict(rec, allowed_operations=list(allowed))
        return rec

    # -- tasks: Async.<class>.<method> (see events.py)
    def async_call(self, method, params):
        n = next(self.counter)
        ref = "OpaqueRef:task-%d" % n
        task = xapi_events.task_record("%08d-0000-4000-8000-%012d" % (800 + n, 800 + n),
                                       "Async." + method)
        with self.lock:
            if not params:
                raise ApiError("SESSION_INVALID", "")
            self.check_session(params[0])
            self.db["task"][ref] = task
            self.events.emit("task", "add", ref, task)

        def run():
            try:
                value = self.dispatch(method, params)
                error = None
            except ApiError as e:
                value, error = None, e
            except Exception as e:  # a simulator bug: xapi's INTERNAL_ERROR
                value, error = None, ApiError("INTERNAL_ERROR", str(e))
            with self.lock:
                xapi_events.finish(task, value, error)
                self.events.emit("task", "mod", ref, task)
        threading.Thread(target=run, daemon=True).start()
        return ref

    # -- the few writes the doctor's --apply uses, with xapi's effects
    MUTATORS = {"SR.forget": "sr_forget", "SR.scan": "sr_scan", "VM.power_state_reset": "vm_reset",
                "VDI.add_to_sm_config": "vdi_add_to_sm_config",
                "VDI.remove_from_sm_config": "vdi_remove_from_sm_config",
                "SR.introduce": "sr_introduce", "PBD.create": "pbd_create", "PBD.plug": "pbd_plug",
                "SR.set_other_config": "sr_set_other_config", "SR.set_tags": "sr_set_tags",
                "SR.add_tags": "sr_add_tags", "PBD.set_other_config": "pbd_set_other_config"}

    def emit_changes(self, before, args, result):
        """Events for what a write did: records made and destroyed, and the ones it was given
        (or answered) changed."""
        for cls, refs in before.items():
            now = set(self.db[cls])
            for ref in sorted(now - refs):
                self.events.emit(cls, "add", ref, self.db[cls][ref])
            for ref in sorted(refs - now):
                self.events.emit(cls, "del", ref)
            for ref in sorted(refs & now):
                if ref in args or ref == result:
                    self.events.emit(cls, "mod", ref, self.db[cls][ref])

    def sr_set_other_config(self, sr_ref, value):
        self._record("SR", sr_ref)["other_config"] = dict(value)
        return ""

    def sr_set_tags(self, sr_ref, value):
        self._record("SR", sr_ref)["tags"] = list(value)
        return ""

    def sr_add_tags(self, sr_ref, tag):
        tags = self._record("SR", sr_ref).setdefault("tags", [])
        if tag not in tags:
            tags.append(tag)
        return ""

    def pbd_set_other_config(self, pbd_ref, value):
        self._record("PBD", pbd_ref)["other_config"] = dict(value)
        return ""

    def message_create(self, name, priority, cls, obj_uuid, body):
        if cls not in MESSAGE_CLASSES:
            raise ApiError("INVALID_VALUE", "cls", cls)
        try:
            priority = int(priority)
        except (TypeError, ValueError):
            raise ApiError("FIELD_TYPE_ERROR", "priority")
        table = MESSAGE_CLASSES[cls]
        if table is None or not any(r.get("uuid") == obj_uuid for r in self.db.get(table, {}).values()):
            raise ApiError("UUID_INVALID", cls, obj_uuid)
        n = next(self.counter)
        ref = "OpaqueRef:message-%d" % n
        self.db["message"][ref] = {
            "uuid": "%08d-0000-4000-8000-%012d" % (700 + n, 700 + n), "name": name,
            "priority": str(priority), "cls": cls, "obj_uuid": obj_uuid, "body": body,
            "timestamp": time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime())}
        return ref

    def sr_introduce(self, uuid, name_label, name_description, kind, content_type, shared,
                     sm_config):
        if any(r.get("uuid") == uuid for r in self.db["SR"].values()):
            raise ApiError("SR_UUID_EXISTS", uuid)
        ref = "OpaqueRef:sr-introduced-%d" % next(self.counter)
        # xapi's SR.introduce writes a database record only, the type lower-cased.
        self.db["SR"][ref] = {"uuid": uuid, "name_label": name_label,
                              "name_description": name_description, "type": kind.lower(),
                              "content_type": content_type, "shared": shared,
                              "sm_config": sm_config, "other_config": {}, "tags": [],
                              "PBDs": [], "VDIs": [], "physical_size": "0",
                              "physical_utilisation": "0"}
        return ref

    def pbd_create(self, record):
        host, sr = record.get("host"), record.get("SR")
        self._record("host", host)
        self._record("SR", sr)
        if any(p.get("host") == host and p.get("SR") == sr for p in self.db["PBD"].values()):
            raise ApiError("PBD_EXISTS", sr, host)
        n = next(self.counter)
        ref = "OpaqueRef:pbd-created-%d" % n
        # xapi's PBD.create ignores other_config (the record is made with an empty one):
        # PBD.set_other_config sets it.
        self.db["PBD"][ref] = {"uuid": "%08d-0000-4000-8000-%012d" % (900 + n, 900 + n),
                               "host": host, "SR": sr,
                               "device_config": dict(record.get("device_config", {})),
                               "other_config": {},
                               "currently_attached": False}
        self.db["SR"][sr]["PBDs"].append(ref)
        self.db["host"][host].setdefault("PBDs", []).append(ref)
        return ref

    def pbd_plug(self, pbd_ref):
        self._record("PBD", pbd_ref)["currently_attached"] = True
        return ""

    def vdi_add_to_sm_config(self, vdi_ref, key, value):
        config = self._record("VDI", vdi_ref).setdefault("sm_config", {})
        if key in config:
            raise ApiError("MAP_DUPLICATE_KEY", "VDI", "sm_config", vdi_ref, key)
        config[key] = value
        return ""

    def vdi_remove_from_sm_config(self, vdi_ref, key):
        self._record("VDI", vdi_ref).setdefault("sm_config", {}).pop(key, None)
        return ""

    def sr_forget(self, sr_ref):
        sr = self._record("SR", sr_ref)
        # xapi refuses while a PBD is plugged.
        for pbd_ref in sr.get("PBDs", []):
            if self.db["PBD"].get(pbd_ref, {}).get("currently_attached"):
                raise ApiError("SR_HAS_PBD", sr_ref)
        # The data stays on the storage: SR.scan of the SR introduced again finds the VDIs.
        stored = self.sim.setdefault("storage", {}).setdefault(sr["uuid"], {})
        for vdi_ref in sr.get("VDIs", []):
            if vdi_ref in self.db["VDI"]:
                stored[vdi_ref] = dict(copy.deepcopy(self.db["VDI"][vdi_ref]), VBDs=[])
        for vdi_ref in sr.get("VDIs", []):
            vdi = self.db["VDI"].pop(vdi_ref, {})
            for vbd_ref in vdi.get("VBDs", []):
                vbd = self.db["VBD"].pop(vbd_ref, {})
                vm = self.db["VM"].get(vbd.get("VM"))
                if vm and vbd_ref in vm.get("VBDs", []):
                    vm["VBDs"].remove(vbd_ref)
        for pbd_ref in sr.get("PBDs", []):
            pbd = self.db["PBD"].pop(pbd_ref, {})
            host = self.db["host"].get(pbd.get("host"))
            if host and pbd_ref in host.get("PBDs", []):
                host["PBDs"].remove(pbd_ref)
        del self.db["SR"][sr_ref]
        return ""

    def sr_scan(self, sr_ref):
        sr = self._record("SR", sr_ref)
        self.sim.setdefault("scanned", []).append(sr_ref)
        for vdi_ref, vdi in self.sim.get("storage", {}).pop(sr["uuid"], {}).items():
            vdi["SR"] = sr_ref
            self.db["VDI"][vdi_ref] = vdi
            sr.setdefault("VDIs", []).append(vdi_ref)
        return ""

    def vm_reset(self, vm_ref):
        vm = self._record("VM", vm_ref)
        if vm.get("is_control_domain"):
            raise ApiError("OPERATION_NOT_ALLOWED", "the control domain's power state cannot be reset")
        vm.update(power_state="Halted", resident_on="OpaqueRef:NULL", domid="-1")
        for vbd_ref in vm.get("VBDs", []):
            if vbd_ref in self.db["VBD"]:
                self.db["VBD"][vbd_ref]["currently_attached"] = False
        return ""

    # -- plugins, as xapi runs them
    def call_plugin(self, session, host_ref, plugin, fn, args):
        self._record("host", host_ref)
        if host_ref in self.sim.get("offline_hosts", []):
            raise ApiError("HOST_OFFLINE", host_ref)
        if host_ref in self.sim.get("hang_hosts", []):
            time.sleep(3600)
        time.sleep(float(self.sim.get("plugin_delay", {}).get(host_ref, 0)))
        # A host simulated without a kernel of its own answers what the scenario says it would
        # (each answer once; the last one stays): {"value": ...} or {"failure": [code, ...]}.
        replies = self.sim.get("plugin_replies", {}).get(host_ref, {}).get(fn)
        if replies:
            with self.lock:
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
            if "failure" in reply:
                raise ApiError(*reply["failure"])
            return json.dumps(reply["value"])
        path = os.path.join(self.plugin_dir, plugin)
        if not os.path.isfile(path) or host_ref in self.sim.get("no_plugin_hosts", []):
            raise ApiError("XENAPI_MISSING_PLUGIN", plugin)
        call = xmlrpc.client.dumps((session, {str(k): str(v) for k, v in args.items()}), fn)
        env = dict(os.environ)
        env.update(self.sim.get("plugin_env", {}).get(host_ref, {}))
        # The interpreter the plugin's first line names on that host (a fixed one, chosen when
        # dmheal was installed there: 2.7 on Citrix Hypervisor 8.2).
        python = self.sim.get("plugin_python", {}).get(host_ref)
        argv = ([python] if python else []) + [path, call]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, universal_newlines=True)
        if proc.returncode != 0:
            raise ApiError("XENAPI_PLUGIN_FAILURE", "non-zero exit", proc.stdout, proc.stderr)
        try:
            (result,), _ = xmlrpc.client.loads(proc.stdout)
        except Exception as e:
            raise ApiError("XENAPI_PLUGIN_FAILURE", "failed to parse plugin output", proc.stdout, str(e))
        if result.get("Status") == "Success" and isinstance(result.get("Value"), str):
            return result["Value"]
        if result.get("Status") == "Failure":
            desc = result.get("ErrorDescription") or ["XENAPI_PLUGIN_FAILURE"]
            raise ApiError(desc[0], *desc[1:])
        raise ApiError("XENAPI_PLUGIN_FAILURE", "unexpected XMLRPC result", proc.stdout)


def post_unix(socket_path, path, body, content_type, timeout=30):
    """One HTTP POST over a unix socket; the response body."""
    import http.client
    import socket

    class Connection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(socket_path)

    c = Connection("localhost", timeout=timeout)
    c.request("POST", path, body, {"Content-Type": content_type})
    return c.getresponse().read()


class Member(object):
    """A pool member's xapi (see the module's documentation)."""

    WHITELIST = ("session.login_with_password", "session.slave_local_login_with_password",
                 "session.local_logout")

    def __init__(self, master_socket, host_ref, master_address="192.0.2.1"):
        self.master = master_socket
        self.host_ref = host_ref
        self.master_address = master_address
        self.local_sessions = set()
        self.counter = itertools.count(1)
        self.calls = []

    def forwards(self, method):
        return method not in self.WHITELIST

    def forward(self, path, body, content_type):
        self.calls.append(path)
        return post_unix(self.master, path, body, content_type)

    def dispatch(self, method, params, local=True):
        if method == "session.login_with_password":
            if not local:
                raise ApiError("HOST_IS_SLAVE", self.master_address)
            # Trusted as root over the unix socket; the session lives in the master's database.
            body = json.dumps({"jsonrpc": "2.0", "method": "sim.member_login",
                               "params": [self.host_ref], "id": 1})
            return json.loads(post_unix(self.master, "/jsonrpc", body, "application/json"))["result"]
        if method == "session.slave_local_login_with_password":
            ref = "OpaqueRef:slave-local-%d" % next(self.counter)
            self.local_sessions.add(ref)
            return ref
        if method == "session.local_logout":
            self.local_sessions.discard(params[0] if params else None)
            return ""
        raise ApiError("MESSAGE_METHOD_UNKNOWN", method)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        pool = self.server.pool
        if isinstance(pool, Member):
            is_json = self.path.startswith("/jsonrpc")
            method = json.loads(body.decode("utf-8")).get("method") if is_json \
                else xmlrpc.client.loads(body)[1]
            if pool.forwards(method):
                ctype = "application/json" if is_json else "text/xml"
                data = pool.forward(self.path, body, ctype)
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
        if self.path.startswith("/jsonrpc"):
            out = self._jsonrpc(pool, body)
            ctype = "application/json"
        else:
            out = self._xmlrpc(pool, body)
            ctype = "text/xml"
        data = out.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, pool, method, params):
        try:
            if isinstance(pool, Member):
                return pool.dispatch(method, params, local=isinstance(self.server, UnixServer))
            return pool.dispatch(method, params)
        except ApiError:
            raise
        except Exception as e:  # a simulator bug still answers, as xapi answers INTERNAL_ERROR
            raise ApiError("INTERNAL_ERROR", "%s: %s" % (e.__class__.__name__, e))

    def _xmlrpc(self, pool, body):
        params, method = xmlrpc.client.loads(body)
        try:
            value = {"Status": "Success", "Value": self._dispatch(pool, method, list(params))}
        except ApiError as e:
            value = {"Status": "Failure", "ErrorDescription": [e.code] + e.params}
        return xmlrpc.client.dumps((value,), methodresponse=True, allow_none=True)

    # int64 fields: xapi's JSON-RPC sends them as JSON numbers (XML-RPC as strings, as the
    # scenarios hold them).
    INT_FIELDS = ("domid", "virtual_size", "physical_size", "physical_utilisation",
                  "virtual_allocation", "memory_static_max", "priority")
    INT_METHODS = ("host.get_API_version_major", "host.get_API_version_minor")

    @classmethod
    def _json_ints(cls, value):
        if isinstance(value, dict):
            return {k: (int(v) if k in cls.INT_FIELDS and isinstance(v, str)
                        and v.lstrip("-").isdigit() else cls._json_ints(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [cls._json_ints(v) for v in value]
        return value

    def _jsonrpc(self, pool, body):
        req = json.loads(body.decode("utf-8"))
        v2 = "jsonrpc" in req
        try:
            result = self._json_ints(self._dispatch(pool, req["method"], list(req.get("params") or [])))
            if req["method"] in self.INT_METHODS:
                result = int(result)
            resp = {"jsonrpc": "2.0", "result": result} if v2 else {"result": result, "error": None}
        except ApiError as e:
            resp = ({"jsonrpc": "2.0", "error": {"code": 1, "message": e.code, "data": e.params}}
                    if v2 else {"result": None, "error": [e.code] + e.params})
        resp["id"] = req.get("id")
        # xapi's JSON-RPC sends a DateTime as its ISO 8601 text (20261207T05:00:00Z).
        return json.dumps(resp, default=lambda v: v.value.rstrip("Z") + "Z"
                          if isinstance(v, xmlrpc.client.DateTime) else str(v))


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = self.socket.accept()
        return request, ("local", 0)


class TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(scenario_path, unix=None, port=None, plugins=None, ready=None, tls=None, member=None):
    if member:
        pool = Member(*member)
    else:
        with open(scenario_path) as f:
            scenario = json.load(f)
        pool = Pool(scenario, plugins or os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins"))
    if unix:
        if os.path.exists(unix):
            os.unlink(unix)
        server = UnixServer(unix, Handler)
    else:
        server = TcpServer(("127.0.0.1", port), Handler)
        if tls:  # HTTPS, as xapi serves on port 443 with the pool's certificate
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.pool = pool
    if ready:
        with open(ready, "w") as f:
            f.write("%s\n" % (server.server_address[1] if not unix else "ready"))
    server.serve_forever()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", nargs="?")
    p.add_argument("--member-of", help="the master's unix socket: be a pool member's xapi")
    p.add_argument("--member-host", help="this member's host ref")
    p.add_argument("--unix")
    p.add_argument("--port", type=int)
    p.add_argument("--plugins")
    p.add_argument("--ready")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    a = p.parse_args()
    if not a.unix and a.port is None:
        sys.exit("give --unix PATH or --port N (0: any free port, written to --ready)")
    tls = (a.tls_cert, a.tls_key) if a.tls_cert else None
    member = (a.member_of, a.member_host) if a.member_of else None
    if not member and not a.scenario:
        sys.exit("give a SCENARIO, or --member-of")
    serve(a.scenario, a.unix, a.port, a.plugins, a.ready, tls, member)


if __name__ == "__main__":
    main()
