"""The SM hook without a kernel: settings, the wrapper's decisions around SM's call (with the
core replaced by a recording fake), the import finder on both SM layouts, and the .pth."""

import json
import os
import subprocess
import sys
import types

import pytest

from dmheal import hook_install, sm_hook

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDIN = os.path.join(ROOT, "tests", "sm_standin")
LEGACY = os.path.join(STANDIN, "legacy")
UPSTREAM = os.path.join(STANDIN, "upstream")
PATH = "/dev/VG_XenStorage-9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b/VHD-0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"


class CommandException(Exception):
    """SM's util.CommandException shape."""

    def __init__(self, code, cmd="", reason="exec failed"):
        Exception.__init__(self, code, cmd, reason)
        self.code, self.cmd, self.reason = code, cmd, reason


def busy():
    return CommandException(5, "['lvchange', '-ay', '%s']" % PATH,
                            "device-mapper: create ioctl on X failed: Device or resource busy")


def result(verdict, action, message="m", journal_id=None):
    return {"action": action, "message": message, "journal_id": journal_id,
            "inspection": {"verdict": verdict, "summary": "s"}}


@pytest.fixture
def hook(monkeypatch, tmp_path):
    """The hook with mode from a real config file, a fake core and captured SMlog lines."""
    conf = tmp_path / "dmheal.conf"
    conf.write_text("mode = heal\n")
    monkeypatch.setenv("DMHEAL_CONF", str(conf))
    state = types.SimpleNamespace(calls=[], logs=[], results=[], records=[], conf=conf)

    def fake_heal(path, settings, apply, record=True, deadline=None):
        state.calls.append((path, apply))
        state.records.append(record)
        r = state.results.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    monkeypatch.setattr(sm_hook, "_heal", fake_heal)
    monkeypatch.setattr(sm_hook, "smlog", state.logs.append)
    sm_hook._settings_cache.clear()
    return state


def sm_function(*outcomes):
    """A stand-in for SM's activateNoRefcount that fails or succeeds in turn."""
    calls = []

    def activateNoRefcount(path, refresh):
        calls.append((path, refresh))
        o = outcomes[len(calls) - 1]
        if isinstance(o, Exception):
            raise o
        return o
    return activateNoRefcount, calls


def test_no_mapping_calls_through_once_and_logs_nothing(hook):
    hook.results = [result("absent", "nothing-to-do")]
    fn, calls = sm_function("ok")
    assert sm_hook.wrap_activate(fn)(PATH, False) == "ok"
    assert calls == [(PATH, False)]
    assert hook.calls == [(PATH, True)] and hook.logs == []


def test_a_ghost_is_healed_before_the_call(hook):
    hook.results = [result("ghost", "removed", "removed ghost X (journal entry 1)")]
    fn, calls = sm_function("ok")
    assert sm_hook.wrap_activate(fn)(PATH, True) == "ok"
    assert calls == [(PATH, True)]
    assert len(hook.logs) == 1 and "removed ghost X" in hook.logs[0] and PATH in hook.logs[0]


def test_busy_failure_with_a_ghost_is_healed_and_retried_exactly_once(hook):
    hook.results = [result("absent", "nothing-to-do"), result("ghost", "removed")]
    fn, calls = sm_function(busy(), "ok")
    assert sm_hook.wrap_activate(fn)(PATH, False) == "ok"
    assert len(calls) == 2
    assert "retrying the activation once" in hook.logs[-1]


def test_busy_failure_that_is_not_a_ghost_reraises_the_original_exception(hook):
    original = busy()
    hook.results = [result("absent", "nothing-to-do"),
                    result("in-use", "refused", "refused: in use: held open by pid 42 (qemu)")]
    fn, calls = sm_function(original)
    with pytest.raises(CommandException) as e:
        sm_hook.wrap_activate(fn)(PATH, False)
    assert e.value is original
    assert len(calls) == 1
    assert "pid 42" in hook.logs[-1] and "original error stands" in hook.logs[-1]


def test_a_retry_that_fails_again_is_not_retried_twice(hook):
    hook.results = [result("absent", "nothing-to-do"), result("ghost", "removed")]
    second = busy()
    fn, calls = sm_function(busy(), second)
    with pytest.raises(CommandException) as e:
        sm_hook.wrap_activate(fn)(PATH, False)
    assert e.value is second and len(calls) == 2


def test_other_failures_pass_through_untouched(hook):
    original = CommandException(-1, "lvchange", "LV not activated")
    hook.results = [result("absent", "nothing-to-do")]
    fn, _ = sm_function(original)
    with pytest.raises(CommandException) as e:
        sm_hook.wrap_activate(fn)(PATH, False)
    assert e.value is original
    assert hook.calls == [(PATH, True)]  # no diagnosis for a failure that is not "busy"


def test_an_internal_error_is_logged_and_sm_goes_on(hook):
    hook.results = [RuntimeError("core exploded")]
    fn, calls = sm_function("ok")
    assert sm_hook.wrap_activate(fn)(PATH, False) == "ok"
    assert calls and "core exploded" in hook.logs[0] and "calling through" in hook.logs[0]


def test_off_never_asks_the_core(hook):
    hook.conf.write_text("mode = off\n")
    fn, calls = sm_function(busy())
    with pytest.raises(CommandException):
        sm_hook.wrap_activate(fn)(PATH, False)
    assert hook.calls == [] and hook.logs == []


def test_observe_never_applies_and_journals_one_decision_per_activation(hook):
    hook.conf.write_text("mode = observe  # look only\nbudget_seconds = 3\n")
    hook.results = [result("ghost", "would-remove", journal_id=3), result("ghost", "would-remove")]
    fn, _ = sm_function(busy())
    with pytest.raises(CommandException):
        sm_hook.wrap_activate(fn)(PATH, False)
    assert hook.calls == [(PATH, False), (PATH, False)]
    assert hook.records == [True, False]
    assert "mode observe; left in place" in hook.logs[0]


@pytest.mark.parametrize("text, problem", [
    ("mode = sometimes\n", "mode must be"),
    ("budget_seconds = 0\n", "budget_seconds"),
    ("colour = blue\n", "unknown key"),
    ("just words\n", "expected key = value"),
])
def test_bad_config_is_logged_and_means_observe(hook, text, problem):
    hook.conf.write_text(text)
    hook.results = [result("ghost", "would-remove")]
    fn, _ = sm_function("ok")
    sm_hook.wrap_activate(fn)(PATH, False)
    assert hook.calls == [(PATH, False)]
    assert problem in hook.logs[0]


def test_missing_config_means_observe(hook):
    os.unlink(str(hook.conf))
    assert sm_hook.load_settings().mode == "observe"


@pytest.mark.parametrize("text", ["", "\n\n", "# mode = heal\n  # nothing else\n", "budget_seconds = 5\n"])
def test_an_empty_or_comment_only_config_means_observe_said_once(hook, text):
    hook.conf.write_text(text)
    hook.results = [result("ghost", "would-remove"), result("ghost", "would-remove")]
    for _ in range(2):
        fn, _ = sm_function("ok")
        sm_hook.wrap_activate(fn)(PATH, False)
    assert hook.calls == [(PATH, False), (PATH, False)]  # observe: never applied
    notes = [l for l in hook.logs if "the default" in l]
    assert len(notes) == 1 and "observe" in notes[0], hook.logs
    assert all("mode observe" in l for l in hook.logs if "left in place" in l)


def test_while_this_process_holds_fairlock_the_hook_only_looks(hook, monkeypatch):
    class Singleton(type):
        _instances = {}

    class Fairlock(object, metaclass=Singleton):
        def __init__(self, name):
            self.name, self.connected = name, True
    Singleton._instances["k"] = Fairlock("devicemapper")
    monkeypatch.setitem(sys.modules, "sm.core.fairlock", types.SimpleNamespace(Fairlock=Fairlock))
    hook.results = [result("ghost", "would-remove")]
    fn, _ = sm_function("ok")
    sm_hook.wrap_activate(fn)(PATH, False)
    assert hook.calls == [(PATH, False)]
    assert "holds Fairlock" in hook.logs[0]


def test_wrapping_twice_wraps_once():
    fn, _ = sm_function("ok")
    once = sm_hook.wrap_activate(fn)
    assert sm_hook.wrap_activate(once) is once and once.__wrapped__ is fn


FINDER_PROBE = r"""
import json, sys
sys.path[:0] = %(paths)r
import dmheal.sm_hook as h
h.install_finder()
import %(cache)s as lvmcache
from %(pkg)s import lvutil  # noqa
import %(lvutil)s as lvutil
print(json.dumps({"wrapped": getattr(lvutil.activateNoRefcount, "_dmheal_original", None) is not None,
                  "util": lvutil.util.__name__,
                  "pread2": getattr(lvutil.util.pread2, "_dmheal_original", None) is not None}))
"""


@pytest.mark.parametrize("layout, lvutil, cache, pkg", [
    (LEGACY, "lvutil", "lvmcache", "importlib"),
    (UPSTREAM, "sm.lvutil", "sm.lvmcache", "sm"),
])
def test_the_finder_wraps_sm_lvutil_in_both_layouts(layout, lvutil, cache, pkg):
    code = FINDER_PROBE % {"paths": [layout, STANDIN], "lvutil": lvutil, "cache": cache, "pkg": pkg}
    code = code.replace("from importlib import lvutil  # noqa\n", "")
    out = json.loads(subprocess.check_output([sys.executable, "-c", code], universal_newlines=True))
    assert out["wrapped"] is True and out["pread2"] is True, out


def test_install_status_uninstall_are_idempotent_and_the_pth_works(tmp_path, monkeypatch):
    site_dir = str(tmp_path)
    sm_dir = str(tmp_path / "nosm")
    first = hook_install.install(site_dir, sm_dir)
    again = hook_install.install(site_dir, sm_dir)
    assert first["installed"] and first["changed"] and not again["changed"]
    assert hook_install.sm_layout(LEGACY) == [
        {"module": "lvutil", "file": os.path.join(LEGACY, "lvutil.py"), "patch_point": True},
        {"module": "util", "file": os.path.join(LEGACY, "util.py"), "patch_point": True,
         "wraps": "pread2 (EXT/XFS/LargeBlock attach)"}]
    # The .pth, processed as the interpreter would at start-up, wraps SM's lvutil on import.
    probe = ("import site, sys; site.addsitedir(%r); sys.path[:0] = [%r, %r]; import lvutil; "
             "print(getattr(lvutil.activateNoRefcount, '_dmheal_original', None) is not None)"
             % (site_dir, LEGACY, STANDIN))
    assert subprocess.check_output([sys.executable, "-c", probe], universal_newlines=True).strip() == "True"
    gone = hook_install.uninstall(site_dir, sm_dir)
    assert gone["changed"] and not gone["installed"]
    assert not hook_install.uninstall(site_dir, sm_dir)["changed"]
    assert os.listdir(site_dir) == []
    assert subprocess.check_output([sys.executable, "-c", probe], universal_newlines=True).strip() == "False"


def test_status_finds_the_real_signature_as_the_patch_point(tmp_path):
    sm_dir = tmp_path / "sm"
    sm_dir.mkdir()
    (sm_dir / "lvutil.py").write_text("def activateNoRefcount(path, refresh):\n    pass\n")
    assert hook_install.sm_layout(str(sm_dir))[0]["patch_point"] is True


STATUS_PROBE = r"""
import json, sys
sys.path[:0] = %(paths)r
from dmheal import hook_install
print(json.dumps([l for l in hook_install.sm_layout(%(sm_dir)r) if l["module"].endswith("lvutil")]))
"""


def test_status_recognises_xenserver_84s_compatibility_lvutil(tmp_path):
    """XenServer 8.4's /opt/xensource/sm/lvutil.py is `from sm.lvutil import *`: the patch
    point is sm.lvutil's, and it is present."""
    sm_dir = tmp_path / "opt-sm"
    sm_dir.mkdir()
    (sm_dir / "lvutil.py").write_text("from sm.lvutil import *\n")
    code = STATUS_PROBE % {"paths": [UPSTREAM, STANDIN, os.path.join(ROOT, "python")],
                           "sm_dir": str(sm_dir)}
    layouts = json.loads(subprocess.check_output([sys.executable, "-c", code], universal_newlines=True))
    compat = [l for l in layouts if l["module"] == "lvutil"][0]
    assert compat["reexports"] == "sm.lvutil" and compat["patch_point"] is True
    package = [l for l in layouts if l["module"] == "sm.lvutil"][0]
    assert package["patch_point"] is True
    # Without the package the compatibility module has nothing to re-export: MISSING, said so.
    code = STATUS_PROBE % {"paths": [STANDIN, os.path.join(ROOT, "python")], "sm_dir": str(sm_dir)}
    layouts = json.loads(subprocess.check_output([sys.executable, "-c", code], universal_newlines=True))
    assert layouts == [{"module": "lvutil", "file": str(sm_dir / "lvutil.py"),
                        "patch_point": False, "reexports": "sm.lvutil"}]


def test_the_hook_asks_the_core_as_sms_activation_within_its_budget(monkeypatch, tmp_path):
    """What the hook passes the core: activating, in_sm_process, a budget and a hard timeout
    within budget_seconds, short lock waits."""
    import dmheal
    seen = {}

    def heal(path, **kw):
        seen.update(kw, path=path)
        return result("ghost", "removed")
    monkeypatch.setattr(dmheal, "heal", heal)
    settings = sm_hook.Settings("heal", 4.0)
    sm_hook._heal(PATH, settings, True)
    assert seen["activating"] is True and seen["in_sm_process"] is True and seen["apply"] is True
    assert 0 < seen["budget"] < seen["timeout"] <= 4.0
    assert seen["lock_timeout"] <= seen["budget"] and seen["tool_timeout"] <= seen["budget"]


def test_lvms_own_mapping_costs_one_ioctl_and_anything_else_goes_to_the_core(hook, monkeypatch):
    from dmheal import dm_probe
    uuid = "LVM-" + "K2BweQUkrIa1b2c3d4e5f6g7h8i9j0k1" + "X4HzXTjZRqDfaP00001111222233333x"
    answers = {"lvm": dm_probe.Mapping(True, uuid), "absent": dm_probe.Mapping(False),
               "suffix": dm_probe.Mapping(True, uuid + "-real"), "none": dm_probe.Mapping(True, ""),
               "unknown": dm_probe.Mapping(None)}
    for case, asks in [("lvm", False), ("absent", False), ("suffix", True), ("none", True),
                       ("unknown", True)]:
        monkeypatch.setattr(dm_probe, "probe", lambda name, m=answers[case]: m)
        hook.calls[:] = []
        hook.results = [result("ghost", "would-remove")]
        fn, calls = sm_function("ok")
        sm_hook.wrap_activate(fn)(PATH, True)
        assert calls == [(PATH, True)], case
        assert (hook.calls != []) is asks, case


def test_dmheal_hook_cli_forwards_to_the_module(dmheal_bin, tmp_path):
    p = subprocess.run([dmheal_bin, "--json", "hook", "status", "--site-dir", str(tmp_path),
                        "--sm-dir", LEGACY], stdout=subprocess.PIPE, universal_newlines=True)
    assert p.returncode == 0
    assert json.loads(p.stdout)["installed"] is False


def test_lvms_own_uuid_is_told_apart_as_lvms_pattern_would():
    """The probe's check (written without `re`, which costs milliseconds to load on the first
    VM start) says exactly what LVM's uuid pattern says."""
    import re
    from dmheal import dm_probe
    pattern = re.compile(r"LVM-[A-Za-z0-9!#]{64}\Z")
    good = "LVM-" + "K2BweQUkrIa1b2c3d4e5f6g7h8i9j0k1" + "X4HzXTjZRqDfaP00001111222233333x"
    cases = [good, good + "-real", good[:-1], good[:-1] + "!", good[:-1] + "#", good[:-1] + "-",
             good[:-1] + "\u00e9", "lvm-" + good[4:], "LVM_" + good[4:], "", "LVM-",
             good[:-1] + "\n", "CRYPT-" + good[4:]]
    for uuid in cases:
        assert dm_probe.Mapping(True, uuid).lvm_made() is bool(pattern.match(uuid)), repr(uuid)
    assert dm_probe.Mapping(True, good).lvm_made() and not dm_probe.Mapping(False, good).lvm_made()


def test_lv_paths_map_to_lvms_dm_names():
    from dmheal.dm_probe import dm_name_of_lv_path
    assert dm_name_of_lv_path("/dev/VG_XenStorage-a-b/VHD-c-d") == "VG_XenStorage--a--b-VHD--c--d"
    for odd in ("/dev/mapper", "/dev/a/b/c", "dev/a/b", "/etc/a/b", "/dev//b"):
        assert dm_name_of_lv_path(odd) is None


def test_the_probe_cannot_tell_without_device_mapper(monkeypatch):
    from dmheal import dm_probe
    monkeypatch.setattr(dm_probe, "CONTROL", "/nonexistent/control")
    assert dm_probe.mapping_exists("vg-lv") is None
    assert dm_probe.mapping_exists("x" * 200) is None


def test_a_refusal_is_journalled_once_per_activation_in_heal_mode(hook):
    hook.results = [result("in-use", "refused", journal_id=7), result("in-use", "refused")]
    fn, _ = sm_function(busy())
    with pytest.raises(CommandException):
        sm_hook.wrap_activate(fn)(PATH, False)
    assert hook.calls == [(PATH, True), (PATH, True)]
    assert hook.records == [True, False]


LOCAL = "/dev/XSLocalEXT-9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b/9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b"


def pread_function(*outcomes):
    calls = []

    def pread2(cmdlist, quiet=False):
        calls.append(list(cmdlist))
        o = outcomes[len(calls) - 1]
        if isinstance(o, Exception):
            raise o
        return o
    return pread2, calls


def test_a_local_srs_attach_activation_is_healed_and_nothing_else_is_touched(hook):
    """EXTSR/XFSSR/LargeBlockSR.attach run `lvchange -ay /dev/XSLocalEXT-<sr>/<sr>` through
    util.pread2: that command, and only that, gets the hook; every other command SM runs goes
    straight through without a word to the core."""
    pread2, calls = pread_function("ok", "ok", "ok", "ok", "ok", "ok")
    wrapped = sm_hook.wrap_pread2(pread2)
    for cmd in (["lvs", "--noheadings"], ["lvchange", "-an", LOCAL], ["lvchange", "-ay", PATH],
                ["lvchange", "-ay", LOCAL.upper()], ["/sbin/lvchange", "-ay", LOCAL + "x"]):
        assert wrapped(cmd) == "ok"
    assert hook.calls == []
    hook.results = [result("absent", "nothing-to-do"), result("ghost", "removed", "removed ghost L")]
    pread2, calls = pread_function(busy(), "ok")
    assert sm_hook.wrap_pread2(pread2)(["lvchange", "-ay", LOCAL], quiet=True) == "ok"
    assert calls == [["lvchange", "-ay", LOCAL]] * 2
    assert hook.calls == [(LOCAL, True), (LOCAL, True)]
    assert "retrying the activation once" in hook.logs[-1]
    for variant in (["/usr/sbin/lvchange", "-ay", LOCAL],
                    ["lvchange", "-ay", LOCAL.replace("XSLocalEXT", "XSLocalLargeBlock")]):
        assert sm_hook.local_sr_activation(variant) == variant[2]
    assert sm_hook.local_sr_activation(("lvchange", "-ay", LOCAL)) == LOCAL
    assert sm_hook.local_sr_activation("lvchange -ay " + LOCAL) is None


def test_one_deadline_covers_every_step_of_an_activation(hook, monkeypatch):
    """The check before, the diagnosis after a busy failure: one deadline, from the
    activation's start (not one budget per step)."""
    hook.conf.write_text("mode = heal\nbudget_seconds = 4\n")
    deadlines = []
    clock = [1000.0]
    monkeypatch.setattr(sm_hook, "_monotonic", lambda: clock[0])

    def slow_heal(path, settings, apply, record=True, deadline=None):
        deadlines.append(deadline)
        clock[0] += 3.0  # a step that takes three of the four seconds
        return result("in-use", "refused")
    monkeypatch.setattr(sm_hook, "_heal", slow_heal)
    fn, calls = sm_function(busy())
    with pytest.raises(CommandException):
        sm_hook.wrap_activate(fn)(PATH, False)
    assert deadlines == [1004.0, 1004.0]
    assert any("budget of 4 s for this activation ran out" in l for l in hook.logs), hook.logs
    # With nothing left, the second step is not started at all.
    deadlines[:] = []
    clock[0] = 2000.0

    def slower_heal(path, settings, apply, record=True, deadline=None):
        deadlines.append(deadline)
        clock[0] += 5.0
        return result("in-use", "refused")
    monkeypatch.setattr(sm_hook, "_heal", slower_heal)
    fn, calls = sm_function(busy())
    with pytest.raises(CommandException):
        sm_hook.wrap_activate(fn)(PATH, False)
    assert deadlines == [2004.0]
    assert "after the busy failure of" in hook.logs[-1] and "ran out" in hook.logs[-1]
