"""The simulator answers as xapi does where the official client notices (issue 15): gaps found
with the XenAPI client from PyPI, each pinned to xen-api's behaviour (gen_server.ml's argument
count check, api_server's unknown-method answer, rpc-light's JSON-RPC v1 and v2 shapes)."""

import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "xapi_sim"))

from harness import Simulator  # noqa: E402
from simulator import post_unix  # noqa: E402

import XenAPI  # noqa: E402


@pytest.fixture
def sim():
    s = Simulator("three_hosts.json")
    yield s
    s.stop()


def test_a_wrong_argument_count_is_an_error_and_the_connection_stays(sim):
    s = sim.session()
    x = s.xenapi
    with pytest.raises(XenAPI.Failure) as e:
        x.VM.get_record()
    # Counts without the session, as xapi gives them.
    assert e.value.details == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.get_record", "1", "0"]
    with pytest.raises(XenAPI.Failure) as e:
        x.host.call_plugin("OpaqueRef:host-a", "dmheal", "version")
    assert e.value.details == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "host.call_plugin", "4", "3"]
    # The same client goes on working.
    assert x.host.get_by_uuid("a0000000-0000-4000-8000-00000000000a") == "OpaqueRef:host-a"
    s.xenapi.session.logout()


def test_an_unknown_class_names_the_whole_method(sim):
    s = sim.session()
    with pytest.raises(XenAPI.Failure) as e:
        s.xenapi.Foo.bar()
    assert e.value.details == ["MESSAGE_METHOD_UNKNOWN", "Foo.bar"]
    s.xenapi.session.logout()


def test_session_and_api_version_calls(sim):
    s = sim.session()
    x = s.xenapi
    me = s._session
    assert x.session.get_this_host(me) == "OpaqueRef:host-a"  # the master's session
    assert x.host.get_API_version_major("OpaqueRef:host-a") == "2"  # XML-RPC: int64 as text
    assert x.host.get_API_version_minor("OpaqueRef:host-a") == "21"
    x.session.local_logout()  # an ordinary session: nothing happens
    assert x.host.get_all()
    s.xenapi.session.logout()


def test_messages_are_created_on_existing_objects_only(sim):
    s = sim.session()
    x = s.xenapi
    vdi = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
    ref = x.message.create("DMHEAL_GHOST_FOUND", "3", "VDI", vdi, "body")
    records = x.message.get_all_records()
    assert records[ref]["name"] == "DMHEAL_GHOST_FOUND" and records[ref]["obj_uuid"] == vdi
    assert records[ref]["priority"] == "3"  # int64 over XML-RPC
    with pytest.raises(XenAPI.Failure) as e:
        x.message.create("X", "3", "VDI", "00000000-0000-4000-8000-000000000000", "b")
    assert e.value.details[0] == "UUID_INVALID"
    with pytest.raises(XenAPI.Failure) as e:
        x.message.create("X", "3", "Bogus", vdi, "b")
    assert e.value.details[0] == "INVALID_VALUE"
    s.xenapi.session.logout()


def rpc(sim, payload):
    return json.loads(post_unix(sim.socket, "/jsonrpc", json.dumps(payload), "application/json"))


def test_json_rpc_answers_in_the_version_it_was_asked_in(sim):
    login = {"method": "session.login_with_password", "params": ["root", "", "1.0", "t"], "id": 7}
    v1 = rpc(sim, login)
    assert set(v1) == {"result", "error", "id"} and v1["error"] is None and v1["id"] == 7
    session = v1["result"]
    bad = rpc(sim, {"method": "VM.get_record", "params": [session, "OpaqueRef:nope"], "id": 8})
    assert bad == {"result": None, "error": ["HANDLE_INVALID", "VM", "OpaqueRef:nope"], "id": 8}
    v2 = rpc(sim, dict(login, jsonrpc="2.0"))
    assert set(v2) == {"jsonrpc", "result", "id"}
    err = rpc(sim, {"jsonrpc": "2.0", "method": "VM.get_record", "params": [session, "OpaqueRef:nope"],
                    "id": 9})
    assert err["error"] == {"code": 1, "message": "HANDLE_INVALID", "data": ["VM", "OpaqueRef:nope"]}
    assert "result" not in err


def test_records_where_an_expression_holds(sim):
    s = sim.session()
    x = s.xenapi
    running = x.VM.get_all_records_where('field "power_state" = "Running"')
    assert running and all(r["power_state"] == "Running" for r in running.values())
    every = x.VM.get_all_records()
    assert set(running) == {r for r, v in every.items() if v["power_state"] == "Running"}
    both = x.VM.get_all_records_where(
        'field "power_state" = "Running" and not (field "is_control_domain" = "true")')
    assert all(not v["is_control_domain"] for v in both.values()) and set(both) < set(running) | set(both)
    assert x.VM.get_all_records_where("false") == {}
    assert set(x.host.get_all_records_where("true")) == set(x.host.get_all())
    with pytest.raises(XenAPI.Failure):
        x.VM.get_all_records_where('field "power_state" = ')
    s.xenapi.session.logout()


def test_a_client_waits_on_a_task_with_event_from(sim):
    """Async.<call> gives a task at once; event.from delivers its change; the result is the
    value's XML-RPC encoding, as xapi gives it."""
    s = sim.session()
    x = s.xenapi
    host = x.host.get_by_uuid("a0000000-0000-4000-8000-00000000000a")
    token = getattr(x.event, "from")(["task"], "", 0.1)["token"]
    task = x.Async.host.get_software_version(host)
    assert task.startswith("OpaqueRef:")
    status = x.task.get_status(task)
    deadline = __import__("time").time() + 10
    while status == "pending":
        assert __import__("time").time() < deadline
        answer = getattr(x.event, "from")(["task"], token, 5.0)
        token = answer["token"]
        assert "task" in answer["valid_ref_counts"]
        for e in answer["events"]:
            assert {"id", "timestamp", "class", "operation", "ref"} <= set(e)
        status = x.task.get_status(task)
    assert status == "success"
    assert x.task.get_result(task).startswith("<value>")
    failing = x.Async.VM.get_record("OpaqueRef:no-such-vm")
    for _ in range(100):
        if x.task.get_status(failing) != "pending":
            break
        getattr(x.event, "from")(["task"], token, 0.5)
    assert x.task.get_error_info(failing)[0] == "HANDLE_INVALID"
    x.task.destroy(task)
    with pytest.raises(XenAPI.Failure):
        x.task.get_record(task)
    s.xenapi.session.logout()


def test_host_version_time_api_fields_and_allowed_operations(sim):
    s = sim.session()
    x = s.xenapi
    host = x.host.get_by_uuid("a0000000-0000-4000-8000-00000000000a")
    rec = x.host.get_record(host)
    assert (rec["API_version_major"], rec["API_version_minor"], rec["API_version_vendor"]) == ("2", "21", "XenSource")
    assert isinstance(x.host.get_software_version(host), dict)
    t = x.host.get_servertime(host)
    assert str(t)[:4].isdigit() and "T" in str(t)
    vm = [r for r, v in x.VM.get_all_records().items() if v["power_state"] == "Running"
          and not v["is_control_domain"]][0]
    assert "clean_shutdown" in x.VM.get_allowed_operations(vm)
    assert "scan" in x.SR.get_allowed_operations(x.SR.get_all()[0])
    s.xenapi.session.logout()


def test_json_rpc_gives_the_servertime_as_text(sim):
    body = json.dumps({"jsonrpc": "2.0", "method": "session.login_with_password",
                       "params": ["root", ""], "id": 1})
    session = json.loads(post_unix(sim.socket, "/jsonrpc", body, "application/json"))["result"]
    body = json.dumps({"jsonrpc": "2.0", "method": "host.get_servertime",
                       "params": [session, "OpaqueRef:host-a"], "id": 2})
    answer = json.loads(post_unix(sim.socket, "/jsonrpc", body, "application/json"))
    assert answer["result"].endswith("Z") and "T" in answer["result"], answer
