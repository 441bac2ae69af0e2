//! The scripted Claude Code (`examples/scripted_cli.rs`): a stand-in for Claude Code 2.1.328
//! that troupe launches and drives as it does the real one, at a few MB each, for tests and
//! benchmarks that run many instances. Its answers are set by `SCRIPTED_CLI_*` variables in
//! the instances' environment (see the example's header).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::Harness;

/// The stand-in's executable: `SCRIPTED_CLI_BIN` when set, else `examples/scripted_cli`
/// built for the profile this test runs in. `cargo test --test NAME` builds no examples, so
/// the first caller builds it (once per process, under a lock across test processes; a
/// no-op when it is up to date).
pub fn bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SCRIPTED_CLI_BIN").filter(|b| !b.is_empty()) {
            return PathBuf::from(bin);
        }
        // A test runs as <target>/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().expect("the test's own path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test runs from <target>/<profile>/deps");
        let lock = std::fs::File::create(profile_dir.join("scripted_cli.lock")).expect("lock");
        lock.lock().expect("lock the scripted_cli build");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .args(["build", "--quiet", "--example", "scripted_cli"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("SQLX_OFFLINE", "true");
        // What cargo sets for this test process is not the environment the suite was built
        // in: a dependency's build script that watches one of these (ring's watches
        // CARGO_MANIFEST_DIR) would be rebuilt, and everything above it, the lib included
        // (35 s of a 55 s test in CI), then rebuilt again by the next `cargo test`.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name == "OUT_DIR"
                || [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_CRATE_",
                    "CARGO_BIN_",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .iter()
                .any(|p| name.starts_with(p))
            {
                cargo.env_remove(&*name);
            }
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let out = cargo.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo build --example scripted_cli failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile_dir.join("examples").join("scripted_cli");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
    .clone()
}

/// A harness whose Claude instances run the stand-in, with `env` (`SCRIPTED_CLI_*`) added to
/// their environment.
pub async fn harness(env: &[(&str, &str)]) -> Harness {
    let bin = bin().display().to_string();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Harness::start_with(move |config| {
        config.claude_bin = bin.clone();
        config.instance_env.extend(env.iter().cloned());
    })
    .await
}

/// The process in a tmux session's pane: troupe starts the CLI there directly, with no shell.
pub fn pane_pid(h: &Harness, session: &str) -> u32 {
    let out = Command::new("tmux")
        .args(["-L", &h.socket, "display-message", "-p", "-t"])
        .arg(format!("={session}:"))
        .arg("#{pane_pid}")
        .output()
        .expect("tmux runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pane pid for {session}: {text:?}"))
}

/// CPU time a process has used, user and system, in clock ticks (`/proc/<pid>/stat`).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process runs");
    // The command name may hold spaces: fields are counted after its closing parenthesis,
    // where utime and stime are the 12th and 13th.
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| fields[i].parse::<u64>().expect("a tick count");
    field(11) + field(12)
}

/// A process's resident memory in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("a VmRSS line")
}
