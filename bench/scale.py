"""Benchmark: `dmheal scan` on hosts of 100, 1,000 and 5,000 device-mapper mappings in the
user-mode kernel, against the manual pipeline an operator would run, with peak memory, the SM
hook's overhead at scale, a profile, and a correctness check against the known ghosts.

usage: python3 bench/scale.py [SIZES...] [--rounds R] [--bin DMHEAL]
Builds examples/dm_list (the floor: one DM_LIST_DEVICES with uuids) and prints the Markdown
that BENCHMARKS.md carries."""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "kernel"))
import uml  # noqa: E402

GUEST = r"""
export TAPCTL_LIST_FILE="$WORK/taps" PATH="$HELPERS/../doubles:$PATH"
"$PYTHON" "%(bench)s/scale_host.py" %(n)d > "$OUT/build.txt" 2>&1 || { cat "$OUT/build.txt"; exit 1; }
"$PYTHON" "%(bench)s/scale_guest.py" %(rounds)d
"""


TARGET = "x86_64-unknown-linux-gnu"


def dm_list_example():
    """examples/dm_list, built for this run (the guest shares this machine's root)."""
    subprocess.check_call(["cargo", "build", "--quiet", "--release", "--locked", "--example",
                           "dm_list", "--target", TARGET], cwd=ROOT)
    return os.path.join(ROOT, "target", TARGET, "release", "examples", "dm_list")


def measure(n, rounds, binary, dm_list):
    # One extent (4 KiB) per LV plus a 33 MiB metadata area: size the disk to fit.
    r = uml.run(GUEST % {"bench": HERE, "n": n, "rounds": rounds}, binary, timeout=1800,
                disk_mb=max(256, 64 + n // 100), env={"DM_LIST": dm_list})
    if r.rc != 0:
        raise SystemExit("size %d failed:\n%s" % (n, r.output[-3000:]))
    return json.loads(r.file("results.json"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("sizes", nargs="*", type=int, default=[100, 1000, 5000])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "x86_64-unknown-linux-gnu", "release", "dmheal"))
    a = p.parse_args()
    dm_list = dm_list_example()
    rows = [measure(n, a.rounds, os.path.abspath(a.bin), dm_list) for n in a.sizes]
    print("| mappings | `dmheal scan` | peak RSS | manual pipeline | manual / scan | floor: dm_list process (call alone) | scan / floor | wrong verdicts |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %d | %.2f s | %.1f MiB | %.2f s | %.1fx | %.3f s (%.3f s) | %.1fx | %d |" % (
            r["n"], r["scan_s"], r["scan_peak_kib"] / 1024.0, r["manual_total_s"],
            r["manual_total_s"] / r["scan_s"], r["floor_process_s"], r["floor_call_s"],
            r["scan_s"] / r["floor_process_s"], r["wrong_count"]))
    print("\nManual pipeline, per step (median):\n")
    print("| mappings | " + " | ".join("`%s`" % k for k in rows[0]["manual_s"]) + " |")
    print("|---|" + "---|" * len(rows[0]["manual_s"]))
    for r in rows:
        print("| %d | " % r["n"] + " | ".join("%.2f s" % v for v in r["manual_s"].values()) + " |")
    print("\nSM hook, added time per activation (median of the rounds; *first*: the first call of a fresh process, median of as many fresh processes):\n")
    print("| case | " + " | ".join("%d mappings" % r["n"] for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for case in rows[0]["hook_s"]:
        print("| %s | " % case + " | ".join("%.1f ms" % (r["hook_s"][case] * 1e3) for r in rows) + " |")
    print("\nProfile of one scan at %d mappings (cumulative ms, dmheal -vv):\n" % rows[-1]["n"])
    print("```")
    for line in rows[-1]["profile"]:
        print(line)
    print("```")
    for r in rows:
        if r["wrong_count"]:
            print("\nWRONG at %d: %s" % (r["n"], r["wrong"]))


if __name__ == "__main__":
    main()
