"""A journal that survives faults and is trusted only when it can be (issue 13), on the real
kernel: a full disk during a heal leaves no torn line and the host usable; `restore` refuses
forged and stale entries — a foreign name, a table over the whole PV, extents that another LV
has today, a device that is not the VG's PV any more, an entry that removed nothing."""

import json

import uml

FULL = r"""
make_sr_vg
make_ghost
# The journal on a tiny filesystem, nearly full: the removal entry (the whole inspection,
# a few KiB) cannot be written.
mkdir -p /run/tiny
mount -t tmpfs -o size=16k tmpfs /run/tiny
chmod 700 /run/tiny
export DMHEAL_JOURNAL=/run/tiny/journal.jsonl
"$DMHEAL" --json journal > /dev/null
dd if=/dev/zero of=/run/tiny/filler bs=1k count=64 2>/dev/null
ls -l /run/tiny/journal.jsonl | awk '{print $5}' > "$OUT/size.before" 2>/dev/null || echo 0 > "$OUT/size.before"
capture full "$DMHEAL" --json heal "$DM_NAME" --apply
stat -c %s /run/tiny/journal.jsonl > "$OUT/size.after" 2>/dev/null || echo missing > "$OUT/size.after"
dm_state "$DM_NAME" > "$OUT/state.full"
rm /run/tiny/filler
capture again "$DMHEAL" --json heal "$DM_NAME" --apply
capture journal "$DMHEAL" --json journal
"""


def test_a_full_disk_during_a_heal_leaves_no_torn_line_and_the_host_usable(kernel, dmheal_bin):
    r = kernel.run(FULL, dmheal_bin)
    assert r.rc == 0, r.output
    assert r.file("full.rc").strip() == "1", r.file("full.out")
    err = json.loads(r.file("full.out"))["error"]
    assert err["kind"] == "journal" and "No space left" in err["message"], err
    # Nothing was removed (the entry comes first), nothing half-written stays behind.
    assert r.file("state.full").strip() != "absent"
    assert r.file("size.after").strip() in ("0", r.file("size.before").strip())
    again = json.loads(r.file("again.out"))
    assert again["action"] == "removed", again
    entries = json.loads(r.file("journal.out"))
    assert [e["event"] for e in entries] == ["removal", "outcome"]


FORGED = r"""
make_sr_vg
add_lv "$VG" VHD-other
lvchange -q -an "$VG/VHD-other"
make_ghost
capture heal "$DMHEAL" --json heal "$DM_NAME" --apply
J=/run/dmheal/journal.jsonl
good=$(head -n 1 $J)
# A device that is not a PV (a mapping over part of the disk, no LVM label at its start).
dmsetup create notapv --table "0 8192 linear /dev/ubda 8192"
export NOTAPV=$(dmsetup info -c --noheadings --separator : -o major,minor notapv)
# Forgeries of the good removal entry, each appended as a new entry (ids 10..).
"$SIMPY" - "$good" >> $J <<'PY'
import json, sys
good = json.loads(sys.argv[1])
def entry(i, outcome="removed", **change):
    e = dict(good, id=i)
    e.update(change)
    print(json.dumps(e))
    if outcome:  # each forgery claims it removed something, as a real removal's outcome does
        print(json.dumps({"id": i + 100, "time": good["time"], "host": "h", "pid": 1,
                          "event": "outcome", "of": i, "result": outcome, "detail": "x"}))
pv = good["table"][0]["params"].split()[0]
entry(10, dm_name="vg_data-lv_home")                                       # a foreign VG
entry(11, table=[{"start": 0, "length": 500000, "target": "linear", "params": pv + " 0"}])  # the PV
import os
entry(12, table=good["table"] + [{"start": 16384, "length": 8, "target": "linear",
                                  "params": os.environ["NOTAPV"] + " 0"}])  # not a PV
entry(13, outcome="refused", uuid="")                                      # removed nothing
entry(15, outcome=None)                                                    # no outcome at all
PY
for id in 10 11 12 13 15; do capture restore_$id "$DMHEAL" --json restore $id; done
dm_state "$DM_NAME" > "$OUT/state.forged"
# The LV's extents go to another LV: the entry is stale.
lvremove -q -y "$VG/$LV" > /dev/null
lvcreate -q -y -n VHD-taker -L 8m "$VG" > /dev/null
lvchange -q -an "$VG/VHD-taker"
capture restore_stale "$DMHEAL" --json restore 1
dm_state "$DM_NAME" > "$OUT/state.stale"
"""


def test_restore_recreates_only_what_lvm_gives_the_lv_today(kernel, dmheal_bin):
    r = kernel.run(FORGED, dmheal_bin)
    assert r.rc == 0, r.output
    assert json.loads(r.file("heal.out"))["action"] == "removed"
    reasons = {
        "restore_10": "not the DM name of a VDI's LV",
        "restore_11": "does not give",
        "restore_12": "not a PV",
        "restore_13": "changed nothing",
        "restore_15": "no outcome",
        "restore_stale": "no LV",
    }
    for case, why in reasons.items():
        out = json.loads(r.file(case + ".out"))
        assert "error" in out, (case, out)
        assert out["error"]["kind"] == "refused" and why in out["error"]["message"], (case, out)
    assert r.file("state.forged").strip() == "absent"
    assert r.file("state.stale").strip() == "absent"
