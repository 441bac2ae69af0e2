//! troupe: one AI coding session orchestrating many others. Claude Code instances run in
//! tmux; troupe sends them work, reads their answers from their transcripts, interrupts and
//! retires them, and writes every step to SQLite first.

/// mimalloc rather than the system allocator: listing hundreds of instances to dozens of
/// clients at once spent about 40% of its CPU in glibc's malloc and free (measured with the
/// scale bench, 300 instances, 64 clients).
///
/// Built without transparent huge pages (`no_thp`): mimalloc asks for them on its 1 GiB arena,
/// and each first touch of a new 2 MiB page is zeroed whole. Under 64 clients' first
/// `list_instances` at once that zeroing took most of both cores for 100 ms (`perf`); without
/// it the first calls' median fell from 99-119 ms to 28-46 ms and the server's RSS with 300
/// instances from 83-87 MB to 45 MB (three runs each).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod access;
pub mod agents;
pub mod auth;
pub mod chat;
pub mod cli;
pub mod config;
pub mod db;
pub mod doctor;
pub mod environment;
pub mod error;
pub mod files;
pub mod fleet;
pub mod handover;
pub mod hook;
pub mod hosts;
pub mod http;
pub mod install;
pub mod kept;
pub mod local;
pub mod lock;
pub mod mcp;
pub mod notify;
pub mod permissions;
pub mod preflight;
pub mod pricing;
pub mod private;
pub mod process;
pub mod report;
pub mod roles;
pub mod settings;
pub mod states;
pub mod stdio;
pub mod supervisor;
pub mod tls;
pub mod tmux;
pub mod weblogin;
pub mod worktree;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use supervisor::Supervisor;

/// A running server: the HTTP listener, the supervisor, and the token that stops both.
pub struct Server {
    pub addr: SocketAddr,
    pub supervisor: Supervisor,
    token_source: auth::TokenSource,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Held while the server runs: no second server on the same data, database or socket.
    _lock: lock::ServeLock,
}

/// troupe's own instances call back over loopback, whatever address it listens on.
fn loopback(addr: SocketAddr) -> SocketAddr {
    let mut local = addr;
    if addr.ip().is_unspecified() {
        local.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    local
}

/// What a previous run left that nothing holds any more: its permission questions (their
/// CLIs show their own dialogs now) and live events past their keep.
async fn tidy_previous_run(pool: &db::Db, host: &str, keep_events: Duration) {
    match db::permissions::PermissionAsk::expire_all_pending(pool, host).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            requests = n,
            "permission requests of the previous run expired"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot expire old permission requests"),
    }
    prune_events(pool, keep_events).await;
}

async fn prune_events(pool: &db::Db, keep: Duration) {
    match db::events::prune(pool, keep).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            events = n,
            "forgot live events older than {} hours",
            keep.as_secs() / 3600
        ),
        Err(e) => tracing::warn!(error = %e, "cannot prune the event log"),
    }
    // Notification links past their expiry decide nothing; deliveries are kept as long as
    // events are.
    let now = chrono::Utc::now();
    let before =
        db::stamp(now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(7)));
    if let Err(e) = db::notify::Link::prune(pool, &db::stamp(now)).await {
        tracing::warn!(error = %e, "cannot forget expired notification links");
    }
    if let Err(e) = db::notify::Delivery::prune(pool, &before).await {
        tracing::warn!(error = %e, "cannot forget old notification deliveries");
    }
}

/// How often the event log forgets what is past its keep while the server runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Keeps the event log to `--keep-events-hours` for as long as the server runs.
async fn prune_events_hourly(pool: db::Db, keep: Duration, stop: CancellationToken) {
    let mut every =
        tokio::time::interval_at(tokio::time::Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => prune_events(&pool, keep).await,
        }
    }
}

/// Brings the previous run's instances back under supervision, and says how that went.
async fn recover(supervisor: &Supervisor) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let recoveries = supervisor.reconcile().await?;
    if recoveries.is_empty() {
        return Ok(());
    }
    use supervisor::RecoveryOutcome::*;
    let count = |o| recoveries.iter().filter(|r| r.outcome == o).count();
    tracing::info!(
        reattached = count(Reattached),
        resumed = count(Resumed),
        failed = count(Failed),
        ms = started.elapsed().as_millis() as u64,
        "instances from the previous run are back under supervision"
    );
    for r in recoveries.iter().filter(|r| r.outcome == Failed) {
        tracing::warn!(instance = %r.instance_id, "{}", r.detail);
    }
    Ok(())
}

impl Server {
    /// Opens the database, binds the listener and starts serving. Instances are told the
    /// bound address, so port 0 works.
    pub async fn start(mut config: Config) -> anyhow::Result<Server> {
        if !config.bind.ip().is_loopback() && !config.allow_remote {
            anyhow::bail!(
                "--bind {} would serve troupe beyond this machine, and whoever reaches it can \
                 run code as you; add --allow-remote if that is what you want (clients then \
                 need the server token, and --allow-host names the host they use)",
                config.bind
            );
        }
        private::dir(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", config.data_dir.display()))?;
        let mut locks = vec![
            ("data directory", config.data_dir.join("serve.lock")),
            ("tmux socket", lock::tmux_lock_path(&config.tmux_socket)),
        ];
        if config.db_url.is_none() {
            locks.push(("database", lock::db_lock_path(&config.db_path)));
        }
        // A bad certificate or key is said before anything else starts.
        let tls = match &config.tls {
            Some((cert, key)) => Some(tls::acceptor(cert, key)?),
            None => None,
        };
        let mut held = lock::ServeLock::take(&locks)?;
        let (token, source) = auth::server_token(&config.data_dir, &config.token)
            .map_err(|e| anyhow::anyhow!("cannot set up the server token: {e}"))?;
        config.token = token;
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
        let addr = listener.local_addr()?;
        held.describe(&format!("pid {}, {addr}", std::process::id()));
        config.public_url = format!("http://{}", loopback(addr));
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "troupe listens on {addr}, beyond this machine: anyone who has the server token \
                 can run code as you"
            );
            if tls.is_none() {
                tracing::warn!(
                    "and without TLS, the token crosses the network readable: give \
                     --tls-cert and --tls-key"
                );
            }
        }
        let pool = match &config.db_url {
            Some(url) => db::open_postgres(url, config.db_busy_timeout).await?,
            None => db::open(&config.db_path, config.db_busy_timeout).await?,
        };
        let taken = fleet::join(&pool, &config).await?;
        if taken > 0 {
            tracing::info!(
                host = %config.host,
                "{taken} instances from before hosts existed are this host's"
            );
        }
        tidy_previous_run(&pool, &config.host, config.keep_events).await;
        let shutdown = CancellationToken::new();
        tokio::spawn(prune_events_hourly(
            pool.clone(),
            config.keep_events,
            shutdown.child_token(),
        ));
        let heartbeat = (
            config.host.clone(),
            config.heartbeat,
            config.host_lost_after,
        );
        let supervisor = Supervisor::start(config, pool.clone(), shutdown.child_token()).await?;
        if pool.as_sqlite().is_none() {
            // Only a shared registry has other hosts to tell.
            let sup = supervisor.clone();
            tokio::spawn(fleet::heartbeat(
                pool.clone(),
                heartbeat.0,
                heartbeat.1,
                heartbeat.2,
                shutdown.clone(),
                move |host, reason| sup.host_lost(host, reason),
            ));
        }
        let app = http::router(supervisor.clone(), shutdown.clone());
        let stop = shutdown.clone();
        let task = match tls {
            Some(acceptor) => {
                let listener = tls::TlsListener::new(listener, acceptor)?;
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move { stop.cancelled().await })
                        .await
                })
            }
            None => tokio::spawn(async move {
                // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs held each MCP answer
                // back by about 40 ms.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            }),
        };
        if supervisor.pool().is_shared() {
            tokio::spawn(supervisor.clone().serve_handed_over(shutdown.child_token()));
        }
        // Instances resumed here call back (hooks, MCP), so the listener serves first.
        recover(&supervisor).await?;
        Ok(Server {
            addr,
            supervisor,
            token_source: source,
            shutdown,
            task,
            _lock: held,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token clients present (`Authorization: Bearer`).
    /// A one-time link that logs a browser in to the dashboard (good for a day, once).
    pub fn login_link(&self) -> String {
        let code = self
            .supervisor
            .logins()
            .issue(weblogin::START_LINK_LIFETIME);
        format!("{}/login?code={code}", self.supervisor.config().public_url)
    }

    pub fn token(&self) -> &str {
        &self.supervisor.config().token
    }

    /// Where the token came from.
    pub fn token_source(&self) -> auth::TokenSource {
        self.token_source
    }

    /// Stops serving. Instances keep running in tmux unless `terminate_instances` is set.
    pub async fn stop_with(self, terminate_instances: bool) {
        if terminate_instances {
            self.supervisor.terminate_all().await;
        }
        self.stop().await;
    }

    /// Stops serving. Instances keep running in tmux.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        self.supervisor.shutdown().await;
        // Graceful shutdown waits for open connections; an instance's MCP event stream can
        // hold one open, so the wait is bounded.
        if tokio::time::timeout(std::time::Duration::from_secs(3), &mut self.task)
            .await
            .is_err()
        {
            tracing::warn!("connections still open after 3s; closing them");
            self.task.abort();
            // Until the aborted task is gone it holds the listening socket, and a server
            // started next on the same address would find it in use.
            let _ = (&mut self.task).await;
        }
        fleet::leave(self.supervisor.pool(), &self.supervisor.config().host).await;
        self.supervisor.pool().close().await;
    }
}
