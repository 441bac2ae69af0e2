//! What troupe knows about each agent CLI lives in that CLI's module and nowhere else. The
//! rest of troupe sees one [`Agent`]: how to launch it, what its hooks and transcript lines
//! mean (as [`AgentEvent`]s and [`Record`]s), which keys do what, and what its screen tells.

pub mod claude;
pub mod codex;
pub mod transcript;
pub mod versions;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::PermissionMode;
use crate::permissions::Decision;

/// The CLIs troupe drives. Stored and shown by [`AgentKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    Claude,
    Codex,
}

impl AgentKind {
    pub const ALL: [AgentKind; 2] = [AgentKind::Claude, AgentKind::Codex];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Claude => "claude",
            AgentKind::Codex => "codex",
        }
    }

    /// A name as callers write it: any case, spaces around it ignored.
    pub fn parse(name: &str) -> Option<AgentKind> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(name))
    }

    /// The MCP tool that spawns one.
    pub fn spawn_tool(self) -> &'static str {
        match self {
            AgentKind::Claude => "spawn_claude",
            AgentKind::Codex => "spawn_codex",
        }
    }

    /// The executable's name on PATH.
    pub fn default_bin(self) -> &'static str {
        self.as_str()
    }

    /// The npm package that installs it.
    pub fn npm_package(self) -> &'static str {
        match self {
            AgentKind::Claude => "@anthropic-ai/claude-code",
            AgentKind::Codex => "@openai/codex",
        }
    }

    /// The `serve` flag, and its variable, that name its executable.
    pub fn bin_flag(self) -> &'static str {
        match self {
            AgentKind::Claude => "--claude-bin (TROUPE_CLAUDE_BIN)",
            AgentKind::Codex => "--codex-bin (TROUPE_CODEX_BIN)",
        }
    }
}

/// A stored name, as `query_as!` reads it. The database refuses any other (migration 0016), so
/// the fallback never applies to a row troupe wrote.
impl From<String> for AgentKind {
    fn from(name: String) -> AgentKind {
        AgentKind::parse(&name).unwrap_or(AgentKind::Claude)
    }
}

/// Compares with the stored name, as tests and reports read it.
impl PartialEq<&str> for AgentKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for AgentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hook both CLIs send when they ask whether a tool may run, and wait on the answer.
pub const PERMISSION_HOOK: &str = "PermissionRequest";

/// Whether a hook payload asks a question the CLI waits on (`troupe hook` then waits long).
pub fn hook_waits_for_answer(payload: &Value) -> bool {
    payload["hook_event_name"] == PERMISSION_HOOK
}

/// Token counts of one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: i64,
    pub output: i64,
    pub cache_creation: i64,
    pub cache_read: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    ToolUse { name: String, input: Value },
}

/// One transcript line, reduced to what troupe acts on. `ts` is the CLI's own timestamp
/// (RFC 3339 text, so it sorts as time): CLIs write their transcripts asynchronously and not
/// always in order, and the timestamp says which turn a line belongs to.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A prompt the CLI took: a new turn starts.
    Prompt {
        uuid: String,
        prompt_id: Option<String>,
        text: String,
        ts: String,
    },
    /// A tool's result fed back to the model, inside a turn.
    ToolResult {
        uuid: String,
        text: String,
        ts: String,
    },
    /// The turn was stopped by an interrupt; the conversation goes on.
    Interrupted {
        uuid: String,
        prompt_id: Option<String>,
    },
    /// A model reply, or part of one (a reply with several blocks may span several lines with
    /// the same `message_id`). `synthetic` marks a partial reply kept after an interrupt.
    Assistant {
        uuid: String,
        ts: String,
        message_id: String,
        model: String,
        blocks: Vec<Block>,
        usage: Option<Usage>,
        synthetic: bool,
        api_error: bool,
    },
    /// The turn is over.
    TurnEnd {
        uuid: String,
        ts: String,
    },
    Other,
}

impl Record {
    /// The CLI's timestamp of the line (empty for lines that carry none).
    pub fn ts(&self) -> &str {
        match self {
            Record::Prompt { ts, .. }
            | Record::ToolResult { ts, .. }
            | Record::Assistant { ts, .. }
            | Record::TurnEnd { ts, .. } => ts,
            Record::Interrupted { .. } | Record::Other => "",
        }
    }

    /// The text blocks of a reply, joined.
    pub fn reply_text(&self) -> Option<String> {
        match self {
            Record::Assistant { blocks, .. } => Some(
                blocks
                    .iter()
                    .filter_map(|b| match b {
                        Block::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        }
    }
}

/// A lifecycle hook as an instance reads it: the CLI session that sent it (when the payload
/// names one) and what it said.
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub session: Option<String>,
    pub event: AgentEvent,
}

impl From<AgentEvent> for Hook {
    fn from(event: AgentEvent) -> Hook {
        Hook {
            session: None,
            event,
        }
    }
}

/// What a lifecycle hook said, in troupe's terms. Each is an exact transition.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// The CLI's session is up; its transcript is written to this file.
    SessionStarted { transcript: Option<PathBuf> },
    /// The CLI took a prompt and starts a turn.
    PromptSubmitted { prompt_id: Option<String> },
    /// The turn ended; `reply` is the CLI's own copy of its final answer.
    TurnStopped {
        prompt_id: Option<String>,
        reply: String,
    },
    /// The turn ended in an error (the model API failed).
    TurnFailed {
        prompt_id: Option<String>,
        error: String,
    },
    /// A permission dialog opened for a tool.
    PermissionAsked { tool: String, input: Value },
    /// The CLI is about to exit (or a process it replaced did).
    SessionEnded,
    /// Anything else a hook reported.
    Other,
}

/// Keys troupe presses, named by what they do; each agent says which key that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Submit the text in the input box.
    Submit,
    /// Stop the running turn, keeping the conversation.
    Interrupt,
    /// Empty the input box (a line of it).
    ClearInput,
}

/// One step of typing a message into the TUI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeStep {
    /// Paste the text as text (bracketed), never as keys.
    Paste(String),
    Key(&'static str),
    /// Some TUIs need a pause between the text and the Enter that submits it.
    Pause(Duration),
    /// Look at the screen until the input box holds the pasted text, for at most this long:
    /// a TUI that takes an Enter before it has drawn the paste may submit what the box held
    /// before it (nothing), and the Enter is lost.
    AwaitShown(Duration),
}

/// What the screen shows, for the few things only the screen tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScreenKind {
    /// A startup dialog troupe answers (e.g. trusting the folder troupe was asked to work
    /// in). `keys` choose troupe's answer by its label from the screen as drawn, never by
    /// its position: CLI releases reorder the choices. They either move the cursor to it
    /// (`answers` false: the next look confirms where the cursor went) or confirm it. The
    /// name goes to the audit log.
    Dialog {
        name: &'static str,
        keys: Vec<&'static str>,
        answers: bool,
    },
    /// A startup dialog troupe must not answer for the user: the CLI cannot start.
    Refused(String),
    /// A tool permission dialog.
    PermissionPrompt,
    /// A turn is running.
    Busy,
    /// The input box, nothing running.
    Ready,
    Unknown,
}

/// The screen, read by the agent that drew it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    pub kind: ScreenKind,
    /// Text sits in the input box, not yet submitted.
    pub input_pending: bool,
}

/// Everything an agent needs to write its config files and build its launch line.
pub struct LaunchSpec<'a> {
    pub instance_id: &'a str,
    /// The CLI's own session id (chosen by troupe up front, used again to resume).
    pub session_id: &'a str,
    pub model: &'a str,
    pub system_prompt: &'a str,
    pub permission_mode: PermissionMode,
    /// Continue the earlier conversation instead of starting one.
    pub resume: bool,
    /// A directory of the instance's own, for config files.
    pub config_dir: &'a Path,
    /// The directory the CLI works in.
    pub workdir: &'a Path,
    /// The environment the CLI is started with (before the agent's own additions): where a
    /// CLI keeps the user's own configuration is read from it.
    pub env: &'a [(String, String)],
    /// A sandbox mode for CLIs that have one (Codex: read-only, workspace-write,
    /// danger-full-access).
    pub sandbox: Option<&'a str>,
    /// The shell command a lifecycle hook runs (reads the payload on stdin and posts it).
    pub hook_command: &'a str,
    /// Where a lifecycle hook posts its payload, for CLIs that post hooks themselves.
    pub hook_url: &'a str,
    /// troupe's MCP endpoint, for the instance's own calls to troupe.
    pub mcp_url: &'a str,
    /// The instance's own token: its hooks and MCP calls carry it, or troupe refuses them.
    pub token: &'a str,
    pub running_as_root: bool,
}

/// The process to start in tmux.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchPlan {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// How a CLI behaves at startup, where CLIs differ.
#[derive(Debug, Clone, Copy)]
pub struct Habits {
    /// troupe chooses the CLI's session id before launch (else the CLI makes one up and a
    /// hook names it).
    pub session_id_chosen: bool,
    /// The session-started hook fires at launch. A CLI that fires it only with its first
    /// prompt is started once its input box is on screen.
    pub announces_session: bool,
    /// The CLI's MCP client fetches troupe's prompts as well as its tools at startup.
    pub lists_prompts: bool,
    /// A prompt submitted while the CLI is still closing a turn may be taken into that turn:
    /// its submit hook, and the stop hook after, name the turn that had just stopped.
    pub joins_closing_turn: bool,
    /// Whether a transcript path is the one the CLI writes for this session id (a hook that
    /// names another file is refused).
    pub owns_transcript: fn(&str, &Path) -> bool,
}

/// Reads one transcript, line by line; a parser may remember what earlier lines said (the
/// model a later usage line is billed to).
pub trait RecordParser: Send + Sync {
    fn parse(&mut self, line: &str) -> Record;
}

/// One agent CLI. Implementations do no I/O beyond writing their config files in
/// [`Agent::prepare`]; reading screens, transcripts and hooks is done by the caller, who
/// hands the text over to be interpreted.
pub trait Agent: Send + Sync {
    /// Which CLI it is.
    fn kind(&self) -> AgentKind;

    /// The name stored with each instance.
    fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Whether `mode` is a sandbox this CLI has (a caller's `sandbox_mode`); Err says why not.
    fn check_sandbox(&self, mode: &str) -> Result<(), String> {
        let _ = mode;
        Err(format!(
            "sandbox_mode is a Codex setting; {} instances have none",
            self.name()
        ))
    }

    /// The executable it runs.
    fn bin(&self) -> &str;

    /// The versions troupe is tested against.
    fn tested(&self) -> versions::Tested;

    /// This agent as it drives one version of its CLI (None: not known). Launch lines and
    /// typing differ between releases; an instance keeps the agent it was launched with.
    fn at_version(&self, version: Option<versions::Version>) -> Arc<dyn Agent>;

    /// The model the CLI is launched with, from what a caller asked for; None when the CLI
    /// has no such model.
    fn cli_model(&self, requested: &str) -> Option<String>;

    /// The model an instance runs when the caller named none: the role's (a Claude model),
    /// or what fits this CLI instead.
    fn default_model(&self, role_model: &str) -> String;

    /// Which model names the CLI takes, for an error that names the fix.
    fn model_hint(&self) -> &'static str;

    /// Writes the instance's config files and returns its launch line.
    fn prepare(&self, spec: &LaunchSpec<'_>) -> std::io::Result<LaunchPlan>;

    /// A lifecycle hook's payload.
    fn hook_event(&self, payload: &Value) -> AgentEvent;

    /// The CLI session a hook payload names, if it names one: a payload of another session
    /// than the instance's own is refused.
    fn hook_session<'a>(&self, payload: &'a Value) -> Option<&'a str>;

    /// A lifecycle hook's payload, with the session that sent it.
    fn hook(&self, payload: &Value) -> Hook {
        Hook {
            session: self.hook_session(payload).map(str::to_string),
            event: self.hook_event(payload),
        }
    }

    /// What the permission hook answers: allow or deny (with the reason shown to the model),
    /// or nothing, which leaves the CLI's own dialog for a person at the pane. Claude Code
    /// 2.1.197 and Codex 0.169.0 read the same shape (verified on both: tests/permissions.rs,
    /// tests/codex_permissions.rs).
    fn permission_answer(&self, decision: Option<Decision>, message: Option<&str>) -> Value {
        let Some(decision) = decision else {
            return serde_json::json!({});
        };
        let mut verdict = serde_json::json!({ "behavior": decision.as_str() });
        if decision == Decision::Deny {
            verdict["message"] = serde_json::json!(message.unwrap_or("denied by troupe"));
        }
        serde_json::json!({
            "hookSpecificOutput": { "hookEventName": PERMISSION_HOOK, "decision": verdict }
        })
    }

    /// Whether `path`, as a hook names it, can be the transcript of session `session_id`: only
    /// such a path is followed and recorded.
    fn owns_transcript(&self, session_id: &str, path: &Path) -> bool {
        (self.habits().owns_transcript)(session_id, path)
    }

    /// How the CLI behaves at startup.
    fn habits(&self) -> Habits;

    /// A reader for one transcript, from its first line.
    fn parser(&self) -> Box<dyn RecordParser>;

    /// One line of the CLI's transcript, read on its own.
    fn parse_record(&self, line: &str) -> Record {
        self.parser().parse(line)
    }

    /// What the screen (capture-pane text) tells.
    fn read_screen(&self, screen: &str) -> Screen;

    /// The tmux key name for a key.
    fn key(&self, key: Key) -> &'static str;

    /// How to type a message so that it arrives as text and is submitted.
    fn type_message(&self, text: &str) -> Vec<TypeStep>;

    /// For a CLI that asks before it works in a folder it does not trust, and lets a trusted
    /// folder's subfolders inherit that trust: how to have the CLI record a folder as trusted
    /// itself. None for a CLI that takes trust from the instance's own config.
    fn folder_trust(&self) -> Option<FolderTrust> {
        None
    }
}

/// How a CLI records folder trust of its own accord (see [`Agent::folder_trust`]).
#[derive(Debug, Clone)]
pub struct FolderTrust {
    /// Starts the CLI for nothing but its trust dialog: no hooks, no MCP servers.
    pub argv: Vec<String>,
    /// Whether the CLI's state file (its text), found with the instance's environment,
    /// records `dir` as trusted.
    pub recorded: fn(state: &str, dir: &Path) -> bool,
    /// Where the CLI keeps that state, for the instance's environment (`HOME`,
    /// `CLAUDE_CONFIG_DIR`): None when the environment does not say.
    pub state_file: fn(env: &EnvLookup<'_>) -> Option<PathBuf>,
    /// Whether trust recorded for `root` reaches a new folder under it, for the instance's
    /// environment.
    pub inherited: fn(root: &Path, env: &EnvLookup<'_>) -> bool,
}

/// A variable of the environment an instance's CLI is started with.
pub type EnvLookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// The agents this server runs, by the name stored with each instance.
#[derive(Clone)]
pub struct Agents {
    claude: Arc<dyn Agent>,
    codex: Arc<dyn Agent>,
    probes: Arc<[versions::Probe; 2]>,
}

impl Agents {
    pub fn new(claude_bin: &str, codex_bin: &str) -> Self {
        Agents {
            claude: Arc::new(claude::ClaudeCode {
                bin: claude_bin.to_string(),
                version: None,
            }),
            codex: Arc::new(codex::Codex {
                bin: codex_bin.to_string(),
            }),
            probes: Arc::default(),
        }
    }

    /// The installed version of the named CLI and how it stands against the tested ones,
    /// read again only when its executable changed (blocking: a process start at most). A
    /// change is logged once: plainly when tested, as a warning otherwise.
    pub fn version(&self, kind: AgentKind) -> Option<versions::Assessment> {
        let (agent, probe) = match kind {
            AgentKind::Claude => (&self.claude, &self.probes[0]),
            AgentKind::Codex => (&self.codex, &self.probes[1]),
        };
        let read = probe.read(agent.bin());
        let printed = read.printed.ok()?;
        let assessment = agent.tested().assess(&printed);
        if read.changed {
            if assessment.is_tested() {
                tracing::info!(cli = %assessment, "agent CLI version");
            } else {
                tracing::warn!(cli = %assessment, "agent CLI version");
            }
        }
        Some(assessment)
    }

    /// Whether any CLI would read this hook payload as a permission request: a quick test that
    /// spares every other hook a database read.
    pub fn may_be_permission_request(&self, payload: &Value) -> bool {
        [&self.claude, &self.codex]
            .iter()
            .any(|a| matches!(a.hook_event(payload), AgentEvent::PermissionAsked { .. }))
    }

    pub fn of(&self, kind: AgentKind) -> Arc<dyn Agent> {
        match kind {
            AgentKind::Claude => self.claude.clone(),
            AgentKind::Codex => self.codex.clone(),
        }
    }
}

/// A message as a TUI must receive it to read it as text, never as keys or commands: control
/// characters (the escape that would end a bracketed paste, a carriage return that would act
/// as Enter) are dropped, line ends become `\n`, and a first character the input box takes as
/// a mode (`modes`: `/` commands, `!` shell, ...) gets a space before it, which the CLIs drop
/// when they send the text to the model.
pub fn as_text(text: &str, modes: &[char]) -> String {
    let text: String = text
        .replace("\r\n", "\n")
        .chars()
        .map(|c| if c == '\r' { '\n' } else { c })
        .filter(|c| matches!(c, '\n' | '\t') || !c.is_control())
        .collect();
    if text.starts_with(modes) {
        format!(" {text}")
    } else {
        text
    }
}

/// Writes a JSON config file only the user can read (it may hold the instance's token).
pub(crate) fn write_json(path: &Path, value: &Value) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    crate::private::write(path, text.as_bytes())
}

/// The keys that pick the option labelled `label` in a selection list on `screen`: arrows from
/// the option the cursor (`cursor`, e.g. `❯`) is on to the wanted one, then Enter. None when
/// the screen shows no such option, or no cursor in its list. Options may be numbered
/// (`1. Yes`) or not; the label is matched after the cursor and the number.
pub fn choose(screen: &str, label: &str, cursor: char) -> Option<(Vec<&'static str>, bool)> {
    let lines: Vec<&str> = screen.lines().collect();
    let text_of = |line: &str| {
        let t = line.trim().trim_start_matches(cursor).trim_start();
        let unnumbered = t
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            .map_or(t, |(_, rest)| rest);
        unnumbered.trim().to_string()
    };
    let target = lines.iter().position(|l| text_of(l) == label)?;
    // The list is the run of non-blank lines around the wanted option.
    let start = (0..=target)
        .rev()
        .take_while(|&i| !lines[i].trim().is_empty())
        .last()?;
    let end = (target..lines.len())
        .take_while(|&i| !lines[i].trim().is_empty())
        .last()?;
    let at = (start..=end).find(|&i| lines[i].trim_start().starts_with(cursor))?;
    // The cursor is moved first, and Enter waits for a look that finds it on the choice: a
    // key can be lost while the dialog is still taking input, and an Enter sent with a lost
    // Down took "No, exit" on Claude Code 2.1.328 (seen once in the suite).
    Some(match target.cmp(&at) {
        std::cmp::Ordering::Equal => (vec!["Enter"], true),
        std::cmp::Ordering::Greater => (vec!["Down"; target - at], false),
        std::cmp::Ordering::Less => (vec!["Up"; at - target], false),
    })
}

#[cfg(test)]
mod choose_tests {
    use super::choose;

    #[test]
    fn an_option_is_chosen_by_its_label_wherever_the_cursor_starts() {
        // Claude Code 2.1.197: numbered, the wanted option first and under the cursor.
        let old = " Security guide\n\n ❯ 1. Yes, I trust this folder\n   2. No, exit\n\n Enter";
        assert_eq!(
            choose(old, "Yes, I trust this folder", '❯'),
            Some((vec!["Enter"], true))
        );
        // Claude Code 2.1.328: unnumbered, "No, exit" first and under the cursor.
        let new = " Security guide\n\n ❯ No, exit\n   Yes, I trust this folder\n\n Enter";
        assert_eq!(
            choose(new, "Yes, I trust this folder", '❯'),
            Some((vec!["Down"], false)),
            "the move first; Enter once a look finds the cursor there"
        );
        let moved = " Security guide\n\n   No, exit\n ❯ Yes, I trust this folder\n\n Enter";
        assert_eq!(
            choose(moved, "Yes, I trust this folder", '❯'),
            Some((vec!["Enter"], true))
        );
        let below = "   a\n   b\n ❯ c\n";
        assert_eq!(choose(below, "a", '❯'), Some((vec!["Up", "Up"], false)));
        assert_eq!(choose(new, "Yes, I accept", '❯'), None);
        assert_eq!(
            choose(
                "   Yes, I trust this folder\n",
                "Yes, I trust this folder",
                '❯'
            ),
            None
        );
    }
}
