"""Benchmark (issue 25): `dmheal heal --all --apply` healing 1,000 ghosts among 5,000 mappings in
one run, in the user-mode kernel, against single heals of the same ghosts.

The host is bench/scale_host.py's with GHOST_EVERY=5: 1,000 ghosts (500 uuid-less, 500 with a
removed LV's uuid), 200 held open, 1,000 served by a tapdisk, the rest LVM's own. Each round
times the dry run and the batch with --apply, checks that exactly the ghosts went (and were
journalled), and puts them back, untimed. Then single `dmheal heal <name> --apply` runs on a
sample of ghosts give the per-ghost cost of the one-by-one way.

usage: python3 bench/batch.py [N] [--every K] [--rounds R] [--singles S] [--bin DMHEAL]
Prints the Markdown that BENCHMARKS.md carries."""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "kernel"))
import uml  # noqa: E402

GUEST = r"""
export TAPCTL_LIST_FILE="$WORK/taps" PATH="$HELPERS/../doubles:$PATH"
"$PYTHON" "%(bench)s/scale_host.py" %(n)d %(every)d > "$OUT/build.txt" 2>&1 || { cat "$OUT/build.txt"; exit 1; }
"$PYTHON" - %(rounds)d %(singles)d <<'PY'
import json, os, subprocess, sys, time
rounds, singles = int(sys.argv[1]), int(sys.argv[2])
OUT, DMHEAL = os.environ["OUT"], os.environ["DMHEAL"]
truth = json.load(open(os.path.join(OUT, "truth.json")))
ghosts = {n for n, role in truth["roles"].items() if role in ("ghost", "stale")}
every = set(truth["roles"])


def names():
    out = subprocess.check_output(["dmsetup", "info", "-c", "--noheadings", "-o", "name"])
    return set(out.decode().split())


def put_back():
    specs = truth["ghost_specs"]
    for k in range(0, len(specs), 200):
        subprocess.check_call(["dmsetup", "create", "--concise", ";".join(specs[k:k + 200])])


def run(argv):
    t = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return time.perf_counter() - t, p


res = {"n": truth["n"], "ghosts": len(ghosts), "dry": [], "apply": [], "rss_kib": None}
base = [DMHEAL, "--json", "--xapi", "none", "heal", "--all"]
for i in range(rounds):
    t, p = run(base)
    dry = json.loads(p.stdout)
    assert p.returncode == 3 and {x["dm_name"] for x in dry["results"]} == ghosts, p.stderr[-2000:]
    res["dry"].append(t)
    t, p = run(base + ["--apply"])
    out = json.loads(p.stdout)
    assert p.returncode == 0, p.stderr[-2000:]
    removed = {x["dm_name"] for x in out["results"] if x["action"] == "removed"}
    assert removed == ghosts, (len(removed), out["counts"])
    assert names() == every - ghosts, "something else changed"
    res["apply"].append(t)
    res["counts"] = out["counts"]
    put_back()
# Peak memory of one batch with --apply (GNU time's %%M: dmheal alone).
p = subprocess.run(["/usr/bin/time", "-f", "%%M"] + base + ["--apply"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
res["rss_kib"] = int(p.stderr.decode().split()[-1])
put_back()
# The one-by-one way, on a sample of the ghosts (both forms).
sample = sorted(ghosts)[:singles]
single = []
for name in sample:
    t, p = run([DMHEAL, "--json", "--xapi", "none", "heal", name, "--apply"])
    assert p.returncode == 0 and json.loads(p.stdout)["action"] == "removed", p.stdout[-500:]
    single.append(t)
res["single"] = single
json.dump(res, open(os.path.join(OUT, "batch.json"), "w"))
PY
"""


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("n", nargs="?", type=int, default=5000)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--singles", type=int, default=20)
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "x86_64-unknown-linux-gnu", "release", "dmheal"))
    a = p.parse_args()
    r = uml.run(GUEST % {"bench": HERE, "n": a.n, "every": a.every, "rounds": a.rounds,
                         "singles": a.singles},
                os.path.abspath(a.bin), timeout=3600, disk_mb=max(256, 64 + a.n // 100))
    if r.rc != 0:
        raise SystemExit("failed:\n%s" % r.output[-3000:])
    d = json.loads(r.file("batch.json"))
    apply_s, single_s = median(d["apply"]), median(d["single"])
    print("| mappings | ghosts | `heal --all` (dry run) | `heal --all --apply` | per ghost | peak RSS | single `heal --apply` (median of %d) | %d single heals (estimated) |"
          % (len(d["single"]), d["ghosts"]))
    print("|---|---|---|---|---|---|---|---|")
    print("| %d | %d | %.2f s | %.2f s | %.1f ms | %.1f MiB | %.2f s | %.0f s |" % (
        d["n"], d["ghosts"], median(d["dry"]), apply_s, apply_s / d["ghosts"] * 1e3,
        d["rss_kib"] / 1024.0, single_s, single_s * d["ghosts"]))
    print("\nRounds with --apply: %s s; counts of the last: %s" % (
        ", ".join("%.2f" % x for x in d["apply"]), json.dumps(d["counts"], sort_keys=True)))


if __name__ == "__main__":
    main()
