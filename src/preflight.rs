//! What `troupe serve` checks before it serves, so that a missing CLI or an unwritable
//! directory is said at start, naming the flag that fixes it, not at the first spawn.

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
    let claude = version(claude_bin, &["--version"]).map_err(|e| {
        anyhow::anyhow!(
            "cannot run the Claude Code CLI {claude_bin:?} ({e}); install it with `npm install -g \
             @anthropic-ai/claude-code`, or point --claude-bin (TROUPE_CLAUDE_BIN) at it. A \
             server started from a service or another shell may not see your PATH: give the \
             full path"
        )
    })?;
    writable(data_dir).map_err(|e| {
        anyhow::anyhow!(
            "troupe cannot write to its data directory {} ({e}); choose another with --data-dir \
             (TROUPE_DATA_DIR) or --db (TROUPE_DB)",
            data_dir.display()
        )
    })?;
    let codex = version(codex_bin, &["--version"]).map_err(|e| {
        format!(
            "cannot run the Codex CLI {codex_bin:?} ({e}); install it with `npm install -g \
             @openai/codex`, or point --codex-bin (TROUPE_CODEX_BIN) at it, and restart troupe"
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

/// The first line `bin args` prints, or why there is none.
pub fn version(bin: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("").trim().to_string();
    if out.status.success() && !first.is_empty() {
        Ok(first)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{bin} {} exited with {}: {}",
            args.join(" "),
            out.status,
            err.lines().next().unwrap_or("").trim()
        ))
    }
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
