//! One `Config` for the whole server, from flags and `TROUPE_*` environment (clap reads both).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How spawned Claude Code instances ask for permission to use tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum PermissionMode {
    /// `--dangerously-skip-permissions`: instances never stop at a permission dialog.
    Skip,
    /// The CLI's default: instances stop and ask (troupe reports `waiting_permission`).
    Default,
    /// `--permission-mode acceptEdits`: file edits are allowed, other tools ask.
    AcceptEdits,
    /// `--permission-mode plan`: read-only planning.
    Plan,
}

impl PermissionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionMode::Skip => "skip",
            PermissionMode::Default => "default",
            PermissionMode::AcceptEdits => "accept-edits",
            PermissionMode::Plan => "plan",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens.
    pub bind: SocketAddr,
    /// The SQLite database file.
    pub db_path: PathBuf,
    /// How long a write waits for a lock another process holds on the database before it
    /// fails; SQLite retries it meanwhile.
    pub db_busy_timeout: Duration,
    /// Per-instance files (settings, MCP config) and default workspaces live here.
    pub data_dir: PathBuf,
    /// troupe's own tmux server socket name (`tmux -L`).
    pub tmux_socket: String,
    /// The Claude Code executable.
    pub claude_bin: String,
    /// The Codex executable.
    pub codex_bin: String,
    /// What each model costs.
    pub prices: crate::pricing::PriceTable,
    /// Why Codex instances cannot run (the check at start found no working `codex`).
    pub codex_missing: Option<String>,
    /// The troupe executable that instances' hooks run (`troupe hook`).
    pub troupe_bin: PathBuf,
    pub permission_mode: PermissionMode,
    /// Extra environment for every instance (tests point instances at a fake model here).
    pub instance_env: Vec<(String, String)>,
    /// How long a CLI may take from launch to its ready prompt.
    pub startup_timeout: Duration,
    /// How long a typed message may take to show up as a turn in the transcript.
    pub submit_timeout: Duration,
    /// How long an interrupt waits for the CLI to confirm the turn stopped.
    pub interrupt_timeout: Duration,
    /// Default wait for an answer when the caller gives none.
    pub default_wait: Duration,
    /// The longest one wait lasts for the person's own MCP client before troupe answers with
    /// the message id; None: what the client is known to bear (see [`crate::mcp`]'s waits).
    pub person_wait: Option<Duration>,
    /// How long a permission request is held for someone to decide it.
    pub permission_wait: Duration,
    /// The controls the config file sets (`[orchestration]`).
    pub file_controls: crate::settings::Layer,
    /// The controls the environment and `serve`'s flags set.
    pub env_controls: crate::settings::Layer,
    /// Deepest allowed tree: 1 means no instance may spawn children.
    pub max_depth: usize,
    /// Most live children one instance may have.
    pub max_children: usize,
    /// The URL instances use to reach this server (set once the listener is bound).
    pub public_url: String,
    /// The token every client but an instance presents. Empty: read from (or made in) the
    /// data directory's `token` file at start.
    pub token: String,
    /// Host names (besides loopback) that requests may name in `Host` and `Origin`.
    pub allowed_hosts: Vec<String>,
    /// Directories (absolute, resolved) an instance's helpers may work in besides the
    /// instance's own directory (`--allow-dir`).
    pub allow_dirs: Vec<PathBuf>,
    /// Variables of troupe's environment instances get besides the allowlist
    /// (`--pass-env`, see [`crate::environment`]).
    pub pass_env: Vec<String>,
    /// Listening on a non-loopback address was asked for explicitly.
    pub allow_remote: bool,
    /// The most MCP sessions open at once.
    pub max_mcp_sessions: usize,
    /// An MCP session with no message either way for this long ends.
    pub mcp_session_idle: Duration,
}

impl Config {
    /// Defaults suited to tests: everything under `data_dir`, an unbound port.
    pub fn for_data_dir(data_dir: PathBuf, tmux_socket: &str) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_path: data_dir.join("troupe.db"),
            db_busy_timeout: Duration::from_secs(60),
            data_dir,
            tmux_socket: tmux_socket.to_string(),
            claude_bin: crate::agents::AgentKind::Claude.default_bin().into(),
            codex_bin: crate::agents::AgentKind::Codex.default_bin().into(),
            prices: crate::pricing::PriceTable::defaults(),
            codex_missing: None,
            troupe_bin: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("troupe")),
            permission_mode: PermissionMode::Skip,
            instance_env: Vec::new(),
            startup_timeout: Duration::from_secs(60),
            submit_timeout: Duration::from_secs(30),
            interrupt_timeout: Duration::from_secs(15),
            default_wait: Duration::from_secs(300),
            person_wait: None,
            permission_wait: Duration::from_secs(300),
            file_controls: crate::settings::Layer::default(),
            env_controls: crate::settings::Layer::default(),
            max_depth: 4,
            max_children: 10,
            public_url: String::new(),
            token: String::new(),
            allowed_hosts: Vec::new(),
            allow_dirs: Vec::new(),
            pass_env: Vec::new(),
            allow_remote: false,
            max_mcp_sessions: MAX_MCP_SESSIONS,
            mcp_session_idle: MCP_SESSION_IDLE,
        }
    }
}

/// The most MCP sessions open at once.
pub const MAX_MCP_SESSIONS: usize = 256;

/// A session with no message in either direction for this long ends; a long wait keeps its
/// session alive with progress or log notifications.
pub const MCP_SESSION_IDLE: Duration = Duration::from_secs(60 * 60);

/// An `--allow-dir`, checked and resolved: it must be an absolute path to a directory.
pub fn allowed_dir(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    if !dir.is_absolute() {
        anyhow::bail!(
            "--allow-dir {}: give an absolute path (an instance's helpers may work inside it)",
            dir.display()
        );
    }
    match dir.canonicalize() {
        Ok(d) if d.is_dir() => Ok(d),
        Ok(_) => anyhow::bail!("--allow-dir {}: not a directory", dir.display()),
        Err(e) => anyhow::bail!("--allow-dir {}: {e}", dir.display()),
    }
}

/// `$XDG_DATA_HOME/troupe`, i.e. `~/.local/share/troupe` by default.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("troupe");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local").join("share").join("troupe")
}

/// A switch as people write it: 1/0, true/false, yes/no, on/off (any case).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" => Some(true),
        "0" | "false" | "no" | "off" | "n" => Some(false),
        _ => None,
    }
}
