//! troupe at scale: N scripted Claude Code instances (`examples/scripted_cli.rs`, a few MB each)
//! on one troupe server, the real one in this process (the Harness: SQLite in a temp dir, real
//! tmux on a socket of its own). Prints each figure on a line of its own as `name: value`;
//! progress and failures go to stderr.
//!
//! cargo bench --bench scale -- --instances N     (default 100; or SCALE_INSTANCES=N)
//!
//! Knobs (environment): SCALE_IDLE_SECS (30) how long the idle CPU is measured;
//! SCALE_ROUNDS (3) rounds of the messages phase, after one warm-up round; SCALE_DELAY_MS (20)
//! the scripted CLI's prompt-to-answer delay; SCALE_SPAWN_CONCURRENCY (8); SCALE_LIST_CLIENTS
//! (64) and SCALE_LIST_CALLS (10) for the list phases; SCALE_PHASE_SECS (600) the most one
//! phase may take: when it is up, no new call starts and calls under way are given up (and
//! counted as failures).
//!
//! The phases, in order: spawn all N (`spawn_claude`, SCALE_SPAWN_CONCURRENCY at a time);
//! memory with all of them idle; idle CPU; messages (a `send_to_instance` to every instance at
//! once, waiting for the answer, per round) with the database's growth over them; the lag of
//! `/api/events` over one more such round; once the event log has been still for half a
//! second, `list_instances` over MCP (in sessions, as Claude Code 2.1.197 and other 2025
//! clients call it, then in 2026-07-28, as 2.1.328 does) and `GET /api/instances` over REST
//! from many clients at once; the dashboard's first load; `terminate_all`.
//!
//! The events reader and the list clients run on threads and runtimes of their own, as the
//! separate processes they stand for would: they still share the machine's cores with the
//! server, but not its task queues.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::fmt::Display;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};
use support::{Harness, McpClient, scripted};
use tokio_util::sync::CancellationToken;
use troupe::cli::sse::Parser;

/// A figure, as scripts read it.
fn figure(name: &str, value: impl Display) {
    println!("{name}: {value}");
}

fn progress(text: impl Display) {
    eprintln!("[scale] {text}");
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// `--instances N` (or `--instances=N`) on the command line, else SCALE_INSTANCES, else 100.
/// cargo adds `--bench` of its own; anything else is ignored.
fn instances_arg() -> usize {
    let args: Vec<String> = std::env::args().collect();
    let mut given = None;
    for (i, a) in args.iter().enumerate() {
        if a == "--instances" {
            given = args.get(i + 1).and_then(|v| v.parse().ok());
        } else if let Some(v) = a.strip_prefix("--instances=") {
            given = v.parse().ok();
        }
    }
    given
        .unwrap_or_else(|| env_or("SCALE_INSTANCES", 100))
        .max(1)
}

/// (p50, p99) of a sample, nearest rank; (NaN, NaN) when it is empty.
fn percentiles(ms: &[f64]) -> (f64, f64) {
    if ms.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut v = ms.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pick = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (pick(0.5), pick(0.99))
}

fn print_percentiles(prefix: &str, ms: &[f64]) {
    let (p50, p99) = percentiles(ms);
    figure(&format!("{prefix}_p50_ms"), format!("{p50:.1}"));
    figure(&format!("{prefix}_p99_ms"), format!("{p99:.1}"));
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Runs `fut` until `deadline`; a panic inside it (the test client panics when a request
/// cannot be sent) becomes an error too, so one failure does not end the whole run.
async fn bounded<T>(
    deadline: Instant,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match tokio::time::timeout_at(deadline.into(), AssertUnwindSafe(fut).catch_unwind()).await {
        Err(_) => Err("given up: the phase's time limit (SCALE_PHASE_SECS) is up".into()),
        Ok(Err(panic)) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
        Ok(Ok(r)) => r,
    }
}

/// A tools/call through `client`, without the test client's output-schema check (it would
/// spend this process's CPU, which the server shares, on every result): the structured
/// result, or the error's text.
async fn tool(client: &McpClient, name: &str, args: Value) -> Result<Value, String> {
    let mut r = client
        .request("tools/call", json!({ "name": name, "arguments": args }))
        .await;
    if let Some(e) = r.get("error") {
        return Err(format!("JSON-RPC error: {e}"));
    }
    let result = &r["result"];
    if result["isError"].as_bool() == Some(true) {
        let text: Vec<&str> = result["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["text"].as_str())
            .collect();
        return Err(text.join("\n"));
    }
    Ok(r["result"]["structuredContent"].take())
}

/// A `list_instances` call, its answer read for the count alone: the clients share this
/// process's two cores with the server, and a full parse of every answer (a tree of some 4,000
/// JSON values at 300 instances) cost them more CPU than the server spent answering.
async fn listed_count(client: &McpClient) -> Result<(usize, usize), String> {
    let body = client
        .request_raw(
            "tools/call",
            json!({ "name": "list_instances", "arguments": {} }),
        )
        .await;
    counted(&body)
}

/// A `list_instances` call in MCP 2026-07-28 (no session: the version and capabilities ride
/// in the request's `_meta`), read as [`listed_count`] reads its answer.
async fn stateless_listed_count(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
) -> Result<usize, String> {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "list_instances", "arguments": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": { "name": "scale-bench", "version": "1" },
        } },
    });
    let resp = http
        .post(url)
        .header("authorization", bearer)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "list_instances")
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {}", shown(&bytes)));
    }
    counted(&bytes).map(|(count, _)| count)
}

/// The start of an answer, for an error.
fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned()
}

/// The `count` of a `list_instances` answer (one JSON-RPC message, as JSON or as an SSE
/// event) and the message's size, read without building the instances' values.
fn counted(body: &[u8]) -> Result<(usize, usize), String> {
    #[derive(serde::Deserialize)]
    struct Message {
        result: Option<Outcome>,
        error: Option<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outcome {
        #[serde(default)]
        is_error: bool,
        structured_content: Option<Counted>,
    }
    #[derive(serde::Deserialize)]
    struct Counted {
        count: usize,
    }
    let data: &[u8] = if body.trim_ascii_start().starts_with(b"{") {
        body
    } else {
        body.split(|&b| b == b'\n')
            .filter_map(|l| l.strip_prefix(b"data:"))
            .map(<[u8]>::trim_ascii_start)
            .find(|d| d.starts_with(b"{"))
            .ok_or_else(|| format!("no JSON-RPC message in the answer: {}", shown(body)))?
    };
    let message: Message =
        serde_json::from_slice(data).map_err(|e| format!("{e}: {}", shown(data)))?;
    match message {
        Message {
            result:
                Some(Outcome {
                    is_error: false,
                    structured_content: Some(Counted { count }),
                }),
            error: None,
        } => Ok((count, data.len())),
        _ => Err(format!("list_instances failed: {}", shown(data))),
    }
}

/// Runs the clients `work` makes on a thread and runtime of their own (two workers, as a
/// client process on this machine would have): on the bench's runtime, where the server runs,
/// their tasks queued behind the server's and the server's behind theirs.
async fn apart<F, Fut>(work: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (done, finished) = tokio::sync::oneshot::channel();
    let clients = std::thread::Builder::new().name(CLIENT_THREADS.into());
    let spawned = clients.spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(CLIENT_THREADS)
            .enable_all()
            .build()
            .expect("a runtime for the clients");
        rt.block_on(work());
        let _ = done.send(());
    });
    spawned.expect("a thread for the clients");
    finished.await.expect("the clients' thread ended");
}

/// The name of the clients' threads, which [`cpu_ns`] tells from the server's.
const CLIENT_THREADS: &str = "bench-client";

/// CPU time each of this process's threads has run so far (nanoseconds, from its
/// `schedstat`), by thread id: the clients' threads (`clients: true`) or all the others, the
/// server's (the bench's own main thread waits meanwhile).
fn cpu_ns(clients: bool) -> HashMap<String, u64> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return HashMap::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            (comm.trim_end() == CLIENT_THREADS) == clients
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            let ns = stat.split_whitespace().next()?.parse().ok()?;
            Some((t.file_name().to_string_lossy().into_owned(), ns))
        })
        .collect()
}

/// The CPU threads ran between two [`cpu_ns`] readings: a thread started since counts whole,
/// one that ended since is not counted (its time is gone with it).
fn cpu_spent(before: &HashMap<String, u64>, now: &HashMap<String, u64>) -> u64 {
    now.iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// The machine's stolen time so far, in ticks (`steal` of /proc/stat): time a virtual
/// machine's CPUs were runnable but the host ran something else. A phase with some was slowed
/// by the host, not by what it measured.
fn steal_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().next()?.split_whitespace().nth(8)?.parse().ok())
        .unwrap_or(0)
}

/// What a phase's calls cost, read before the calls: [`cpu_ns`] of the server and of the
/// clients, and [`steal_ticks`].
struct Cost {
    server: HashMap<String, u64>,
    clients: HashMap<String, u64>,
    stolen: u64,
}

impl Cost {
    fn now() -> Cost {
        Cost {
            server: cpu_ns(false),
            clients: cpu_ns(true),
            stolen: steal_ticks(),
        }
    }
}

/// Prints the CPU the server and the clients spent per call (microseconds) since `before`,
/// and the ticks stolen from the machine meanwhile.
fn report_cpu(name: &str, before: Cost, calls: usize) {
    let calls = calls.max(1) as f64;
    let per_call = |ns: u64| format!("{:.0}", ns as f64 / 1e3 / calls);
    figure(
        &format!("{name}_server_cpu_us_per_call"),
        per_call(cpu_spent(&before.server, &cpu_ns(false))),
    );
    figure(
        &format!("{name}_client_cpu_us_per_call"),
        per_call(cpu_spent(&before.clients, &cpu_ns(true))),
    );
    figure(
        &format!("{name}_steal_ticks"),
        steal_ticks().saturating_sub(before.stolen),
    );
}

/// `calls` calls in a row from each of `clients`, all clients at once: how long each took
/// (milliseconds, its check of the answer included), or why it failed. Each client is a task
/// of its own, as each would be a process of its own: polled together in one task, the 64
/// clients' reading of their answers ran one after another on one core.
async fn closed_loop<C, F, Fut>(
    clients: Vec<C>,
    calls: usize,
    deadline: Instant,
    call: F,
) -> Vec<Result<f64, String>>
where
    C: Send + Sync + 'static,
    F: Fn(Arc<C>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let call = Arc::new(call);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let (c, call) = (Arc::new(c), call.clone());
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(calls);
                for _ in 0..calls {
                    out.push(
                        bounded(deadline, async {
                            let t = Instant::now();
                            call(c.clone()).await?;
                            Ok(ms_since(t))
                        })
                        .await,
                    );
                }
                out
            })
        })
        .collect();
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap_or_else(|e| vec![Err(format!("the client's task failed: {e}"))]))
        .collect()
}

/// The failures of a [`closed_loop`], then the percentiles of the calls that succeeded.
fn report_calls(name: &str, results: &[Result<f64, String>]) {
    report_failures(name, results);
    let ms: Vec<f64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    print_percentiles(name, &ms);
}

/// Prints how many of `results` failed and the first few errors (with their text).
fn report_failures<T>(what: &str, results: &[Result<T, String>]) -> usize {
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    figure(&format!("{what}_failures"), errors.len());
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for e in &errors {
        *counts.entry(e.as_str()).or_default() += 1;
    }
    for (e, n) in counts.iter().take(5) {
        progress(format!("{what} failed {n}x: {e}"));
    }
    errors.len()
}

/// The process ids of the CLIs in troupe's tmux panes, and of its tmux server.
fn tmux_pids(socket: &str) -> (Vec<u32>, Option<u32>) {
    let run = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(["-L", socket])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let panes = run(&["list-panes", "-a", "-F", "#{pane_pid}"])
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let server = run(&["display-message", "-p", "#{pid}"])
        .trim()
        .parse()
        .ok();
    (panes, server)
}

/// The instances' tmux sessions still there: every session but troupe's own control session
/// (`troupe_control`, src/tmux/control.rs), which lives as long as the server.
fn tmux_sessions(socket: &str) -> usize {
    std::process::Command::new("tmux")
        .args(["-L", socket, "list-sessions", "-F", "#{session_name}"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|s| *s != "troupe_control")
                .count()
        })
        .unwrap_or(0)
}

/// CPU ticks (utime + stime) of processes, skipping any that is gone.
fn ticks_of(pids: &[u32]) -> u64 {
    pids.iter()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .map(|p| std::panic::catch_unwind(|| scripted::cpu_ticks(*p)).unwrap_or(0))
        .sum()
}

fn rss_kib_of(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|p| std::panic::catch_unwind(|| scripted::rss_kib(*p)).unwrap_or(0))
        .sum()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The registry's size on disk: the SQLite file plus its -wal, after a TRUNCATE checkpoint has
/// moved what the WAL holds into the file (without it the -wal's size says how far the last
/// automatic checkpoint was, not how much was written). A checkpoint that readers keep from
/// finishing is said on stderr.
async fn db_bytes(h: &Harness) -> u64 {
    let pool = h.pool().as_sqlite().expect("an SQLite registry");
    let row: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(pool)
        .await;
    match row {
        Ok((0, _, _)) => {}
        other => progress(format!("checkpoint did not finish: {other:?}")),
    }
    let db = h.config().db_path;
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    file_len(&db) + file_len(Path::new(&wal))
}

async fn last_event_id(h: &Harness) -> i64 {
    let pool = h.pool().as_sqlite().expect("an SQLite registry");
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn usage_rows(h: &Harness) -> i64 {
    let pool = h.pool().as_sqlite().expect("an SQLite registry");
    sqlx::query_scalar("SELECT COUNT(*) FROM usage_records")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// One message to every instance at once, each waiting for its answer. Returns each send's
/// time (ms) or error, and the round's wall time.
async fn send_round(
    h: &Harness,
    ids: &[String],
    label: &str,
    deadline: Instant,
) -> (Vec<Result<f64, String>>, Duration) {
    let t = Instant::now();
    let results = futures::future::join_all(ids.iter().enumerate().map(|(i, id)| {
        let text = format!("{label} {i}");
        bounded(deadline, async move {
            let t = Instant::now();
            let r = tool(
                &h.mcp,
                "send_to_instance",
                json!({ "instance_id": id, "message": text, "timeout_seconds": 120 }),
            )
            .await?;
            let took = ms_since(t);
            match r["status"].as_str() {
                Some("answered") => Ok(took),
                other => Err(format!(
                    "not answered: status {other:?}, reason {}",
                    r["reason"]
                )),
            }
        })
    }))
    .await;
    (results, t.elapsed())
}

/// What the events stream delivered: (event id, kind, a message answered, when received).
type Received = Arc<Mutex<Vec<(i64, String, bool, chrono::DateTime<chrono::Utc>)>>>;

/// Reads `/api/events` on a thread and runtime of its own until `stop` is cancelled, as a
/// browser reads it from a process of its own: on this process's runtime the reader's wake-ups
/// queued behind the server's own tasks, and under a round's load that doubled the lag it
/// measured (server side, rows were read from the log within 10 ms at the p99; the reader
/// here saw them 29 ms after their stamp).
async fn open_events(
    h: &Harness,
    stop: CancellationToken,
) -> (Received, std::thread::JoinHandle<()>) {
    let url = format!("{}/api/events", h.server().url());
    let token = h.server().token().to_string();
    let received: Received = Arc::default();
    let sink = received.clone();
    let (opened, open) = tokio::sync::oneshot::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the events reader");
        rt.block_on(async move {
            let resp = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("GET /api/events");
            let status = resp.status();
            let _ = opened.send(status);
            let mut body = resp.bytes_stream();
            let mut parser = Parser::default();
            loop {
                let chunk = tokio::select! {
                    _ = stop.cancelled() => break,
                    chunk = body.next() => match chunk {
                        Some(Ok(chunk)) => chunk,
                        _ => break,
                    },
                };
                // The time the bytes arrived, for every event they complete.
                let now = chrono::Utc::now();
                for e in parser.feed(&chunk) {
                    let Some(id) = e.id.as_deref().and_then(|i| i.parse().ok()) else {
                        continue;
                    };
                    let answered = e.event == "message"
                        && serde_json::from_str::<Value>(&e.data)
                            .is_ok_and(|d| d["state"] == "answered");
                    sink.lock().unwrap().push((id, e.event, answered, now));
                }
            }
        });
    });
    let status = open.await.expect("the events reader answered");
    assert_eq!(status, 200, "GET /api/events");
    (received, thread)
}

/// A GET returning (status, body bytes); `auth` is a header to send (cookie or bearer).
async fn get(
    http: &reqwest::Client,
    url: &str,
    auth: (&str, &str),
) -> Result<(u16, Vec<u8>), String> {
    let r = http
        .get(url)
        .header(auth.0, auth.1)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = r.status().as_u16();
    let body = r.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    Ok((status, body.to_vec()))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n = instances_arg();
    let idle_secs: u64 = env_or("SCALE_IDLE_SECS", 30);
    let rounds: usize = env_or::<usize>("SCALE_ROUNDS", 3).max(1);
    let delay_ms: u64 = env_or("SCALE_DELAY_MS", 20);
    let spawn_concurrency: usize = env_or::<usize>("SCALE_SPAWN_CONCURRENCY", 8).max(1);
    let list_clients: usize = env_or::<usize>("SCALE_LIST_CLIENTS", 64).max(1);
    let list_calls: usize = env_or::<usize>("SCALE_LIST_CALLS", 10).max(1);
    let phase_limit = Duration::from_secs(env_or("SCALE_PHASE_SECS", 600));

    let bin = scripted::bin().display().to_string();
    let delay = delay_ms.to_string();
    let h = Harness::start_with(move |config| {
        config.claude_bin = bin.clone();
        config
            .instance_env
            .push(("SCRIPTED_CLI_DELAY_MS".into(), delay.clone()));
        // The default (50 live instances) would refuse the spawns past it.
        config.env_controls.max_instances = Some(n as u32 + 10);
    })
    .await;
    assert!(
        h.pool().as_sqlite().is_some(),
        "this bench measures the SQLite registry: unset TROUPE_TEST_PG"
    );
    let me = std::process::id();
    figure("instances", n);
    figure(
        "cpus",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
    );
    figure("scripted_delay_ms", delay_ms);

    // Before any instance: the server, the fake model (idle; the scripted CLIs never call it)
    // and the test client, all in this process.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = scripted::rss_kib(me);
    figure(
        "rss_before_mb",
        format!("{:.1}", rss_before as f64 / 1024.0),
    );

    // ---- Spawn: all N, SCALE_SPAWN_CONCURRENCY at a time; each is ready when it returns.
    progress(format!(
        "spawning {n} scripted instances, {spawn_concurrency} at a time"
    ));
    let deadline = Instant::now() + phase_limit;
    let done = AtomicUsize::new(0);
    let phase = Instant::now();
    let spawned: Vec<Result<(String, f64), String>> = futures::stream::iter(0..n)
        .map(|i| {
            let (h, done) = (&h, &done);
            async move {
                let t = Instant::now();
                let r = bounded(deadline, async {
                    let s = tool(
                        &h.mcp,
                        "spawn_claude",
                        json!({ "role": "developer", "name": format!("scale{i}") }),
                    )
                    .await?;
                    s["instance_id"]
                        .as_str()
                        .map(|id| (id.to_string(), ms_since(t)))
                        .ok_or_else(|| format!("no instance_id in {s}"))
                })
                .await;
                let k = done.fetch_add(1, Ordering::Relaxed) + 1;
                if k % (n / 10).max(10) == 0 || k == n {
                    progress(format!(
                        "spawned {k}/{n} in {:.1}s",
                        phase.elapsed().as_secs_f64()
                    ));
                }
                r
            }
        })
        .buffer_unordered(spawn_concurrency)
        .collect()
        .await;
    let spawn_total = phase.elapsed();
    report_failures("spawn", &spawned);
    let ids: Vec<String> = spawned
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(id, _)| id.clone()))
        .collect();
    let spawn_ms: Vec<f64> = spawned
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(_, ms)| *ms))
        .collect();
    figure("spawned", ids.len());
    figure("spawn_total_s", format!("{:.2}", spawn_total.as_secs_f64()));
    figure(
        "spawn_per_second",
        format!("{:.2}", ids.len() as f64 / spawn_total.as_secs_f64()),
    );
    print_percentiles("spawn", &spawn_ms);
    if ids.is_empty() {
        progress("no instance spawned; nothing more to measure");
        return;
    }

    // ---- Memory, all instances spawned and idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = scripted::rss_kib(me);
    figure("server_rss_mb", format!("{:.1}", rss_after as f64 / 1024.0));
    figure(
        "rss_per_instance_kb",
        format!(
            "{:.1}",
            (rss_after as f64 - rss_before as f64) / ids.len() as f64
        ),
    );
    let (panes, tmux_server) = tmux_pids(&h.socket);
    let tmux_server: Vec<u32> = tmux_server.into_iter().collect();
    figure("tmux_panes", panes.len());
    figure(
        "clis_rss_mb",
        format!("{:.1}", rss_kib_of(&panes) as f64 / 1024.0),
    );
    figure(
        "tmux_server_rss_mb",
        format!("{:.1}", rss_kib_of(&tmux_server) as f64 / 1024.0),
    );

    // ---- Idle CPU: nothing to do for SCALE_IDLE_SECS with every instance alive.
    progress(format!(
        "idle for {idle_secs}s with {} instances",
        ids.len()
    ));
    // This process's own ticks are read last before the wait and first after it: reading
    // every pane's /proc entry is this process's work too (one or two ticks at 300 panes).
    let (clis_before, tmux_before) = (ticks_of(&panes), ticks_of(&tmux_server));
    let me_before = scripted::cpu_ticks(me);
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let me_after = scripted::cpu_ticks(me);
    figure("idle_secs", idle_secs);
    figure("idle_cpu_ticks", me_after - me_before);
    figure(
        "idle_clis_cpu_ticks",
        ticks_of(&panes).saturating_sub(clis_before),
    );
    figure(
        "idle_tmux_cpu_ticks",
        ticks_of(&tmux_server).saturating_sub(tmux_before),
    );

    // ---- Messages: every instance busy at once, a round at a time; a warm-up round first
    // (each CLI's first turn starts its transcript), outside every figure.
    let deadline = Instant::now() + phase_limit;
    progress(format!("warm-up round: {} sends at once", ids.len()));
    let (warm, warm_took) = send_round(&h, &ids, "warm up", deadline).await;
    report_failures("warmup_send", &warm);
    figure("warmup_round_s", format!("{:.2}", warm_took.as_secs_f64()));
    // What the warm-up's answers still write (usage from the transcripts) lands before the
    // baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db_before = db_bytes(&h).await;
    let events_before = last_event_id(&h).await;
    let usage_before = usage_rows(&h).await;
    let mut roundtrip_ms = Vec::new();
    let mut sends = Vec::new();
    let mut busy = Duration::ZERO;
    for round in 0..rounds {
        let (results, took) = send_round(&h, &ids, &format!("round {round}"), deadline).await;
        busy += took;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        progress(format!(
            "round {}/{rounds}: {ok}/{} answered in {:.2}s",
            round + 1,
            ids.len(),
            took.as_secs_f64()
        ));
        roundtrip_ms.extend(results.iter().filter_map(|r| r.as_ref().ok().copied()));
        sends.extend(results);
    }
    report_failures("send", &sends);
    let roundtrips = roundtrip_ms.len();
    figure("roundtrips", roundtrips);
    figure(
        "messages_per_second",
        format!("{:.1}", roundtrips as f64 / busy.as_secs_f64()),
    );
    print_percentiles("roundtrip", &roundtrip_ms);
    // troupe writes a turn's usage when it reads the transcript, which may be after the
    // answer went back: wait for every round trip's row before measuring.
    let settle = Instant::now() + Duration::from_secs(15);
    while usage_rows(&h).await - usage_before < roundtrips as i64 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let db_after = db_bytes(&h).await;
    let events_after = last_event_id(&h).await;
    let (event_bytes, event_count): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(length(CAST(data AS BLOB))), 0), COUNT(*) FROM events \
         WHERE id > ? AND id <= ?",
    )
    .bind(events_before)
    .bind(events_after)
    .fetch_one(h.pool().as_sqlite().unwrap())
    .await
    .unwrap();
    let per = |x: f64| x / roundtrips.max(1) as f64;
    figure("db_bytes_before", db_before);
    figure("db_bytes_after", db_after);
    figure(
        "db_bytes_per_1000_roundtrips",
        format!("{:.0}", per((db_after as f64 - db_before as f64) * 1000.0)),
    );
    figure(
        "event_bytes_per_roundtrip",
        format!("{:.1}", per(event_bytes as f64)),
    );
    figure(
        "events_per_roundtrip",
        format!("{:.2}", per(event_count as f64)),
    );

    // ---- Events: the lag of /api/events over one more round to every instance. Measured per
    // event the stream delivered during the round: the time this client read the chunk that
    // completed the event, minus the event row's `at` (SQLite's clock, milliseconds, taken by
    // the trigger inside the transaction that wrote the row, so just before its commit). So it
    // holds the commit, the stream's wake-up and read of the log, and the delivery over HTTP,
    // under the load of the round itself. Same machine, same wall clock; `at` is truncated to
    // the millisecond.
    let deadline = Instant::now() + phase_limit;
    let start_id = last_event_id(&h).await;
    let stop_reading = CancellationToken::new();
    let (received, reader) = open_events(&h, stop_reading.clone()).await;
    progress(format!(
        "events: one round of {} sends with /api/events open",
        ids.len()
    ));
    let (results, _) = send_round(&h, &ids, "events", deadline).await;
    report_failures("events_send", &results);
    let end_id = last_event_id(&h).await;
    let caught_up = Instant::now() + Duration::from_secs(30);
    while received.lock().unwrap().last().map_or(0, |r| r.0) < end_id && Instant::now() < caught_up
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_reading.cancel();
    tokio::task::spawn_blocking(move || reader.join())
        .await
        .expect("the events reader joined")
        .expect("the events reader ended");
    let at: HashMap<i64, String> = sqlx::query_as("SELECT id, at FROM events WHERE id > ?")
        .bind(start_id)
        .fetch_all(h.pool().as_sqlite().unwrap())
        .await
        .unwrap()
        .into_iter()
        .collect();
    let mut lag_ms = Vec::new();
    let mut answered_lag_ms = Vec::new();
    let mut by_kind: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for (id, kind, answered, got) in received.lock().unwrap().iter() {
        let Some(when) = at
            .get(id)
            .and_then(|a| chrono::DateTime::parse_from_rfc3339(a).ok())
        else {
            continue;
        };
        let lag = (*got - when.to_utc()).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        lag_ms.push(lag);
        by_kind.entry(kind.clone()).or_default().push(lag);
        if *answered {
            answered_lag_ms.push(lag);
        }
    }
    figure("events_n", lag_ms.len());
    figure("events_missed", (end_id - start_id) - lag_ms.len() as i64);
    print_percentiles("events", &lag_ms);
    print_percentiles("events_answered", &answered_lag_ms);
    for (kind, lags) in &by_kind {
        figure(&format!("events_{kind}_n"), lags.len());
        print_percentiles(&format!("events_{kind}"), lags);
    }

    // The round's last state changes (each instance's Stop hook after its answer) may still
    // be landing: the list phases measure listing, so they start once the event log has
    // been still for half a second. Printed: how long that took, how many events came.
    let settling = Instant::now();
    let before = last_event_id(&h).await;
    let (mut last, mut still_since) = (before, Instant::now());
    while still_since.elapsed() < Duration::from_millis(500)
        && settling.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = last_event_id(&h).await;
        if now != last {
            (last, still_since) = (now, Instant::now());
        }
    }
    figure("list_settle_ms", format!("{:.0}", ms_since(settling)));
    figure("list_settle_events", last - before);
    let list_from = last;

    // ---- list_instances over MCP: SCALE_LIST_CLIENTS sessions of their own, each making
    // SCALE_LIST_CALLS calls in a row, all clients at once, from a runtime of their own.
    let deadline = Instant::now() + phase_limit;
    progress(format!(
        "list_instances: {list_clients} MCP sessions x {list_calls} calls"
    ));
    let (url, token) = (h.server().url(), h.server().token().to_string());
    apart(move || async move {
        let t = Instant::now();
        let clients: Vec<Result<McpClient, String>> =
            futures::future::join_all((0..list_clients).map(|_| {
                bounded(deadline, async {
                    Ok::<_, String>(McpClient::with_token(&url, &token).await)
                })
            }))
            .await;
        figure("mcp_connect_all_ms", format!("{:.1}", ms_since(t)));
        report_failures("mcp_connect", &clients);
        let clients: Vec<McpClient> = clients.into_iter().filter_map(Result::ok).collect();
        let listed = Arc::new(AtomicUsize::new(0));
        let answer_bytes = Arc::new(AtomicUsize::new(0));
        let (l, b) = (listed.clone(), answer_bytes.clone());
        let cpu = Cost::now();
        let list = closed_loop(clients, list_calls, deadline, move |c: Arc<McpClient>| {
            let (listed, answer_bytes) = (l.clone(), b.clone());
            async move {
                let (count, bytes) = listed_count(&c).await?;
                listed.store(count, Ordering::Relaxed);
                answer_bytes.store(bytes, Ordering::Relaxed);
                Ok(())
            }
        })
        .await;
        report_calls("list", &list);
        report_cpu("list", cpu, list.len());
        // The first call of each client, all made at once on fresh connections.
        let first: Vec<f64> = list
            .iter()
            .step_by(list_calls)
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        print_percentiles("list_first", &first);
        figure("list_instances_count", listed.load(Ordering::Relaxed));
        figure(
            "list_answer_kb",
            format!(
                "{:.1}",
                answer_bytes.load(Ordering::Relaxed) as f64 / 1024.0
            ),
        );
    })
    .await;
    // State that changed under the listing makes callers render again.
    figure("list_events_during", last_event_id(&h).await - list_from);
    // The server's memory once its callers are gone (the clients' runtime has ended).
    figure(
        "list_rss_after_mb",
        format!("{:.1}", scripted::rss_kib(me) as f64 / 1024.0),
    );

    // ---- list_instances in MCP 2026-07-28, as today's Claude Code speaks it: no session, each
    // call a request of its own with its protocol version and capabilities in `_meta`. As many
    // clients (each its own connection pool) and calls.
    let deadline = Instant::now() + phase_limit;
    progress(format!(
        "list_instances, MCP 2026-07-28: {list_clients} clients x {list_calls} calls"
    ));
    let url = format!("{}/mcp", h.server().url());
    let bearer = format!("Bearer {}", h.server().token());
    apart(move || async move {
        let https: Vec<reqwest::Client> =
            (0..list_clients).map(|_| reqwest::Client::new()).collect();
        let (url, bearer) = (Arc::new(url), Arc::new(bearer));
        let cpu = Cost::now();
        let listed = closed_loop(https, list_calls, deadline, move |http| {
            let (url, bearer) = (url.clone(), bearer.clone());
            async move {
                stateless_listed_count(&http, &url, &bearer)
                    .await
                    .map(|_| ())
            }
        })
        .await;
        report_calls("list_stateless", &listed);
        report_cpu("list_stateless", cpu, listed.len());
        let first: Vec<f64> = listed
            .iter()
            .step_by(list_calls)
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        print_percentiles("list_stateless_first", &first);
    })
    .await;

    // ---- GET /api/instances over REST: as many clients (each its own connection pool), the
    // same number of calls each.
    let deadline = Instant::now() + phase_limit;
    progress(format!(
        "GET /api/instances: {list_clients} clients x {list_calls} calls"
    ));
    let url = format!("{}/api/instances", h.server().url());
    let bearer = format!("Bearer {}", h.server().token());
    apart(move || async move {
        let body_bytes = Arc::new(AtomicUsize::new(0));
        let https: Vec<reqwest::Client> =
            (0..list_clients).map(|_| reqwest::Client::new()).collect();
        let (url, bearer, bytes) = (Arc::new(url), Arc::new(bearer), body_bytes.clone());
        let cpu = Cost::now();
        let api = closed_loop(https, list_calls, deadline, move |http| {
            let (url, bearer, bytes) = (url.clone(), bearer.clone(), bytes.clone());
            async move {
                let (status, body) = get(&http, &url, ("authorization", &bearer)).await?;
                if status != 200 {
                    return Err(format!(
                        "GET /api/instances: {status} {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                bytes.store(body.len(), Ordering::Relaxed);
                Ok(())
            }
        })
        .await;
        report_calls("api_list", &api);
        report_cpu("api_list", cpu, api.len());
        figure("api_list_bytes", body_bytes.load(Ordering::Relaxed));
    })
    .await;

    // ---- The dashboard's first load, as a browser that has just logged in makes it:
    // `dashboard_first_load_*` is GET / (the page, with the session cookie), then its two
    // assets (/assets/app.css and /assets/app.js) side by side, then the instance list the
    // page reads first (GET /api/instances?all=true). Time from the first request to the last
    // byte; bytes are the response bodies (troupe sends them uncompressed), headers left out.
    // The login itself (GET /login?code=…, a redirect with the cookie) is not timed.
    // `dashboard_startup_*` adds the page's other start-up reads, made alongside the instance
    // list as app.js's start() does (usage, paged as the page does; limits, teams, audit,
    // permissions, approvals, hosts); the event stream it opens first is left out.
    progress("dashboard first load");
    let base = h.server().url();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = no_redirect
        .get(h.server().login_link())
        .send()
        .await
        .expect("GET /login");
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .filter(|c| c.starts_with("troupe_session="))
        })
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no session cookie from /login: {}", login.status()));
    let browser = reqwest::Client::new();
    let auth = ("cookie", cookie.as_str());
    let fetch = |path: String| {
        let browser = &browser;
        let base = &base;
        async move {
            let (status, body) = get(browser, &format!("{base}{path}"), auth)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                status,
                200,
                "GET {path}: {}",
                String::from_utf8_lossy(&body)
            );
            body
        }
    };
    let t = Instant::now();
    let page = fetch("/".into()).await;
    assert!(
        String::from_utf8_lossy(&page).contains("/assets/app.js"),
        "GET / gave the dashboard, not the login page"
    );
    let (css, js) = tokio::join!(
        fetch("/assets/app.css".into()),
        fetch("/assets/app.js".into())
    );
    let shell = page.len() + css.len() + js.len();
    let shell_ms = ms_since(t);
    let instances = fetch("/api/instances?all=true".into()).await;
    figure("dashboard_first_load_ms", format!("{:.1}", ms_since(t)));
    figure("dashboard_first_load_bytes", shell + instances.len());
    figure("dashboard_shell_ms", format!("{shell_ms:.1}"));
    figure("dashboard_shell_bytes", shell);
    // The page's start-up reads together (including the instance list again, from a warm
    // server): measured on their own and added to the shell's time.
    let t_all = Instant::now();
    let usage = async {
        let mut bytes = 0;
        let mut before: Option<String> = None;
        let mut rows = 0;
        loop {
            let q = match &before {
                Some(b) => format!("/api/usage?limit=1000&before={b}"),
                None => "/api/usage?limit=1000".into(),
            };
            let body = fetch(q).await;
            bytes += body.len();
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            rows += v["usage"].as_array().map_or(0, |a| a.len());
            before = v["next_before"]
                .as_str()
                .map(str::to_string)
                .or_else(|| v["next_before"].as_i64().map(|i| i.to_string()));
            if before.is_none() || rows >= 5000 {
                return bytes;
            }
        }
    };
    let others = futures::future::join_all(
        [
            "/api/instances?all=true",
            "/api/limits",
            "/api/teams",
            "/api/audit?limit=100",
            "/api/permissions",
            "/api/approvals",
            "/api/hosts",
        ]
        .map(|p| fetch(p.to_string())),
    );
    let (usage_bytes, others) = tokio::join!(usage, others);
    let startup_ms = shell_ms + ms_since(t_all);
    figure("dashboard_startup_ms", format!("{startup_ms:.1}"));
    figure(
        "dashboard_startup_bytes",
        shell + usage_bytes + others.iter().map(Vec::len).sum::<usize>(),
    );

    // ---- The end: every instance terminated, then the tmux server gone with the Harness.
    progress(format!("terminate_all ({} instances)", ids.len()));
    let t = Instant::now();
    let r = bounded(
        Instant::now() + phase_limit,
        tool(&h.mcp, "terminate_all", json!({})),
    )
    .await;
    figure(
        "terminate_all_s",
        format!("{:.2}", t.elapsed().as_secs_f64()),
    );
    match r {
        Ok(v) => figure(
            "terminated",
            v["terminated"]
                .as_array()
                .map_or_else(|| v["terminated"].to_string(), |a| a.len().to_string()),
        ),
        Err(e) => progress(format!("terminate_all failed: {e}")),
    }
    figure("tmux_sessions_left", tmux_sessions(&h.socket));
    let socket = h.socket.clone();
    let mut h = h;
    h.stop_server().await;
    drop(h);
    figure(
        "tmux_server_left",
        i32::from(!tmux_pids(&socket).0.is_empty()),
    );
}
