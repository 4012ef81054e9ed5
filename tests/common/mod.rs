//! Helpers shared by the end-to-end tests of the `coremlq` command line.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `coremlq` binary with `args`, in the crate's root folder.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coremlq"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("running coremlq: {e}"))
}

/// Runs `coremlq` with `args`: (exit code, or -1 when killed by a signal; stdout; stderr).
pub fn coremlq(args: &[&str]) -> (i32, String, String) {
    let out = run(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the subcommand `sub` of `coremlq` with `args`; see [`coremlq`].
pub fn subcommand(sub: &str, args: &[&str]) -> (i32, String, String) {
    let all: Vec<&str> = std::iter::once(sub).chain(args.iter().copied()).collect();
    coremlq(&all)
}
