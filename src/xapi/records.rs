//! Typed xapi records: only the fields dmheal reads, each defaulted so a record from another
//! xapi version still decodes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    pub enabled: bool,
    pub metrics: Ref,
    #[serde(rename = "PBDs")]
    pub pbds: Vec<Ref>,
    #[serde(rename = "resident_VMs")]
    pub resident_vms: Vec<Ref>,
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
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pbd {
    pub uuid: String,
    pub host: Ref,
    #[serde(rename = "SR")]
    pub sr: Ref,
    pub device_config: BTreeMap<String, String>,
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
    pub sm_config: BTreeMap<String, String>,
    pub other_config: BTreeMap<String, String>,
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
    pub domid: String,
    #[serde(rename = "VBDs")]
    pub vbds: Vec<Ref>,
}
