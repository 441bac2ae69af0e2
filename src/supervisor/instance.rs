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
    /// The CLI's MCP client received one of troupe's lists.
    McpList(super::McpList),
    Interrupt(oneshot::Sender<Result<InterruptReport>>),
    Terminate(oneshot::Sender<Result<()>>),
    /// End the tmux session but keep the conversation for a later `--resume`.
    Suspend(oneshot::Sender<Result<()>>),
}

/// How the task starts: with a CLI that is launching, or with one that was already running
/// when troupe (re)started.
pub enum Start {
    Launching {
        ready: oneshot::Sender<Result<()>>,
        /// The CLI continues an earlier conversation: a turn the transcript leaves open was
        /// cut off when the previous process died.
        resumed: bool,
    },
    Reattach {
        transcript: PathBuf,
    },
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
        resumed: bool,
        /// The SessionStart hook arrived; and when to stop waiting for the MCP client.
        session_started: Option<Instant>,
        /// The lists the CLI's MCP client has received from troupe, and when the last
        /// one arrived.
        mcp_lists: Vec<super::McpList>,
        mcp_listed_at: Option<Instant>,
    },
    Running,
}

/// After SessionStart, how long to wait for the CLI's MCP client to list troupe's tools (a
/// first message sent earlier may find no troupe tools) before calling the instance ready.
const MCP_CONNECT_GRACE: Duration = Duration::from_secs(10);
/// Claude Code applies a new MCP connection to its session asynchronously after the lists
/// arrive, with nothing observable when it is done; a prompt in that window sees no troupe
/// tools (seen about 1 in 6 starts). This margin covers it.
const MCP_SETTLE: Duration = Duration::from_millis(250);

/// The turn the CLI is working on.
struct Turn {
    message_id: Option<String>,
    prompt_id: Option<String>,
    /// The CLI's timestamp of the prompt: a turn end written later ends this turn.
    prompt_ts: String,
    /// The message was answered before (a transcript replayed after a restart).
    answered: bool,
    /// The latest reply in the turn: (model response id, its text so far).
    last_reply: Option<(String, String)>,
    api_error: Option<String>,
    /// The transcript's turn-end line for this turn was read.
    ended: bool,
    /// The Stop hook's copy of the final reply: the turn is over once the transcript holds
    /// the same text.
    stop_reply: Option<String>,
}

/// A Stop hook that came before its turn's prompt was read from the transcript.
struct EarlyStop {
    prompt_id: Option<String>,
    reply: String,
}

/// A turn end read before its reply: look at the transcript again this often (a missed file
/// event must not leave the turn open) ...
const REPLY_RECHECK: Duration = Duration::from_millis(250);
/// ... and close the turn after this long even without the reply.
const REPLY_GRACE: Duration = Duration::from_secs(30);

struct Submitted {
    message_id: String,
    /// Give up on the message after this, unless the CLI acknowledged it.
    deadline: Option<Instant>,
    /// The CLI's prompt id, once its UserPromptSubmit hook named it.
    prompt_id: Option<String>,
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
    /// The state last written to the database, so unchanged states are not rewritten.
    reported: &'static str,
    /// When to check whether the CLI really exited after a SessionEnd hook.
    exit_check: Option<Instant>,
    /// A turn-end line read before its turn's prompt (the CLI writes out of order).
    early_end: Option<String>,
    early_stop: Option<EarlyStop>,
    /// Replies and tool results read before their turn's prompt.
    orphans: Vec<Record>,
    /// A turn end without its reply: since when, and when to look again.
    reply_wait: Option<(Instant, Instant)>,
}

/// How long after a SessionEnd hook the pane is checked for a dead CLI.
const EXIT_CHECK_DELAY: Duration = Duration::from_millis(500);

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
        start: Start,
    ) {
        let deadline = Instant::now() + shared.config.startup_timeout;
        let (phase, transcript) = match start {
            Start::Launching { ready, resumed } => (
                Phase::Starting {
                    ready,
                    deadline,
                    resumed,
                    session_started: None,
                    mcp_lists: Vec::new(),
                    mcp_listed_at: None,
                },
                None,
            ),
            Start::Reattach { transcript } => (Phase::Running, Some(transcript)),
        };
        let actor = Actor {
            shared,
            id,
            session,
            tx,
            phase: Some(phase),
            transcript: None,
            submitted: None,
            turn: None,
            interrupt: None,
            waiting_permission: false,
            reported: "",
            exit_check: None,
            early_end: None,
            early_stop: None,
            orphans: Vec::new(),
            reply_wait: None,
        };
        tokio::spawn(actor.run(rx, transcript));
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>, reattach: Option<PathBuf>) {
        let shutdown = self.shared.shutdown.clone();
        if let Some(path) = reattach {
            // Rebuild what happened while troupe was away from the transcript itself.
            self.follow_transcript(path).await;
            self.adopt_turn_in_flight().await;
            self.recover_unacknowledged().await;
            self.settle().await;
        }
        loop {
            let wake = self.next_deadline();
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Terminate(reply)) => {
                        let result = self.terminate().await;
                        let _ = reply.send(result);
                        break;
                    }
                    Some(Command::Suspend(reply)) => {
                        let result = self.suspend().await;
                        let done = result.is_ok();
                        let _ = reply.send(result);
                        if done {
                            break;
                        }
                    }
                    Some(cmd) => {
                        self.handle(cmd).await;
                        if self.reported == "failed" {
                            // The CLI is gone and the instance is marked failed: nothing
                            // more to follow.
                            break;
                        }
                    }
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
        if let Some(Phase::Starting {
            deadline,
            mcp_lists,
            mcp_listed_at,
            ..
        }) = &self.phase
        {
            consider((Instant::now() + STARTUP_SCREEN_CHECK).min(*deadline));
            if mcp_lists.len() == 2
                && let Some(t) = mcp_listed_at
            {
                consider(*t + MCP_SETTLE);
            }
        }
        if let Some(sub) = &self.submitted {
            if let Some(deadline) = sub.deadline {
                consider(deadline);
            }
            if let Some(nudge) = sub.nudge_at {
                consider(nudge);
            }
        }
        if let Some(pending) = &self.interrupt {
            consider(pending.deadline);
        }
        if let Some(t) = self.exit_check {
            consider(t);
        }
        if let Some((_, next_check)) = self.reply_wait {
            consider(next_check);
        }
        next
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Deliver => self.deliver_next().await,
            Command::TranscriptChanged => self.read_transcript().await,
            Command::Hook(payload) => self.on_hook(payload).await,
            Command::McpList(list) => {
                if let Some(Phase::Starting {
                    mcp_lists,
                    mcp_listed_at,
                    ..
                }) = self.phase.as_mut()
                    && !mcp_lists.contains(&list)
                {
                    mcp_lists.push(list);
                    *mcp_listed_at = Some(Instant::now());
                }
                self.ready_if_started().await;
            }
            Command::Interrupt(reply) => self.start_interrupt(reply).await,
            Command::Terminate(_) | Command::Suspend(_) => unreachable!("handled in run"),
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
                if let Some(Phase::Starting {
                    session_started, ..
                }) = self.phase.as_mut()
                {
                    *session_started = Some(Instant::now() + MCP_CONNECT_GRACE);
                }
                self.ready_if_started().await;
            }
            "UserPromptSubmit" => {
                if let Some(sub) = self.submitted.as_mut() {
                    // Acknowledged: no more nudging, and no giving up on it either.
                    sub.nudge_at = None;
                    sub.deadline = None;
                    sub.prompt_id = payload["prompt_id"].as_str().map(str::to_string);
                    let prompt_id = sub.prompt_id.clone();
                    let message_id = sub.message_id.clone();
                    self.message_started(&message_id, prompt_id.as_deref())
                        .await;
                }
                self.read_transcript().await;
            }
            "Stop" => {
                let prompt_id = payload["prompt_id"].as_str().map(str::to_string);
                let reply = payload["last_assistant_message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                match self.turn.as_mut() {
                    Some(turn)
                        if prompt_id.is_none()
                            || turn.prompt_id.is_none()
                            || turn.prompt_id == prompt_id =>
                    {
                        turn.stop_reply = Some(reply);
                    }
                    _ => self.early_stop = Some(EarlyStop { prompt_id, reply }),
                }
                self.try_complete_turn().await;
                self.read_transcript().await;
                self.settle().await;
            }
            "PermissionRequest" => {
                self.read_transcript().await;
                let tool = payload["tool_name"].as_str().unwrap_or("a tool");
                self.waiting_permission = true;
                self.report("waiting_permission", &format!("{tool} asks for permission"))
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
                    turn.ended = true;
                }
                self.try_complete_turn().await;
            }
            "SessionEnd" => {
                // The hook runs before the process exits, and a late one may come from the
                // process a resume replaced (same session id): look at the pane shortly
                // instead of trusting the hook.
                self.read_transcript().await;
                if !self.starting() {
                    self.exit_check = Some(Instant::now() + EXIT_CHECK_DELAY);
                }
            }
            _ => self.read_transcript().await,
        }
    }

    /// Ready once the session started and its MCP client knows troupe's tools (or that
    /// client took too long).
    async fn ready_if_started(&mut self) {
        let now = Instant::now();
        let ready = matches!(
            &self.phase,
            Some(Phase::Starting { session_started: Some(grace_end), mcp_lists, mcp_listed_at, .. })
                if (mcp_lists.len() == 2 && mcp_listed_at.is_some_and(|t| now >= t + MCP_SETTLE))
                    || now >= *grace_end
        );
        if !ready {
            return;
        }
        if let Some(Phase::Starting {
            ready,
            resumed,
            mcp_lists,
            ..
        }) = self.phase.take()
        {
            self.phase = Some(Phase::Running);
            if mcp_lists.len() < 2 {
                tracing::warn!(instance = %self.id, "the CLI's MCP client did not list troupe's tools; it may not reach troupe");
            }
            if resumed {
                self.close_cut_off_turn().await;
                self.recover_unacknowledged().await;
            }
            let _ = ready.send(Ok(()));
            self.settle().await;
        }
    }

    async fn follow_transcript(&mut self, path: PathBuf) {
        if self.transcript.as_ref().is_some_and(|t| t.path() == path) {
            return;
        }
        tracing::debug!(instance = %self.id, path = %path.display(), "following transcript");
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
        if lines.is_empty() {
            return;
        }
        let mut queue: std::collections::VecDeque<Record> =
            lines.iter().map(|l| claude::parse_record(l)).collect();
        while let Some(record) = queue.pop_front() {
            match self.apply(record).await {
                // Lines that came before their turn's prompt now follow it.
                Ok(adopted) => {
                    for r in adopted.into_iter().rev() {
                        queue.push_front(r);
                    }
                }
                Err(e) => {
                    tracing::error!(instance = %self.id, error = %e, "cannot record transcript line")
                }
            }
        }
        self.try_complete_turn().await;
        if !self.starting() {
            self.settle().await;
        }
    }

    /// Folds one transcript record into the database.
    async fn apply(&mut self, record: Record) -> Result<Vec<Record>> {
        let pool = self.shared.pool.clone();
        if matches!(record, Record::Assistant { .. } | Record::ToolResult { .. }) {
            match &self.turn {
                // The CLI can write a reply before the prompt it answers: hold it for that
                // prompt.
                None => {
                    self.orphans.push(record);
                    return Ok(Vec::new());
                }
                // A late line of an earlier turn: output, but not this turn's answer.
                Some(turn) if !record.ts().is_empty() && record.ts() < turn.prompt_ts.as_str() => {
                    self.record_output(&record, None).await?;
                    return Ok(Vec::new());
                }
                Some(_) => {}
            }
        }
        match record {
            Record::Prompt {
                uuid,
                prompt_id,
                text,
                ts,
            } => {
                // The same prompt read again (the CLI rewrote its file, or a replay overlapped):
                // the open turn already stands for it.
                if let Some(turn) = &self.turn
                    && prompt_id.is_some()
                    && turn.prompt_id == prompt_id
                {
                    tracing::debug!(instance = %self.id, uuid, "prompt read again; ignored");
                    return Ok(Vec::new());
                }
                // The typed message, unless the CLI named a different prompt for it.
                let typed = self.submitted.take_if(|sub| {
                    sub.prompt_id.is_none() || prompt_id.is_none() || sub.prompt_id == prompt_id
                });
                let (message_id, answered) = match typed {
                    Some(Submitted { message_id, .. }) => (Some(message_id), false),
                    // Replaying after a restart, or typed by someone attached to the session.
                    None => {
                        match Message::for_prompt(&pool, &self.id, prompt_id.as_deref(), &text)
                            .await?
                        {
                            Some(m) => (Some(m.id.clone()), m.is_finished()),
                            None => (None, false),
                        }
                    }
                };
                if let Some(id) = message_id.as_deref().filter(|_| !answered) {
                    self.message_started(id, prompt_id.as_deref()).await;
                }
                OutputChunk::insert(
                    &pool,
                    &self.id,
                    message_id.as_deref(),
                    "prompt",
                    &uuid,
                    &text,
                )
                .await?;
                // A turn end or Stop hook that came before this prompt was read.
                let ended = self.early_end.take().is_some_and(|end| end >= ts);
                let stop_reply = match self.early_stop.take() {
                    Some(stop) if stop.prompt_id.is_none() || stop.prompt_id == prompt_id => {
                        Some(stop.reply)
                    }
                    other => {
                        self.early_stop = other;
                        None
                    }
                };
                // A new prompt while a turn is open: that turn is over, answered or not.
                if self.turn.as_ref().is_some_and(|t| !t.answered) {
                    self.try_complete_turn().await;
                }
                self.abandon_turn("failed", "another prompt started before this turn ended")
                    .await;
                self.reply_wait = None;
                let mut orphans = std::mem::take(&mut self.orphans);
                orphans.sort_by(|a, b| a.ts().cmp(b.ts()));
                let (adopted, older): (Vec<Record>, Vec<Record>) =
                    orphans.into_iter().partition(|r| r.ts() >= ts.as_str());
                for r in &older {
                    self.record_output(r, None).await?;
                }
                self.turn = Some(Turn {
                    message_id,
                    prompt_id,
                    prompt_ts: ts,
                    answered,
                    last_reply: None,
                    api_error: None,
                    ended,
                    stop_reply,
                });
                return Ok(adopted);
            }
            record @ Record::ToolResult { .. } => {
                self.waiting_permission = false;
                let message_id = self.turn_message();
                self.record_output(&record, message_id.as_deref()).await?;
            }
            record @ Record::Assistant { .. } => {
                let message_id = self.turn_message();
                self.record_output(&record, message_id.as_deref()).await?;
                let Record::Assistant {
                    message_id: response_id,
                    blocks,
                    api_error,
                    ..
                } = record
                else {
                    unreachable!("matched above")
                };
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
                        _ if !text.is_empty() => {
                            turn.last_reply = Some((response_id, text.clone()))
                        }
                        _ => {}
                    }
                    if api_error {
                        turn.api_error = Some(text);
                    }
                }
                self.try_complete_turn().await;
            }
            Record::Interrupted { uuid, .. } => {
                self.reply_wait = None;
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
                self.waiting_permission = false;
            }
            Record::TurnEnd { ts, .. } => match self.turn.as_mut() {
                Some(turn) if ts >= turn.prompt_ts => {
                    turn.ended = true;
                    self.try_complete_turn().await;
                }
                // The end of a turn already closed (by its Stop hook): nothing to do.
                Some(_) => {}
                // Written before its prompt: keep it for the prompt that comes next.
                None => self.early_end = Some(ts),
            },
            Record::Other => {}
        }
        Ok(Vec::new())
    }

    /// Writes a reply's or tool result's output chunks and the model call's usage.
    async fn record_output(&self, record: &Record, message_id: Option<&str>) -> Result<()> {
        let pool = &self.shared.pool;
        match record {
            Record::ToolResult { uuid, text, .. } => {
                OutputChunk::insert(pool, &self.id, message_id, "tool_result", uuid, text).await?;
            }
            Record::Assistant {
                uuid,
                message_id: response_id,
                model,
                blocks,
                usage,
                synthetic,
                ..
            } => {
                for (i, block) in blocks.iter().enumerate() {
                    let source_id = format!("{uuid}:{i}");
                    match block {
                        Block::Text(text) => {
                            OutputChunk::insert(
                                pool,
                                &self.id,
                                message_id,
                                "assistant",
                                &source_id,
                                text,
                            )
                            .await?;
                        }
                        Block::ToolUse { name, input } => {
                            let shown = format!("{name} {input}");
                            OutputChunk::insert(
                                pool, &self.id, message_id, "tool_use", &source_id, &shown,
                            )
                            .await?;
                        }
                    }
                }
                if let Some(usage) = usage.filter(|_| !*synthetic && !response_id.is_empty()) {
                    UsageRecord::insert(
                        pool,
                        &NewUsage {
                            instance_id: &self.id,
                            message_id,
                            source_id: response_id,
                            model,
                            input_tokens: usage.input,
                            output_tokens: usage.output,
                            cache_creation_tokens: usage.cache_creation,
                            cache_read_tokens: usage.cache_read,
                            cost_micros: pricing::cost_micros(model, &usage),
                        },
                    )
                    .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Closes the turn once the CLI has said it is over and the transcript holds the reply:
    /// the transcript's turn-end line plus a reply, or the Stop hook plus the same reply text
    /// in the transcript (the hook comes tens of milliseconds before the turn-end line).
    async fn try_complete_turn(&mut self) {
        let Some(turn) = self.turn.as_ref() else {
            return;
        };
        let reply = turn
            .last_reply
            .as_ref()
            .map(|(_, text)| normalise(text))
            .filter(|t| !t.is_empty());
        let stop = turn.stop_reply.as_deref().map(normalise);
        let complete = if turn.api_error.is_some() {
            turn.ended || stop.is_some()
        } else if let Some(reply) = &reply {
            // The Stop hook names the final reply: wait until the transcript holds that one
            // (an earlier line of the turn may be a preamble before a tool call).
            match &stop {
                // The hook may quote only the reply's last block.
                Some(stop) => stop == reply || (turn.ended && reply.ends_with(stop.as_str())),
                None => turn.ended,
            }
        } else {
            false
        };
        if !complete {
            if (turn.ended || stop.is_some()) && self.reply_wait.is_none() {
                let now = Instant::now();
                self.reply_wait = Some((now, now + REPLY_RECHECK));
            }
            return;
        }
        self.complete_turn().await;
    }

    async fn complete_turn(&mut self) {
        self.reply_wait = None;
        let Some(turn) = self.turn.take() else {
            return;
        };
        tracing::debug!(instance = %self.id, message = ?turn.message_id, "turn ended");
        // The instance is free before its caller hears the answer, so a caller that looks
        // right after sees it idle. Typing the next message waits for the settle that
        // follows the current read or hook.
        if !self.starting() && self.reported != "failed" {
            self.waiting_permission = false;
            self.report("idle", "turn finished").await;
        }
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
            let _ = Interrupt::record_outcome(
                &self.shared.pool,
                pending.row,
                "finished_first",
                "the turn ended before Escape took effect",
            )
            .await;
            let _ = pending.reply.send(Ok(InterruptReport {
                interrupted: false,
                outcome: "finished_first".into(),
                message_id: turn.message_id.clone(),
                partial_response: answer,
                detail: "the turn finished before the interrupt arrived".into(),
            }));
        }
        self.waiting_permission = false;
    }

    fn turn_message(&self) -> Option<String> {
        self.turn.as_ref().and_then(|t| t.message_id.clone())
    }

    /// Writes the state if it changed.
    async fn report(&mut self, state: &'static str, reason: &str) {
        if self.reported != state {
            self.reported = state;
            self.shared
                .set_instance_state(&self.id, state, reason)
                .await;
        }
    }

    /// Brings the recorded state in line with what the task knows, then delivers the next
    /// queued message if the CLI is free. Called after each batch of transcript lines, so a
    /// replayed history is folded in before anything new is typed.
    async fn settle(&mut self) {
        if self.starting() || self.reported == "failed" {
            return;
        }
        let open_turn = self.turn.as_ref().is_some_and(|t| !t.answered);
        if self.waiting_permission {
            // Reported by the hook, with the tool's name.
        } else if open_turn || self.submitted.is_some() {
            self.report("busy", "working on a turn").await;
        } else {
            self.report("idle", "ready").await;
        }
        self.deliver_next().await;
    }

    /// After a resume: a turn the transcript leaves open died with the previous process.
    async fn close_cut_off_turn(&mut self) {
        self.abandon_turn(
            "interrupted",
            "the CLI stopped during this turn; troupe resumed the conversation",
        )
        .await;
    }

    /// Drops the open turn without a proper end, ending its message (with what it had said
    /// so far) in `state` for `reason`.
    async fn abandon_turn(&mut self, state: &str, reason: &str) {
        if let Some(turn) = self.turn.take()
            && let Some(id) = turn.message_id.as_deref().filter(|_| !turn.answered)
        {
            let partial = turn.last_reply.map(|(_, t)| t);
            self.finish_message(id, state, partial.as_deref(), reason)
                .await;
        }
    }

    /// After a reattach: the CLI acknowledged a message (its hook said so) that the
    /// transcript does not show yet; the CLI is working on it.
    async fn adopt_turn_in_flight(&mut self) {
        if self.turn.is_some() {
            return;
        }
        match Message::in_progress(&self.shared.pool, &self.id).await {
            Ok(Some(m)) => {
                self.turn = Some(Turn {
                    message_id: Some(m.id),
                    prompt_id: m.prompt_id,
                    // troupe's clock when the hook said the turn started: just after the
                    // CLI's prompt timestamp, before its turn end.
                    prompt_ts: m.started_at.unwrap_or_default(),
                    answered: false,
                    last_reply: None,
                    api_error: None,
                    ended: false,
                    stop_reply: None,
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(instance = %self.id, error = %e, "cannot read messages in progress")
            }
        }
    }

    /// Messages typed before a restart that the transcript never showed: if the text still
    /// sits in the input box, submit it; otherwise it was lost on the way and goes back in
    /// the queue.
    async fn recover_unacknowledged(&mut self) {
        if self.submitted.is_some() {
            return;
        }
        let pending = match Message::unacknowledged(&self.shared.pool, &self.id).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(instance = %self.id, error = %e, "cannot read unacknowledged messages");
                return;
            }
        };
        if pending.is_empty() {
            return;
        }
        let screen = self
            .shared
            .tmux
            .capture(&self.session)
            .await
            .unwrap_or_default();
        let waiting_in_box = claude::input_box(&screen).is_some_and(|t| !t.is_empty());
        // A busy CLI took the message before troupe heard back: its prompt is on its way to
        // the transcript, so typing it again would run it twice.
        let taken = claude::classify_screen(&screen) == Screen::Busy;
        for (i, m) in pending.into_iter().enumerate() {
            if i == 0 && taken && !waiting_in_box {
                self.submitted = Some(Submitted {
                    message_id: m.id,
                    deadline: None,
                    prompt_id: None,
                    nudge_at: None,
                });
            } else if i == 0 && waiting_in_box {
                let now = Instant::now();
                self.submitted = Some(Submitted {
                    message_id: m.id,
                    deadline: Some(now + self.shared.config.submit_timeout),
                    prompt_id: None,
                    nudge_at: Some(now),
                });
            } else if let Err(e) = Message::requeue(&self.shared.pool, &m.id).await {
                tracing::error!(instance = %self.id, error = %e, "cannot requeue message");
            }
        }
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
                    deadline: Some(now + self.shared.config.submit_timeout),
                    prompt_id: None,
                    nudge_at: Some(now + SUBMIT_NUDGE),
                });
                self.report("busy", "working on a turn").await;
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
        if let Some((since, next_check)) = self.reply_wait
            && now >= next_check
        {
            self.reply_wait = Some((since, now + REPLY_RECHECK));
            self.read_transcript().await;
            if self.reply_wait.is_some() && now >= since + REPLY_GRACE {
                tracing::warn!(instance = %self.id, "the turn ended but its reply never reached the transcript");
                if let Some(turn) = self.turn.as_mut()
                    && turn.last_reply.is_none()
                    && let Some(hook_copy) = turn.stop_reply.clone()
                {
                    turn.last_reply = Some((String::new(), hook_copy));
                }
                self.complete_turn().await;
                self.settle().await;
            }
        }
        if self.exit_check.is_some_and(|t| now >= t) {
            self.exit_check = None;
            if !self.check_alive().await {
                return std::ops::ControlFlow::Break(());
            }
        }
        if matches!(
            self.phase,
            Some(Phase::Starting {
                session_started: Some(_),
                ..
            })
        ) {
            self.ready_if_started().await;
        }
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
            .filter(|s| s.deadline.is_some_and(|d| now >= d))
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
            self.settle().await;
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
        self.shared.instance_failed(&self.id, reason).await;
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
        self.reported = "failed";
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
        self.shared
            .fail_messages(&self.id, "the instance was terminated")
            .await;
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

    /// Ends the tmux session but keeps the conversation: the next message resumes it.
    async fn suspend(&mut self) -> Result<()> {
        if self.busy() || self.interrupt.is_some() {
            return Err(Error::InvalidInput(format!(
                "instance {} is busy; wait for its answer or interrupt it before suspending",
                self.id
            )));
        }
        if self.shared.tmux.has_session(&self.session).await? {
            self.shared.tmux.kill_session(&self.session).await?;
        }
        self.shared
            .set_instance_state(
                &self.id,
                "suspended",
                "suspended; the next message resumes it",
            )
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

/// Text compared for sameness: whitespace runs count as one space.
fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn last_lines(screen: &str, n: usize) -> String {
    let lines: Vec<&str> = screen
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
