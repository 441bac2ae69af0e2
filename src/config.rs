//! One `Config` for the whole server: `serve`'s flags and `TROUPE_*` environment (clap reads
//! both, [`ServeArgs`]) layered over the config file and the defaults ([`Config::layered`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::agents::AgentKind;

/// How spawned Claude Code instances ask for permission to use tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
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

    /// A name as callers write it (any case).
    pub fn parse(name: &str) -> Option<PermissionMode> {
        <PermissionMode as clap::ValueEnum>::from_str(name.trim(), true).ok()
    }

    /// A name as callers write it, or what the valid ones are.
    pub fn parse_or_explain(name: &str) -> Result<PermissionMode, String> {
        PermissionMode::parse(name).ok_or_else(|| {
            format!(
                "unknown permission_mode {name:?}; use skip (prompts skipped), default (the CLI \
                 asks for each tool and troupe routes the question), accept-edits or plan"
            )
        })
    }
}

/// A stored name, as `query_as!` reads it. The database refuses any other (migration 0016);
/// were one there, the mode that asks is the safe reading.
impl From<String> for PermissionMode {
    fn from(name: String) -> PermissionMode {
        PermissionMode::parse(&name).unwrap_or(PermissionMode::Default)
    }
}

/// Compares with the stored name, as tests and reports read it.
impl PartialEq<&str> for PermissionMode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for PermissionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens.
    pub bind: SocketAddr,
    /// The SQLite database file (unused when `db_url` names a PostgreSQL registry).
    pub db_path: PathBuf,
    /// A PostgreSQL registry (`--db postgres://…`); None: the SQLite file at `db_path`.
    pub db_url: Option<String>,
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
    /// How long the live event log keeps an event (a client away longer starts from what is
    /// there); what an event reported stays in its own table.
    pub keep_events: Duration,
    /// The controls the config file sets (`[orchestration]`).
    pub file_controls: crate::settings::Layer,
    /// Where notices go (`[[notify]]` in the config file), checked.
    pub notify: Vec<crate::notify::sink::Sink>,
    /// The address a phone reaches this server at (`--public-url`), without a trailing '/':
    /// notices' Allow, Deny and Open links point there. None: notices carry no links.
    pub link_url: Option<String>,
    /// How long after a notice others of its kind go out as one digest.
    pub notify_digest: Duration,
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
    /// This server's name among the registry's hosts (`--host`; the machine's hostname).
    pub host: String,
    /// Each CLI's version as `serve` found it at start (for the hosts table).
    pub cli_versions: Vec<(String, String)>,
    /// How other hosts and clients reach this one (`--advertise-url`); empty: `public_url`.
    pub advertise_url: String,
    /// What placement may ask of this host (`--label gpu`).
    pub labels: Vec<String>,
    /// A certificate chain and its key (PEM): clients beyond this machine get HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How often a host on a shared registry says it is alive.
    pub heartbeat: Duration,
    /// A host silent this long is lost to the others.
    pub host_lost_after: Duration,
}

impl Config {
    /// Defaults suited to tests: everything under `data_dir`, an unbound port.
    pub fn for_data_dir(data_dir: PathBuf, tmux_socket: &str) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_path: data_dir.join("troupe.db"),
            db_url: None,
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
            keep_events: Duration::from_secs(7 * 24 * 3600),
            file_controls: crate::settings::Layer::default(),
            notify: Vec::new(),
            link_url: None,
            notify_digest: crate::notify::gate::DIGEST_WINDOW,
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
            host: crate::hosts::this_machine().hostname,
            cli_versions: Vec::new(),
            advertise_url: String::new(),
            tls: None,
            labels: Vec::new(),
            heartbeat: HEARTBEAT,
            host_lost_after: HEARTBEAT * 3,
        }
    }
}

/// How often a host on a shared registry writes that it is alive; three missed and the others
/// call it lost.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

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

/// `--public-url` checked: an http(s) URL with a host and nothing after its path, returned
/// without a trailing '/', with its host.
pub fn link_url(url: &str) -> anyhow::Result<(String, String)> {
    let bad = || {
        anyhow::anyhow!(
            "--public-url {url:?}: give the http(s) address a phone reaches troupe at, e.g. \
             https://troupe.example.org"
        )
    };
    let parsed: reqwest::Url = url.trim().parse().map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(bad());
    }
    let host = parsed
        .host_str()
        .ok_or_else(bad)?
        .trim_matches(['[', ']'])
        .to_string();
    Ok((parsed.as_str().trim_end_matches('/').to_string(), host))
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

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TROUPE_BIND", default_value = "127.0.0.1:8001")]
    pub bind: SocketAddr,
    /// SQLite database file [default: $XDG_DATA_HOME/troupe/troupe.db]
    #[arg(long, env = "TROUPE_DB")]
    pub db: Option<PathBuf>,
    /// Directory for per-instance files and default workspaces [default: the database's directory]
    #[arg(long, env = "TROUPE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// troupe's own tmux server socket name (tmux -L).
    #[arg(long, env = "TROUPE_TMUX_SOCKET", default_value = "troupe")]
    pub tmux_socket: String,
    /// The Claude Code executable.
    #[arg(long, env = "TROUPE_CLAUDE_BIN", default_value = AgentKind::Claude.default_bin())]
    pub claude_bin: String,
    /// The Codex executable (optional: without it, spawn_codex says how to install it).
    #[arg(long, env = "TROUPE_CODEX_BIN", default_value = AgentKind::Codex.default_bin())]
    pub codex_bin: String,
    /// How instances ask for tool permissions.
    #[arg(
        long,
        env = "TROUPE_PERMISSION_MODE",
        value_enum,
        default_value = "skip"
    )]
    pub permission_mode: PermissionMode,
    /// Most instances alive at once [default: 50; also MAX_INSTANCES, the config file, or
    /// configure_orchestration].
    #[arg(long)]
    pub max_instances: Option<u32>,
    /// troupe's config file: [orchestration] controls and [[prices]]
    /// [default: $XDG_CONFIG_HOME/troupe/config.toml]
    #[arg(long, env = "TROUPE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Deepest parent/child tree (1: instances cannot spawn children).
    #[arg(long, env = "TROUPE_MAX_DEPTH", default_value_t = 4)]
    pub max_depth: usize,
    /// Most live children per instance.
    #[arg(long, env = "TROUPE_MAX_CHILDREN", default_value_t = 10)]
    pub max_children: usize,
    /// Seconds a database write waits for a lock another process holds before it fails.
    #[arg(long, env = "TROUPE_DB_BUSY_TIMEOUT", default_value_t = 60)]
    pub db_busy_timeout: u64,
    /// Seconds a CLI may take to start.
    #[arg(long, env = "TROUPE_STARTUP_TIMEOUT", default_value_t = 60)]
    pub startup_timeout: u64,
    /// Default seconds send_to_instance waits for an answer.
    #[arg(long, env = "TROUPE_DEFAULT_WAIT", default_value_t = 300)]
    pub default_wait: u64,
    /// Seconds one wait of your own MCP client lasts at most before troupe answers with the
    /// message id and how to wait on [default: 100 for Claude Code 2.1.212 and later, which
    /// moves calls past 120 s to the background; no limit for other clients].
    #[arg(long, env = "TROUPE_PERSON_WAIT")]
    pub person_wait: Option<u64>,
    /// Seconds a permission request is held for a decision (respond_to_permission, the
    /// dashboard, a rule), after which the CLI's own dialog waits for a person at its pane;
    /// and seconds an instance's call waits for your approval (require_approval).
    #[arg(long, env = "TROUPE_PERMISSION_WAIT", default_value_t = 300)]
    pub permission_wait: u64,
    /// Hours the live event log (GET /api/events, the dashboard's catch-up) keeps an event;
    /// older ones are forgotten every hour. Messages, output, usage and audit stay in their own
    /// tables whatever this says.
    #[arg(long, env = "TROUPE_KEEP_EVENTS_HOURS", default_value_t = 168)]
    pub keep_events_hours: u64,
    /// On SIGTERM/Ctrl-C, terminate every instance instead of leaving them running.
    #[arg(long, env = "TROUPE_TERMINATE_ON_EXIT", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub terminate_on_exit: bool,
    /// The token clients present [default: the data dir's `token` file, made on first start]
    #[arg(long, env = "TROUPE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The address a phone can reach this server at (a tunnel, a name on your network), e.g.
    /// https://troupe.example.org: notices' Allow / Deny / Open links point there, and its host
    /// is one troupe answers to. Without it, notices carry no links.
    #[arg(long, env = "TROUPE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A host name (besides loopback) clients may use to reach troupe; repeat for more.
    #[arg(long = "allow-host", env = "TROUPE_ALLOW_HOSTS", value_delimiter = ',')]
    pub allow_hosts: Vec<String>,
    /// A directory an instance's helpers may work in besides the instance's own (an
    /// instance's spawn may name a project_dir only inside its own directory or one of
    /// these); repeat for more, or separate with ':'.
    #[arg(long = "allow-dir", env = "TROUPE_ALLOW_DIRS", value_delimiter = ':')]
    pub allow_dirs: Vec<PathBuf>,
    /// A variable of this environment instances get too; repeat for more, or separate with
    /// ','. Without it they get only a shell's basics, toolchain homes, proxies and the CLIs'
    /// own settings (ANTHROPIC_*, CLAUDE_*, OPENAI_*, CODEX_*, ...).
    #[arg(long = "pass-env", env = "TROUPE_PASS_ENV", value_delimiter = ',')]
    pub pass_env: Vec<String>,
    /// This server's name among the hosts of a shared registry [default: the machine's hostname]
    #[arg(long, env = "TROUPE_HOST")]
    pub host: Option<String>,
    /// How other hosts and clients reach this one [default: the address it listens on]
    #[arg(long, env = "TROUPE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// A certificate chain (PEM) for HTTPS: clients beyond this machine must then use https://,
    /// while this machine's own clients and instances may go on with plain http on loopback
    #[arg(long, env = "TROUPE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert
    #[arg(long, env = "TROUPE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A label placement may ask for (`host: "label:gpu"`); repeat for more.
    #[arg(long = "label", env = "TROUPE_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Seconds between a host's heartbeats on a shared registry (lost after three missed).
    #[arg(long, env = "TROUPE_HEARTBEAT", default_value_t = HEARTBEAT.as_secs(), hide = true)]
    pub heartbeat: u64,
    /// Allow --bind on an address other machines can reach.
    #[arg(long, env = "TROUPE_ALLOW_REMOTE", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_remote: bool,
}

impl ServeArgs {
    /// `--db` when it names a PostgreSQL server rather than a file.
    pub fn db_url(&self) -> Option<String> {
        let db = self.db.as_ref()?.to_str()?;
        crate::db::is_postgres_url(db).then(|| db.to_string())
    }

    /// The database file and the data directory, absolute: `--db`, else the default; the data
    /// directory is `--data-dir`, else the database's directory.
    pub fn paths(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        let file = match (&self.db, self.db_url()) {
            (Some(path), None) => path.clone(),
            // A database server: the data directory is --data-dir, else the default.
            (_, Some(_)) => self
                .data_dir
                .clone()
                .unwrap_or_else(default_data_dir)
                .join("troupe.db"),
            (None, None) => default_data_dir().join("troupe.db"),
        };
        let db_path = crate::preflight::absolute(&file)?;
        let data_dir = match &self.data_dir {
            Some(dir) => crate::preflight::absolute(dir)?,
            None => db_path
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_else(default_data_dir),
        };
        Ok((db_path, data_dir))
    }
}

impl Config {
    /// The server's configuration, each value from the last of: the defaults, the config file
    /// (`[orchestration]` controls and `[[prices]]`), the environment, the flags (clap has
    /// already put `TROUPE_*` variables under their flags). `tools` are the MCP tools a
    /// control may name; `codex_missing` is why Codex instances cannot run, if they cannot.
    pub fn layered(
        args: &ServeArgs,
        db_path: PathBuf,
        data_dir: PathBuf,
        codex_missing: Option<String>,
        tools: &[&str],
    ) -> anyhow::Result<Config> {
        let mut config = Config::for_data_dir(data_dir, &args.tmux_socket);
        config.bind = args.bind;
        config.db_path = db_path;
        config.db_url = args.db_url();
        config.claude_bin = args.claude_bin.clone();
        config.codex_bin = args.codex_bin.clone();
        config.codex_missing = codex_missing;
        config.permission_mode = args.permission_mode;

        let config_path = match &args.config {
            Some(p) => crate::preflight::absolute(p)?,
            None => crate::settings::default_config_file(),
        };
        let file = crate::settings::read_config_file(&config_path).map_err(|e| {
            anyhow::anyhow!("{e}; fix it, or start with --config pointing at another file")
        })?;
        file.orchestration
            .check(tools)
            .map_err(|e| anyhow::anyhow!("{}: [orchestration] {e}", config_path.display()))?;
        config.prices = config
            .prices
            .with(file.prices)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
        config.file_controls = file.orchestration;
        config.notify = crate::notify::sink::check(file.notify)
            .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;

        let mut env_controls = crate::settings::Layer::from_env(|k| std::env::var(k).ok())
            .map_err(|e| anyhow::anyhow!("in the environment: {e}"))?;
        if let Some(n) = args.max_instances {
            env_controls.max_instances = Some(n);
        }
        env_controls
            .check(tools)
            .map_err(|e| anyhow::anyhow!("in the environment: {e}"))?;
        config.env_controls = env_controls;

        config.max_depth = args.max_depth;
        config.max_children = args.max_children;
        config.startup_timeout = Duration::from_secs(args.startup_timeout);
        config.db_busy_timeout = Duration::from_secs(args.db_busy_timeout);
        config.default_wait = Duration::from_secs(args.default_wait);
        config.person_wait = args.person_wait.map(Duration::from_secs);
        if args.permission_wait == 0 || args.permission_wait > 3600 {
            anyhow::bail!("--permission-wait must be 1 to 3600 seconds");
        }
        config.permission_wait = Duration::from_secs(args.permission_wait);
        if args.keep_events_hours == 0 || args.keep_events_hours > 87_600 {
            anyhow::bail!("--keep-events-hours must be 1 to 87600 (ten years)");
        }
        config.keep_events = Duration::from_secs(args.keep_events_hours * 3600);
        config.token = args.token.clone().unwrap_or_default();
        config.allowed_hosts = args.allow_hosts.clone();
        if let Some(url) = &args.public_url {
            let (url, host) = link_url(url)?;
            config.link_url = Some(url);
            if !config
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host))
            {
                config.allowed_hosts.push(host);
            }
        }
        config.pass_env = args
            .pass_env
            .iter()
            .filter(|n| !n.trim().is_empty())
            .map(|n| crate::environment::pass_name(n).map_err(anyhow::Error::msg))
            .collect::<Result<_, _>>()?;
        config.allow_dirs = args
            .allow_dirs
            .iter()
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| allowed_dir(d))
            .collect::<Result<_, _>>()?;
        config.allow_remote = args.allow_remote;
        if let Some(name) = &args.host {
            config.host = crate::hosts::checked_name(name).map_err(anyhow::Error::msg)?;
        }
        if let Some(url) = &args.advertise_url {
            config.advertise_url = crate::hosts::checked_url(url).map_err(anyhow::Error::msg)?;
        }
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            config.tls = Some((cert.clone(), key.clone()));
        }
        config.labels = args
            .labels
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| crate::hosts::checked_name(l).map_err(|e| anyhow::anyhow!("--label: {e}")))
            .collect::<Result<_, _>>()?;
        if args.heartbeat == 0 || args.heartbeat > 60 {
            anyhow::bail!("--heartbeat must be 1 to 60 seconds");
        }
        config.heartbeat = Duration::from_secs(args.heartbeat);
        config.host_lost_after = config.heartbeat * 3;
        Ok(config)
    }
}
