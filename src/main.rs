use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use troupe::config::{self, Config, PermissionMode};

#[derive(Parser)]
#[command(
    name = "troupe",
    version,
    about = "Run a team of Claude Code instances in tmux from one MCP session"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: MCP (streamable HTTP) at /mcp, health at /health.
    Serve(ServeArgs),
    /// Forward a Claude Code hook payload (stdin) to the server. Installed by troupe itself.
    Hook {
        #[arg(long)]
        url: String,
    },
    /// List the live instances of a running server.
    Ls {
        #[command(flatten)]
        server: ServerUrl,
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
struct ServerUrl {
    /// The running troupe server.
    #[arg(
        long,
        env = "TROUPE_URL",
        default_value = "http://127.0.0.1:8001",
        global = true
    )]
    url: String,
}

#[derive(Subcommand)]
enum TeamCommand {
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
        /// Absolute path the members work in (with --start).
        #[arg(long)]
        project_dir: Option<String>,
    },
    /// List teams.
    Ls,
    /// Show one team.
    Show { name: String },
    /// Spawn the members that have no instance yet.
    Start {
        name: String,
        #[arg(long)]
        project_dir: Option<String>,
    },
    /// Bring a team back, each member with its conversation.
    Resume { name: String },
    /// Terminate the members and retire the team.
    Dissolve { name: String },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TROUPE_BIND", default_value = "127.0.0.1:8001")]
    bind: SocketAddr,
    /// SQLite database file [default: $XDG_DATA_HOME/troupe/troupe.db]
    #[arg(long, env = "TROUPE_DB")]
    db: Option<PathBuf>,
    /// Directory for per-instance files and default workspaces [default: the database's directory]
    #[arg(long, env = "TROUPE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// troupe's own tmux server socket name (tmux -L).
    #[arg(long, env = "TROUPE_TMUX_SOCKET", default_value = "troupe")]
    tmux_socket: String,
    /// The Claude Code executable.
    #[arg(long, env = "TROUPE_CLAUDE_BIN", default_value = "claude")]
    claude_bin: String,
    /// How instances ask for tool permissions.
    #[arg(
        long,
        env = "TROUPE_PERMISSION_MODE",
        value_enum,
        default_value = "skip"
    )]
    permission_mode: PermissionMode,
    /// Most instances alive at once.
    #[arg(long, env = "TROUPE_MAX_INSTANCES", default_value_t = 50)]
    max_instances: usize,
    /// Deepest parent/child tree (1: instances cannot spawn children).
    #[arg(long, env = "TROUPE_MAX_DEPTH", default_value_t = 4)]
    max_depth: usize,
    /// Most live children per instance.
    #[arg(long, env = "TROUPE_MAX_CHILDREN", default_value_t = 10)]
    max_children: usize,
    /// Seconds a database write waits for a lock another process holds before it fails.
    #[arg(long, env = "TROUPE_DB_BUSY_TIMEOUT", default_value_t = 60)]
    db_busy_timeout: u64,
    /// Seconds a CLI may take to start.
    #[arg(long, env = "TROUPE_STARTUP_TIMEOUT", default_value_t = 60)]
    startup_timeout: u64,
    /// Default seconds send_to_instance waits for an answer.
    #[arg(long, env = "TROUPE_DEFAULT_WAIT", default_value_t = 300)]
    default_wait: u64,
    /// On SIGTERM/Ctrl-C, terminate every instance instead of leaving them running.
    #[arg(long, env = "TROUPE_TERMINATE_ON_EXIT")]
    terminate_on_exit: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Hook { url } => {
            runtime.block_on(troupe::hook::forward(&url));
            Ok(())
        }
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Ls { server } => runtime.block_on(ls(&server.url)),
        Command::Team { server, command } => runtime.block_on(team(&server.url, command)),
    }
}

async fn ls(url: &str) -> anyhow::Result<()> {
    let list = troupe::cli::Client::new(url).instances().await?;
    let instances = list["instances"].as_array().cloned().unwrap_or_default();
    if instances.is_empty() {
        println!("no live instances");
    }
    for i in instances {
        println!(
            "{:<24} {:<11} {:<8} {:<18} {}",
            i["id"].as_str().unwrap_or(""),
            i["role"].as_str().unwrap_or(""),
            i["model"].as_str().unwrap_or(""),
            i["state"].as_str().unwrap_or(""),
            i["state_reason"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

async fn team(url: &str, command: TeamCommand) -> anyhow::Result<()> {
    let client = troupe::cli::Client::new(url);
    match command {
        TeamCommand::Create {
            name,
            members,
            description,
            start,
            project_dir,
        } => {
            let members = troupe::cli::parse_members(&members)?;
            let mut team = client.create_team(&name, &description, &members).await?;
            if start {
                team = client.start_team(&name, project_dir.as_deref()).await?;
            }
            troupe::cli::print_team(&team);
        }
        TeamCommand::Ls => {
            let teams = client.teams().await?;
            let teams = teams["teams"].as_array().cloned().unwrap_or_default();
            if teams.is_empty() {
                println!("no teams");
            }
            for t in &teams {
                troupe::cli::print_team(t);
            }
        }
        TeamCommand::Show { name } => troupe::cli::print_team(&client.team(&name).await?),
        TeamCommand::Start { name, project_dir } => {
            troupe::cli::print_team(&client.start_team(&name, project_dir.as_deref()).await?)
        }
        TeamCommand::Resume { name } => troupe::cli::print_team(&client.resume_team(&name).await?),
        TeamCommand::Dissolve { name } => {
            let team = client.dissolve_team(&name).await?;
            troupe::cli::print_team(&team);
            println!("dissolved");
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "troupe=info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let db_path = args
        .db
        .unwrap_or_else(|| config::default_data_dir().join("troupe.db"));
    let data_dir = args.data_dir.unwrap_or_else(|| {
        db_path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(config::default_data_dir)
    });
    let mut config = Config::for_data_dir(data_dir, &args.tmux_socket);
    config.bind = args.bind;
    config.db_path = db_path;
    config.claude_bin = args.claude_bin;
    config.permission_mode = args.permission_mode;
    config.max_instances = args.max_instances;
    config.max_depth = args.max_depth;
    config.max_children = args.max_children;
    config.startup_timeout = Duration::from_secs(args.startup_timeout);
    config.db_busy_timeout = Duration::from_secs(args.db_busy_timeout);
    config.default_wait = Duration::from_secs(args.default_wait);

    let server = troupe::Server::start(config).await?;
    tracing::info!(
        url = %server.url(),
        db = %server.supervisor.config().db_path.display(),
        tmux_socket = %server.supervisor.config().tmux_socket,
        "troupe is serving; MCP at {}/mcp",
        server.url()
    );
    shutdown_signal().await;
    if args.terminate_on_exit {
        tracing::info!("shutting down; terminating instances");
    } else {
        tracing::info!("shutting down; instances keep running in tmux");
    }
    server.stop_with(args.terminate_on_exit).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("cannot install SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
