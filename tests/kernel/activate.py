"""Drive an activation through the SM stand-ins, as SM does it.

usage: activate.py LAYOUT HOOK [VIA]
  LAYOUT  legacy (/opt/xensource/sm, 8.3) | upstream (package sm, 4.1.1+) | xs84 (the package
          plus /opt/xensource/sm's compatibility modules, as XenServer 8.4 installs them) |
          x82 (/opt/xensource/sm of Citrix Hypervisor 8.2 CU1: Python 2.7, fcntl LVM lock)
  HOOK    off | a site dir whose .pth files are processed first (as Python does at start-up)
  VIA     lvmcache (default: LVMCache.activate, refcounted, as LVHDVDI's attach does) |
          blktap2 (vdi_activate's order: xapi's activating and host_<ref> marks first, at
          SM_STANDIN_XAPI) | refresh (LVMCache.activateNoRefcount(lv, True), SM 8.4's refresh
          of an active LV) | plain (LVMCache.activateNoRefcount(lv)) | extsr (EXTSR.attach of
          the local SR whose VG is XSLocalEXT-$SR: PBD.plug's `lvchange -ay`, fsck, mount)
Prints the outcome as JSON: ok, or the exception's type, code, cmd and reason."""

import json
import os
import sys

layout, hook = sys.argv[1], sys.argv[2]
via = sys.argv[3] if len(sys.argv) > 3 else "lvmcache"
standin = os.environ["STANDIN"]
if hook != "off":
    import site
    site.addsitedir(hook)
paths = {"legacy": ["legacy"], "upstream": ["upstream"], "xs84": ["compat", "upstream"],
         "x82": ["x82"]}[layout]
sys.path[:0] = [os.path.join(standin, p) for p in paths] + ([standin] if layout != "x82" else [])
if layout in ("legacy", "x82"):
    import blktap2
    import EXTSR
    import lvmcache
    import lvutil
    import util
    import xs_errors
else:
    from sm import blktap2, lvmcache, lvutil
    from sm.core import util, xs_errors
    from sm.drivers import EXTSR

import time

vg, lv, sr, vdi = (os.environ[k] for k in ("VG", "LV", "SR", "VDI"))
started = time.time()
outcome = {"wrapped": getattr(lvutil.activateNoRefcount, "_dmheal_original", None) is not None,
           "pread2_wrapped": getattr(util.pread2, "_dmheal_original", None) is not None}
try:
    cache = lvmcache.LVMCache(vg)
    if via == "lvmcache":
        cache.activate("lvm-" + sr, vdi, lv, True)
    elif via == "refresh":
        cache.activateNoRefcount(lv, True)
    elif via == "plain":
        cache.activateNoRefcount(lv)
    elif via == "blktap2":
        outcome["activated"] = blktap2.activate(util.get_localAPI_session(), sr, vdi, lv)
    elif via == "extsr":
        local = EXTSR.EXTSR(sr)
        local.attach(sr)
        outcome["mounted"] = os.path.ismount(local.path)  # novermin (POSIX 2.7 has it)
    else:
        sys.exit("unknown VIA %r" % via)
    outcome["ok"] = True
except util.CommandException as e:
    outcome.update(ok=False, type="%s.%s" % (type(e).__module__, type(e).__name__),
                   code=e.code, cmd=e.cmd, reason=e.reason)
except xs_errors.SROSError as e:  # EXTSR.attach: SR_BACKEND_FAILURE_52 (LVMMount) & co.
    outcome.update(ok=False, type="SROSError", code=e.errno, reason=e.reason)
if os.environ.get("ACTIVATE_TIMED"):
    outcome["elapsed"] = round(time.time() - started, 3)
print(json.dumps(outcome))
