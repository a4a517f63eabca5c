"""The Python facade: the native module and the binary give the same answers (and the same
errors), and the facade source runs on dom0's Python 3.6 (vermin)."""

import json
import os
import subprocess
import shutil
import sys

import pytest

from conftest import PYTHON27, HOST_HAS_DEVICE_MAPPER

import dmheal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def backend(monkeypatch, dmheal_bin):
    monkeypatch.setenv("DMHEAL_BIN", dmheal_bin)

    def use(name):
        monkeypatch.setenv("DMHEAL_BACKEND", name)
        assert dmheal.backend_name() == name
    return use


def test_python_sources_run_on_dom0s_pythons():
    """vermin: what runs on dom0 — the facade, the hook, the plugin — on 2.7 (Citrix Hypervisor
    8.2's SM and plugins) and 3.6; the SM stand-ins and the activation driver too (they run
    under the same Pythons in the kernel tests). And CPython 2.7 itself compiles each file (a
    source with a non-ASCII character and no coding line does not even load there)."""
    plugin_copy = os.path.join(ROOT, "target", "vermin-plugin.py")
    os.makedirs(os.path.dirname(plugin_copy), exist_ok=True)
    shutil.copy(os.path.join(ROOT, "xapi-plugin", "dmheal"), plugin_copy)
    sources = [os.path.join(ROOT, "python", "dmheal", n)
               for n in sorted(os.listdir(os.path.join(ROOT, "python", "dmheal"))) if n.endswith(".py")]
    sources += [plugin_copy, os.path.join(ROOT, "tests", "kernel", "activate.py"),
                os.path.join(ROOT, "tests", "sm_standin", "x82"),
                os.path.join(ROOT, "tests", "sm_standin", "src"),
                os.path.join(ROOT, "tests", "xapi_sim", "XenAPIPlugin.py")]
    p = subprocess.run(
        [shutil.which("vermin") or "vermin", "-q", "--no-tips", "-t=2.7-", "-t=3.6-", "--violations"]
        + sources, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 0, p.stdout
    # The rest of the test harness that runs in the guest: 3.6.
    p = subprocess.run(
        [shutil.which("vermin") or "vermin", "-q", "--no-tips", "-t=3.6-", "--violations",
         os.path.join(ROOT, "tests", "kernel"), os.path.join(ROOT, "tests", "sm_standin")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert p.returncode == 0, p.stdout
    if PYTHON27:
        for f in sources:
            files = [os.path.join(f, n) for n in os.listdir(f) if n.endswith(".py")] if os.path.isdir(f) else [f]
            for one in files:
                c = subprocess.run([PYTHON27, "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')", one],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
                assert c.returncode == 0, (one, c.stdout)


def test_native_module_is_present_here():
    from dmheal import _core
    assert _core.__version__


def errors_of(call):
    with pytest.raises(dmheal.DmhealError) as e:
        call()
    return e.value.kind, e.value.message


@pytest.mark.parametrize("call", [
    lambda: dmheal.inspect("a;b"),
    lambda: dmheal.heal("/etc/passwd", apply=True),
    lambda: dmheal.inspect("0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4zz"),
    lambda: dmheal.restore("-3"),
])
def test_bad_input_errors_are_identical_on_both_backends(backend, call):
    backend("native")
    native = errors_of(call)
    backend("binary")
    binary = errors_of(call)
    assert native[0] == "bad_input"
    assert native == binary


@pytest.mark.skipif(HOST_HAS_DEVICE_MAPPER, reason="this host has device-mapper")
def test_missing_device_mapper_is_the_same_error_on_both_backends(backend, tmp_path):
    j = str(tmp_path / "j.jsonl")
    backend("native")
    native = errors_of(lambda: dmheal.heal("vg-lv", apply=True, journal=j))
    backend("binary")
    assert errors_of(lambda: dmheal.heal("vg-lv", apply=True, journal=j)) == native
    assert native[0] == "no_device_mapper"


def test_journal_reads_the_same_on_both_backends(backend, tmp_path):
    j = tmp_path / "journal.jsonl"
    entry = {"id": 1, "time": "2026-11-25T00:00:00Z", "host": "h", "pid": 1, "event": "outcome",
             "of": 1, "result": "removed", "detail": "x"}
    j.write_text(json.dumps(entry) + "\n")
    backend("native")
    native = dmheal.journal(journal=str(j))
    backend("binary")
    assert dmheal.journal(journal=str(j)) == native == [entry]


def test_a_forced_missing_backend_is_an_error(monkeypatch):
    monkeypatch.setenv("DMHEAL_BACKEND", "nonsense")
    with pytest.raises(dmheal.DmhealError):
        dmheal.backend_name()
    monkeypatch.setenv("DMHEAL_BACKEND", "binary")
    monkeypatch.setenv("DMHEAL_BIN", "/nonexistent/dmheal")
    monkeypatch.setenv("PATH", "/nonexistent")
    kind, _ = errors_of(lambda: dmheal.scan())
    assert kind == "no_backend"


def test_both_backends_agree_on_a_real_ghost(kernel, dmheal_bin):
    """In the real kernel: inspect and dry-run heal through each backend give identical
    content; then the binary backend heals and the native one restores."""
    r = kernel.run(r"""
make_sr_vg
make_ghost
export DMHEAL_BIN="$DMHEAL"
cat > "$WORK/both.py" <<'PY'
import json, os, sys
import dmheal
out = {}
for b in ("native", "binary"):
    os.environ["DMHEAL_BACKEND"] = b
    out[b] = {"backend": dmheal.backend_name(),
              "inspect": dmheal.inspect(os.environ["VDI"]),
              "dry": dmheal.heal(os.environ["DM_NAME"])}
os.environ["DMHEAL_BACKEND"] = "binary"
out["healed"] = dmheal.heal(os.environ["DM_NAME"], apply=True)
os.environ["DMHEAL_BACKEND"] = "native"
out["restored"] = dmheal.restore(out["healed"]["journal_id"])
out["journal"] = dmheal.journal()
json.dump(out, open(os.path.join(os.environ["OUT"], "both.json"), "w"))
PY
"$PYTHON" "$WORK/both.py"
dm_state "$DM_NAME" > "$OUT/state.after"
""", dmheal_bin)
    assert r.rc == 0, r.output
    out = json.loads(r.file("both.json"))
    assert out["native"]["backend"] == "native" and out["binary"]["backend"] == "binary"
    assert out["native"]["inspect"] == out["binary"]["inspect"]
    assert out["native"]["inspect"]["verdict"] == "ghost"
    assert out["native"]["dry"] == out["binary"]["dry"]
    assert out["native"]["dry"]["action"] == "would-remove"
    assert out["healed"]["action"] == "removed"
    assert out["restored"]["restored"] == out["healed"]["journal_id"]
    assert [e["event"] for e in out["journal"]] == ["removal", "outcome", "restore", "restore"]
    assert r.file("state.after").split()[0] == uml_dm_name()


def uml_dm_name():
    import uml
    return uml.DM_NAME


def test_an_in_process_call_given_up_on_is_waited_for_at_exit(tmp_path):
    """The facade abandons an in-process call at its timeout; the interpreter must not then
    finalize under that thread (it would come back into a finalizing interpreter, be ended by
    pthread_exit through Rust frames, and take the process down). At exit the facade waits
    for it: here a core stand-in that finishes after the caller gave up."""
    done = tmp_path / "finished"
    code = r"""
import sys, time
from dmheal import _backend
from dmheal.errors import DmhealError

class SlowCore:
    def call(self, text):
        time.sleep(1.0)
        open(sys.argv[1], "w").write("yes")
        return '{"result": null}'

try:
    _backend._via_native(SlowCore(), "{}", 0.1)
except DmhealError as e:
    print(e.kind)
"""
    p = subprocess.run([sys.executable, "-c", code, str(done)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "timeout"
    assert done.read_text() == "yes", "the interpreter exited under the abandoned call"
