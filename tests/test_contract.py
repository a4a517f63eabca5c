"""One contract across Rust and Python (issue 12): the operations and parameters are defined
once, in src/contract.rs. Here the other places that name them are checked against it — the
facade's signatures, the native module and its stub, the binary's `call` — and every outcome
is shown to come back identically through both backends (the kernel-backed outcomes are in
test_facade.py). The CLI's flags are checked against it by the Rust tests (src/app.rs)."""

import ast
import inspect
import json
import os
import subprocess

import pytest

import dmheal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary_contract(dmheal_bin):
    return json.loads(subprocess.check_output([dmheal_bin, "contract"], universal_newlines=True))


def test_both_backends_publish_the_same_contract(dmheal_bin):
    from dmheal import _core
    assert json.loads(_core.contract()) == binary_contract(dmheal_bin)


def test_every_facade_function_takes_exactly_the_contracts_parameters(dmheal_bin):
    ops = binary_contract(dmheal_bin)["operations"]
    assert set(ops) <= set(dmheal.__all__)
    for name, op in ops.items():
        sig = inspect.signature(getattr(dmheal, name))
        facade = [p for p in sig.parameters if p not in dmheal.FACADE_ONLY]
        contract = [p["name"] for p in op["params"]]
        assert sorted(facade) == sorted(contract), name
        # Positional parameters come first and have no default (they are required).
        positional = [p["name"] for p in op["params"] if p["positional"]]
        assert facade[:len(positional)] == positional, name
        for p in positional:
            assert sig.parameters[p].default is inspect.Parameter.empty, (name, p)


def test_the_native_module_and_its_stub_expose_call_and_contract_only():
    from dmheal import _core
    public = sorted(n for n in dir(_core) if not n.startswith("_"))
    assert public == ["call", "contract"]
    with open(os.path.join(ROOT, "python", "dmheal", "_core.pyi")) as f:
        tree = ast.parse(f.read())
    stubbed = sorted(n.name for n in tree.body if isinstance(n, ast.FunctionDef))
    assert stubbed == public


def stub_literals(name):
    """The strings of `name = Literal[...]` in _core.pyi."""
    with open(os.path.join(ROOT, "python", "dmheal", "_core.pyi")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            return [e.value for e in node.value.slice.elts]
    raise AssertionError("no %s in _core.pyi" % name)


def test_answers_words_are_the_contracts_in_the_stub_and_outcomes(dmheal_bin):
    from dmheal import outcomes
    c = binary_contract(dmheal_bin)
    assert list(outcomes.VERDICTS) == c["verdicts"] == stub_literals("Verdict")
    assert list(outcomes.HEAL_ACTIONS) == c["heal_actions"] == stub_literals("HealAction")
    assert list(outcomes.BATCH_ACTIONS) == c["batch_actions"] == stub_literals("BatchAction")


LAYER_PREFIX = {"naming": "naming_", "device-mapper": "dm_", "lvm": "lvm_", "tapdisk": "tapdisk_",
                "sm": "sm_", "xapi": "xapi_", "holders": "holders_", "openers": "openers_",
                "mounts": "mounts_"}


def test_every_reason_code_is_listed_with_its_layer_and_meaning(dmheal_bin):
    codes = binary_contract(dmheal_bin)["reason_codes"]
    assert len({c["code"] for c in codes}) == len(codes) > 40
    assert {c["layer"] for c in codes} == set(LAYER_PREFIX) == set(stub_literals("Layer"))
    for c in codes:
        assert c["code"].startswith(LAYER_PREFIX[c["layer"]]), c
        assert c["meaning"], c


def call_binary(dmheal_bin, request_text, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([dmheal_bin, "call"], input=request_text, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, env=e, timeout=60)
    envelope = json.loads(p.stdout)
    assert set(envelope) in ({"result"}, {"error"}), p.stdout
    return p.returncode, envelope


@pytest.mark.parametrize("request_text, kind, rc", [
    ("", "bad_input", 2),
    ("not json", "bad_input", 2),
    ('{"op": "format-disk"}', "bad_input", 2),
    ('{"op": "heal", "target": "a;b"}', "bad_input", 2),
    ('{"op": "heal", "target": "vg-lv", "lock_timeout": -1}', "bad_input", 2),
    ('{"op": "heal", "target": "vg-lv", "tool_timeout": 1e300}', "bad_input", 2),
    ('{"op": "heal", "target": "vg-lv", "budget": "soon"}', "bad_input", 2),
    ('{"op": "scan", "apply": true}', "bad_input", 2),
    # A key given twice is ambiguous, whichever copy would win: nothing is done.
    ('{"op": "heal", "target": "vg-lv", "apply": false, "apply": true}', "bad_input", 2),
    ('{"op": "inspect", "target": "vg-lv", "op": "heal", "apply": true}', "bad_input", 2),
    ('{"op": "restore", "id": 999}', "not_found", 1),
])
def test_the_binary_answers_one_envelope_whatever_happens(dmheal_bin, tmp_path, request_text,
                                                          kind, rc):
    env = {"DMHEAL_JOURNAL": str(tmp_path / "journal.jsonl")}
    code, envelope = call_binary(dmheal_bin, request_text, env)
    assert envelope["error"]["kind"] == kind, envelope
    assert envelope["error"]["message"]
    assert code == rc


@pytest.fixture
def both(monkeypatch, dmheal_bin):
    """Call the facade through each backend; the two answers (or errors) side by side."""
    monkeypatch.setenv("DMHEAL_BIN", dmheal_bin)

    def run(fn):
        out = []
        for backend in ("native", "binary"):
            monkeypatch.setenv("DMHEAL_BACKEND", backend)
            try:
                out.append(("result", fn()))
            except dmheal.DmhealError as e:
                out.append(("error", e.kind, e.message))
        return out
    return run


HOSTILE_SECONDS = [-1, float("nan"), float("inf"), 1e300, "5", True]


@pytest.mark.parametrize("value", HOSTILE_SECONDS)
@pytest.mark.parametrize("name", ["lock_timeout", "tool_timeout", "budget"])
def test_hostile_numbers_are_bad_input_on_both_backends_never_a_panic(both, tmp_path, name, value):
    j = str(tmp_path / "j.jsonl")
    native, binary = both(lambda: dmheal.heal("vg-lv", apply=True, journal=j, **{name: value}))
    assert native == binary, (native, binary)
    assert native[0] == "error" and native[1] == "bad_input", native
    assert not os.path.exists(j)


@pytest.mark.parametrize("call", [
    lambda j: dmheal.inspect("a;b", journal=j),
    lambda j: dmheal.heal("/etc/passwd", apply=True, journal=j),
    lambda j: dmheal.inspect("0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4zz", journal=j),
    lambda j: dmheal.restore("-3", journal=j),
    lambda j: dmheal.restore("999", journal=j),
    lambda j: dmheal.journal(journal=j),
    lambda j: dmheal.journal(journal="/dev/zero"),
])
def test_every_host_side_outcome_is_identical_on_both_backends(both, tmp_path, call):
    native, binary = both(lambda: call(str(tmp_path / "j.jsonl")))
    assert native == binary, (native, binary)


def test_a_failed_heal_keeps_its_result_and_journal_id_on_both_backends():
    """The drift that hid the journal id of a failed heal from dom0 (binary) callers: a result
    whose action is "failed" is a result, on both backends — `dmheal call` exits 1 for it and
    the envelope still carries it."""
    import dmheal._backend as backend
    envelope_text = json.dumps({"result": {"action": "failed", "journal_id": 4, "message": "m"}})

    class FakeCore(object):
        @staticmethod
        def call(text):
            return envelope_text
    # The native path reads the envelope...
    assert backend._via_native(FakeCore, "{}", None) == json.loads(envelope_text)
    # ...and the binary path reads the same envelope whatever the exit code.
    fake = os.path.join(os.path.dirname(os.path.abspath(__file__)), "doubles", "dmheal-call-exit1")
    os.environ["DMHEAL_BIN"], old = fake, os.environ.get("DMHEAL_BIN")
    try:
        assert backend._via_binary("{}", 10) == json.loads(envelope_text)
    finally:
        if old is None:
            del os.environ["DMHEAL_BIN"]
        else:
            os.environ["DMHEAL_BIN"] = old


def test_a_binary_that_never_answers_is_abandoned_at_the_timeout(monkeypatch, tmp_path):
    import time
    hang = tmp_path / "dmheal"
    hang.write_text("#!/bin/sh\nsleep 60 &\nwait\n")
    hang.chmod(0o755)
    monkeypatch.setenv("DMHEAL_BIN", str(hang))
    monkeypatch.setenv("DMHEAL_BACKEND", "binary")
    start = time.monotonic()
    with pytest.raises(dmheal.DmhealError) as e:
        dmheal.scan(timeout=0.5)
    assert e.value.kind == "timeout"
    assert time.monotonic() - start < 5
