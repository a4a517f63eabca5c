"""The demo: the seed incident on a real kernel, healed by dmheal. Usage: demo.py DMHEAL_BIN"""

import sys

import uml

SCRIPT = r"""
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
make_sr_vg
echo "An LVHD SR's volume group with one VDI: $VG/$LV"
echo "A failed migration leaves the LV's mapping registered in the kernel with no uuid:"
make_ghost
say dmsetup info -c "$DM_NAME"
dmsetup info -c "$DM_NAME"
say lvs "$VG"
lvs "$VG"
say lvchange -ay "$VG/$LV"
lvchange -ay "$VG/$LV" || echo "(exit $?: this is SR_BACKEND_FAILURE_46, the VM stays dark)"
say dmheal inspect "$VDI"
"$DMHEAL" inspect "$VDI" || true
say dmheal heal "/dev/$VG/$LV" --apply
"$DMHEAL" heal "/dev/$VG/$LV" --apply
say lvchange -ay "$VG/$LV"
lvchange -ay "$VG/$LV" && echo "(exit 0: the VDI activates)"
lvs "$VG"
say dmheal journal
"$DMHEAL" journal
echo
echo "And it is reversible: with the LV deactivated again, the removal can be undone."
lvchange -an "$VG/$LV"
say dmheal restore 1
"$DMHEAL" restore 1
dmsetup info -c "$DM_NAME"
"""


def main():
    why = uml.available()
    if why:
        sys.exit("demo: " + why)
    print("Booting a user-mode Linux kernel with dm-mod ...")
    r = uml.run(SCRIPT, sys.argv[1])
    print(r.output.replace("  WARNING: This metadata update is NOT backed up.\n", ""))
    sys.exit(r.rc)


if __name__ == "__main__":
    main()
