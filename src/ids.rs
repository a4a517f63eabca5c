//! Validated identifiers. Every name that can reach a syscall or a command line is parsed here
//! first, so hostile input (shell metacharacters, `..`, paths outside /dev, over-long names)
//! is refused at the boundary with a message that says why.

use std::fmt;
use thiserror::Error;

use serde::{Deserialize, Serialize};

/// Input the operator gave that we refuse before touching anything.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InputError {
    #[error("not a valid {kind} {value:?}: {why}")]
    BadName {
        kind: &'static str,
        value: String,
        why: String,
    },
    #[error("not a valid uuid {0:?}: expected 8-4-4-4-12 hexadecimal digits")]
    BadUuid(String),
    #[error("path {0:?} is not a volume path: expected /dev/<vg>/<lv> or /dev/mapper/<name>")]
    BadPath(String),
    #[error("bad xapi endpoint: {0}")]
    BadXapi(String),
    #[error("journal entry id {0:?} is not a positive number")]
    BadJournalId(String),
    #[error("DMHEAL_LVM_READER: {0}")]
    BadLvmReader(String),
    #[error("bad {name}: {why}")]
    BadValue { name: String, why: String },
    /// A VDI uuid more than one volume carries here (the same VDI in two SRs).
    #[error("{target} names more than one volume on this host, so nothing was done; name the one meant exactly: {each}")]
    Ambiguous { target: String, each: String },
}

/// Longest DM name the kernel accepts (DM_NAME_LEN is 128 including the NUL).
const DM_NAME_MAX: usize = 127;
/// LVM refuses VG and LV names longer than this.
const LVM_NAME_MAX: usize = 127;

/// Characters LVM allows in VG and LV names; LVM-made DM names use only these too.
fn is_lvm_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '_' | '.' | '-')
}

/// Input as an error message shows it: escaped (no control or terminal characters), and cut
/// when it is long — a hostile target of thousands of characters is said, not echoed.
pub fn shown(value: &str) -> String {
    const MAX: usize = 120;
    let n = value.chars().count();
    if n <= MAX {
        return value.escape_default().to_string();
    }
    let head: String = value.chars().take(MAX).collect();
    format!("{}… ({n} characters in all)", head.escape_default())
}

fn check_name(kind: &'static str, value: &str, max: usize) -> Result<(), InputError> {
    let bad = |why: &str| InputError::BadName {
        kind,
        value: shown(value),
        why: why.to_string(),
    };
    if value.is_empty() {
        return Err(bad("it is empty"));
    }
    if value.len() > max {
        return Err(bad(&format!("it is longer than {max} characters")));
    }
    if let Some(c) = value.chars().find(|c| !is_lvm_char(*c)) {
        return Err(bad(&format!(
            "character {:?} is not allowed (only letters, digits and + _ . -)",
            c
        )));
    }
    if value.contains("..") {
        return Err(bad("it contains '..'"));
    }
    if value.starts_with('-') {
        return Err(bad("it starts with '-'"));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: &str) -> Result<Self, InputError> {
                check_name($kind, value, $max)?;
                Ok(Self(value.to_string()))
            }
            /// `new` without a copy, for names that arrive as owned strings by the thousand.
            pub fn from_string(value: String) -> Result<Self, InputError> {
                check_name($kind, &value, $max)?;
                Ok(Self(value))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A device-mapper device name as LVM makes them (`vg-lv` with hyphens doubled).
    DmName, "device-mapper name", DM_NAME_MAX
);
name_type!(
    /// An LVM volume group name.
    VgName, "volume group name", LVM_NAME_MAX
);
name_type!(
    /// An LVM logical volume name.
    LvName, "logical volume name", LVM_NAME_MAX
);

/// A xapi / SM object uuid (SR, VDI, host): 8-4-4-4-12 hexadecimal digits, stored lower-case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Uuid(String);

impl Uuid {
    pub fn new(value: &str) -> Result<Self, InputError> {
        if Self::is_well_formed(value) {
            Ok(Self(value.to_ascii_lowercase()))
        } else {
            Err(InputError::BadUuid(shown(value)))
        }
    }

    /// True for the 36-character 8-4-4-4-12 form.
    pub fn is_well_formed(value: &str) -> bool {
        let bytes = value.as_bytes();
        bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The uuid the kernel carries for a DM device ("" when it has none). Not validated: it is
/// whatever LVM, dmheal's stamp or some other tool set. Kept apart from names and xapi uuids
/// so a DM uuid is never passed where one of those is meant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DmUuid(String);

impl DmUuid {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for DmUuid {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for DmUuid {
    fn from(s: String) -> Self {
        DmUuid(s)
    }
}

impl From<&str> for DmUuid {
    fn from(s: &str) -> Self {
        DmUuid(s.to_string())
    }
}

impl PartialEq<str> for DmUuid {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for DmUuid {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for DmUuid {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<DmUuid> for String {
    fn eq(&self, other: &DmUuid) -> bool {
        self == &other.0
    }
}

impl fmt::Display for DmUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A journal entry's id: assigned in order by the journal's writer, never reused, never
/// wrapped (the writer refuses to append past u64::MAX).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JournalId(pub u64);

impl JournalId {
    /// The first entry's id.
    pub const FIRST: JournalId = JournalId(1);

    /// The id after this one, if there is one.
    pub fn next(self) -> Option<JournalId> {
        self.0.checked_add(1).map(JournalId)
    }
}

impl PartialEq<u64> for JournalId {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for JournalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the operator asked about: a VDI, an LV path or a DM name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/dev/<vg>/<lv>`
    LvPath(VgName, LvName),
    /// `/dev/mapper/<name>` or a bare DM name
    DmName(DmName),
    /// a VDI uuid, resolved to its LV through the SR volume groups
    Vdi(Uuid),
}

impl Target {
    /// Parse what the operator typed. Paths must be `/dev/<vg>/<lv>` or `/dev/mapper/<name>`.
    /// A `vdi:`, `lv:` or `dm:` prefix says which kind is meant, and only that kind is accepted
    /// (the xapi plugin's named arguments use them).
    pub fn parse(input: &str) -> Result<Self, InputError> {
        if let Some(uuid) = input.strip_prefix("vdi:") {
            return Ok(Target::Vdi(Uuid::new(uuid)?));
        }
        if let Some(path) = input.strip_prefix("lv:") {
            return match Self::parse_path(path)? {
                t @ Target::LvPath(..) => Ok(t),
                _ => Err(InputError::BadPath(shown(path))),
            };
        }
        if let Some(name) = input.strip_prefix("dm:") {
            return Ok(Target::DmName(DmName::new(name)?));
        }
        if input.starts_with('/') {
            return Self::parse_path(input);
        }
        if Uuid::is_well_formed(input) {
            return Ok(Target::Vdi(Uuid::new(input)?));
        }
        if input.len() == 36 && input.chars().filter(|c| *c == '-').count() == 4 {
            // Shaped like a uuid but not one: say so rather than treat it as a DM name.
            return Err(InputError::BadUuid(shown(input)));
        }
        Ok(Target::DmName(DmName::new(input)?))
    }

    fn parse_path(input: &str) -> Result<Self, InputError> {
        let outside = || InputError::BadPath(shown(input));
        let rest = input.strip_prefix("/dev/").ok_or_else(outside)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["mapper", name] => Ok(Target::DmName(DmName::new(name)?)),
            [vg, lv] => Ok(Target::LvPath(VgName::new(vg)?, LvName::new(lv)?)),
            _ => Err(outside()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::LvPath(vg, lv) => write!(f, "/dev/{vg}/{lv}"),
            Target::DmName(name) => write!(f, "{name}"),
            Target::Vdi(uuid) => write!(f, "VDI {uuid}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_accepts_only_the_canonical_form() {
        assert!(Uuid::new("3f0b7a8e-5c3d-4c1e-9b7a-0d2e4f6a8b1c").is_ok());
        assert_eq!(
            Uuid::new("3F0B7A8E-5C3D-4C1E-9B7A-0D2E4F6A8B1C")
                .unwrap()
                .as_str(),
            "3f0b7a8e-5c3d-4c1e-9b7a-0d2e4f6a8b1c"
        );
        for bad in [
            "",
            "3f0b7a8e",
            "3f0b7a8e-5c3d-4c1e-9b7a-0d2e4f6a8b1",
            "3f0b7a8e-5c3d-4c1e-9b7a-0d2e4f6a8b1g",
            "3f0b7a8e_5c3d-4c1e-9b7a-0d2e4f6a8b1c",
        ] {
            assert!(Uuid::new(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn names_refuse_hostile_input() {
        for bad in [
            "a;rm -rf /",
            "$(reboot)",
            "a b",
            "..",
            "a..b",
            "-flag",
            "",
            "é",
            "a/b",
            "a`b`",
        ] {
            assert!(DmName::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(DmName::new(&"a".repeat(128)).is_err());
        assert!(DmName::new(&"a".repeat(127)).is_ok());
        assert!(DmName::new("VG_XenStorage--a-VHD--b").is_ok());
    }

    #[test]
    fn targets_parse_by_shape() {
        assert_eq!(
            Target::parse("/dev/VG_XenStorage-x/VHD-y").unwrap(),
            Target::LvPath(
                VgName::new("VG_XenStorage-x").unwrap(),
                LvName::new("VHD-y").unwrap()
            )
        );
        assert_eq!(
            Target::parse("/dev/mapper/a--b-c").unwrap(),
            Target::DmName(DmName::new("a--b-c").unwrap())
        );
        assert!(matches!(
            Target::parse("3f0b7a8e-5c3d-4c1e-9b7a-0d2e4f6a8b1c").unwrap(),
            Target::Vdi(_)
        ));
        assert!(matches!(
            Target::parse("vdi:3f0b7a8e-5c3d-4c1e-9b7a-0d2e4f6a8b1c").unwrap(),
            Target::Vdi(_)
        ));
        assert!(matches!(
            Target::parse("dm:a--b-c").unwrap(),
            Target::DmName(_)
        ));
        assert!(matches!(
            Target::parse("lv:/dev/v/l").unwrap(),
            Target::LvPath(..)
        ));
        for bad in [
            "vdi:3f0b7a8e",
            "vdi:a--b-c",
            "lv:/dev/mapper/x",
            "lv:v/l",
            "dm:/dev/v/l",
            "/etc/passwd",
            "/dev/../etc/x",
            "/dev/vg/../lv",
            "/dev/a/b/c",
            "/dev/sda",
            "/dev//x",
            "3f0b7a8e-5c3d-4c1e-9b7a-0d2e4f6a8bzz",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
