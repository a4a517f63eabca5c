"""``dmheal hook install | uninstall | status``: the SM hook's ``.pth`` in the site-packages of
the Python that runs SM (2.7 on Citrix Hypervisor 8.2, 3.6 on XenServer 8.4 / XCP-ng 8.3),
and what SM's layout on this host offers to wrap.

The ``.pth`` holds two lines: the directory this ``dmheal`` package is in (the RPM puts it in
/usr/lib/dmheal/python, outside every interpreter's own site-packages, so one package serves
every Python dom0 has) and the line that installs the import finder (``sm_hook``). Run by the
``dmheal`` binary as ``<SM's python> -c ...`` (not ``-m``: once the hook is installed the
finder module is already imported at start-up, and runpy would warn about it).
"""

import json
import os
import sys

from .sm_hook import CONF_PATH, load_settings

PTH_NAME = "dmheal-sm-hook.pth"
SM_DIR = "/opt/xensource/sm"
IMPORT_LINE = ("import sys; exec('try:\\n import dmheal.sm_hook as h\\n h.install_finder()\\n"
               "except Exception:\\n pass')\n")


def package_dir():
    """The directory the running ``dmheal`` package was imported from (what the .pth adds)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.dirname(here)


def pth_text():
    return package_dir() + "\n" + IMPORT_LINE


def default_site_dir():
    """This Python's site-packages (the first that exists)."""
    import site
    dirs = []
    if hasattr(site, "getsitepackages"):
        dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    if not dirs:
        from distutils.sysconfig import get_python_lib  # Python 2.7 in a virtualenv
        dirs = [get_python_lib()]
    return dirs[0]


ACTIVATE_POINT = "def activateNoRefcount(path, refresh)"
PREAD2_POINT = "def pread2("
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


def _package_module(name):
    """Where module `name` of SM's package layout (`sm.lvutil`, `sm.core.util`) is, for this
    Python, or None (Python 2.7: SM 8.2 has no package)."""
    try:
        import importlib.util  # novermin (Python 2.7: ImportError, no SM package there)
        spec = importlib.util.find_spec(name)  # novermin (Python 2.7 never gets here)
    except (ImportError, ValueError, AttributeError):
        return None
    return spec.origin if spec is not None and spec.origin else None


def sm_layout(sm_dir=SM_DIR):
    """Where SM's lvutil (LVHD activation) and util (EXT/XFS attach's pread2) live on this
    host, and whether each patch point is there."""
    layouts = []
    package = _package_module("sm.lvutil")
    package_has_it = bool(package) and ACTIVATE_POINT in _read(package)
    legacy = os.path.join(sm_dir, "lvutil.py")
    if os.path.exists(legacy):
        source = _read(legacy)
        layout = {"module": "lvutil", "file": legacy, "patch_point": ACTIVATE_POINT in source}
        if not layout["patch_point"] and _REEXPORT in source:
            # The compatibility module: the function is sm.lvutil's, wrapped there.
            layout["reexports"] = "sm.lvutil"
            layout["patch_point"] = package_has_it
        layouts.append(layout)
    if package:
        layouts.append({"module": "sm.lvutil", "file": package, "patch_point": package_has_it})
    util_package = _package_module("sm.core.util")
    legacy_util = os.path.join(sm_dir, "util.py")
    for module, path in (("util", legacy_util if os.path.exists(legacy_util) else None),
                         ("sm.core.util", util_package)):
        if path and PREAD2_POINT in _read(path):
            layouts.append({"module": module, "file": path, "patch_point": True,
                            "wraps": "pread2 (EXT/XFS/LargeBlock attach)"})
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
    settings = load_settings(log=False)
    return {
        "installed": os.path.exists(pth),
        "pth": pth,
        "python": "%s (%d.%d)" % (sys.executable, sys.version_info[0], sys.version_info[1]),
        "config": os.environ.get("DMHEAL_CONF", CONF_PATH),
        "mode": settings.mode,
        "budget_seconds": settings.budget,
        "config_problem": settings.problem or settings.note,
        "sm_version": sm_version(),
        "sm_layouts": sm_layout(sm_dir),
    }


def install(site_dir, sm_dir=SM_DIR):
    pth = os.path.join(site_dir, PTH_NAME)
    if not os.path.isdir(site_dir):
        raise SystemExit("dmheal hook: %s is not a directory" % site_dir)
    current = _read(pth) if os.path.exists(pth) else None
    text = pth_text()
    changed = current != text
    if changed:
        tmp = pth + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
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


def render(result, sm_dir):
    lines = ["hook: %s (%s)" % ("installed" if result["installed"] else "not installed", result["pth"]),
             "python: %s" % result["python"]]
    if "changed" in result:
        lines.append("changed: %s" % ("yes" if result["changed"] else "no, already so"))
    lines.append("mode: %s, budget %g s per activation%s" % (
        result["mode"], result["budget_seconds"],
        " (%s)" % result["config_problem"] if result["config_problem"] else ""))
    lines.append("SM version: %s" % (result["sm_version"] or "unknown (no rpm database entry)"))
    if not any(l["module"].endswith("lvutil") for l in result["sm_layouts"]):
        lines.append("SM: lvutil not found (in %s or as sm.lvutil): nothing to wrap on this host" % sm_dir)
    for layout in result["sm_layouts"]:
        via = layout.get("reexports")
        what = layout.get("wraps", "activateNoRefcount(path, refresh) (LVHD activation)")
        lines.append("SM: %s at %s%s, patch point %s: %s" % (
            layout["module"], layout["file"],
            " (compatibility module re-exporting %s)" % via if via else "", what,
            ("present (in %s)" % via if via else "present") if layout["patch_point"]
            else ("MISSING (%s cannot be imported by this Python)" % via if via else "MISSING")))
    return "\n".join(lines)


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog="dmheal hook",
                                     description="Install, remove or show the SM pre-activation hook.")
    parser.add_argument("action", choices=("install", "uninstall", "status"))
    parser.add_argument("--site-dir", help="site-packages of the Python that runs SM (default: this Python's)")
    parser.add_argument("--sm-dir", default=SM_DIR, help="where SM's modules live (default %(default)s)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    # DMHEAL_SITE_DIR: where the .pth goes when --site-dir is not given (a package's scriptlets
    # tested against a scratch root set it).
    site_dir = args.site_dir or os.environ.get("DMHEAL_SITE_DIR") or default_site_dir()
    result = {"install": install, "uninstall": uninstall, "status": status}[args.action](site_dir, args.sm_dir)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(render(result, args.sm_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
