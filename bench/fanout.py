"""Benchmark: the pool fan-out of `dmheal pool scan` and `dmheal vm` with 16 and 64 hosts, one
of them slow and one hanging, against the simulator (issue 15). Every live host answers its
plugin after a delay — most in `--delay` seconds, one in `--slow` seconds, one never — so the
answer should take about the slow host's time plus nothing, bounded by `--host-timeout` for the
hanging one: never the sum over hosts. Hosts here are simulated without kernels of their own
(they answer what their plugin would, see tests/xapi_sim/pools.py); the fan-out, the xapi
calls, the parsing and the findings are dmheal's own.

usage: python3 bench/fanout.py [HOSTS...] [--rounds R] [--bin DMHEAL]
Prints the Markdown that BENCHMARKS.md carries."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "xapi_sim"))
import pools  # noqa: E402
from harness import Simulator  # noqa: E402


def pool_of(n, delay, slow, hang):
    """n hosts: host 1 holds a ghost of S-Domino's system disk, host 2 is slow, the last one
    hangs (if `hang`); every other host answers after `delay`."""
    p = pools.migration_failed(hosts=n, down=(), hanging=(n - 1,) if hang else ())
    clean = {"mappings": 40, "ghost": 0, "in_use": 40, "suspicious": 0, "healthy": 0, "inactive_lvs": 0}
    for i in range(n - 1 if hang else n):
        ref = pools.host_ref(i)
        verdict = "ghost" if i == 1 else "absent"
        counts = dict(clean, ghost=1 if i == 1 else 0)
        mappings = [{"dm_name": "VG-VHD-%d" % i, "verdict": verdict, "summary": "s", "reasons": [],
                     "facts": {"sr": pools.SR_LVM, "vdi": pools.VDI_SYSTEM}}] if i == 1 else []
        p["sim"]["plugin_replies"][ref] = {
            "volumes": [pools.volumes_reply(i, verdict)],
            "scan": [{"value": {"counts": counts, "mappings": mappings, "inactive_lvs": []}}],
        }
        p["sim"]["plugin_delay"][ref] = slow if i == 2 else delay
    return p


def timed(argv):
    t = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600)
    return time.monotonic() - t, proc


def measure(n, rounds, binary, delay, slow, bound, hang):
    with tempfile.TemporaryDirectory() as d:
        sim = Simulator(pools.write(pool_of(n, delay, slow, hang), os.path.join(d, "pool.json")))
        try:
            base = [binary, "--json", "--xapi", sim.socket]
            out = {}
            for name, argv in (("pool scan", base + ["pool", "scan", "--host-timeout", str(bound)]),
                               ("vm", base + ["vm", pools.VM_NAME, "--host-timeout", str(bound)])):
                walls = []
                for _ in range(rounds):
                    wall, proc = timed(argv)
                    report = json.loads(proc.stdout)
                    if name == "pool scan":
                        ok = report["counts"]["ghost"] == 1 and report["counts"]["failed"] == int(hang)
                    else:
                        ok = report["findings"][0]["code"] == "ghost"
                    if not ok:
                        raise SystemExit("%d hosts, %s: wrong answer\n%s" % (n, name, proc.stdout[-2000:]))
                    walls.append(wall)
                out[name] = statistics.median(walls)
            return out
        finally:
            sim.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("hosts", nargs="*", type=int, default=[16, 64])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--delay", type=float, default=0.2, help="seconds a host's plugin takes")
    p.add_argument("--slow", type=float, default=2.0, help="seconds the slow host takes")
    p.add_argument("--host-timeout", type=float, default=5.0)
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "x86_64-unknown-linux-gnu", "release", "dmheal"))
    a = p.parse_args()
    print("| hosts | hanging host | `pool scan` (median) | `vm` (median) | slowest live host | bound | sum over hosts |")
    print("|---|---|---|---|---|---|---|")
    for n in a.hosts:
        for hang in (False, True):
            m = measure(n, a.rounds, os.path.abspath(a.bin), a.delay, a.slow, a.host_timeout, hang)
            total = (n - 2 - int(hang)) * a.delay + a.slow + (a.host_timeout if hang else a.delay)
            print("| %d | %s | %.2f s | %.2f s | %.1f s | %.1f s | %.1f s |" % (
                n, "one" if hang else "none", m["pool scan"], m["vm"], a.slow, a.host_timeout, total))


if __name__ == "__main__":
    main()
