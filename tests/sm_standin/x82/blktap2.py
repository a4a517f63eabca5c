"""Stand-in of SM 8.2's blktap2.VDI._activate_locked for an LVHD VDI (Python 2.7): _add_tag
writes only host_<this host's ref> = RW/RO through xapi (8.2 has no `activating` key and does
not check `relinking`), then the LV is activated through LVMCache.activate."""
import lvmcache
import util

NS_PREFIX_LVM = "lvm-"
VG_PREFIX = "VG_XenStorage-"


def _add_tag(session, vdi_uuid, writable):
    x = session.xenapi
    vdi_ref = x.VDI.get_by_uuid(vdi_uuid)
    host_ref = x.host.get_by_uuid(util.get_this_host())
    sm_config = x.VDI.get_sm_config(vdi_ref)
    if "paused" in sm_config:
        return False
    host_key = "host_%s" % host_ref
    assert host_key not in sm_config
    x.VDI.add_to_sm_config(vdi_ref, host_key, "RW" if writable else "RO")
    sm_config = x.VDI.get_sm_config(vdi_ref)
    if "paused" in sm_config:
        x.VDI.remove_from_sm_config(vdi_ref, host_key)
        return False
    return True


def _remove_tag(session, vdi_uuid):
    x = session.xenapi
    vdi_ref = x.VDI.get_by_uuid(vdi_uuid)
    host_key = "host_%s" % x.host.get_by_uuid(util.get_this_host())
    if host_key in x.VDI.get_sm_config(vdi_ref):
        x.VDI.remove_from_sm_config(vdi_ref, host_key)


def activate(session, sr_uuid, vdi_uuid, lv_name, writable=True):
    if not _add_tag(session, vdi_uuid, writable):
        return False
    try:
        cache = lvmcache.LVMCache(VG_PREFIX + sr_uuid)
        cache.activate(NS_PREFIX_LVM + sr_uuid, vdi_uuid, lv_name, True)
    except Exception:
        _remove_tag(session, vdi_uuid)
        raise
    return True
