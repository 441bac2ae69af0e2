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
    /// Seconds a CLI may take to start.
    #[arg(long, env = "TROUPE_STARTUP_TIMEOUT", default_value_t = 60)]
    startup_timeout: u64,
    /// Default seconds send_to_instance waits for an answer.
    #[arg(long, env = "TROUPE_DEFAULT_WAIT", default_value_t = 300)]
    default_wait: u64,
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
    }
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
    config.startup_timeout = Duration::from_secs(args.startup_timeout);
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
    tracing::info!("shutting down; instances keep running in tmux");
    server.stop().await;
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
