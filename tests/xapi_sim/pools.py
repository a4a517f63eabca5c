"""Pools of any size for the simulator, in the shape xapi's records have: a VM whose start or
migration failed, its disks on an LVM-based SR and on NFS, an empty CD drive, and hosts that
are live, down or hanging. `write(pool, path)` gives the scenario file the simulator loads."""

import json

SR_LVM = "9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b"   # tests/kernel/uml.py's SR
VDI_SYSTEM = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"  # tests/kernel/uml.py's VDI
VDI_DATA = "2c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
SR_NFS = "7e000000-0000-4000-8000-0000000000e7"
VM_UUID = "5d000000-0000-4000-8000-0000000000d0"
VM_NAME = "S-Domino"


def host_name(i):
    return "xcp-%s" % (chr(ord("a") + i) if i < 26 else "%03d" % i)


def host_uuid(i):
    if i < 26:
        c = chr(ord("a") + i)
        return "%s0000000-0000-4000-8000-00000000000%s" % (c, c)
    return "%08x-0000-4000-8000-%012x" % (0xa000 + i, i)


def host_ref(i):
    return "OpaqueRef:host-%s" % host_name(i)[4:]


def migration_failed(hosts=3, down=(0,), hanging=(2,), power="Halted", resident=None,
                     journal_dir="/run/dmheal", sr_type="lvmoiscsi"):
    """A pool of `hosts` hosts (index 0 the master) where VM S-Domino's migration failed: the
    VM `power` (resident on host index `resident`), host indices `down` not live, `hanging`
    never answering call_plugin. Every live host runs the real plugin with its own uuid and
    journal unless the caller adds plugin_replies."""
    pool = {c: {} for c in ("host", "host_metrics", "SR", "PBD", "VDI", "VBD", "VM", "pool")}
    sim = {"password": "", "plugin_env": {}, "hang_hosts": [], "plugin_replies": {},
           "plugin_delay": {}}
    for i in range(hosts):
        ref, hm = host_ref(i), "OpaqueRef:hm-%d" % i
        pool["host"][ref] = {
            "uuid": host_uuid(i), "name_label": host_name(i), "hostname": host_name(i),
            "address": "192.0.2.%d" % (i + 1), "enabled": True, "metrics": hm, "PBDs": [],
            "resident_VMs": []}
        pool["host_metrics"][hm] = {"uuid": "f%07d-0000-4000-8000-000000000000" % i,
                                    "live": i not in down}
        sim["plugin_env"][ref] = {"DMHEAL_HOST_UUID": host_uuid(i),
                                  "DMHEAL_JOURNAL": "%s/journal-%s.jsonl" % (journal_dir, host_name(i))}
        if i in hanging:
            sim["hang_hosts"].append(ref)
        pbd = "OpaqueRef:pbd-%d" % i
        pool["PBD"][pbd] = {"uuid": "d%07d-0000-4000-8000-000000000000" % i, "host": ref,
                            "SR": "OpaqueRef:sr-lvm", "device_config": {"target": "192.0.2.200"},
                            "currently_attached": True}
        pool["host"][ref]["PBDs"].append(pbd)
    pool["pool"]["OpaqueRef:pool"] = {"uuid": "e0000000-0000-4000-8000-000000000000",
                                      "master": host_ref(0), "default_SR": "OpaqueRef:sr-lvm",
                                      "suspend_image_SR": "OpaqueRef:NULL",
                                      "crash_dump_SR": "OpaqueRef:NULL"}
    pool["SR"]["OpaqueRef:sr-lvm"] = {
        "uuid": SR_LVM, "name_label": "shared iSCSI", "name_description": "", "type": sr_type,
        "content_type": "", "shared": True, "PBDs": sorted(pool["PBD"]),
        "VDIs": ["OpaqueRef:vdi-system"], "other_config": {}, "sm_config": {},
        "physical_size": "0", "physical_utilisation": "0"}
    pool["SR"]["OpaqueRef:sr-nfs"] = {
        "uuid": SR_NFS, "name_label": "NFS ISO and data", "name_description": "", "type": "nfs",
        "content_type": "", "shared": True, "PBDs": [], "VDIs": ["OpaqueRef:vdi-data"],
        "other_config": {}, "sm_config": {}, "physical_size": "0", "physical_utilisation": "0"}
    vm = "OpaqueRef:vm-s-domino"
    for ref, uuid, name, sr, vbd, dev in (
            ("OpaqueRef:vdi-system", VDI_SYSTEM, "S-Domino system", "OpaqueRef:sr-lvm",
             "OpaqueRef:vbd-system", "0"),
            ("OpaqueRef:vdi-data", VDI_DATA, "S-Domino data", "OpaqueRef:sr-nfs",
             "OpaqueRef:vbd-data", "1")):
        pool["VDI"][ref] = {"uuid": uuid, "name_label": name, "SR": sr, "VBDs": [vbd],
                            "type": "user", "managed": True, "is_a_snapshot": False,
                            "snapshot_of": "OpaqueRef:NULL", "snapshots": [],
                            "sm_config": {"vdi_type": "vhd"}, "other_config": {},
                            "virtual_size": "8388608"}
        pool["VBD"][vbd] = {"uuid": "b%07d-0000-4000-8000-000000000000" % int(dev), "VM": vm,
                            "VDI": ref, "device": "xvd" + "ab"[int(dev)], "userdevice": dev,
                            "type": "Disk", "mode": "RW", "currently_attached": False}
    pool["VBD"]["OpaqueRef:vbd-cd"] = {"uuid": "b0000003-0000-4000-8000-000000000000", "VM": vm,
                                       "VDI": "OpaqueRef:NULL", "device": "xvdd",
                                       "userdevice": "3", "type": "CD", "mode": "RO",
                                       "currently_attached": False}
    running = power in ("Running", "Paused")
    pool["VM"][vm] = {
        "uuid": VM_UUID, "name_label": VM_NAME, "power_state": power,
        "resident_on": host_ref(resident) if running and resident is not None else "OpaqueRef:NULL",
        "domid": "12" if running else "-1", "is_control_domain": False,
        "is_a_template": False, "is_a_snapshot": False, "suspend_VDI": "OpaqueRef:NULL",
        "VBDs": ["OpaqueRef:vbd-system", "OpaqueRef:vbd-data", "OpaqueRef:vbd-cd"]}
    pool["sim"] = sim
    return pool


def volumes_reply(host_index, verdict, dm_name="VG_XenStorage--x-VHD--y", summary="s",
                  domain=None):
    """What a host's plugin `volumes` answers about VDI_SYSTEM (for hosts simulated without a
    kernel): the shape `dmheal volumes --json` prints."""
    return {"value": {
        "host_uuid": host_uuid(host_index),
        "volumes": [{"vdi": VDI_SYSTEM, "dm_name": dm_name if verdict != "absent" else None,
                     "verdict": verdict, "summary": summary, "reasons": []}],
        "domain": domain}}


def write(pool, path):
    with open(path, "w") as f:
        json.dump(pool, f, indent=1, sort_keys=True)
    return path
