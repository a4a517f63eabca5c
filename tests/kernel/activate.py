"""Drive an SM-style activation through the stand-in SM modules, as SM's LVHD attach does:
LVMCache(vg).activateNoRefcount(lv) -> lvutil.activateNoRefcount(path, refresh) -> lvchange -ay.

usage: activate.py LAYOUT HOOK   (LAYOUT: legacy | upstream; HOOK: off | a site dir whose
.pth files are processed first, as Python does for site-packages at start-up)
Prints the outcome as JSON: ok, or the exception's module, type, code, cmd and reason."""

import json
import os
import sys

layout, hook = sys.argv[1], sys.argv[2]
standin = os.environ["STANDIN"]
if hook != "off":
    import site
    site.addsitedir(hook)
sys.path[:0] = [os.path.join(standin, layout), standin]
if layout == "legacy":
    import lvmcache
    import lvutil
    import util
else:
    from sm import lvmcache, lvutil
    from sm.core import util

outcome = {"wrapped": getattr(lvutil.activateNoRefcount, "_dmheal_original", None) is not None}
try:
    lvmcache.LVMCache(os.environ["VG"]).activateNoRefcount(os.environ["LV"])
    outcome["ok"] = True
except util.CommandException as e:
    outcome.update(ok=False, type="%s.%s" % (type(e).__module__, type(e).__name__),
                   code=e.code, cmd=e.cmd, reason=e.reason)
print(json.dumps(outcome))
