//! `troupe serve` as a real child process, for restart-safety tests: start it, `kill -9` it,
//! and start it again on the same port, database and tmux socket.
//!
//! The child inherits the test's environment, with [`ServeSpec::env`] and
//! `RUST_LOG=troupe=debug` on top. Its stdout and stderr are appended to [`ServeSpec::log`],
//! one header line per start, so a failing test can print [`ServeProcess::log_tail`].

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::mcp::McpClient;

/// How long `start` waits for /health to answer.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long `terminate` waits for the process to exit after SIGTERM.
const TERM_DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
/// Lines of the log shown when the process fails.
const TAIL: usize = 60;

/// A free TCP port on 127.0.0.1: bind port 0, read the port, let it go.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Everything needed to (re)start the same server.
#[derive(Debug, Clone)]
pub struct ServeSpec {
    /// Fixed port, chosen once with [`free_port`].
    pub port: u16,
    /// `--db`: a fresh PostgreSQL database when TROUPE_TEST_PG names a server, else the
    /// SQLite file `data_dir/troupe.db`.
    pub db: String,
    pub data_dir: PathBuf,
    pub tmux_socket: String,
    /// Extra environment for the process (HOME, ANTHROPIC_BASE_URL, ... from
    /// `support::instance_env`). Instances inherit it through troupe's tmux server.
    pub env: Vec<(String, String)>,
    /// Appended after the standard flags (e.g. `--startup-timeout 30`).
    pub extra_args: Vec<String>,
    /// stdout and stderr of every start, appended.
    pub log: PathBuf,
}

impl ServeSpec {
    /// db = `dir/data/troupe.db` (or a fresh PostgreSQL database), data_dir = `dir/data`,
    /// log = `dir/serve.log`, a fresh port.
    /// The server runs the suite's pinned CLIs (see `clis`), as the in-process harness does;
    /// a `--claude-bin` or `--codex-bin` in `extra_args` still wins.
    pub async fn new(dir: &Path, socket: &str, mut env: Vec<(String, String)>) -> ServeSpec {
        env.insert(0, ("TROUPE_CLAUDE_BIN".into(), super::clis::claude_bin()));
        env.insert(0, ("TROUPE_CODEX_BIN".into(), super::clis::codex_bin()));
        let data_dir = dir.join("data");
        ServeSpec {
            port: free_port(),
            db: match super::fresh_postgres().await {
                Some(url) => url,
                None => data_dir.join("troupe.db").display().to_string(),
            },
            data_dir,
            tmux_socket: socket.to_string(),
            env,
            extra_args: Vec::new(),
            log: dir.join("serve.log"),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A running `troupe serve`. Dropping it kills the process (`kill -9`) if it still runs.
pub struct ServeProcess {
    child: Child,
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    log: PathBuf,
}

impl ServeProcess {
    /// Spawns `troupe serve` for `spec` and waits until GET /health answers 200. Panics with
    /// the log's tail if the process exits first or 60 s pass.
    pub async fn start(spec: &ServeSpec) -> ServeProcess {
        if let Some(dir) = spec.log.parent() {
            std::fs::create_dir_all(dir).expect("create the log's directory");
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .unwrap_or_else(|e| panic!("open {}: {e}", spec.log.display()));
        writeln!(
            log,
            "==== troupe serve on 127.0.0.1:{} (db {}, tmux -L {}) ====",
            spec.port, spec.db, spec.tmux_socket
        )
        .expect("write the log");
        let stderr = log.try_clone().expect("clone the log handle");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_troupe"));
        cmd.arg("serve")
            .arg("--bind")
            .arg(format!("127.0.0.1:{}", spec.port))
            .arg("--db")
            .arg(&spec.db)
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .arg("--tmux-socket")
            .arg(&spec.tmux_socket)
            .args(&spec.extra_args)
            .env("RUST_LOG", "troupe=debug")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr));
        let child = cmd.spawn().expect("spawn troupe serve");

        // Owned from here on, so a panic below kills the child.
        let mut process = ServeProcess {
            child,
            url: spec.url(),
            port: spec.port,
            data_dir: spec.data_dir.clone(),
            log: spec.log.clone(),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        let health = format!("{}/health", process.url);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = process.child.try_wait().expect("poll troupe serve") {
                panic!(
                    "troupe serve exited ({status}) before /health answered; log tail:\n{}",
                    tail_of(&process.log, TAIL)
                );
            }
            if let Ok(resp) = client.get(&health).send().await
                && resp.status() == reqwest::StatusCode::OK
            {
                return process;
            }
            if Instant::now() > deadline {
                panic!(
                    "troupe serve did not answer {health} within {START_DEADLINE:?}; log tail:\n{}",
                    tail_of(&process.log, TAIL)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// An MCP session with the server, with the token it keeps in its data directory.
    pub async fn mcp(&self) -> McpClient {
        McpClient::with_token(&self.url, &self.token()).await
    }

    /// The server token, as `serve` saved it in the data directory.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("token"))
            .expect("the server saved its token")
            .trim()
            .to_string()
    }

    /// GET /health as JSON (panics unless it answers 200).
    pub async fn health(&self) -> serde_json::Value {
        let resp = reqwest::get(format!("{}/health", self.url))
            .await
            .expect("GET /health");
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "/health status");
        resp.json().await.expect("/health JSON")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap: no shutdown code runs, as in a crash.
    pub fn kill9(mut self) {
        self.child.kill().expect("kill -9 troupe serve");
        self.child.wait().expect("reap troupe serve");
    }

    /// SIGTERM (the server shuts down cleanly on it) and wait up to 20 s for the exit status.
    /// Panics with the log's tail if the process is still running then (Drop kills it).
    pub fn terminate(mut self) -> ExitStatus {
        if let Some(status) = self.child.try_wait().expect("poll troupe serve") {
            return status;
        }
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        let deadline = Instant::now() + TERM_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll troupe serve") {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "troupe serve (pid {pid}) still running {TERM_DEADLINE:?} after SIGTERM; log tail:\n{}",
                    tail_of(&self.log, TAIL)
                );
            }
            // A blocking wait for another process: nothing in this one has to make progress.
            std::thread::sleep(POLL);
        }
    }

    /// The last `n` lines of the spec's log (every start so far).
    pub fn log_tail(spec: &ServeSpec, n: usize) -> String {
        tail_of(&spec.log, n)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tail_of(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    // The server colours its log; the tail is read by people in a test failure.
    let text = strip_ansi_escapes::strip_str(String::from_utf8_lossy(&bytes));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs the troupe command line against a server; returns whether it succeeded and what it
/// printed (stdout, then stderr).
pub fn troupe_cli(url: &str, token: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .env("TROUPE_URL", url)
        .env("TROUPE_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
