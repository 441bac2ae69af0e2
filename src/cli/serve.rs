//! `troupe serve`: the server in the foreground, its start line and the way in, until a signal.

use crate::config::{Config, ServeArgs};

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "troupe=info,tower_http=warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();

    // Taken over before anything serves: a SIGTERM that came while the server was starting
    // would otherwise end the process at once, with no clean stop.
    let mut signals = Signals::install()?;
    let (db_path, data_dir) = args.paths()?;
    let found = crate::preflight::check(&args.claude_bin, &args.codex_bin, &data_dir)?;
    let mut config = Config::layered(
        &args,
        db_path,
        data_dir,
        found.codex.clone().err(),
        &crate::mcp::tool_names(),
    )?;
    config.cli_versions = [
        Some(("tmux", found.tmux.clone())),
        Some(("claude", found.claude.clone())),
        found.codex.clone().ok().map(|v| ("codex", v)),
    ]
    .into_iter()
    .flatten()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    let server = crate::Server::start(config).await?;
    let config = server.supervisor.config();
    tracing::info!(
        url = %server.url(),
        db = %match &config.db_url {
            Some(url) => crate::db::redacted(url),
            None => config.db_path.display().to_string(),
        },
        backend = server.supervisor.pool().engine(),
        host = %config.host,
        tmux_socket = %config.tmux_socket,
        claude = %crate::agents::claude::TESTED.assess(&found.claude),
        codex = %found
            .codex
            .as_deref()
            .map(|v| crate::agents::codex::TESTED.assess(v).to_string())
            .unwrap_or_else(|_| "not found".into()),
        tmux = %found.tmux,
        "troupe is serving; MCP at {}/mcp",
        server.url()
    );
    if let Err(why) = &found.codex {
        tracing::info!("Codex instances are off: {why}");
    }
    print_way_in(&server);
    signals.recv().await;
    if args.terminate_on_exit {
        tracing::info!("shutting down; terminating instances");
    } else {
        tracing::info!("shutting down; instances keep running in tmux");
    }
    server.stop_with(args.terminate_on_exit).await;
    Ok(())
}

/// How to connect, to stderr like the log: the token itself only when it was just made and a
/// person reads the terminal (a log file may outlive it); otherwise the commands read it from
/// where it is.
pub(super) fn print_way_in(server: &crate::Server) {
    let config = server.supervisor.config();
    let mcp = format!("{}/mcp", config.public_url);
    let file = config.data_dir.join("token");
    let (whence, token) = match server.token_source() {
        crate::auth::TokenSource::Given => (
            "from --token / TROUPE_TOKEN".to_string(),
            "$TROUPE_TOKEN".to_string(),
        ),
        crate::auth::TokenSource::File => (
            format!("in {}", file.display()),
            format!("$(cat {})", file.display()),
        ),
        // Shown once, to the person at the terminal; a log file gets where it is.
        crate::auth::TokenSource::Created
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) =>
        {
            (
                format!("new, saved in {}", file.display()),
                server.token().to_string(),
            )
        }
        crate::auth::TokenSource::Created => (
            format!("new, saved in {}", file.display()),
            format!("$(cat {})", file.display()),
        ),
    };
    eprintln!(
        "\nClients need the server token ({whence}). Add troupe to Claude Code with:\n  \
         claude mcp add --scope user --transport http troupe {mcp} --header \"Authorization: Bearer {token}\"\n\
         and to Codex with:\n  \
         export TROUPE_TOKEN={token}\n  \
         codex mcp add troupe --url {mcp} --bearer-token-env-var TROUPE_TOKEN\n\n\
         The dashboard (a one-time link; `troupe open` makes another):\n  {link}\n",
        link = server.login_link(),
    );
}

/// SIGINT and SIGTERM, held from the moment they are installed until received.
pub(super) struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind, name: &str| {
            signal(kind).map_err(|e| anyhow::anyhow!("cannot take over {name}: {e}"))
        };
        Ok(Signals {
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    pub(super) async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
