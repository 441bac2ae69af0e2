//! troupe: one AI coding session orchestrating many others. Claude Code instances run in
//! tmux; troupe sends them work, reads their answers from their transcripts, interrupts and
//! retires them, and writes every step to SQLite first.

pub mod agents;
pub mod config;
pub mod db;
pub mod error;
pub mod hook;
pub mod http;
pub mod mcp;
pub mod pricing;
pub mod roles;
pub mod supervisor;
pub mod tmux;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use supervisor::Supervisor;

/// A running server: the HTTP listener, the supervisor, and the token that stops both.
pub struct Server {
    pub addr: SocketAddr,
    pub supervisor: Supervisor,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Opens the database, binds the listener and starts serving. Instances are told the
    /// bound address, so port 0 works.
    pub async fn start(mut config: Config) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.bind))?;
        let addr = listener.local_addr()?;
        config.public_url = format!("http://{addr}");
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", config.data_dir.display()))?;
        let pool = db::open(&config.db_path).await?;
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::start(config, pool, shutdown.child_token()).await?;
        let app = http::router(supervisor.clone(), shutdown.clone());
        let stop = shutdown.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        Ok(Server {
            addr,
            supervisor,
            shutdown,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving. Instances keep running in tmux.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.supervisor.shutdown();
        let _ = self.task.await;
        self.supervisor.pool().close().await;
    }
}
