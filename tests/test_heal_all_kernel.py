"""`dmheal heal --all` on the real kernel (issue 25): every ghost a scan proves, each decided
again under SM's lock and removed by its uuid as a single heal is, on an SR with ghosts, held
mappings and LVM's own; an adversary holding SM's Fairlock changes four of the ghosts after
the batch has scanned and before their turn (one opened, one removed, one activated by LVM, one
whose LV is removed and created again — LVM's own mapping under the name, with a uuid the
batch's read of LVM never saw), so each must be judged on what it is at its turn. Progress is shown on a terminal, never when
stderr is a file, never with --quiet."""

import json
import re

import uml

VG = uml.VG


def lv(n):
    return "VHD-%08d-1111-4111-8111-%012d" % (n, n)


def dm(lv_name):
    return VG.replace("-", "--") + "-" + lv_name.replace("-", "--")


# G1 is the seed ghost ($LV); G2-G4 are ghosts the adversary changes mid-batch; G5 is held open
# by a process and G6 by a mapping stacked on it; L7 and MGT are LVM's own active LVs; G8-G10
# are ghosts made later for the runs that check progress; G11's LV is re-created mid-batch.
G1 = uml.LV
G2, G3, G4, G5, G6, L7, G8, G9, G10, G11 = (lv(n) for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11))
FAIRLOCK = "/run/fairlock/devicemapper"

SCRIPT = r"""
make_sr_vg
for l in %(G2)s %(G3)s %(G4)s %(G5)s %(G6)s %(L7)s %(G11)s MGT; do add_lv "$VG" $l; done
for l in %(G2)s %(G3)s %(G4)s %(G5)s %(G6)s %(G11)s; do make_ghost "$VG" $l; done
make_ghost
sleep 600 < /dev/mapper/%(dm5)s &
dmsetup create dmheal-test-over --table "0 16384 linear /dev/mapper/%(dm6)s 0"
"$PYTHON" "$HELPERS/fairlock_server.py" %(fairlock)s "$OUT/fairlock.log" &
for i in $(seq 50); do grep -q ready "$OUT/fairlock.log" 2>/dev/null && break; sleep 0.1; done

capture dry "$DMHEAL" --json heal --all
capture dry_text "$DMHEAL" heal --all
dmsetup info -c --noheadings -o name | sort > "$OUT/names.after_dry"

# Run A: stderr on a terminal. The adversary takes SM's lock first, waits for the batch to have
# scanned and read the shared layers, changes G2-G4, and keeps the lock 3 s in all.
"$PYTHON" "$HELPERS/hold_sm_lock.py" %(fairlock)s --hold 3 \
    --when "$OUT/a.tty" "batch: shared layers read" \
    --then 'sleep 600 < /dev/mapper/%(dm2)s & dmsetup remove %(dm3)s && dmsetup remove %(dm4)s && lvchange -q -ay "$VG/%(G4)s" && dmsetup remove %(dm11)s && lvremove -q -f "$VG/%(G11)s" && lvcreate -q -y -n %(G11)s -L 8m "$VG" >/dev/null' \
    --log "$OUT/adversary.log" &
for i in $(seq 100); do grep -q held "$OUT/adversary.log" 2>/dev/null && break; sleep 0.05; done
"$PYTHON" "$HELPERS/on_a_terminal.py" "$OUT/a.tty" "$DMHEAL" -vv --json heal --all --apply > "$OUT/a.out"
echo $? > "$OUT/a.rc"
for l in %(G1)s %(G2)s %(G3)s %(G4)s %(G5)s %(G6)s %(L7)s %(G11)s MGT; do
    echo "$l $(dm_state $(dm_name_of "$VG" $l))"
done > "$OUT/states.after_a"
dm_state dmheal-test-over > "$OUT/over.after_a"
capture journal "$DMHEAL" --json journal

# Run B: the same kind of batch with stderr a file (SMlog, a script): no progress.
for l in %(G8)s %(G9)s; do add_lv "$VG" $l; make_ghost "$VG" $l; done
"$PYTHON" "$HELPERS/hold_sm_lock.py" %(fairlock)s --hold 3 --log "$OUT/holder_b.log" &
for i in $(seq 100); do grep -q held "$OUT/holder_b.log" 2>/dev/null && break; sleep 0.05; done
start=$(date +%%s.%%N)
"$DMHEAL" heal --all --apply > "$OUT/b.out" 2> "$OUT/b.err"
echo $? > "$OUT/b.rc"
echo "$start $(date +%%s.%%N)" > "$OUT/b.seconds"

# Run C: on a terminal, but --quiet.
add_lv "$VG" %(G10)s; make_ghost "$VG" %(G10)s
"$PYTHON" "$HELPERS/hold_sm_lock.py" %(fairlock)s --hold 3 --log "$OUT/holder_c.log" &
for i in $(seq 100); do grep -q held "$OUT/holder_c.log" 2>/dev/null && break; sleep 0.05; done
start=$(date +%%s.%%N)
"$PYTHON" "$HELPERS/on_a_terminal.py" "$OUT/c.tty" "$DMHEAL" --quiet heal --all --apply > "$OUT/c.out"
echo $? > "$OUT/c.rc"
echo "$start $(date +%%s.%%N)" > "$OUT/c.seconds"
for l in %(G8)s %(G9)s %(G10)s; do echo "$l $(dm_state $(dm_name_of "$VG" $l))"; done > "$OUT/states.after_bc"
"""


def run(kernel, dmheal_bin):
    names = dict(G1=G1, G2=G2, G3=G3, G4=G4, G5=G5, G6=G6, L7=L7, G8=G8, G9=G9, G10=G10, G11=G11,
                 dm11=dm(G11), dm2=dm(G2), dm3=dm(G3), dm4=dm(G4), dm5=dm(G5), dm6=dm(G6), fairlock=FAIRLOCK)
    r = kernel.run(SCRIPT % names, dmheal_bin, timeout=300)
    assert r.rc == 0, r.output
    return r


def seconds(r, run_name):
    start, end = (float(x) for x in r.file(run_name + ".seconds").split())
    return end - start


def states(text):
    out = {}
    for line in text.splitlines():
        lv_name, rest = line.split(" ", 1)
        out[lv_name] = rest.split()
    return out


def test_a_batch_heals_each_ghost_judged_at_its_turn_and_nothing_in_use(kernel, dmheal_bin):
    r = run(kernel, dmheal_bin)

    # The dry run names the five ghosts the scan proves, and nothing else; it changes nothing.
    dry = json.loads(r.file("dry.out"))
    assert int(r.file("dry.rc")) == 3
    assert dry["apply"] is False
    assert sorted(x["dm_name"] for x in dry["results"]) == sorted(dm(l) for l in (G1, G2, G3, G4, G11))
    assert {x["action"] for x in dry["results"]} == {"would-remove"}
    assert dry["counts"]["ghosts"] == 5 and dry["counts"]["would_remove"] == 5
    assert dry["counts"]["mappings"] >= 8
    assert dm(G1) in r.file("names.after_dry")
    text = r.file("dry_text.out")
    assert "would-remove" in text and "run again with --apply" in text
    assert "5 ghosts" in text

    # The adversary held SM's lock through the batch's scan and changed G2-G4 and G11 before
    # their turn.
    log = r.file("adversary.log")
    assert "saw 'batch: shared layers read'" in log and "changed (rc 0)" in log, log

    a = json.loads(r.file("a.out"))
    assert int(r.file("a.rc")) == 0, r.file("a.tty")[-3000:]
    assert a["lock"] == "Fairlock " + FAIRLOCK
    by = {x["dm_name"]: x for x in a["results"]}
    assert set(by) == {dm(l) for l in (G1, G2, G3, G4, G11)}
    assert by[dm(G1)]["action"] == "removed" and by[dm(G1)]["journal_id"]
    assert by[dm(G2)]["action"] == "refused" and "in use" in by[dm(G2)]["message"], by[dm(G2)]
    assert by[dm(G3)]["action"] == "already-gone", by[dm(G3)]
    # G4 and G11 are LVM's own mappings now, G11's with a uuid the batch's read of LVM never saw:
    # a device other than the one proven, left alone.
    for g in (G11, G4):
        assert by[dm(g)]["action"] == "refused" and "changed since the scan" in by[dm(g)]["message"], by[dm(g)]
    for x in a["results"]:
        assert x["sr_uuid"] == uml.SR and x["vdi_uuid"] == x["dm_name"].split("VHD--")[1].replace("--", "-")
    c = a["counts"]
    assert (c["ghosts"], c["removed"], c["refused"], c["already_gone"], c["failed"]) == (5, 1, 3, 1, 0)

    # The kernel agrees: only G1 went; what is in use or LVM's own is still there.
    s = states(r.file("states.after_a"))
    assert s[G1] == ["absent"]
    assert s[G2] != ["absent"] and s[G2][-2] != "0", s[G2]  # open by the adversary's reader
    assert s[G3] == ["absent"]
    assert s[G4][1].startswith("LVM-"), s[G4]  # LVM's own mapping now, with its uuid
    assert s[G11][1].startswith("LVM-"), s[G11]  # the re-created LV's, still active
    assert s[G5] != ["absent"] and s[G6] != ["absent"]
    assert s[L7][1].startswith("LVM-") and s["MGT"][1].startswith("LVM-")
    assert r.file("over.after_a").split()[0] == "dmheal-test-over"

    # One removal journalled, with its outcome; the refusals changed nothing to journal.
    entries = json.loads(r.file("journal.out"))
    assert [(e["event"], e.get("dm_name")) for e in entries] == [("removal", dm(G1)), ("outcome", None)]

    # Progress on the terminal: mapping n of 5, then the line cleared.
    tty = r.file("a.tty")
    shown = re.findall(r"mapping (\d) of 5", tty)
    assert shown, tty[-2000:]
    last = tty.rindex("mapping %s of 5" % shown[-1])
    # Cleared when the batch is done (the file is read with universal newlines: \r is \n).
    assert "\x1b[2K" in tty[last:], tty[last:]

    # B (stderr a file) and C (--quiet) took over a second, healed their ghosts, showed nothing.
    assert seconds(r, "b") > 1.5 and seconds(r, "c") > 1.5
    assert int(r.file("b.rc")) == 0 and int(r.file("c.rc")) == 0
    assert "mapping" not in r.file("b.err") and "\x1b" not in r.file("b.err")
    assert "mapping" not in r.file("c.tty") and "\x1b" not in r.file("c.tty")
    assert all(v == ["absent"] for v in states(r.file("states.after_bc")).values())
    assert "2 removed" in r.file("b.out") and "1 removed" in r.file("c.out")
