//! Test harness: the real troupe server on port 0 with a temp database, its own tmux socket,
//! a temp HOME seeded so the real Claude Code CLI runs offline against [`FakeModel`].
#![allow(dead_code)]

pub mod asking;
pub mod browser;
pub mod clis;
pub mod fake_model;
pub mod mcp;
pub mod process;
pub mod scripted;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

pub use fake_model::FakeModel;
pub use mcp::{McpClient, ToolResult};

const API_KEY: &str = "sk-ant-troupe-test-key-0123456789abcdefghij";

/// Writes what Claude Code needs to start without questions: onboarding done, the API key
/// approved, the bypass-permissions warning acknowledged. Folder trust is left to troupe.
pub fn seed_home(home: &Path) {
    std::fs::create_dir_all(home.join(".claude")).unwrap();
    let key_tail = &API_KEY[API_KEY.len() - 20..];
    let state = json!({
        "hasCompletedOnboarding": true,
        "customApiKeyResponses": { "approved": [key_tail], "rejected": [] },
        "projects": {}
    });
    std::fs::write(home.join(".claude.json"), state.to_string()).unwrap();
    std::fs::write(home.join(".claude/settings.json"), "{}").unwrap();
}

/// Writes the user's Codex config a test runs under (`$HOME/.codex/config.toml`): the fake
/// model as its provider, and nothing that reaches the network. troupe builds each Codex
/// instance's own config from it.
pub fn seed_codex_home(home: &Path, model_url: &str) {
    let dir = home.join(".codex");
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        "model = \"gpt-5\"\nmodel_provider = \"fake\"\napproval_policy = \"never\"\n\n\
         [model_providers.fake]\nname = \"fake\"\nbase_url = \"{model_url}/v1\"\n\
         wire_api = \"responses\"\n\n[analytics]\nenabled = false\n\n\
         [features]\nplugins = false\napps = false\nremote_plugin = false\n\
         in_app_updates = false\napi_key_model_discovery = false\ndaemon_auto_start = false\n"
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
}

/// The environment that points a Claude Code instance at the fake model, offline.
pub fn instance_env(home: &Path, model_url: &str) -> Vec<(String, String)> {
    [
        ("HOME", home.display().to_string()),
        ("ANTHROPIC_BASE_URL", model_url.to_string()),
        ("ANTHROPIC_API_KEY", API_KEY.to_string()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("DISABLE_TELEMETRY", "1".into()),
        ("DISABLE_AUTOUPDATER", "1".into()),
        ("DISABLE_ERROR_REPORTING", "1".into()),
        (
            "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL",
            "1".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Kills a test's tmux server when dropped, whatever the test did.
pub struct TmuxServer(pub String);

impl Drop for TmuxServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

pub fn unique_socket(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    // A binary may hold several copies of this module (older_claude includes whole test
    // files), each with its own counter: the copy's module path keeps their names apart.
    let copy = {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        module_path!().hash(&mut h);
        h.finish() as u32
    };
    // Process ids wrap (pid_max is 32768 here) and a socket file outlives its server: a random
    // part keeps a test from ever meeting a socket an earlier run left under the same name.
    format!(
        "troupe-test-{prefix}-{}-{copy:08x}-{}-{:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

pub struct Harness {
    pub dir: TempDir,
    pub home: PathBuf,
    pub data_dir: PathBuf,
    pub socket: String,
    pub model: FakeModel,
    pub server: Option<troupe::Server>,
    pub addr: Option<std::net::SocketAddr>,
    pub mcp: McpClient,
    /// The harness's own PostgreSQL database when TROUPE_TEST_PG names a server; else the
    /// registry is an SQLite file in `data_dir`.
    pub db_url: Option<String>,
    tune: Box<dyn Fn(&mut troupe::Config) + Send + Sync>,
}

/// A fresh database on the PostgreSQL server TROUPE_TEST_PG names, if it names one.
pub async fn fresh_postgres() -> Option<String> {
    let server = std::env::var("TROUPE_TEST_PG")
        .ok()
        .filter(|s| !s.is_empty())?;
    let name = format!("troupe_test_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("TROUPE_TEST_PG={server}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

/// Drops a database [`fresh_postgres`] made. A suite's databases would otherwise pile up on
/// the server's disk (each copies a template of several megabytes) until the run ends. FORCE,
/// because the test's server may still hold connections. Runs on a thread of its own, since a
/// harness is dropped inside a runtime; a failure only leaves the database behind.
pub fn drop_postgres(url: &str) {
    let Ok(server) = std::env::var("TROUPE_TEST_PG") else {
        return;
    };
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if !name.starts_with("troupe_test_")
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return;
    }
    let name = name.to_string();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&server).await.ok()?;
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut admin)
                .await;
            let _ = admin.close().await;
            done.ok()
        })
    })
    .join();
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(|_| {}).await
    }

    /// A harness whose server config is adjusted by `tune` (limits, timeouts).
    pub async fn start_with(tune: impl Fn(&mut troupe::Config) + Send + Sync + 'static) -> Harness {
        Self::start_full(false, tune).await
    }

    /// A harness whose data directory is under its HOME (`~/.local/share/troupe`), as
    /// `troupe serve`'s default is: there the workspaces folder can be trusted for every
    /// instance at once. Elsewhere the data directory sits beside HOME.
    pub async fn start_at_home() -> Harness {
        Self::start_full(true, |_| {}).await
    }

    async fn start_full(
        data_at_home: bool,
        tune: impl Fn(&mut troupe::Config) + Send + Sync + 'static,
    ) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        seed_home(&home);
        let data_dir = match data_at_home {
            true => home.join(".local/share/troupe"),
            false => dir.path().join("data"),
        };
        let model = FakeModel::start().await;
        seed_codex_home(&home, &model.base_url());
        let socket = unique_socket("h");
        let mut h = Harness {
            dir,
            home,
            data_dir,
            socket,
            model,
            server: None,
            addr: None,
            mcp: McpClient::placeholder(),
            db_url: fresh_postgres().await,
            tune: Box::new(tune),
        };
        h.start_server().await;
        h
    }

    pub fn config(&self) -> troupe::Config {
        let mut config = troupe::Config::for_data_dir(self.data_dir.clone(), &self.socket);
        config.troupe_bin = PathBuf::from(env!("CARGO_BIN_EXE_troupe"));
        config.claude_bin = clis::claude_bin();
        config.codex_bin = clis::codex_bin();
        config.instance_env = instance_env(&self.home, &self.model.base_url());
        config.db_url = self.db_url.clone();
        (self.tune)(&mut config);
        config
    }

    pub async fn start_server(&mut self) {
        let mut config = self.config();
        // A restart listens where instances already send their hooks.
        if let Some(addr) = self.addr {
            config.bind = addr;
        }
        let server = troupe::Server::start(config).await.expect("server starts");
        self.addr = Some(server.addr);
        self.mcp = McpClient::user(&server).await;
        self.server = Some(server);
    }

    pub async fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Kills troupe's whole tmux server, as a reboot would.
    pub fn kill_tmux(&self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }

    pub fn server(&self) -> &troupe::Server {
        self.server.as_ref().expect("server running")
    }

    /// The protocol era the person's own Claude Code spoke with troupe, and its client name.
    pub fn person_client(&self) -> (troupe::mcp::clients::Era, String) {
        let seen = self.server().supervisor.mcp_clients().list();
        let person = seen
            .iter()
            .find(|c| c.instance_id.is_none() && c.client.starts_with("claude"))
            .unwrap_or_else(|| panic!("no Claude Code client of the person's among {seen:?}"));
        (person.era, person.client.clone())
    }

    pub fn pool(&self) -> &troupe::db::Db {
        self.server().supervisor.pool()
    }

    pub async fn call(&self, tool: &str, args: Value) -> ToolResult {
        self.mcp.call_tool(tool, args).await
    }

    /// Spawns an instance and returns its id, failing the test with the tool's error.
    pub async fn spawn(&self, args: Value) -> String {
        let r = self.call("spawn_claude", args).await;
        assert!(!r.is_error, "spawn_claude failed: {}", r.text);
        r.structured["instance_id"].as_str().unwrap().to_string()
    }

    /// Spawns a Codex instance and returns its id, failing the test with the tool's error.
    pub async fn spawn_codex(&self, args: Value) -> String {
        let r = self.call("spawn_codex", args).await;
        assert!(!r.is_error, "spawn_codex failed: {}", r.text);
        r.structured["instance_id"].as_str().unwrap().to_string()
    }

    /// Waits until troupe has read the message's reply from the instance's transcript (its
    /// usage row is written then). The Stop hook answers before the CLI writes the turn down.
    pub async fn wait_for_transcript(&self, instance_id: &str, message_id: &str) {
        let pool = self.pool();
        eventually(
            "the reply in the instance's transcript",
            Duration::from_secs(10),
            || async {
                troupe::db::usage::UsageRecord::for_instance(pool, instance_id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|u| u.message_id.as_deref() == Some(message_id))
                    .then_some(())
            },
        )
        .await;
    }

    pub fn tmux_has_session(&self, name: &str) -> bool {
        std::process::Command::new("tmux")
            .args(["-L", &self.socket, "has-session", "-t", &format!("={name}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    pub fn capture(&self, name: &str) -> String {
        let out = std::process::Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "capture-pane",
                "-p",
                "-t",
                &format!("={name}:"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        if let Some(url) = &self.db_url {
            drop_postgres(url);
        }
    }
}

/// Polls `check` until it returns Some or the deadline passes (tests only).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
