//! What `troupe serve` checks before it serves, so that a missing CLI or an unwritable
//! directory is said at start, naming the flag that fixes it, not at the first spawn.

use crate::agents::AgentKind;
use std::path::{Path, PathBuf};

/// The versions found, for the start line.
#[derive(Debug, Clone)]
pub struct Found {
    pub tmux: String,
    pub claude: String,
    /// Codex's version, or why Codex instances cannot run: Codex is optional.
    pub codex: Result<String, String>,
}

pub fn check(claude_bin: &str, codex_bin: &str, data_dir: &Path) -> anyhow::Result<Found> {
    let tmux = crate::tmux::version().map_err(|e| {
        anyhow::anyhow!(
            "cannot run tmux ({e}); troupe runs every instance in tmux: install it (apt install \
             tmux, brew install tmux)"
        )
    })?;
    let claude = crate::process::version(claude_bin, &["--version"]).map_err(|e| {
        let kind = AgentKind::Claude;
        anyhow::anyhow!(
            "cannot run the Claude Code CLI {claude_bin:?} ({e}); install it with `npm install -g \
             {}`, or point {} at it. A server started from a service or another shell may not \
             see your PATH: give the full path",
            kind.npm_package(),
            kind.bin_flag()
        )
    })?;
    writable(data_dir).map_err(|e| {
        anyhow::anyhow!(
            "troupe cannot write to its data directory {} ({e}); choose another with --data-dir \
             (TROUPE_DATA_DIR) or --db (TROUPE_DB)",
            data_dir.display()
        )
    })?;
    let codex = crate::process::version(codex_bin, &["--version"]).map_err(|e| {
        let kind = AgentKind::Codex;
        format!(
            "cannot run the Codex CLI {codex_bin:?} ({e}); install it with `npm install -g {}`, \
             or point {} at it, and restart troupe",
            kind.npm_package(),
            kind.bin_flag()
        )
    });
    Ok(Found {
        tmux,
        claude,
        codex,
    })
}

/// A path as given, made absolute against the current directory: instances start in other
/// directories, where a relative path would point somewhere else.
pub fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path)
        .map_err(|e| anyhow::anyhow!("cannot make {} an absolute path: {e}", path.display()))
}

pub(crate) fn writable(dir: &Path) -> std::io::Result<()> {
    crate::private::dir(dir)?;
    let probe = dir.join(".troupe-write-check");
    crate::private::write(&probe, b"ok")?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_codex_only_turns_codex_off() {
        let dir = tempfile::tempdir().unwrap();
        if let Ok(found) = check("true", "/nonexistent/codex", dir.path()) {
            let why = found.codex.unwrap_err();
            assert!(
                why.contains("--codex-bin") && why.contains("@openai/codex"),
                "{why}"
            );
        }
    }

    #[test]
    fn a_missing_cli_is_named_with_the_flag_that_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = check(
            "/nonexistent/claude",
            crate::agents::AgentKind::Codex.default_bin(),
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--claude-bin") && e.contains("TROUPE_CLAUDE_BIN"),
            "{e}"
        );
        assert!(e.contains("/nonexistent/claude"), "{e}");
    }

    #[test]
    fn an_unwritable_data_dir_is_named() {
        let e = writable(Path::new("/proc/troupe-cannot-be-here")).unwrap_err();
        assert!(!e.to_string().is_empty());
        let p = absolute(Path::new("rel/t.db")).unwrap();
        assert!(
            p.is_absolute() && p.ends_with("rel/t.db"),
            "{}",
            p.display()
        );
    }
}
