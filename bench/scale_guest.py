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

# The floor: one DM_LIST_DEVICES with uuids (dmheal's own dm::list, examples/dm_list.rs), as a
# process of its own (a scan is one process) and the call alone.
floor = [timed([os.environ["DM_LIST"]]) for _ in range(ROUNDS)]
results["floor_process_s"] = median([t for t, _ in floor])
results["floor_call_s"] = median([json.loads(subprocess.check_output([os.environ["DM_LIST"]]))["seconds"]
                                  for _ in range(ROUNDS)])
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

# The hook at scale, per activation, as SM calls it: no mapping (a fresh activation), LVM's own
# mapping (SM 8.4 refreshes active LVs through the same call), a ghost checked (observe: the
# core decides, nothing removed) and a ghost healed (heal: decided, journalled and removed —
# the ghost is put back, untimed, between rounds).
from dmheal import sm_hook  # noqa: E402
conf = os.path.join(os.environ["WORK"], "dmheal.conf")
os.environ["DMHEAL_CONF"] = conf
os.environ["DMHEAL_BIN"] = DMHEAL
sm_hook.smlog = lambda m: None


def mode(m):
    with open(conf, "w") as f:
        f.write("mode = %s\n" % m)
    sm_hook._settings_cache.clear()  # this file's mtime may not move within one second


def dm_of(lv_path):
    vg, lv = lv_path.split("/")[2:4]
    return vg.replace("-", "--") + "-" + lv.replace("-", "--")


# How the hook meets each form in SM's order. A uuid-less ghost: before `lvchange -ay`, the
# one-ioctl probe sees a mapping LVM did not make and the core heals it. A stale-uuid ghost
# carries an LVM-made uuid, so the probe lets `lvchange -ay` run; LVM fails "Device or
# resource busy" and the hook heals it then, before SM's one retry. What is timed is the hook's
# own part of the activation (LVM's lvchange is SM's work either way).
BUSY_FAILURE = ("lvchange -ay failed: Device or resource busy")
HEAL_STEP = {
    "ghost": "sm_hook.before_activation(path)",
    "stale-uuid ghost": "assert sm_hook.Activation(path).after_busy(Exception(%r))" % BUSY_FAILURE,
}


def heal_once(form, lv_path):
    step = HEAL_STEP[form]
    t = time.perf_counter()
    exec(step, {"sm_hook": sm_hook, "path": lv_path})
    return time.perf_counter() - t


def heal_rounds(form, lv_path, spec):
    """The hook healing the ghost under `lv_path`, round after round in this process (the
    ghost put back from `spec`, untimed, between rounds)."""
    samples = []
    for _ in range(max(ROUNDS, 3)):
        samples.append(heal_once(form, lv_path))
        gone = subprocess.run(["dmsetup", "info", dm_of(lv_path)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode != 0
        if not gone:
            raise SystemExit("the hook did not heal the ghost under %s" % lv_path)
        subprocess.check_call(["dmsetup", "create", "--concise", spec])
    return samples


def first_heal(form, lv_path):
    """The same step as the first call of a fresh Python process (nothing cached)."""
    code = ("import sys, time; from dmheal import sm_hook; sm_hook.smlog = lambda m: None; "
            "path = sys.argv[1]; t = time.perf_counter(); %s; print(time.perf_counter() - t)"
            % HEAL_STEP[form])
    return float(subprocess.check_output([sys.executable, "-c", code, lv_path]).decode())


hook = {}
for backend in ("native", "binary"):
    os.environ["DMHEAL_BACKEND"] = backend
    mode("heal")
    for form, lv_key, spec_key in (("ghost", "ghost_lv", "ghost_spec"),
                                   ("stale-uuid ghost", "stale_lv", "stale_spec")):
        hook["%s healed, %s" % (form, backend)] = median(heal_rounds(form, truth[lv_key], truth[spec_key]))
        # Each sample a fresh process (the ghost put back, untimed, between them).
        firsts = []
        for _ in range(max(ROUNDS, 3)):
            firsts.append(first_heal(form, truth[lv_key]))
            if subprocess.run(["dmsetup", "info", dm_of(truth[lv_key])], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0:
                raise SystemExit("the first heal in a fresh process did not heal %s" % truth[lv_key])
            subprocess.check_call(["dmsetup", "create", "--concise", truth[spec_key]])
        hook["first %s healed, %s" % (form, backend)] = median(firsts)
    mode("observe")
    for case, path in (("no mapping", truth["absent_lv"]), ("LVM's own", truth["healthy_lv"]),
                       ("ghost checked", truth["ghost_lv"])):
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
expected = {"ghost": "ghost", "stale": "ghost", "held": "in-use", "tapdisk": "in-use",
            "healthy": "healthy"}
wrong = {n: (role, found.get(n)) for n, role in truth["roles"].items() if found.get(n) != expected[role]}
results["wrong"] = dict(list(wrong.items())[:10])
results["wrong_count"] = len(wrong)
results["counts"] = report["counts"]
with open(os.path.join(OUT, "results.json"), "w") as f:
    json.dump(results, f)
