//! The workspace the harnesses measure: where it is, building its servers, where they land, and
//! where a report goes.
//!
//! The servers are examples of the workspace's root package (`examples/`), and the tokio twins
//! of two of them, binaries of this package ([`TWINS`], `tools/src/bin/`). A harness builds them
//! in release mode with the same cargo that runs the harness (`cargo build --release --example
//! NAME`, `-p ripple-tools --bin NAME`), so that a bench never measures a stale or a debug
//! binary, and then starts them from the target folder. A harness's report goes to `docs/` only
//! from a full run; a quick or partial run writes to the folder its `--out` option names, or to a
//! fresh temporary one.

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

/// The servers that are binaries of this package rather than examples: the same servers as
/// `examples/echo.rs` and `examples/hello_http.rs`, on tokio, for comparison.
pub const TWINS: [&str; 2] = ["echo_tokio", "hello_http_tokio"];

/// Builds the programs `names` (examples, or [`TWINS`]) in release mode, in one `cargo build`;
/// whether it succeeded. Cargo's own output goes to stderr as it comes.
pub fn build(names: &[&str]) -> io::Result<bool> {
    let (twins, examples): (Vec<&str>, Vec<&str>) =
        names.iter().partition(|name| TWINS.contains(name));
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(root()).args(["build", "--release"]);
    if !examples.is_empty() {
        cargo.args(["-p", "ripple"]);
        for example in examples {
            cargo.args(["--example", example]);
        }
    }
    if !twins.is_empty() {
        cargo.args(["-p", "ripple-tools"]);
        for twin in twins {
            cargo.args(["--bin", twin]);
        }
    }
    Ok(cargo.status()?.success())
}

/// The release binary of the program `name` (an example, or one of [`TWINS`]), where [`build`]
/// leaves it.
pub fn program(name: &str) -> PathBuf {
    let release = target_dir().join("release");
    if TWINS.contains(&name) {
        release.join(name)
    } else {
        release.join("examples").join(name)
    }
}

/// The folder a report goes to: `out` if given (created if missing); else `docs/` in the root
/// when the run is one whose report is committed there (`committed`); else a fresh temporary
/// folder named after `name`, so that a quick or partial run never overwrites the committed
/// report.
pub fn out_dir(out: Option<PathBuf>, committed: bool, name: &str) -> io::Result<PathBuf> {
    match out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            Ok(dir)
        }
        None if committed => Ok(root().join("docs")),
        None => fresh_temp_dir(name),
    }
}

/// A new, empty folder under the system's temporary folder: `NAME-PID-N`.
fn fresh_temp_dir(name: &str) -> io::Result<PathBuf> {
    let base = std::env::temp_dir();
    for n in 0.. {
        let dir = base.join(format!("{name}-{}-{n}", std::process::id()));
        // `create_dir` fails if the folder exists, so a folder left by an earlier run (whose
        // pid was the same) is never reused.
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    unreachable!("some folder name is free")
}
