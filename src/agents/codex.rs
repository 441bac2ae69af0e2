//! OpenAI's Codex CLI: how troupe launches it, the per-instance CODEX_HOME it runs in, the
//! hooks it installs and trusts, how it reads the rollout file, and the few screen patterns
//! only the screen can tell (checked against the 0.169.0 captures in tests).
//!
//! The user's own Codex configuration is never written. Each instance gets a CODEX_HOME of
//! its own (an overlay): the user's `config.toml` with troupe's additions (the instance's
//! MCP connection to troupe, its hooks' trust, its work directory's trust, its system prompt),
//! and links to the user's login and instructions. Its sessions live there too, so `codex
//! resume` finds them.

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use toml_edit::{DocumentMut, Item, Table, value};

use super::versions::{Tested, Version};
use super::{
    Agent, AgentEvent, Block, Habits, Key, LaunchPlan, LaunchSpec, Record, RecordParser, Screen,
    ScreenKind, TypeStep, Usage, write_json,
};
use crate::config::PermissionMode;

/// The hooks troupe installs, with the name Codex keys their trust by.
///
/// PermissionRequest (verified on 0.169.0, tests/fixtures/codex-0.169.0/README.md) fires when
/// Codex would ask its person, before its approval dialog opens: `tool_name` `Bash` with
/// `tool_input` `{command, description}` for a shell command the model asked to run outside
/// the sandbox. The hook's stdout answers it in Claude Code's shape,
/// `{"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior":
/// "allow"}}}` or `"deny"` with a `message` the model reads; `{}` leaves the dialog to open.
pub const HOOK_EVENTS: &[(&str, &str)] = &[
    ("SessionStart", "session_start"),
    ("UserPromptSubmit", "user_prompt_submit"),
    ("Stop", "stop"),
    ("PermissionRequest", "permission_request"),
    ("SessionEnd", "session_end"),
];

/// Seconds Codex gives troupe's answer to a PermissionRequest hook: troupe holds the question
/// until someone decides, within its --permission-wait (at most an hour), so Codex must not
/// give up first. 0.169.0 takes it unclamped.
pub const PERMISSION_HOOK_TIMEOUT: u64 = 3700;

/// Seconds a hook may take. Codex 0.169 clamps a SessionEnd hook to 3 s (and warns on screen
/// about a longer one); `troupe hook` itself gives up on a reporting hook after 3 s.
fn hook_timeout(event: &str) -> u64 {
    match event {
        "SessionEnd" => 3,
        "PermissionRequest" => PERMISSION_HOOK_TIMEOUT,
        _ => 10,
    }
}

/// The sandbox modes Codex knows.
pub const SANDBOX_MODES: &[&str] = &["read-only", "workspace-write", "danger-full-access"];

/// The model an instance runs when none is asked for.
pub const DEFAULT_MODEL: &str = "gpt-5";

/// Files and folders of the user's CODEX_HOME an instance shares (linked, not copied, so a
/// refreshed login reaches both): the login, global instructions, prompts and skills.
const SHARED_FILES: &[&str] = &["auth.json", "AGENTS.md", "prompts", "skills"];

/// Codex's trust hash of one command hook: SHA-256 over the hook's identity as compact JSON
/// with sorted keys (the event's snake-case name and the handler with Codex's defaults
/// filled in). Verified against the hashes Codex 0.169.0 writes when a person trusts hooks.
pub fn hook_trust_hash(event_key: &str, command: &str, timeout: u64) -> String {
    // Keys in sorted order: serde_json keeps insertion order here.
    let mut handler = Map::new();
    handler.insert("async".into(), json!(false));
    handler.insert("command".into(), json!(command));
    handler.insert("timeout".into(), json!(timeout));
    handler.insert("type".into(), json!("command"));
    let mut identity = Map::new();
    identity.insert("event_name".into(), json!(event_key));
    identity.insert("hooks".into(), json!([Value::Object(handler)]));
    let text = serde_json::to_string(&Value::Object(identity)).expect("plain JSON");
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The overlay's `hooks.json`: every event runs the hook command, which posts the payload to
/// troupe with the instance's token.
pub fn hooks_file(hook_command: &str) -> Value {
    let mut hooks = Map::new();
    for (event, _) in HOOK_EVENTS {
        hooks.insert(
            event.to_string(),
            json!([{ "hooks": [{
                "type": "command",
                "command": hook_command,
                "timeout": hook_timeout(event),
            }] }]),
        );
    }
    json!({ "hooks": hooks })
}

/// What troupe adds to (or replaces in) the user's config for one instance.
pub struct Overlay<'a> {
    pub hooks_path: &'a Path,
    pub hook_command: &'a str,
    pub workdir: &'a Path,
    pub mcp_url: &'a str,
    pub instance_id: &'a str,
    pub token: &'a str,
    pub system_prompt: &'a str,
}

/// The instance's `config.toml`: the user's, with their own hooks and any `troupe` MCP entry
/// removed (an instance runs troupe's hooks, and reaches troupe as itself), and troupe's
/// additions.
pub fn overlay_config(user_config: &str, o: &Overlay<'_>) -> Result<String, String> {
    let mut doc: DocumentMut = user_config.parse().map_err(|e| format!("{e}"))?;
    doc.remove("hooks");
    if !o.system_prompt.is_empty() {
        doc["developer_instructions"] = value(o.system_prompt);
    }
    // An instance is started by troupe, not by a person who could answer an update prompt.
    doc["check_for_update_on_startup"] = value(false);

    let projects = table(&mut doc, "projects");
    let mut project = Table::new();
    project["trust_level"] = value("trusted");
    projects.insert(&o.workdir.display().to_string(), Item::Table(project));

    let servers = table(&mut doc, "mcp_servers");
    let mut troupe = Table::new();
    troupe["url"] = value(format!("{}/mcp", o.mcp_url));
    let mut headers = toml_edit::InlineTable::new();
    headers.insert("X-Troupe-Instance", o.instance_id.into());
    headers.insert("Authorization", format!("Bearer {}", o.token).into());
    troupe["http_headers"] = value(headers);
    // troupe's tools are what an instance is started to use; in a sandbox with approvals
    // off Codex would refuse them ("requires approval, but approval policy is never").
    troupe["default_tools_approval_mode"] = value("approve");
    servers.insert("troupe", Item::Table(troupe));

    let mut state = Table::new();
    state.set_implicit(true);
    for (event, key) in HOOK_EVENTS {
        let mut entry = Table::new();
        entry["trusted_hash"] = value(hook_trust_hash(key, o.hook_command, hook_timeout(event)));
        state.insert(
            &format!("{}:{key}:0:0", o.hooks_path.display()),
            Item::Table(entry),
        );
    }
    let mut hooks = Table::new();
    hooks.set_implicit(true);
    hooks.insert("state", Item::Table(state));
    doc.insert("hooks", Item::Table(hooks));
    Ok(doc.to_string())
}

fn table<'d>(doc: &'d mut DocumentMut, key: &str) -> &'d mut Table {
    if !doc.get(key).is_some_and(Item::is_table) {
        let mut t = Table::new();
        t.set_implicit(true);
        doc.insert(key, Item::Table(t));
    }
    doc[key].as_table_mut().expect("just made a table")
}

/// Where the user keeps Codex's configuration: CODEX_HOME, else `~/.codex`, from the
/// instance's environment first, then troupe's own.
pub fn user_codex_home(env: &[(String, String)]) -> Option<PathBuf> {
    let var = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    };
    var("CODEX_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| Path::new(&h).join(".codex")))
}

/// The command line for one launch. Codex 0.169 has two approval policies, `never` and
/// `on-request`: in `on-request` the sandbox holds every command, and Codex asks (its
/// PermissionRequest hook, then its dialog) when the model asks to run one outside it
/// (`sandbox_permissions: "require_escalated"`), as its instructions tell it to when the
/// sandbox stops a command. So the prompting modes run sandboxed with `on-request`.
pub fn argv(
    bin: &str,
    session_id: &str,
    resume: bool,
    model: &str,
    permission_mode: PermissionMode,
    sandbox: Option<&str>,
) -> Vec<String> {
    let mut argv = vec![bin.to_string()];
    if resume && !session_id.is_empty() {
        argv.extend(["resume".into(), session_id.to_string()]);
    }
    // No shared background server: an instance's processes live and die with its pane.
    argv.extend(["--no-daemon".into(), "-m".into(), model.to_string()]);
    let (sandbox, approval) = match (permission_mode, sandbox) {
        (PermissionMode::Skip, None) => {
            argv.push("--dangerously-bypass-approvals-and-sandbox".into());
            return argv;
        }
        // Sandboxed, but nobody is asked: a refused command is the model's to handle.
        (PermissionMode::Skip, Some(s)) => (s, "never"),
        (PermissionMode::AcceptEdits, s) => (s.unwrap_or("workspace-write"), "on-request"),
        (PermissionMode::Default, s) => (s.unwrap_or("read-only"), "on-request"),
        (PermissionMode::Plan, _) => ("read-only", "never"),
    };
    argv.extend([
        "-s".into(),
        sandbox.to_string(),
        "-a".into(),
        approval.to_string(),
    ]);
    argv
}

/// The model name Codex is launched with: an OpenAI model id (`gpt-5`, `o3`, `gpt-5-codex`)
/// or whatever a custom provider calls its models, as long as it is a plain name.
pub fn cli_model(requested: &str) -> Option<String> {
    let m = requested.trim();
    let plain = !m.is_empty()
        && m.len() <= 64
        && !m.starts_with(['-', '.'])
        && m.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
    // Claude's names belong to the other agent: a team member `codex/sonnet` is a mistake.
    let claude = super::claude::cli_model(m).is_some();
    (plain && !claude).then(|| m.to_string())
}

/// Reads a rollout file. Codex writes a line per event: the user's message
/// (`item_completed` UserMessage, with the turn id), each response item (assistant messages,
/// tool calls and their output), a `token_usage_record` per model response, and the turn's
/// end (`task_complete`) or its interruption (`turn_aborted`). Usage lines name no model:
/// the latest `turn_context` says which one ran.
#[derive(Debug, Default)]
pub struct Rollout {
    model: String,
}

impl RecordParser for Rollout {
    fn parse(&mut self, line: &str) -> Record {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Record::Other;
        };
        let ts = v["timestamp"].as_str().unwrap_or_default().to_string();
        let p = &v["payload"];
        match (v["type"].as_str(), p["type"].as_str()) {
            (Some("turn_context"), _) => {
                if let Some(model) = p["model"].as_str() {
                    self.model = model.to_string();
                }
                Record::Other
            }
            (Some("event_msg"), Some("item_completed")) if p["item"]["type"] == "UserMessage" => {
                Record::Prompt {
                    uuid: text(&p["item"]["id"]),
                    prompt_id: p["turn_id"].as_str().map(str::to_string),
                    text: texts(&p["item"]["content"]),
                    ts,
                }
            }
            (Some("event_msg"), Some("task_complete")) => Record::TurnEnd {
                uuid: format!("end:{}", text(&p["turn_id"])),
                ts,
            },
            (Some("event_msg"), Some("turn_aborted")) => Record::Interrupted {
                uuid: format!("aborted:{}", text(&p["turn_id"])),
                prompt_id: p["turn_id"].as_str().map(str::to_string),
            },
            (Some("response_item"), Some("message")) if p["role"] == "assistant" => {
                let id = text(&p["id"]);
                self.assistant(id.clone(), id, ts, vec![Block::Text(texts(&p["content"]))])
            }
            (Some("response_item"), Some(kind @ ("function_call" | "custom_tool_call"))) => {
                self.tool_call(p, kind, ts)
            }
            (Some("response_item"), Some("function_call_output" | "custom_tool_call_output")) => {
                tool_output(p, ts)
            }
            (Some("token_usage_record"), _) => self.usage(p, ts),
            (Some("event_msg"), Some("error")) => {
                let id = format!("error:{ts}");
                let mut record =
                    self.assistant(id.clone(), id, ts, vec![Block::Text(text(&p["message"]))]);
                if let Record::Assistant { api_error, .. } = &mut record {
                    *api_error = true;
                }
                record
            }
            _ => Record::Other,
        }
    }
}

impl Rollout {
    /// A line of the model's, billed to the model of the latest turn context.
    fn assistant(
        &self,
        uuid: String,
        message_id: String,
        ts: String,
        blocks: Vec<Block>,
    ) -> Record {
        Record::Assistant {
            uuid,
            ts,
            message_id,
            model: self.model.clone(),
            blocks,
            usage: None,
            synthetic: false,
            api_error: false,
        }
    }

    fn tool_call(&self, p: &Value, kind: &str, ts: String) -> Record {
        let call = format!("call:{}", text(&p["call_id"]));
        let raw = if kind == "function_call" {
            &p["arguments"]
        } else {
            &p["input"]
        };
        // Function arguments arrive as JSON text.
        let input = raw
            .as_str()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_else(|| raw.clone());
        // An MCP tool is named within its server's namespace (`mcp__troupe`).
        let name = match p["namespace"].as_str() {
            Some(ns) => format!("{ns}__{}", text(&p["name"])),
            None => text(&p["name"]),
        };
        self.assistant(call.clone(), call, ts, vec![Block::ToolUse { name, input }])
    }

    fn usage(&self, p: &Value, ts: String) -> Record {
        let u = &p["usage"];
        let n = |k: &str| u[k].as_i64().unwrap_or(0);
        // OpenAI counts cached input inside input_tokens; troupe bills them apart.
        let cached = n("cached_input_tokens");
        let id = text(&p["response_id"]);
        let mut record = self.assistant(format!("usage:{id}"), id, ts, Vec::new());
        if let Record::Assistant { usage, .. } = &mut record {
            *usage = Some(Usage {
                input: (n("input_tokens") - cached).max(0),
                output: n("output_tokens"),
                cache_creation: n("cache_write_input_tokens"),
                cache_read: cached,
            });
        }
        record
    }
}

fn tool_output(p: &Value, ts: String) -> Record {
    let output = &p["output"];
    let said = match output {
        Value::String(t) => t.clone(),
        Value::Object(_) if output["content"].is_string() => text(&output["content"]),
        other => texts(other),
    };
    Record::ToolResult {
        uuid: format!("output:{}", text(&p["call_id"])),
        text: said,
        ts,
    }
}

/// A string field, or empty.
fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The text parts of a message's content, joined.
fn texts(content: &Value) -> String {
    match content {
        Value::String(t) => t.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The Codex versions troupe's tests run, each with captures in `tests/fixtures/`.
pub const TESTED: Tested = Tested {
    product: "Codex",
    versions: &[Version(0, 169, 0)],
};

/// What Codex's screen shows, for the few things only the screen tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodexScreen {
    /// "Hooks need review": troupe's hooks were not trusted (their trust hash no longer
    /// matches what this Codex computes).
    HooksReview,
    /// "Do you trust the contents of this directory?"
    TrustDialog,
    /// An approval prompt for a command or an edit.
    ApprovalPrompt,
    Busy,
    Ready,
    Unknown,
}

/// The trust dialog's choices that trust the folder: Codex 0.169's words (from its binary),
/// and the older dialog's.
const TRUST_YES: &[&str] = &["Trust and continue", "Yes, continue"];

pub fn classify_screen(screen: &str) -> CodexScreen {
    if screen.contains("Hooks need review") {
        CodexScreen::HooksReview
    } else if screen.contains("trust the contents of this directory")
        || screen.contains("Trust this folder?")
    {
        CodexScreen::TrustDialog
    } else if screen.contains("Would you like to run the following command")
        || screen.contains("Would you like to make the following edits")
        || (screen.contains("MCP server to run tool") && screen.contains("Allow"))
    {
        CodexScreen::ApprovalPrompt
    } else if screen.contains("esc to interrupt") {
        CodexScreen::Busy
    } else if input_line(screen).is_some() {
        CodexScreen::Ready
    } else {
        CodexScreen::Unknown
    }
}

/// The placeholders Codex shows in an empty input box.
const PLACEHOLDERS: &[&str] = &["Ask Codex to do anything"];

/// The input box's line (the last line starting with `›`, above the footer), or None when
/// no input box is on screen.
fn input_line(screen: &str) -> Option<&str> {
    let lines: Vec<&str> = screen.lines().collect();
    // The footer names the model and the directory under the box; history lines above it
    // start with `›` too.
    let footer = lines
        .iter()
        .rposition(|l| l.contains("? for shortcuts") || l.contains(" · /"))?;
    lines[..footer]
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix('›'))
}

/// The text waiting in the input box: empty when it shows only its placeholder.
pub fn input_box(screen: &str) -> Option<String> {
    let text = input_line(screen)?.trim();
    Some(if PLACEHOLDERS.contains(&text) {
        String::new()
    } else {
        text.to_string()
    })
}

/// A message as Codex must receive it to read it as text. Verified on 0.169.0: a pasted
/// `/status` opens the status panel and `!echo hi` runs a shell command, while ` /status`
/// and ` !echo hi` reach the model as `/status` and `!echo hi`.
///
/// Also verified on 0.169.0: a pasted word that starts with `@` (or `$`) with the cursor
/// right after it opens a popup of the project's files (of skills), and an Enter once it
/// shows a match takes the match instead of sending: `look at @secret` became `look at
/// secret.txt`, left unsent (`use $skill` became `use $skill-creator`, whose SKILL.md then
/// went to the model). So a message whose last word starts with either gets a space after
/// it: no popup opens, and Codex trims the space, so the model gets the text as sent
/// (` @readme ` arrived as `@readme`). An `@` path attaches no file: `look at
/// @/tmp/x/secret.txt` and `@/tmp/x/secret.txt summarise` reached the model as that text
/// alone (an absolute path matches nothing in the popup), and a path taken from the popup
/// arrives as the path, not the file's contents.
pub fn as_text(text: &str) -> String {
    let text = super::as_text(text, &['/', '!', '@', '$', '#', '&']);
    let last_word = text.rsplit(char::is_whitespace).next().unwrap_or_default();
    if last_word.starts_with(['@', '$']) {
        format!("{text} ")
    } else {
        text
    }
}

/// Codex, driven through its hooks, its rollout file and its TUI.
#[derive(Clone)]
pub struct Codex {
    /// The `codex` executable.
    pub bin: String,
}

impl Agent for Codex {
    fn kind(&self) -> super::AgentKind {
        super::AgentKind::Codex
    }

    fn check_sandbox(&self, mode: &str) -> Result<(), String> {
        match SANDBOX_MODES.contains(&mode) {
            true => Ok(()),
            false => Err(format!(
                "unknown sandbox_mode {mode:?}; use one of {}",
                SANDBOX_MODES.join(", ")
            )),
        }
    }

    fn bin(&self) -> &str {
        &self.bin
    }

    fn tested(&self) -> Tested {
        TESTED
    }

    fn at_version(&self, _version: Option<Version>) -> std::sync::Arc<dyn Agent> {
        // Nothing in how troupe drives Codex differs between the versions it knows.
        std::sync::Arc::new(self.clone())
    }

    fn cli_model(&self, requested: &str) -> Option<String> {
        cli_model(requested)
    }

    fn default_model(&self, _role_model: &str) -> String {
        DEFAULT_MODEL.to_string()
    }

    fn model_hint(&self) -> &'static str {
        "use an OpenAI model id such as gpt-5, gpt-5-codex or o4-mini (letters, digits, '-', \
         '.', '_' and ':'), or a model your Codex provider serves"
    }

    fn prepare(&self, spec: &LaunchSpec<'_>) -> std::io::Result<LaunchPlan> {
        if let Some(s) = spec.sandbox.filter(|s| !SANDBOX_MODES.contains(s)) {
            return Err(std::io::Error::other(format!(
                "unknown sandbox mode {s:?}; use one of {}",
                SANDBOX_MODES.join(", ")
            )));
        }
        let home = spec.config_dir.join("codex-home");
        crate::private::dir(&home)?;
        let user_home = user_codex_home(spec.env).filter(|h| *h != home);
        let user_config = match &user_home {
            Some(h) => match std::fs::read_to_string(h.join("config.toml")) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e),
            },
            None => String::new(),
        };
        let hooks_path = home.join("hooks.json");
        write_json(&hooks_path, &hooks_file(spec.hook_command))?;
        let config = overlay_config(
            &user_config,
            &Overlay {
                hooks_path: &hooks_path,
                hook_command: spec.hook_command,
                workdir: spec.workdir,
                mcp_url: spec.mcp_url,
                instance_id: spec.instance_id,
                token: spec.token,
                system_prompt: spec.system_prompt,
            },
        )
        .map_err(|e| {
            let at = user_home
                .as_ref()
                .map(|h| h.join("config.toml").display().to_string())
                .unwrap_or_default();
            std::io::Error::other(format!(
                "your Codex config {at} does not parse, so troupe cannot build the \
                 instance's config from it: {e}"
            ))
        })?;
        crate::private::write(&home.join("config.toml"), config.as_bytes())?;
        if let Some(user_home) = &user_home {
            for name in SHARED_FILES {
                link(&user_home.join(name), &home.join(name))?;
            }
        }
        Ok(LaunchPlan {
            argv: argv(
                &self.bin,
                spec.session_id,
                spec.resume,
                spec.model,
                spec.permission_mode,
                spec.sandbox,
            ),
            env: vec![("CODEX_HOME".into(), home.display().to_string())],
        })
    }

    fn hook_event(&self, payload: &Value) -> AgentEvent {
        let turn_id = payload["turn_id"].as_str().map(str::to_string);
        match payload["hook_event_name"].as_str().unwrap_or_default() {
            "SessionStart" => AgentEvent::SessionStarted {
                transcript: payload["transcript_path"].as_str().map(PathBuf::from),
            },
            "UserPromptSubmit" => AgentEvent::PromptSubmitted { prompt_id: turn_id },
            "Stop" => AgentEvent::TurnStopped {
                prompt_id: turn_id,
                reply: payload["last_assistant_message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            },
            "PermissionRequest" => AgentEvent::PermissionAsked {
                tool: payload["tool_name"]
                    .as_str()
                    .unwrap_or("a tool")
                    .to_string(),
                input: payload["tool_input"].clone(),
            },
            "SessionEnd" => AgentEvent::SessionEnded,
            _ => AgentEvent::Other,
        }
    }

    fn hook_session<'a>(&self, payload: &'a Value) -> Option<&'a str> {
        payload["session_id"].as_str()
    }

    fn habits(&self) -> Habits {
        // Measured on 0.169.0: SessionStart fires, and the rollout file appears, only when
        // the first prompt is submitted; the MCP client lists tools only. A message typed
        // about 50 ms after a Stop hook was taken into the turn that had just stopped: its
        // UserPromptSubmit, and the Stop with its answer, carried that turn's turn_id.
        Habits {
            session_id_chosen: false,
            announces_session: false,
            lists_prompts: false,
            joins_closing_turn: true,
            owns_transcript,
        }
    }

    fn parser(&self) -> Box<dyn RecordParser> {
        Box::new(Rollout::default())
    }

    fn read_screen(&self, screen: &str) -> Screen {
        let kind = match classify_screen(screen) {
            CodexScreen::HooksReview => ScreenKind::Refused(
                "Codex asks to review troupe's hooks: it did not accept the trust troupe \
                 wrote for them (a Codex version troupe does not know?)"
                    .into(),
            ),
            // troupe was asked to work in this directory (and trusts it in the instance's
            // config, so this dialog is not expected); the choice is found by its label.
            CodexScreen::TrustDialog => match TRUST_YES
                .iter()
                .find_map(|label| super::choose(screen, label, '›'))
            {
                Some((keys, answers)) => ScreenKind::Dialog {
                    name: "trust",
                    keys,
                    answers,
                },
                // Caught mid-draw: the next look sees it whole.
                None => ScreenKind::Unknown,
            },
            CodexScreen::ApprovalPrompt => ScreenKind::PermissionPrompt,
            CodexScreen::Busy => ScreenKind::Busy,
            CodexScreen::Ready => ScreenKind::Ready,
            CodexScreen::Unknown => ScreenKind::Unknown,
        };
        Screen {
            kind,
            input_pending: input_box(screen).is_some_and(|t| !t.is_empty()),
        }
    }

    fn key(&self, key: Key) -> &'static str {
        match key {
            Key::Submit => "Enter",
            Key::Interrupt => "Escape",
            // Verified on Claude Code 2.1.197: Ctrl-U empties a one-line input box.
            Key::ClearInput => "C-u",
        }
    }

    fn type_message(&self, text: &str) -> Vec<TypeStep> {
        // Measured on 0.169.0: an Enter right after *typed* keys becomes a newline (Codex
        // takes fast keys for a paste), but right after a bracketed paste it submits.
        vec![TypeStep::Paste(as_text(text)), TypeStep::Key("Enter")]
    }
}

/// Links `to` to the user's `from`, replacing an older link; nothing when `from` is absent.
fn link(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(to) {
        Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(to)?,
        // Something of the instance's own (Codex wrote it): leave it.
        Ok(_) => return Ok(()),
        Err(_) => {}
    }
    if from.exists() {
        std::os::unix::fs::symlink(from, to)?;
    }
    Ok(())
}

/// Codex names its rollout `rollout-<time>-<session id>.jsonl`.
pub fn owns_transcript(session_id: &str, path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    !session_id.is_empty()
        && path.is_absolute()
        && !path.components().any(|c| matches!(c, Component::ParentDir))
        && name.starts_with("rollout-")
        && name.ends_with(&format!("-{session_id}.jsonl"))
}

#[cfg(test)]
mod tests;
