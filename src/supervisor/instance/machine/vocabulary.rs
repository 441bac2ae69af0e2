//! What goes into the instance machine and what comes out of it: its whole vocabulary, with
//! nothing of the database, tmux or the API in it.

use std::path::PathBuf;

use serde_json::Value;
use tokio::time::Duration;

use crate::agents::{Hook, Key, Record, Screen};
use crate::states::{InstanceState, InterruptOutcome, MessageState};
use crate::supervisor::McpList;

/// Time limits from the server's config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Launch to ready.
    pub startup: Duration,
    /// Typing a message to the CLI acknowledging it.
    pub submit: Duration,
    /// The interrupt key to the CLI confirming the stopped turn.
    pub interrupt: Duration,
}

/// How the instance's task begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// The CLI is launching; `resumed` when it continues an earlier conversation (a turn the
    /// transcript leaves open then was cut off when the previous process died).
    Launch { resumed: bool },
    /// The CLI kept running while troupe was away.
    Reattach,
}

/// A message waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: String,
    pub text: String,
}

/// Why the machine asked to see the screen; the answer comes back with the same tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look {
    /// While starting, before the session is up: dialogs only the screen shows.
    Startup,
    /// Startup took too long.
    StartupTimeout,
    /// A typed message was not acknowledged in time: was its Enter swallowed?
    Nudge,
    /// The CLI still has not acknowledged a typed message.
    SubmitLate { message_id: String },
    /// An interrupt was not confirmed in time.
    InterruptLate { id: i64 },
    /// An interrupt not confirmed yet: is the turn still running on screen?
    InterruptAgain { id: i64 },
    /// Is the input box empty now?
    Cleared,
    /// After a restart: did the CLI take a message typed before troupe went away?
    Recover,
    /// Is the CLI still there (after SessionEnd, or a failed tmux command)?
    Alive,
}

/// Whether the CLI's process is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alive {
    Running,
    /// The pane is dead: the CLI exited.
    Exited,
    /// The tmux session is gone.
    NoSession,
}

/// What a look at the instance found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub alive: Alive,
    pub screen: Screen,
    /// The last lines on screen, for reasons people read.
    pub tail: String,
}

/// A message the database knows of when the task starts, as a replayed transcript is matched
/// to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub id: String,
    pub text: String,
    /// The prompt the CLI named for it, once it did.
    pub prompt_id: Option<String>,
    pub state: MessageState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// What the database knows of the instance's messages, at the task's start; and, when
    /// reattaching, the transcript to replay.
    Restore {
        messages: Vec<Known>,
        transcript: Option<PathBuf>,
    },
    /// A message was queued.
    Queued(Queued),
    /// A lifecycle hook.
    Hook(Hook),
    /// New transcript lines. `history` is set for the first read of a file, whose turns
    /// happened before troupe followed it.
    Records { records: Vec<Record>, history: bool },
    /// The CLI's MCP client received one of troupe's lists.
    McpListed(McpList),
    /// The answer to [`Effect::Look`].
    Seen { look: Look, seen: Seen },
    /// A deadline passed.
    Tick,
    /// Interrupt the running turn; `id` names the request in the answer.
    InterruptAsked { id: i64 },
    /// Typing a message failed.
    DeliveryFailed { message_id: String, error: String },
    /// Pressing the interrupt key failed.
    InterruptKeyFailed { id: i64, error: String },
    /// The CLI's process ended.
    ProcessExited,
    /// The CLI asks for permission to use a tool, and troupe holds the question (`summary`
    /// says what it is) until someone decides.
    PermissionAsked { request_id: String, summary: String },
    /// A held permission question was decided, so the CLI goes on with its turn.
    PermissionAnswered,
    /// Nobody decided a held question in time: the CLI's own dialog now asks at its pane, and
    /// a tool that runs after it is the sign that someone answered there.
    PermissionLeftAtPane,
    /// Start the CLI again (with its conversation) as soon as no turn runs: its
    /// configuration no longer reaches this server.
    RelaunchAsked { reason: String },
}

/// What an interrupt did.
#[derive(Debug, Clone, PartialEq)]
pub struct InterruptAnswer {
    pub outcome: InterruptOutcome,
    /// The message whose turn was stopped, if any.
    pub message_id: Option<String>,
    /// What the instance had answered before it stopped.
    pub partial_response: Option<String>,
    pub detail: String,
}

impl InterruptAnswer {
    /// The CLI confirmed that the running turn stopped.
    pub fn interrupted(&self) -> bool {
        self.outcome == InterruptOutcome::Confirmed
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Follow this transcript file (and record its path); answer with its lines so far as
    /// `Records { history: true }`.
    Follow(PathBuf),
    /// Record the session id the CLI named in its first hook (a CLI that makes its own up):
    /// it resumes the conversation later.
    AdoptSession(String),
    /// Read new transcript lines now (a file event may have been missed).
    ReadTranscript,
    /// Record the message as submitted, then type it and submit it.
    Deliver {
        message_id: String,
        text: String,
    },
    /// Press these keys, named as tmux names them, in one go (a dialog's answer).
    PressKeys(Vec<&'static str>),
    Press(Key),
    /// Press the interrupt key for interrupt `id`; a failure comes back as
    /// `Input::InterruptKeyFailed`.
    PressInterrupt {
        id: i64,
    },
    /// Look at the instance and answer with `Input::Seen`.
    Look(Look),
    MessageStarted {
        message_id: String,
        prompt_id: Option<String>,
    },
    /// Record a transcript record's output (and its usage), tied to a message.
    Output {
        message_id: Option<String>,
        record: Record,
    },
    FinishMessage {
        message_id: String,
        state: MessageState,
        response: Option<String>,
        reason: String,
    },
    /// A message typed before a restart never reached the CLI: back to the queue.
    Requeue {
        message_id: String,
    },
    Report {
        state: InstanceState,
        reason: String,
    },
    ResolveInterrupt {
        id: i64,
        result: Result<InterruptAnswer, String>,
    },
    /// The instance is ready for messages (answers a waiting spawn).
    Ready,
    /// The instance cannot go on: record why and end its task (and, with `kill`, its tmux
    /// session).
    Fail {
        reason: String,
        kill: bool,
    },
    /// The CLI exited on its own: record why and end the task; the conversation and the
    /// queued messages wait for a resume.
    Exit {
        reason: String,
    },
    /// No turn runs: end the task and start the CLI again with its conversation. Queued
    /// messages stay queued for the new process.
    Relaunch {
        reason: String,
    },
    Audit {
        kind: String,
        detail: Value,
    },
    Warn(String),
}
