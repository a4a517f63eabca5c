"""Drive an activation through the SM stand-ins, as SM does it.

usage: activate.py LAYOUT HOOK [VIA]
  LAYOUT  legacy (/opt/xensource/sm, 8.3) | upstream (package sm, 4.1.1+) | xs84 (the package
          plus /opt/xensource/sm's compatibility modules, as XenServer 8.4 installs them)
  HOOK    off | a site dir whose .pth files are processed first (as Python does at start-up)
  VIA     lvmcache (default: LVMCache.activate, refcounted, as LVHDVDI's attach does) |
          blktap2 (vdi_activate's order: xapi's activating and host_<ref> marks first, at
          SM_STANDIN_XAPI) | refresh (LVMCache.activateNoRefcount(lv, True), SM 8.4's refresh
          of an active LV) | plain (LVMCache.activateNoRefcount(lv))
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
paths = {"legacy": ["legacy"], "upstream": ["upstream"], "xs84": ["compat", "upstream"]}[layout]
sys.path[:0] = [os.path.join(standin, p) for p in paths] + [standin]
if layout == "legacy":
    import blktap2
    import lvmcache
    import lvutil
    import util
else:
    from sm import blktap2, lvmcache, lvutil
    from sm.core import util

vg, lv, sr, vdi = (os.environ[k] for k in ("VG", "LV", "SR", "VDI"))
outcome = {"wrapped": getattr(lvutil.activateNoRefcount, "_dmheal_original", None) is not None}
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
    else:
        sys.exit("unknown VIA %r" % via)
    outcome["ok"] = True
except util.CommandException as e:
    outcome.update(ok=False, type="%s.%s" % (type(e).__module__, type(e).__name__),
                   code=e.code, cmd=e.cmd, reason=e.reason)
print(json.dumps(outcome))
