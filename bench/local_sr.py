"""Benchmark (issue 21): the SM hook healing a ghost under an EXT local SR's LV during PBD.plug
(EXTSR.attach: `lvchange -ay` through util.pread2, fsck, mount), in the user-mode kernel, with
the SM stand-in written from SM's EXTSR (8.3's flat layout on the native module, 4.1.1+'s
package on the binary).

Each round: EXTSR.attach of a clean SR (no ghost) and of one with the seed ghost under its LV
(the hook heals it, then LVM activates it), both timed whole, then detached; and the hook's own
step (sm_hook.before_activation on the SR's LV with the ghost) timed alone.

usage: python3 bench/local_sr.py [--rounds R] [--bin DMHEAL]
Prints the Markdown that BENCHMARKS.md carries."""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "kernel"))
import uml  # noqa: E402

EXT_VG = "XSLocalEXT-" + uml.SR

GUEST = r"""
export DMHEAL_BIN="$DMHEAL" DMHEAL_CONF="$WORK/dmheal.conf" SM_STANDIN_MOUNT_BASE=/run/sr-mount
export ACTIVATE_TIMED=1
"$SIMPY" "$HELPERS/syslog_sink.py" /dev/log "$OUT/syslog.txt" &
for i in $(seq 50); do grep -q ready "$OUT/syslog.txt" 2>/dev/null && break; sleep 0.1; done
echo "mode = heal" > "$DMHEAL_CONF"
pvcreate -q -y /dev/ubda >/dev/null
vgcreate -q -s 4m "%(vg)s" /dev/ubda >/dev/null
lvcreate -q -y -n "$SR" -L 64m "%(vg)s" >/dev/null
mkfs.ext4 -q "/dev/%(vg)s/$SR"
lvchange -q -an "%(vg)s/$SR"
export VG=%(vg)s LV="$SR"
site="$WORK/site"; mkdir -p "$site"
DMHEAL_PYTHON="$PYTHON" "$DMHEAL" hook install --site-dir "$site" > /dev/null
for layout_backend in legacy:native upstream:binary; do
    layout=${layout_backend%%:*} backend=${layout_backend#*:}
    for i in $(seq %(rounds)d); do
        DMHEAL_BACKEND=$backend "$PYTHON" "$HELPERS/activate.py" $layout "$site" extsr >> "$OUT/clean-$backend.jsonl"
        umount "/run/sr-mount/$SR"; lvchange -q -an "%(vg)s/$SR"
        lvchange -q -ay "%(vg)s/$SR"; make_ghost "%(vg)s" "$SR"
        DMHEAL_BACKEND=$backend "$PYTHON" "$HELPERS/activate.py" $layout "$site" extsr >> "$OUT/ghost-$backend.jsonl"
        dm_state "$(dm_name_of "%(vg)s" "$SR")" >> "$OUT/after-$backend.txt"
        umount "/run/sr-mount/$SR"; lvchange -q -an "%(vg)s/$SR"
        lvchange -q -ay "%(vg)s/$SR"; make_ghost "%(vg)s" "$SR"
        DMHEAL_BACKEND=$backend "$PYTHON" -c '
import os, time
from dmheal import sm_hook
sm_hook.smlog = lambda m: None
t = time.perf_counter()
sm_hook.before_activation("/dev/%(vg)s/" + os.environ["SR"])
print(time.perf_counter() - t)' >> "$OUT/step-$backend.txt"
        [ "$(dm_state "$(dm_name_of "%(vg)s" "$SR")")" = absent ] || echo "NOT HEALED" >> "$OUT/step-$backend.txt"
    done
done
"""


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--bin", default=os.path.join(ROOT, "target", "x86_64-unknown-linux-gnu", "release", "dmheal"))
    a = p.parse_args()
    r = uml.run(GUEST % {"vg": EXT_VG, "rounds": a.rounds}, os.path.abspath(a.bin), timeout=1800,
                env={"STANDIN": os.path.join(ROOT, "tests", "sm_standin")})
    if r.rc != 0:
        raise SystemExit("failed:\n%s" % r.output[-3000:])
    print("| SM layout, backend | EXTSR.attach, clean | EXTSR.attach, ghost healed by the hook | the difference | the hook's step alone (ghost healed) |")
    print("|---|---|---|---|---|")
    for layout, backend in (("8.3 flat", "native"), ("4.1.1+ package", "binary")):
        clean = [json.loads(l) for l in r.file("clean-%s.jsonl" % backend).splitlines()]
        ghost = [json.loads(l) for l in r.file("ghost-%s.jsonl" % backend).splitlines()]
        assert all(o["ok"] and o["mounted"] for o in clean + ghost), (clean, ghost)
        assert all(l.split()[1].startswith("LVM-") for l in r.file("after-%s.txt" % backend).splitlines())
        step_lines = r.file("step-%s.txt" % backend).split()
        assert "NOT" not in step_lines, step_lines
        step = [float(x) for x in step_lines]
        c, g = median([o["elapsed"] for o in clean]), median([o["elapsed"] for o in ghost])
        print("| %s, %s | %.0f ms | %.0f ms | %.0f ms | %.1f ms |" % (
            layout, backend, c * 1e3, g * 1e3, (g - c) * 1e3, median(step) * 1e3))
    print("\n%d rounds each, medians; `elapsed` is activate.py's wall time of EXTSR.attach." % a.rounds)


if __name__ == "__main__":
    main()
