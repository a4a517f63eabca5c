//! The commands dmheal tells an administrator to run to heal a ghost, built in one place so
//! that a scan's xapi message, `pool scan`, `dmheal vm` and the doctor say the same thing.

/// Heal a VDI's ghost on the host that holds it, from anywhere in the pool (the plugin's
/// `heal`, which decides again there under SM's lock).
pub fn heal_through_plugin(host_uuid: &str, vdi_uuid: &str) -> String {
    format!(
        "xe host-call-plugin host-uuid={host_uuid} plugin=dmheal fn=heal args:vdi_uuid={vdi_uuid} args:apply=true"
    )
}

/// Heal `target` (a VDI uuid, an LV path or a DM name) on the host where this runs.
pub fn heal_here(target: &str) -> String {
    format!("dmheal heal {target} --apply")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_commands_are_what_the_plugin_and_the_cli_take() {
        assert_eq!(
            super::heal_through_plugin("h", "v"),
            "xe host-call-plugin host-uuid=h plugin=dmheal fn=heal args:vdi_uuid=v args:apply=true"
        );
        assert_eq!(super::heal_here("v"), "dmheal heal v --apply");
    }
}
