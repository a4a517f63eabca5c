"""Real-kernel scenarios (issue 2, 7a-i): each boots user-mode Linux with dm-mod, builds the
situation with Debian's real lvm2 and dmsetup, runs dmheal, and asserts the KERNEL's state
afterwards (dmsetup info / lvs), not only dmheal's output."""

import json

import uml

DM = uml.DM_NAME


def load(r, name):
    text = r.file(name + ".out")
    assert text.strip(), "no output from %s; stderr: %s" % (name, r.file(name + ".err"))
    return json.loads(text)


def rc(r, name):
    return int(r.file(name + ".rc"))


def reason_codes(inspection):
    return {x["code"] for x in inspection["reasons"]}


def test_a_seed_ghost_is_healed_and_restored_exactly(kernel, dmheal_bin):
    r = kernel.run(r"""
make_sr_vg
make_ghost
dmsetup table "$DM_NAME" > "$OUT/table.before"
dm_state "$DM_NAME" > "$OUT/state.before"
capture lvchange_before lvchange -ay "$VG/$LV"
# SM's Fairlock, so the heal has to take it for real.
"$PYTHON" "$HELPERS/fairlock_server.py" /run/fairlock/devicemapper "$OUT/fairlock.log" &
for i in $(seq 50); do grep -q ready "$OUT/fairlock.log" 2>/dev/null && break; sleep 0.1; done
capture inspect_vdi "$DMHEAL" --json inspect "$VDI"
capture heal "$DMHEAL" --json heal "/dev/$VG/$LV" --apply
dm_state "$DM_NAME" > "$OUT/state.after_heal"
capture lvchange_after lvchange -ay "$VG/$LV"
lv_attr "$VG" "$LV" > "$OUT/attr.after"
lvchange -an "$VG/$LV"
capture restore "$DMHEAL" --json restore 1
dmsetup table "$DM_NAME" > "$OUT/table.restored"
dm_state "$DM_NAME" > "$OUT/state.restored"
capture journal "$DMHEAL" --json journal
sleep 0.3
""", dmheal_bin)
    assert r.rc == 0, r.output
    # Before: the seed failure, exactly.
    assert rc(r, "lvchange_before") != 0
    assert "Device or resource busy" in r.file("lvchange_before.err")
    assert r.file("state.before").split()[1] == "0"  # no uuid column -> open count is field 2
    # The VDI uuid resolves to the LV's mapping, and it is a ghost (exit 3: found, not removed).
    i = load(r, "inspect_vdi")
    assert rc(r, "inspect_vdi") == 3
    assert i["dm_name"] == DM and i["verdict"] == "ghost"
    # Healed under SM's Fairlock.
    h = load(r, "heal")
    assert rc(r, "heal") == 0
    assert h["action"] == "removed" and h["journal_id"] == 1
    assert h["lock"] == "Fairlock /run/fairlock/devicemapper"
    log = r.file("fairlock.log")
    assert "acquired" in log and "dmheal" in log
    # The kernel no longer has it, and LVM can activate the LV.
    assert r.file("state.after_heal").strip() == "absent"
    assert rc(r, "lvchange_after") == 0, r.file("lvchange_after.err")
    assert r.file("attr.after").strip()[4] == "a"
    # The journal holds the exact table; restore recreated name, (empty) uuid and table.
    entries = load(r, "journal")
    removal = entries[0]
    assert removal["event"] == "removal" and removal["dm_name"] == DM
    assert removal["uuid"] == ""
    table_before = r.file("table.before").strip()
    journalled = "\n".join(
        "%d %d %s %s" % (l["start"], l["length"], l["target"], l["params"]) for l in removal["table"])
    assert journalled == table_before
    assert removal["inspection"]["verdict"] == "ghost"
    # The restore is journalled before the kernel is touched, and its outcome after.
    assert [e["event"] for e in entries] == ["removal", "outcome", "restore", "restore"]
    assert entries[1]["result"] == "removed"
    assert [entries[2]["result"], entries[3]["result"]] == ["restoring", "restored"]
    assert rc(r, "restore") == 0
    assert r.file("table.restored").strip() == table_before
    assert r.file("state.restored").split()[0] == DM


def assert_untouched(r, before="state.before", after="state.after"):
    assert r.file(before).strip() != "absent"
    assert r.file(after) == r.file(before), "the mapping changed"


def test_b_mapping_held_open_is_refused_and_the_pid_named(kernel, dmheal_bin):
    r = kernel.run(r"""
make_sr_vg
make_ghost
sleep 600 < "/dev/mapper/$DM_NAME" &
echo $! > "$OUT/pid"
sleep 0.2
dm_state "$DM_NAME" > "$OUT/state.before"
capture heal "$DMHEAL" --json heal "$DM_NAME" --apply
dm_state "$DM_NAME" > "$OUT/state.after"
""", dmheal_bin)
    assert r.rc == 0, r.output
    h = load(r, "heal")
    assert rc(r, "heal") == 4
    assert h["action"] == "refused" and h["inspection"]["verdict"] == "in-use"
    pid = int(r.file("pid"))
    assert pid in [o["pid"] for o in h["inspection"]["facts"]["openers"]]
    assert any("pid %d" % pid in x["message"] for x in h["inspection"]["reasons"])
    assert_untouched(r)
    assert not r.has("journal.jsonl")


def test_c_mapping_with_a_stacked_holder_is_refused(kernel, dmheal_bin):
    r = kernel.run(r"""
make_sr_vg
make_ghost
dmsetup create dmheal-test-stack --table "0 16384 linear /dev/mapper/$DM_NAME 0"
dm_state "$DM_NAME" > "$OUT/state.before"
capture heal "$DMHEAL" --json heal "$DM_NAME" --apply
dm_state "$DM_NAME" > "$OUT/state.after"
dm_state dmheal-test-stack > "$OUT/stack.after"
""", dmheal_bin)
    assert r.rc == 0, r.output
    h = load(r, "heal")
    assert rc(r, "heal") == 4 and h["action"] == "refused"
    assert {"holders_stacked", "dm_open"} <= reason_codes(h["inspection"])
    assert [x["depth"] for x in h["inspection"]["facts"]["holders"]] == [1]
    assert_untouched(r)
    assert r.file("stack.after").split()[0] == "dmheal-test-stack"


def test_d_paused_tapdisk_naming_the_lv_is_refused(kernel, dmheal_bin):
    r = kernel.run(r"""
make_sr_vg
make_ghost
echo "pid=4242 minor=3 state=0x20 args=vhd:/dev/$VG/$LV" > "$WORK/taps"
export TAPCTL_LIST_FILE="$WORK/taps" PATH="$HELPERS/../doubles:$PATH"
dm_state "$DM_NAME" > "$OUT/state.before"
capture heal "$DMHEAL" --json heal "/dev/$VG/$LV" --apply
dm_state "$DM_NAME" > "$OUT/state.after"
""", dmheal_bin)
    assert r.rc == 0, r.output
    h = load(r, "heal")
    assert rc(r, "heal") == 4 and h["action"] == "refused"
    assert "tapdisk_paused" in reason_codes(h["inspection"])
    # open count 0: only tapdisk's word stands between this mapping and removal.
    assert h["inspection"]["facts"]["device"]["open_count"] == 0
    assert_untouched(r)


def test_e_suspended_mapping_is_suspicious_and_untouched(kernel, dmheal_bin):
    r = kernel.run(r"""
make_sr_vg
make_ghost
dmsetup suspend "$DM_NAME"
dm_state "$DM_NAME" > "$OUT/state.before"
capture heal "$DMHEAL" --json heal "$DM_NAME" --apply
dm_state "$DM_NAME" > "$OUT/state.after"
dmsetup resume "$DM_NAME"
""", dmheal_bin)
    assert r.rc == 0, r.output
    h = load(r, "heal")
    assert rc(r, "heal") == 5
    assert h["action"] == "refused" and h["inspection"]["verdict"] == "suspicious"
    assert "dm_suspended" in reason_codes(h["inspection"])
    assert "s" in r.file("state.after").split()[-1]  # still suspended: dmheal never resumes
    assert_untouched(r)


def test_f_healthy_lvm_mapping_is_left_alone(kernel, dmheal_bin):
    r = kernel.run(r"""
make_sr_vg
dm_state "$DM_NAME" > "$OUT/state.before"
capture inspect "$DMHEAL" --json inspect "/dev/$VG/$LV"
capture heal "$DMHEAL" --json heal "/dev/$VG/$LV" --apply
dm_state "$DM_NAME" > "$OUT/state.after"
""", dmheal_bin)
    assert r.rc == 0, r.output
    i = load(r, "inspect")
    assert rc(r, "inspect") == 0 and i["verdict"] == "healthy"
    assert i["facts"]["device"]["uuid"].startswith("LVM-")
    h = load(r, "heal")
    assert rc(r, "heal") == 0 and h["action"] == "nothing-to-do"
    assert_untouched(r)


def test_g_mapping_of_a_foreign_vg_is_never_touched(kernel, dmheal_bin):
    r = kernel.run(r"""
make_sr_vg vg_data lv_home
make_ghost vg_data lv_home
name=$(dm_name_of vg_data lv_home)
dm_state "$name" > "$OUT/state.before"
capture heal "$DMHEAL" --json heal "$name" --apply
capture scan "$DMHEAL" --json scan
dm_state "$name" > "$OUT/state.after"
""", dmheal_bin)
    assert r.rc == 0, r.output
    h = load(r, "heal")
    assert rc(r, "heal") == 5 and h["action"] == "refused"
    assert "naming_foreign_vg" in reason_codes(h["inspection"])
    s = load(r, "scan")
    assert s["counts"]["mappings"] == 0  # a scan only looks at SR volume groups
    assert_untouched(r)


def test_h_nonzero_sm_refcount_is_refused(kernel, dmheal_bin):
    r = kernel.run(r"""
make_sr_vg
make_ghost
mkdir -p "/run/sm/refcount/lvm-$SR"
echo "1 0" > "/run/sm/refcount/lvm-$SR/$VDI"
dm_state "$DM_NAME" > "$OUT/state.before"
capture heal "$DMHEAL" --json heal "$VDI" --apply
dm_state "$DM_NAME" > "$OUT/state.after"
""", dmheal_bin)
    assert r.rc == 0, r.output
    h = load(r, "heal")
    assert rc(r, "heal") == 4 and h["action"] == "refused"
    assert "sm_refcount_held" in reason_codes(h["inspection"])
    assert h["inspection"]["facts"]["refcount"] == {"state": "counts", "count": 1, "binary": 0}
    assert_untouched(r)


def test_i_no_mapping_is_absent_and_nothing_is_done(kernel, dmheal_bin):
    r = kernel.run(r"""
make_sr_vg
lvchange -an "$VG/$LV"
dmsetup ls > "$OUT/ls.before"
capture inspect "$DMHEAL" --json inspect "/dev/$VG/$LV"
capture heal "$DMHEAL" --json heal "/dev/$VG/$LV" --apply
dmsetup ls > "$OUT/ls.after"
lv_attr "$VG" "$LV" > "$OUT/attr"
""", dmheal_bin)
    assert r.rc == 0, r.output
    assert rc(r, "inspect") == 0 and load(r, "inspect")["verdict"] == "absent"
    h = load(r, "heal")
    assert rc(r, "heal") == 0 and h["action"] == "nothing-to-do"
    assert r.file("ls.before") == r.file("ls.after")
    assert r.file("attr").strip()[4] == "-"
    assert not r.has("journal.jsonl")


def test_missing_lvs_makes_the_verdict_suspicious_and_changes_nothing(kernel, dmheal_bin):
    # With LVM read through lvs only (see test_lvm_metadata_kernel.py for the default reader).
    r = kernel.run(r"""
make_sr_vg
make_ghost
dm_state "$DM_NAME" > "$OUT/state.before"
DMHEAL_LVM_READER=lvs PATH="$NO_LVM_PATH" capture heal "$DMHEAL" --json heal "$DM_NAME" --apply
dm_state "$DM_NAME" > "$OUT/state.after"
""", dmheal_bin)
    assert r.rc == 0, r.output
    h = load(r, "heal")
    assert rc(r, "heal") == 5 and h["action"] == "refused"
    lvm = [x for x in h["inspection"]["reasons"] if x["layer"] == "lvm"][0]
    assert lvm["code"] == "lvm_unreadable" and "not installed" in lvm["message"]
    assert_untouched(r)


def test_scan_finds_ghosts_among_healthy_and_inactive_volumes(kernel, dmheal_bin):
    ghost_vdi = "1c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
    idle_vdi = "2c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
    r = kernel.run(r"""
make_sr_vg
add_lv "$VG" "VHD-%s"
add_lv "$VG" "VHD-%s"
make_ghost "$VG" "VHD-%s"
lvchange -an "$VG/VHD-%s"
capture scan "$DMHEAL" --json scan
capture scan_text "$DMHEAL" scan
""" % (ghost_vdi, idle_vdi, ghost_vdi, idle_vdi), dmheal_bin)
    assert r.rc == 0, r.output
    s = load(r, "scan")
    assert rc(r, "scan") == 3
    assert s["counts"] == {"mappings": 2, "ghost": 1, "in_use": 0, "suspicious": 0,
                           "healthy": 1, "inactive_lvs": 1}
    ghosts = [m["dm_name"] for m in s["mappings"] if m["verdict"] == "ghost"]
    assert ghosts == [uml.VG.replace("-", "--") + "-VHD--" + ghost_vdi.replace("-", "--")]
    assert s["inactive_lvs"] == ["/dev/%s/VHD-%s" % (uml.VG, idle_vdi)]
    # The table lists what needs a look (the ghost); the healthy mapping is counted, not listed.
    text = r.file("scan_text.out")
    assert rc(r, "scan_text") == 3
    assert "1 ghost" in text and ghosts[0] in text and "ghost" in text.split(ghosts[0])[0].splitlines()[-1]
    assert uml.DM_NAME not in text
    assert "1 healthy mappings (LVM's own, nothing to do) are not listed" in text


def test_mapping_mounted_in_another_mount_namespace_is_refused(kernel, dmheal_bin):
    r = kernel.run(r"""
make_sr_vg
make_ghost
mkfs.ext2 -q "/dev/mapper/$DM_NAME"
mkdir -p /run/private-mnt
# Mounted only inside a new mount namespace: invisible in this namespace's /proc/self/mounts.
unshare -m sh -c "mount /dev/mapper/$DM_NAME /run/private-mnt && echo \$\$ > $OUT/nspid && sleep 600" &
for i in $(seq 50); do [ -s "$OUT/nspid" ] && break; sleep 0.1; done
grep -c "$DM_NAME\|private-mnt" /proc/self/mountinfo > "$OUT/visible_here"
dm_state "$DM_NAME" > "$OUT/state.before"
capture heal "$DMHEAL" --json heal "$DM_NAME" --apply
dm_state "$DM_NAME" > "$OUT/state.after"
""", dmheal_bin)
    assert r.rc == 0, r.output
    assert r.file("visible_here").strip() == "0"
    h = load(r, "heal")
    assert rc(r, "heal") == 4 and h["action"] == "refused"
    mounts = h["inspection"]["facts"]["mounts"]
    assert [m["mount_point"] for m in mounts] == ["/run/private-mnt"]
    assert mounts[0]["pid"] == int(r.file("nspid"))
    assert "mounts_mounted" in reason_codes(h["inspection"])
    assert_untouched(r)
