//! What troupe knows about each agent CLI lives in that CLI's module and nowhere else. The
//! rest of troupe sees one [`Agent`]: how to launch it, what its hooks and transcript lines
//! mean (as [`AgentEvent`]s and [`Record`]s), which keys do what, and what its screen tells.

pub mod claude;
pub mod transcript;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::config::PermissionMode;

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
    PermissionRequested { tool: String, input: Value },
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
    /// Take the default answer of a startup dialog.
    AcceptDialog,
}

/// One step of typing a message into the TUI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeStep {
    /// Paste the text as text (bracketed), never as keys.
    Paste(String),
    Key(&'static str),
    /// Some TUIs need a pause between the text and the Enter that submits it.
    Pause(Duration),
}

/// What the screen shows, for the few things only the screen tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScreenKind {
    /// A startup dialog troupe answers with [`Key::AcceptDialog`] (e.g. trusting the folder
    /// troupe was asked to work in). The name goes to the audit log.
    Dialog(&'static str),
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

/// One agent CLI. Implementations do no I/O beyond writing their config files in
/// [`Agent::prepare`]; reading screens, transcripts and hooks is done by the caller, who
/// hands the text over to be interpreted.
pub trait Agent: Send + Sync {
    /// The name stored with each instance (`claude`, `codex`).
    fn name(&self) -> &'static str;

    /// The model the CLI is launched with, from what a caller asked for; None when the CLI
    /// has no such model.
    fn cli_model(&self, requested: &str) -> Option<String>;

    /// Writes the instance's config files and returns its launch line.
    fn prepare(&self, spec: &LaunchSpec<'_>) -> std::io::Result<LaunchPlan>;

    /// A lifecycle hook's payload.
    fn hook_event(&self, payload: &Value) -> AgentEvent;

    /// The CLI session a hook payload names, if it names one: a payload of another session
    /// than the instance's own is refused.
    fn hook_session<'a>(&self, payload: &'a Value) -> Option<&'a str>;

    /// Whether `path`, as a hook names it, can be the transcript of session `session_id`: only
    /// such a path is followed and recorded.
    fn owns_transcript(&self, session_id: &str, path: &Path) -> bool;

    /// One line of the CLI's transcript.
    fn parse_record(&self, line: &str) -> Record;

    /// What the screen (capture-pane text) tells.
    fn read_screen(&self, screen: &str) -> Screen;

    /// The tmux key name for a key.
    fn key(&self, key: Key) -> &'static str;

    /// How to type a message so that it arrives as text and is submitted.
    fn type_message(&self, text: &str) -> Vec<TypeStep>;
}

/// The agents this server runs, by the name stored with each instance.
#[derive(Clone)]
pub struct Agents {
    claude: Arc<dyn Agent>,
}

impl Agents {
    pub fn new(claude_bin: &str) -> Self {
        Agents {
            claude: Arc::new(claude::ClaudeCode {
                bin: claude_bin.to_string(),
            }),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Agent>> {
        match name {
            "claude" => Some(self.claude.clone()),
            _ => None,
        }
    }
}
