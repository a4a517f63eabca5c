"""The SM pre-activation hook: SM's own activation of a volume heals a ghost mapping by itself.

SM activates a volume's LV in two places, and a ``.pth`` file installs an import finder that
wraps both as soon as SM imports the module - SM's files are never edited:

* LVHD VDIs: ``lvutil.activateNoRefcount(path, refresh)`` (8.2, 8.3 / 8.4: module ``lvutil``
  from /opt/xensource/sm; SM 4.1.1+: ``sm.lvutil``), which runs ``lvchange -ay path``;
* EXT and XFS local SRs (and XCP-ng's LargeBlock SRs): their ``attach`` (PBD.plug) runs
  ``util.pread2(["lvchange", "-ay", "/dev/XSLocalEXT-<sr>/<sr>"])`` itself, so ``util.pread2``
  (``util``, ``sm.core.util``) is wrapped, and acts only on exactly that command.

Around each activation:

* before ``lvchange -ay``: inspects the LV's DM name. No mapping, or LVM's own: calls through at
  once (one ioctl). A proven ghost: heals it (journal + SMlog line), then calls through.
  Anything else: calls through untouched (and logs what it saw);
* after a ``util.CommandException`` carrying "Device or resource busy": diagnoses; a ghost is
  healed and the activation retried exactly once; otherwise the ORIGINAL exception is re-raised
  unchanged, after logging who holds the mapping.

One deadline per activation, ``budget_seconds`` from its start, covers everything the hook does
in it - the check, the diagnosis after a busy failure, the heal - and the core gives xapi only
a share of what it is given (a xapi that accepts and never answers is then "unreachable", and
SM's lock, LVM and the removal decide with the rest). When the budget runs out, SMlog says so
and what was waited for, and SM's call goes ahead (or its error stands) untouched.

It tells the core it runs as SM's own activation (``activating``): blktap2 writes this host's
``host_<ref>`` mark on the VDI, and LVMCache.activate counts SM's reference, before the LV is
activated, so those are the activation's own. It never raises its own error into SM. It never
opens SM's fcntl lock files (a close() would drop SM's own locks) and takes Fairlock only
around its own check and remove, never while this process holds it.

Configuration: /etc/dmheal/dmheal.conf (``DMHEAL_CONF`` overrides the path), ``key = value``:
``mode = heal | observe | off`` and ``budget_seconds = <1..60>``. Missing, empty or only
comments: the defaults, ``observe`` (said once in SMlog); malformed: logged, ``observe``.

Runs on the Pythons SM runs on: 2.7 (Citrix Hypervisor 8.2), 3.6 (XenServer 8.4, XCP-ng 8.3),
3.12 (XCP-ng 9). ``dmheal hook install | uninstall | status`` is ``dmheal.hook_install``.
"""

import os
import re
import sys

from dmheal import outcomes

MYPY = False
if MYPY:  # the answers' shapes, for type checkers only (typing is not on 2.7)
    from typing import Optional  # noqa: F401  # novermin (never run: MYPY is False)
    from dmheal._core import HealOutcome  # noqa: F401

CONF_PATH = "/etc/dmheal/dmheal.conf"
# The modules whose functions are wrapped, and which function: SM's layouts of 8.2 to 4.1.1+.
ACTIVATE_MODULES = ("lvutil", "sm.lvutil")
UTIL_MODULES = ("util", "sm.core.util")
PATCHED_MODULES = ACTIVATE_MODULES + UTIL_MODULES
BUSY = "Device or resource busy"
MODES = ("heal", "observe", "off")
DEFAULT_MODE = "observe"
DEFAULT_BUDGET = 10.0
# What EXTSR/XFSSR/LargeBlockSR.attach activate: the local SR's one LV, /dev/<prefix><sr>/<sr>.
LOCAL_SR_LV = re.compile(
    r"/dev/(XSLocalEXT|XSLocalLargeBlock)-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/\2\Z")


# ---------------------------------------------------------------- configuration

class Settings(object):
    def __init__(self, mode, budget, problem=None, note=None):
        self.mode = mode
        self.budget = budget
        self.problem = problem
        self.note = note


_settings_cache = {}


def load_settings(log=True):
    """Read the configuration (cached by the file's identity, size and mtime). Never raises.
    ``log``: say a problem or a note in SMlog (once per process and version of the file)."""
    path = os.environ.get("DMHEAL_CONF", CONF_PATH)
    try:
        st = os.stat(path)
    except OSError:
        # Not configured: look, never touch. (The RPM ships the file with mode = heal.)
        return Settings(DEFAULT_MODE, DEFAULT_BUDGET)
    # A coarse mtime (one second on some filesystems) alone would miss a quick rewrite.
    key = (st.st_ino, st.st_size, getattr(st, "st_mtime_ns", st.st_mtime))
    cached = _settings_cache.get(path)
    if cached and cached[0] == key:
        return cached[1]
    settings = parse_settings(path)
    if not log:
        return settings
    _settings_cache[path] = (key, settings)
    # Said once per process and version of the file, not at every activation.
    if settings.problem:
        smlog("configuration problem, acting as %s: %s" % (settings.mode, settings.problem))
    elif settings.note:
        smlog(settings.note)
    return settings


def parse_settings(path):
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, IOError, UnicodeDecodeError) as e:
        return Settings(DEFAULT_MODE, DEFAULT_BUDGET, "cannot read %s: %s" % (path, e))
    mode, budget, given = None, DEFAULT_BUDGET, False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        given = True
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            return Settings(DEFAULT_MODE, DEFAULT_BUDGET, "%s:%d: expected key = value" % (path, number))
        if key == "mode":
            if value not in MODES:
                return Settings(DEFAULT_MODE, DEFAULT_BUDGET,
                                "%s:%d: mode must be heal, observe or off, not %r" % (path, number, value))
            mode = value
        elif key == "budget_seconds":
            try:
                budget = float(value)
            except ValueError:
                budget = -1.0
            if not 1.0 <= budget <= 60.0:
                return Settings(DEFAULT_MODE, DEFAULT_BUDGET,
                                "%s:%d: budget_seconds must be a number from 1 to 60" % (path, number))
        else:
            return Settings(DEFAULT_MODE, DEFAULT_BUDGET, "%s:%d: unknown key %r" % (path, number, key))
    if not given:
        return Settings(DEFAULT_MODE, budget, note="%s sets nothing: mode %s, budget %g s (the defaults)"
                        % (path, DEFAULT_MODE, budget))
    if mode is None:
        return Settings(DEFAULT_MODE, budget, note="%s sets no mode: %s (the default)" % (path, DEFAULT_MODE))
    return Settings(mode, budget)


# ---------------------------------------------------------------- logging

def smlog(message):
    """One line in /var/log/SMlog: syslog facility LOCAL2, ident SM, "[pid] message"."""
    import syslog
    syslog.openlog("SM", 0, syslog.LOG_LOCAL2)
    syslog.syslog(syslog.LOG_INFO, "[%d] dmheal: %s" % (os.getpid(), message))
    syslog.closelog()


# ---------------------------------------------------------------- time

def _monotonic():
    import time
    clock = getattr(time, "monotonic", None)  # Python 2.7 has none: wall time serves
    return clock() if clock else time.time()


# ---------------------------------------------------------------- decisions

def _caller_holds_fairlock():
    """True when SM's Fairlock("devicemapper") is held by this process right now: taking it
    again from here would wait on ourselves (SM's Fairlock is not re-entrant)."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "fairlock" or name.endswith(".fairlock")):
            continue
        cls = getattr(module, "Fairlock", None)
        instances = getattr(type(cls), "_instances", None) if cls is not None else None
        if isinstance(instances, dict):
            for inst in instances.values():
                if getattr(inst, "name", None) == "devicemapper" and getattr(inst, "connected", False):
                    return True
    return False


# Of what is left of the activation's budget, what the core may spend: the rest covers
# starting it, killing it at the deadline and logging, so the hook is back in SM within
# budget_seconds of the activation's start whatever happens.
CORE_SHARE = 0.8
# Waits for SM's lock and the journal lock inside a VM start.
LOCK_WAIT = 5.0
# Below this much time left, the core is not started at all: it could decide nothing.
TOO_LITTLE = 0.2


def _heal(path, settings, apply, record=True, deadline=None):
    # type: (str, Settings, bool, bool, Optional[float]) -> HealOutcome
    """The core's decision (and, with `apply`, action) on `path`, as SM's own activation,
    within what is left before `deadline` (the activation's)."""
    import dmheal
    deadline = deadline if deadline is not None else _monotonic() + settings.budget
    left = max(0.0, deadline - _monotonic())
    return dmheal.heal(
        path,
        apply=apply,
        record=record,
        activating=True,
        in_sm_process=True,
        budget=round(left * CORE_SHARE, 3),
        lock_timeout=round(min(left * CORE_SHARE / 2, LOCK_WAIT), 3),
        tool_timeout=round(left * CORE_SHARE, 3),
        timeout=left,
    )


def _cheap_decision(path):
    """The decisions one ioctl can make, or None to ask the core.

    No mapping of the LV's name: lvchange -ay creates it. A mapping carrying an LVM-made uuid
    (no suffix): LVM's own mapping of some LV - SM 8.4 refreshes active LVs through this call -
    and if it is another LV's (a stale mapping after a rename), lvchange itself fails with
    "Device or resource busy", which the step after the failure then checks in full."""
    from .dm_probe import dm_name_of_lv_path, probe
    name = dm_name_of_lv_path(path)
    if name is None:
        return None
    mapping = probe(name)
    if mapping.exists is False:
        return "absent"
    if mapping.lvm_made():
        return "lvm-made"
    return None


def _waited_for(result):
    """What the core waited for, from its reasons: said when the budget ran out."""
    waits = []
    for r in result.get("inspection", {}).get("reasons", []):
        text = "%s %s" % (r.get("state", ""), r.get("message", ""))
        if "within" in text or "unreachable" in text or "budget" in text:
            waits.append("%s: %s" % (r.get("layer", "?"), r.get("state", "")))
    return "; ".join(waits)


class Activation(object):
    """One activation of one volume by SM, with the hook's one deadline for all of it."""

    def __init__(self, path):
        self.path = path
        self.settings = load_settings()
        self.deadline = _monotonic() + self.settings.budget
        self.recorded = False
        self.fairlock_held = False

    def left(self):
        return max(0.0, self.deadline - _monotonic())

    def apply(self):
        """Whether this step may remove: mode heal, and Fairlock not held by this process."""
        if self.settings.mode != "heal":
            return False
        self.fairlock_held = _caller_holds_fairlock()
        return not self.fairlock_held

    def mode_said(self):
        """The mode, as the SMlog line says it: the actual one, and why it only looked."""
        if self.settings.mode == "heal" and self.fairlock_held:
            return ("mode heal, but this process holds Fairlock devicemapper, so it only "
                    "looked")
        return "mode %s" % self.settings.mode

    def out_of_time(self, step, waited=""):
        smlog("%s %s: the hook's budget of %g s for this activation ran out%s; SM's call goes on untouched"
              % (step, self.path, self.settings.budget, " (waited for: %s)" % waited if waited else ""))

    def describe(self, result):
        verdict = result["inspection"]["verdict"]
        if result["action"] == outcomes.WOULD_REMOVE:
            return "%s; left in place: a ghost (%s)" % (self.mode_said(), result["inspection"]["summary"])
        return "%s (verdict %s; %s)" % (result.get("message", ""), verdict, self.mode_said())

    def before(self):
        """Runs before ``lvchange -ay``. Never raises."""
        try:
            if self.settings.mode == "off":
                return
            if _cheap_decision(self.path) is not None:
                return  # the common cases: one ioctl, nothing logged, nothing journalled
            if self.left() < TOO_LITTLE:
                self.out_of_time("before activating")
                return
            result = _heal(self.path, self.settings, self.apply(), deadline=self.deadline)
            self.recorded = result.get("journal_id") is not None
            if result["inspection"]["verdict"] in outcomes.NOTHING_TO_HEAL:
                return  # nothing logged, nothing journalled
            smlog("before activating %s: %s" % (self.path, self.describe(result)))
            if self.left() == 0.0:
                self.out_of_time("before activating", _waited_for(result))
        except Exception as e:  # the hook must never break SM
            if self.left() == 0.0:
                self.out_of_time("before activating", str(e))
            else:
                smlog("pre-activation check of %s failed, calling through: %s" % (self.path, e))

    def after_busy(self, exc):
        """Runs when the activation raised. True: a ghost was removed, retry once. Never
        raises."""
        try:
            text = "%s %s" % (getattr(exc, "reason", ""), exc)
            if BUSY not in text or self.settings.mode == "off":
                return False
            if self.left() < TOO_LITTLE:
                self.out_of_time("after the busy failure of")
                return False
            result = _heal(self.path, self.settings, self.apply(), record=not self.recorded,
                           deadline=self.deadline)
            if result["action"] == outcomes.REMOVED:
                smlog("activation of %s failed busy; %s; retrying the activation once"
                      % (self.path, result["message"]))
                return True
            smlog("activation of %s failed busy; diagnosis: %s; the original error stands"
                  % (self.path, self.describe(result)))
            if self.left() == 0.0:
                self.out_of_time("after the busy failure of", _waited_for(result))
        except Exception as e:
            if self.left() == 0.0:
                self.out_of_time("after the busy failure of", str(e))
            else:
                smlog("diagnosis of the busy activation of %s failed: %s" % (self.path, e))
        return False

    def run(self, call):
        """SM's `call` (the activation), with the hook around it."""
        self.before()
        try:
            return call()
        except Exception as exc:
            if not self.after_busy(exc):
                raise  # the original exception, unchanged
        return call()


# The two steps, for callers that drive them one by one.
def before_activation(path):
    """Runs before ``lvchange -ay path``. Never raises. True when it journalled a decision."""
    a = Activation(path)
    a.before()
    return a.recorded


def after_busy_failure(path, exc, recorded=False):
    """Runs when the activation raised. True: a ghost was removed, retry once. Never raises."""
    a = Activation(path)
    a.recorded = recorded
    return a.after_busy(exc)


# ---------------------------------------------------------------- the wrappers

def wrap_activate(original):
    """SM's ``activateNoRefcount(path, refresh)``, with the hook around it."""
    if getattr(original, "_dmheal_original", None) is not None:
        return original  # already wrapped

    def activateNoRefcount(path, refresh):
        return Activation(path).run(lambda: original(path, refresh))

    activateNoRefcount.__doc__ = original.__doc__
    activateNoRefcount.__wrapped__ = original
    activateNoRefcount._dmheal_original = original
    return activateNoRefcount


def local_sr_activation(cmdlist):
    """The LV path when `cmdlist` is a local SR's attach activating its LV (``lvchange -ay
    /dev/XSLocalEXT-<sr>/<sr>``), else None. Cheap: pread2 runs for every command SM runs."""
    if not isinstance(cmdlist, (list, tuple)) or len(cmdlist) != 3:
        return None
    program, flag, path = cmdlist
    if flag != "-ay" or not isinstance(path, str) or not isinstance(program, str):
        return None
    if program != "lvchange" and not program.endswith("/lvchange"):
        return None
    return path if LOCAL_SR_LV.match(path) else None


def wrap_pread2(original):
    """SM's ``util.pread2(cmdlist, ...)``, with the hook around a local SR's activation only."""
    if getattr(original, "_dmheal_original", None) is not None:
        return original

    def pread2(cmdlist, *args, **kwargs):
        path = local_sr_activation(cmdlist)
        if path is None:
            return original(cmdlist, *args, **kwargs)
        return Activation(path).run(lambda: original(cmdlist, *args, **kwargs))

    pread2.__doc__ = original.__doc__
    pread2.__wrapped__ = original
    pread2._dmheal_original = original
    return pread2


def patch_module(module):
    """Wrap SM's function in `module` (lvutil: activateNoRefcount; util: pread2) if it is
    SM's. Returns True when wrapped."""
    name = getattr(module, "__name__", "")
    if name in ACTIVATE_MODULES:
        func = getattr(module, "activateNoRefcount", None)
        util = getattr(module, "util", None)
        if func is None or util is None or not hasattr(util, "CommandException"):
            return False
        module.activateNoRefcount = wrap_activate(func)
        return True
    if name in UTIL_MODULES:
        func = getattr(module, "pread2", None)
        if func is None or not hasattr(module, "CommandException") or not hasattr(module, "SMlog"):
            return False  # another program's module named `util`
        module.pread2 = wrap_pread2(func)
        return True
    return False


def _patch_after_load(module):
    try:
        patch_module(module)
    except Exception as e:
        smlog("could not wrap %s: %s" % (getattr(module, "__name__", "?"), e))


class _PatchingLoader(object):
    """Python 3: the real loader, then the patch."""

    def __init__(self, inner):
        self._inner = inner

    def create_module(self, spec):
        create = getattr(self._inner, "create_module", None)
        return create(spec) if create else None

    def exec_module(self, module):
        self._inner.exec_module(module)
        _patch_after_load(module)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class Finder(object):
    """A meta-path finder that only acts for SM's modules (PATCHED_MODULES): Python 3's
    find_spec, and Python 2.7's find_module / load_module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in PATCHED_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader)
        return spec

    # Python 2.7 (PEP 302): the interpreter asks find_module, then load_module.
    def find_module(self, fullname, path=None):
        if sys.version_info[0] >= 3 or fullname not in PATCHED_MODULES:
            return None
        import imp
        try:
            found = imp.find_module(fullname.rpartition(".")[2], path)
        except ImportError:
            return None
        return _Py2Loader(found)

    def load_module(self, fullname):  # never reached: find_module returns its own loader
        raise ImportError(fullname)


class _Py2Loader(object):
    def __init__(self, found):
        self.found = found

    def load_module(self, fullname):
        import imp
        if fullname in sys.modules:
            return sys.modules[fullname]
        handle, pathname, description = self.found
        try:
            module = imp.load_module(fullname, handle, pathname, description)
        finally:
            if handle:
                handle.close()
        _patch_after_load(module)
        return module


def install_finder():
    """Called by the .pth at interpreter start: cheap, imports nothing."""
    if not any(isinstance(f, Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, Finder())
    for name in PATCHED_MODULES:  # already imported (e.g. hook installed mid-process)
        if name in sys.modules:
            _patch_after_load(sys.modules[name])
