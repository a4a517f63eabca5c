//! The kernel's users of the mapping: stacked holders, processes holding it open, mounts. The
//! open count is the kernel's own count of them; these are searched to name them when it is
//! above 0, and a search that could not look says so.

use super::{codes, reason, Reason, Signal};
use crate::dm::DmDevice;
use crate::facts::{Facts, UsersSearched};

/// The users' reasons (holders, then openers and mounts when searched).
pub(super) fn reasons(f: &Facts, dev: &DmDevice) -> Vec<Reason> {
    use Signal::*;
    let mut rs: Vec<Reason> = Vec::new();
    // Kernel users.
    if f.users_searched == UsersSearched::Nothing && dev.status.is_none() {
        rs.push(reason(
            &codes::HOLDERS_NOT_SEARCHED,
            Clear,
            "not searched",
            "a host scan does not look for the users of LVM's own mappings",
        ));
    } else if f.users_searched == UsersSearched::Nothing {
        rs.push(reason(
            &codes::HOLDERS_NOT_OPEN,
            Clear,
            "open count 0",
            "the kernel's own count of users is 0: no opener, mmap, mount, stacked device, swap or loop device holds it (the count is authoritative; users are searched only to name them)",
        ));
    } else {
        rs.push(if let Some(why) = &f.holders_unreadable {
            reason(
                &codes::HOLDERS_UNREADABLE,
                Suspicious,
                "not looked at",
                format!("stacked devices could not be looked for: {why}"),
            )
        } else if f.holders.is_empty() {
            reason(
                &codes::HOLDERS_NONE,
                Clear,
                "none",
                "no device is stacked on it",
            )
        } else {
            let names: Vec<String> = f.holders.iter().map(|h| h.name.clone()).collect();
            reason(
                &codes::HOLDERS_STACKED,
                InUse,
                names.join(", "),
                format!("stacked under {}", names.join(", ")),
            )
        });
        if f.users_searched == UsersSearched::Holders {
            rs.push(reason(
                &codes::OPENERS_NOT_SEARCHED,
                Clear,
                "not searched",
                "a host scan does not walk /proc; `dmheal inspect` names the processes",
            ));
        } else if let Some(why) = &f.proc_unreadable {
            for (code, what) in [
                (&codes::OPENERS_UNREADABLE, "processes holding it open"),
                (&codes::MOUNTS_UNREADABLE, "mounts of it"),
            ] {
                rs.push(reason(
                    code,
                    Suspicious,
                    "not looked at",
                    format!("{what} could not be looked for: {why}"),
                ));
            }
        } else {
            rs.push(if f.openers.is_empty() {
                reason(
                    &codes::OPENERS_NONE,
                    Clear,
                    "none",
                    "no process has it open",
                )
            } else {
                let who: Vec<String> = f
                    .openers
                    .iter()
                    .map(|o| format!("pid {} ({})", o.pid, o.command))
                    .collect();
                reason(
                    &codes::OPENERS_HOLDING,
                    InUse,
                    who.join(", "),
                    format!("held open by {}", who.join(", ")),
                )
            });
            rs.push(if f.mounts.is_empty() {
                reason(
                    &codes::MOUNTS_NONE,
                    Clear,
                    "none",
                    "not mounted in any mount namespace",
                )
            } else {
                let at: Vec<String> = f
                    .mounts
                    .iter()
                    .map(|m| format!("{} (ns of pid {})", m.mount_point, m.pid))
                    .collect();
                reason(
                    &codes::MOUNTS_MOUNTED,
                    InUse,
                    at.join(", "),
                    format!("mounted at {}", at.join(", ")),
                )
            });
        }
    }
    rs
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{from_facts, Layer, Signal, Verdict};
    use crate::facts::{Facts, UsersSearched};
    use crate::kernel::{Holder, Mount, Opener};

    #[test]
    fn each_kernel_user_makes_it_in_use() {
        each_change_gives(
            Verdict::InUse,
            Signal::InUse,
            vec![
                (
                    "holders_stacked",
                    Box::new(|f: &mut Facts| {
                        f.holders = vec![Holder {
                            name: "dm-1".into(),
                            dev: None,
                            depth: 1,
                        }]
                    }),
                ),
                (
                    "openers_holding",
                    Box::new(|f: &mut Facts| {
                        f.openers = vec![Opener {
                            pid: 42,
                            command: "qemu".into(),
                            fd: 3,
                            path: "/dev/dm-0".into(),
                        }]
                    }),
                ),
                (
                    "mounts_mounted",
                    Box::new(|f: &mut Facts| {
                        f.mounts = vec![Mount {
                            pid: 1,
                            command: "init".into(),
                            mount_point: "/mnt".into(),
                            namespace: "mnt:[1]".into(),
                        }]
                    }),
                ),
            ],
        );
    }

    #[test]
    fn an_unopened_mapping_not_searched_is_still_a_ghost_and_says_why() {
        let mut f = ghost();
        f.users_searched = UsersSearched::Nothing;
        let d = from_facts(&f);
        assert_eq!(d.verdict, Verdict::Ghost);
        assert_eq!(code_of(&d, Layer::Holders), "holders_not_open");
        assert!(!d.reasons.iter().any(|r| r.layer == Layer::Openers));
    }

    #[test]
    fn an_open_mapping_whose_users_could_not_be_read_says_so() {
        let mut f = ghost();
        status(&mut f).open_count = 1;
        f.proc_unreadable = Some("permission denied".into());
        let d = from_facts(&f);
        assert_eq!(d.verdict, Verdict::InUse, "{d:#?}");
        assert!(
            d.reasons.iter().any(|r| r.code == "openers_unreadable"),
            "{d:#?}"
        );
    }
}
