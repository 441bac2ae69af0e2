//! A stand-in for Claude Code 2.1.328 as troupe sees it, so a benchmark can run hundreds of
//! instances on one machine (the real CLI takes ~300 MB each; this takes a few). troupe
//! launches it exactly as it launches `claude`: point `claude_bin` at
//! `target/debug/examples/scripted_cli`. It does what troupe looks at, the way the recorded
//! 2.1.328 does it (`tests/fixtures/claude-code-2.1.328/`), and nothing else:
//!
//! - `--version` prints `2.1.328 (Claude Code)`, so troupe launches it as the tested version.
//! - It takes troupe's launch line (`--session-id` or `--resume`, `--model`, `--settings`,
//!   `--mcp-config`, the permission flags) and ignores flags it does not know.
//! - Its pane shows the input box between two rules, and "esc to interrupt" in the footer
//!   while a turn runs (`screens/01-idle.txt`, `04-busy-streaming.txt`). It reads the
//!   terminal raw: a bracketed paste is text, `\r` submits, a lone ESC interrupts, Ctrl-U
//!   empties a line of the input box.
//! - It runs the hooks of the `--settings` file with 2.1.328's payloads
//!   (`hook-payloads.jsonl`): SessionStart at launch, UserPromptSubmit and Stop per turn,
//!   SessionEnd when it exits. A `command` hook gets the payload on stdin; an `http` hook
//!   is posted with its headers.
//! - It reaches each HTTP server of `--mcp-config` as 2.1.328 does: the stateless MCP
//!   2026-07-28 (`server/discover`, then `prompts/list` and `tools/list` together, each
//!   carrying the client's metadata), with the configured headers. troupe's startup waits
//!   for those lists.
//! - It writes the transcript where 2.1.328 does (`~/.claude/projects/<cwd, every character
//!   but letters and digits made '-'>/<session>.jsonl`), from the first prompt on, in the
//!   recorded record shapes: the prompt (with its prompt id), after a delay the answer with
//!   its usage, the stop-hook summary and the turn's end. Escape writes the cut-off answer
//!   and the interrupted record, as 2.1.328 does, and the prompt comes back; before the
//!   first token it takes the prompt back into the input box instead (also 2.1.328's way).
//!
//! The answer is configured through the environment (a test puts these in troupe's
//! `instance_env`; `troupe serve --pass-env NAME` lets them through to instances):
//!
//! | variable                              | default            |                               |
//! |---------------------------------------|--------------------|-------------------------------|
//! | `SCRIPTED_CLI_DELAY_MS`               | 50                 | prompt to answer              |
//! | `SCRIPTED_CLI_FIRST_TOKEN_MS`         | 0                  | before it, Escape withdraws   |
//! | `SCRIPTED_CLI_ANSWER`                 | `ECHO: {prompt}`   | `{prompt}`: the prompt's text |
//! | `SCRIPTED_CLI_INPUT_TOKENS`           | 4800               | usage of every answer         |
//! | `SCRIPTED_CLI_OUTPUT_TOKENS`          | the answer's words | (as the fake model counts)    |
//! | `SCRIPTED_CLI_CACHE_CREATION_TOKENS`  | 32                 |                               |
//! | `SCRIPTED_CLI_CACHE_READ_TOKENS`      | 2400               |                               |
//! | `SCRIPTED_CLI_LOG`                    | none               | a file for hook and MCP errors|
//!
//! A word `SCRIPTED_DELAY_MS=N` or `SCRIPTED_FIRST_TOKEN_MS=N` in a prompt sets that value
//! for its turn alone (a long turn to interrupt, say).
//!
//! Idle, it uses no CPU: one thread blocks on the terminal, the single-threaded runtime waits
//! on a channel, signals and at most one timer (the running turn's), and finished HTTP
//! connections are not kept.
//!
//! Not emulated: the trust and bypass-permissions dialogs, permission prompts and tools, slash
//! commands, the conversation redrawn on `--resume`, a first prompt given on the command line.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The version this program stands in for.
const VERSION: &str = "2.1.328";
/// The MCP revision 2.1.328 speaks with a server that offers it (seen on the wire).
const MCP_VERSION: &str = "2026-07-28";
/// What 2.1.328 writes when a turn is cut off (troupe reads the prefix).
const INTERRUPTED: &str = "[Request interrupted by user]";
/// How long a lone ESC waits for the rest of an escape sequence split across reads, before
/// it counts as the Escape key. tmux writes a key or a paste's start in one piece, so this
/// only matters when a read ends exactly after the ESC.
const ESCAPE_WAIT: Duration = Duration::from_millis(15);
/// The most rows the input box takes on the screen, and the most conversation lines kept.
const INPUT_ROWS: usize = 10;
const HISTORY_LINES: usize = 200;
/// The longest SessionEnd hooks may hold the exit, whatever the settings say: the session's
/// tmux pane is already gone when troupe ends it.
const SESSION_END_MOST: Duration = Duration::from_millis(1500);

fn main() {
    let invocation = parse_args(std::env::args().skip(1));
    let args = match invocation {
        Invocation::Version => {
            // troupe reads the version from this line (2.1.328 prints exactly this).
            println!("{VERSION} (Claude Code)");
            return;
        }
        Invocation::Help => {
            println!(
                "Usage: scripted_cli [--session-id ID | --resume ID] [--model M] \
                 [--settings FILE] [--mcp-config FILE] [--permission-mode MODE] \
                 [--dangerously-skip-permissions]\n\nA stand-in for Claude Code {VERSION}; \
                 see examples/scripted_cli.rs for its SCRIPTED_CLI_* settings."
            );
            return;
        }
        Invocation::Run(args) => args,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(args));
}

// ---------------------------------------------------------------------------------------
// The command line.

enum Invocation {
    Version,
    Help,
    Run(Args),
}

#[derive(Debug, Default)]
struct Args {
    session_id: Option<String>,
    resume: bool,
    model: Option<String>,
    settings: Option<String>,
    mcp_configs: Vec<String>,
    /// As hooks and the transcript name it (`bypassPermissions`, `default`, ...).
    permission_mode: Option<String>,
}

/// 2.1.328's flags that take a value (its `--help`, and the `-file` forms troupe passes), so
/// a value is never read as a flag. Other flags are ignored: a newer troupe may pass some.
const VALUE_FLAGS: &[&str] = &[
    "--add-dir",
    "--agent",
    "--agents",
    "--allowedTools",
    "--allowed-tools",
    "--append-system-prompt",
    "--append-system-prompt-file",
    "--autocompact",
    "--betas",
    "--debug-file",
    "--disallowedTools",
    "--disallowed-tools",
    "--effort",
    "--fallback-model",
    "--input-format",
    "--json-schema",
    "--max-budget-usd",
    "-n",
    "--name",
    "--output-format",
    "--permission-prompts",
    "--plugin-dir",
    "--setting-sources",
    "--system-prompt",
    "--system-prompt-file",
    "--system-prompt-snapshot",
    "--tools",
];

fn parse_args(argv: impl Iterator<Item = String>) -> Invocation {
    let mut args = Args::default();
    let mut argv = argv.peekable();
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg, None),
        };
        // The flag's value: after `=`, else the next word unless that is a flag itself.
        let mut value = || {
            inline
                .clone()
                .or_else(|| argv.next_if(|next| !next.starts_with('-')))
        };
        match flag.as_str() {
            "-v" | "--version" => return Invocation::Version,
            "-h" | "--help" => return Invocation::Help,
            "--session-id" => args.session_id = value(),
            "-r" | "--resume" => {
                args.resume = true;
                args.session_id = value();
            }
            "--model" => args.model = value(),
            "--settings" => args.settings = value(),
            "--mcp-config" => args.mcp_configs.extend(value()),
            "--dangerously-skip-permissions" => {
                args.permission_mode = Some("bypassPermissions".into())
            }
            "--permission-mode" => args.permission_mode = value().map(|m| mode_name(&m)),
            f if VALUE_FLAGS.contains(&f) => {
                value();
            }
            _ => {}
        }
    }
    Invocation::Run(args)
}

/// A `--permission-mode` as 2.1.328 reports it in hooks and the transcript: `manual` (the
/// name since 2.1.200) is reported as `default` (`hook-payloads.jsonl`, session 2).
fn mode_name(flag: &str) -> String {
    match flag {
        "manual" => "default".into(),
        other => other.into(),
    }
}

/// The model id the CLI runs for what `--model` names: 2.1.328 runs `opus` as
/// `claude-opus-5-5` and `haiku` as `claude-haiku-5-5` (recorded); `sonnet` is taken to
/// follow the same pattern. A full `claude-*` id is used as it is.
fn model_id(requested: Option<&str>) -> String {
    let m = requested.unwrap_or("opus").trim().to_ascii_lowercase();
    if m.starts_with("claude-") {
        return m;
    }
    ["opus", "sonnet", "haiku"]
        .into_iter()
        .find(|family| m.starts_with(family))
        .map_or(m.clone(), |family| format!("claude-{family}-5-5"))
}

/// The model as the header names it: `Opus 5.5` for `claude-opus-5-5`.
fn model_display(id: &str) -> String {
    let parts: Vec<&str> = id.split('-').collect();
    match parts[..] {
        ["claude", family, major, minor]
            if !family.is_empty() && family.chars().all(|c| c.is_ascii_alphabetic()) =>
        {
            let mut name = family.to_string();
            name[..1].make_ascii_uppercase();
            format!("{name} {major}.{minor}")
        }
        _ => id.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// What the answers are: the environment, and a prompt's own words.

struct Script {
    delay: Duration,
    first_token: Duration,
    answer: String,
    input_tokens: i64,
    output_tokens: Option<i64>,
    cache_creation: i64,
    cache_read: i64,
}

impl Script {
    fn from_env() -> Script {
        let num = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Script {
            delay: Duration::from_millis(num("SCRIPTED_CLI_DELAY_MS").unwrap_or(50)),
            first_token: Duration::from_millis(num("SCRIPTED_CLI_FIRST_TOKEN_MS").unwrap_or(0)),
            answer: std::env::var("SCRIPTED_CLI_ANSWER")
                .unwrap_or_else(|_| "ECHO: {prompt}".into()),
            input_tokens: num("SCRIPTED_CLI_INPUT_TOKENS").map_or(4800, |n| n as i64),
            output_tokens: num("SCRIPTED_CLI_OUTPUT_TOKENS").map(|n| n as i64),
            cache_creation: num("SCRIPTED_CLI_CACHE_CREATION_TOKENS").map_or(32, |n| n as i64),
            cache_read: num("SCRIPTED_CLI_CACHE_READ_TOKENS").map_or(2400, |n| n as i64),
        }
    }

    /// How one prompt is answered.
    fn plan(&self, prompt: &str) -> Plan {
        let ms = |name| directive(prompt, name).map(Duration::from_millis);
        let delay = ms("SCRIPTED_DELAY_MS").unwrap_or(self.delay);
        let first_token = ms("SCRIPTED_FIRST_TOKEN_MS")
            .unwrap_or(self.first_token)
            .min(delay);
        let answer = self.answer.replace("{prompt}", prompt);
        // The fake model's count (tests/support/fake_model.rs), so both read alike.
        let words = answer.split_whitespace().count().max(1) as i64;
        Plan {
            delay,
            first_token,
            usage: Usage {
                input: self.input_tokens,
                output: self.output_tokens.unwrap_or(words),
                cache_creation: self.cache_creation,
                cache_read: self.cache_read,
            },
            answer,
        }
    }
}

/// A word `NAME=N` in a prompt.
fn directive(prompt: &str, name: &str) -> Option<u64> {
    prompt
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

struct Plan {
    delay: Duration,
    first_token: Duration,
    answer: String,
    usage: Usage,
}

#[derive(Clone, Copy)]
struct Usage {
    input: i64,
    output: i64,
    cache_creation: i64,
    cache_read: i64,
}

/// The part of the answer streamed after `fraction` of the time from the first token to the
/// last: whole words, at least one.
fn streamed(answer: &str, fraction: f64) -> String {
    let words: Vec<&str> = answer.split_inclusive(char::is_whitespace).collect();
    if words.is_empty() {
        return String::new();
    }
    let n = (words.len() as f64 * fraction).ceil() as usize;
    words[..n.clamp(1, words.len())].concat()
}

// ---------------------------------------------------------------------------------------
// Errors go to SCRIPTED_CLI_LOG, if set: the terminal belongs to the screen.

static LOG: OnceLock<Option<PathBuf>> = OnceLock::new();

fn log(message: impl std::fmt::Display) {
    let Some(Some(path)) = LOG.get() else {
        return;
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{} [{}] {message}", now_ts(), std::process::id());
    }
}

/// A timestamp as the transcript writes it: `2026-12-06T05:47:04.929Z`.
fn now_ts() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------
// Hooks: the `--settings` file's `hooks`, by event.

#[derive(Clone, Debug)]
enum Hook {
    Command {
        command: String,
        timeout: Duration,
    },
    Http {
        url: String,
        headers: Vec<(String, String)>,
        timeout: Duration,
    },
}

/// How one hook went, for the stop-hook summary.
struct HookRun {
    /// The command, or the URL of an HTTP hook (2.1.328 names both `command` there).
    label: String,
    duration_ms: Option<u128>,
    error: Option<String>,
}

#[derive(Default)]
struct Hooks(HashMap<String, Vec<Hook>>);

impl Hooks {
    /// The hooks of a `--settings` value: a file, or the JSON itself (the CLI takes both).
    fn load(settings: Option<&str>) -> Hooks {
        let Some(settings) = settings else {
            return Hooks::default();
        };
        let text = if settings.trim_start().starts_with('{') {
            settings.to_string()
        } else {
            match std::fs::read_to_string(settings) {
                Ok(text) => text,
                Err(e) => {
                    log(format!("cannot read --settings {settings}: {e}"));
                    return Hooks::default();
                }
            }
        };
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        let mut by_event = HashMap::new();
        for (event, matchers) in v["hooks"].as_object().into_iter().flatten() {
            let hooks = matchers
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|m| m["hooks"].as_array().cloned().unwrap_or_default())
                .filter_map(|h| {
                    let timeout = Duration::from_secs(h["timeout"].as_u64().unwrap_or(60));
                    match h["type"].as_str()? {
                        "command" => Some(Hook::Command {
                            command: h["command"].as_str()?.to_string(),
                            timeout,
                        }),
                        "http" => Some(Hook::Http {
                            url: h["url"].as_str()?.to_string(),
                            headers: h["headers"]
                                .as_object()
                                .into_iter()
                                .flatten()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                                .collect(),
                            timeout,
                        }),
                        _ => None,
                    }
                })
                .collect();
            by_event.insert(event.clone(), hooks);
        }
        Hooks(by_event)
    }

    fn of(&self, event: &str) -> Vec<Hook> {
        self.0.get(event).cloned().unwrap_or_default()
    }
}

/// Runs an event's hooks side by side; at most `most` for each, when given.
async fn run_hooks(
    http: &reqwest::Client,
    hooks: Vec<Hook>,
    payload: &Value,
    cwd: &Path,
    most: Option<Duration>,
) -> Vec<HookRun> {
    let runs = hooks
        .into_iter()
        .map(|hook| run_hook(http, hook, payload, cwd, most));
    futures::future::join_all(runs).await
}

async fn run_hook(
    http: &reqwest::Client,
    hook: Hook,
    payload: &Value,
    cwd: &Path,
    most: Option<Duration>,
) -> HookRun {
    let started = std::time::Instant::now();
    let capped = |t: Duration| most.map_or(t, |m| t.min(m));
    match hook {
        Hook::Command { command, timeout } => {
            let error = run_command(&command, payload, cwd, capped(timeout))
                .await
                .err();
            HookRun {
                label: command,
                duration_ms: Some(started.elapsed().as_millis()),
                error,
            }
        }
        Hook::Http {
            url,
            headers,
            timeout,
        } => {
            // Header for header what 2.1.328 sends (it posts with axios).
            let mut req = http
                .post(&url)
                .timeout(capped(timeout))
                .header("Accept", "application/json, text/plain, */*")
                .header("Content-Type", "application/json")
                .header("User-Agent", "axios/1.15.2")
                .body(payload.to_string());
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            let error = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    // Read to the end: the server's answer is part of the hook's time.
                    resp.bytes().await.err().map(|e| format!("{url}: {e}"))
                }
                Ok(resp) => Some(format!("HTTP {} from {url}", resp.status().as_u16())),
                Err(e) => Some(format!("{url}: {e}")),
            };
            HookRun {
                label: url,
                duration_ms: None,
                error,
            }
        }
    }
}

/// A command hook: `sh -c COMMAND` in the session's directory, the payload on its stdin.
async fn run_command(
    command: &str,
    payload: &Value,
    cwd: &Path,
    timeout: Duration,
) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env("CLAUDECODE", "1")
        .env("CLAUDE_PROJECT_DIR", cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{command}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(payload.to_string().as_bytes()).await;
    }
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{command}: {status}")),
        Ok(Err(e)) => Err(format!("{command}: {e}")),
        Err(_) => Err(format!("{command}: timed out after {timeout:?}")),
    }
}

// ---------------------------------------------------------------------------------------
// MCP: the servers of `--mcp-config`, reached as 2.1.328 reaches troupe.

/// The client's metadata every stateless request carries, as 2.1.328 sends it.
fn mcp_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MCP_VERSION,
        "io.modelcontextprotocol/clientInfo": {
            "name": "claude-code",
            "title": "Claude Code",
            "version": VERSION,
            "description": "Anthropic's agentic coding tool",
            "websiteUrl": "https://claude.com/claude-code"
        },
        "io.modelcontextprotocol/clientCapabilities": {
            "roots": { "listChanged": true },
            "elicitation": { "form": {}, "url": {} }
        }
    })
}

/// Connects every HTTP server of the `--mcp-config` values (files, or the JSON itself).
async fn connect_mcp(http: reqwest::Client, configs: Vec<String>) {
    let mut servers = Vec::new();
    for config in &configs {
        let text = if config.trim_start().starts_with('{') {
            Ok(config.clone())
        } else {
            std::fs::read_to_string(config).map_err(|e| e.to_string())
        };
        let v: Value = match text.and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                log(format!("--mcp-config {config}: {e}"));
                continue;
            }
        };
        for (name, server) in v["mcpServers"].as_object().into_iter().flatten() {
            let http_type = matches!(server["type"].as_str(), Some("http") | None);
            if let (true, Some(url)) = (http_type, server["url"].as_str()) {
                let headers: Vec<(String, String)> = server["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect();
                servers.push((name.clone(), url.to_string(), headers));
            }
        }
    }
    let connects = servers.iter().map(|(name, url, headers)| {
        let http = http.clone();
        async move {
            if let Err(e) = connect_server(&http, url, headers).await {
                log(format!("MCP server {name} ({url}): {e}"));
            }
        }
    });
    futures::future::join_all(connects).await;
}

/// What 2.1.328 sends at startup (recorded against troupe): `server/discover`, then the
/// prompt and tool lists at once. No session, no `initialize`.
async fn connect_server(
    http: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
) -> Result<(), String> {
    let discover = json!({
        "jsonrpc": "2.0", "id": "server-discover-probe-1", "method": "server/discover",
        "params": { "_meta": mcp_meta() }
    });
    mcp_request(http, url, headers, discover).await?;
    let list = |method: &str, id: u64| {
        mcp_request(
            http,
            url,
            headers,
            json!({
                "method": method, "jsonrpc": "2.0", "id": id,
                "params": { "_meta": mcp_meta() }
            }),
        )
    };
    let (prompts, tools) = tokio::join!(list("prompts/list", 0), list("tools/list", 1));
    prompts?;
    tools?;
    Ok(())
}

/// One JSON-RPC request over streamable HTTP; the answer may come as JSON or as SSE.
async fn mcp_request(
    http: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: Value,
) -> Result<Value, String> {
    let method = body["method"].as_str().unwrap_or_default().to_string();
    let mut req = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("User-Agent", format!("claude-code/{VERSION} (cli)"))
        .header("mcp-method", &method)
        .header("mcp-protocol-version", MCP_VERSION)
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(|e| format!("{method}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("{method}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{method}: HTTP {status}: {text}"));
    }
    let answer = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(text.as_str()))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(|v| v["id"] == body["id"])
        .ok_or_else(|| format!("{method}: no answer in {text:?}"))?;
    if !answer["error"].is_null() {
        return Err(format!("{method}: {}", answer["error"]));
    }
    Ok(answer)
}

// ---------------------------------------------------------------------------------------
// The transcript.

/// Where 2.1.328 writes the transcript of `session` for a CLI started in `cwd`: the config
/// home (`CLAUDE_CONFIG_DIR`, else `~/.claude`), `projects/`, the directory with every
/// character but ASCII letters and digits made `-` (`/tmp/.tmpZ7YEVO/work` is
/// `-tmp--tmpZ7YEVO-work` in `hook-payloads.jsonl`).
fn transcript_path(cwd: &Path, session: &str) -> PathBuf {
    let config_home = std::env::var_os("CLAUDE_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(".claude")
        });
    let munged: String = cwd
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    config_home
        .join("projects")
        .join(munged)
        .join(format!("{session}.jsonl"))
}

struct Transcript {
    path: PathBuf,
    file: Option<std::fs::File>,
    session: String,
    cwd: String,
    /// The uuid of the last record that has one: the next one's `parentUuid`.
    parent: Option<String>,
    /// Records with a uuid so far (a turn's end says how many).
    messages: u64,
}

impl Transcript {
    fn new(path: PathBuf, session: &str, cwd: &Path, resume: bool) -> Transcript {
        // A resumed conversation goes on from its last record.
        let parent = resume
            .then(|| std::fs::read_to_string(&path).ok())
            .flatten()
            .and_then(|text| {
                text.lines()
                    .rev()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find_map(|v| v["uuid"].as_str().map(str::to_string))
            });
        Transcript {
            path,
            file: None,
            session: session.to_string(),
            cwd: cwd.display().to_string(),
            parent,
            messages: 0,
        }
    }

    /// The fields every conversation record ends with.
    fn tail(&self, record: &mut Value) {
        let tail = json!({
            "userType": "external",
            "entrypoint": "cli",
            "cwd": self.cwd,
            "sessionId": self.session,
            "version": VERSION,
            "gitBranch": "HEAD"
        });
        if let (Some(record), Some(tail)) = (record.as_object_mut(), tail.as_object()) {
            record.extend(tail.clone());
        }
    }

    /// Appends one record, a whole line in one write, so a reader never meets half of it.
    /// The file is made with the first record, as 2.1.328 makes it with the first prompt.
    fn append(&mut self, record: &Value) {
        if let Some(uuid) = record["uuid"].as_str() {
            self.parent = Some(uuid.to_string());
            self.messages += 1;
        }
        let mut line = record.to_string();
        line.push('\n');
        if self.file.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            if let Some(dir) = self.path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)
            {
                Ok(f) => self.file = Some(f),
                Err(e) => log(format!("cannot open {}: {e}", self.path.display())),
            }
        }
        if let Some(f) = &mut self.file
            && let Err(e) = f.write_all(line.as_bytes())
        {
            log(format!("cannot write {}: {e}", self.path.display()));
        }
    }

    /// The records that open the file (2.1.328 writes these before its first prompt).
    fn open_records(&mut self, mode: &str) {
        let session = self.session.clone();
        self.append(&json!({ "type": "mode", "mode": "normal", "sessionId": session }));
        self.append(
            &json!({ "type": "permission-mode", "permissionMode": mode, "sessionId": session }),
        );
    }

    fn prompt(&mut self, turn: &Turn, mode: &str, index: u64) {
        let mut r = json!({
            "parentUuid": self.parent, "isSidechain": false, "promptId": turn.prompt_id,
            "type": "user", "message": { "role": "user", "content": turn.prompt },
            "uuid": new_uuid(), "timestamp": now_ts(), "permissionMode": mode,
            "origin": { "kind": "human" }, "promptSource": "typed", "turnOrigin": "human",
            "turnPosition": { "promptIndex": index, "turnIndex": index }
        });
        self.tail(&mut r);
        self.append(&r);
    }

    /// The model's answer with its usage; `partial` is the text streamed before an interrupt
    /// (2.1.328 then writes the usage of the stream's start and marks it aborted).
    fn answer(&mut self, turn: &Turn, model: &str, partial: Option<&str>) {
        let u = turn.plan.usage;
        let (text, stop_reason, usage) = match partial {
            None => (
                turn.plan.answer.as_str(),
                json!("end_turn"),
                json!({
                    "input_tokens": u.input, "cache_creation_input_tokens": u.cache_creation,
                    "cache_read_input_tokens": u.cache_read, "output_tokens": u.output,
                    "output_tokens_details": { "thinking_tokens": 0 },
                    "server_tool_use": { "web_search_requests": 0, "web_fetch_requests": 0 },
                    "service_tier": "standard",
                    "cache_creation": {
                        "ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0
                    },
                    "inference_geo": "", "iterations": [], "speed": "standard",
                    "fallback_credit": null
                }),
            ),
            Some(text) => (
                text,
                Value::Null,
                json!({
                    "input_tokens": u.input, "output_tokens": 1,
                    "cache_creation_input_tokens": u.cache_creation,
                    "cache_read_input_tokens": u.cache_read
                }),
            ),
        };
        let mut message = json!({
            "id": turn.message_id, "type": "message", "role": "assistant", "model": model,
            "content": [{ "type": "text", "text": text }],
            "stop_reason": stop_reason, "stop_sequence": null, "usage": usage
        });
        if partial.is_none() {
            message["stop_details"] = Value::Null;
        }
        let mut r = json!({
            "parentUuid": self.parent, "isSidechain": false, "message": message,
            "apiBlockIndex": 0,
            "requestId": format!("req_scripted_{}", uuid::Uuid::new_v4().simple()),
            "requestRef": new_uuid(), "requestedModel": model, "promptCacheRequested": "5m",
            "type": "assistant", "uuid": new_uuid(), "timestamp": now_ts()
        });
        if partial.is_some() {
            r["isAbortedMidStream"] = json!(true);
        }
        let rest = json!({
            "effort": "medium", "perTurnEffort": "medium", "madeBy": "model",
            "session_id": self.session
        });
        if let (Some(r), Some(rest)) = (r.as_object_mut(), rest.as_object()) {
            r.extend(rest.clone());
        }
        self.tail(&mut r);
        self.append(&r);
    }

    fn interrupted(&mut self, turn: &Turn) {
        let mut r = json!({
            "parentUuid": self.parent, "isSidechain": false, "promptId": turn.prompt_id,
            "type": "user",
            "message": { "role": "user", "content": [{ "type": "text", "text": INTERRUPTED }] },
            "uuid": new_uuid(), "timestamp": now_ts(), "interruptedMessageId": turn.message_id,
            "session_id": self.session
        });
        self.tail(&mut r);
        self.append(&r);
    }

    fn stop_hook_summary(&mut self, runs: &[HookRun]) {
        let infos: Vec<Value> = runs
            .iter()
            .map(|r| match r.duration_ms {
                Some(ms) => json!({ "command": r.label, "durationMs": ms }),
                None => json!({ "command": r.label }),
            })
            .collect();
        let errors: Vec<&String> = runs.iter().filter_map(|r| r.error.as_ref()).collect();
        let failed: Vec<usize> = (0..runs.len())
            .filter(|&i| runs[i].error.is_some())
            .collect();
        let mut r = json!({
            "parentUuid": self.parent, "isSidechain": false, "type": "system",
            "subtype": "stop_hook_summary", "hookCount": runs.len(), "hookInfos": infos,
            "hookErrors": errors, "failedHookErrorIndexes": failed, "hookAdditionalContext": [],
            "preventedContinuation": false, "stopReason": "", "hasOutput": !errors.is_empty(),
            "level": "suggestion", "timestamp": now_ts(), "uuid": new_uuid(),
            "toolUseID": new_uuid(), "session_id": self.session
        });
        self.tail(&mut r);
        self.append(&r);
    }

    /// The turn's end (troupe's turn-end signal), then the session's last prompt.
    fn turn_end(&mut self, turn: &Turn) {
        let uuid = new_uuid();
        let mut r = json!({
            "parentUuid": self.parent, "isSidechain": false, "type": "system",
            "subtype": "turn_duration", "durationMs": turn.started.elapsed().as_millis(),
            "messageCount": self.messages + 1, "timestamp": now_ts(), "uuid": uuid,
            "isMeta": false
        });
        self.tail(&mut r);
        self.append(&r);
        let session = self.session.clone();
        self.append(&json!({
            "type": "last-prompt", "lastPrompt": turn.prompt, "leafUuid": uuid, "sessionId": session
        }));
    }
}

// ---------------------------------------------------------------------------------------
// Keys: what the terminal sends, read raw.

#[derive(Debug, PartialEq)]
enum Key {
    Text(String),
    Enter,
    Escape,
    /// Ctrl-U: troupe's key for emptying the input box, a line at a time.
    KillLine,
    Backspace,
}

const PASTE_START: &[u8] = b"\x1b[200~";
const PASTE_END: &[u8] = b"\x1b[201~";

#[derive(Default)]
struct Keys {
    /// Bytes of a sequence (or a UTF-8 character) not complete yet.
    pending: Vec<u8>,
    /// Inside a bracketed paste: its text so far.
    paste: Option<Vec<u8>>,
    /// A lone ESC ends the input: when to take it for the Escape key.
    escape_at: Option<Instant>,
}

impl Keys {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Key> {
        self.escape_at = None;
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(bytes);
        let mut keys = Vec::new();
        let mut i = 0;
        while i < buf.len() {
            let rest = &buf[i..];
            if let Some(paste) = &mut self.paste {
                // Everything in a paste is text, newlines too, until its end mark.
                match find(rest, PASTE_END) {
                    Some(at) => {
                        paste.extend_from_slice(&rest[..at]);
                        let text = pasted_text(&std::mem::take(paste));
                        self.paste = None;
                        keys.push(Key::Text(text));
                        i += at + PASTE_END.len();
                    }
                    None => {
                        // The end mark may be cut across reads: keep what could start it.
                        let keep = (1..PASTE_END.len())
                            .rev()
                            .find(|&n| rest.ends_with(&PASTE_END[..n]))
                            .unwrap_or(0);
                        paste.extend_from_slice(&rest[..rest.len() - keep]);
                        self.pending = rest[rest.len() - keep..].to_vec();
                        return keys;
                    }
                }
                continue;
            }
            match rest[0] {
                0x1b => match rest.get(1) {
                    None => {
                        self.pending = vec![0x1b];
                        self.escape_at = Some(Instant::now() + ESCAPE_WAIT);
                        return keys;
                    }
                    Some(b'[') => match rest[2..].iter().position(|b| (0x40..=0x7e).contains(b)) {
                        Some(end) => {
                            let seq = &rest[..end + 3];
                            if seq == PASTE_START {
                                self.paste = Some(Vec::new());
                            }
                            // Arrows, focus reports and the like change nothing here.
                            i += seq.len();
                        }
                        None if rest.len() < 32 => {
                            self.pending = rest.to_vec();
                            return keys;
                        }
                        None => i += 2,
                    },
                    Some(b'O') if rest.len() < 3 => {
                        self.pending = rest.to_vec();
                        return keys;
                    }
                    Some(b'O') => i += 3,
                    // ESC before anything else is the Escape key (then that key).
                    Some(_) => {
                        keys.push(Key::Escape);
                        i += 1;
                    }
                },
                b'\r' => {
                    keys.push(Key::Enter);
                    i += 1;
                }
                b'\n' | b'\t' => {
                    keys.push(Key::Text((rest[0] as char).to_string()));
                    i += 1;
                }
                0x15 => {
                    keys.push(Key::KillLine);
                    i += 1;
                }
                0x7f | 0x08 => {
                    keys.push(Key::Backspace);
                    i += 1;
                }
                c if c < 0x20 => i += 1,
                _ => {
                    let end = rest
                        .iter()
                        .position(|&b| b < 0x20 || b == 0x7f)
                        .unwrap_or(rest.len());
                    let run = &rest[..end];
                    match std::str::from_utf8(run) {
                        Ok(text) => keys.push(Key::Text(text.to_string())),
                        // A character cut across reads: the rest comes with the next one.
                        Err(e) if e.error_len().is_none() && end == rest.len() => {
                            let (whole, cut) = run.split_at(e.valid_up_to());
                            if !whole.is_empty() {
                                keys.push(Key::Text(String::from_utf8_lossy(whole).into()));
                            }
                            self.pending = cut.to_vec();
                            return keys;
                        }
                        Err(_) => keys.push(Key::Text(String::from_utf8_lossy(run).into())),
                    }
                    i += end;
                }
            }
        }
        keys
    }

    /// The lone ESC waited long enough: it was the Escape key.
    fn escape_due(&mut self) -> Vec<Key> {
        self.escape_at = None;
        if self.pending == [0x1b] {
            self.pending.clear();
            vec![Key::Escape]
        } else {
            Vec::new()
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A paste's text: tmux sends its line ends as `\r` (`paste-buffer` without `-r`).
fn pasted_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| matches!(c, '\n' | '\t') || !c.is_control())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The terminal: raw input, and the screen.

/// The terminal in raw mode for as long as this lives: bytes arrive as typed (no line
/// editing, no signals from Ctrl-C, `\r` not made `\n`).
struct RawMode(Option<libc::termios>);

impl RawMode {
    fn enter() -> RawMode {
        // SAFETY: tcgetattr fills the termios it is given when it returns 0; both calls only
        // touch this process's terminal settings.
        unsafe {
            let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
            if libc::tcgetattr(0, saved.as_mut_ptr()) != 0 {
                return RawMode(None);
            }
            let saved = saved.assume_init();
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(0, libc::TCSANOW, &raw);
            RawMode(Some(saved))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores settings read from this same terminal.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, saved) };
        }
    }
}

/// Columns and rows of the terminal (tmux gives troupe's panes 200x50).
fn term_size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ fills the winsize it is given when it returns 0.
    unsafe {
        let mut ws = std::mem::zeroed::<libc::winsize>();
        if libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0 {
            (ws.ws_col as usize, ws.ws_row as usize)
        } else {
            (200, 50)
        }
    }
}

fn write_out(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// What the pane shows, drawn as 2.1.328 lays it out (`screens/01-idle.txt`): the logo and
/// model at the top, the conversation, then the effort line, the input box between two
/// rules, and the footer naming the permission mode ("esc to interrupt" while busy).
struct Screen {
    header: [String; 4],
    /// The conversation, a line each (wrapped when drawn).
    history: Vec<String>,
    input: String,
    mode_line: String,
}

impl Screen {
    fn new(model: &str, cwd: &Path, mode: &str) -> Screen {
        let mode_line = match mode {
            "bypassPermissions" => "⏵⏵ bypass permissions on (shift+tab to cycle)",
            "acceptEdits" => "⏵⏵ accept edits on (shift+tab to cycle)",
            "plan" => "⏸ plan mode on (shift+tab to cycle)",
            "auto" => "⏵⏵ auto mode on (shift+tab to cycle)",
            _ => "⏸ manual mode on · ? for shortcuts",
        };
        Screen {
            header: [
                String::new(),
                format!(" ▐▛███▛█   Claude Code v{VERSION}"),
                format!("▝▜██████▀  {} · API Usage Billing", model_display(model)),
                format!(" ▝▝   ▝▝   {}", cwd.display()),
            ],
            history: Vec::new(),
            input: String::new(),
            mode_line: mode_line.to_string(),
        }
    }

    /// Adds a block to the conversation: a blank line, then `mark` before its first line.
    fn say(&mut self, mark: &str, text: &str) {
        self.history.push(String::new());
        for (i, line) in text.split('\n').enumerate() {
            let lead = if i == 0 { mark } else { " " };
            self.history.push(format!("{lead} {line}"));
        }
    }

    /// Writes every row in place (never a cleared screen, so a capture never finds it blank).
    fn draw(&self, busy: bool) {
        let (width, height) = term_size();
        let rule = "─".repeat(width);
        let wrap = |line: &str| -> Vec<String> {
            let chars: Vec<char> = line.chars().collect();
            if chars.is_empty() {
                return vec![String::new()];
            }
            chars.chunks(width).map(|c| c.iter().collect()).collect()
        };
        let mut body: Vec<String> = self.history.iter().flat_map(|l| wrap(l)).collect();
        if busy {
            // 2.1.328 shows a spinner and a tip while a turn runs, not the streamed text
            // (`screens/06-busy-thinking.txt`).
            body.extend([
                String::new(),
                "✻ Sautéing…".to_string(),
                "  ⎿  Tip: Use /theme to change the color theme".to_string(),
            ]);
        }
        let effort = "◐ medium · /effort";
        let mut bottom = vec![
            format!(
                "{}{effort}  ",
                " ".repeat(width.saturating_sub(effort.chars().count() + 2))
            ),
            rule.clone(),
        ];
        // The first line after "❯" and a no-break space, as 2.1.328 draws it. A long text
        // shows its end only, so the box never pushes the rest off the screen.
        let mut input = Vec::new();
        for (i, line) in self.input.split('\n').enumerate() {
            let lead = if i == 0 { "❯\u{a0}" } else { "  " };
            input.extend(wrap(&format!("{lead}{line}")));
        }
        let hidden = input.len().saturating_sub(INPUT_ROWS);
        bottom.extend(input.drain(hidden..));
        let cursor_row = bottom.len();
        let cursor_col = bottom.last().map_or(0, |l| l.chars().count()) + 1;
        bottom.push(rule);
        let busy_part = if busy { " · esc to interrupt" } else { "" };
        bottom.push(format!("  {}{busy_part} · ← for agents", self.mode_line));

        let room = height.saturating_sub(self.header.len() + bottom.len());
        let skip = body.len().saturating_sub(room);
        let mut rows: Vec<String> = self.header.to_vec();
        rows.extend(body.into_iter().skip(skip));
        rows.resize(
            height.saturating_sub(bottom.len()).max(rows.len()),
            String::new(),
        );
        let first_bottom_row = rows.len();
        rows.extend(bottom);
        let skip_rows = rows.len().saturating_sub(height);
        let mut out = String::new();
        for (row, line) in rows.iter().skip(skip_rows).enumerate() {
            let line: String = line.chars().take(width).collect();
            out.push_str(&format!("\x1b[{};1H{line}\x1b[K", row + 1));
        }
        let cursor = (first_bottom_row + cursor_row).saturating_sub(skip_rows);
        out.push_str(&format!("\x1b[{cursor};{}H", cursor_col.min(width)));
        write_out(out.as_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// The session.

struct Turn {
    /// Tells this turn's late hook answers from another's.
    serial: u64,
    prompt: String,
    prompt_id: String,
    message_id: String,
    started: Instant,
    plan: Plan,
    /// The conversation's length before the prompt was shown (to take it back).
    history_before: usize,
}

enum Phase {
    Idle,
    /// The model "works": the answer is due at `due`.
    Working {
        turn: Turn,
        due: Instant,
    },
    /// The answer is written; the Stop hooks run.
    Stopping {
        turn: Turn,
    },
}

/// What the spawned work tells the session.
enum Note {
    StopHooksRan { serial: u64, runs: Vec<HookRun> },
}

struct Cli {
    session_id: String,
    cwd: PathBuf,
    model: String,
    mode: String,
    script: Script,
    hooks: Hooks,
    http: reqwest::Client,
    transcript: Transcript,
    screen: Screen,
    keys: Keys,
    phase: Phase,
    /// Prompts submitted while a turn ran, each run as a turn of its own after it.
    queue: VecDeque<String>,
    prompts: u64,
    last_prompt_id: Option<String>,
    notes: mpsc::UnboundedSender<Note>,
}

async fn run(args: Args) {
    let _ = LOG.set(std::env::var_os("SCRIPTED_CLI_LOG").map(PathBuf::from));
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let session_id = args.session_id.clone().unwrap_or_else(new_uuid);
    let model = model_id(args.model.as_deref());
    let mode = args
        .permission_mode
        .clone()
        .unwrap_or_else(|| "auto".into());
    let path = transcript_path(&cwd, &session_id);
    // No idle connections kept: a kept one would wake this process when it times out.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("an HTTP client");
    // Before anything else: a hangup before its handler is in place would end the process
    // without its SessionEnd.
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut sigint = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut resize = signal(SignalKind::window_change()).expect("SIGWINCH handler");
    let (notes, mut noted) = mpsc::unbounded_channel();
    let mut cli = Cli {
        transcript: Transcript::new(path, &session_id, &cwd, args.resume),
        screen: Screen::new(&model, &cwd, &mode),
        session_id,
        cwd,
        model,
        mode,
        script: Script::from_env(),
        hooks: Hooks::load(args.settings.as_deref()),
        http,
        keys: Keys::default(),
        phase: Phase::Idle,
        queue: VecDeque::new(),
        prompts: 0,
        last_prompt_id: None,
        notes,
    };

    let raw = RawMode::enter();
    // Bracketed paste on (tmux brackets a `paste-buffer -p` only for a program that asked),
    // line wrap off (the screen wraps its own lines), a clean screen to draw on.
    write_out(b"\x1b[?2004h\x1b[?7l\x1b[2J");
    cli.redraw();

    // The terminal is read on a thread of its own, blocked in read(2) until a key comes.
    let (input_tx, mut input) = mpsc::unbounded_channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 16384];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) if input_tx.send(buf[..n].to_vec()).is_ok() => {}
                Ok(_) => break,
                // A signal (a resize) broke into the read.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });

    tokio::spawn(connect_mcp(cli.http.clone(), args.mcp_configs.clone()));
    cli.session_start(args.resume);

    let pane_gone = loop {
        let due = match &cli.phase {
            Phase::Working { due, .. } => Some(*due),
            _ => None,
        };
        tokio::select! {
            bytes = input.recv() => match bytes {
                Some(bytes) => {
                    let keys = cli.keys.feed(&bytes);
                    cli.on_keys(keys);
                }
                None => break true,
            },
            () = sleep_until(cli.keys.escape_at) => {
                let keys = cli.keys.escape_due();
                cli.on_keys(keys);
            }
            () = sleep_until(due) => cli.answer(),
            Some(note) = noted.recv() => match note {
                Note::StopHooksRan { serial, runs } => cli.close_turn(serial, runs),
            },
            _ = resize.recv() => cli.redraw(),
            // troupe ends an instance by killing its tmux session: the pane hangs up.
            _ = hangup.recv() => break true,
            _ = terminate.recv() => break false,
            _ = sigint.recv() => break false,
        }
    };
    cli.session_end().await;
    if !pane_gone {
        write_out(b"\x1b[?2004l\x1b[?7h\r\n");
    }
    drop(raw);
    // The terminal thread may still be blocked in read(2).
    std::process::exit(0);
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Cli {
    fn busy(&self) -> bool {
        !matches!(self.phase, Phase::Idle)
    }

    fn redraw(&self) {
        self.screen.draw(self.busy());
    }

    /// A hook payload: the fields 2.1.328 starts every payload with, then `rest` in its
    /// order (`hook-payloads.jsonl`).
    fn payload(&self, rest: Value) -> Value {
        let mut p = json!({
            "session_id": self.session_id,
            "transcript_path": self.transcript.path.display().to_string(),
            "cwd": self.cwd.display().to_string()
        });
        if let (Some(p), Value::Object(rest)) = (p.as_object_mut(), rest) {
            p.extend(rest);
        }
        p
    }

    /// Runs an event's hooks in the background: the session goes on meanwhile.
    fn fire(&self, event: &str, payload: Value) {
        let hooks = self.hooks.of(event);
        if hooks.is_empty() {
            return;
        }
        let (http, cwd, event) = (self.http.clone(), self.cwd.clone(), event.to_string());
        tokio::spawn(async move {
            for run in run_hooks(&http, hooks, &payload, &cwd, None).await {
                if let Some(e) = run.error {
                    log(format!("{event} hook: {e}"));
                }
            }
        });
    }

    fn session_start(&self, resume: bool) {
        let p = self.payload(json!({
            "hook_event_name": "SessionStart",
            "source": if resume { "resume" } else { "startup" },
            "model": self.model
        }));
        self.fire("SessionStart", p);
    }

    /// SessionEnd, waited for (briefly): the process ends right after.
    async fn session_end(&self) {
        let hooks = self.hooks.of("SessionEnd");
        if hooks.is_empty() {
            return;
        }
        // troupe ends a session by killing its tmux session; 2.1.328 then reports "other".
        let mut rest = serde_json::Map::new();
        if let Some(id) = &self.last_prompt_id {
            rest.insert("prompt_id".into(), json!(id));
        }
        rest.insert("hook_event_name".into(), json!("SessionEnd"));
        rest.insert("reason".into(), json!("other"));
        let p = self.payload(Value::Object(rest));
        for run in run_hooks(&self.http, hooks, &p, &self.cwd, Some(SESSION_END_MOST)).await {
            if let Some(e) = run.error {
                log(format!("SessionEnd hook: {e}"));
            }
        }
    }

    fn on_keys(&mut self, keys: Vec<Key>) {
        if keys.is_empty() {
            return;
        }
        for key in keys {
            match key {
                Key::Text(text) => self.screen.input.push_str(&text),
                Key::Backspace => {
                    self.screen.input.pop();
                }
                Key::KillLine => {
                    // One line a press, the last one with the line end before it.
                    let input = &mut self.screen.input;
                    let cut = input.rfind('\n').unwrap_or(0);
                    input.truncate(cut);
                }
                Key::Enter => {
                    let text = self.screen.input.trim_end().to_string();
                    if !text.trim().is_empty() {
                        self.screen.input.clear();
                        self.submit(text);
                    }
                }
                Key::Escape => self.escape(),
            }
        }
        self.redraw();
    }

    fn submit(&mut self, prompt: String) {
        if self.busy() {
            self.queue.push_back(prompt);
        } else {
            self.start_turn(prompt);
        }
    }

    fn start_turn(&mut self, prompt: String) {
        self.prompts += 1;
        let serial = self.prompts;
        // Only the last screenful is ever drawn: a long run keeps no more than that.
        let history = &mut self.screen.history;
        history.drain(..history.len().saturating_sub(HISTORY_LINES));
        let turn = Turn {
            serial,
            prompt_id: new_uuid(),
            message_id: format!("msg_scripted_{}", uuid::Uuid::new_v4().simple()),
            started: Instant::now(),
            plan: self.script.plan(&prompt),
            history_before: self.screen.history.len(),
            prompt,
        };
        if self.transcript.file.is_none() {
            self.transcript.open_records(&self.mode);
        }
        self.transcript.prompt(&turn, &self.mode, serial);
        self.last_prompt_id = Some(turn.prompt_id.clone());
        // troupe installs none (the turn would wait for it), but a benchmark may.
        let p = self.payload(json!({
            "prompt_id": turn.prompt_id,
            "permission_mode": self.mode,
            "hook_event_name": "UserPromptSubmit",
            "prompt": turn.prompt
        }));
        self.fire("UserPromptSubmit", p);
        self.screen.say("❯", &turn.prompt);
        let due = turn.started + turn.plan.delay;
        self.phase = Phase::Working { turn, due };
        self.redraw();
    }

    /// The answer is due: write it, then run the Stop hooks before the turn ends.
    fn answer(&mut self) {
        if !matches!(self.phase, Phase::Working { .. }) {
            return;
        }
        let Phase::Working { turn, .. } = std::mem::replace(&mut self.phase, Phase::Idle) else {
            unreachable!("matched above")
        };
        self.transcript.answer(&turn, &self.model, None);
        self.screen.say("●", &turn.plan.answer);
        let hooks = self.hooks.of("Stop");
        let serial = turn.serial;
        if hooks.is_empty() {
            self.phase = Phase::Stopping { turn };
            self.close_turn(serial, Vec::new());
            return;
        }
        // 2.1.328's Stop payload, field for field; troupe takes the answer from it.
        let p = self.payload(json!({
            "prompt_id": turn.prompt_id,
            "permission_mode": self.mode,
            "effort": { "level": "medium" },
            "hook_event_name": "Stop",
            "stop_hook_active": false,
            "last_assistant_message": turn.plan.answer,
            "background_tasks": [],
            "session_crons": []
        }));
        let (http, cwd, notes) = (self.http.clone(), self.cwd.clone(), self.notes.clone());
        tokio::spawn(async move {
            let runs = run_hooks(&http, hooks, &p, &cwd, None).await;
            let _ = notes.send(Note::StopHooksRan { serial, runs });
        });
        self.phase = Phase::Stopping { turn };
        self.redraw();
    }

    /// The Stop hooks ran: the turn ends, and a prompt that waited starts.
    fn close_turn(&mut self, serial: u64, runs: Vec<HookRun>) {
        let stopping = matches!(&self.phase, Phase::Stopping { turn } if turn.serial == serial);
        if !stopping {
            return;
        }
        let Phase::Stopping { turn } = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        for e in runs.iter().filter_map(|r| r.error.as_ref()) {
            log(format!("Stop hook: {e}"));
        }
        if !runs.is_empty() {
            self.transcript.stop_hook_summary(&runs);
        }
        self.transcript.turn_end(&turn);
        let secs = turn.started.elapsed().as_secs();
        self.screen.say("✻", &format!("Sautéed for {secs}s"));
        self.next_or_idle();
    }

    fn next_or_idle(&mut self) {
        match self.queue.pop_front() {
            Some(prompt) => self.start_turn(prompt),
            None => self.redraw(),
        }
    }

    /// Escape while the model works: before its first token the prompt goes back into the
    /// input box and nothing more is written; after it, the turn is cut off and the
    /// conversation keeps what was streamed (2.1.328, both recorded).
    fn escape(&mut self) {
        // Idle, or only the Stop hooks left: nothing to stop.
        if !matches!(self.phase, Phase::Working { .. }) {
            return;
        }
        let Phase::Working { turn, .. } = std::mem::replace(&mut self.phase, Phase::Idle) else {
            unreachable!("matched above")
        };
        let elapsed = turn.started.elapsed();
        if elapsed < turn.plan.first_token {
            self.screen.history.truncate(turn.history_before);
            self.screen.input = turn.prompt;
            self.next_or_idle();
            return;
        }
        let streaming = turn.plan.delay.saturating_sub(turn.plan.first_token);
        let fraction = if streaming.is_zero() {
            1.0
        } else {
            (elapsed - turn.plan.first_token).as_secs_f64() / streaming.as_secs_f64()
        };
        let partial = streamed(&turn.plan.answer, fraction.min(1.0));
        self.transcript.answer(&turn, &self.model, Some(&partial));
        self.transcript.interrupted(&turn);
        self.screen.say("●", partial.trim_end());
        self.screen
            .history
            .push("  ⎿  Interrupted · What should Claude do instead?".into());
        self.next_or_idle();
    }
}
