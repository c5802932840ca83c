//! The workspace the harnesses measure: where it is, building its servers, and where they land.
//!
//! The servers are examples of the workspace's root package (`examples/`). A harness builds them
//! in release mode with the same cargo that runs the harness (`cargo build --release --example
//! NAME`), so that a bench never measures a stale or a debug binary, and then starts them from
//! the target folder.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's root folder, one above this package's.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tools/ is a folder of the workspace")
}

/// The folder cargo builds into: `CARGO_TARGET_DIR` if it is set, else `target/` in the root.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Builds the examples `names` in release mode, in one `cargo build`; whether it succeeded.
/// Cargo's own output goes to stderr as it comes.
pub fn build(names: &[&str]) -> io::Result<bool> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(root()).args(["build", "--release"]);
    for name in names {
        cargo.args(["--example", name]);
    }
    Ok(cargo.status()?.success())
}

/// The release binary of the example `name`, as [`build`] leaves it.
pub fn program(name: &str) -> PathBuf {
    target_dir().join("release/examples").join(name)
}
