//! One task per live instance. It alone delivers the instance's messages, follows its
//! transcript and hooks, and writes what happened; everything reaches it as a [`Command`], so
//! the instance's state has one owner and needs no locks.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

use super::{Event, Shared};
use crate::agents::claude::{self, Block, Record, Screen};
use crate::agents::transcript::TranscriptReader;
use crate::db::audit;
use crate::db::instances::Instance;
use crate::db::interrupts::Interrupt;
use crate::db::messages::Message;
use crate::db::output::OutputChunk;
use crate::db::usage::{NewUsage, UsageRecord};
use crate::error::{Error, Result};
use crate::pricing;

pub enum Command {
    /// A message was queued: deliver it if the instance is idle.
    Deliver,
    /// The transcript file changed.
    TranscriptChanged,
    /// A lifecycle hook payload from the CLI.
    Hook(Value),
    Interrupt(oneshot::Sender<Result<InterruptReport>>),
    Terminate(oneshot::Sender<Result<()>>),
}

/// What an interrupt did.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct InterruptReport {
    /// True when the CLI confirmed that the running turn stopped.
    pub interrupted: bool,
    /// confirmed | not_busy | finished_first | unconfirmed
    pub outcome: String,
    /// The message whose turn was stopped, if any.
    pub message_id: Option<String>,
    /// What the instance had answered before it stopped.
    pub partial_response: Option<String>,
    pub detail: String,
}

enum Phase {
    Starting {
        ready: oneshot::Sender<Result<()>>,
        deadline: Instant,
    },
    Running,
}

/// The turn the CLI is working on.
struct Turn {
    message_id: Option<String>,
    /// The message was already answered from the Stop hook; the transcript's turn end only
    /// closes the turn.
    answered: bool,
    /// The latest reply in the turn: (model response id, its text so far).
    last_reply: Option<(String, String)>,
    api_error: Option<String>,
}

struct Submitted {
    message_id: String,
    /// Give up on the message after this.
    deadline: Instant,
    /// Next look at the input box, until the CLI acknowledges the prompt.
    nudge_at: Option<Instant>,
}

/// How long to wait for the CLI to acknowledge a typed message before checking whether the
/// Enter was swallowed (it is, right after startup) and pressing it again.
const SUBMIT_NUDGE: Duration = Duration::from_millis(1000);

struct PendingInterrupt {
    row: i64,
    message_id: Option<String>,
    reply: oneshot::Sender<Result<InterruptReport>>,
    deadline: Instant,
}

pub struct Actor {
    shared: Arc<Shared>,
    id: String,
    session: String,
    tx: mpsc::UnboundedSender<Command>,
    phase: Option<Phase>,
    transcript: Option<TranscriptReader>,
    /// A message typed into the CLI whose turn has not shown up in the transcript yet.
    submitted: Option<Submitted>,
    turn: Option<Turn>,
    interrupt: Option<PendingInterrupt>,
    waiting_permission: bool,
}

/// How often the screen is looked at while the CLI starts: only startup dialogs (folder
/// trust) need it, and only until the SessionStart hook arrives.
const STARTUP_SCREEN_CHECK: Duration = Duration::from_millis(200);

impl Actor {
    pub(crate) fn spawn(
        shared: Arc<Shared>,
        id: String,
        session: String,
        tx: mpsc::UnboundedSender<Command>,
        rx: mpsc::UnboundedReceiver<Command>,
        ready: oneshot::Sender<Result<()>>,
    ) {
        let deadline = Instant::now() + shared.config.startup_timeout;
        let actor = Actor {
            shared,
            id,
            session,
            tx,
            phase: Some(Phase::Starting { ready, deadline }),
            transcript: None,
            submitted: None,
            turn: None,
            interrupt: None,
            waiting_permission: false,
        };
        tokio::spawn(actor.run(rx));
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let shutdown = self.shared.shutdown.clone();
        loop {
            let wake = self.next_deadline();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Terminate(reply)) => {
                        let result = self.terminate().await;
                        let _ = reply.send(result);
                        break;
                    }
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                _ = sleep_until(wake) => {
                    if self.on_deadline().await.is_break() {
                        break;
                    }
                }
                _ = shutdown.cancelled() => break,
            }
        }
        self.detach();
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(Phase::Starting { deadline, .. }) = &self.phase {
            consider((Instant::now() + STARTUP_SCREEN_CHECK).min(*deadline));
        }
        if let Some(sub) = &self.submitted {
            consider(sub.deadline);
            if let Some(nudge) = sub.nudge_at {
                consider(nudge);
            }
        }
        if let Some(pending) = &self.interrupt {
            consider(pending.deadline);
        }
        next
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Deliver => self.deliver_next().await,
            Command::TranscriptChanged => self.read_transcript().await,
            Command::Hook(payload) => self.on_hook(payload).await,
            Command::Interrupt(reply) => self.start_interrupt(reply).await,
            Command::Terminate(_) => unreachable!("handled in run"),
        }
    }

    fn starting(&self) -> bool {
        matches!(self.phase, Some(Phase::Starting { .. }))
    }

    fn busy(&self) -> bool {
        self.turn.is_some() || self.submitted.is_some()
    }

    async fn on_hook(&mut self, payload: Value) {
        let event = payload["hook_event_name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        tracing::debug!(instance = %self.id, event, "hook");
        match event.as_str() {
            "SessionStart" => {
                if let Some(path) = payload["transcript_path"].as_str() {
                    self.follow_transcript(PathBuf::from(path)).await;
                }
                if let Some(Phase::Starting { ready, .. }) = self.phase.take() {
                    self.phase = Some(Phase::Running);
                    self.shared
                        .set_instance_state(&self.id, "idle", "ready")
                        .await;
                    let _ = ready.send(Ok(()));
                    self.deliver_next().await;
                }
            }
            "UserPromptSubmit" => {
                if let Some(sub) = self.submitted.as_mut() {
                    sub.nudge_at = None;
                    let prompt_id = payload["prompt_id"].as_str();
                    let message_id = sub.message_id.clone();
                    self.message_started(&message_id, prompt_id).await;
                }
                self.read_transcript().await;
            }
            "Stop" => {
                self.read_transcript().await;
                self.answer_on_stop(&payload).await;
            }
            "PermissionRequest" => {
                self.read_transcript().await;
                let tool = payload["tool_name"].as_str().unwrap_or("a tool");
                self.waiting_permission = true;
                self.shared
                    .set_instance_state(
                        &self.id,
                        "waiting_permission",
                        &format!("{tool} asks for permission"),
                    )
                    .await;
                audit::record(
                    &self.shared.pool,
                    None,
                    Some(&self.id),
                    "instance.permission_request",
                    json!({ "tool_name": tool, "tool_input": payload["tool_input"] }),
                )
                .await;
            }
            "StopFailure" => {
                self.read_transcript().await;
                let detail = payload["error"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| payload.to_string());
                if let Some(turn) = self.turn.as_mut() {
                    turn.api_error = Some(detail);
                }
            }
            "SessionEnd" => {
                let reason = payload["reason"].as_str().unwrap_or("exited").to_string();
                self.read_transcript().await;
                self.cli_gone(&format!("the CLI ended its session ({reason})"))
                    .await;
            }
            _ => self.read_transcript().await,
        }
    }

    async fn follow_transcript(&mut self, path: PathBuf) {
        if self.transcript.as_ref().is_some_and(|t| t.path() == path) {
            return;
        }
        if let Some(old) = self.transcript.take() {
            self.shared.watcher.unwatch(old.path());
        }
        let path_str = path.display().to_string();
        if let Err(e) = Instance::set_transcript_path(&self.shared.pool, &self.id, &path_str).await
        {
            tracing::error!(instance = %self.id, error = %e, "cannot record transcript path");
        }
        if let Err(e) = self.shared.watcher.watch(&path, self.tx.clone()) {
            tracing::warn!(instance = %self.id, error = %e, "cannot watch transcript; relying on hooks");
        }
        self.transcript = Some(TranscriptReader::new(path));
        self.read_transcript().await;
    }

    async fn read_transcript(&mut self) {
        let Some(reader) = self.transcript.as_mut() else {
            return;
        };
        let lines = match reader.read_new_lines() {
            Ok(lines) => lines,
            Err(e) => {
                tracing::warn!(instance = %self.id, error = %e, "cannot read transcript");
                return;
            }
        };
        for line in lines {
            let record = claude::parse_record(&line);
            if let Err(e) = self.apply(record).await {
                tracing::error!(instance = %self.id, error = %e, "cannot record transcript line");
            }
        }
    }

    /// Folds one transcript record into the database.
    async fn apply(&mut self, record: Record) -> Result<()> {
        let pool = self.shared.pool.clone();
        match record {
            Record::Prompt {
                uuid,
                prompt_id,
                text,
            } => {
                let message_id = match self.submitted.take() {
                    Some(Submitted { message_id, .. }) => {
                        self.message_started(&message_id, prompt_id.as_deref())
                            .await;
                        Some(message_id)
                    }
                    // Typed by someone attached to the tmux session: still a turn.
                    None => None,
                };
                OutputChunk::insert(
                    &pool,
                    &self.id,
                    message_id.as_deref(),
                    "prompt",
                    &uuid,
                    &text,
                )
                .await?;
                self.turn = Some(Turn {
                    message_id,
                    answered: false,
                    last_reply: None,
                    api_error: None,
                });
                self.set_busy().await;
            }
            Record::ToolResult { uuid, text } => {
                self.permission_resolved().await;
                let message_id = self.turn_message();
                OutputChunk::insert(
                    &pool,
                    &self.id,
                    message_id.as_deref(),
                    "tool_result",
                    &uuid,
                    &text,
                )
                .await?;
            }
            Record::Assistant {
                uuid,
                message_id: response_id,
                model,
                blocks,
                usage,
                synthetic,
                api_error,
            } => {
                let message_id = self.turn_message();
                for (i, block) in blocks.iter().enumerate() {
                    let source_id = format!("{uuid}:{i}");
                    match block {
                        Block::Text(text) => {
                            OutputChunk::insert(
                                &pool,
                                &self.id,
                                message_id.as_deref(),
                                "assistant",
                                &source_id,
                                text,
                            )
                            .await?;
                        }
                        Block::ToolUse { name, input } => {
                            let shown = format!("{name} {input}");
                            OutputChunk::insert(
                                &pool,
                                &self.id,
                                message_id.as_deref(),
                                "tool_use",
                                &source_id,
                                &shown,
                            )
                            .await?;
                        }
                    }
                }
                if let Some(usage) = usage.filter(|_| !synthetic && !response_id.is_empty()) {
                    UsageRecord::insert(
                        &pool,
                        &NewUsage {
                            instance_id: &self.id,
                            message_id: message_id.as_deref(),
                            source_id: &response_id,
                            model: &model,
                            input_tokens: usage.input,
                            output_tokens: usage.output,
                            cache_creation_tokens: usage.cache_creation,
                            cache_read_tokens: usage.cache_read,
                            cost_micros: pricing::cost_micros(&model, &usage),
                        },
                    )
                    .await?;
                }
                let text: String = blocks
                    .iter()
                    .filter_map(|b| match b {
                        Block::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                if let Some(turn) = self.turn.as_mut() {
                    match &mut turn.last_reply {
                        Some((id, so_far)) if *id == response_id && !text.is_empty() => {
                            if !so_far.is_empty() {
                                so_far.push('\n');
                            }
                            so_far.push_str(&text);
                        }
                        Some((id, _)) if *id == response_id => {}
                        _ if !text.is_empty() || !synthetic => {
                            turn.last_reply = Some((response_id, text.clone()))
                        }
                        _ => {}
                    }
                    if api_error {
                        turn.api_error = Some(text);
                    }
                }
            }
            Record::Interrupted { uuid, .. } => {
                let turn = self.turn.take();
                let message_id = turn.as_ref().and_then(|t| t.message_id.clone());
                let partial = turn.and_then(|t| t.last_reply).map(|(_, text)| text);
                OutputChunk::insert(
                    &pool,
                    &self.id,
                    message_id.as_deref(),
                    "interrupt",
                    &uuid,
                    "[interrupted]",
                )
                .await?;
                if let Some(id) = &message_id {
                    self.finish_message(
                        id,
                        "interrupted",
                        partial.as_deref(),
                        "interrupted by Escape",
                    )
                    .await;
                }
                if let Some(pending) = self.interrupt.take() {
                    Interrupt::record_outcome(
                        &pool,
                        pending.row,
                        "confirmed",
                        "the CLI recorded the interrupted turn",
                    )
                    .await?;
                    let _ = pending.reply.send(Ok(InterruptReport {
                        interrupted: true,
                        outcome: "confirmed".into(),
                        message_id: message_id.or(pending.message_id),
                        partial_response: partial,
                        detail: "the turn stopped; the conversation is kept".into(),
                    }));
                }
                self.turn_over().await;
            }
            Record::TurnEnd { .. } => {
                let Some(turn) = self.turn.take() else {
                    return Ok(());
                };
                tracing::debug!(instance = %self.id, message = ?turn.message_id, "turn ended");
                let answer = turn.last_reply.map(|(_, text)| text);
                if let Some(id) = turn.message_id.as_ref().filter(|_| !turn.answered) {
                    match &turn.api_error {
                        Some(err) => {
                            self.finish_message(id, "failed", answer.as_deref(), err)
                                .await
                        }
                        None => {
                            self.finish_message(id, "answered", answer.as_deref(), "")
                                .await
                        }
                    }
                }
                if let Some(pending) = self.interrupt.take() {
                    Interrupt::record_outcome(
                        &pool,
                        pending.row,
                        "finished_first",
                        "the turn ended before Escape took effect",
                    )
                    .await?;
                    let _ = pending.reply.send(Ok(InterruptReport {
                        interrupted: false,
                        outcome: "finished_first".into(),
                        message_id: turn.message_id.clone(),
                        partial_response: answer,
                        detail: "the turn finished before the interrupt arrived".into(),
                    }));
                }
                self.turn_over().await;
            }
            Record::Other => {}
        }
        Ok(())
    }

    /// The Stop hook comes tens of milliseconds before the transcript's turn end: answer the
    /// waiting caller now, with the reply the transcript already holds (the hook's copy of it
    /// only if the transcript has not caught up).
    async fn answer_on_stop(&mut self, payload: &Value) {
        let Some(turn) = self.turn.as_mut() else {
            return;
        };
        let Some(message_id) = turn.message_id.clone() else {
            return;
        };
        if turn.answered || turn.api_error.is_some() {
            return;
        }
        let answer = match &turn.last_reply {
            Some((_, text)) => Some(text.clone()),
            None => {
                tracing::debug!(instance = %self.id, "transcript behind the Stop hook; using the hook's copy");
                payload["last_assistant_message"]
                    .as_str()
                    .map(str::to_string)
            }
        };
        turn.answered = true;
        self.finish_message(&message_id, "answered", answer.as_deref(), "")
            .await;
        // Reported idle now; the next queued message still waits for the turn's end record.
        self.shared
            .set_instance_state(&self.id, "idle", "turn finished")
            .await;
    }

    fn turn_message(&self) -> Option<String> {
        self.turn.as_ref().and_then(|t| t.message_id.clone())
    }

    async fn set_busy(&mut self) {
        self.shared
            .set_instance_state(&self.id, "busy", "working on a turn")
            .await;
    }

    async fn permission_resolved(&mut self) {
        if self.waiting_permission {
            self.waiting_permission = false;
            self.set_busy().await;
        }
    }

    async fn turn_over(&mut self) {
        self.waiting_permission = false;
        self.shared
            .set_instance_state(&self.id, "idle", "turn finished")
            .await;
        self.deliver_next().await;
    }

    async fn message_started(&mut self, message_id: &str, prompt_id: Option<&str>) {
        if let Err(e) = Message::mark_started(&self.shared.pool, message_id, prompt_id).await {
            tracing::error!(instance = %self.id, error = %e, "cannot record message start");
        }
        self.publish_message(message_id, "started");
    }

    async fn finish_message(
        &self,
        message_id: &str,
        state: &str,
        response: Option<&str>,
        reason: &str,
    ) {
        if let Err(e) =
            Message::finish(&self.shared.pool, message_id, state, response, reason).await
        {
            tracing::error!(instance = %self.id, error = %e, "cannot record message outcome");
        }
        self.publish_message(message_id, state);
    }

    fn publish_message(&self, message_id: &str, state: &str) {
        self.shared.publish(Event::Message {
            instance_id: self.id.clone(),
            message_id: message_id.to_string(),
            state: state.to_string(),
        });
    }

    /// Types the oldest queued message into the CLI, if nothing else is going on.
    async fn deliver_next(&mut self) {
        if self.starting() || self.busy() || self.interrupt.is_some() {
            return;
        }
        let next = match Message::next_queued(&self.shared.pool, &self.id).await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(instance = %self.id, error = %e, "cannot read the message queue");
                return;
            }
        };
        if let Err(e) = Message::mark_submitted(&self.shared.pool, &next.id).await {
            tracing::error!(instance = %self.id, error = %e, "cannot record submission");
            return;
        }
        self.publish_message(&next.id, "submitted");
        let typed = async {
            self.shared.tmux.paste(&self.session, &next.content).await?;
            self.shared.tmux.send_key(&self.session, "Enter").await
        }
        .await;
        match typed {
            Ok(()) => {
                let now = Instant::now();
                self.submitted = Some(Submitted {
                    message_id: next.id.clone(),
                    deadline: now + self.shared.config.submit_timeout,
                    nudge_at: Some(now + SUBMIT_NUDGE),
                });
                self.set_busy().await;
            }
            Err(e) => {
                let reason = format!("could not type the message into tmux: {e}");
                self.finish_message(&next.id, "failed", None, &reason).await;
                self.check_alive().await;
            }
        }
    }

    async fn start_interrupt(&mut self, reply: oneshot::Sender<Result<InterruptReport>>) {
        let message_id = self
            .turn_message()
            .or_else(|| self.submitted.as_ref().map(|s| s.message_id.clone()));
        let row = match Interrupt::insert(&self.shared.pool, &self.id, message_id.as_deref()).await
        {
            Ok(row) => row,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        if !self.busy() || self.interrupt.is_some() {
            let (outcome, detail) = if self.interrupt.is_some() {
                ("unconfirmed", "another interrupt is already in progress")
            } else {
                (
                    "not_busy",
                    "the instance was idle; there was nothing to interrupt",
                )
            };
            let _ = Interrupt::record_outcome(&self.shared.pool, row, outcome, detail).await;
            let _ = reply.send(Ok(InterruptReport {
                interrupted: false,
                outcome: outcome.into(),
                message_id: None,
                partial_response: None,
                detail: detail.into(),
            }));
            return;
        }
        if let Err(e) = self.shared.tmux.send_key(&self.session, "Escape").await {
            let detail = format!("could not press Escape: {e}");
            let _ = Interrupt::record_outcome(&self.shared.pool, row, "unconfirmed", &detail).await;
            let _ = reply.send(Err(Error::Agent(detail)));
            return;
        }
        self.interrupt = Some(PendingInterrupt {
            row,
            message_id,
            reply,
            deadline: Instant::now() + self.shared.config.interrupt_timeout,
        });
        // The CLI may already have written the interrupted turn.
        self.read_transcript().await;
    }

    /// A timer fired: startup screen check, a submission or an interrupt that took too long.
    async fn on_deadline(&mut self) -> std::ops::ControlFlow<()> {
        let now = Instant::now();
        if let Some(Phase::Starting { deadline, .. }) = &self.phase {
            let deadline = *deadline;
            if let Some(failure) = self.check_startup_screen(now >= deadline).await {
                if let Some(Phase::Starting { ready, .. }) = self.phase.take() {
                    let _ = ready.send(Err(Error::Agent(failure)));
                }
                return std::ops::ControlFlow::Break(());
            }
        }
        if self
            .submitted
            .as_ref()
            .and_then(|s| s.nudge_at)
            .is_some_and(|t| now >= t)
        {
            self.nudge_submission().await;
        }
        if let Some(message_id) = self
            .submitted
            .as_ref()
            .filter(|s| now >= s.deadline)
            .map(|s| s.message_id.clone())
        {
            self.submitted = None;
            let screen = self.screen_tail().await;
            let reason = format!(
                "the CLI did not start a turn for this message within {}s; screen ends with: {screen}",
                self.shared.config.submit_timeout.as_secs()
            );
            self.finish_message(&message_id, "failed", None, &reason)
                .await;
            if !self.check_alive().await {
                return std::ops::ControlFlow::Break(());
            }
            self.turn_over().await;
        }
        if self.interrupt.as_ref().is_some_and(|p| now >= p.deadline) {
            let pending = self.interrupt.take().expect("checked above");
            self.read_transcript().await;
            let screen = self.screen_tail().await;
            let detail = format!(
                "no interrupted turn in the transcript after Escape; screen ends with: {screen}"
            );
            let _ =
                Interrupt::record_outcome(&self.shared.pool, pending.row, "unconfirmed", &detail)
                    .await;
            let _ = pending.reply.send(Ok(InterruptReport {
                interrupted: false,
                outcome: "unconfirmed".into(),
                message_id: pending.message_id,
                partial_response: None,
                detail,
            }));
        }
        std::ops::ControlFlow::Continue(())
    }

    /// The CLI has not acknowledged the typed message yet. If the text still sits in the input
    /// box, the Enter was lost: press it again.
    async fn nudge_submission(&mut self) {
        self.read_transcript().await;
        let Some(sub) = self.submitted.as_mut() else {
            return;
        };
        sub.nudge_at = Some(Instant::now() + SUBMIT_NUDGE);
        let screen = self
            .shared
            .tmux
            .capture(&self.session)
            .await
            .unwrap_or_default();
        if claude::input_box(&screen).is_some_and(|text| !text.is_empty()) {
            tracing::debug!(instance = %self.id, "message still in the input box; pressing Enter again");
            let _ = self.shared.tmux.send_key(&self.session, "Enter").await;
        }
    }

    /// Looks at the screen while the CLI starts. Returns a failure reason when it cannot start.
    async fn check_startup_screen(&mut self, timed_out: bool) -> Option<String> {
        if self
            .shared
            .tmux
            .pane_dead(&self.session)
            .await
            .unwrap_or(true)
        {
            let screen = self.screen_tail().await;
            let reason = format!("the CLI exited while starting; screen ends with: {screen}");
            self.fail(&reason).await;
            return Some(reason);
        }
        let screen = self
            .shared
            .tmux
            .capture(&self.session)
            .await
            .unwrap_or_default();
        match claude::classify_screen(&screen) {
            Screen::TrustDialog => {
                // troupe was asked to work in this directory; the dialog's default is "trust".
                let _ = self.shared.tmux.send_key(&self.session, "Enter").await;
                audit::record(
                    &self.shared.pool,
                    None,
                    Some(&self.id),
                    "instance.trust_accepted",
                    json!({}),
                )
                .await;
            }
            Screen::BypassWarning => {
                let reason = "the CLI stopped at the bypass-permissions warning; troupe does not \
                              accept it on the user's behalf"
                    .to_string();
                self.fail(&reason).await;
                let _ = self.shared.tmux.kill_session(&self.session).await;
                return Some(reason);
            }
            _ => {}
        }
        if timed_out {
            let reason = format!(
                "the CLI did not become ready within {}s; screen ends with: {}",
                self.shared.config.startup_timeout.as_secs(),
                last_lines(&screen, 6)
            );
            self.fail(&reason).await;
            let _ = self.shared.tmux.kill_session(&self.session).await;
            return Some(reason);
        }
        None
    }

    /// True when the CLI still runs; otherwise records why it is gone.
    async fn check_alive(&mut self) -> bool {
        match self.shared.tmux.has_session(&self.session).await {
            Ok(true) => {}
            _ => {
                self.cli_gone("its tmux session is gone").await;
                return false;
            }
        }
        if self
            .shared
            .tmux
            .pane_dead(&self.session)
            .await
            .unwrap_or(false)
        {
            let screen = self.screen_tail().await;
            self.cli_gone(&format!("the CLI exited; screen ends with: {screen}"))
                .await;
            return false;
        }
        true
    }

    async fn cli_gone(&mut self, reason: &str) {
        if let Some(Phase::Starting { ready, .. }) = self.phase.take() {
            let _ = ready.send(Err(Error::Agent(reason.to_string())));
        }
        self.phase = Some(Phase::Running);
        self.fail(reason).await;
    }

    async fn fail(&mut self, reason: &str) {
        let pool = &self.shared.pool;
        let _ = Message::fail_unfinished(pool, &self.id, reason).await;
        self.shared
            .set_instance_state(&self.id, "failed", reason)
            .await;
        audit::record(
            pool,
            None,
            Some(&self.id),
            "instance.failed",
            json!({ "reason": reason }),
        )
        .await;
        self.submitted = None;
        self.turn = None;
        if let Some(pending) = self.interrupt.take() {
            let _ = Interrupt::record_outcome(pool, pending.row, "unconfirmed", reason).await;
            let _ = pending.reply.send(Err(Error::Agent(reason.to_string())));
        }
        self.shared
            .instances
            .lock()
            .expect("instances poisoned")
            .remove(&self.id);
    }

    async fn terminate(&mut self) -> Result<()> {
        if let Some(Phase::Starting { ready, .. }) = self.phase.take() {
            let _ = ready.send(Err(Error::Agent("terminated while starting".into())));
        }
        match self.shared.tmux.kill_session(&self.session).await {
            Ok(()) => {}
            // Already gone is what terminate wants.
            Err(_)
                if !self
                    .shared
                    .tmux
                    .has_session(&self.session)
                    .await
                    .unwrap_or(false) => {}
            Err(e) => return Err(e.into()),
        }
        let pool = &self.shared.pool;
        Message::fail_unfinished(pool, &self.id, "the instance was terminated").await?;
        if let Some(pending) = self.interrupt.take() {
            let _ = Interrupt::record_outcome(pool, pending.row, "unconfirmed", "terminated").await;
            let _ = pending
                .reply
                .send(Err(Error::Agent("the instance was terminated".into())));
        }
        self.shared
            .set_instance_state(&self.id, "terminated", "terminated on request")
            .await;
        self.shared
            .instances
            .lock()
            .expect("instances poisoned")
            .remove(&self.id);
        Ok(())
    }

    async fn screen_tail(&self) -> String {
        match self.shared.tmux.capture(&self.session).await {
            Ok(screen) => last_lines(&screen, 6),
            Err(e) => format!("(no screen: {e})"),
        }
    }

    fn detach(&mut self) {
        if let Some(t) = self.transcript.take() {
            self.shared.watcher.unwatch(t.path());
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn last_lines(screen: &str, n: usize) -> String {
    let lines: Vec<&str> = screen
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
