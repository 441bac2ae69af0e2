//! Which versions of each CLI troupe is tested against, and what a found version means.
//!
//! The CLIs change under their users: a release renames a permission mode or reorders a
//! dialog, and `npm install` hands everyone the newest one. So each agent declares the
//! versions its tests run (with captures recorded from each under `tests/fixtures/`), troupe
//! reads the installed CLI's version at start and before each spawn, and says plainly whether
//! that version was tested. Per-version facts live with the agent that needs them, keyed by a
//! [`Version`]; nothing outside `src/agents/` compares versions.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// A CLI's `major.minor.patch`, read out of whatever its `--version` prints
/// (`2.1.328 (Claude Code)`, `codex-cli 0.169.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// The first `N.N.N` in `text`, if any.
    pub fn find(text: &str) -> Option<Version> {
        text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .find_map(Version::parse)
    }

    /// Exactly `N.N.N`.
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.');
        let v = Version(
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        );
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One CLI's tested versions, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Tested {
    /// The product's name, as people know it ("Claude Code").
    pub product: &'static str,
    pub versions: &'static [Version],
}

/// What a found version is, against the tested ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Tested,
    /// Between two tested versions, not itself tested.
    Between,
    Newer,
    Older,
    /// `--version` printed no version troupe can read.
    Unreadable,
}

/// A CLI's version as found, and how it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub product: &'static str,
    /// What `--version` printed (its first line).
    pub printed: String,
    pub version: Option<Version>,
    pub standing: Standing,
    tested: &'static [Version],
}

impl Tested {
    pub fn assess(&self, printed: &str) -> Assessment {
        let version = Version::find(printed);
        let (first, last) = (self.versions.first(), self.versions.last());
        let standing = match (version, first, last) {
            (None, _, _) => Standing::Unreadable,
            (Some(v), _, _) if self.versions.contains(&v) => Standing::Tested,
            (Some(v), _, Some(last)) if v > *last => Standing::Newer,
            (Some(v), Some(first), _) if v < *first => Standing::Older,
            _ => Standing::Between,
        };
        Assessment {
            product: self.product,
            printed: printed.trim().to_string(),
            version,
            standing,
            tested: self.versions,
        }
    }
}

impl Assessment {
    /// The tested versions as people read them: `2.1.197–2.1.328`, or the one version.
    pub fn tested_range(&self) -> String {
        match (self.tested.first(), self.tested.last()) {
            (Some(a), Some(b)) if a != b => format!("{a}–{b}"),
            (Some(a), _) => a.to_string(),
            _ => "none".into(),
        }
    }

    pub fn is_tested(&self) -> bool {
        self.standing == Standing::Tested
    }
}

/// One line for the start line and the log: the answer first, then what to
/// do about it.
impl fmt::Display for Assessment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.product;
        let range = self.tested_range();
        match (&self.standing, self.version) {
            (Standing::Tested, Some(v)) => write!(f, "{p} {v} (tested)"),
            (Standing::Newer, Some(v)) => write!(
                f,
                "{p} {v}: newer than the tested {range}; it may show dialogs or take flags \
                 troupe does not know yet (`troupe doctor` checks the rest)"
            ),
            (Standing::Older, Some(v)) => write!(
                f,
                "{p} {v}: older than the tested {range}; update it to a tested version"
            ),
            (Standing::Between, Some(v)) => write!(
                f,
                "{p} {v}: not itself tested (tested: {}); it may behave like neither",
                self.tested
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => write!(
                f,
                "{p}: its version reads {:?}, which troupe cannot place (tested: {range})",
                self.printed
            ),
        }
    }
}

/// Reads a CLI's version, again only when its executable changed: a spawn then costs a
/// `stat`, not a process start, while an upgrade in place is still noticed at the next spawn.
#[derive(Debug, Default)]
pub struct Probe {
    last: Mutex<Option<Seen>>,
}

#[derive(Debug, Clone)]
struct Seen {
    path: PathBuf,
    stamp: Option<(SystemTime, u64)>,
    printed: Result<String, String>,
}

/// What a probe found, and whether it differs from the last read.
#[derive(Debug, Clone)]
pub struct Read {
    pub printed: Result<String, String>,
    pub changed: bool,
}

impl Probe {
    /// `bin --version`'s first line (blocking: run it off the async threads).
    pub fn read(&self, bin: &str) -> Read {
        let path = resolve(bin);
        // The modification time and the inode: an upgrade either rewrites the file or puts a
        // new one in its place.
        let stamp = path
            .as_deref()
            .and_then(|p| std::fs::metadata(p).ok())
            .and_then(|m| Some((m.modified().ok()?, std::os::unix::fs::MetadataExt::ino(&m))));
        let path = path.unwrap_or_else(|| PathBuf::from(bin));
        let mut last = self.last.lock().expect("version probe poisoned");
        if let Some(seen) = last.as_ref()
            && seen.path == path
            && seen.stamp.is_some()
            && seen.stamp == stamp
        {
            return Read {
                printed: seen.printed.clone(),
                changed: false,
            };
        }
        let printed = crate::process::version(bin, &["--version"]);
        let changed = last.as_ref().is_none_or(|s| s.printed != printed);
        *last = Some(Seen {
            path,
            stamp,
            printed: printed.clone(),
        });
        Read { printed, changed }
    }
}

/// The file `bin` runs: itself when it names a path, else the first match on PATH; links
/// followed, so an upgrade that swaps a link's target is seen.
fn resolve(bin: &str) -> Option<PathBuf> {
    let path = Path::new(bin);
    let found = if bin.contains('/') {
        Some(path.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(bin))
                .find(|p| p.is_file())
        })
    }?;
    std::fs::canonicalize(&found).ok().or(Some(found))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAUDE: Tested = Tested {
        product: "Claude Code",
        versions: &[Version(2, 1, 197), Version(2, 1, 328)],
    };

    #[test]
    fn versions_are_read_from_what_each_cli_prints() {
        assert_eq!(
            Version::find("2.1.328 (Claude Code)"),
            Some(Version(2, 1, 328))
        );
        assert_eq!(Version::find("codex-cli 0.169.0"), Some(Version(0, 169, 0)));
        assert_eq!(Version::find("claude"), None);
        assert_eq!(Version::parse("1.2"), None);
        assert_eq!(Version::parse("1.2.3.4"), None);
        assert!(Version(2, 1, 200) > Version(2, 1, 197));
        assert!(Version(2, 10, 0) > Version(2, 9, 999));
    }

    #[test]
    fn each_standing_says_what_to_do() {
        assert_eq!(
            CLAUDE.assess("2.1.328 (Claude Code)").to_string(),
            "Claude Code 2.1.328 (tested)"
        );
        assert_eq!(
            CLAUDE.assess("2.1.197 (Claude Code)").to_string(),
            "Claude Code 2.1.197 (tested)"
        );
        let newer = CLAUDE.assess("2.1.412 (Claude Code)");
        assert_eq!(newer.standing, Standing::Newer);
        assert_eq!(
            newer.to_string(),
            "Claude Code 2.1.412: newer than the tested 2.1.197–2.1.328; it may show dialogs or \
             take flags troupe does not know yet (`troupe doctor` checks the rest)"
        );
        assert_eq!(
            CLAUDE.assess("2.1.250 (Claude Code)").standing,
            Standing::Between
        );
        assert_eq!(
            CLAUDE.assess("2.0.1 (Claude Code)").standing,
            Standing::Older
        );
        let odd = CLAUDE.assess("nightly");
        assert_eq!(odd.standing, Standing::Unreadable);
        assert!(odd.to_string().contains("\"nightly\""), "{odd}");
    }

    #[test]
    fn the_probe_runs_the_cli_again_only_when_it_changed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("fake-cli");
        let write = |v: &str| {
            std::fs::write(&bin, format!("#!/bin/sh\necho '{v} (Claude Code)'\n")).unwrap();
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write("2.1.197");
        let probe = Probe::default();
        let bin_s = bin.display().to_string();
        let first = probe.read(&bin_s);
        assert_eq!(first.printed.as_deref(), Ok("2.1.197 (Claude Code)"));
        assert!(first.changed);
        let again = probe.read(&bin_s);
        assert!(!again.changed);
        // An upgrade in place: a new file where the old one was.
        let old = dir.path().join("old-cli");
        std::fs::rename(&bin, &old).unwrap();
        write("2.1.328");
        let after = probe.read(&bin_s);
        assert_eq!(after.printed.as_deref(), Ok("2.1.328 (Claude Code)"));
        assert!(after.changed);
        let missing = Probe::default().read("/nonexistent/claude");
        assert!(missing.printed.is_err());
    }
}
