//! An instance's files: listing and reading inside its working directory, and the path rules
//! that keep every read there. A path is relative to the directory; an absolute path, a `..`
//! component or a NUL byte is refused before the disk is touched, and a path whose symlinks
//! lead out of the directory (at any step on the way, not just at its end) is refused after.
//! Listing never follows a symlink; reading opens only regular files.
//!
//! Everything here blocks and decides nothing about who asks: the supervisor's `list_files`
//! and `read_file` check that, and run the work on tokio's blocking pool.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{Error, Result};

/// How much of a file a read returns unless asked for less or more.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
/// The most a read returns.
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;
/// How many entries a listing returns unless asked otherwise.
pub const DEFAULT_MAX_ENTRIES: usize = 1000;
/// The most entries a listing returns.
pub const MAX_ENTRIES: usize = 10_000;

/// What a directory entry is. A symlink is reported as one and never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A socket, fifo or device.
    Other,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct Entry {
    /// Relative to the instance's directory, `/`-separated.
    pub path: String,
    pub kind: Kind,
    /// In bytes: a file's length, the length of a symlink's target text, 0 for a directory.
    pub size: u64,
    /// When it last changed, RFC 3339 in UTC.
    pub modified: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct Listing {
    /// The instance's directory, absolute.
    pub workdir: String,
    /// The directory listed, relative to the instance's directory ("" for the directory itself).
    pub path: String,
    /// Sorted by path; a directory comes before what it holds.
    pub entries: Vec<Entry>,
    /// True when the list was cut at max_entries.
    pub truncated: bool,
    /// What to do about a cut list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub enum Encoding {
    /// The content is the file's text.
    #[serde(rename = "utf-8")]
    Utf8,
    /// The bytes are not valid UTF-8; the content is them in standard base64.
    #[serde(rename = "base64")]
    Base64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, JsonSchema)]
pub struct FileContent {
    /// Relative to the instance's directory, `/`-separated.
    pub path: String,
    /// The whole file's size in bytes.
    pub size: u64,
    /// `utf-8` when the bytes returned are valid UTF-8, else `base64`.
    pub encoding: Encoding,
    pub content: String,
    /// How many of the file's bytes `content` holds (from its start).
    pub content_bytes: u64,
    /// True when the file is longer than what was returned (max_bytes).
    pub truncated: bool,
}

/// A path as the caller gave it, checked without touching the disk: relative, without `..`,
/// without NUL. Returns its components joined by `/` ("" for the directory itself).
pub fn check_relative(given: &str) -> Result<String> {
    if given.contains('\0') {
        return Err(Error::InvalidInput(format!(
            "path {} contains a NUL byte",
            shown(given)
        )));
    }
    let mut parts: Vec<&str> = Vec::new();
    let mut depth: i64 = 0;
    let mut climbs = false;
    for c in Path::new(given).components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err(Error::InvalidInput(format!(
                    "path {} is absolute; give it relative to the instance's directory",
                    shown(given)
                )));
            }
            Component::CurDir => {}
            Component::ParentDir => {
                climbs = true;
                depth -= 1;
                if depth < 0 {
                    return Err(Error::InvalidInput(format!(
                        "path {} leaves the instance's directory",
                        shown(given)
                    )));
                }
            }
            Component::Normal(s) => {
                depth += 1;
                // From a &str, so always UTF-8.
                parts.push(s.to_str().unwrap_or_default());
            }
        }
    }
    if climbs {
        return Err(Error::InvalidInput(format!(
            "path {} contains \"..\"; write it without (no path may climb, so none can leave \
             the instance's directory)",
            shown(given)
        )));
    }
    Ok(parts.join("/"))
}

/// The instance's directory with its symlinks resolved; an error when it is gone.
pub fn root(workdir: &str) -> Result<PathBuf> {
    match Path::new(workdir).canonicalize() {
        Ok(p) if p.is_dir() => Ok(p),
        Ok(_) => Err(Error::InvalidInput(format!(
            "the instance's directory {workdir} is no longer a directory"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::InvalidInput(format!(
            "the instance's directory {workdir} no longer exists"
        ))),
        Err(e) => Err(Error::InvalidInput(format!(
            "the instance's directory {workdir}: {e}"
        ))),
    }
}

/// `rel` (from [`check_relative`]) under `root` (from [`root`]), its symlinks resolved. Each
/// step on the way must stay inside `root`: a symlink out of the tree is refused even when a
/// later one would lead back in.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf> {
    let mut at = root.to_path_buf();
    let mut so_far = String::new();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        let step = at.join(part);
        match step.canonicalize() {
            Ok(real) if real.starts_with(root) => at = real,
            Ok(_) => {
                let through = if so_far == rel {
                    String::new()
                } else {
                    format!(" (through the symlink {})", bare(&so_far))
                };
                return Err(Error::InvalidInput(format!(
                    "path {} is a symlink that leaves the instance's directory{through}",
                    shown(rel)
                )));
            }
            Err(e) => {
                let link = step
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink());
                let why = match e.kind() {
                    _ if link => format!("{} is a symlink to nothing that exists", bare(&so_far)),
                    std::io::ErrorKind::NotFound => {
                        format!("there is no {} in the instance's directory", bare(&so_far))
                    }
                    std::io::ErrorKind::NotADirectory => {
                        format!("{} is a file, not a directory", bare(parent_of(&so_far)))
                    }
                    _ => format!("{}: {e}", bare(&so_far)),
                };
                return Err(Error::InvalidInput(format!("path {}: {why}", shown(rel))));
            }
        }
    }
    Ok(at)
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or(path)
}

/// Lists the directory at `given` (relative; "" for the instance's directory itself), and
/// with `recursive` everything under it, never following a symlink and never going into
/// `.git`. Stops at `max_entries` and says so.
pub fn list(root: &Path, given: &str, recursive: bool, max_entries: usize) -> Result<Listing> {
    let rel = check_relative(given)?;
    let dir = resolve(root, &rel)?;
    if !dir.is_dir() {
        return Err(Error::InvalidInput(format!(
            "path {} is a file, not a directory; retrieve_instance_file reads it",
            shown(&rel)
        )));
    }
    let mut entries = Vec::new();
    let mut truncated = false;
    // Depth first, each directory's entries sorted, so a directory comes before its contents.
    let mut stack: Vec<(PathBuf, String)> = vec![(dir, rel.clone())];
    let mut first = true;
    'walk: while let Some((at, prefix)) = stack.pop() {
        let read = match std::fs::read_dir(&at) {
            Ok(r) => r,
            Err(e) if first => {
                return Err(Error::InvalidInput(format!("path {}: {e}", shown(&rel))));
            }
            // A subdirectory that cannot be read is listed, its contents are not.
            Err(_) => continue,
        };
        first = false;
        let mut here: Vec<(String, std::fs::Metadata)> = read
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let meta = e.metadata().ok()?; // DirEntry::metadata does not follow symlinks
                Some((e.file_name().to_string_lossy().into_owned(), meta))
            })
            .collect();
        here.sort_by(|a, b| a.0.cmp(&b.0));
        let mut below = Vec::new();
        for (name, meta) in here {
            if entries.len() == max_entries {
                truncated = true;
                break 'walk;
            }
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let kind = kind_of(&meta);
            if recursive && kind == Kind::Dir && name != ".git" {
                below.push((at.join(&name), path.clone()));
            }
            entries.push(Entry {
                path,
                kind,
                size: if kind == Kind::Dir { 0 } else { meta.len() },
                modified: meta.modified().map(rfc3339).unwrap_or_default(),
            });
        }
        // The stack pops the last first: pushed in reverse, subdirectories are walked in
        // order. A cut list keeps the shallower entries; it is put in tree order below.
        stack.extend(below.into_iter().rev());
    }
    entries.sort_by(|a, b| path_order(&a.path, &b.path));
    let note = truncated.then(|| {
        format!(
            "the list stops at {max_entries} entries; list a subdirectory, or ask for more \
             with max_entries (at most {MAX_ENTRIES})"
        )
    });
    Ok(Listing {
        workdir: root.display().to_string(),
        path: rel,
        entries,
        truncated,
        note,
    })
}

/// Paths in tree order: by components, so `a/b` comes right after `a` and before `a.txt`.
fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

fn kind_of(meta: &std::fs::Metadata) -> Kind {
    let t = meta.file_type();
    if t.is_symlink() {
        Kind::Symlink
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

fn rfc3339(t: std::time::SystemTime) -> String {
    crate::db::stamp(chrono::DateTime::<chrono::Utc>::from(t))
}

/// Reads the regular file at `given`, at most `max_bytes` of it from its start: as text when
/// those bytes are UTF-8 (a character cut at the end is left out), else as base64.
pub fn read(root: &Path, given: &str, max_bytes: u64) -> Result<FileContent> {
    let rel = check_relative(given)?;
    if rel.is_empty() {
        return Err(Error::InvalidInput(
            "path is empty: give the path of a file in the instance's directory \
             (list_instance_files shows them)"
                .into(),
        ));
    }
    let real = resolve(root, &rel)?;
    let meta = std::fs::symlink_metadata(&real)?;
    not_a_file(&rel, &meta)?;
    let mut file =
        open_plain(&real).map_err(|e| Error::InvalidInput(format!("path {}: {e}", shown(&rel))))?;
    let meta = file.metadata()?;
    not_a_file(&rel, &meta)?;
    still_inside(&file, root, &rel)?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    let truncated = bytes.len() as u64 > max_bytes;
    bytes.truncate(max_bytes as usize);
    let (encoding, content, kept) = encode(bytes, truncated);
    Ok(FileContent {
        path: rel,
        size: meta.len().max(kept as u64),
        encoding,
        content,
        content_bytes: kept as u64,
        truncated: truncated || (kept as u64) < meta.len(),
    })
}

/// The bytes as text when they are UTF-8, else as base64. When they were cut, a character
/// the cut split is dropped rather than turning the whole read into base64.
fn encode(mut bytes: Vec<u8>, cut: bool) -> (Encoding, String, usize) {
    if let Err(e) = std::str::from_utf8(&bytes)
        && cut
        && e.error_len().is_none()
    {
        bytes.truncate(e.valid_up_to());
    }
    let kept = bytes.len();
    match String::from_utf8(bytes) {
        Ok(text) => (Encoding::Utf8, text, kept),
        Err(e) => (
            Encoding::Base64,
            base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
            kept,
        ),
    }
}

fn not_a_file(rel: &str, meta: &std::fs::Metadata) -> Result<()> {
    let t = meta.file_type();
    if t.is_file() {
        Ok(())
    } else if t.is_dir() {
        Err(Error::InvalidInput(format!(
            "path {} is a directory, not a file; list_instance_files lists it",
            shown(rel)
        )))
    } else {
        Err(Error::InvalidInput(format!(
            "path {} is not a regular file (a socket, fifo or device); only files can be read",
            shown(rel)
        )))
    }
}

/// Opens without following a symlink at the end and without waiting on a fifo: the path
/// was checked a moment ago, and what is there now is checked again once it is open.
fn open_plain(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Where the open file really is (Linux: `/proc/self/fd`), so a directory swapped for a
/// symlink between the check and the open cannot lead the read out of the tree.
fn still_inside(file: &std::fs::File, root: &Path, rel: &str) -> Result<()> {
    use std::os::fd::AsRawFd;
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    match std::fs::read_link(&fd_path) {
        Ok(real) if !real.starts_with(root) => Err(Error::InvalidInput(format!(
            "path {} leaves the instance's directory (it changed while it was opened)",
            shown(rel)
        ))),
        // Inside, or no /proc to ask: the checks before the open stand.
        _ => Ok(()),
    }
}

/// Longest path a message shows whole.
const SHOWN: usize = 200;

/// A path for a message: quoted, and cut when it is long.
fn shown(path: &str) -> String {
    if path.chars().count() <= SHOWN {
        format!("{path:?}")
    } else {
        let head: String = path.chars().take(SHOWN).collect();
        format!("{head:?}… ({} bytes)", path.len())
    }
}

/// A part of a path for a message, as it is (it passed [`check_relative`]), cut when long.
fn bare(path: &str) -> String {
    if path.chars().count() <= SHOWN {
        path.to_string()
    } else {
        let head: String = path.chars().take(SHOWN).collect();
        format!("{head}…")
    }
}

/// How many entries a listing may return: `asked`, else [`DEFAULT_MAX_ENTRIES`], at most
/// [`MAX_ENTRIES`].
pub fn entries_limit(asked: Option<u64>) -> Result<usize> {
    match asked {
        None => Ok(DEFAULT_MAX_ENTRIES),
        Some(n) if (1..=MAX_ENTRIES as u64).contains(&n) => Ok(n as usize),
        Some(n) => Err(Error::InvalidInput(format!(
            "max_entries must be 1 to {MAX_ENTRIES}, not {n}"
        ))),
    }
}

/// How much of a file a read may return: `asked`, else [`DEFAULT_MAX_BYTES`], at most
/// [`MAX_BYTES`].
pub fn bytes_limit(asked: Option<u64>) -> Result<u64> {
    match asked {
        None => Ok(DEFAULT_MAX_BYTES),
        Some(n) if (1..=MAX_BYTES).contains(&n) => Ok(n),
        Some(n) => Err(Error::InvalidInput(format!(
            "max_bytes must be 1 to {MAX_BYTES} (10 MiB), not {n}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn refused(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::InvalidInput(text)) => text,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn paths_are_relative_without_climbing_or_nul() {
        assert_eq!(check_relative("").unwrap(), "");
        assert_eq!(check_relative(".").unwrap(), "");
        assert_eq!(check_relative("a/./b//c/").unwrap(), "a/b/c");
        assert_eq!(check_relative("a b/ü.txt").unwrap(), "a b/ü.txt");
        assert_eq!(check_relative("..a/b..").unwrap(), "..a/b..");

        let e = refused(check_relative("sub/../../x"));
        assert!(e.contains("leaves the instance's directory"), "{e}");
        let e = refused(check_relative("../x"));
        assert_eq!(e, "path \"../x\" leaves the instance's directory");
        let e = refused(check_relative("a/../b"));
        assert!(e.contains("contains \"..\""), "{e}");
        let e = refused(check_relative("/etc/passwd"));
        assert!(e.contains("is absolute"), "{e}");
        let e = refused(check_relative("a\0b"));
        assert!(e.contains("NUL"), "{e}");
        let long = "x/".repeat(10_000);
        let e = refused(check_relative(&format!("{long}/..//../../..")));
        assert!(e.len() < 400, "a long path is cut in the message: {e}");
        let root = tempfile::tempdir().unwrap();
        let e = refused(resolve(root.path(), &"y".repeat(100_000)));
        assert!(e.len() < 600, "a long path is cut in the message: {e}");
    }

    /// A tree: a.txt, bin (not UTF-8), sub/deep/n.txt, .git/HEAD, in-link -> sub/deep/n.txt,
    /// dir-link -> sub, out-link -> a file outside, out-dir -> a directory outside.
    fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let base = tempfile::tempdir().unwrap();
        let work = base.path().join("work");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(work.join("sub/deep")).unwrap();
        std::fs::create_dir_all(work.join(".git/objects")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "secret").unwrap();
        std::fs::write(work.join("a.txt"), "hello\n").unwrap();
        std::fs::write(work.join("bin"), [0xff, 0x00, 0xfe, b'x']).unwrap();
        std::fs::write(work.join("sub/deep/n.txt"), "nested").unwrap();
        std::fs::write(work.join(".git/HEAD"), "ref").unwrap();
        symlink("sub/deep/n.txt", work.join("in-link")).unwrap();
        symlink("sub", work.join("dir-link")).unwrap();
        symlink(outside.join("secret"), work.join("out-link")).unwrap();
        symlink(&outside, work.join("out-dir")).unwrap();
        symlink("nowhere", work.join("dangling")).unwrap();
        let root = root(work.to_str().unwrap()).unwrap();
        (base, root, outside)
    }

    #[test]
    fn resolving_stays_inside_at_every_step() {
        let (_base, root, outside) = tree();
        assert_eq!(resolve(&root, "").unwrap(), root);
        assert_eq!(
            resolve(&root, "in-link").unwrap(),
            root.join("sub/deep/n.txt")
        );
        assert_eq!(
            resolve(&root, "dir-link/deep").unwrap(),
            root.join("sub/deep")
        );
        let e = refused(resolve(&root, "out-link"));
        assert_eq!(
            e,
            "path \"out-link\" is a symlink that leaves the instance's directory"
        );
        let e = refused(resolve(&root, "out-dir/secret"));
        assert!(e.contains("through the symlink out-dir"), "{e}");
        // Out and back in again is still out.
        symlink(root.join("a.txt"), outside.join("back")).unwrap();
        let e = refused(resolve(&root, "out-dir/back"));
        assert!(e.contains("leaves"), "{e}");
        let e = refused(resolve(&root, "missing/x"));
        assert!(e.contains("there is no missing"), "{e}");
        let e = refused(resolve(&root, "a.txt/x"));
        assert!(e.contains("a.txt is a file"), "{e}");
        let e = refused(resolve(&root, "dangling"));
        assert!(e.contains("symlink to nothing"), "{e}");
    }

    #[test]
    fn a_listing_shows_links_as_links_and_skips_git_contents() {
        let (_base, root, _) = tree();
        let top = list(&root, "", false, 100).unwrap();
        let names: Vec<(&str, Kind)> = top
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind))
            .collect();
        assert_eq!(
            names,
            [
                (".git", Kind::Dir),
                ("a.txt", Kind::File),
                ("bin", Kind::File),
                ("dangling", Kind::Symlink),
                ("dir-link", Kind::Symlink),
                ("in-link", Kind::Symlink),
                ("out-dir", Kind::Symlink),
                ("out-link", Kind::Symlink),
                ("sub", Kind::Dir),
            ]
        );
        assert!(!top.truncated && top.note.is_none());
        let a = &top.entries[1];
        assert_eq!(a.size, 6);
        assert!(a.modified.ends_with('Z') && a.modified.len() == 24, "{a:?}");

        let all = list(&root, "", true, 100).unwrap();
        let paths: Vec<&str> = all.entries.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"sub/deep/n.txt"), "{paths:?}");
        assert!(!paths.iter().any(|p| p.starts_with(".git/")), "{paths:?}");
        assert!(
            !paths.iter().any(|p| p.starts_with("out-dir/")),
            "{paths:?}"
        );
        assert!(
            !paths.iter().any(|p| p.starts_with("dir-link/")),
            "{paths:?}"
        );
        let sub = paths.iter().position(|p| *p == "sub").unwrap();
        assert_eq!(&paths[sub..], ["sub", "sub/deep", "sub/deep/n.txt"]);

        let cut = list(&root, "", true, 3).unwrap();
        assert_eq!(cut.entries.len(), 3);
        assert!(cut.truncated);
        assert!(cut.note.unwrap().contains("max_entries"));

        // A subdirectory, also through an inside link; paths keep the caller's spelling.
        let deep = list(&root, "dir-link", true, 100).unwrap();
        let paths: Vec<&str> = deep.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["dir-link/deep", "dir-link/deep/n.txt"]);
        let e = refused(list(&root, "out-dir", false, 100));
        assert!(e.contains("leaves"), "{e}");
        let e = refused(list(&root, "a.txt", false, 100));
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn reads_are_binary_safe_and_cut_at_the_limit() {
        let (_base, root, _) = tree();
        let a = read(&root, "a.txt", MAX_BYTES).unwrap();
        assert_eq!(
            (a.encoding, a.content.as_str(), a.size, a.truncated),
            (Encoding::Utf8, "hello\n", 6, false)
        );
        let b = read(&root, "bin", MAX_BYTES).unwrap();
        assert_eq!(b.encoding, Encoding::Base64);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&b.content)
            .unwrap();
        assert_eq!(bytes, [0xff, 0x00, 0xfe, b'x']);
        let link = read(&root, "in-link", MAX_BYTES).unwrap();
        assert_eq!(
            (link.path.as_str(), link.content.as_str()),
            ("in-link", "nested")
        );

        let cut = read(&root, "a.txt", 3).unwrap();
        assert_eq!(
            (
                cut.content.as_str(),
                cut.content_bytes,
                cut.size,
                cut.truncated
            ),
            ("hel", 3, 6, true)
        );
        // A character split by the cut is left out, and the text stays text.
        std::fs::write(root.join("u.txt"), "aé").unwrap();
        let cut = read(&root, "u.txt", 2).unwrap();
        assert_eq!(
            (
                cut.encoding,
                cut.content.as_str(),
                cut.content_bytes,
                cut.truncated
            ),
            (Encoding::Utf8, "a", 1, true)
        );
        std::fs::write(root.join("empty"), "").unwrap();
        assert_eq!(read(&root, "empty", 10).unwrap().content, "");

        for (path, why) in [
            ("out-link", "leaves"),
            ("../work/a.txt", "leaves"),
            ("sub", "is a directory"),
            ("", "path is empty"),
        ] {
            let e = refused(read(&root, path, 10));
            assert!(e.contains(why), "{path}: {e}");
        }
        let abs = root.join("a.txt");
        let e = refused(read(&root, abs.to_str().unwrap(), 10));
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_on_it() {
        let (_base, root, _) = tree();
        let fifo = root.join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = refused(read(&root, "pipe", 10));
        assert!(e.contains("not a regular file"), "{e}");
        let top = list(&root, "", false, 100).unwrap();
        let pipe = top.entries.iter().find(|e| e.path == "pipe").unwrap();
        assert_eq!(pipe.kind, Kind::Other);
    }
}
