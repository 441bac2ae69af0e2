//! The rules of one instance, with no I/O: inputs (hooks, transcript records, screens the
//! machine asked to see, deadlines, requests) and the current time go in; effects (type this,
//! press that, record this, report that) and the next deadline come out. The actor in
//! `mod.rs` carries the effects out and feeds back what they found.
//!
//! The rules are split by concern: `startup.rs` (launch to ready), `turn.rs` (a message's way
//! from typing to its answer, from hooks and the transcript), `interrupt.rs` (stopping a
//! turn); `machine/vocabulary.rs` names what goes in and comes out.

use std::collections::VecDeque;
use std::path::PathBuf;

use tokio::time::{Duration, Instant};

use crate::agents::{AgentEvent, Habits, Hook};
use crate::states::{InstanceState, MessageState};

use super::startup::Startup;
use super::turn::Turns;

mod vocabulary;
pub use vocabulary::*;

/// A message typed but not yet acknowledged gets its screen looked at after this long: the
/// CLI's prompt-submitted hook normally arrives 20-50 ms after the submit key, so a longer
/// silence means the key may have been swallowed (a TUI can drop one that lands right after
/// startup) and the text still sits in the input box.
pub const SUBMIT_ACK_LATE: Duration = Duration::from_millis(750);
/// After SessionEnd the process may still be exiting, and a late SessionEnd may come from a
/// process a resume replaced: look at the pane after this long instead of trusting the hook.
pub const EXIT_CHECK_DELAY: Duration = Duration::from_millis(500);

/// Where the instance is in its life. Together with [`Hold`] and the live turn it decides
/// whether the next message may be typed: only `Running`, with nothing held and no turn.
#[derive(Debug)]
pub(super) enum Phase {
    /// Launch to ready: dialogs, the session, the MCP client's lists.
    Starting(Startup),
    /// Reattached to a CLI that kept running: its transcript is replayed before anything
    /// else happens.
    Replaying,
    /// Messages typed before a restart that the transcript never showed: a look at the screen
    /// says what became of them before anything new is typed.
    Recovering,
    /// Up and taking messages.
    Running,
    /// The task is over, and why.
    Done(End),
}

/// Why an instance's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// It cannot go on ([`Effect::Fail`]).
    Failed,
    /// The CLI exited; its conversation waits for a resume ([`Effect::Exit`]).
    Exited,
    /// The CLI starts again with its conversation ([`Effect::Relaunch`]).
    Relaunching,
}

/// What keeps an instance from taking the next message, besides a turn of its own. One at a
/// time: each begins only when the one before has ended (or replaces it, see
/// `ask_interrupt`).
#[derive(Debug)]
pub(super) enum Hold {
    None,
    /// The interrupt key was pressed; the CLI has not confirmed the stop yet.
    Interrupting(super::interrupt::Pending),
    /// Text the CLI put back in its input box is being cleared.
    Clearing {
        /// When to look at the box again (None while a look is out).
        look_at: Option<Instant>,
        /// How many more times the clear key may be pressed.
        presses_left: u32,
    },
    /// A tmux command failed: nothing is typed until a look says the CLI is still there.
    CheckingAlive,
}

pub struct Machine {
    pub(super) limits: Limits,
    pub(super) habits: Habits,
    /// The CLI's session id: hooks of any other session are refused. Empty until a CLI that
    /// makes its own up names it.
    pub(super) session: String,
    pub(super) phase: Phase,
    pub(super) hold: Hold,
    pub(super) turns: Turns,
    pub(super) queue: VecDeque<Queued>,
    /// The live turn waits on a permission question.
    pub(super) waiting_permission: bool,
    /// troupe holds that question's hook until someone decides: only that decision (or the
    /// turn's end) answers it. A tool result read meanwhile is another tool's, written late.
    pub(super) permission_held: bool,
    /// The transcript being followed.
    pub(super) transcript: Option<PathBuf>,
    /// Messages typed before a restart, not seen in the transcript: what `Recovering` looks
    /// for.
    pub(super) unacknowledged: Vec<String>,
    pub(super) exit_check: Option<Instant>,
    pub(super) reported: Option<InstanceState>,
    pub(super) ready_pending: bool,
    /// Why the CLI must start again once no turn runs.
    pub(super) relaunch: Option<String>,
    /// No message is typed before this: the end of the settle margin after the CLI's MCP
    /// client listed troupe's tools (see [`super::startup::MCP_SETTLE`]).
    pub(super) deliver_from: Option<Instant>,
    pub(super) out: Vec<Effect>,
}

impl Machine {
    pub fn new(
        limits: Limits,
        habits: Habits,
        begin: Begin,
        session: String,
        now: Instant,
    ) -> Machine {
        let mut phase = match begin {
            Begin::Launch { resumed } => {
                Phase::Starting(Startup::new(now + limits.startup, now, resumed))
            }
            Begin::Reattach => Phase::Replaying,
        };
        if !habits.lists_prompts
            && let Phase::Starting(startup) = &mut phase
        {
            startup.lists_tools_only();
        }
        Machine {
            limits,
            habits,
            session,
            phase,
            hold: Hold::None,
            turns: Turns::default(),
            queue: VecDeque::new(),
            waiting_permission: false,
            permission_held: false,
            transcript: None,
            unacknowledged: Vec::new(),
            exit_check: None,
            reported: None,
            ready_pending: false,
            relaunch: None,
            deliver_from: None,
            out: Vec::new(),
        }
    }

    /// Feeds one input; returns what to do, in order.
    pub fn step(&mut self, now: Instant, input: Input) -> Vec<Effect> {
        if self.is_done() {
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
                if history && matches!(self.phase, Phase::Replaying) {
                    self.after_replay();
                }
                if history && let Some(startup) = self.startup_mut() {
                    startup.history_pending = false;
                    self.ready_if_started(now);
                }
            }
            Input::McpListed(list) => self.on_mcp_list(now, list),
            Input::Seen { look, seen } => self.on_seen(now, look, seen),
            Input::Tick => self.on_tick(now),
            Input::InterruptAsked { id } => self.ask_interrupt(now, id),
            Input::DeliveryFailed { message_id, error } => {
                let reason = format!("could not type the message into tmux: {error}");
                self.turns.drop_live_for(&message_id);
                self.finish(&message_id, MessageState::Failed, None, &reason);
                if let Some(pending) = self.take_interrupt() {
                    self.out.push(Effect::ResolveInterrupt {
                        id: pending.id,
                        result: Err(reason),
                    });
                }
                self.hold = Hold::CheckingAlive;
                self.out.push(Effect::Look(Look::Alive));
            }
            Input::ProcessExited => self.out.push(Effect::Look(Look::Alive)),
            Input::PermissionAsked {
                request_id,
                summary,
            } => {
                self.waiting_permission = true;
                self.permission_held = true;
                self.report(
                    InstanceState::WaitingPermission,
                    &format!("{summary} (permission request {request_id})"),
                );
            }
            Input::PermissionAnswered => {
                self.waiting_permission = false;
                self.permission_held = false;
            }
            Input::PermissionLeftAtPane => self.permission_held = false,
            Input::RelaunchAsked { reason } => self.relaunch = Some(reason),
            Input::InterruptKeyFailed { id, error } => {
                if self.interrupting().is_some_and(|p| p.id == id) {
                    self.hold = Hold::None;
                }
                self.out.push(Effect::ResolveInterrupt {
                    id,
                    result: Err(format!("could not press the interrupt key: {error}")),
                });
            }
        }
        self.settle(now);
        if std::mem::take(&mut self.ready_pending) && !self.is_done() {
            self.out.push(Effect::Ready);
        }
        std::mem::take(&mut self.out)
    }

    /// The earliest time the machine wants a [`Input::Tick`].
    pub fn next_deadline(&self) -> Option<Instant> {
        let (hold_a, hold_b) = match &self.hold {
            Hold::Interrupting(p) => (p.deadline, p.again_at),
            Hold::Clearing { look_at, .. } => (*look_at, None),
            Hold::None | Hold::CheckingAlive => (None, None),
        };
        let startup = match &self.phase {
            Phase::Done(_) => return None,
            Phase::Starting(startup) => startup.next_deadline(),
            _ => None,
        };
        let deliver = self.deliver_from.filter(|_| !self.queue.is_empty());
        [
            startup,
            self.turns.next_deadline(),
            hold_a,
            hold_b,
            self.exit_check,
            deliver,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The task has nothing more to do (the instance failed).
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
    }

    /// Why the task ended, once it has.
    pub fn ended(&self) -> Option<End> {
        match self.phase {
            Phase::Done(end) => Some(end),
            _ => None,
        }
    }

    /// A turn is running (or a typed message waits for the CLI).
    pub fn busy(&self) -> bool {
        self.turns.live().is_some() || self.interrupting().is_some()
    }

    /// The message of the running turn.
    pub fn live_message(&self) -> Option<String> {
        self.turns.live().and_then(|t| t.message_id.clone())
    }

    pub fn starting(&self) -> bool {
        matches!(self.phase, Phase::Starting(_))
    }

    pub(super) fn startup_mut(&mut self) -> Option<&mut Startup> {
        match &mut self.phase {
            Phase::Starting(startup) => Some(startup),
            _ => None,
        }
    }

    pub(super) fn interrupting(&self) -> Option<&super::interrupt::Pending> {
        match &self.hold {
            Hold::Interrupting(pending) => Some(pending),
            _ => None,
        }
    }

    pub(super) fn interrupting_mut(&mut self) -> Option<&mut super::interrupt::Pending> {
        match &mut self.hold {
            Hold::Interrupting(pending) => Some(pending),
            _ => None,
        }
    }

    /// Ends the pending interrupt's hold and hands it over to be answered.
    pub(super) fn take_interrupt(&mut self) -> Option<super::interrupt::Pending> {
        match std::mem::replace(&mut self.hold, Hold::None) {
            Hold::Interrupting(pending) => Some(pending),
            other => {
                self.hold = other;
                None
            }
        }
    }

    /// Ends the task.
    fn end(&mut self, end: End) {
        self.phase = Phase::Done(end);
        self.hold = Hold::None;
    }

    fn restore(&mut self, messages: Vec<Known>, transcript: Option<PathBuf>) {
        for m in &messages {
            match m.state {
                MessageState::Queued if !self.queue.iter().any(|q| q.id == m.id) => {
                    self.queue.push_back(Queued {
                        id: m.id.clone(),
                        text: m.text.clone(),
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
        } else if matches!(self.phase, Phase::Replaying) {
            self.after_replay();
        }
    }

    pub(super) fn follow(&mut self, path: PathBuf) {
        if self.transcript.as_ref() != Some(&path) {
            self.transcript = Some(path.clone());
            self.out.push(Effect::Follow(path));
            if let Some(startup) = self.startup_mut() {
                startup.history_pending = true;
            }
        }
    }

    /// After a reattach's replay: a message the CLI acknowledged (its hook said so) that the
    /// transcript does not show yet is still being worked on; messages typed but never
    /// acknowledged need a look at the screen.
    pub(super) fn after_replay(&mut self) {
        self.turns.adopt_in_flight();
        self.start_recovery();
    }

    /// Up after a start or a replay: recovering first if messages typed before a restart are
    /// not in the transcript.
    pub(super) fn start_recovery(&mut self) {
        let turns = &self.turns;
        self.unacknowledged.retain(|id| !turns.has_message(id));
        if self.unacknowledged.is_empty() {
            self.turns.known.clear();
            self.phase = Phase::Running;
        } else {
            self.phase = Phase::Recovering;
            self.out.push(Effect::Look(Look::Recover));
        }
    }

    fn recover(&mut self, now: Instant, seen: &Seen) {
        if !matches!(self.phase, Phase::Recovering) {
            return;
        }
        self.phase = Phase::Running;
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

    /// A hook counts only if it comes from the instance's own CLI session and names the
    /// instance's own transcript: anything else could be another process speaking for it.
    fn accept_hook(&mut self, hook: Hook) -> Option<AgentEvent> {
        if let Some(session) = hook.session {
            if self.session.is_empty() {
                if usable_session_id(&session) {
                    self.session = session.clone();
                    self.out.push(Effect::AdoptSession(session.clone()));
                } else {
                    self.out.push(Effect::Warn(
                        "a hook named a session id troupe cannot use; ignored".into(),
                    ));
                }
            }
            if session != self.session {
                self.out.push(Effect::Warn(format!(
                    "a hook of another CLI session ({session}); refused"
                )));
                self.out.push(Effect::Audit {
                    kind: "instance.hook_refused".into(),
                    detail: serde_json::json!({ "session_id": session }),
                });
                return None;
            }
        }
        let mut event = hook.event;
        if let AgentEvent::SessionStarted {
            transcript: transcript @ Some(_),
        } = &mut event
            && let Some(path) =
                transcript.take_if(|p| !(self.habits.owns_transcript)(&self.session, p))
        {
            self.out.push(Effect::Warn(format!(
                "a hook named a transcript not the instance's own ({}); refused",
                path.display()
            )));
            self.out.push(Effect::Audit {
                kind: "instance.hook_refused".into(),
                detail: serde_json::json!({ "transcript_path": path.display().to_string() }),
            });
        }
        Some(event)
    }

    fn on_hook(&mut self, now: Instant, hook: Hook) {
        let Some(event) = self.accept_hook(hook) else {
            return;
        };
        match event {
            AgentEvent::SessionStarted { transcript } => {
                if let Some(path) = transcript {
                    self.follow(path);
                }
                if let Some(startup) = self.startup_mut() {
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
                if !self.starting() {
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
                if matches!(self.hold, Hold::CheckingAlive) {
                    self.hold = Hold::None;
                }
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
            Alive::NoSession if seen.tail.is_empty() => "its tmux session is gone".to_string(),
            Alive::NoSession => format!("its tmux session is gone: {}", seen.tail),
            _ if self.starting() => {
                format!(
                    "the CLI exited while starting; screen ends with: {}",
                    seen.tail
                )
            }
            _ => format!("the CLI exited; screen ends with: {}", seen.tail),
        };
        // One that never started failed; one that ran can be resumed.
        if self.starting() {
            self.fail(&reason, false);
            return;
        }
        if let Some(pending) = self.take_interrupt() {
            self.out.push(Effect::ResolveInterrupt {
                id: pending.id,
                result: Err(reason.clone()),
            });
        }
        if let Some((message_id, partial)) = self.turns.abandon_live() {
            self.finish(&message_id, MessageState::Failed, partial, &reason);
        }
        self.reported = Some(InstanceState::Exited);
        self.end(End::Exited);
        self.out.push(Effect::Exit { reason });
    }

    /// The instance cannot go on. Its messages are failed by the effect's executor; a
    /// pending interrupt gets the reason.
    pub(super) fn fail(&mut self, reason: &str, kill: bool) {
        if let Some(pending) = self.take_interrupt() {
            self.out.push(Effect::ResolveInterrupt {
                id: pending.id,
                result: Err(reason.to_string()),
            });
        }
        self.turns.clear_live();
        self.reported = Some(InstanceState::Failed);
        self.end(End::Failed);
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
        let free = match (&self.phase, &self.hold) {
            // Nothing is reported or typed before the CLI is up, or before a reattach's
            // replay says what it is doing.
            (Phase::Starting(_) | Phase::Replaying | Phase::Done(_), _) => return,
            (Phase::Running, Hold::None) => self.turns.live().is_none(),
            (Phase::Recovering | Phase::Running, _) => false,
        };
        if self.turns.live().is_none() {
            self.waiting_permission = false;
            self.permission_held = false;
        }
        if free && let Some(reason) = self.relaunch.take() {
            self.end(End::Relaunching);
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
        if self.deliver_from.is_some_and(|t| now >= t) {
            self.deliver_from = None;
        }
        if free
            && self.deliver_from.is_none()
            && let Some(next) = self.queue.pop_front()
        {
            self.turns.typed(next.id.clone(), now, self.limits.submit);
            self.out.push(Effect::Deliver {
                message_id: next.id,
                text: next.text,
            });
            self.report(InstanceState::Busy, "working on a turn");
        }
    }
}

/// A session id a CLI names goes on its command line to resume: only plain ids are kept.
fn usable_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('-')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
