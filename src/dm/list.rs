//! DM_LIST_DEVICES with uuids: every mapping's name, device number and uuid in one ioctl.
//!
//! The devicemapper crate's `list_devices` returns names and device numbers only, so a host
//! scan had to ask DM_DEV_STATUS of every mapping to learn its uuid. Since dm ioctl 4.45
//! (Linux 5.15) the kernel puts the uuid in the list when asked with DM_UUID_FLAG; a mapping
//! listed with exactly the uuid LVM gives its LV then needs no further ioctl in a scan. On
//! older kernels (XenServer 8's dom0 runs 4.19) the list carries no uuids and every entry says
//! so (`uuid: None`): the caller asks DM_DEV_STATUS as before.
//!
//! Layouts (linux/dm-ioctl.h): `struct dm_ioctl` is 312 bytes; the reply's records are
//! `struct dm_name_list { u64 dev; u32 next; char name[]; }`, then, at the next 8-byte
//! boundary after the name's NUL, `u32 event_nr; u32 flags; char uuid[];`.

use devicemapper::DmFlags;

use super::ioctl::{self, Cmd, Request, DATA_SIZE, DATA_START, FLAGS, VERSION};
use super::{DevNum, Listed};

/// Offset of `name` in struct dm_name_list.
const NAME: usize = 12;
/// dm_name_list flags (after the event number).
const HAS_UUID: u32 = 1;
const DOESNT_HAVE_UUID: u32 = 2;
/// The first dm ioctl version whose list carries uuids.
const UUIDS_SINCE: (u32, u32) = (4, 45);
/// First buffer: room for ~150 mappings; doubled while the kernel says it is full.
const FIRST_BUFFER: usize = 32 * 1024;
/// No host has this many mappings; a kernel that keeps asking for more is misbehaving.
const LARGEST_BUFFER: usize = 256 * 1024 * 1024;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Every mapping in the kernel, with its uuid when the kernel reports uuids.
pub fn list(control: &std::fs::File) -> Result<Vec<Listed>, ListError> {
    let mut size = FIRST_BUFFER;
    loop {
        let mut req = Request::new(size).flags(ioctl::UUID_FLAG);
        ioctl::issue(control, Cmd::ListDevices, &mut req).map_err(ListError::Ioctl)?;
        if req.reply_u32(FLAGS) & DmFlags::DM_BUFFER_FULL.bits() == 0 {
            return parse(&req.buf);
        }
        if size >= LARGEST_BUFFER {
            return Err(ListError::Malformed(
                "the kernel asks for more than 256 MiB".into(),
            ));
        }
        size *= 2;
    }
}

/// The records of a DM_LIST_DEVICES reply (`reply` starts with the dm_ioctl header).
fn parse(reply: &[u8]) -> Result<Vec<Listed>, ListError> {
    let bad = |what: &str| ListError::Malformed(what.to_string());
    let version = (u32_at(reply, VERSION), u32_at(reply, VERSION + 4));
    let uuids = matches!(version, (Some(major), Some(minor)) if (major, minor) >= UUIDS_SINCE);
    let start = u32_at(reply, DATA_START).ok_or_else(|| bad("short header"))? as usize;
    let end = u32_at(reply, DATA_SIZE).ok_or_else(|| bad("short header"))? as usize;
    let data = reply
        .get(start..end)
        .ok_or_else(|| bad("data outside the buffer"))?;
    let mut out = Vec::new();
    let mut at = 0usize;
    // An empty list is one record with dev 0 (or no data at all).
    if data.len() < NAME || u64_at(data, 0) == Some(0) {
        return Ok(out);
    }
    loop {
        let rec = &data[at..];
        let dev = u64_at(rec, 0).ok_or_else(|| bad("truncated record"))?;
        let next = u32_at(rec, 8).ok_or_else(|| bad("truncated record"))? as usize;
        let name_len = rec
            .get(NAME..)
            .and_then(|r| r.iter().position(|b| *b == 0))
            .ok_or_else(|| bad("unterminated name"))?;
        let name = std::str::from_utf8(&rec[NAME..NAME + name_len])
            .map_err(|_| bad("name is not UTF-8"))?
            .to_string();
        let uuid = if uuids {
            let extra = (at + NAME + name_len + 1).next_multiple_of(8) - at;
            let flags = u32_at(rec, extra + 4).ok_or_else(|| bad("truncated record"))?;
            if flags & HAS_UUID != 0 {
                let u = rec.get(extra + 8..).ok_or_else(|| bad("truncated uuid"))?;
                let len = u
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or_else(|| bad("unterminated uuid"))?;
                let uuid = std::str::from_utf8(&u[..len]).map_err(|_| bad("uuid is not UTF-8"))?;
                Some(uuid.to_string())
            } else if flags & DOESNT_HAVE_UUID != 0 {
                Some(String::new())
            } else {
                None
            }
        } else {
            None
        };
        out.push(Listed {
            name,
            dev: DevNum::from_rdev(dev),
            uuid,
        });
        if next == 0 {
            return Ok(out);
        }
        if next < NAME || at + next >= data.len() {
            return Err(bad("record offset outside the reply"));
        }
        at += next;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("DM_LIST_DEVICES failed: {0}")]
    Ioctl(nix::errno::Errno),
    #[error("DM_LIST_DEVICES reply is malformed: {0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::ioctl::HEADER;
    use super::*;

    /// A reply as the kernel lays it out: header, then records aligned to 8 bytes.
    fn reply(minor: u32, records: &[(u64, &str, Option<&str>)]) -> Vec<u8> {
        let mut data = Vec::new();
        for (i, (dev, name, uuid)) in records.iter().enumerate() {
            let at = data.len();
            data.extend_from_slice(&dev.to_ne_bytes());
            data.extend_from_slice(&0u32.to_ne_bytes()); // next, patched below
            data.extend_from_slice(name.as_bytes());
            data.push(0);
            data.resize(data.len().next_multiple_of(8), 0);
            data.extend_from_slice(&7u32.to_ne_bytes()); // event_nr
            if minor >= 45 {
                let flags = if uuid.is_some() {
                    HAS_UUID
                } else {
                    DOESNT_HAVE_UUID
                };
                data.extend_from_slice(&flags.to_ne_bytes());
                if let Some(u) = uuid {
                    data.extend_from_slice(u.as_bytes());
                    data.push(0);
                }
            } else {
                data.extend_from_slice(&0u32.to_ne_bytes());
            }
            data.resize(data.len().next_multiple_of(8), 0);
            if i + 1 < records.len() {
                let next = (data.len() - at) as u32;
                data[at + 8..at + 12].copy_from_slice(&next.to_ne_bytes());
            }
        }
        let mut out = vec![0u8; HEADER];
        out[0..4].copy_from_slice(&4u32.to_ne_bytes());
        out[4..8].copy_from_slice(&minor.to_ne_bytes());
        out[DATA_SIZE..DATA_SIZE + 4]
            .copy_from_slice(&((HEADER + data.len()) as u32).to_ne_bytes());
        out[DATA_START..DATA_START + 4].copy_from_slice(&(HEADER as u32).to_ne_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn names_devices_and_uuids_come_out_of_a_new_kernels_reply() {
        let dev = (254u64 << 8) | 3;
        let got = parse(&reply(
            47,
            &[
                (dev, "VG_XenStorage--a-VHD--b", Some("LVM-abc")),
                (dev + 1, "ghost", None),
            ],
        ))
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "VG_XenStorage--a-VHD--b");
        assert_eq!(
            got[0].dev,
            DevNum {
                major: 254,
                minor: 3
            }
        );
        assert_eq!(got[0].uuid.as_deref(), Some("LVM-abc"));
        assert_eq!(got[1].name, "ghost");
        // The kernel said "no uuid": known empty, not unknown.
        assert_eq!(got[1].uuid.as_deref(), Some(""));
    }

    #[test]
    fn an_old_kernels_reply_says_uuids_unknown() {
        let got = parse(&reply(
            39,
            &[(0x1fe03, "a", Some("LVM-x")), (0x1fe04, "b", None)],
        ))
        .unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|l| l.uuid.is_none()));
    }

    #[test]
    fn an_empty_list_and_a_damaged_reply() {
        assert!(parse(&reply(47, &[])).unwrap().is_empty());
        let mut r = reply(47, &[(1, "a", None), (2, "b", None)]);
        // First record's `next` pointing past the end.
        r[HEADER + 8..HEADER + 12].copy_from_slice(&10_000u32.to_ne_bytes());
        assert!(matches!(parse(&r), Err(ListError::Malformed(_))));
        let mut r = reply(47, &[(1, "abc", None)]);
        let end = r.len();
        r.truncate(HEADER + 14); // name cut before its NUL
        r[DATA_SIZE..DATA_SIZE + 4].copy_from_slice(&((HEADER + 14) as u32).to_ne_bytes());
        assert!(end > r.len() && matches!(parse(&r), Err(ListError::Malformed(_))));
    }
}
