"""dom0's Pythons for real (issues 12 and 22): XenServer 8.4 and XCP-ng 8.3 run SM and plugins
on CPython 3.6, Citrix Hypervisor 8.2 CU1 on 2.7 — a pool in a rolling upgrade has both. Here a
real CPython 3.6 and 2.7 run the facade (always on the binary, even where the native module
would happen to import) and the xapi plugin exactly as xapi runs it; their answers equal this
Python's, native backend included. The hook under them with the SM stand-ins is in
test_sm_hook_kernel.py (the py36 and py27 runs). Skipped, visibly, only where one is not
installed."""

import json
import os
import shutil
import subprocess
import xmlrpc.client

import pytest

import dmheal
from conftest import PACKAGE_SOURCE, dom0_pythons
from xapi_sim.harness import HERE as SIM_DIR, PLUGINS

VDI = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"


def run_on(python, code, env=None, path=PACKAGE_SOURCE):
    e = dict(os.environ)
    e["PYTHONPATH"] = path
    e.update(env or {})
    p = subprocess.run([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, env=e, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


PROBE = r"""
import json, sys
import dmheal
out = {"python": list(sys.version_info[:2]), "backend": dmheal.backend_name()}
try:
    dmheal.backend_name(force="native")
except dmheal.DmhealError as e:
    out["forced_native"] = e.kind
calls = {}
for name, fn in [("journal", lambda: dmheal.journal(journal=sys.argv[1])),
                 ("bad_target", lambda: dmheal.inspect("a;b", journal=sys.argv[1])),
                 ("bad_seconds", lambda: dmheal.heal("vg-lv", lock_timeout=-1, journal=sys.argv[1])),
                 ("no_entry", lambda: dmheal.restore(7, journal=sys.argv[1])),
                 ("scan", lambda: dmheal.scan(journal=sys.argv[1]))]:
    try:
        calls[name] = ["result", fn()]
    except dmheal.DmhealError as e:
        calls[name] = ["error", e.kind, e.message]
out["calls"] = calls
print(json.dumps(out))
"""


@pytest.mark.parametrize("python", dom0_pythons())
def test_the_facade_on_dom0s_python_uses_the_binary_and_answers_as_the_native_module(
        python, dmheal_bin, tmp_path, monkeypatch):
    journal = str(tmp_path / "journal.jsonl")
    with open(journal, "w") as f:
        f.write(json.dumps({"id": 1, "time": "2026-11-29T00:00:00Z", "host": "h", "pid": 1,
                            "event": "outcome", "of": 1, "result": "removed", "detail": "x"}) + "\n")
    os.chmod(journal, 0o600)
    code = PROBE.replace("sys.argv[1]", repr(journal))
    out = run_on(python, code, {"DMHEAL_BIN": dmheal_bin})
    assert out["python"] in ([3, 6], [2, 7])
    assert out["backend"] == "binary" and out["forced_native"] == "no_backend"
    # The same calls through this Python's native module.
    monkeypatch.setenv("DMHEAL_BACKEND", "native")
    here = {}
    for name, fn in [("journal", lambda: dmheal.journal(journal=journal)),
                     ("bad_target", lambda: dmheal.inspect("a;b", journal=journal)),
                     ("bad_seconds", lambda: dmheal.heal("vg-lv", lock_timeout=-1, journal=journal)),
                     ("no_entry", lambda: dmheal.restore(7, journal=journal)),
                     ("scan", lambda: dmheal.scan(journal=journal))]:
        try:
            here[name] = ["result", fn()]
        except dmheal.DmhealError as e:
            here[name] = ["error", e.kind, e.message]
    assert out["calls"] == here


@pytest.mark.parametrize("python", dom0_pythons())
def test_on_dom0s_python_the_native_module_is_never_loaded_even_where_it_imports(
        python, dmheal_bin, tmp_path):
    """The installed package, native module included, on 3.6's (or 2.7's) path: abi3-py38 is
    outside PyO3's range there, so the facade must not use it."""
    installed = os.path.dirname(dmheal.__file__)
    copy = tmp_path / "site"
    shutil.copytree(installed, str(copy / "dmheal"))
    assert any(n.startswith("_core") and n.endswith(".so") for n in os.listdir(str(copy / "dmheal")))
    out = run_on(python, "import json, dmheal, sys; print(json.dumps("
                          "{'backend': dmheal.backend_name(), 'core': 'dmheal._core' in sys.modules}))",
                {"DMHEAL_BIN": dmheal_bin}, path=str(copy))
    assert out == {"backend": "binary", "core": False}


@pytest.mark.parametrize("python", dom0_pythons())
def test_the_plugin_runs_on_dom0s_python_exactly_as_xapi_runs_it(python, dmheal_bin, tmp_path):
    """argv[1] is the methodCall; stdout the methodResponse — under 3.6 and 2.7 with PyPI's
    XenAPI."""
    call = xmlrpc.client.dumps(("OpaqueRef:session-test", {"vdi_uuid": "0c1d2e3f-zzzz"}), "inspect")
    results = {}
    for fn, args in [("version", {}), ("inspect", {"vdi_uuid": "0c1d2e3f-zzzz"}),
                     ("journal", {})]:
        call = xmlrpc.client.dumps(("OpaqueRef:session-test", args), fn)
        e = dict(os.environ)
        e.update(PYTHONPATH=os.pathsep.join([SIM_DIR, PACKAGE_SOURCE]), DMHEAL_BIN=dmheal_bin,
                 DMHEAL_XAPI="none", DMHEAL_JOURNAL=str(tmp_path / "j.jsonl"))
        p = subprocess.run([python, os.path.join(PLUGINS, "dmheal"), call],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, env=e, timeout=60)
        assert p.returncode == 0, p.stderr
        (results[fn],), _ = xmlrpc.client.loads(p.stdout)
    version = json.loads(results["version"]["Value"])
    assert version == {"version": dmheal.__version__, "backend": "binary"}
    assert results["inspect"]["Status"] == "Failure"
    assert results["inspect"]["ErrorDescription"][0] == "DMHEAL_BAD_ARGS"
    assert json.loads(results["journal"]["Value"]) == []
