//! troupe's own tmux server (`tmux -L <socket>`). Commands are built with tmux_interface and
//! run asynchronously with tokio, so a slow tmux never blocks the runtime. Typing (paste and
//! keys) goes through one control-mode client per server ([`control`]) with no process per
//! command; everything else, and typing whenever that client cannot take it, runs a `tmux`
//! process per command.

mod control;

use std::process::Stdio;

use tmux_interface::{
    KillSession, LoadBuffer, NewSession, PasteBuffer, RespawnPane, SendKeys, SetOption, TmuxCommand,
};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    #[error("cannot run tmux: {0} (is tmux installed and on PATH?)")]
    Spawn(std::io::Error),
    #[error("tmux {command} failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// The installed tmux's version (`tmux -V`), checked before troupe serves.
pub fn version() -> Result<String, String> {
    crate::process::version("tmux", &["-V"])
}

/// Hands this terminal to a tmux client attached to `session` on `socket` (`troupe attach`),
/// and returns when the person detaches. Inside tmux already, a nested client is what is asked.
pub fn attach_here(socket: &str, session: &str) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("tmux")
        .args(["-L", socket, "attach-session", "-t", &format!("={session}")])
        .env_remove("TMUX")
        .status()
}

/// How many times new-session is tried again when it meets a server that is exiting.
const NEW_SESSION_ATTEMPTS: u32 = 3;

/// What tmux says when there is no such session, or no server (and so no session) at all.
fn absent(stderr: &str) -> bool {
    stderr.contains("can't find session")
        || stderr.contains("no server running")
        || (stderr.contains("error connecting to") && stderr.contains("No such file or directory"))
}

/// What tmux says when the server a client connected to exits under it.
fn server_went_away(stderr: &str) -> bool {
    stderr.contains("server exited unexpectedly") || stderr.contains("lost server")
}

/// A handle on one tmux server, named by its socket.
#[derive(Clone)]
pub struct Tmux {
    socket: String,
    /// The environment every tmux command runs with, and so the one the server (started by
    /// the first command) gives every instance: see [`crate::environment`].
    env: std::sync::Arc<Vec<(std::ffi::OsString, std::ffi::OsString)>>,
    /// The control-mode client, started at the first keystroke and again after it ends.
    control: std::sync::Arc<tokio::sync::Mutex<Option<std::sync::Arc<control::Client>>>>,
    /// A private directory for the text of pastes on their way to tmux (made at first use).
    pastes: std::sync::Arc<std::sync::OnceLock<Option<std::path::PathBuf>>>,
    /// How many `tmux` processes this handle has started (benches and tests read it).
    processes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Tmux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tmux")
            .field("socket", &self.socket)
            .finish()
    }
}

/// How a command given to the control client went.
enum Via {
    /// tmux answered: its output, or its error.
    Answered(Result<String, TmuxError>),
    /// The control client could not take it (none could start, or it had ended before the
    /// line was written): run it as a process instead.
    NotTaken,
}

/// What a new session runs and with what environment.
pub struct SessionSpec<'a> {
    pub name: &'a str,
    pub workdir: &'a str,
    pub env: &'a [(String, String)],
    pub argv: &'a [String],
    pub width: usize,
    pub height: usize,
}

impl Tmux {
    pub fn new(socket: impl Into<String>) -> Self {
        Self::passing(socket, &[])
    }

    /// A handle whose server gives instances the allowlisted environment and the variables
    /// named in `also` (`serve --pass-env`).
    pub fn passing(socket: impl Into<String>, also: &[String]) -> Self {
        Tmux {
            socket: socket.into(),
            env: std::sync::Arc::new(crate::environment::allowed(std::env::vars_os(), also)),
            control: Default::default(),
            pastes: Default::default(),
            processes: Default::default(),
        }
    }

    /// How many `tmux` processes this handle (and its clones) started, the control client
    /// included: typing through the control client starts none.
    pub fn processes_started(&self) -> u64 {
        self.processes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A `tmux -L socket` command with the server's environment.
    fn command(&self) -> tokio::process::Command {
        self.processes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut command = tokio::process::Command::new("tmux");
        // The first command starts troupe's tmux server, whose environment every instance
        // inherits: only the allowlist reaches it, never troupe's settings or its token.
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("-L")
            .arg(&self.socket);
        command
    }

    /// The control client, started if it is not running (which starts the server if there
    /// is none); None if it cannot start.
    async fn control_client(&self) -> Option<std::sync::Arc<control::Client>> {
        let mut slot = self.control.lock().await;
        match slot.as_ref().filter(|c| !c.ended()) {
            Some(c) => Some(c.clone()),
            None => match control::Client::start(self.command()).await {
                Ok(c) => Some(slot.insert(std::sync::Arc::new(c)).clone()),
                Err(e) => {
                    tracing::debug!("no tmux control client ({e}); one process per command");
                    *slot = None;
                    None
                }
            },
        }
    }

    /// Runs one command line on the control client (every argument plain), starting the
    /// client if there is none.
    async fn via_control(&self, args: &[&str]) -> Via {
        if !args.iter().all(|a| control::word(a).is_some()) {
            return Via::NotTaken;
        }
        let Some(client) = self.control_client().await else {
            return Via::NotTaken;
        };
        match client.run(args).await {
            Ok(out) => Via::Answered(Ok(out)),
            Err(control::Failure::NotWritten) => Via::NotTaken,
            Err(control::Failure::Tmux(stderr)) => Via::Answered(Err(TmuxError::Failed {
                command: args.first().map(|a| a.to_string()).unwrap_or_default(),
                stderr,
            })),
        }
    }

    /// Where a paste's text waits for tmux to read it: a private directory of this
    /// process's, whose path tmux's parser takes as written.
    fn paste_dir(&self) -> Option<&std::path::Path> {
        self.pastes
            .get_or_init(|| {
                let dir = std::env::temp_dir().join(format!(
                    "troupe-pastes-{}-{}",
                    std::process::id(),
                    uuid::Uuid::new_v4().simple()
                ));
                let usable =
                    control::plain(&dir.display().to_string()) && crate::private::dir(&dir).is_ok();
                usable.then_some(dir)
            })
            .as_deref()
    }

    /// Runs one command through the control client, or as a process when it cannot take it.
    /// The output is the same either way: every line ends with a newline.
    async fn ask(&self, args: &[&str]) -> Result<String, TmuxError> {
        match self.via_control(args).await {
            Via::Answered(Ok(mut out)) => {
                if !out.is_empty() {
                    out.push('\n');
                }
                Ok(out)
            }
            Via::Answered(Err(e)) => Err(e),
            Via::NotTaken => {
                self.run_args(args.iter().map(|a| a.to_string()).collect(), None)
                    .await
            }
        }
    }

    async fn run(&self, cmd: TmuxCommand<'_>, stdin: Option<&[u8]>) -> Result<String, TmuxError> {
        self.run_args(owned(cmd), stdin).await
    }

    async fn run_args(&self, args: Vec<String>, stdin: Option<&[u8]>) -> Result<String, TmuxError> {
        let mut child = self
            .command()
            .args(&args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(TmuxError::Spawn)?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(bytes).await.map_err(TmuxError::Spawn)?;
            drop(pipe);
        }
        let out = child.wait_with_output().await.map_err(TmuxError::Spawn)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(TmuxError::Failed {
                command: args.first().cloned().unwrap_or_default(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Starts a detached session running `argv` directly (no shell), with the pane kept after
    /// the program exits so its last words and exit status can be read.
    pub async fn new_session(&self, spec: &SessionSpec<'_>) -> Result<(), TmuxError> {
        // The server is started once, by the control client, before any session is made: a
        // burst of new-session processes each starting the server (several spawns at once on
        // a fresh socket) lost the server under them, with the sessions already made in it
        // (seen under load: "server exited unexpectedly", then "can't find session").
        let _ = self.control_client().await;
        let mut new = NewSession::new()
            .detached()
            .session_name(spec.name)
            .start_directory(spec.workdir)
            .width(spec.width)
            .height(spec.height);
        for (key, value) in spec.env {
            new = new.environment(key.as_str(), value.as_str());
        }
        let mut cmd = new.build();
        for arg in spec.argv {
            cmd.push_param(literal(arg));
        }
        // Chained in one tmux call so the option is in place before the program can exit.
        cmd.push_param(";");
        let keep = SetOption::new()
            .window()
            .target_pane(pane(spec.name))
            .option("remain-on-exit")
            .value("on")
            .build();
        let keep: Vec<String> = keep.to_vec().into_iter().map(|p| p.into_owned()).collect();
        for part in &keep {
            cmd.push_param(part.clone());
        }
        let args = owned(cmd);
        let mut attempts = 0;
        loop {
            match self.run_args(args.clone(), None).await {
                // The last session just ended and its server is on its way out: this client
                // reached it as it went. The next one starts a server of its own.
                Err(TmuxError::Failed { stderr, .. })
                    if server_went_away(&stderr) && attempts < NEW_SESSION_ATTEMPTS =>
                {
                    attempts += 1;
                    tracing::debug!("tmux server went away during new-session ({stderr}); again");
                }
                // The attempt that lost its server had made the session all the same (seen in
                // CI: the client started a new server and created the session there before
                // reporting the old one lost). The name is this instance's alone, so it is
                // this session; only the option chained after it may be missing.
                Err(TmuxError::Failed { stderr, .. })
                    if attempts > 0 && stderr.contains("duplicate session") =>
                {
                    tracing::debug!("new-session had made {} before its server went", spec.name);
                    return self.run_args(keep, None).await.map(|_| ());
                }
                other => return other.map(|_| ()),
            }
        }
    }

    /// Restarts the program in a session whose pane is dead (or kills what runs there), with
    /// the same directory, environment and direct argv as [`Tmux::new_session`].
    pub async fn respawn(&self, spec: &SessionSpec<'_>) -> Result<(), TmuxError> {
        let mut cmd = RespawnPane::new()
            .kill()
            .start_directory(spec.workdir)
            .target_pane(pane(spec.name))
            .build();
        // RespawnPane holds a single -e; every variable needs its own.
        for (key, value) in spec.env {
            cmd.push_option("-e", format!("{key}={value}"));
        }
        for arg in spec.argv {
            cmd.push_param(literal(arg));
        }
        self.run(cmd, None).await.map(|_| ())
    }

    /// Whether the session exists. Only tmux saying so counts as "no": a client that lost its
    /// way to the server (it exited under it, or the socket was busy) is asked again, since
    /// "gone" ends the instance.
    pub async fn has_session(&self, name: &str) -> Result<bool, TmuxError> {
        let mut attempts = 0;
        loop {
            match self.ask(&["has-session", "-t", &exact(name)]).await {
                Ok(_) => return Ok(true),
                Err(TmuxError::Failed { stderr, .. }) if absent(&stderr) => return Ok(false),
                Err(TmuxError::Failed { stderr, .. }) if attempts < NEW_SESSION_ATTEMPTS => {
                    attempts += 1;
                    tracing::debug!("tmux has-session failed ({stderr}); again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn kill_session(&self, name: &str) -> Result<(), TmuxError> {
        self.run(KillSession::new().target_session(exact(name)).build(), None)
            .await
            .map(|_| ())
    }

    /// The visible screen as plain text.
    pub async fn capture(&self, name: &str) -> Result<String, TmuxError> {
        self.ask(&["capture-pane", "-p", "-t", &pane(name)]).await
    }

    /// The process id of the program in the session's pane, while it runs.
    pub async fn pane_pid(&self, name: &str) -> Result<Option<i32>, TmuxError> {
        let out = self
            .ask(&[
                "display-message",
                "-p",
                "-t",
                &pane(name),
                "#{pane_dead} #{pane_pid}",
            ])
            .await?;
        Ok(match out.trim().split_once(' ') {
            Some(("0", pid)) => pid.parse().ok(),
            _ => None,
        })
    }

    /// Whether the program in the session's pane has exited (the pane is kept, dead).
    pub async fn pane_dead(&self, name: &str) -> Result<bool, TmuxError> {
        let out = self
            .ask(&["display-message", "-p", "-t", &pane(name), "#{pane_dead}"])
            .await?;
        Ok(out.trim() == "1")
    }

    /// Types text literally (no key-name lookup).
    pub async fn send_text(&self, name: &str, text: &str) -> Result<(), TmuxError> {
        let mut cmd = SendKeys::new().target_pane(pane(name)).build();
        cmd.push_flag("-l");
        cmd.push_param(literal(text));
        self.run(cmd, None).await.map(|_| ())
    }

    /// Presses one named key (Enter, Escape, ...).
    pub async fn send_key(&self, name: &str, key: &str) -> Result<(), TmuxError> {
        self.send_keys(name, &[key]).await
    }

    /// Presses named keys in order, in one tmux command (verified on Claude Code 2.1.328:
    /// `Down Enter` sent together moves a dialog's cursor and then confirms).
    pub async fn send_keys(&self, name: &str, keys: &[&str]) -> Result<(), TmuxError> {
        let target = pane(name);
        let mut line = vec!["send-keys", "-t", target.as_str()];
        line.extend_from_slice(keys);
        if let Via::Answered(done) = self.via_control(&line).await {
            return done.map(|_| ());
        }
        let mut send = SendKeys::new().target_pane(pane(name));
        for key in keys {
            send = send.key(*key);
        }
        self.run(send.build(), None).await.map(|_| ())
    }

    /// Pastes text as one bracketed paste, so a TUI receives newlines as part of the text
    /// instead of as Enter presses. Loading and pasting the buffer go in one tmux command
    /// sequence: one process on the path of every message instead of two.
    pub async fn paste(&self, name: &str, text: &str) -> Result<(), TmuxError> {
        let buffer = format!("troupe-{name}");
        if let Some(dir) = self.paste_dir() {
            // The text goes by file: tmux reads its bytes as they are, and no character of
            // it meets tmux's command parser.
            let file = dir.join(format!("{buffer}-{}", uuid::Uuid::new_v4().simple()));
            if crate::private::write(&file, text.as_bytes()).is_ok() {
                let path = file.display().to_string();
                let target = pane(name);
                // Two commands, each answered before the next is written: tmux answers every
                // command of a line with a block of its own. load-buffer's answer comes once
                // the file is read, so the file can go then.
                let load = ["load-buffer", "-b", &buffer, &path];
                let paste = ["paste-buffer", "-d", "-p", "-b", &buffer, "-t", &target];
                let via = match self.via_control(&load).await {
                    Via::Answered(Ok(_)) => self.via_control(&paste).await,
                    other => other,
                };
                let _ = std::fs::remove_file(&file);
                if let Via::Answered(done) = via {
                    return done.map(|_| ());
                }
            }
        }
        let load = owned(
            LoadBuffer::new()
                .buffer_name(buffer.as_str())
                .path("-")
                .build(),
        );
        let paste = owned(
            PasteBuffer::new()
                .delete()
                .bracket_codes()
                .buffer_name(buffer.as_str())
                .target_pane(pane(name))
                .build(),
        );
        let args = [load, paste].join(&";".to_string());
        self.run_args(args, Some(text.as_bytes())).await.map(|_| ())
    }
}

fn owned(cmd: TmuxCommand<'_>) -> Vec<String> {
    cmd.to_vec().into_iter().map(|a| a.into_owned()).collect()
}

/// `=name` makes tmux match the session name exactly instead of by prefix.
fn exact(name: &str) -> String {
    format!("={name}")
}

/// The active pane of the session named exactly `name`.
fn pane(name: &str) -> String {
    format!("={name}:")
}

/// tmux splits its argv into commands at any argument ending in `;`; a trailing `\;` keeps
/// the semicolon as text instead.
fn literal(arg: &str) -> String {
    match arg.strip_suffix(';') {
        Some(head) => format!("{head}\\;"),
        None => arg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::{absent, literal};

    #[test]
    fn only_tmux_saying_so_means_no_session() {
        // As tmux 3.3a words them (checked on it).
        for gone in [
            "can't find session: two",
            "no server running on /tmp/tmux-0/stale",
            "error connecting to /tmp/tmux-0/none (No such file or directory)",
        ] {
            assert!(absent(gone), "{gone}");
        }
        for unsure in ["server exited unexpectedly", "lost server", ""] {
            assert!(!absent(unsure), "{unsure}");
        }
    }

    #[test]
    fn trailing_semicolons_are_escaped_for_tmux() {
        assert_eq!(literal("fix it;"), "fix it\\;");
        assert_eq!(literal("a;b"), "a;b");
        assert_eq!(literal("plain"), "plain");
    }
}
