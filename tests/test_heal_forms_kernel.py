"""Every form of the ghost, healed as it should be (issue 21), on the real kernel, one boot:

* a stale-uuid ghost (a removed LV's LVM uuid) decided from the VG's own PVs, with no LVM
  tool installed at all — no `lvs`, no `pvs` on the hot path;
* two `heal --apply` of one ghost at once on a host without Fairlock: one removal, one
  journal entry; the other heal says the ghost was already removed, naming that entry, and
  exits 0 — round after round;
* the same VDI uuid in two SRs (a copied LUN), held open in one and a ghost in the other:
  `heal <vdi uuid>` acts on neither and names each with its verdict and exact target; the
  exact target heals the ghost.
"""

import json

import uml

COPY_SR = "7b000000-0000-4000-8000-0000000000b7"
COPY_VG = "VG_XenStorage-" + COPY_SR
COPY_DM = COPY_VG.replace("-", "--") + "-" + uml.LV.replace("-", "--")
ROUNDS = 4

SCRIPT = r"""
make_sr_vg
add_lv "$VG" "VHD-11111111-2222-4333-8444-555555555555"
T=$(dmsetup table "$DM_NAME")
VGU=$(vgs --noheadings -o vg_uuid "$VG" | tr -d ' -')
lvchange -q -an "$VG/$LV"

# 1. A removed LV's uuid on a mapping at the LV's name, healed with no LVM tool on PATH.
dmsetup create "$DM_NAME" --uuid "LVM-${VGU}RemovedLvRemovedLvRemovedLv0001" --table "$T"
PATH="$NO_LVM_PATH" capture stale "$DMHEAL" --xapi none --json heal "$DM_NAME" --apply
dm_state "$DM_NAME" > "$OUT/stale.after"

# 2. Two heals of one ghost at once, no Fairlock on this host; a slow tap-ctl keeps the first
#    inside its decision while the second has passed the kernel's first word.
mkdir -p "$WORK/slow"
printf '#!/bin/sh\nsleep 1\n' > "$WORK/slow/tap-ctl"; chmod +x "$WORK/slow/tap-ctl"
for round in $(seq %(rounds)d); do
    dmsetup create "$DM_NAME" --table "$T"
    PATH="$WORK/slow:$PATH" "$DMHEAL" --xapi none --json heal "$DM_NAME" --apply > "$OUT/race$round.a" 2>&1 &
    a=$!
    PATH="$WORK/slow:$PATH" "$DMHEAL" --xapi none --json heal "$DM_NAME" --apply > "$OUT/race$round.b" 2>&1 &
    b=$!
    wait $a; echo $? > "$OUT/race$round.a.rc"
    wait $b; echo $? > "$OUT/race$round.b.rc"
    dm_state "$DM_NAME" > "$OUT/race$round.after"
done
cp /run/dmheal/journal.jsonl "$OUT/race.journal"

# 3. The same VDI in two SRs: a copied LUN's VG holds an LV of the same name.
pvcreate -q -y /dev/ubdb >/dev/null
vgcreate -q -s 4m "%(copy_vg)s" /dev/ubdb >/dev/null
lvcreate -q -y -n "$LV" -L 8m "%(copy_vg)s" >/dev/null
make_ghost "%(copy_vg)s" "$LV"
lvchange -q -ay "$VG/$LV"
sleep 600 < "/dev/mapper/$DM_NAME" &
holder=$!
sleep 0.2
capture ambiguous "$DMHEAL" --xapi none --json heal "$VDI" --apply
dm_state "%(copy_dm)s" > "$OUT/ambiguous.copy"
dm_state "$DM_NAME" > "$OUT/ambiguous.held"
capture exact "$DMHEAL" --xapi none --json heal "dm:%(copy_dm)s" --apply
dm_state "%(copy_dm)s" > "$OUT/exact.after"
kill $holder
"""


def test_the_ghosts_forms_are_each_healed_as_they_should_be(kernel, dmheal_bin):
    r = kernel.run(SCRIPT % {"rounds": ROUNDS, "copy_vg": COPY_VG, "copy_dm": COPY_DM},
                   dmheal_bin, timeout=400, second_disk_mb=64)
    assert r.rc == 0, r.output
    stale = json.loads(r.file("stale.out"))
    assert stale["action"] == "removed", stale["message"]
    assert r.file("stale.after").strip() == "absent"
    assert any(x["code"] == "lvm_inactive" for x in stale["inspection"]["reasons"])

    journal = [json.loads(l) for l in r.file("race.journal").splitlines()]
    removals = [e for e in journal if e["event"] == "removal"]
    # The stale-uuid heal, then one removal per round: never two for one ghost.
    assert len(removals) == 1 + ROUNDS, [(e["id"], e["event"]) for e in journal]
    for n in range(1, ROUNDS + 1):
        outs = [json.loads(r.file("race%d.%s" % (n, w))) for w in "ab"]
        rcs = [int(r.file("race%d.%s.rc" % (n, w))) for w in "ab"]
        assert rcs == [0, 0], (n, rcs, outs)
        actions = sorted(o["action"] for o in outs)
        assert actions == ["nothing-to-do", "removed"], (n, outs)
        loser = [o for o in outs if o["action"] == "nothing-to-do"][0]
        winner = [o for o in outs if o["action"] == "removed"][0]
        assert "already removed by journal entry %s" % winner["journal_id"] in loser["message"], (loser, winner)
        assert r.file("race%d.after" % n).strip() == "absent"

    ambiguous = json.loads(r.file("ambiguous.out"))
    assert int(r.file("ambiguous.rc")) == 2, ambiguous
    message = ambiguous["error"]["message"]
    assert "names more than one volume" in message
    assert "dm:%s" % COPY_DM in message and "dm:%s" % uml.DM_NAME in message, message
    assert "ghost:" in message and "healthy:" in message, message
    assert r.file("ambiguous.copy").strip() != "absent" and r.file("ambiguous.held").strip() != "absent"
    exact = json.loads(r.file("exact.out"))
    assert exact["action"] == "removed", exact["message"]
    assert r.file("exact.after").strip() == "absent"
