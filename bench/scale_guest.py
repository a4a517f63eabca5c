"""Inside the user-mode kernel, after scale_host.py: time `dmheal scan` against the manual
pipeline an operator runs for the same answer, the SM hook at scale, and check the scan's
verdicts against the ground truth. Writes $OUT/results.json.

usage: scale_guest.py ROUNDS"""

import json
import os
import resource
import subprocess
import sys
import time

ROUNDS = int(sys.argv[1])
OUT = os.environ["OUT"]
DMHEAL = os.environ["DMHEAL"]
truth = json.load(open(os.path.join(OUT, "truth.json")))


def timed(argv, **kw):
    """Wall time and the child's peak RSS (KiB), one run in a fresh wrapper process."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.check_output([sys.executable, "-c", probe] + argv, **kw).decode().split()
    return float(out[0]), int(out[1])


def peak_kib(argv):
    """Peak RSS (KiB) of one run, as GNU time reports it. The rusage of a child forked from
    this Python would also count the Python image it was forked from (~14 MiB)."""
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    return int(r.stderr.decode().split()[-1])


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


results = {"n": truth["n"]}
scan = [timed([DMHEAL, "--json", "--xapi", "none", "scan"]) for _ in range(ROUNDS)]
results["scan_s"] = median([t for t, _ in scan])
results["scan_peak_kib"] = peak_kib([DMHEAL, "--json", "--xapi", "none", "scan"])

# The operator's pipeline for the same answer: which mappings exist and with what uuid/open
# count, who holds them open, what tapdisk serves, what LVM thinks.
devs = ["/dev/dm-%d" % i for i in range(truth["n"])]
steps = {
    "dmsetup info -c": ["dmsetup", "info", "-c"],
    "lsof (the mappings)": ["lsof", "-w"] + devs,
    "tap-ctl list": ["tap-ctl", "list"],
    "lvs": ["lvs", "-a", "-o", "vg_name,lv_name,lv_uuid,lv_attr"],
}
manual = {}
for name, argv in steps.items():
    manual[name] = median([timed(argv)[0] for _ in range(ROUNDS)])
results["manual_s"] = manual
results["manual_total_s"] = sum(manual.values())

# Where dmheal's time goes (its own debug timings).
prof = subprocess.run([DMHEAL, "-vv", "--json", "--xapi", "none", "scan"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.PIPE, universal_newlines=True, env=dict(os.environ, NO_COLOR="1")).stderr
results["profile"] = [l.split("DEBUG", 1)[1].strip() for l in prof.splitlines() if "DEBUG" in l]

# The hook at scale: no mapping (the common case) and a ghost (observe: timed, not removed).
from dmheal import sm_hook  # noqa: E402
conf = os.path.join(os.environ["WORK"], "dmheal.conf")
with open(conf, "w") as f:
    f.write("mode = observe\n")
os.environ["DMHEAL_CONF"] = conf
os.environ["DMHEAL_BIN"] = DMHEAL
sm_hook.smlog = lambda m: None
hook = {}
for backend in ("native", "binary"):
    os.environ["DMHEAL_BACKEND"] = backend
    for case, path in (("no mapping", truth["absent_lv"]), ("ghost", truth["ghost_lv"])):
        samples = []
        for _ in range(max(ROUNDS, 5)):
            t = time.perf_counter()
            sm_hook.before_activation(path)
            samples.append(time.perf_counter() - t)
        hook["%s, %s" % (case, backend)] = median(samples)
results["hook_s"] = hook

# Correctness: every ghost found, nothing else called a ghost.
report = json.loads(subprocess.run([DMHEAL, "--json", "--xapi", "none", "scan"], stdout=subprocess.PIPE).stdout.decode())
found = {m["dm_name"]: m["verdict"] for m in report["mappings"]}
expected = {"ghost": "ghost", "held": "in-use", "tapdisk": "in-use", "healthy": "healthy"}
wrong = {n: (role, found.get(n)) for n, role in truth["roles"].items() if found.get(n) != expected[role]}
results["wrong"] = dict(list(wrong.items())[:10])
results["wrong_count"] = len(wrong)
results["counts"] = report["counts"]
with open(os.path.join(OUT, "results.json"), "w") as f:
    json.dump(results, f)
