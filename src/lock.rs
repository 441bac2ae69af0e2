//! One data directory, one server. A second `troupe serve` on the same data directory (or the
//! same database, or the same tmux socket) would adopt the first one's instances, relaunch
//! them against its own port and leave them pointing at a dead one when it exits. Each server
//! holds an exclusive lock on each of those for as long as it runs; the kernel lets go when the
//! process ends, however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The locks a running server holds; dropping it releases them.
#[derive(Debug)]
pub struct ServeLock {
    files: Vec<(PathBuf, File)>,
}

/// Why a server may not start.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another troupe serve ({holder}) uses this {what} ({path}); stop it, or give this one \
         another --data-dir, --db and --tmux-socket"
    )]
    Taken {
        holder: String,
        what: &'static str,
        path: String,
    },
    #[error("cannot lock {path}: {error}")]
    Io { path: String, error: std::io::Error },
}

impl ServeLock {
    /// Takes every lock or none: `what` names each place for the message.
    pub fn take(places: &[(&'static str, PathBuf)]) -> Result<ServeLock, LockError> {
        let mut files = Vec::new();
        for (what, path) in places {
            if files.iter().any(|(p, _): &(PathBuf, File)| p == path) {
                continue;
            }
            let io = |error| LockError::Io {
                path: path.display().to_string(),
                error,
            };
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => files.push((path.clone(), file)),
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(LockError::Taken {
                        holder: if holder.is_empty() {
                            "starting".into()
                        } else {
                            holder.to_string()
                        },
                        what,
                        path: path.display().to_string(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        Ok(ServeLock { files })
    }

    /// Says who holds the locks, for the message a second server prints.
    pub fn describe(&mut self, holder: &str) {
        for (_, file) in &mut self.files {
            let _ = file.set_len(0);
            let _ = file.rewind();
            let _ = file.write_all(holder.as_bytes());
        }
    }
}

impl Drop for ServeLock {
    /// Unlocked explicitly: a child process forked by another thread at this moment holds a
    /// copy of the descriptor until it execs, and closing ours alone would leave the lock
    /// held through it.
    fn drop(&mut self) {
        for (_, file) in &self.files {
            let _ = file.unlock();
        }
    }
}

/// The lock file of a tmux socket name, shared by every data directory.
pub fn tmux_lock_path(socket: &str) -> PathBuf {
    let uid = uid();
    let safe: String = socket
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::env::temp_dir().join(format!("troupe-{uid}-tmux-{safe}.lock"))
}

/// The lock file next to a database.
pub fn db_lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".serve-lock");
    db.with_file_name(name)
}

/// The user id: the owner of this process.
fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_words_and_let_in_after() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("serve.lock");
        let mut first = ServeLock::take(&[("data directory", data.clone())]).unwrap();
        first.describe("pid 42, 127.0.0.1:8001");
        let e = ServeLock::take(&[("data directory", data.clone())]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "another troupe serve (pid 42, 127.0.0.1:8001) uses this data directory ({}); \
                 stop it, or give this one another --data-dir, --db and --tmux-socket",
                data.display()
            )
        );
        drop(first);
        assert!(ServeLock::take(&[("data directory", data)]).is_ok());
    }

    #[test]
    fn lock_paths_are_plain_files() {
        let p = tmux_lock_path("troupe/../x y");
        assert!(
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("tmux-troupe____x_y.lock")
        );
        assert_eq!(
            db_lock_path(Path::new("/d/troupe.db")),
            PathBuf::from("/d/troupe.db.serve-lock")
        );
    }
}
