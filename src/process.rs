//! Other programs: the version one prints, and waiting for a process troupe did not start (a
//! CLI running in tmux) to end, with no polling: a Linux pidfd becomes readable when its
//! process exits.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

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

pub struct ExitWatch {
    fd: AsyncFd<OwnedFd>,
}

impl ExitWatch {
    /// Watches process `pid`; None when it is already gone.
    pub fn new(pid: i32) -> io::Result<Option<ExitWatch>> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                _ => Err(err),
            };
        }
        // SAFETY: the descriptor was just created and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: the OwnedFd is moved in and stays open, unchanged, as long as the AsyncFd.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Some(ExitWatch { fd }))
    }

    /// Returns once the process has exited.
    pub async fn exited(&self) {
        // A pidfd stays readable once its process is gone, so one readiness is the answer;
        // an error from the reactor means the same for troupe (nothing more to watch).
        let _ = self.fd.readable().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_exit_is_seen_and_a_gone_pid_is_none() {
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let watch = ExitWatch::new(child.id() as i32).unwrap().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), watch.exited())
            .await
            .expect("exit seen");
        child.wait().unwrap();
        assert!(ExitWatch::new(child.id() as i32).unwrap().is_none());
    }
}
