//! LVM's naming rules: how a VG/LV pair becomes a device-mapper name and uuid, and which
//! volume groups belong to XenServer SRs. Pure functions, no I/O.

use serde::Serialize;

use crate::error::InputError;
use crate::ids::{DmName, LvName, Uuid, VgName};

/// Prefix of the VG of an LVM-based SR (LVHD over local disk, iSCSI, HBA).
pub const SR_VG_PREFIX: &str = "VG_XenStorage-";
/// Prefix of the VG under a local EXT or XFS SR (SM's `EXT_PREFIX`): one LV, named `<sr>`.
pub const EXT_SR_VG_PREFIX: &str = "XSLocalEXT-";
/// Prefix of the VG under an XCP-ng LargeBlock SR: one LV, named `<sr>`.
pub const LARGE_BLOCK_SR_VG_PREFIX: &str = "XSLocalLargeBlock-";

/// A uuid as SM writes it into a VG or LV name: the 8-4-4-4-12 form in lower case. SM never
/// writes upper case, so a name with an upper-case uuid is not SM's.
fn sm_uuid(s: &str) -> Option<Uuid> {
    (Uuid::is_well_formed(s) && !s.bytes().any(|b| b.is_ascii_uppercase()))
        .then(|| Uuid::new(s).ok())
        .flatten()
}

/// Which kind of SR volume group a VG is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SrVgKind {
    /// `VG_XenStorage-<sr>`: an LVHD SR, one LV per VDI.
    Lvhd,
    /// `XSLocalEXT-<sr>` or `XSLocalLargeBlock-<sr>`: a local file SR's VG, whose only LV
    /// (`<sr>`) holds the file system SM mounts at PBD.plug.
    LocalFile,
}

/// The DM name LVM gives `/dev/<vg>/<lv>`: each `-` doubled, the two joined by one `-`.
/// Fails only when the mangled name is longer than the kernel allows.
pub fn dm_name_for(vg: &VgName, lv: &LvName) -> Result<DmName, InputError> {
    DmName::new(&format!(
        "{}-{}",
        vg.as_str().replace('-', "--"),
        lv.as_str().replace('-', "--")
    ))
}

/// A DM name split back into LVM's parts. `layer` is LVM's suffix for hidden sub-devices
/// (`-real`, `-cow`, `-tpool` ...), absent for a plain LV.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LvmDmName {
    pub vg: VgName,
    pub lv: LvName,
    pub layer: Option<String>,
}

/// Undo LVM's mangling. `None` when the name is not LVM-shaped (no single `-` separator).
pub fn split_dm_name(name: &DmName) -> Option<LvmDmName> {
    // A DM name is ASCII (LVM's character set): cut at each single dash, left to right, a
    // doubled dash being a dash of the name. A host scan splits thousands of names.
    let s = name.as_str();
    let bytes = s.as_bytes();
    let mut cuts: Vec<usize> = Vec::with_capacity(2);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'-' {
            if bytes.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            cuts.push(i);
        }
        i += 1;
    }
    let mut parts: Vec<String> = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for cut in cuts.iter().copied().chain(std::iter::once(s.len())) {
        parts.push(s[from..cut].replace("--", "-"));
        from = cut + 1;
    }
    let (vg, lv, layer) = match parts.as_slice() {
        [vg, lv] => (vg, lv, None),
        [vg, lv, layer] => (vg, lv, Some(layer.clone())),
        _ => return None,
    };
    Some(LvmDmName {
        vg: VgName::new(vg).ok()?,
        lv: LvName::new(lv).ok()?,
        layer,
    })
}

/// The DM uuid LVM sets on an active LV: `LVM-` + VG uuid + LV uuid, dashes removed.
pub fn lvm_dm_uuid(vg_uuid: &str, lv_uuid: &str) -> String {
    format!(
        "LVM-{}{}",
        vg_uuid.replace('-', ""),
        lv_uuid.replace('-', "")
    )
}

/// An LVM DM uuid of the VG whose uuid is `vg_uuid`, split into its LV part (dashes removed)
/// and, for one of LVM's internal layers, the layer's suffix (`real` for `…-real`). None: not
/// an LVM uuid of that VG. The one reading of the rule heal, restore and the reports share.
pub fn lv_of_dm_uuid<'a>(dm_uuid: &'a str, vg_uuid: &str) -> Option<(&'a str, Option<&'a str>)> {
    let rest = dm_uuid
        .strip_prefix("LVM-")?
        .strip_prefix(vg_uuid.replace('-', "").as_str())?;
    if rest.is_empty() {
        return None;
    }
    Some(match rest.split_once('-') {
        Some((lv, layer)) => (lv, Some(layer)),
        None => (rest, None),
    })
}

/// The SR a volume group belongs to, if it is an SR's VG at all.
pub fn sr_of_vg(vg: &VgName) -> Option<Uuid> {
    sr_vg(vg).map(|(sr, _)| sr)
}

/// The SR a volume group belongs to, and which kind of SR VG it is.
pub fn sr_vg(vg: &VgName) -> Option<(Uuid, SrVgKind)> {
    let s = vg.as_str();
    if let Some(u) = s.strip_prefix(SR_VG_PREFIX) {
        return sm_uuid(u).map(|u| (u, SrVgKind::Lvhd));
    }
    let u = s
        .strip_prefix(EXT_SR_VG_PREFIX)
        .or_else(|| s.strip_prefix(LARGE_BLOCK_SR_VG_PREFIX))?;
    sm_uuid(u).map(|u| (u, SrVgKind::LocalFile))
}

/// How SM names the LV of a VDI in an SR VG: `VHD-<uuid>` (VHD format), `LV-<uuid>` (raw),
/// `QCOW2-<uuid>` (XCP-ng's QCOW2 format). SM's refcounts for all of them live in
/// `lvm-<sr>`; tapdisk names them by LV path or by `/dev/sm/backend/<sr>/<vdi>`.
pub const VDI_LV_PREFIXES: [&str; 3] = ["VHD-", "LV-", "QCOW2-"];

/// The VDI an LV in an SR VG stores, for an LV named as SM names VDI volumes. Any other LV
/// (MGT, journals, an unknown prefix) stores no VDI dmheal can ask SM, xapi or tapdisk about.
pub fn vdi_of_lv(lv: &LvName) -> Option<Uuid> {
    let s = lv.as_str();
    let uuid = VDI_LV_PREFIXES
        .iter()
        .find_map(|prefix| s.strip_prefix(prefix))?;
    sm_uuid(uuid)
}

/// What an SR volume stores, by SM's naming: a VDI (an LVHD SR's `VHD-`/`LV-`/`QCOW2-<vdi>`),
/// a local file SR's file system (its VG's only LV, `<sr>`), or nothing SM makes (MGT, an LV
/// of another name, a VDI-named LV in a local file SR's VG, which SM never creates).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "vdi", rename_all = "snake_case")]
pub enum Stores {
    Vdi(Uuid),
    SrFilesystem,
    Other,
}

/// A plain LV (no LVM layer suffix) of an SR's volume group: the only kind of mapping dmheal
/// considers at all. `vdi`: the VDI it stores, when SM names it as a VDI's volume;
/// `stores`: what it holds, by SM's naming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrVolume {
    pub vg: VgName,
    pub lv: LvName,
    pub sr: Uuid,
    pub vdi: Option<Uuid>,
    pub stores: Stores,
}

impl SrVolume {
    /// A volume SM activates and dmheal may heal: a VDI's, or a local file SR's own.
    pub fn known(&self) -> bool {
        self.stores != Stores::Other
    }
}

/// The one rule for "is this DM name an SR volume" (facts, resolving a VDI, restore).
pub fn sr_volume(name: &DmName) -> Option<SrVolume> {
    let n = split_dm_name(name).filter(|n| n.layer.is_none())?;
    let (sr, kind) = sr_vg(&n.vg)?;
    let stores = match kind {
        SrVgKind::Lvhd => vdi_of_lv(&n.lv).map_or(Stores::Other, Stores::Vdi),
        SrVgKind::LocalFile if n.lv.as_str() == sr.as_str() => Stores::SrFilesystem,
        SrVgKind::LocalFile => Stores::Other,
    };
    let vdi = match &stores {
        Stores::Vdi(v) => Some(v.clone()),
        _ => None,
    };
    Some(SrVolume {
        vg: n.vg,
        lv: n.lv,
        sr,
        vdi,
        stores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SR: &str = "9a3c6ed4-8f0e-4f57-a6c2-1b2d3e4f5a6b";
    const VDI: &str = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5";

    /// LVM's unmangling as it reads, character by character: the reference the byte-level
    /// split must agree with.
    fn split_by_chars(name: &str) -> Option<(String, String, Option<String>)> {
        let mut parts = vec![String::new()];
        let mut chars = name.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '-' && chars.peek() == Some(&'-') {
                chars.next();
                parts.last_mut()?.push('-');
            } else if c == '-' {
                parts.push(String::new());
            } else {
                parts.last_mut()?.push(c);
            }
        }
        match parts.as_slice() {
            [vg, lv] => Some((vg.clone(), lv.clone(), None)),
            [vg, lv, layer] => Some((vg.clone(), lv.clone(), Some(layer.clone()))),
            _ => None,
        }
    }

    #[test]
    fn the_split_agrees_with_lvm_unmangling_on_odd_dash_runs() {
        let names = [
            "vg-lv",
            "vg--x-lv",
            "vg---lv",
            "vg----lv",
            "vg-----lv",
            "a---b-c",
            "a-b---c",
            "a--",
            "-a-b",
            "a-b-",
            "a-b-c-d",
            "a-b-c",
            "a--b--c",
            "a---b---c",
            "a----b-c--d",
            "plain",
            "x-y--real",
            "x-y---real",
        ];
        for name in names {
            let Ok(dm) = DmName::new(name) else { continue };
            let ours = split_dm_name(&dm).map(|n| (n.vg.to_string(), n.lv.to_string(), n.layer));
            let reference = split_by_chars(name)
                .filter(|(vg, lv, _)| VgName::new(vg).is_ok() && LvName::new(lv).is_ok());
            assert_eq!(ours, reference, "{name}");
        }
    }

    #[test]
    fn mangling_round_trips() {
        let vg = VgName::new(&format!("VG_XenStorage-{SR}")).unwrap();
        let lv = LvName::new(&format!("VHD-{VDI}")).unwrap();
        let dm = dm_name_for(&vg, &lv).unwrap();
        assert_eq!(
            dm.as_str(),
            "VG_XenStorage--9a3c6ed4--8f0e--4f57--a6c2--1b2d3e4f5a6b-VHD--0c1d2e3f--4a5b--4c6d--8e7f--8091a2b3c4d5"
        );
        let back = split_dm_name(&dm).unwrap();
        assert_eq!((back.vg, back.lv, back.layer), (vg, lv, None));
    }

    #[test]
    fn layers_and_non_lvm_names() {
        let s = split_dm_name(&DmName::new("vg-lv-real").unwrap()).unwrap();
        assert_eq!(s.layer.as_deref(), Some("real"));
        assert!(split_dm_name(&DmName::new("plainname").unwrap()).is_none());
        assert!(split_dm_name(&DmName::new("a-b-c-d").unwrap()).is_none());
    }

    #[test]
    fn sr_and_vdi_recognition() {
        let vg = VgName::new(&format!("VG_XenStorage-{SR}")).unwrap();
        assert_eq!(sr_of_vg(&vg).unwrap().as_str(), SR);
        let ext = VgName::new(&format!("XSLocalEXT-{SR}")).unwrap();
        assert_eq!(sr_of_vg(&ext).unwrap().as_str(), SR);
        assert!(sr_of_vg(&VgName::new("vg_data").unwrap()).is_none());
        assert!(sr_of_vg(&VgName::new("VG_XenStorage-notauuid").unwrap()).is_none());
        assert_eq!(
            vdi_of_lv(&LvName::new(&format!("LV-{VDI}")).unwrap())
                .unwrap()
                .as_str(),
            VDI
        );
        assert_eq!(
            vdi_of_lv(&LvName::new(&format!("QCOW2-{VDI}")).unwrap())
                .unwrap()
                .as_str(),
            VDI
        );
        assert!(vdi_of_lv(&LvName::new("MGT").unwrap()).is_none());
        assert!(vdi_of_lv(&LvName::new(&format!("RAW-{VDI}")).unwrap()).is_none());
        assert!(vdi_of_lv(&LvName::new(&format!("VHD-{VDI}x")).unwrap()).is_none());
    }

    #[test]
    fn local_file_srs_own_lv_is_known_and_nothing_else_there_is_a_vdi() {
        for prefix in [EXT_SR_VG_PREFIX, LARGE_BLOCK_SR_VG_PREFIX] {
            let vg = VgName::new(&format!("{prefix}{SR}")).unwrap();
            let own = sr_volume(&dm_name_for(&vg, &LvName::new(SR).unwrap()).unwrap()).unwrap();
            assert_eq!(
                (own.stores.clone(), own.vdi.clone()),
                (Stores::SrFilesystem, None)
            );
            assert!(own.known());
            // SM never makes a VDI LV in such a VG: not called a VDI's.
            let vhd = LvName::new(&format!("VHD-{VDI}")).unwrap();
            let v = sr_volume(&dm_name_for(&vg, &vhd).unwrap()).unwrap();
            assert_eq!((v.stores.clone(), v.vdi.clone()), (Stores::Other, None));
            assert!(!v.known());
            let other = LvName::new(VDI).unwrap();
            assert!(!sr_volume(&dm_name_for(&vg, &other).unwrap())
                .unwrap()
                .known());
        }
    }

    #[test]
    fn only_lower_case_uuids_are_sms() {
        let upper = SR.to_ascii_uppercase();
        assert!(sr_of_vg(&VgName::new(&format!("VG_XenStorage-{upper}")).unwrap()).is_none());
        let vg = VgName::new(&format!("VG_XenStorage-{SR}")).unwrap();
        let lv = LvName::new(&format!("VHD-{}", VDI.to_ascii_uppercase())).unwrap();
        let v = sr_volume(&dm_name_for(&vg, &lv).unwrap()).unwrap();
        assert_eq!(v.stores, Stores::Other);
    }

    #[test]
    fn dm_uuid_drops_dashes() {
        assert_eq!(
            lvm_dm_uuid("K2BweQ-UkrI-fD5b", "X4HzXT-jZRq"),
            "LVM-K2BweQUkrIfD5bX4HzXTjZRq"
        );
    }

    #[test]
    fn an_sr_volume_is_a_plain_lv_of_an_sr_vg() {
        let vg = VgName::new(&format!("VG_XenStorage-{SR}")).unwrap();
        let vdi_lv = LvName::new(&format!("VHD-{VDI}")).unwrap();
        let v = sr_volume(&dm_name_for(&vg, &vdi_lv).unwrap()).unwrap();
        assert_eq!((v.sr.as_str(), v.vdi.unwrap().as_str()), (SR, VDI));
        let mgt = sr_volume(&dm_name_for(&vg, &LvName::new("MGT").unwrap()).unwrap()).unwrap();
        assert_eq!(mgt.vdi, None);
        let layered = DmName::new(&format!("{}-real", dm_name_for(&vg, &vdi_lv).unwrap())).unwrap();
        assert_eq!(sr_volume(&layered), None);
        assert_eq!(sr_volume(&DmName::new("vg_data-home").unwrap()), None);
    }
}
