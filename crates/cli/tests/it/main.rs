//! End-to-end tests of the `ballast` binary: the commands people and scripts run, their output
//! files, exit codes and error messages. One test binary (see ARCHITECTURE.md, "Tests").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod assess;
mod assess_online;
mod catalog;
mod cmdb;
mod exec;
mod server;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `ballast ARGS` in `dir`.
pub fn ballast(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .current_dir(dir)
        .env_remove("BALLAST_CATALOG")
        .output()
        .expect("run ballast")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
