//! A fake model API server, used to run the real CLIs fully offline: the Anthropic Messages
//! API for Claude Code (`ANTHROPIC_BASE_URL=<base_url()>`) and the OpenAI Responses API for
//! Codex (a provider with `base_url = "<base_url()>/v1"`, `wire_api = "responses"`), the
//! latter answering text only so far.
//!
//! What it answers is decided on the text of the *last user message* of each
//! `/v1/messages` request (see [`last_user_text`]):
//!
//! 1. `CALL_TOOL <name> <json>` → one `tool_use` block calling `<name>` with
//!    `<json>` (or `{}`). If the last user message carries a `tool_result`, no
//!    tool is ever called: the answer is `ECHO: <tool result text>`.
//! 2. contains `count slowly` (optionally `to N`, default 40) → streams `1 `,
//!    `2 `, … one number every 500 ms; stops as soon as the client disconnects.
//! 3. contains the word `stall` → waits 4 s before the first token, then echoes.
//! 4. otherwise → `ECHO: <text>`.
//!
//! A test can override this with [`FakeModel::set_reply`]. Timing (rules 2
//! and 3, [`Reply::Slow`]) only applies to streamed (`stream: true`) answers;
//! non-streamed answers are returned at once with the full text.
#![allow(dead_code)]

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

/// Delay between numbers for `count slowly`.
pub const COUNT_EVERY: Duration = Duration::from_millis(500);
/// Delay before the first token for `stall`.
pub const STALL_DELAY: Duration = Duration::from_secs(4);
/// Default target of `count slowly`.
pub const DEFAULT_COUNT: usize = 40;

/// An answer chosen by a [`FakeModel::set_reply`] hook.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A text answer, streamed in a few deltas.
    Text(String),
    /// A single `tool_use` block.
    ToolUse { name: String, input: Value },
    /// A text answer streamed as `chunks`, each one sent after waiting `every`.
    Slow {
        chunks: Vec<String>,
        every: Duration,
    },
}

type ReplyHook = Arc<dyn Fn(&Value) -> Option<Reply> + Send + Sync + 'static>;

#[derive(Default)]
struct Recorded {
    /// Every `/v1/messages` request body, in order.
    requests: Vec<Value>,
    /// `last_user_text` of each of `requests`.
    texts: Vec<String>,
    /// When each of `requests` arrived (wall clock, ns since the epoch).
    arrived: Vec<i128>,
    /// `"METHOD /path?query"` of every other request.
    others: Vec<String>,
    /// Streams currently being produced.
    active_streams: usize,
    /// Streams that stopped early because the client went away.
    cancelled_streams: usize,
    /// Producer tasks, aborted when the `FakeModel` is dropped.
    producers: Vec<AbortHandle>,
    /// The usage each finished response reported, in order.
    reported: Vec<Reported>,
}

/// What one model response said it used, as the CLI was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// The message id (Anthropic) or response id (OpenAI).
    pub id: String,
    pub model: String,
    /// Input tokens not read from the cache (OpenAI's input_tokens minus cached_tokens).
    pub input: i64,
    pub output: i64,
    pub cache_creation: i64,
    pub cache_read: i64,
}

struct Inner {
    recorded: Mutex<Recorded>,
    hook: Mutex<Option<ReplyHook>>,
    log_file: Mutex<Option<PathBuf>>,
    /// Bumped whenever `recorded` changes, so waiters can re-check.
    changed: watch::Sender<u64>,
}

impl Inner {
    fn recorded(&self) -> MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Recorded)) {
        f(&mut self.recorded());
        self.changed.send_modify(|v| *v += 1);
    }
}

/// Handle on a running fake server. Dropping it stops the server: the
/// listener is closed, idle connections are shut down and in-flight streams
/// are cut short.
pub struct FakeModel {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl FakeModel {
    /// Starts a server on `127.0.0.1:0`.
    pub async fn start() -> FakeModel {
        Self::start_on(0).await.expect("bind fake model server")
    }

    /// Starts a server on `127.0.0.1:port` (0 picks a free port).
    pub async fn start_on(port: u16) -> std::io::Result<FakeModel> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            recorded: Mutex::new(Recorded::default()),
            hook: Mutex::new(None),
            log_file: Mutex::new(None),
            changed: watch::Sender::new(0),
        });
        let app = Router::new()
            .route("/v1/messages", any(messages))
            .route("/v1/messages/count_tokens", any(count_tokens))
            .route("/v1/responses", any(responses))
            .fallback(other)
            .layer(DefaultBodyLimit::disable())
            .with_state(inner.clone());
        let (shutdown, signal) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let signal = async {
                let _ = signal.await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::warn!("fake model server stopped: {e}");
            }
        });
        Ok(FakeModel {
            inner,
            addr,
            shutdown: Some(shutdown),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every `/v1/messages` request body received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.recorded().requests.clone()
    }

    /// For each recorded request, its last user message text and when it arrived (wall clock,
    /// ns since the epoch): benches split a turn at the model call with it.
    pub fn arrivals(&self) -> Vec<(String, i128)> {
        let r = self.inner.recorded();
        r.texts
            .iter()
            .cloned()
            .zip(r.arrived.iter().copied())
            .collect()
    }

    /// For each recorded request, the last user message text as the rules saw it.
    pub fn last_user_texts(&self) -> Vec<String> {
        self.inner.recorded().texts.clone()
    }

    /// `"METHOD /path?query"` of every request that was not `/v1/messages`.
    pub fn other_requests(&self) -> Vec<String> {
        self.inner.recorded().others.clone()
    }

    /// Number of streamed answers currently in progress.
    pub fn active_streams(&self) -> usize {
        self.inner.recorded().active_streams
    }

    /// Number of streamed answers cut short because the client disconnected.
    pub fn cancelled_streams(&self) -> usize {
        self.inner.recorded().cancelled_streams
    }

    /// The usage of every response streamed to its end, in order.
    pub fn reported(&self) -> Vec<Reported> {
        self.inner.recorded().reported.clone()
    }

    /// Appends every `/v1/messages` request body as one JSON line to `path`.
    pub fn log_requests_to(&self, path: impl Into<PathBuf>) {
        *self
            .inner
            .log_file
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(path.into());
    }

    /// Overrides the default rules: the hook sees each `/v1/messages` request
    /// body first; `None` falls through to the default rules.
    pub fn set_reply(&self, f: impl Fn(&Value) -> Option<Reply> + Send + Sync + 'static) {
        *self.inner.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(f));
    }

    /// Returns the first recorded request (already received or arriving
    /// within `timeout`) matching `pred`.
    pub async fn wait_for_request<F: Fn(&Value) -> bool>(
        &self,
        pred: F,
        timeout: Duration,
    ) -> Option<Value> {
        self.wait_until(timeout, |r| r.requests.iter().find(|b| pred(b)).cloned())
            .await
    }

    /// Waits until at least `n` streams have been cut short by a client
    /// disconnect; returns whether that happened within `timeout`.
    pub async fn wait_for_cancelled_streams(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |r| (r.cancelled_streams >= n).then_some(()))
            .await
            .is_some()
    }

    /// Waits until no streamed answer is in progress.
    pub async fn wait_for_idle(&self, timeout: Duration) -> bool {
        self.wait_until(timeout, |r| (r.active_streams == 0).then_some(()))
            .await
            .is_some()
    }

    async fn wait_until<T>(
        &self,
        timeout: Duration,
        check: impl Fn(&Recorded) -> Option<T>,
    ) -> Option<T> {
        // Subscribe before checking so no change between the check and the
        // wait can be missed.
        let mut rx = self.inner.changed.subscribe();
        tokio::time::timeout(timeout, async {
            loop {
                if let Some(found) = check(&self.inner.recorded()) {
                    return Some(found);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for producer in self.inner.recorded().producers.drain(..) {
            producer.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// Request text helpers

/// Text of a `content` value: a string, or the `text` blocks joined with "\n".
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Removes `<system-reminder>…</system-reminder>` sections, which Claude Code
/// adds to user messages (context, CLAUDE.md, …), and trims the rest.
fn strip_system_reminders(text: &str) -> String {
    const OPEN: &str = "<system-reminder>";
    const CLOSE: &str = "</system-reminder>";
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let Some(len) = rest[start..].find(CLOSE) else {
            break;
        };
        out.push_str(&rest[..start]);
        rest = &rest[start + len + CLOSE.len()..];
    }
    out.push_str(rest);
    out.trim().to_string()
}

/// The last user message's text, and whether it came from `tool_result` blocks.
fn last_user_input(body: &Value) -> (String, bool) {
    let Some(message) = body["messages"]
        .as_array()
        .and_then(|ms| ms.iter().rev().find(|m| m["role"] == "user"))
    else {
        return (String::new(), false);
    };
    let content = &message["content"];
    let parts: Vec<String>;
    let is_tool_result;
    if let Some(blocks) = content.as_array() {
        let results: Vec<&Value> = blocks
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .collect();
        is_tool_result = !results.is_empty();
        parts = if is_tool_result {
            results
                .iter()
                .map(|b| content_text(&b["content"]))
                .collect()
        } else {
            blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str().map(str::to_string))
                .collect()
        };
    } else {
        is_tool_result = false;
        parts = vec![content_text(content)];
    }
    let text = parts
        .iter()
        .map(|p| strip_system_reminders(p))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    (text, is_tool_result)
}

/// The last user message's text as the rules see it: a string content as is;
/// `text` blocks joined with "\n"; or, if it holds `tool_result` blocks, their
/// content text. `<system-reminder>` sections are removed and the result trimmed.
pub fn last_user_text(body: &Value) -> String {
    last_user_input(body).0
}

/// Every message's text (strings, `text` blocks, `tool_result` contents),
/// joined with "\n" — for asserting that a request carried an earlier turn.
pub fn conversation_text(body: &Value) -> String {
    let mut parts = Vec::new();
    for message in body["messages"].as_array().into_iter().flatten() {
        match &message["content"] {
            Value::String(s) => parts.push(s.clone()),
            Value::Array(blocks) => {
                for block in blocks {
                    match block["type"].as_str() {
                        Some("text") => {
                            parts.extend(block["text"].as_str().map(str::to_string));
                        }
                        Some("tool_result") => parts.push(content_text(&block["content"])),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    parts.join("\n")
}

// ---------------------------------------------------------------------------
// Rules

/// Whether `word` occurs in `text` not surrounded by letters or digits
/// (so `stall` does not match `install`).
fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// `N` from `count slowly to N`, if the text asks to count slowly.
fn count_slowly_target(text: &str) -> Option<usize> {
    let lower = text.to_lowercase();
    let at = lower.find("count slowly")?;
    let after = lower[at + "count slowly".len()..].trim_start();
    let n = after
        .strip_prefix("to")
        .filter(|rest| rest.starts_with(char::is_whitespace))
        .and_then(|rest| {
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .unwrap_or(DEFAULT_COUNT);
    Some(n)
}

/// `(name, input)` from `CALL_TOOL <name> <json>`.
fn parse_call_tool(text: &str) -> Option<(String, Value)> {
    let rest = text.trim_start().strip_prefix("CALL_TOOL")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start();
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (name, json) = rest.split_at(end);
    if name.is_empty() {
        return None;
    }
    let input = serde_json::Deserializer::from_str(json.trim_start())
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    Some((name.to_string(), input))
}

fn default_reply(body: &Value) -> Reply {
    let (text, is_tool_result) = last_user_input(body);
    let echo = format!("ECHO: {text}");
    if is_tool_result {
        return Reply::Text(echo);
    }
    if let Some((name, input)) = parse_call_tool(&text) {
        return Reply::ToolUse { name, input };
    }
    if let Some(n) = count_slowly_target(&text) {
        return Reply::Slow {
            chunks: (1..=n).map(|i| format!("{i} ")).collect(),
            every: COUNT_EVERY,
        };
    }
    if contains_word(&text.to_lowercase(), "stall") {
        return Reply::Slow {
            chunks: vec![echo],
            every: STALL_DELAY,
        };
    }
    Reply::Text(echo)
}

/// Splits a text into a few deltas (about four words each).
fn text_chunks(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_inclusive(char::is_whitespace).collect();
    if words.is_empty() {
        return vec![String::new()];
    }
    words.chunks(4).map(|c| c.concat()).collect()
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count().max(1)
}

fn input_tokens(body: &Value) -> usize {
    let chars = |v: &Value| {
        if v.is_null() {
            0
        } else {
            v.to_string().chars().count()
        }
    };
    (chars(&body["messages"]) + chars(&body["system"])) / 4
}

fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

// ---------------------------------------------------------------------------
// HTTP handlers

fn error_response(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

async fn messages(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let arrived = now_ns();
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error_response(StatusCode::BAD_REQUEST, "body must be a JSON object"),
    };

    let text = last_user_text(&body);
    if let Some(path) = inner
        .log_file
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{body}"));
        if let Err(e) = written {
            tracing::warn!("fake model: cannot append to {}: {e}", path.display());
        }
    }
    inner.update(|r| {
        r.requests.push(body.clone());
        r.texts.push(text);
        r.arrived.push(arrived);
    });

    let hook = inner.hook.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let reply = hook
        .and_then(|h| h(&body))
        .unwrap_or_else(|| default_reply(&body));

    let model = body["model"].as_str().unwrap_or("claude-fake").to_string();
    let input_tokens = input_tokens(&body);
    // Made-up cache figures, so that a ledger shows it keeps every kind apart.
    let (cache_creation, cache_read) = (CACHE_CREATION_TOKENS, input_tokens / 2);
    let request_id = format!("req_fake_{}", hex_id());
    let message_id = format!("msg_fake_{}", hex_id());

    if body["stream"].as_bool() != Some(true) {
        let (content, stop_reason, output_tokens) = match reply {
            Reply::ToolUse { name, input } => {
                let words = word_count(&input.to_string());
                let block = json!({
                    "type": "tool_use",
                    "id": format!("toolu_fake_{}", hex_id()),
                    "name": name,
                    "input": input,
                });
                (block, "tool_use", words)
            }
            Reply::Text(text) => {
                let words = word_count(&text);
                (json!({"type": "text", "text": text}), "end_turn", words)
            }
            Reply::Slow { chunks, .. } => {
                let text = chunks.concat();
                let words = word_count(&text);
                (json!({"type": "text", "text": text}), "end_turn", words)
            }
        };
        let message = json!({
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [content],
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": cache_creation,
                "cache_read_input_tokens": cache_read,
            },
        });
        return (
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (header::HeaderName::from_static("request-id"), request_id),
            ],
            message.to_string(),
        )
            .into_response();
    }

    let start = json!({
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": 1,
                "cache_creation_input_tokens": cache_creation,
                "cache_read_input_tokens": cache_read,
            },
        },
    });

    let (tx, rx) = mpsc::channel::<String>(16);
    inner.update(|r| r.active_streams += 1);
    let task_inner = inner.clone();
    let message_id_for_ledger = message_id.clone();
    let model_for_ledger = model.clone();
    let producer = tokio::spawn(async move {
        let _guard = StreamGuard(task_inner.clone());
        let reported = Reported {
            id: message_id_for_ledger,
            model: model_for_ledger,
            input: input_tokens as i64,
            output: 0,
            cache_creation: cache_creation as i64,
            cache_read: cache_read as i64,
        };
        if produce(&tx, start, reply, &task_inner, reported)
            .await
            .is_err()
        {
            task_inner.update(|r| r.cancelled_streams += 1);
        }
    });
    inner.update(|r| {
        r.producers.retain(|p| !p.is_finished());
        r.producers.push(producer.abort_handle());
    });

    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream".to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
            (header::HeaderName::from_static("request-id"), request_id),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Decrements the active stream count when a producer ends (or is aborted).
struct StreamGuard(Arc<Inner>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.update(|r| r.active_streams -= 1);
    }
}

/// The client went away.
struct Gone;

async fn send(tx: &mpsc::Sender<String>, data: Value) -> Result<(), Gone> {
    let name = data["type"].as_str().unwrap_or("message").to_string();
    tx.send(format!("event: {name}\ndata: {data}\n\n"))
        .await
        .map_err(|_| Gone)
}

/// Waits `delay`, or returns `Gone` as soon as the receiver is dropped.
async fn pause(tx: &mpsc::Sender<String>, delay: Duration) -> Result<(), Gone> {
    tokio::select! {
        () = tokio::time::sleep(delay) => Ok(()),
        () = tx.closed() => Err(Gone),
    }
}

/// Cache writes every Anthropic response reports (cache reads: half its input).
pub const CACHE_CREATION_TOKENS: usize = 32;
/// Of the 100 input tokens every Responses answer reports, this many were cached.
pub const RESPONSES_CACHED_TOKENS: i64 = 40;

async fn produce(
    tx: &mpsc::Sender<String>,
    start: Value,
    reply: Reply,
    inner: &Inner,
    mut reported: Reported,
) -> Result<(), Gone> {
    send(tx, start).await?;
    let (stop_reason, output_tokens) = match reply {
        Reply::ToolUse { name, input } => {
            let partial = input.to_string();
            let block = json!({
                "type": "tool_use",
                "id": format!("toolu_fake_{}", hex_id()),
                "name": name,
                "input": {},
            });
            send(
                tx,
                json!({"type": "content_block_start", "index": 0, "content_block": block}),
            )
            .await?;
            let delta = json!({"type": "input_json_delta", "partial_json": partial});
            send(
                tx,
                json!({"type": "content_block_delta", "index": 0, "delta": delta}),
            )
            .await?;
            ("tool_use", word_count(&partial))
        }
        Reply::Text(text) => {
            send_text_start(tx).await?;
            for chunk in text_chunks(&text) {
                send_text_delta(tx, chunk).await?;
            }
            ("end_turn", word_count(&text))
        }
        Reply::Slow { chunks, every } => {
            send_text_start(tx).await?;
            for chunk in &chunks {
                pause(tx, every).await?;
                send_text_delta(tx, chunk.clone()).await?;
            }
            ("end_turn", word_count(&chunks.concat()))
        }
    };
    send(tx, json!({"type": "content_block_stop", "index": 0})).await?;
    send(
        tx,
        json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": output_tokens},
        }),
    )
    .await?;
    send(tx, json!({"type": "message_stop"})).await?;
    reported.output = output_tokens as i64;
    inner.update(|r| r.reported.push(reported));
    Ok(())
}

async fn send_text_start(tx: &mpsc::Sender<String>) -> Result<(), Gone> {
    let block = json!({"type": "text", "text": ""});
    send(
        tx,
        json!({"type": "content_block_start", "index": 0, "content_block": block}),
    )
    .await
}

async fn send_text_delta(tx: &mpsc::Sender<String>, text: String) -> Result<(), Gone> {
    let delta = json!({"type": "text_delta", "text": text});
    send(
        tx,
        json!({"type": "content_block_delta", "index": 0, "delta": delta}),
    )
    .await
}

async fn count_tokens(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    inner.update(|r| r.others.push(format!("{method} {uri}")));
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = json!({"input_tokens": input_tokens(&body)});
    (
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

async fn other(State(inner): State<Arc<Inner>>, method: Method, uri: Uri) -> Response {
    tracing::info!("fake model: unhandled {method} {uri}, answering {{}}");
    inner.update(|r| r.others.push(format!("{method} {uri}")));
    ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
}

// ---------------------------------------------------------------------------
// OpenAI Responses API (`POST /v1/responses`, streamed), for the Codex CLI. The same rules
// answer, on the text of the last user message of the request's `input`.

/// The text of the last user message of a Responses request.
pub fn responses_user_text(body: &Value) -> String {
    body["input"]
        .as_array()
        .into_iter()
        .flatten()
        .rfind(|item| item["role"] == "user")
        .map(|item| match &item["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .unwrap_or_default()
}

async fn responses(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error_response(StatusCode::BAD_REQUEST, "body must be a JSON object"),
    };
    let text = responses_user_text(&body);
    inner.update(|r| {
        r.requests.push(body.clone());
        r.texts.push(text.clone());
        r.arrived.push(now_ns());
    });
    // The rules read an Anthropic-shaped request: the last user text, or the output of the
    // function call that the last model response made.
    let last = body["input"].as_array().and_then(|items| items.last());
    let as_messages = match last {
        Some(item) if item["type"] == "function_call_output" => {
            let output = match &item["output"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            json!({ "messages": [{ "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": item["call_id"], "content": output }
            ] }] })
        }
        _ => json!({ "messages": [{ "role": "user", "content": text }] }),
    };
    let reply = default_reply(&as_messages);
    let model = body["model"].as_str().unwrap_or("gpt-fake").to_string();
    let (tx, rx) = mpsc::channel::<String>(64);
    let guard = StreamGuard(inner.clone());
    inner.update(|r| r.active_streams += 1);
    let recorder = inner.clone();
    tokio::spawn(async move {
        let _guard = guard;
        if let Ok(reported) = produce_response(&tx, &model, &body, reply).await {
            recorder.update(|r| r.reported.push(reported));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream".to_string()),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The request's own name for a tool asked for as `name`, and its namespace: Claude Code
/// calls troupe's tools `mcp__troupe__<tool>`; Codex lists them as the tools of a namespace
/// `mcp__troupe`, called by their own name with the namespace beside it.
fn responses_tool_name(body: &Value, name: &str) -> (String, Option<String>) {
    let tools = body["tools"].as_array().cloned().unwrap_or_default();
    for t in &tools {
        if t["type"] == "namespace"
            && let Some(ns) = t["name"].as_str()
            && let Some(short) = name.strip_prefix(ns).and_then(|r| r.strip_prefix("__"))
            && t["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| f["name"] == short)
        {
            return (short.to_string(), Some(ns.to_string()));
        }
    }
    (name.to_string(), None)
}

/// One `function_call` output item, then the response's end.
async fn produce_function_call(
    tx: &mpsc::Sender<String>,
    model: &str,
    name: &str,
    namespace: Option<String>,
    input: &Value,
) -> Result<Reported, Gone> {
    let response_id = format!("resp_fake_{}", hex_id());
    let item_id = format!("fc_fake_{}", hex_id());
    let call_id = format!("call_fake_{}", hex_id());
    let created = json!({ "id": response_id, "object": "response", "status": "in_progress",
                          "model": model, "output": [] });
    send(
        tx,
        json!({ "type": "response.created", "response": created }),
    )
    .await?;
    let mut item = json!({ "id": item_id, "type": "function_call", "status": "in_progress",
                           "call_id": call_id, "name": name, "arguments": "" });
    if let Some(ns) = &namespace {
        item["namespace"] = json!(ns);
    }
    send(
        tx,
        json!({ "type": "response.output_item.added", "output_index": 0, "item": item }),
    )
    .await?;
    let arguments = input.to_string();
    send(
        tx,
        json!({ "type": "response.function_call_arguments.delta", "item_id": item_id,
                "output_index": 0, "delta": arguments }),
    )
    .await?;
    send(
        tx,
        json!({ "type": "response.function_call_arguments.done", "item_id": item_id,
                "output_index": 0, "arguments": arguments }),
    )
    .await?;
    let mut done = json!({ "id": item_id, "type": "function_call", "status": "completed",
                           "call_id": call_id, "name": name, "arguments": arguments });
    if let Some(ns) = &namespace {
        done["namespace"] = json!(ns);
    }
    send(
        tx,
        json!({ "type": "response.output_item.done", "output_index": 0, "item": done }),
    )
    .await?;
    let completed = json!({
        "id": response_id, "object": "response", "status": "completed", "model": model,
        "output": [done],
        "usage": { "input_tokens": 100,
                   "input_tokens_details": { "cached_tokens": RESPONSES_CACHED_TOKENS },
                   "output_tokens": 10, "output_tokens_details": { "reasoning_tokens": 0 },
                   "total_tokens": 110 }
    });
    send(
        tx,
        json!({ "type": "response.completed", "response": completed }),
    )
    .await?;
    Ok(responses_reported(&response_id, model, 10))
}

fn responses_reported(id: &str, model: &str, output: i64) -> Reported {
    Reported {
        id: id.to_string(),
        model: model.to_string(),
        input: 100 - RESPONSES_CACHED_TOKENS,
        output,
        cache_creation: 0,
        cache_read: RESPONSES_CACHED_TOKENS,
    }
}

async fn produce_response(
    tx: &mpsc::Sender<String>,
    model: &str,
    body: &Value,
    reply: Reply,
) -> Result<Reported, Gone> {
    if let Reply::ToolUse { name, input } = &reply {
        let (name, namespace) = responses_tool_name(body, name);
        return produce_function_call(tx, model, &name, namespace, input).await;
    }
    let response_id = format!("resp_fake_{}", hex_id());
    let item_id = format!("msg_fake_{}", hex_id());
    let created = json!({ "id": response_id, "object": "response", "status": "in_progress",
                          "model": model, "output": [] });
    send(
        tx,
        json!({ "type": "response.created", "response": created }),
    )
    .await?;
    let item = json!({ "id": item_id, "type": "message", "status": "in_progress",
                       "role": "assistant", "content": [] });
    send(
        tx,
        json!({ "type": "response.output_item.added", "output_index": 0, "item": item }),
    )
    .await?;
    send(tx, json!({ "type": "response.content_part.added", "item_id": item_id, "output_index": 0,
                     "content_index": 0, "part": { "type": "output_text", "text": "", "annotations": [] } })).await?;
    let (chunks, every) = match reply {
        Reply::Text(t) => (text_chunks(&t), Duration::ZERO),
        Reply::Slow { chunks, every } => (chunks, every),
        Reply::ToolUse { .. } => unreachable!("answered as a function call"),
    };
    let mut full = String::new();
    for chunk in chunks {
        if !every.is_zero() {
            pause(tx, every).await?;
        }
        full.push_str(&chunk);
        send(
            tx,
            json!({ "type": "response.output_text.delta", "item_id": item_id,
                         "output_index": 0, "content_index": 0, "delta": chunk }),
        )
        .await?;
    }
    let part = json!({ "type": "output_text", "text": full, "annotations": [] });
    send(
        tx,
        json!({ "type": "response.output_text.done", "item_id": item_id, "output_index": 0,
                     "content_index": 0, "text": full }),
    )
    .await?;
    send(
        tx,
        json!({ "type": "response.content_part.done", "item_id": item_id, "output_index": 0,
                     "content_index": 0, "part": part }),
    )
    .await?;
    let done_item = json!({ "id": item_id, "type": "message", "status": "completed",
                            "role": "assistant", "content": [part] });
    send(
        tx,
        json!({ "type": "response.output_item.done", "output_index": 0, "item": done_item }),
    )
    .await?;
    let words = word_count(&full);
    let completed = json!({
        "id": response_id, "object": "response", "status": "completed", "model": model,
        "output": [done_item],
        "usage": { "input_tokens": 100,
                   "input_tokens_details": { "cached_tokens": RESPONSES_CACHED_TOKENS },
                   "output_tokens": words, "output_tokens_details": { "reasoning_tokens": 0 },
                   "total_tokens": 100 + words }
    });
    send(
        tx,
        json!({ "type": "response.completed", "response": completed }),
    )
    .await?;
    Ok(responses_reported(&response_id, model, words as i64))
}
