//! The command line's shape: every subcommand and flag (clap), and where the client finds the
//! server and its token.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::agents::AgentKind;
use crate::config::{self, ServeArgs};

#[derive(Parser)]
#[command(
    name = "troupe",
    version,
    about = "Run a team of Claude Code and Codex instances in tmux from one MCP session"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server: MCP (streamable HTTP) at /mcp, the REST API and live events under /api,
    /// the dashboard at /.
    Serve(Box<ServeArgs>),
    /// Forward a CLI's hook payload (stdin) to the server; for a permission request, print
    /// the server's answer. Installed by troupe itself.
    Hook {
        #[arg(long)]
        url: String,
        /// The file holding the instance's token.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Talk to your own Claude Code, here, with troupe as its way to a team: the session's
    /// spawns are its children, its cost is counted. Starts `troupe serve` if none answers.
    Chat {
        #[command(flatten)]
        server: ServerUrl,
        #[command(flatten)]
        args: crate::chat::ChatArgs,
    },
    /// MCP over stdio, for clients that speak nothing else: forwards to the server at --url
    /// (one registry for both), starting `troupe serve` there if none answers.
    Stdio {
        #[command(flatten)]
        server: ServerUrl,
    },
    /// Check what troupe needs, a line each, with the fix for what is wrong: tmux, the CLIs
    /// (found, version, tested), the token, the data directory and database, the server, and
    /// for a running server its MCP clients (which protocol era each speaks) and the last
    /// failures in its audit log. Exits 1 if something must be fixed.
    Doctor {
        #[command(flatten)]
        server: ServerUrl,
        /// The Claude Code executable.
        #[arg(long, env = "TROUPE_CLAUDE_BIN", default_value = AgentKind::Claude.default_bin())]
        claude_bin: String,
        /// The Codex executable.
        #[arg(long, env = "TROUPE_CODEX_BIN", default_value = AgentKind::Codex.default_bin())]
        codex_bin: String,
        /// The registry, when it is a PostgreSQL database (postgres://…): checked there.
        #[arg(long, env = "TROUPE_DB", hide_env_values = true)]
        db: Option<String>,
        /// The checks as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// List the live instances of a running server (with --all, the ended ones too).
    Ls {
        #[command(flatten)]
        server: ServerUrl,
        /// Ended instances (terminated, failed) too.
        #[arg(long)]
        all: bool,
        /// The server's answer as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// The hosts of the registry: each one's state, address, load and labels.
    Hosts {
        #[command(flatten)]
        server: ServerUrl,
        /// The server's answer as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// The parent/child tree of the live instances.
    Tree {
        #[command(flatten)]
        server: ServerUrl,
        #[arg(long)]
        json: bool,
    },
    /// Send a message to an instance and print its answer.
    Send {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        id: String,
        /// The message.
        message: String,
        /// Wait for the answer and print it (the default).
        #[arg(long, conflicts_with = "no_wait")]
        wait: bool,
        /// Queue it and print its id instead of waiting for the answer.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Stop an instance's running turn (or every instance's with --all); conversations are kept.
    Interrupt {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Terminate an instance and everything under it (or every instance with --all).
    Kill {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        #[arg(required_unless_present = "all")]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// What an instance said and did: its recent output, and with -f everything after it,
    /// live, until the instance ends or you press Ctrl-C.
    Logs {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        id: String,
        /// Keep following the output as it is written.
        #[arg(short, long)]
        follow: bool,
        /// How many recent chunks to show first.
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: u32,
        /// One JSON object per chunk, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Permission requests waiting for a decision (instances in a prompting permission mode).
    Permissions {
        #[command(flatten)]
        server: ServerUrl,
        #[arg(long)]
        json: bool,
    },
    /// Let an instance go on with the tool use it asks permission for.
    Allow {
        #[command(flatten)]
        server: ServerUrl,
        /// The request id (`perm-…`, from `troupe permissions`).
        request_id: String,
    },
    /// Refuse a tool use an instance asks permission for; it goes on without it.
    Deny {
        #[command(flatten)]
        server: ServerUrl,
        /// The request id (`perm-…`, from `troupe permissions`).
        request_id: String,
        /// Why, for the instance's model.
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Answer an instance's call that waits for your approval (require_approval); without an
    /// id, list the ones waiting.
    Approve {
        #[command(flatten)]
        server: ServerUrl,
        /// The approval id (`appr-…`, from the notice, the dashboard or `troupe approve`).
        approval_id: Option<String>,
        /// Refuse the call instead.
        #[arg(long)]
        deny: bool,
        /// With --deny: why, for the instance.
        #[arg(short, long, requires = "deny")]
        message: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Open an instance's tmux session in this terminal (detach with Ctrl-b d).
    Attach {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        id: String,
    },
    /// The notification sinks ([[notify]] in the config file) and the latest deliveries;
    /// `troupe notify test [NAME]` sends each (or NAME) a sample and prints its answer.
    Notify {
        #[command(flatten)]
        server: ServerUrl,
        /// `test`: send a sample notice now.
        #[arg(value_parser = ["test"])]
        action: Option<String>,
        /// With `test`: only this sink.
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a one-time link that logs a browser in to the dashboard.
    Open {
        #[command(flatten)]
        server: ServerUrl,
    },
    /// The browsers logged in to the dashboard; --end-all logs every one out.
    Logins {
        #[command(flatten)]
        server: ServerUrl,
        /// End every dashboard login (each browser must open a new link).
        #[arg(long)]
        end_all: bool,
    },
    /// Bring a suspended or stopped instance back with its conversation.
    Resume {
        #[command(flatten)]
        server: ServerUrl,
        /// The instance id.
        id: String,
    },
    /// What the session has cost so far: tokens, cost by model, messages, time saved.
    Cost {
        #[command(flatten)]
        server: ServerUrl,
        /// The server's answer as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Add troupe to an MCP client's configuration (or take it out again).
    Mcp {
        #[command(flatten)]
        server: ServerUrl,
        #[command(subcommand)]
        command: McpCommand,
    },
    /// Cost and audit reports, read from the database (the server may be stopped).
    Report {
        /// The database [default: $XDG_DATA_HOME/troupe/troupe.db]
        #[arg(long, env = "TROUPE_DB", global = true)]
        db: Option<PathBuf>,
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Copy a registry from an SQLite file into a PostgreSQL database, and check the copy.
    ///
    /// Every table is copied in one transaction; the row counts and the recorded cost are
    /// compared on both sides before it commits. Stop `troupe serve` first; afterwards start it
    /// with `--db <the URL>` and the same --data-dir.
    Migrate {
        /// The SQLite file [default: $XDG_DATA_HOME/troupe/troupe.db]
        #[arg(long)]
        from: Option<PathBuf>,
        /// The PostgreSQL database: postgres://user:password@host:port/db
        #[arg(long)]
        to: String,
        /// Empty the target first if it already holds a registry.
        #[arg(long)]
        replace: bool,
    },
    /// One host of the registry: drain it (no new spawns), take spawns again, or forget it.
    Host {
        #[command(flatten)]
        server: ServerUrl,
        #[command(subcommand)]
        command: HostCommand,
    },
    /// Persistent teams: create, list, show, start, resume, dissolve.
    Team {
        #[command(flatten)]
        server: ServerUrl,
        #[command(subcommand)]
        command: TeamCommand,
    },
}

#[derive(clap::Args)]
pub struct ServerUrl {
    /// The running troupe server.
    #[arg(
        long,
        env = "TROUPE_URL",
        default_value = "http://127.0.0.1:8001",
        global = true
    )]
    pub url: String,
    /// The server token [default: the `token` file in the server's data directory]
    #[arg(long, env = "TROUPE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// The server's data directory, where its token file is.
    #[arg(long, env = "TROUPE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

impl ServerUrl {
    pub fn client(&self) -> anyhow::Result<crate::cli::Client> {
        Ok(crate::cli::Client::new(&self.url, &self.token()?))
    }

    /// The data directory: `--data-dir`, or the default.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(config::default_data_dir)
    }

    pub fn token(&self) -> anyhow::Result<String> {
        Ok(match &self.token {
            Some(t) => t.clone(),
            None => {
                let file = self.data_dir().join("token");
                std::fs::read_to_string(&file)
                    .map(|t| t.trim().to_string())
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot read the server token from {}: {e}; pass --token or set \
                             TROUPE_TOKEN (troupe serve prints it at start)",
                            file.display()
                        )
                    })?
            }
        })
    }
}

#[derive(Subcommand)]
pub enum McpCommand {
    /// Write troupe, with the server token, into the client's MCP configuration.
    Install {
        #[arg(long, value_enum, default_value_t = crate::install::Client::Claude)]
        client: crate::install::Client,
        #[arg(long, value_enum, default_value = "user")]
        scope: crate::install::Scope,
        /// The Codex executable (with --client codex).
        #[arg(long, env = "TROUPE_CODEX_BIN", default_value = AgentKind::Codex.default_bin())]
        codex_bin: String,
    },
    /// Take troupe out of the client's MCP configuration.
    Uninstall {
        #[arg(long, value_enum, default_value_t = crate::install::Client::Claude)]
        client: crate::install::Client,
        #[arg(long, value_enum, default_value = "user")]
        scope: crate::install::Scope,
        #[arg(long, env = "TROUPE_CODEX_BIN", default_value = AgentKind::Codex.default_bin())]
        codex_bin: String,
    },
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Tokens and cost, grouped by instance, model, team, day or message.
    Cost {
        #[arg(long, value_enum, default_value = "instance")]
        by: crate::report::By,
        /// Only calls on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Only this team's instances.
        #[arg(long)]
        team: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: crate::report::Format,
    },
    /// The audit log: spawns, messages' ends, interrupts, settings, refusals.
    Audit {
        /// Only events on or after this day (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Only this instance's events.
        #[arg(long)]
        instance: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: crate::report::Format,
    },
}

#[derive(Subcommand)]
pub enum HostCommand {
    /// No new spawns on the host; its instances go on (unless --suspend).
    Drain {
        name: String,
        /// Also suspend its running instances; their conversations are kept, and a message
        /// or resume brings each back.
        #[arg(long)]
        suspend: bool,
    },
    /// The host takes spawns again.
    Undrain { name: String },
    /// Give up on a host that will not come back: its instances that have not ended fail.
    Forget { name: String },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create a team, e.g. `troupe team create dev-team --members architect:opus,developer:sonnet,tester:haiku`.
    Create {
        name: String,
        /// Members as role[:model] or name=role[:model], comma-separated.
        #[arg(long)]
        members: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Start the members right away.
        #[arg(long)]
        start: bool,
        /// The directory the members work in, kept with the team (relative to here is fine).
        #[arg(long)]
        project_dir: Option<String>,
        /// Each member works in a git worktree of its own (branch troupe/<member>), made from
        /// the project directory's repository.
        #[arg(long)]
        worktrees: bool,
    },
    /// List teams.
    Ls,
    /// Show one team.
    Show { name: String },
    /// Spawn the members that have no instance yet.
    Start {
        name: String,
        /// The directory the members work in, kept as the team's from now on.
        #[arg(long)]
        project_dir: Option<String>,
    },
    /// Bring a team back, each member with its conversation.
    Resume { name: String },
    /// Terminate the members and retire the team.
    Dissolve { name: String },
}
