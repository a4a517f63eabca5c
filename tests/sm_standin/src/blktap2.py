"""Stand-in of the part of SM's blktap2.VDI._activate_locked that matters here, for an LVHD VDI:
the xapi marks written BEFORE the LV is activated, the LV activated through LVMCache.activate."""
try:  # SM 4.1.1+ package layout
    from sm import lvmcache
    from sm.core import util
except ImportError:  # /opt/xensource/sm
    import lvmcache
    import util

NS_PREFIX_LVM = "lvm-"
VG_PREFIX = "VG_XenStorage-"


def _add_tag(session, vdi_uuid, writable):
    x = session.xenapi
    vdi_ref = x.VDI.get_by_uuid(vdi_uuid)
    host_ref = x.host.get_by_uuid(util.get_this_host())
    sm_config = x.VDI.get_sm_config(vdi_ref)
    if "relinking" in sm_config or "paused" in sm_config:
        return False
    x.VDI.add_to_sm_config(vdi_ref, "activating", "True")
    host_key = "host_%s" % host_ref
    assert host_key not in sm_config
    x.VDI.add_to_sm_config(vdi_ref, host_key, "RW" if writable else "RO")
    sm_config = x.VDI.get_sm_config(vdi_ref)
    if "paused" in sm_config or "relinking" in sm_config:
        x.VDI.remove_from_sm_config(vdi_ref, host_key)
        x.VDI.remove_from_sm_config(vdi_ref, "activating")
        return False
    return True


def _remove_tag(session, vdi_uuid):
    x = session.xenapi
    vdi_ref = x.VDI.get_by_uuid(vdi_uuid)
    host_key = "host_%s" % x.host.get_by_uuid(util.get_this_host())
    if host_key in x.VDI.get_sm_config(vdi_ref):
        x.VDI.remove_from_sm_config(vdi_ref, host_key)


def activate(session, sr_uuid, vdi_uuid, lv_name, writable=True):
    """Activate VDI `vdi_uuid` of SR `sr_uuid` on this host, as vdi_activate does. False when
    the VDI is paused or relinking (SM would retry)."""
    if not _add_tag(session, vdi_uuid, writable):
        return False
    vdi_ref = session.xenapi.VDI.get_by_uuid(vdi_uuid)
    try:
        # LVHDVDI.attach -> _chainSetActive: the leaf is activated with binary=True.
        cache = lvmcache.LVMCache(VG_PREFIX + sr_uuid)
        cache.activate(NS_PREFIX_LVM + sr_uuid, vdi_uuid, lv_name, True)
    except Exception:
        _remove_tag(session, vdi_uuid)
        raise
    finally:
        session.xenapi.VDI.remove_from_sm_config(vdi_ref, "activating")
    return True
