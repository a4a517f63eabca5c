"""A mapping is its LV's only if it maps its VG — on the real kernel, with a second disk that is
another VG's PV. Found by an adversary of the heal (issue 13's safety rules):

* another volume group's live LV, renamed under an inactive SR LV's DM name, carries an LVM uuid
  no LV of the SR VG has: it was taken for a stale uuid and removed. Now the uuid's VG part and
  the table's devices must both be the SR VG's, or it is suspicious — with either LVM reader;
* a uuid-less mapping at an SR LV's name onto another VG's PV, or mapping no device at all;
* `restore` of a removal entry that has no outcome (nothing proves it removed anything), and of
  a forged entry that would give back a sibling LV's identity over this LV's extents.
"""

import json

import uml

SIB = "11111111-2222-4333-8444-555555555555"

SCRIPT = r"""
make_sr_vg
add_lv "$VG" "VHD-%(sib)s"
lvchange -q -an "$VG/$LV"
pvcreate -q -y /dev/ubdb >/dev/null
vgcreate -q -s 4m dom0vg /dev/ubdb >/dev/null
lvcreate -q -y -n data -L 8m dom0vg >/dev/null
N2=$(dm_name_of dom0vg data)
dmsetup info -c --noheadings -o uuid "$N2" > "$OUT/foreign.uuid"

# 1. Another VG's live, unopened LV under our LV's name.
dmsetup rename "$N2" "$DM_NAME"
for reader in metadata lvs; do
    capture "foreign_$reader" "$DMHEAL" --lvm-reader "$reader" --json heal "$DM_NAME" --apply
done
dm_state "$DM_NAME" > "$OUT/foreign.after"
dmsetup rename "$DM_NAME" "$N2"
lv_attr dom0vg data > "$OUT/foreign.attr"

# 2. No uuid, our name, a table onto dom0vg's PV; then a table that maps no device.
dmsetup create "$DM_NAME" --table "0 8192 linear /dev/ubdb 2048"
capture onto_other_pv "$DMHEAL" --json heal "$DM_NAME" --apply
dm_state "$DM_NAME" > "$OUT/onto_other_pv.after"
dmsetup remove "$DM_NAME"
dmsetup create "$DM_NAME" --table "0 8192 error"
capture no_device "$DMHEAL" --json heal "$DM_NAME" --apply
dm_state "$DM_NAME" > "$OUT/no_device.after"
dmsetup remove "$DM_NAME"

# 3. and 4. Forged journals: a removal without an outcome; a sibling's identity.
lvchange -q -ay "$VG/$LV" "$VG/VHD-%(sib)s"
T=$(dmsetup table "$DM_NAME")
SU=$(dmsetup info -c --noheadings -o uuid "$(dm_name_of "$VG" "VHD-%(sib)s")")
lvchange -q -an "$VG/$LV" "$VG/VHD-%(sib)s"
J=/run/dmheal/journal.jsonl
forge() {  # forge UUID WITH_OUTCOME
    "$SIMPY" - "$DM_NAME" "$1" "$T" "$2" > $J <<'PY'
import json, sys
name, uuid, line, outcome = sys.argv[1], sys.argv[2], sys.argv[3].split(" ", 3), sys.argv[4]
print(json.dumps({"id": 1, "time": "2026-01-01T00:00:00Z", "host": "h", "pid": 1, "event": "removal",
  "dm_name": name, "uuid": uuid, "dev": {"major": 254, "minor": 9}, "read_only": False,
  "table": [{"start": int(line[0]), "length": int(line[1]), "target": line[2], "params": line[3]}],
  "inspection": None}))
if outcome == "yes":
    print(json.dumps({"id": 2, "time": "2026-01-01T00:00:00Z", "host": "h", "pid": 1, "event": "outcome",
      "of": 1, "result": "removed", "detail": "", "removed_uuid": None}))
PY
    chmod 600 $J
}
forge "" no
capture no_outcome "$DMHEAL" --json restore 1
dm_state "$DM_NAME" > "$OUT/no_outcome.after"
forge "$SU" yes
capture sibling "$DMHEAL" --json restore 1
dm_state "$DM_NAME" > "$OUT/sibling.after"
forge "" yes
capture honest "$DMHEAL" --json restore 1
dm_state "$DM_NAME" > "$OUT/honest.after"
"""


def reasons(out):
    return {x["code"]: x for x in out["inspection"]["reasons"]}


def test_only_a_mapping_of_the_vg_is_its_lvs_ghost_and_only_its_own_identity_comes_back(
        kernel, dmheal_bin):
    r = kernel.run(SCRIPT % {"sib": SIB}, dmheal_bin, timeout=300, second_disk_mb=64)
    assert r.rc == 0, r.output

    # 1. Never removed, with either reader; LVM still sees dom0vg/data active afterwards.
    for reader in ("metadata", "lvs"):
        out = json.loads(r.file("foreign_%s.out" % reader))
        assert out["action"] == "refused", (reader, out["message"])
        assert out["inspection"]["verdict"] == "suspicious"
        codes = reasons(out)
        assert "lvm_other_lv" in codes and "another volume group" in codes["lvm_other_lv"]["message"]
        assert "lvm_table_elsewhere" in codes, (reader, sorted(codes))
        assert int(r.file("foreign_%s.rc" % reader)) == 5
    assert r.file("foreign.after").split()[1] == r.file("foreign.uuid").strip()
    assert r.file("foreign.attr").strip()[4] == "a"

    # 2. Onto another VG's PV, or onto nothing: never removed, and the reason names it.
    out = json.loads(r.file("onto_other_pv.out"))
    assert out["action"] == "refused"
    assert "a PV of VG dom0vg" in reasons(out)["lvm_table_elsewhere"]["message"]
    assert r.file("onto_other_pv.after").strip() != "absent"
    out = json.loads(r.file("no_device.out"))
    assert out["action"] == "refused" and "error line" in reasons(out)["lvm_table_elsewhere"]["message"]
    assert r.file("no_device.after").strip() != "absent"

    # 3. No outcome: nothing proves the entry removed anything.
    assert int(r.file("no_outcome.rc")) == 1
    assert "no outcome" in r.file("no_outcome.out"), r.file("no_outcome.out")
    assert r.file("no_outcome.after").strip() == "absent"
    # 4. A sibling's identity over this LV's extents is never given back.
    assert int(r.file("sibling.rc")) == 1
    assert "VHD-%s" % SIB in r.file("sibling.out"), r.file("sibling.out")
    assert r.file("sibling.after").strip() == "absent"
    # The same entry without the forged uuid restores: the checks refuse only what they should.
    assert int(r.file("honest.rc")) == 0, r.file("honest.out") + r.file("honest.err")
    assert r.file("honest.after").split()[0] == uml.DM_NAME


# Round two of the adversary: identities that are not LVM's, and copies of the PV.
COPIES = r"""
# LVM uses the SR's disk (as a host's filter and duplicate handling would): the second disk
# will hold a copy of the PV, as a clone LUN or an old disk does.
sed -i 's#"a|^/dev/ubd|"#"a|^/dev/ubda$|"#' "$WORK/lvm/lvm.conf"
make_sr_vg
add_lv "$VG" "VHD-%(sib)s"
SIBN=$(dm_name_of "$VG" "VHD-%(sib)s")
SIBU=$(dmsetup info -c --noheadings -o uuid "$SIBN")
T=$(dmsetup table "$DM_NAME"); OFF=$(echo "$T" | awk '{print $5}'); LEN=$(echo "$T" | awk '{print $2}')
lvchange -q -an "$VG/$LV"
VGU=$(vgs --noheadings -o vg_uuid "$VG" | tr -d ' -')
devnum() { printf '%%d:%%d' "$(stat -L -c '0x%%t' "$1")" "$(stat -L -c '0x%%T' "$1")"; }
heal_as() {  # heal_as CASE UUID TABLE: a mapping at the LV's name, healed with both readers
    for reader in metadata lvs; do
        if [ -n "$2" ]; then U="--uuid $2"; else U=; fi
        dmsetup create "$DM_NAME" $U --table "$3"
        capture "$1_$reader" "$DMHEAL" --lvm-reader "$reader" --json heal "$DM_NAME" --apply
        dm_state "$DM_NAME" > "$OUT/$1_$reader.after"
        dmsetup remove "$DM_NAME" 2>/dev/null
    done
}

# 1. Identities: another subsystem's uuids, a sibling's layer, and the ghost's own kinds.
heal_as crypt "CRYPT-LUKS2-0123456789abcdef0123456789abcdef-x" "$T"
heal_as mpath "mpath-3600a098038303053453f463045727a41" "$T"
heal_as kpartx "part1-mpath-3600a098038303053453f463045727a41" "$T"
heal_as layer "$SIBU-real" "$T"
STALE="LVM-${VGU}0123456789abcdefghijABCDEFGHIJkl"
dmsetup create "$DM_NAME" --uuid "$STALE" --table "$T"
capture stale "$DMHEAL" --json heal "$DM_NAME" --apply
dm_state "$DM_NAME" > "$OUT/stale.after"
capture stale_restore "$DMHEAL" --json restore 1
dm_state "$DM_NAME" > "$OUT/stale_restore.after"
dmsetup remove "$DM_NAME"

# 2. Copies of the PV: a loop device over a file copy, a dm device stacked on the PV, and a
#    sibling LV whose content a guest made a copy of the PV's header.
insmod /usr/lib/uml/modules/$(uname -r)/kernel/drivers/block/loop.ko 2>/dev/null
dd if=/dev/ubda of=/run/pvcopy.img bs=1M count=32 status=none
LOOP=$(losetup -f --show /run/pvcopy.img)
SZ=$(blockdev --getsz /dev/ubda)
dmsetup create pvstack --table "0 $SZ linear /dev/ubda 0"; dmsetup mknodes pvstack
dd if=/dev/ubda of="/dev/mapper/$SIBN" bs=1M count=1 status=none conv=fsync
heal_as loop "" "0 $LEN linear $(devnum "$LOOP") $OFF"
heal_as stacked "" "0 $LEN linear $(devnum /dev/mapper/pvstack) $OFF"
heal_as sibling_content "" "0 8192 linear $(devnum "/dev/mapper/$SIBN") 0"

# 3. A live LV's identity over a copy taken before that LV existed: the copy's metadata does
#    not know the LV, so only refusing the copy as a PV keeps its identity from looking stale.
C=VHD-33333333-2222-4333-8444-555555555555
add_lv "$VG" "$C"
CU=$(dmsetup info -c --noheadings -o uuid "$(dm_name_of "$VG" "$C")")
lvchange -q -an "$VG/$C"
heal_as stale_copy "$CU" "0 $LEN linear $(devnum "$LOOP") $OFF"
# The same on a whole disk holding the old copy (a clone LUN): a disk is the kind of device a
# PV is on, so only LVM, asked because the copy's metadata calls a live identity nobody's, can
# tell the copy from the PV.
dd if=/run/pvcopy.img of=/dev/ubdb bs=1M status=none conv=fsync
heal_as disk_copy "$CU" "0 $LEN linear 98:16 $OFF"

# 4. restore of an entry whose table maps the copy, with the LV's own identity.
lvchange -q -ay "$VG/$LV"; OWN=$(dmsetup info -c --noheadings -o uuid "$DM_NAME"); lvchange -q -an "$VG/$LV"
J=/run/dmheal/journal.jsonl
"$SIMPY" - "$DM_NAME" "$OWN" "0 $LEN linear $(devnum "$LOOP") $OFF" > $J <<'PY'
import json, sys
name, uuid, line = sys.argv[1], sys.argv[2], sys.argv[3].split(" ", 3)
print(json.dumps({"id": 1, "time": "2026-01-01T00:00:00Z", "host": "h", "pid": 1, "event": "removal",
  "dm_name": name, "uuid": uuid, "dev": {"major": 254, "minor": 9}, "read_only": False,
  "table": [{"start": int(line[0]), "length": int(line[1]), "target": line[2], "params": line[3]}],
  "inspection": None}))
print(json.dumps({"id": 2, "time": "2026-01-01T00:00:00Z", "host": "h", "pid": 1, "event": "outcome",
  "of": 1, "result": "removed", "detail": "", "removed_uuid": None}))
PY
chmod 600 $J
capture onto_copy "$DMHEAL" --json restore 1
dm_state "$DM_NAME" > "$OUT/onto_copy.after"
lv_attr "$VG" "$LV" > "$OUT/onto_copy.attr"
# ... and onto the disk copy, which carries the PV's label as the SR's disk does.
"$SIMPY" - $J "$OFF" <<'PY'
import json, sys
path, off = sys.argv[1], sys.argv[2]
lines = [json.loads(l) for l in open(path)]
lines[0]["table"][0]["params"] = "98:16 " + off
open(path, "w").write("".join(json.dumps(l) + "\n" for l in lines[:2]))
PY
capture onto_disk_copy "$DMHEAL" --json restore 1
dm_state "$DM_NAME" > "$OUT/onto_disk_copy.after"
"""


def test_only_no_identity_or_an_lvm_one_of_the_vg_on_the_vgs_own_disk_is_a_ghost(kernel, dmheal_bin):
    r = kernel.run(COPIES % {"sib": SIB}, dmheal_bin, timeout=400, second_disk_mb=64)
    assert r.rc == 0, r.output

    def refused(case, code):
        for reader in ("metadata", "lvs"):
            out = json.loads(r.file("%s_%s.out" % (case, reader)))
            assert out["action"] == "refused", (case, reader, out["message"])
            assert code in reasons(out), (case, reader, sorted(reasons(out)))
            assert r.file("%s_%s.after" % (case, reader)).strip() != "absent", (case, reader)

    # 1. Another subsystem's identity is never an LV's ghost; a sibling's layer is the sibling's.
    for case in ("crypt", "mpath", "kpartx"):
        refused(case, "lvm_foreign_uuid")
    refused("layer", "lvm_other_lv")
    # A removed LV's uuid of this VG is the ghost's own kind: removed, and given back exactly.
    out = json.loads(r.file("stale.out"))
    assert out["action"] == "removed", out["message"]
    assert r.file("stale.after").strip() == "absent"
    assert int(r.file("stale_restore.rc")) == 0, r.file("stale_restore.out") + r.file("stale_restore.err")
    assert r.file("stale_restore.after").split()[1].endswith("0123456789abcdefghijABCDEFGHIJkl")

    # 2. and 3. A copy of the PV is not the PV, whatever its label says.
    for case in ("loop", "stacked", "sibling_content", "stale_copy", "disk_copy"):
        refused(case, "lvm_table_elsewhere")
    refused("stale_copy", "lvm_other_lv")
    refused("disk_copy", "lvm_other_lv")

    # 4. Nothing is given back onto a copy: LVM's LV stays inactive, its data on the SR's PV.
    assert int(r.file("onto_copy.rc")) == 1, r.file("onto_copy.out")
    assert r.file("onto_copy.after").strip() == "absent"
    assert r.file("onto_copy.attr").strip()[4] != "a"
    assert int(r.file("onto_disk_copy.rc")) == 1, r.file("onto_disk_copy.out")
    assert "LVM does not use as a PV" in r.file("onto_disk_copy.err") + r.file("onto_disk_copy.out")
    assert r.file("onto_disk_copy.after").strip() == "absent"
