# Helpers for real-kernel scenarios (sourced by the guest's init before each scenario).
# Everything here uses Debian's real lvm2 and dmsetup.

# A VG named like an SR's, with one VDI LV; `make_sr_vg [vg] [lv]`.
make_sr_vg() {
    local vg=${1:-$VG} lv=${2:-$LV}
    pvcreate -q -y /dev/ubda >/dev/null
    vgcreate -q -s 4m "$vg" /dev/ubda >/dev/null
    lvcreate -q -y -n "$lv" -L 8m "$vg" >/dev/null
}

# Another LV in an existing VG: `add_lv vg lv`.
add_lv() { lvcreate -q -y -n "$2" -L 8m "$1" >/dev/null; }

# The DM name LVM uses for vg/lv.
dm_name_of() { echo "${1//-/--}-${2//-/--}"; }

# The seed ghost: deactivate the LV, then register a mapping under its DM name with the same
# table but no uuid, exactly as a failed migration leaves it. `make_ghost [vg] [lv]`.
make_ghost() {
    local vg=${1:-$VG} lv=${2:-$LV}
    local name; name=$(dm_name_of "$vg" "$lv")
    local table; table=$(dmsetup table "$name")
    lvchange -q -an "$vg/$lv"
    dmsetup create "$name" --table "$table"
    dmsetup mknodes "$name"
}

# The kernel's state of one mapping, or "absent": name uuid open attr.
dm_state() {
    dmsetup info -c --noheadings --separator ' ' -o name,uuid,open,attr "$1" 2>/dev/null || echo absent
}

# LVM's attribute string for vg/lv.
lv_attr() { lvs --noheadings -o lv_attr "$1/$2" | tr -d ' '; }

# A PATH with sh and cat only: no lvm, lvs, dmsetup (as on a host whose LVM tools are broken).
NO_LVM_PATH="$WORK/nolvm"
mkdir -p "$NO_LVM_PATH"
for t in sh cat; do ln -sf "$(command -v $t)" "$NO_LVM_PATH/$t"; done

# Record a command's exit code and output: `capture NAME cmd...` -> $OUT/NAME.out, NAME.rc
capture() {
    local name=$1; shift
    "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
    echo $? > "$OUT/$name.rc"
}

# The xapi simulator on xapi's local socket, serving the real plugin (the plugins inherit
# DMHEAL_XAPI from "xapi"): start_xapi_sim SCENARIO.json
start_xapi_sim() {
    mkdir -p /run/xapi
    export DMHEAL_XAPI=/run/xapi/xapi
    "$SIMPY" "$HELPERS/../xapi_sim/simulator.py" "$1" --unix /run/xapi/xapi \
        --plugins "$HELPERS/../../xapi-plugin" --ready /run/xapi/ready &
    for i in $(seq 100); do [ -e /run/xapi/ready ] && break; sleep 0.1; done
}
