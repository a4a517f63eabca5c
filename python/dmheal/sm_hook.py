"""The SM pre-activation hook: LVHD VDI activation heals a ghost mapping by itself.

SM activates a VDI's LV through ``lvutil.activateNoRefcount(path, refresh)`` (XCP-ng 8.3 /
XenServer 8.4: module ``lvutil`` from /opt/xensource/sm; upstream: ``sm.lvutil``), which runs
``lvchange -ay path``. A ``.pth`` file installs an import finder that wraps that function as
soon as SM imports the module — SM's files are never edited. The wrapper:

* before ``lvchange -ay``: inspects the LV's DM name. No mapping: calls through at once.
  A proven ghost: heals it (journal + SMlog line), then calls through. Anything else: calls
  through untouched (and logs what it saw);
* after a ``util.CommandException`` carrying "Device or resource busy": diagnoses; a ghost is
  healed and the activation retried exactly once; otherwise the ORIGINAL exception is re-raised
  unchanged, after logging who holds the mapping.

It tells the core it runs as SM's own activation (``activating``): blktap2 writes this host's
``host_<ref>`` mark on the VDI, and LVMCache.activate counts SM's reference, before the LV is
activated, so those are the activation's own. It never raises its own error into SM: any
internal problem is logged and SM's call goes on. Each of its two steps returns to SM within
``budget_seconds`` whatever happens below it (the core stops starting work at 80% of it; the
call is abandoned at 100%). It never opens SM's fcntl lock files (a close() would drop SM's
own locks: the in-process core refuses, and the facade hands such a request to the binary)
and takes Fairlock only around its own check and remove, never while this process holds it.

Configuration: /etc/dmheal/dmheal.conf (``DMHEAL_CONF`` overrides the path), ``key = value``:
``mode = heal | observe | off`` (observe logs what it would do and changes nothing) and
``budget_seconds = <1..60>``. A bad file is logged and treated as ``observe``; a missing one
means ``observe`` too.

Run ``python3 -m dmheal.sm_hook install | uninstall | status`` (also ``dmheal hook ...``).
"""

import os
import sys

CONF_PATH = "/etc/dmheal/dmheal.conf"
PTH_NAME = "dmheal-sm-hook.pth"
SM_DIR = "/opt/xensource/sm"
# The modules whose activateNoRefcount is wrapped: 8.3/8.4 layout and upstream package layout.
PATCHED_MODULES = ("lvutil", "sm.lvutil")
BUSY = "Device or resource busy"
MODES = ("heal", "observe", "off")
DEFAULT_BUDGET = 10.0


# ---------------------------------------------------------------- configuration

class Settings(object):
    def __init__(self, mode, budget, problem=None):
        self.mode = mode
        self.budget = budget
        self.problem = problem


_settings_cache = {}


def load_settings():
    """Read the configuration (cached by the file's identity, size and mtime). Never raises."""
    path = os.environ.get("DMHEAL_CONF", CONF_PATH)
    try:
        st = os.stat(path)
    except OSError:
        # Not configured: look, never touch. (The RPM ships the file with mode = heal.)
        return Settings("observe", DEFAULT_BUDGET)
    # A coarse mtime (one second on some filesystems) alone would miss a quick rewrite.
    key = (st.st_ino, st.st_size, st.st_mtime_ns if hasattr(st, "st_mtime_ns") else st.st_mtime)
    cached = _settings_cache.get(path)
    if cached and cached[0] == key:
        return cached[1]
    settings = parse_settings(path)
    _settings_cache[path] = (key, settings)
    return settings


def parse_settings(path):
    try:
        with open(path) as f:
            text = f.read()
    except (OSError, IOError, UnicodeDecodeError) as e:
        return Settings("observe", DEFAULT_BUDGET, "cannot read %s: %s" % (path, e))
    mode, budget = "heal", DEFAULT_BUDGET
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            return Settings("observe", DEFAULT_BUDGET, "%s:%d: expected key = value" % (path, number))
        if key == "mode":
            if value not in MODES:
                return Settings("observe", DEFAULT_BUDGET,
                                "%s:%d: mode must be heal, observe or off, not %r" % (path, number, value))
            mode = value
        elif key == "budget_seconds":
            try:
                budget = float(value)
            except ValueError:
                budget = -1.0
            if not 1.0 <= budget <= 60.0:
                return Settings("observe", DEFAULT_BUDGET,
                                "%s:%d: budget_seconds must be a number from 1 to 60" % (path, number))
        else:
            return Settings("observe", DEFAULT_BUDGET, "%s:%d: unknown key %r" % (path, number, key))
    return Settings(mode, budget)


# ---------------------------------------------------------------- logging

def smlog(message):
    """One line in /var/log/SMlog: syslog facility LOCAL2, ident SM, "[pid] message"."""
    import syslog
    syslog.openlog("SM", 0, syslog.LOG_LOCAL2)
    syslog.syslog(syslog.LOG_INFO, "[%d] dmheal: %s" % (os.getpid(), message))
    syslog.closelog()


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


# Of the budget, what the core may spend: the rest covers starting it, killing it at the
# deadline and logging, so the hook is back in SM within budget_seconds whatever happens.
CORE_SHARE = 0.8
# Waits for SM's lock and the journal lock inside a VM start.
LOCK_WAIT = 5.0


def _heal(path, settings, apply, record=True, deadline=None):
    """The core's decision (and, with `apply`, action) on `path`, as SM's own activation."""
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


def _monotonic():
    import time
    return time.monotonic()


def _cheap_decision(path):
    """The decisions one ioctl can make, or None to ask the core.

    No mapping of the LV's name: lvchange -ay creates it. A mapping carrying an LVM-made uuid
    (no suffix): LVM's own mapping of some LV — SM 8.4 refreshes active LVs through this call —
    and if it is another LV's (a stale mapping after a rename), lvchange itself fails with
    "Device or resource busy", which `after_busy_failure` then checks in full."""
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


def _describe(result):
    verdict = result["inspection"]["verdict"]
    if result["action"] == "would-remove":
        return "observe mode, left in place: a ghost (%s)" % result["inspection"]["summary"]
    return "%s (verdict %s)" % (result.get("message", ""), verdict)


def before_activation(path):
    """Runs before ``lvchange -ay path``. Never raises. True when it journalled a decision."""
    try:
        settings = load_settings()
        if settings.problem:
            smlog("configuration problem, acting as observe: %s" % settings.problem)
        if settings.mode == "off":
            return False
        if _cheap_decision(path) is not None:
            return False  # the common cases: one ioctl, nothing logged, nothing journalled
        deadline = _monotonic() + settings.budget
        apply = settings.mode == "heal"
        if apply and _caller_holds_fairlock():
            smlog("%s: this process holds Fairlock devicemapper; checking only" % path)
            apply = False
        result = _heal(path, settings, apply, deadline=deadline)
        if result["inspection"]["verdict"] in ("absent", "healthy"):
            return False  # nothing logged, nothing journalled
        smlog("before activating %s: %s" % (path, _describe(result)))
        return result.get("journal_id") is not None
    except Exception as e:  # the hook must never break SM
        smlog("pre-activation check of %s failed, calling through: %s" % (path, e))
        return False


def after_busy_failure(path, exc, recorded=False):
    """Runs when the activation raised. True: a ghost was removed, retry once. Never raises.
    ``recorded``: this activation's decision is already in the journal (not written twice)."""
    try:
        text = "%s %s" % (getattr(exc, "reason", ""), exc)
        if BUSY not in text:
            return False
        settings = load_settings()
        if settings.mode == "off":
            return False
        deadline = _monotonic() + settings.budget
        apply = settings.mode == "heal" and not _caller_holds_fairlock()
        result = _heal(path, settings, apply, record=not recorded, deadline=deadline)
        if result["action"] == "removed":
            smlog("activation of %s failed busy; %s; retrying the activation once" % (path, result["message"]))
            return True
        smlog("activation of %s failed busy; diagnosis: %s; the original error stands"
              % (path, _describe(result)))
    except Exception as e:
        smlog("diagnosis of the busy activation of %s failed: %s" % (path, e))
    return False


# ---------------------------------------------------------------- the wrapper

def wrap_activate(original):
    """SM's ``activateNoRefcount(path, refresh)``, with the hook around it."""
    if getattr(original, "_dmheal_original", None) is not None:
        return original  # already wrapped

    def activateNoRefcount(path, refresh):
        recorded = before_activation(path)
        try:
            return original(path, refresh)
        except Exception as exc:
            if not after_busy_failure(path, exc, recorded):
                raise  # the original exception, unchanged
        return original(path, refresh)

    activateNoRefcount.__doc__ = original.__doc__
    activateNoRefcount.__wrapped__ = original
    activateNoRefcount._dmheal_original = original
    return activateNoRefcount


def patch_module(module):
    """Wrap ``module.activateNoRefcount`` if it is SM's. Returns True when wrapped."""
    func = getattr(module, "activateNoRefcount", None)
    util = getattr(module, "util", None)
    if func is None or util is None or not hasattr(util, "CommandException"):
        return False
    module.activateNoRefcount = wrap_activate(func)
    return True


class _PatchingLoader(object):
    def __init__(self, inner):
        self._inner = inner

    def create_module(self, spec):
        create = getattr(self._inner, "create_module", None)
        return create(spec) if create else None

    def exec_module(self, module):
        self._inner.exec_module(module)
        try:
            patch_module(module)
        except Exception as e:
            smlog("could not wrap %s.activateNoRefcount: %s" % (module.__name__, e))

    def __getattr__(self, name):
        return getattr(self._inner, name)


class Finder(object):
    """A meta-path finder that only acts for SM's lvutil modules."""

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


def install_finder():
    """Called by the .pth at interpreter start: cheap, imports nothing."""
    if not any(isinstance(f, Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, Finder())
    for name in PATCHED_MODULES:  # already imported (e.g. hook installed mid-process)
        if name in sys.modules:
            patch_module(sys.modules[name])


# ---------------------------------------------------------------- install / status

PTH_LINE = ("import sys; exec('try:\\n import dmheal.sm_hook as h\\n h.install_finder()\\n"
            "except Exception:\\n pass')\n")


def default_site_dir():
    import site
    dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    return dirs[0] if dirs else site.getsitepackages()[0]


PATCH_POINT = "def activateNoRefcount(path, refresh)"
# XenServer 8.4 and later SM keep /opt/xensource/sm/lvutil.py as a compatibility module that
# only re-exports the package module: `from sm.lvutil import *`. SM's own callers import
# `sm.lvutil`, which is what the finder wraps.
_REEXPORT = "from sm.lvutil import"


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (OSError, IOError, UnicodeDecodeError):
        return ""


def _package_lvutil():
    """Where `sm.lvutil` is, for this Python, or None."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("sm.lvutil")
    except (ImportError, ValueError, AttributeError):
        return None
    return spec.origin if spec is not None and spec.origin else None


def sm_layout(sm_dir=SM_DIR):
    """Where SM's lvutil lives on this host and whether the patch point is there."""
    layouts = []
    package = _package_lvutil()
    package_has_it = bool(package) and PATCH_POINT in _read(package)
    legacy = os.path.join(sm_dir, "lvutil.py")
    if os.path.exists(legacy):
        source = _read(legacy)
        layout = {"module": "lvutil", "file": legacy, "patch_point": PATCH_POINT in source}
        if not layout["patch_point"] and _REEXPORT in source:
            # The compatibility module: the function is sm.lvutil's, wrapped there.
            layout["reexports"] = "sm.lvutil"
            layout["patch_point"] = package_has_it
        layouts.append(layout)
    if package:
        layouts.append({"module": "sm.lvutil", "file": package, "patch_point": package_has_it})
    return layouts


def sm_version():
    import subprocess
    try:
        p = subprocess.Popen(["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "sm"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        out, _ = p.communicate()
        return out.strip() if p.returncode == 0 else None
    except OSError:
        return None


def status(site_dir, sm_dir=SM_DIR):
    pth = os.path.join(site_dir, PTH_NAME)
    settings = load_settings()
    return {
        "installed": os.path.exists(pth),
        "pth": pth,
        "config": os.environ.get("DMHEAL_CONF", CONF_PATH),
        "mode": settings.mode,
        "config_problem": settings.problem,
        "sm_version": sm_version(),
        "sm_layouts": sm_layout(sm_dir),
    }


def install(site_dir, sm_dir=SM_DIR):
    pth = os.path.join(site_dir, PTH_NAME)
    if not os.path.isdir(site_dir):
        raise SystemExit("dmheal hook: %s is not a directory" % site_dir)
    current = None
    if os.path.exists(pth):
        with open(pth) as f:
            current = f.read()
    changed = current != PTH_LINE
    if changed:
        tmp = pth + ".tmp"
        with open(tmp, "w") as f:
            f.write(PTH_LINE)
        os.rename(tmp, pth)
    result = status(site_dir, sm_dir)
    result["changed"] = changed
    return result


def uninstall(site_dir, sm_dir=SM_DIR):
    pth = os.path.join(site_dir, PTH_NAME)
    changed = os.path.exists(pth)
    if changed:
        os.unlink(pth)
    result = status(site_dir, sm_dir)
    result["changed"] = changed
    return result


def main(argv=None):
    import argparse
    import json
    parser = argparse.ArgumentParser(prog="dmheal hook", description="Install, remove or show the SM pre-activation hook.")
    parser.add_argument("action", choices=("install", "uninstall", "status"))
    parser.add_argument("--site-dir", help="site-packages of the Python that runs SM (default: this Python's)")
    parser.add_argument("--sm-dir", default=SM_DIR, help="where SM's modules live (default %(default)s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    site_dir = args.site_dir or default_site_dir()
    result = {"install": install, "uninstall": uninstall, "status": status}[args.action](site_dir, args.sm_dir)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print("hook: %s (%s)" % ("installed" if result["installed"] else "not installed", result["pth"]))
        if "changed" in result:
            print("changed: %s" % ("yes" if result["changed"] else "no, already so"))
        print("mode: %s%s" % (result["mode"], " (%s)" % result["config_problem"] if result["config_problem"] else ""))
        print("SM version: %s" % (result["sm_version"] or "unknown (no rpm database entry)"))
        if not result["sm_layouts"]:
            print("SM: lvutil not found (in %s or as sm.lvutil): nothing to wrap on this host" % args.sm_dir)
        for layout in result["sm_layouts"]:
            via = layout.get("reexports")
            print("SM: %s at %s%s, patch point activateNoRefcount(path, refresh): %s" % (
                layout["module"], layout["file"],
                " (compatibility module re-exporting %s)" % via if via else "",
                ("present (in %s)" % via if via else "present") if layout["patch_point"]
                else ("MISSING (%s cannot be imported by this Python)" % via if via else "MISSING")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
