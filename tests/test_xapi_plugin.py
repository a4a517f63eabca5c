"""The xapi host plugin, run exactly as xapi runs it, and through the xapi simulator with the
official XenAPI client (every failure code); the Rust XenAPI client's pool scan against it."""

import json
import os
import subprocess
import sys
import xmlrpc.client

import pytest

from conftest import HOST_HAS_DEVICE_MAPPER
import XenAPI

from xapi_sim.harness import HOSTS, PLUGINS, Simulator, HERE as SIM_DIR

PLUGIN = os.path.join(PLUGINS, "dmheal")
VDI = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_plugin(fn, args, env=None):
    """As xapi does: one argv, the XML-RPC methodCall(fn, [session ref, args]); parse stdout."""
    call = xmlrpc.client.dumps(("OpaqueRef:session-test", args), fn)
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(p for p in (SIM_DIR, e.get("PYTHONPATH", "")) if p)
    e.setdefault("DMHEAL_XAPI", "none")
    e.update(env or {})
    p = subprocess.run([PLUGIN, call], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, env=e, timeout=60)
    assert p.returncode == 0, p.stderr
    (result,), _ = xmlrpc.client.loads(p.stdout)
    return result


def failure(result):
    assert result["Status"] == "Failure", result
    return result["ErrorDescription"]


@pytest.fixture(autouse=True)
def binary(dmheal_bin, monkeypatch, tmp_path):
    monkeypatch.setenv("DMHEAL_BIN", dmheal_bin)
    monkeypatch.setenv("DMHEAL_JOURNAL", str(tmp_path / "journal.jsonl"))


def load_plugin():
    """The plugin as a module (xapi runs it as a script; its functions are a table)."""
    import importlib.machinery
    import importlib.util
    sys.path.insert(0, SIM_DIR)
    loader = importlib.machinery.SourceFileLoader("dmheal_plugin", PLUGIN)
    spec = importlib.util.spec_from_loader("dmheal_plugin", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


# Parameters every operation takes that are this host's settings, not a caller's arguments;
# and heal's parameters that only SM's own activation may give (they excuse its marks).
COMMON = {"journal", "lock_timeout", "tool_timeout", "xapi_session"}
SM_ONLY = {"record", "activating", "in_sm_process"}


def test_the_plugins_functions_and_arguments_are_the_contracts(dmheal_bin):
    contract = json.loads(subprocess.check_output([dmheal_bin, "contract"]))["operations"]
    plugin = load_plugin()
    assert set(plugin.FUNCTIONS) - {"version"} == set(contract)
    for name, fn in plugin.FUNCTIONS.items():
        assert fn.__name__ == name
        if name == "version":
            continue
        want = set()
        for p in contract[name]["params"]:
            if p["name"] in COMMON or p["name"] in SM_ONLY:
                continue
            want |= set(plugin.TARGET_KEYS) if p["name"] == "target" else {p["name"]}
        assert set(fn.allowed) - set(plugin.LEGACY_ARGS) == want, name


def test_the_0_1_names_still_work():
    desc = failure(run_plugin("diagnose", {"vdi_uuid": "0c1d2e3f-zzzz"}))
    assert desc[0] == "DMHEAL_BAD_ARGS" and "uuid" in desc[1]
    assert failure(run_plugin("diagnose", {}))[0] == "DMHEAL_BAD_ARGS"
    desc = failure(run_plugin("volumes", {"vdi_uuids": "x;reboot"}))
    assert desc[0] == "DMHEAL_BAD_ARGS" and "unknown argument" not in desc[1], desc  # read, then refused


def test_version_matches_the_crate():
    r = run_plugin("version", {})
    assert r["Status"] == "Success" and isinstance(r["Value"], str)
    v = json.loads(r["Value"])
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        assert 'version = "%s"' % v["version"] in f.read()
    assert v["backend"] in ("native", "binary")


@pytest.mark.parametrize("fn, args, code", [
    ("diagnose", {}, "DMHEAL_BAD_ARGS"),
    ("inspect", {"vdi_uuid": VDI, "lv": "/dev/a/b"}, "DMHEAL_BAD_ARGS"),
    ("inspect", {"vdi": VDI}, "DMHEAL_BAD_ARGS"),
    ("inspect", {"vdi_uuid": "0c1d2e3f-zzzz"}, "DMHEAL_BAD_ARGS"),
    ("inspect", {"lv": "/etc/passwd"}, "DMHEAL_BAD_ARGS"),
    ("inspect", {"dm_name": "a;reboot"}, "DMHEAL_BAD_ARGS"),
    ("heal", {"vdi_uuid": VDI, "apply": "yes"}, "DMHEAL_BAD_ARGS"),
    ("restore", {"id": "abc"}, "DMHEAL_BAD_ARGS"),
    # Digits str.isdigit() accepts but int() rejects or reads: never an internal error.
    ("restore", {"id": "\u00b2"}, "DMHEAL_BAD_ARGS"),
    ("restore", {"id": "\u0663"}, "DMHEAL_BAD_ARGS"),
    ("restore", {"id": "1\n"}, "DMHEAL_BAD_ARGS"),
    ("restore", {"id": "01"}, "DMHEAL_BAD_ARGS"),
    ("volumes", {"vdis": VDI, "domid": "\u00b2"}, "DMHEAL_BAD_ARGS"),
    ("volumes", {"vdis": VDI, "vdi_uuids": VDI}, "DMHEAL_BAD_ARGS"),
    ("heal", {"vdi_uuid": VDI, "activating": "true"}, "DMHEAL_BAD_ARGS"),  # SM's own, never remote
    ("heal_all", {"budget": "soon"}, "DMHEAL_BAD_ARGS"),
    ("restore", {}, "DMHEAL_BAD_ARGS"),
    ("scan", {"extra": "1"}, "DMHEAL_BAD_ARGS"),
    ("heal_all", {"apply": "yes"}, "DMHEAL_BAD_ARGS"),
    ("heal_all", {"vdi_uuid": VDI}, "DMHEAL_BAD_ARGS"),
    ("restore", {"id": "5"}, "DMHEAL_NOT_FOUND"),
    ("nonsense", {}, "UNKNOWN_XENAPI_PLUGIN_FUNCTION"),
])
def test_failures_have_stable_codes(fn, args, code):
    desc = failure(run_plugin(fn, args))
    assert desc[0] == code, desc
    assert all(isinstance(d, str) for d in desc)


@pytest.mark.skipif(HOST_HAS_DEVICE_MAPPER, reason="this host has device-mapper")
def test_a_core_failure_is_internal_with_its_kind():
    for backend in ("native", "binary"):
        desc = failure(run_plugin("inspect", {"vdi_uuid": VDI}, {"DMHEAL_BACKEND": backend}))
        assert desc[0] == "DMHEAL_INTERNAL" and desc[2] == "no_device_mapper", desc


def test_journal_through_the_plugin_is_json():
    r = run_plugin("journal", {})
    assert json.loads(r["Value"]) == []


@pytest.fixture
def sim(dmheal_bin):
    s = Simulator("three_hosts.json", env={"DMHEAL_BIN": dmheal_bin})
    yield s
    s.stop()


def test_official_client_calls_the_plugin_through_the_simulator(sim):
    session = sim.session()
    x = session.xenapi
    host_a = x.host.get_by_uuid(HOSTS["a"])
    v = json.loads(x.host.call_plugin(host_a, "dmheal", "version", {}))
    assert v["version"]
    with pytest.raises(XenAPI.Failure) as e:
        x.host.call_plugin(host_a, "dmheal", "inspect", {"vdi_uuid": "bad"})
    assert e.value.details[0] == "DMHEAL_BAD_ARGS"
    with pytest.raises(XenAPI.Failure) as e:
        x.host.call_plugin(host_a, "dmheal", "restore", {"id": "9"})
    assert e.value.details[0] == "DMHEAL_NOT_FOUND"
    with pytest.raises(XenAPI.Failure) as e:
        x.host.call_plugin(host_a, "no-such-plugin", "version", {})
    assert e.value.details == ["XENAPI_MISSING_PLUGIN", "no-such-plugin"]
    with pytest.raises(XenAPI.Failure) as e:
        x.host.call_plugin("OpaqueRef:bogus", "dmheal", "version", {})
    assert e.value.details == ["HANDLE_INVALID", "host", "OpaqueRef:bogus"]
    with pytest.raises(XenAPI.Failure) as e:
        x.VDI.get_by_uuid("00000000-0000-4000-8000-000000000000")
    assert e.value.details[0] == "UUID_INVALID"
    assert x.VDI.get_record(x.VDI.get_by_uuid(VDI))["name_label"] == "db disk"
    session.xenapi.session.logout()


def test_session_errors_have_xapis_shape(sim):
    raw = xmlrpc.client.ServerProxy(sim.url(), transport=XenAPI.UDSTransport(), allow_none=True)
    r = raw.host.get_all("OpaqueRef:not-a-session")
    assert r == {"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", "OpaqueRef:not-a-session"]}
    r = raw.session.login_with_password("root", "wrong", "1.0", "t")
    assert r["ErrorDescription"][0] == "SESSION_AUTHENTICATION_FAILED"


def test_pool_scan_lists_failed_and_silent_hosts_and_is_not_fatal(sim, dmheal_bin):
    p = subprocess.run([dmheal_bin, "--json", "--xapi", sim.socket, "pool", "scan", "--host-timeout", "3"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    # A live host that could not be scanned: the pool is not known to be clean (exit 1), and
    # the report is still whole.
    assert p.returncode == 1, p.stderr
    report = json.loads(p.stdout)
    hosts = {h["host_uuid"]: h for h in report["hosts"]}
    assert set(hosts) == set(HOSTS.values())
    assert hosts[HOSTS["c"]]["status"] == "failed"
    assert "did not answer within 3 s" in hosts[HOSTS["c"]]["error"]
    if not os.path.exists("/dev/mapper/control"):
        # Here the hosts' own scans fail (no device-mapper): reported per host, with the code.
        assert hosts[HOSTS["a"]]["status"] == "failed"
        assert "DMHEAL_INTERNAL" in hosts[HOSTS["a"]]["error"]
    assert report["counts"]["hosts"] == 3 and report["counts"]["failed"] >= 1


def test_pool_heal_says_every_host_and_is_not_fatal(sim, dmheal_bin):
    p = subprocess.run([dmheal_bin, "--json", "--xapi", sim.socket, "pool", "heal", "--host-timeout", "3"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert p.returncode == 1, p.stderr
    report = json.loads(p.stdout)
    assert report["apply"] is False
    hosts = {h["host_uuid"]: h for h in report["hosts"]}
    assert set(hosts) == set(HOSTS.values())
    assert hosts[HOSTS["c"]]["status"] == "failed"
    assert "did not answer within 3 s (host.call_plugin heal_all)" in hosts[HOSTS["c"]]["error"]
    for h in (HOSTS["a"], HOSTS["b"]):
        if os.path.exists("/dev/mapper/control"):
            assert hosts[h]["status"] == "asked" and hosts[h]["answer"]["apply"] is False
        else:
            assert hosts[h]["status"] == "failed" and "DMHEAL_INTERNAL" in hosts[h]["error"]
    assert report["counts"]["hosts"] == 3 and report["counts"]["batch"]["removed"] == 0


def test_a_dead_xapi_is_a_clear_error_for_pool_scan(dmheal_bin):
    p = subprocess.run([dmheal_bin, "--xapi", "/nonexistent/xapi", "pool", "scan"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert p.returncode == 1
    assert "xapi unreachable" in p.stderr and "/nonexistent/xapi" in p.stderr


def make_cert(directory, name):
    cert, key = str(directory / (name + ".pem")), str(directory / (name + ".key"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def test_https_endpoint_with_the_pool_certificate(tmp_path, dmheal_bin):
    """xapi over TLS (what a remote pool member offers on 443): trusted only with --xapi-ca."""
    cert, key = make_cert(tmp_path, "pool")
    other, _ = make_cert(tmp_path, "other")
    sim = Simulator("three_hosts.json", env={"DMHEAL_BIN": dmheal_bin}, tls=(cert, key))
    try:
        url = "https://127.0.0.1:%s" % sim.port

        def scan(*extra):
            return subprocess.run([dmheal_bin, "--json", "--xapi", url] + list(extra) +
                                  ["pool", "scan", "--host-timeout", "3"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        ok = scan("--xapi-ca", cert)
        # Connected and reported (exit 1 only because the silent host could not be scanned).
        assert ok.returncode == 1 and ok.stderr == "", ok.stderr
        hosts = {h["host_uuid"]: h["status"] for h in json.loads(ok.stdout)["hosts"]}
        assert set(hosts) == set(HOSTS.values()) and hosts[HOSTS["c"]] == "failed"
        no_ca = scan()
        assert no_ca.returncode == 1 and "--xapi-ca" in no_ca.stderr
        wrong = scan("--xapi-ca", other)
        assert wrong.returncode == 1 and "xapi unreachable" in wrong.stderr
        assert "certificate" in wrong.stderr.lower()
    finally:
        sim.stop()
