//! Settings files of launched processes: a [`Settings`] value serialised as TOML, the format
//! `quantpipe node --config` and `quantpipe run --config` read.

use anyhow::{Context, Result};
use quantpipe_actors::runtime::config::{ForcedStage, Role, Settings, ZenohSettings};
use std::path::{Path, PathBuf};

/// Settings of `name` in `fleet`, a zenoh peer listening on `listen` and connecting to
/// `connect`, every other section at its defaults.
pub fn peer(
    fleet: &str,
    name: &str,
    role: Role,
    model_dir: &Path,
    listen: Vec<String>,
    connect: Vec<String>,
) -> Settings {
    let mut s = Settings::new(fleet, name, role, model_dir);
    s.zenoh = ZenohSettings::peer(listen, connect);
    s
}

/// Settings of `name` in `fleet`, a zenoh peer listening on loopback port `listen` and
/// connecting to loopback port `connect` when given (a leader connects to no one).
pub fn loopback_peer(
    fleet: &str,
    name: &str,
    role: Role,
    model_dir: &Path,
    listen: u16,
    connect: Option<u16>,
) -> Settings {
    let connect = connect.map(crate::loopback).into_iter().collect();
    peer(
        fleet,
        name,
        role,
        model_dir,
        vec![crate::loopback(listen)],
        connect,
    )
}

/// A forced plan (`leader.stages`): each node with its first and last unit.
pub fn forced(stages: &[(&str, [usize; 2])]) -> Vec<ForcedStage> {
    stages
        .iter()
        .map(|&(node, units)| ForcedStage {
            node: node.into(),
            units,
        })
        .collect()
}

/// `settings` as the TOML text [`Settings::load`] reads back.
pub fn to_toml(settings: &Settings) -> Result<String> {
    toml::to_string(settings)
        .with_context(|| format!("serialising the settings of {}", settings.name))
}

/// Writes `settings` to `dir/<name>.toml` and answers the path.
pub fn write(dir: &Path, settings: &Settings) -> Result<PathBuf> {
    let path = dir.join(format!("{}.toml", settings.name));
    std::fs::write(&path, to_toml(settings)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_settings_load_back_with_every_section() {
        let dir = tempfile::tempdir().unwrap();
        let listen = vec!["tcp/127.0.0.1:7001".into()];
        let mut s = peer(
            "f1",
            "leader",
            Role::Leader,
            Path::new("/m"),
            listen,
            vec![],
        );
        s.zenoh
            .extra
            .insert("transport/link/tx/lease".into(), "30000".into());
        s.leader.expected = vec!["a".into(), "b".into()];
        s.leader.stages = forced(&[("a", [1, 8]), ("b", [9, 24])]);
        s.device.profile_file = Some(dir.path().join("profile.json"));
        s.device.slowdown = 4.0;
        s.metrics.file = Some(dir.path().join("m.jsonl"));
        let path = write(dir.path(), &s).unwrap();
        assert_eq!(path, dir.path().join("leader.toml"));
        let back = Settings::load(&path).unwrap();
        assert_eq!(to_toml(&back).unwrap(), to_toml(&s).unwrap());
        assert_eq!(back.role, Role::Leader);
        assert_eq!(back.leader.stages[1].units, [9, 24]);
        assert_eq!(back.zenoh.extra["transport/link/tx/lease"], "30000");
    }

    #[test]
    fn a_loopback_peer_listens_on_its_port_and_connects_to_the_given_one() {
        let m = Path::new("m");
        let a = loopback_peer("f", "a", Role::Device, m, 7002, Some(7001));
        assert_eq!(a.zenoh.listen, ["tcp/127.0.0.1:7002"]);
        assert_eq!(a.zenoh.connect, ["tcp/127.0.0.1:7001"]);
        let leader = loopback_peer("f", "leader", Role::Leader, m, 7001, None);
        assert!(leader.zenoh.connect.is_empty());
    }

    #[test]
    fn absent_options_are_left_out_so_defaults_apply() {
        let s = Settings::new("f", "a", Role::Device, Path::new("m"));
        let text = to_toml(&s).unwrap();
        assert!(!text.contains("profile_file"), "{text}");
        assert!(!text.contains("device_type"), "{text}");
    }
}
