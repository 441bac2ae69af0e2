//! The agent CLIs the suite runs: the pinned versions its fixtures were recorded from. A CLI
//! on PATH is used when it is that version; otherwise the pinned one is installed from npm
//! into a cache under `target/` (once, whichever test asks first) and used from there, so a
//! machine with another version, or none, still tests the right one. `TROUPE_TEST_CLAUDE_BIN`
//! and `TROUPE_TEST_CODEX_BIN` name an executable to use instead.
//!
//! Claude Code is tested at two versions (the ones `troupe::agents::claude::TESTED` names):
//! every test binary runs the newest, and the binary `older_claude` runs the core scenarios
//! again on the oldest. `TROUPE_TEST_CLAUDE_VERSION` picks the version for any binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Cli {
    pub package: &'static str,
    pub version: &'static str,
    pub bin: &'static str,
    pub env: &'static str,
}

/// The Claude Code versions the suite runs, oldest first.
pub const CLAUDE_VERSIONS: [&str; 2] = ["2.1.197", "2.1.328"];

/// The Claude Code version this test binary runs.
pub fn claude_version() -> &'static str {
    static VERSION: OnceLock<&'static str> = OnceLock::new();
    VERSION.get_or_init(|| {
        if let Ok(v) = std::env::var("TROUPE_TEST_CLAUDE_VERSION")
            && !v.is_empty()
        {
            return CLAUDE_VERSIONS
                .into_iter()
                .find(|t| *t == v)
                .unwrap_or_else(|| {
                    panic!("TROUPE_TEST_CLAUDE_VERSION={v} is not one of {CLAUDE_VERSIONS:?}")
                });
        }
        // Each test target is a crate of its own, named after its file.
        if env!("CARGO_CRATE_NAME") == "older_claude" {
            CLAUDE_VERSIONS[0]
        } else {
            CLAUDE_VERSIONS[CLAUDE_VERSIONS.len() - 1]
        }
    })
}

/// Whether this binary runs the oldest tested Claude Code.
/// The MCP era the tested Claude Code picks with troupe: 2.1.328 takes the stateless
/// 2026-07-28 when offered; 2.1.197 knows only sessions.
#[allow(dead_code)]
pub fn claude_era() -> troupe::mcp::clients::Era {
    if claude_is_oldest() {
        troupe::mcp::clients::Era::Session
    } else {
        troupe::mcp::clients::Era::Stateless
    }
}

pub fn claude_is_oldest() -> bool {
    claude_version() == CLAUDE_VERSIONS[0]
}

pub fn claude_cli() -> Cli {
    Cli {
        package: "@anthropic-ai/claude-code",
        version: claude_version(),
        bin: "claude",
        env: "TROUPE_TEST_CLAUDE_BIN",
    }
}

pub const CODEX: Cli = Cli {
    package: "@openai/codex",
    version: "0.169.0",
    bin: "codex",
    env: "TROUPE_TEST_CODEX_BIN",
};

/// The Claude Code executable to run.
pub fn claude_bin() -> String {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| resolve(&claude_cli())).clone()
}

/// The Codex executable to run.
pub fn codex_bin() -> String {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| resolve(&CODEX)).clone()
}

fn resolve(cli: &Cli) -> String {
    if let Ok(bin) = std::env::var(cli.env)
        && !bin.is_empty()
        && version_of(&bin).is_some_and(|v| v.contains(cli.version))
    {
        return bin;
    }
    if version_of(cli.bin).is_some_and(|v| v.contains(cli.version)) {
        return cli.bin.to_string();
    }
    let cached = install(cli);
    match version_of(&cached.display().to_string()) {
        Some(v) if v.contains(cli.version) => cached.display().to_string(),
        other => panic!(
            "{} {} was installed into {} but reports {other:?}",
            cli.package,
            cli.version,
            cached.display()
        ),
    }
}

fn version_of(bin: &str) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `target/agent-clis`, beside the tests' own temp dir.
fn cache_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("agent-clis")
}

/// Installs the pinned package into its own prefix under the cache, holding a lock so that
/// test processes running side by side install it once.
fn install(cli: &Cli) -> PathBuf {
    let root = cache_root();
    std::fs::create_dir_all(&root).expect("cache dir");
    let prefix = root.join(format!("{}-{}", cli.bin, cli.version));
    let bin = prefix.join("node_modules").join(".bin").join(cli.bin);
    let lock = std::fs::File::create(root.join(format!("{}.lock", cli.bin))).expect("lock file");
    let _held = Flock::exclusive(&lock);
    if bin.exists() {
        return bin;
    }
    eprintln!(
        "installing {}@{} into {} for the tests",
        cli.package,
        cli.version,
        prefix.display()
    );
    std::fs::create_dir_all(&prefix).expect("prefix dir");
    let out = Command::new("npm")
        .args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--prefix",
        ])
        .arg(&prefix)
        .arg(format!("{}@{}", cli.package, cli.version))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the tests need {}@{}: no such CLI on PATH, and npm cannot run ({e}); install \
                 npm, or the CLI, or name one with {}",
                cli.package, cli.version, cli.env
            )
        });
    assert!(
        out.status.success() && bin.exists(),
        "npm could not install {}@{}: {}{}",
        cli.package,
        cli.version,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

/// An exclusive advisory lock on a file, released when dropped.
struct Flock<'a>(&'a std::fs::File);

impl<'a> Flock<'a> {
    fn exclusive(file: &'a std::fs::File) -> Flock<'a> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor this process holds open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "cannot lock {file:?}");
        Flock(file)
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}
