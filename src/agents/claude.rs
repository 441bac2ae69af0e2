//! Claude Code: how troupe launches it, which hooks it installs, how it reads the transcript,
//! and the few screen patterns only the screen can tell (checked against the 2.1.197 captures
//! in tests).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::versions::{Tested, Version};
use super::{
    Agent, AgentEvent, Block, Habits, Key, LaunchPlan, LaunchSpec, Record, RecordParser, Screen,
    ScreenKind, TypeStep, Usage, write_json,
};
use crate::config::PermissionMode;

/// The hook events troupe listens to. Each one is an exact transition with no polling.
/// UserPromptSubmit is left out on purpose: the CLI waits for that hook before it starts the
/// turn, which cost 20-25 ms on every round trip (measured by `cargo bench --bench
/// roundtrip` on 2.1.197), and the transcript's prompt record, which carries the same prompt
/// id, acknowledges a typed message as well.
pub const HOOK_EVENTS: &[&str] = &[
    "SessionStart",
    "Stop",
    "StopFailure",
    "PermissionRequest",
    "SessionEnd",
];

/// Everything needed to start (or restart) one Claude Code process.
pub struct Launch<'a> {
    pub claude_bin: &'a str,
    pub session_id: &'a str,
    pub model: &'a str,
    /// A file holding the text appended to the CLI's system prompt: on the command line it
    /// would be readable by every local user in `ps`, and Linux caps one argument at 128 KiB.
    pub system_prompt_file: Option<&'a Path>,
    pub settings_path: &'a Path,
    pub mcp_config_path: &'a Path,
    pub permission_mode: PermissionMode,
    /// Continue an existing conversation (`--resume`) instead of starting one.
    pub resume: bool,
    /// The CLI's version, when known: some flags' values changed between releases.
    pub version: Option<Version>,
}

impl Launch<'_> {
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![self.claude_bin.to_string()];
        if self.resume {
            argv.extend(["--resume".into(), self.session_id.to_string()]);
        } else {
            argv.extend(["--session-id".into(), self.session_id.to_string()]);
        }
        argv.extend(["--model".into(), self.model.to_string()]);
        if let Some(file) = self.system_prompt_file {
            argv.extend([
                "--append-system-prompt-file".into(),
                file.display().to_string(),
            ]);
        }
        argv.extend([
            "--settings".into(),
            self.settings_path.display().to_string(),
            "--mcp-config".into(),
            self.mcp_config_path.display().to_string(),
        ]);
        // Always explicit: with no mode given, 2.1.284 and later start in auto mode, whose
        // safety check needs Anthropic's API and stops every tool call behind a gateway.
        match self.permission_mode {
            PermissionMode::Skip => argv.push("--dangerously-skip-permissions".into()),
            PermissionMode::Default => {
                argv.extend(["--permission-mode".into(), asking_mode(self.version).into()])
            }
            PermissionMode::AcceptEdits => {
                argv.extend(["--permission-mode".into(), "acceptEdits".into()])
            }
            PermissionMode::Plan => argv.extend(["--permission-mode".into(), "plan".into()]),
        }
        argv
    }
}

/// The Claude Code versions troupe's tests run, each with captures in `tests/fixtures/`.
pub const TESTED: Tested = Tested {
    product: "Claude Code",
    versions: &[Version(2, 1, 197), Version(2, 1, 328)],
};

/// The name of the mode that asks before each tool call: `default` until 2.1.200 renamed it
/// `manual` (2.1.328 still takes `default`, 2.1.197 refuses `manual`: both checked). An
/// unknown version gets the name both take.
fn asking_mode(version: Option<Version>) -> &'static str {
    match version {
        Some(v) if v >= Version(2, 1, 200) => "manual",
        _ => "default",
    }
}

/// How long a call to an MCP tool may run in this version before the CLI moves it to the
/// background and lets its model go on: 2 minutes since 2.1.212 (its changelog, and the
/// `CLAUDE_CODE_MCP_AUTO_BACKGROUND_MS` default read from the 2.1.328 binary); before that,
/// never. troupe sets the variable to 0 for the CLIs it starts; a person's own client keeps
/// its default.
pub fn mcp_calls_background_after(version: Version) -> Option<std::time::Duration> {
    (version >= Version(2, 1, 212)).then_some(std::time::Duration::from_secs(120))
}

/// The name Claude Code gives itself as an MCP client (`clientInfo.name`).
pub const MCP_CLIENT_NAME: &str = "claude-code";

/// Seconds the CLI waits for troupe's answer to a PermissionRequest hook.
pub const PERMISSION_HOOK_TIMEOUT: u64 = 3700;

/// The `--settings` file: hooks that post each lifecycle event to troupe, and, in skip mode,
/// the acknowledgement that would otherwise stop the CLI at a warning dialog.
///
/// The CLI posts HTTP hooks itself, with no process to start: measured on 2.1.197, a command
/// hook on UserPromptSubmit (which the turn waits for) added about 20 ms to every round trip.
/// SessionStart takes no HTTP hooks, so it runs `troupe hook`; it fires once per launch.
pub fn settings(
    hook_command: &str,
    hook_url: &str,
    token: &str,
    permission_mode: PermissionMode,
) -> Value {
    let mut hooks = serde_json::Map::new();
    for event in HOOK_EVENTS {
        let hook = if *event == "SessionStart" {
            json!({ "type": "command", "command": hook_command, "timeout": 10 })
        } else {
            // troupe holds a permission question until someone decides, and answers within
            // its --permission-wait (at most an hour): the CLI must not give up first.
            let timeout = if *event == "PermissionRequest" {
                PERMISSION_HOOK_TIMEOUT
            } else {
                10
            };
            json!({
                "type": "http",
                "url": hook_url,
                "headers": { "Authorization": format!("Bearer {token}") },
                "timeout": timeout
            })
        };
        hooks.insert(event.to_string(), json!([{ "hooks": [hook] }]));
    }
    let mut settings = json!({ "hooks": hooks });
    if permission_mode == PermissionMode::Skip {
        settings["skipDangerousModePermissionPrompt"] = json!(true);
    }
    settings
}

/// The `--mcp-config` file: troupe itself, with a header naming the instance and the
/// instance's token proving it, so its calls are attributed to it exactly.
///
/// `alwaysLoad` puts troupe's tools in front of the model from the first request: since
/// 2.1.2xx the CLI otherwise defers MCP tools behind its ToolSearch tool, and an instance
/// would have to search before it could answer its caller (seen on 2.1.328; 2.1.197 takes
/// the key too).
pub fn mcp_config(server_url: &str, instance_id: &str, token: &str) -> Value {
    json!({
        "mcpServers": {
            "troupe": {
                "type": "http",
                "alwaysLoad": true,
                "url": format!("{server_url}/mcp"),
                "headers": {
                    "X-Troupe-Instance": instance_id,
                    "Authorization": format!("Bearer {token}")
                }
            }
        }
    })
}

/// What `troupe chat` starts: the person's own Claude Code, in the foreground, with troupe as
/// its MCP server and troupe's guidance added to its system prompt.
pub struct ChatLaunch<'a> {
    pub bin: &'a str,
    pub project: &'a Path,
    pub session: &'a str,
    pub mcp_file: &'a Path,
    pub prompt_file: &'a Path,
    pub model: Option<&'a str>,
    /// troupe's tools that only read, allowed without a question.
    pub read_only_tools: &'a [&'a str],
    /// The person's own flags, passed as they are.
    pub extra_args: &'a [String],
    /// The first message.
    pub prompt: Option<&'a str>,
}

pub fn chat_command(launch: &ChatLaunch<'_>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(launch.bin);
    cmd.current_dir(launch.project)
        .arg("--session-id")
        .arg(launch.session)
        .arg("--mcp-config")
        .arg(launch.mcp_file)
        .arg("--append-system-prompt-file")
        .arg(launch.prompt_file);
    if let Some(model) = launch.model {
        cmd.args(["--model", model]);
    }
    // Reading troupe's state never needs a question: without this, Claude Code 2.1.328 in
    // its default auto mode behind a gateway stopped every troupe call at a Yes/No dialog.
    // The person's own flags come after, and their permission settings rule the rest.
    cmd.arg("--allowedTools")
        .arg(allowed_tools(launch.read_only_tools));
    // troupe's waits last up to 5 minutes; from 2.1.212 the CLI would move them to the
    // background after 2, unless the person chose otherwise.
    if std::env::var_os("CLAUDE_CODE_MCP_AUTO_BACKGROUND_MS").is_none() {
        cmd.env("CLAUDE_CODE_MCP_AUTO_BACKGROUND_MS", "0");
    }
    cmd.args(launch.extra_args);
    if let Some(p) = launch.prompt {
        cmd.arg(p);
    }
    cmd
}

/// troupe's tools as Claude Code names them, comma-separated.
pub fn allowed_tools(tools: &[&str]) -> String {
    tools
        .iter()
        .map(|t| format!("mcp__troupe__{t}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Where Claude Code writes the transcript of `session_id` for a CLI started in `workdir`
/// (the SessionStart hook reports the exact path; this is the same rule, used before then).
pub fn transcript_path(home: &Path, workdir: &Path, session_id: &str) -> PathBuf {
    let munged: String = workdir
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    home.join(".claude")
        .join("projects")
        .join(munged)
        .join(format!("{session_id}.jsonl"))
}

/// The model name Claude Code is launched with, from what a caller asked for: the seed's
/// names (`opus-4`, `sonnet-4`, `haiku`), the CLI's aliases, or a full `claude-*` id.
pub fn cli_model(requested: &str) -> Option<String> {
    let m = requested.trim().to_ascii_lowercase();
    if m.starts_with("claude-")
        && m.len() <= 64
        && m.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.[]".contains(c))
    {
        return Some(m);
    }
    for family in ["opus", "sonnet", "haiku"] {
        if let Some(rest) = m.strip_prefix(family)
            && (rest.is_empty()
                || (rest.starts_with('-')
                    && rest[1..]
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '-' || c == '.')))
        {
            return Some(family.to_string());
        }
    }
    None
}

const INTERRUPT_MARKER: &str = "[Request interrupted by user";

pub fn parse_record(line: &str) -> Record {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return Record::Other;
    };
    if v["isSidechain"].as_bool() == Some(true) || v["isMeta"].as_bool() == Some(true) {
        return Record::Other;
    }
    let uuid = v["uuid"].as_str().unwrap_or_default().to_string();
    let ts = v["timestamp"].as_str().unwrap_or_default().to_string();
    match v["type"].as_str() {
        Some("user") => user_record(&v, uuid, ts),
        Some("assistant") => assistant_record(&v, uuid, ts),
        Some("system") if v["subtype"] == "turn_duration" => Record::TurnEnd { uuid, ts },
        _ => Record::Other,
    }
}

/// A user line: the prompt, a tool's result, or the mark of an interrupted turn.
fn user_record(v: &Value, uuid: String, ts: String) -> Record {
    let prompt_id = v["promptId"].as_str().map(str::to_string);
    let content = &v["message"]["content"];
    let blocks = content.as_array().cloned().unwrap_or_default();
    let text = match content.as_str() {
        Some(text) => text.to_string(),
        None if blocks.iter().any(|b| b["type"] == "tool_result") => {
            let text = blocks
                .iter()
                .filter(|b| b["type"] == "tool_result")
                .map(|b| content_text(&b["content"]))
                .collect::<Vec<_>>()
                .join("\n");
            return Record::ToolResult { uuid, text, ts };
        }
        None => blocks
            .iter()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    if text.starts_with(INTERRUPT_MARKER) {
        Record::Interrupted { uuid, prompt_id }
    } else {
        Record::Prompt {
            uuid,
            prompt_id,
            text,
            ts,
        }
    }
}

/// A line of the model's: its text and tool calls, and what it cost.
fn assistant_record(v: &Value, uuid: String, ts: String) -> Record {
    let message = &v["message"];
    let model = message["model"].as_str().unwrap_or_default().to_string();
    let blocks = message["content"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| match b["type"].as_str() {
                    Some("text") => Some(Block::Text(
                        b["text"].as_str().unwrap_or_default().to_string(),
                    )),
                    Some("tool_use") => Some(Block::ToolUse {
                        name: b["name"].as_str().unwrap_or_default().to_string(),
                        input: b["input"].clone(),
                    }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let synthetic = model == "<synthetic>";
    let u = &message["usage"];
    let usage = (!synthetic && u.is_object()).then(|| Usage {
        input: u["input_tokens"].as_i64().unwrap_or(0),
        output: u["output_tokens"].as_i64().unwrap_or(0),
        cache_creation: u["cache_creation_input_tokens"].as_i64().unwrap_or(0),
        cache_read: u["cache_read_input_tokens"].as_i64().unwrap_or(0),
    });
    Record::Assistant {
        uuid,
        ts,
        message_id: message["id"].as_str().unwrap_or_default().to_string(),
        model,
        blocks,
        usage,
        synthetic,
        api_error: v["isApiErrorMessage"].as_bool() == Some(true),
    }
}

fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// What Claude Code's screen shows, for the few things only the screen tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaudeScreen {
    /// "Is this a project you trust?" before the session starts.
    TrustDialog,
    /// The bypass-permissions warning (skip mode without the acknowledgement).
    BypassWarning,
    /// A tool permission dialog.
    PermissionPrompt,
    /// A turn is running.
    Busy,
    /// The input box, nothing running.
    Ready,
    Unknown,
}

/// The trust dialog's choice troupe takes (the same words on every tested version).
pub const TRUST_YES: &str = "Yes, I trust this folder";

pub fn classify_screen(screen: &str) -> ClaudeScreen {
    if screen.contains(TRUST_YES) {
        ClaudeScreen::TrustDialog
    } else if screen.contains("Bypass Permissions mode") && screen.contains("Yes, I accept") {
        ClaudeScreen::BypassWarning
    } else if screen.contains("Do you want to proceed?") {
        ClaudeScreen::PermissionPrompt
    } else if screen.contains("esc to interrupt") {
        ClaudeScreen::Busy
    } else if screen.lines().any(|l| l.starts_with('❯')) {
        ClaudeScreen::Ready
    } else {
        ClaudeScreen::Unknown
    }
}

/// The text waiting in the input box (between the last two horizontal rules), or None when
/// no input box is on screen. Used to see that a typed message was not submitted yet.
pub fn input_box(screen: &str) -> Option<String> {
    let lines: Vec<&str> = screen.lines().collect();
    let is_rule = |l: &str| {
        let t = l.trim();
        t.chars().count() >= 20 && t.chars().all(|c| c == '─')
    };
    let rules: Vec<usize> = (0..lines.len()).filter(|&i| is_rule(lines[i])).collect();
    let [.., top, bottom] = rules[..] else {
        return None;
    };
    let first = lines.get(top + 1)?;
    let first = first.strip_prefix('❯')?;
    let mut text = vec![first.trim()];
    text.extend(lines[top + 2..bottom].iter().map(|l| l.trim()));
    Some(text.join("\n").trim().to_string())
}

/// The CLI started only to answer its trust dialog in a folder: the user's hooks off, no MCP
/// server started, and an explicit permission mode (with none, 2.1.284 and later start in auto
/// mode). Every flag is known to 2.1.197 and 2.1.328 (`claude --help`, and `disableAllHooks` in
/// both binaries).
fn trust_argv(bin: &str, version: Option<Version>) -> Vec<String> {
    [
        bin,
        "--strict-mcp-config",
        "--settings",
        r#"{"disableAllHooks":true}"#,
        "--permission-mode",
        asking_mode(version),
    ]
    .map(str::to_string)
    .into()
}

/// Whether Claude Code's state (`.claude.json`) records `dir` as trusted: its entry under
/// `projects` says `hasTrustDialogAccepted: true`, as the CLI writes it when its dialog is
/// answered (about 150 ms after Enter on 2.1.197 and 2.1.328).
fn trust_recorded(state: &str, dir: &Path) -> bool {
    let Ok(state) = serde_json::from_str::<Value>(state) else {
        return false;
    };
    let Some(dir) = dir.to_str() else {
        return false;
    };
    state["projects"][dir]["hasTrustDialogAccepted"] == Value::Bool(true)
}

/// Where Claude Code keeps its state: `$CLAUDE_CONFIG_DIR/.claude.json`, else
/// `$HOME/.claude.json`.
fn state_file(env: &super::EnvLookup<'_>) -> Option<PathBuf> {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
    nonempty("CLAUDE_CONFIG_DIR")
        .or_else(|| nonempty("HOME"))
        .map(|d| Path::new(&d).join(".claude.json"))
}

/// Whether a folder under `root` inherits `root`'s trust. Claude Code looks for trust from the
/// folder up through its parents, and no higher than `$HOME`: under `$HOME` a trusted parent
/// spares its subfolders the dialog, outside it (e.g. `/tmp`) it does not. Verified on 2.1.197
/// and 2.1.328, each started in a new folder under a parent trusted by answering the dialog.
fn trust_inherited(root: &Path, env: &super::EnvLookup<'_>) -> bool {
    let Some(home) = env("HOME").filter(|h| !h.is_empty()) else {
        return false;
    };
    let home = Path::new(&home);
    root != home && root.starts_with(home)
}

/// Claude Code's transcript lines stand on their own.
struct Lines;

impl RecordParser for Lines {
    fn parse(&mut self, line: &str) -> Record {
        parse_record(line)
    }
}

/// Claude Code, driven through its hooks, its JSONL transcript and its TUI.
#[derive(Clone)]
pub struct ClaudeCode {
    /// The `claude` executable.
    pub bin: String,
    /// The version of it an instance was launched with, when known.
    pub version: Option<Version>,
}

impl ClaudeCode {
    /// The permission mode that asks before each tool, by the name this version knows.
    pub fn asking_mode_name(&self) -> &'static str {
        asking_mode(self.version)
    }
}

impl Agent for ClaudeCode {
    fn kind(&self) -> super::AgentKind {
        super::AgentKind::Claude
    }

    fn bin(&self) -> &str {
        &self.bin
    }

    fn tested(&self) -> Tested {
        TESTED
    }

    fn at_version(&self, version: Option<Version>) -> std::sync::Arc<dyn Agent> {
        std::sync::Arc::new(ClaudeCode {
            version,
            ..self.clone()
        })
    }

    fn cli_model(&self, requested: &str) -> Option<String> {
        cli_model(requested)
    }

    fn default_model(&self, role_model: &str) -> String {
        role_model.to_string()
    }

    fn model_hint(&self) -> &'static str {
        "use opus, sonnet or haiku (optionally with a version, e.g. sonnet-4) or a full \
         claude-* model id"
    }

    fn prepare(&self, spec: &LaunchSpec<'_>) -> std::io::Result<LaunchPlan> {
        let settings_path = spec.config_dir.join("settings.json");
        let mcp_path = spec.config_dir.join("mcp.json");
        let prompt_path = spec.config_dir.join("system-prompt.md");
        let prompt_file = if spec.system_prompt.is_empty() {
            None
        } else {
            crate::private::write(&prompt_path, spec.system_prompt.as_bytes())?;
            Some(prompt_path.as_path())
        };
        write_json(
            &settings_path,
            &settings(
                spec.hook_command,
                spec.hook_url,
                spec.token,
                spec.permission_mode,
            ),
        )?;
        write_json(
            &mcp_path,
            &mcp_config(spec.mcp_url, spec.instance_id, spec.token),
        )?;
        let argv = Launch {
            claude_bin: &self.bin,
            session_id: spec.session_id,
            model: spec.model,
            system_prompt_file: prompt_file,
            settings_path: &settings_path,
            mcp_config_path: &mcp_path,
            permission_mode: spec.permission_mode,
            resume: spec.resume,
            version: self.version,
        }
        .argv();
        // Since 2.1.212 the CLI moves an MCP call that runs past 2 minutes to the background,
        // and troupe's waits (send_to_instance, coordinate_instances) run up to 5 minutes: 0
        // keeps them in the turn, as on earlier versions. The variable's name is read from
        // the 2.1.328 binary; earlier versions ignore it.
        let mut env = vec![("CLAUDE_CODE_MCP_AUTO_BACKGROUND_MS".into(), "0".into())];
        if spec.permission_mode == PermissionMode::Skip && spec.running_as_root {
            // Claude Code refuses to skip permissions as root outside a declared sandbox.
            env.push(("IS_SANDBOX".into(), "1".into()));
        }
        Ok(LaunchPlan { argv, env })
    }

    fn hook_event(&self, payload: &Value) -> AgentEvent {
        let prompt_id = payload["prompt_id"].as_str().map(str::to_string);
        match payload["hook_event_name"].as_str().unwrap_or_default() {
            "SessionStart" => AgentEvent::SessionStarted {
                transcript: payload["transcript_path"].as_str().map(PathBuf::from),
            },
            "UserPromptSubmit" => AgentEvent::PromptSubmitted { prompt_id },
            "Stop" => AgentEvent::TurnStopped {
                prompt_id,
                reply: payload["last_assistant_message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            },
            "StopFailure" => AgentEvent::TurnFailed {
                prompt_id,
                error: payload["error"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| payload.to_string()),
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
        Habits {
            session_id_chosen: true,
            announces_session: true,
            lists_prompts: true,
            joins_closing_turn: false,
            owns_transcript,
        }
    }

    fn parser(&self) -> Box<dyn RecordParser> {
        Box::new(Lines)
    }

    fn read_screen(&self, screen: &str) -> Screen {
        let kind = match classify_screen(screen) {
            // troupe was asked to work in this directory. The choice is found by its label:
            // 2.1.197 lists "Yes" first, 2.1.328 "No, exit" first.
            ClaudeScreen::TrustDialog => match super::choose(screen, TRUST_YES, '❯') {
                Some((keys, answers)) => ScreenKind::Dialog {
                    name: "trust",
                    keys,
                    answers,
                },
                // Caught while the dialog is being drawn (its list without the cursor yet,
                // seen once on 2.1.197): the next look sees it whole. A dialog that never
                // shows the choice ends in the startup timeout, with the screen in its reason.
                None => ScreenKind::Unknown,
            },
            ClaudeScreen::BypassWarning => ScreenKind::Refused(
                "the CLI stopped at the bypass-permissions warning; troupe does not accept it \
                 on the user's behalf"
                    .into(),
            ),
            ClaudeScreen::PermissionPrompt => ScreenKind::PermissionPrompt,
            ClaudeScreen::Busy => ScreenKind::Busy,
            ClaudeScreen::Ready => ScreenKind::Ready,
            ClaudeScreen::Unknown => ScreenKind::Unknown,
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

    fn folder_trust(&self) -> Option<super::FolderTrust> {
        Some(super::FolderTrust {
            argv: trust_argv(&self.bin, self.version),
            recorded: trust_recorded,
            state_file,
            inherited: trust_inherited,
        })
    }

    fn type_message(&self, text: &str) -> Vec<TypeStep> {
        let paste = TypeStep::Paste(as_text(text, self.version));
        match enter_may_overtake_paste(self.version) {
            true => vec![
                paste,
                TypeStep::AwaitShown(PASTE_SHOWN_WITHIN),
                TypeStep::Key("Enter"),
            ],
            false => vec![paste, TypeStep::Key("Enter")],
        }
    }
}

/// Whether an Enter that follows a paste closely can be lost, so that troupe waits until the
/// paste is on screen before it presses Enter.
///
/// 2.1.197's paste handler (read from its binary) puts the text in the input box with a state
/// update and replays an Enter that came during the paste a tick later; an Enter handled
/// before the box is drawn again submits what the box held before the paste, which is
/// nothing. Measured with `cargo bench --bench roundtrip` on 2 cores with two builds running:
/// 3 sends in 500 lost their Enter, and so did 3 in 500 pasted by hand with no orchestrator.
/// 2.1.328 lost none in 500 under the same load, and takes Enter at once after the paste.
/// Both versions' own session runner waits 10 ms between a paste and its Enter. A version
/// troupe could not read is taken for a newer one, as users install the newest.
fn enter_may_overtake_paste(version: Option<Version>) -> bool {
    version.is_some_and(|v| v < Version(2, 1, 328))
}

/// How long troupe looks for a paste on screen before it presses Enter anyway; the turn's own
/// recovery (Enter again while the text sits in the input box) stands behind it.
const PASTE_SHOWN_WITHIN: std::time::Duration = std::time::Duration::from_millis(400);

/// Each word that starts with `@` put in backticks. Claude Code reads `@path` at the start
/// or after whitespace as a file to attach, and reads it into the model's request with no
/// permission asked (its pattern `(?:^|\s)@…`, in the 2.1.197 and 2.1.328 binaries; seen on
/// 2.1.328: a file's contents reached the model). 2.1.328 drops invisible characters such as
/// a word joiner from what it is given, so the mark must be visible; after a backtick the
/// `@` starts no mention, and the model reads the word as the literal it is.
fn no_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    // JavaScript's `\s` counts U+FEFF as whitespace; Rust's does not.
    let is_space = |c: char| c.is_whitespace() || c == '\u{feff}';
    let mut after_space = true;
    let mut quoting = false;
    for c in text.chars() {
        if quoting && is_space(c) {
            out.push('`');
            quoting = false;
        }
        if c == '@' && after_space {
            out.push('`');
            quoting = true;
        }
        out.push(c);
        after_space = is_space(c);
    }
    if quoting {
        out.push('`');
    }
    out
}

/// The word put before a message that starts with `/`, where a leading space no longer
/// keeps the CLI from running it as a command.
pub const SLASH_PREFIX: &str = "Text: ";

/// A message as Claude Code must receive it to read it as text, never as a command.
///
/// Verified on 2.1.197: ` /clear`, ` !echo hi` and ` # note` reach the model as the text
/// `/clear`, `!echo hi` and `# note`. Verified on 2.1.328: a leading space still keeps `!`,
/// `#` and `&` text (the model gets the space too), but ` /help` opens the help: the CLI
/// trims before it looks for a command, and a newline, a no-break space, a zero-width space
/// or a word joiner in front all fail the same way. So on versions after 2.1.197 (and on an
/// unknown one) a message starting with `/` gets a visible word in front.
pub fn as_text(text: &str, version: Option<Version>) -> String {
    let text = no_mentions(&super::as_text(text, &['/', '!', '#', '&']));
    let space_keeps_slash_text = version.is_some_and(|v| v <= Version(2, 1, 197));
    if !space_keeps_slash_text && text.trim_start().starts_with('/') {
        format!("{SLASH_PREFIX}{}", text.trim_start())
    } else {
        text
    }
}

/// Every recorded Claude Code version's capture directory (`tests/fixtures/claude-code-*`,
/// made by `.ci/record-claude VERSION`), oldest first.
#[cfg(test)]
pub(crate) fn recorded_versions() -> Vec<std::path::PathBuf> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("claude-code-"))
        })
        .collect();
    found.sort();
    assert!(
        found.len() >= 2,
        "both tested versions are recorded: {found:?}"
    );
    found
}

/// Claude Code names the transcript after the session id troupe chose (see
/// `transcript_path`).
pub fn owns_transcript(session_id: &str, path: &Path) -> bool {
    path.is_absolute()
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        && path.file_name().and_then(|n| n.to_str()) == Some(&format!("{session_id}.jsonl"))
}

#[cfg(test)]
mod tests;
