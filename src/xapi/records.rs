//! Typed xapi records: only the fields dmheal reads, each defaulted so a record from another
//! xapi version still decodes.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// An int64 field kept as its decimal text (`domid`, sizes), from a number or a string.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    int_or_text(d)
}

fn int_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        N(i64),
        F(f64),
        S(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::N(n) => n.to_string(),
        Either::F(f) => (f as i64).to_string(),
        Either::S(s) => s,
    })
}

/// xapi's int64 fields arrive as JSON numbers over JSON-RPC and as strings over XML-RPC (and
/// in records read back from either): take both.
fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        N(i64),
        F(f64),
        S(String),
    }
    Ok(match Int::deserialize(d)? {
        Int::N(n) => n,
        Int::F(f) => f as i64,
        Int::S(s) => s.trim().parse().unwrap_or(0),
    })
}

/// An object reference, `OpaqueRef:...` (`OpaqueRef:NULL` for none).
pub type Ref = String;
pub const NULL_REF: &str = "OpaqueRef:NULL";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Host {
    pub uuid: String,
    pub name_label: String,
    pub hostname: String,
    pub address: String,
    /// None: the record does not say (an older or damaged record): never read as "disabled".
    pub enabled: Option<bool>,
    pub metrics: Ref,
    /// product_brand, product_version, platform_version, ... (host.software_version).
    pub software_version: BTreeMap<String, String>,
    #[serde(rename = "PBDs")]
    pub pbds: Vec<Ref>,
    #[serde(rename = "resident_VMs")]
    pub resident_vms: Vec<Ref>,
    pub suspend_image_sr: Ref,
    pub crash_dump_sr: Ref,
}

impl Host {
    /// The name to show: the name-label, or what stands in for a record without one.
    pub fn display_name(&self) -> String {
        if self.name_label.trim().is_empty() {
            if self.uuid.is_empty() {
                "(host record without a name-label or uuid)".into()
            } else {
                format!("(no name-label) {}", self.uuid)
            }
        } else {
            self.name_label.clone()
        }
    }

    /// The product and its version as the host reports them ("XCP-ng 8.3.0", "Citrix
    /// Hypervisor 8.2.1"); None when its record does not say.
    pub fn product_version(&self) -> Option<String> {
        let v = &self.software_version;
        let version = v
            .get("product_version")
            .or_else(|| v.get("platform_version"))
            .filter(|s| !s.is_empty())?;
        Some(match v.get("product_brand").filter(|b| !b.is_empty()) {
            Some(brand) => format!("{brand} {version}"),
            None => version.clone(),
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pool {
    pub uuid: String,
    pub master: Ref,
    #[serde(rename = "default_SR")]
    pub default_sr: Ref,
    #[serde(rename = "suspend_image_SR")]
    pub suspend_image_sr: Ref,
    #[serde(rename = "crash_dump_SR")]
    pub crash_dump_sr: Ref,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostMetrics {
    pub uuid: String,
    pub live: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sr {
    pub uuid: String,
    pub name_label: String,
    pub name_description: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub content_type: String,
    pub shared: bool,
    #[serde(rename = "PBDs")]
    pub pbds: Vec<Ref>,
    #[serde(rename = "VDIs")]
    pub vdis: Vec<Ref>,
    pub other_config: BTreeMap<String, String>,
    pub sm_config: BTreeMap<String, String>,
    pub tags: Vec<String>,
    #[serde(deserialize_with = "int")]
    pub physical_size: i64,
    #[serde(deserialize_with = "int")]
    pub physical_utilisation: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pbd {
    pub uuid: String,
    pub host: Ref,
    #[serde(rename = "SR")]
    pub sr: Ref,
    pub device_config: BTreeMap<String, String>,
    pub other_config: BTreeMap<String, String>,
    pub currently_attached: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vdi {
    pub uuid: String,
    pub name_label: String,
    #[serde(rename = "SR")]
    pub sr: Ref,
    #[serde(rename = "VBDs")]
    pub vbds: Vec<Ref>,
    #[serde(rename = "type")]
    pub kind: String,
    pub managed: bool,
    pub is_a_snapshot: bool,
    pub snapshot_of: Ref,
    pub snapshots: Vec<Ref>,
    pub sm_config: BTreeMap<String, String>,
    pub other_config: BTreeMap<String, String>,
    #[serde(deserialize_with = "text")]
    pub virtual_size: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vbd {
    pub uuid: String,
    #[serde(rename = "VM")]
    pub vm: Ref,
    #[serde(rename = "VDI")]
    pub vdi: Ref,
    pub device: String,
    pub userdevice: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub mode: String,
    pub currently_attached: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vm {
    pub uuid: String,
    pub name_label: String,
    pub power_state: String,
    pub resident_on: Ref,
    pub is_control_domain: bool,
    pub is_a_template: bool,
    pub is_a_snapshot: bool,
    #[serde(deserialize_with = "text")]
    pub domid: String,
    #[serde(rename = "VBDs")]
    pub vbds: Vec<Ref>,
    #[serde(rename = "suspend_VDI")]
    pub suspend_vdi: Ref,
    #[serde(rename = "suspend_SR")]
    pub suspend_sr: Ref,
    /// For a snapshot: the VM it is a snapshot of (a dangling or NULL ref: orphaned).
    pub snapshot_of: Ref,
    /// For a VM: its snapshots.
    pub snapshots: Vec<Ref>,
    /// xapi's DateTime as text (`20261107T10:00:00Z`).
    #[serde(deserialize_with = "datetime")]
    pub snapshot_time: String,
    pub tags: Vec<String>,
    pub other_config: BTreeMap<String, String>,
}

/// A xapi message (XenCenter's alerts): name, priority, the class and uuid of the object it
/// is about, when, and its text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    pub uuid: String,
    pub name: String,
    #[serde(deserialize_with = "int")]
    pub priority: i64,
    pub cls: String,
    pub obj_uuid: String,
    #[serde(deserialize_with = "datetime")]
    pub timestamp: String,
    pub body: String,
}

/// A DateTime field: text over JSON-RPC, and over XML-RPC (as an XML-RPC dateTime, which the
/// records read back from it carry as text too).
fn datetime<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(f64),
    }
    Ok(match Either::deserialize(d)? {
        Either::S(s) => s,
        Either::N(n) => n.to_string(),
    })
}

/// Seconds since the epoch of one of xapi's DateTimes (`20261107T10:00:00Z`, with or without
/// the Z, or RFC 3339); None when it is not one (xapi's "never" is 19700101T00:00:00Z: 0).
pub fn epoch_seconds(datetime: &str) -> Option<u64> {
    let t = datetime.trim().trim_end_matches('Z');
    let compact: String = t.chars().filter(|c| *c != '-' && *c != ':').collect();
    let (date, time) = compact.split_once('T')?;
    if date.len() != 8 || time.len() < 6 {
        return None;
    }
    let n = |s: &str| s.parse::<u64>().ok();
    let (y, m, d) = (n(&date[..4])?, n(&date[4..6])?, n(&date[6..8])?);
    let (hh, mm, ss) = (n(&time[..2])?, n(&time[2..4])?, n(&time[4..6])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let (y, m) = if m <= 2 {
        (y as i64 - 1, m + 9)
    } else {
        (y as i64, m - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m as i64 + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    u64::try_from(days * 86400 + (hh * 3600 + mm * 60 + ss) as i64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xapis_datetimes_read_as_epoch_seconds() {
        assert_eq!(epoch_seconds("19700101T00:00:00Z"), Some(0));
        assert_eq!(epoch_seconds("20261207T05:00:00Z"), Some(1_796_619_600));
        assert_eq!(epoch_seconds("2026-12-07T05:00:00Z"), Some(1_796_619_600));
        assert_eq!(epoch_seconds("20000229T12:00:00"), Some(951_825_600));
        assert_eq!(epoch_seconds("yesterday"), None);
        assert_eq!(epoch_seconds("20261307T00:00:00Z"), None);
    }

    #[test]
    fn int64_fields_decode_from_json_rpc_numbers_and_xml_rpc_strings() {
        let vm: Vm = serde_json::from_str(r#"{"domid": 7, "power_state": "Running"}"#).unwrap();
        assert_eq!(vm.domid, "7");
        let vm: Vm = serde_json::from_str(r#"{"domid": "-1"}"#).unwrap();
        assert_eq!(vm.domid, "-1");
        let sr: Sr =
            serde_json::from_str(r#"{"physical_size": "1000", "physical_utilisation": 950}"#)
                .unwrap();
        assert_eq!((sr.physical_size, sr.physical_utilisation), (1000, 950));
        let vdi: Vdi = serde_json::from_str(r#"{"virtual_size": 8388608}"#).unwrap();
        assert_eq!(vdi.virtual_size, "8388608");
    }
}
