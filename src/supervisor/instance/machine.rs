//! The rules of one instance, with no I/O: inputs (hooks, transcript records, screens the
//! machine asked to see, deadlines, requests) and the current time go in; effects (type this,
//! press that, record this, report that) and the next deadline come out. The actor in
//! `mod.rs` carries the effects out and feeds back what they found.
//!
//! The rules are split by concern: `startup.rs` (launch to ready), `turn.rs` (a message's way
//! from typing to its answer, from hooks and the transcript), `interrupt.rs` (stopping a
//! turn).

use std::collections::VecDeque;
use std::path::PathBuf;

use serde_json::Value;
use tokio::time::{Duration, Instant};

use crate::agents::{AgentEvent, Habits, Key, Record, Screen};
use crate::states::{InstanceState, InterruptOutcome, MessageState};
use crate::supervisor::McpList;

use super::startup::Startup;
use super::turn::{KnownMessage, Turns};

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

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// What the database knows of the instance's messages, at the task's start; and, when
    /// reattaching, the transcript to replay.
    Restore {
        messages: Vec<KnownMessage>,
        transcript: Option<PathBuf>,
    },
    /// A message was queued.
    Queued(Queued),
    /// A lifecycle hook.
    Hook(AgentEvent),
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
    /// Start the CLI again (with its conversation) as soon as no turn runs: its
    /// configuration no longer reaches this server.
    RelaunchAsked { reason: String },
}

/// What an interrupt did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct InterruptReport {
    /// True when the CLI confirmed that the running turn stopped.
    pub interrupted: bool,
    pub outcome: InterruptOutcome,
    /// The message whose turn was stopped, if any.
    pub message_id: Option<String>,
    /// What the instance had answered before it stopped.
    pub partial_response: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Follow this transcript file (and record its path); answer with its lines so far as
    /// `Records { history: true }`.
    Follow(PathBuf),
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
        result: Result<InterruptReport, String>,
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

/// A message typed but not yet acknowledged gets its screen looked at after this long: the
/// CLI's prompt-submitted hook normally arrives 20-50 ms after the submit key, so a longer
/// silence means the key may have been swallowed (a TUI can drop one that lands right after
/// startup) and the text still sits in the input box.
pub const SUBMIT_ACK_LATE: Duration = Duration::from_millis(750);
/// After SessionEnd the process may still be exiting, and a late SessionEnd may come from a
/// process a resume replaced: look at the pane after this long instead of trusting the hook.
pub const EXIT_CHECK_DELAY: Duration = Duration::from_millis(500);

pub struct Machine {
    pub(super) limits: Limits,
    pub(super) habits: Habits,
    pub(super) startup: Option<Startup>,
    pub(super) turns: Turns,
    pub(super) queue: VecDeque<Queued>,
    pub(super) interrupt: Option<super::interrupt::Pending>,
    pub(super) waiting_permission: bool,
    /// The transcript being followed.
    pub(super) transcript: Option<PathBuf>,
    /// Messages typed before a restart, not seen in the transcript: blocks delivery until the
    /// screen says what became of them.
    pub(super) unacknowledged: Vec<String>,
    pub(super) recovering: bool,
    /// A tmux command failed: nothing is typed until a look says the CLI is still there.
    pub(super) checking_alive: bool,
    /// Text the CLI put back in its input box is being cleared: when to look again, and how
    /// many more times the key may be pressed.
    pub(super) clearing: Option<(Option<Instant>, u32)>,
    /// A reattach replays the transcript before anything else happens.
    pub(super) reattaching: bool,
    pub(super) exit_check: Option<Instant>,
    pub(super) reported: Option<InstanceState>,
    pub(super) ready_pending: bool,
    /// Why the CLI must start again once no turn runs.
    pub(super) relaunch: Option<String>,
    pub(super) done: bool,
    pub(super) out: Vec<Effect>,
}

impl Machine {
    pub fn new(limits: Limits, begin: Begin, now: Instant) -> Machine {
        let startup = match begin {
            Begin::Launch { resumed } => Some(Startup::new(now + limits.startup, now, resumed)),
            Begin::Reattach => None,
        };
        Machine {
            limits,
            habits: Habits {
                session_id_chosen: true,
                announces_session: true,
                lists_prompts: true,
                joins_closing_turn: false,
            },
            startup,
            turns: Turns::default(),
            queue: VecDeque::new(),
            interrupt: None,
            waiting_permission: false,
            transcript: None,
            unacknowledged: Vec::new(),
            recovering: false,
            checking_alive: false,
            clearing: None,
            reattaching: begin == Begin::Reattach,
            exit_check: None,
            reported: None,
            ready_pending: false,
            relaunch: None,
            done: false,
            out: Vec::new(),
        }
    }

    /// How the CLI behaves where CLIs differ (Claude Code's ways unless told otherwise).
    pub fn with_habits(mut self, habits: Habits) -> Machine {
        self.habits = habits;
        if !habits.lists_prompts
            && let Some(startup) = self.startup.as_mut()
        {
            startup.lists_tools_only();
        }
        self
    }

    /// Feeds one input; returns what to do, in order.
    pub fn step(&mut self, now: Instant, input: Input) -> Vec<Effect> {
        if self.done {
            return Vec::new();
        }
        match input {
            Input::Restore {
                messages,
                transcript,
            } => self.restore(messages, transcript),
            Input::Queued(q) => {
                let known =
                    self.queue.iter().any(|m| m.id == q.id) || self.turns.has_message(&q.id);
                if !known {
                    self.queue.push_back(q);
                }
            }
            Input::Hook(event) => self.on_hook(now, event),
            Input::Records { records, history } => {
                for record in records {
                    self.on_record(now, record, history);
                }
                if history && self.reattaching {
                    self.reattaching = false;
                    self.after_replay();
                }
            }
            Input::McpListed(list) => self.on_mcp_list(now, list),
            Input::Seen { look, seen } => self.on_seen(now, look, seen),
            Input::Tick => self.on_tick(now),
            Input::InterruptAsked { id } => self.ask_interrupt(now, id),
            Input::DeliveryFailed { message_id, error } => {
                self.turns.drop_live_for(&message_id);
                self.finish(
                    &message_id,
                    MessageState::Failed,
                    None,
                    &format!("could not type the message into tmux: {error}"),
                );
                self.checking_alive = true;
                self.out.push(Effect::Look(Look::Alive));
            }
            Input::ProcessExited => self.out.push(Effect::Look(Look::Alive)),
            Input::PermissionAsked {
                request_id,
                summary,
            } => {
                self.waiting_permission = true;
                self.report(
                    InstanceState::WaitingPermission,
                    &format!("{summary} (permission request {request_id})"),
                );
            }
            Input::PermissionAnswered => self.waiting_permission = false,
            Input::RelaunchAsked { reason } => self.relaunch = Some(reason),
            Input::InterruptKeyFailed { id, error } => {
                if self.interrupt.as_ref().is_some_and(|p| p.id == id) {
                    self.interrupt = None;
                }
                self.out.push(Effect::ResolveInterrupt {
                    id,
                    result: Err(format!("could not press the interrupt key: {error}")),
                });
            }
        }
        self.settle(now);
        if std::mem::take(&mut self.ready_pending) && !self.done {
            self.out.push(Effect::Ready);
        }
        std::mem::take(&mut self.out)
    }

    /// The earliest time the machine wants a [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.done {
            return None;
        }
        [
            self.startup.as_ref().and_then(Startup::next_deadline),
            self.turns.next_deadline(),
            self.interrupt.as_ref().and_then(|p| p.deadline),
            self.interrupt.as_ref().and_then(|p| p.again_at),
            self.clearing.and_then(|(at, _)| at),
            self.exit_check,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The task has nothing more to do (the instance failed).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// A turn is running (or a typed message waits for the CLI).
    pub fn busy(&self) -> bool {
        self.turns.live().is_some() || self.interrupt.is_some()
    }

    /// The message of the running turn.
    pub fn live_message(&self) -> Option<String> {
        self.turns.live().and_then(|t| t.message_id.clone())
    }

    pub fn starting(&self) -> bool {
        self.startup.is_some()
    }

    fn restore(&mut self, messages: Vec<KnownMessage>, transcript: Option<PathBuf>) {
        for m in &messages {
            match m.state {
                MessageState::Queued if !self.queue.iter().any(|q| q.id == m.id) => {
                    self.queue.push_back(Queued {
                        id: m.id.clone(),
                        text: m.content.clone(),
                    });
                }
                MessageState::Submitted => self.unacknowledged.push(m.id.clone()),
                _ => {}
            }
        }
        self.turns.known = messages
            .into_iter()
            .filter(|m| m.state != MessageState::Queued)
            .collect();
        if let Some(path) = transcript {
            self.follow(path);
        } else if self.reattaching {
            self.reattaching = false;
            self.after_replay();
        }
    }

    pub(super) fn follow(&mut self, path: PathBuf) {
        if self.transcript.as_ref() != Some(&path) {
            self.transcript = Some(path.clone());
            self.out.push(Effect::Follow(path));
        }
    }

    /// After a reattach's replay: a message the CLI acknowledged (its hook said so) that the
    /// transcript does not show yet is still being worked on; messages typed but never
    /// acknowledged need a look at the screen.
    pub(super) fn after_replay(&mut self) {
        self.turns.adopt_in_flight();
        self.start_recovery();
    }

    /// Messages typed before a restart that the transcript never showed.
    pub(super) fn start_recovery(&mut self) {
        let turns = &self.turns;
        self.unacknowledged.retain(|id| !turns.has_message(id));
        if self.unacknowledged.is_empty() {
            self.turns.known.clear();
        } else {
            self.recovering = true;
            self.out.push(Effect::Look(Look::Recover));
        }
    }

    fn recover(&mut self, now: Instant, seen: &Seen) {
        self.recovering = false;
        let pending = std::mem::take(&mut self.unacknowledged);
        if seen.alive != Alive::Running {
            self.cli_gone(seen);
            return;
        }
        let in_box = seen.screen.input_pending;
        // A busy CLI with an empty box took the message before troupe heard back: its
        // prompt is on its way to the transcript, so typing it again would run it twice.
        let taken = seen.screen.kind == crate::agents::ScreenKind::Busy && !in_box;
        let mut requeue = Vec::new();
        for (i, id) in pending.into_iter().enumerate() {
            if i == 0 && self.turns.live().is_none() && (taken || in_box) {
                self.turns
                    .recovered_typed(id, in_box.then(|| now + self.limits.submit), now);
            } else {
                requeue.push(id);
            }
        }
        // Older than anything queued since: they go first, in their order.
        for id in requeue.into_iter().rev() {
            self.out.push(Effect::Requeue {
                message_id: id.clone(),
            });
            if let Some(text) = self.turns.known_text(&id) {
                self.queue.push_front(Queued { id, text });
            }
        }
        self.turns.known.clear();
    }

    fn on_hook(&mut self, now: Instant, event: AgentEvent) {
        match event {
            AgentEvent::SessionStarted { transcript } => {
                if let Some(path) = transcript {
                    self.follow(path);
                }
                if let Some(startup) = self.startup.as_mut() {
                    startup.session_started(now);
                }
                self.ready_if_started(now);
            }
            AgentEvent::PromptSubmitted { prompt_id } => self.prompt_submitted(now, prompt_id),
            AgentEvent::TurnStopped { prompt_id, reply } => {
                self.turn_stopped(now, prompt_id, reply)
            }
            AgentEvent::TurnFailed { prompt_id, error } => self.turn_failed(now, prompt_id, error),
            AgentEvent::PermissionAsked { tool, input } => {
                self.waiting_permission = true;
                self.report(
                    InstanceState::WaitingPermission,
                    &format!("{tool} asks for permission"),
                );
                self.out.push(Effect::Audit {
                    kind: "instance.permission_request".into(),
                    detail: serde_json::json!({ "tool_name": tool, "tool_input": input }),
                });
            }
            AgentEvent::SessionEnded => {
                if self.startup.is_none() {
                    self.exit_check = Some(now + EXIT_CHECK_DELAY);
                }
            }
            AgentEvent::Other => {}
        }
    }

    fn on_seen(&mut self, now: Instant, look: Look, seen: Seen) {
        match look {
            Look::Startup | Look::StartupTimeout => self.startup_seen(now, look, &seen),
            Look::Recover => self.recover(now, &seen),
            Look::Nudge => self.nudge_seen(now, &seen),
            Look::SubmitLate { message_id } => self.submit_late_seen(&message_id, &seen),
            Look::InterruptLate { id } => self.interrupt_late_seen(now, id, &seen),
            Look::InterruptAgain { id } => self.interrupt_again_seen(now, id, &seen),
            Look::Cleared => self.cleared_seen(now, &seen),
            Look::Alive => {
                self.checking_alive = false;
                if seen.alive != Alive::Running {
                    self.cli_gone(&seen);
                }
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        self.startup_tick(now);
        self.turns_tick(now);
        self.interrupt_tick(now);
        self.clearing_tick(now);
        if self.exit_check.is_some_and(|t| now >= t) {
            self.exit_check = None;
            self.out.push(Effect::Look(Look::Alive));
        }
    }

    /// The CLI is gone: say why, from what the look found.
    pub(super) fn cli_gone(&mut self, seen: &Seen) {
        let reason = match seen.alive {
            Alive::NoSession => "its tmux session is gone".to_string(),
            _ if self.startup.is_some() => {
                format!(
                    "the CLI exited while starting; screen ends with: {}",
                    seen.tail
                )
            }
            _ => format!("the CLI exited; screen ends with: {}", seen.tail),
        };
        // One that never started failed; one that ran can be resumed.
        if self.startup.is_some() {
            self.fail(&reason, false);
            return;
        }
        if let Some(pending) = self.interrupt.take() {
            self.out.push(Effect::ResolveInterrupt {
                id: pending.id,
                result: Err(reason.clone()),
            });
        }
        if let Some((message_id, partial)) = self.turns.abandon_live() {
            self.finish(&message_id, MessageState::Failed, partial, &reason);
        }
        self.reported = Some(InstanceState::Exited);
        self.done = true;
        self.out.push(Effect::Exit { reason });
    }

    /// The instance cannot go on. Its messages are failed by the effect's executor; a
    /// pending interrupt gets the reason.
    pub(super) fn fail(&mut self, reason: &str, kill: bool) {
        if let Some(pending) = self.interrupt.take() {
            self.out.push(Effect::ResolveInterrupt {
                id: pending.id,
                result: Err(reason.to_string()),
            });
        }
        self.startup = None;
        self.turns.clear_live();
        self.reported = Some(InstanceState::Failed);
        self.done = true;
        self.out.push(Effect::Fail {
            reason: reason.to_string(),
            kill,
        });
    }

    pub(super) fn finish(
        &mut self,
        message_id: &str,
        state: MessageState,
        response: Option<String>,
        reason: &str,
    ) {
        self.out.push(Effect::FinishMessage {
            message_id: message_id.to_string(),
            state,
            response,
            reason: reason.to_string(),
        });
    }

    /// Writes the state if it changed.
    pub(super) fn report(&mut self, state: InstanceState, reason: &str) {
        if self.reported != Some(state) {
            self.reported = Some(state);
            self.out.push(Effect::Report {
                state,
                reason: reason.to_string(),
            });
        }
    }

    /// The state the machine's knowledge implies, and the next message typed if the CLI is
    /// free. Runs after every input, so a replayed history is folded in before anything new
    /// is typed.
    fn settle(&mut self, now: Instant) {
        // Nothing is reported or typed before a reattach's replay says what the CLI is doing.
        if self.done || self.startup.is_some() || self.reattaching {
            return;
        }
        if self.turns.live().is_none() {
            self.waiting_permission = false;
        }
        let free = self.turns.live().is_none()
            && self.interrupt.is_none()
            && !self.recovering
            && !self.checking_alive
            && self.clearing.is_none();
        if free && let Some(reason) = self.relaunch.take() {
            self.done = true;
            self.out.push(Effect::Relaunch { reason });
            return;
        }
        if self.waiting_permission {
            // Reported by the hook, with the tool's name.
        } else if self.turns.live().is_some() {
            self.report(InstanceState::Busy, "working on a turn");
        } else {
            self.report(InstanceState::Idle, "ready");
        }
        if free && let Some(next) = self.queue.pop_front() {
            self.turns.typed(next.id.clone(), now, self.limits.submit);
            self.out.push(Effect::Deliver {
                message_id: next.id,
                text: next.text,
            });
            self.report(InstanceState::Busy, "working on a turn");
        }
    }
}
