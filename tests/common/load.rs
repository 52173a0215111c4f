//! Runs of the load generator (`convoke-load`, built with the `load` feature).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub fn load_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_convoke-load"))
}

/// A generator run in the background; `finish` waits for it and returns its JSON report.
pub struct LoadRun {
    child: Child,
    args: Vec<String>,
    _dir: tempfile::TempDir,
    json: PathBuf,
}

pub fn spawn_load(args: &[&str]) -> LoadRun {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let child = Command::new(load_bin())
        .args(args)
        .arg("--quiet")
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    LoadRun {
        child,
        args: args.iter().map(|s| s.to_string()).collect(),
        _dir: dir,
        json,
    }
}

impl LoadRun {
    pub fn finish(self) -> serde_json::Value {
        let out = self.child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "convoke-load {:?}: {}{}",
            self.args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&std::fs::read(&self.json).unwrap()).unwrap()
    }
}

/// `serve` flags for load: every generated call comes from one loopback address and one
/// owner, so the per-source, per-owner and per-conference caps are lifted as an operator who
/// benchmarks would.
pub const LOAD_LIMITS: &[&str] = &[
    "--max-calls-per-source",
    "100000",
    "--max-live-per-account",
    "10000",
    "--max-participants",
    "10000",
];

/// `conference` arguments against `server` as alice, then `extra`.
pub fn conference_args(server: &super::Server, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "conference",
        "--sip",
        &server.sip.to_string(),
        "--http",
        &server.http.to_string(),
        "--user",
        "alice",
        "--password",
        super::password("alice"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub fn run_load(args: &[&str]) -> serde_json::Value {
    spawn_load(args).finish()
}

/// A process killed when dropped (a reference forwarder, a SIPp UAS).
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
