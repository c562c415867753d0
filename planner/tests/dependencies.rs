//! The algorithm crates stay free of the runtime's heavy dependencies, so their tests build and
//! run on a machine without libtorch: `cargo tree` over each, normal and dev dependencies, names
//! none of libtorch's bindings, zenoh or actix.

use std::process::Command;

const ALGORITHM_CRATES: [&str; 6] = [
    "quantpipe-messages",
    "quantpipe-planner",
    "quantpipe-simulator",
    "quantpipe-adaptive",
    "quantpipe-batching",
    "quantpipe-security",
];
const FORBIDDEN: [&str; 5] = ["torch-sys", "tch", "zenoh", "actix", "actix-rt"];

#[test]
fn algorithm_crates_depend_on_neither_libtorch_nor_zenoh_nor_actix() {
    for krate in ALGORITHM_CRATES {
        let out = Command::new(env!("CARGO"))
            .args([
                "tree",
                "--offline",
                "--prefix",
                "none",
                "--edges",
                "normal,dev,build",
            ])
            .args(["--format", "{p}", "-p", krate])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("running cargo tree");
        assert!(
            out.status.success(),
            "cargo tree -p {krate}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8(out.stdout).expect("utf-8 tree");
        assert!(tree.contains(krate), "{krate} missing from its own tree");
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            assert!(
                !FORBIDDEN.contains(&name),
                "{krate} depends on {name}: {line}"
            );
        }
    }
}
