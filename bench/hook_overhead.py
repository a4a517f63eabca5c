"""Benchmark: the SM hook's added time per activation when the VDI's LV has no mapping (the
common case), for the native and the binary backend, measured inside the user-mode kernel.

usage: python3 bench/hook_overhead.py [DMHEAL_BIN] [ROUNDS]  (default: scripts/build's binary)
Prints a Markdown table (median, p90, min over ROUNDS calls of the hook's pre-activation
check) and, for scale, the time of one real `lvchange -ay` + `lvchange -an` pair."""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "kernel"))
import uml  # noqa: E402

GUEST = r"""
make_sr_vg
lvchange -an "$VG/$LV"
echo "mode = heal" > "$WORK/dmheal.conf"
export DMHEAL_CONF="$WORK/dmheal.conf" DMHEAL_BIN="$DMHEAL"
cat > "$WORK/bench.py" <<'PY'
import json, os, subprocess, sys, time
from dmheal import sm_hook
path = "/dev/%s/%s" % (os.environ["VG"], os.environ["LV"])
rounds = int(sys.argv[1])
out = {}
logs = []
sm_hook.smlog = logs.append  # any line here means the check did not run cleanly
for backend in ("native", "binary"):
    os.environ["DMHEAL_BACKEND"] = backend
    checked = sm_hook._heal(path, sm_hook.load_settings(), True)
    assert checked["inspection"]["verdict"] == "absent", checked
    sm_hook.before_activation(path)  # warm caches once
    out[backend] = []
    out[backend + "_core"] = []
# Interleaved, so that neither backend is favoured by running second.
for i in range(rounds):
    for backend in ("native", "binary"):
        os.environ["DMHEAL_BACKEND"] = backend
        t = time.perf_counter()
        sm_hook.before_activation(path)
        out[backend].append(time.perf_counter() - t)
        if i % 10 == 0:
            t = time.perf_counter()
            sm_hook._heal(path, sm_hook.load_settings(), True)
            out[backend + "_core"].append(time.perf_counter() - t)
for key in list(out):
    out[key] = sorted(out[key])
lv = []
for _ in range(5):
    t = time.perf_counter()
    subprocess.check_call(["lvchange", "-ay", path])
    lv.append(time.perf_counter() - t)
    subprocess.check_call(["lvchange", "-an", path])
out["lvchange"] = sorted(lv)
assert not logs, logs
json.dump(out, open(os.path.join(os.environ["OUT"], "bench.json"), "w"))
PY
"$PYTHON" "$WORK/bench.py" ROUNDS
"""


def pct(samples, p):
    return samples[min(len(samples) - 1, int(len(samples) * p))]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(HERE), "target", "x86_64-unknown-linux-gnu", "release", "dmheal")
    binary = os.path.abspath(binary)
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    r = uml.run(GUEST.replace("ROUNDS", str(rounds)), binary)
    if r.rc != 0:
        sys.exit(r.output)
    data = json.loads(r.file("bench.json"))
    print("| what is timed | backend | median | p90 | min | calls |")
    print("|---|---|---|---|---|---|")
    for name in ("native", "binary"):
        s = data[name]
        print("| hook before lvchange -ay, no mapping | %s | %.3f ms | %.3f ms | %.3f ms | %d |" % (
            name, pct(s, 0.5) * 1e3, pct(s, 0.9) * 1e3, s[0] * 1e3, len(s)))
    for name in ("native", "binary"):
        s = data[name + "_core"]
        print("| the core asked directly, no mapping (what the probe saves) | %s | %.3f ms | %.3f ms | %.3f ms | %d |" % (
            name, pct(s, 0.5) * 1e3, pct(s, 0.9) * 1e3, s[0] * 1e3, len(s)))
    lv = data["lvchange"]
    print("\nFor scale: one `lvchange -ay` in the same kernel takes %.0f ms (median of %d)."
          % (pct(lv, 0.5) * 1e3, len(lv)))


if __name__ == "__main__":
    main()
