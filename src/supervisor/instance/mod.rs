//! One task per live instance. It waits for something to happen (a command, a transcript
//! change, a deadline), feeds it to the instance's [`Machine`], and carries out the effects
//! the machine returns (tmux, the database, events). All decisions are the machine's; this
//! file only does I/O. Everything reaches the task as a [`Command`], so the instance has one
//! owner and needs no locks.

mod ending;
#[cfg(test)]
mod interleavings;
mod interrupt;
pub mod machine;
pub(crate) mod startup;
mod store;
#[cfg(test)]
mod tests;
mod turn;
mod writes;

use ending::exited;
pub(crate) use store::record_output;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Event, Shared};
use crate::agents::transcript::TranscriptReader;
use crate::agents::{Agent, Block, Key, Record, RecordParser, TypeStep};
use crate::db::audit;
use crate::db::instances::Instance;
use crate::db::interrupts::Interrupt;
use crate::db::messages::Message;
use crate::db::output::OutputChunk;
use crate::db::usage::{NewUsage, UsageRecord};
use crate::error::{Error, Result};
use crate::pricing;
use crate::process::ExitWatch;
use crate::states::{InstanceState, InterruptOutcome, MessageState};

pub use machine::InterruptAnswer;
use machine::{Alive, Begin, Effect, End, Input, Limits, Look, Machine, Queued, Seen};
use writes::{Unwritten, Write};

/// How often troupe looks for a paste on screen before Enter (see [`TypeStep::AwaitShown`]):
/// a look through the control client costs tmux a fraction of a millisecond.
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_millis(2);

pub enum Command {
    /// A message was queued (its row is written).
    Queued {
        id: String,
        text: String,
    },
    /// The transcript file changed.
    TranscriptChanged,
    /// A lifecycle hook payload from the CLI.
    Hook(Value),
    /// The CLI's MCP client received one of troupe's lists.
    McpList(super::McpList),
    Interrupt(oneshot::Sender<Result<InterruptAnswer>>),
    Terminate(oneshot::Sender<Result<()>>),
    /// End the tmux session but keep the conversation for a later `--resume`.
    Suspend(oneshot::Sender<Result<()>>),
    /// The CLI's process was already gone when troupe looked for it.
    ProcessExited,
    /// See [`Input::PermissionAsked`].
    PermissionAsked {
        request_id: String,
        summary: String,
    },
    PermissionAnswered,
    /// See [`Input::PermissionLeftAtPane`].
    PermissionLeftAtPane,
}

/// How the task starts.
pub enum Start {
    /// With a CLI that is launching; `ready` hears when it can take messages.
    Launching {
        ready: oneshot::Sender<Result<()>>,
        /// The CLI continues an earlier conversation.
        resumed: bool,
        /// The conversation's transcript, to read from the start, for a CLI whose hooks name
        /// it only when the next prompt comes.
        transcript: Option<PathBuf>,
    },
    /// With a CLI that was already running when troupe (re)started; `relaunch` says why it
    /// must start again once no turn runs.
    Reattach {
        transcript: PathBuf,
        relaunch: Option<String>,
    },
}

pub struct Actor {
    shared: Arc<Shared>,
    id: String,
    session: String,
    agent: Arc<dyn Agent>,
    tx: mpsc::UnboundedSender<Command>,
    machine: Machine,
    transcript: Option<TranscriptReader>,
    /// Reads the followed transcript's lines (started afresh with each file).
    parser: Box<dyn RecordParser>,
    ready: Option<oneshot::Sender<Result<()>>>,
    interrupts: HashMap<i64, oneshot::Sender<Result<InterruptAnswer>>>,
    /// Ends when the CLI's process does.
    exit: Option<ExitWatch>,
    /// Rows not yet written, oldest first.
    unwritten: Unwritten,
    /// This task has logged that the instance is ready.
    ready_said: bool,
    /// Interrupt answers, sent when the step that decided them is carried out.
    answers: Vec<(
        oneshot::Sender<Result<InterruptAnswer>>,
        Result<InterruptAnswer>,
    )>,
}

impl Actor {
    pub(crate) fn spawn(
        shared: Arc<Shared>,
        inst: &Instance,
        agent: Arc<dyn Agent>,
        tx: mpsc::UnboundedSender<Command>,
        rx: mpsc::UnboundedReceiver<Command>,
        start: Start,
    ) {
        let limits = Limits {
            startup: shared.config.startup_timeout,
            submit: shared.config.submit_timeout,
            interrupt: shared.config.interrupt_timeout,
        };
        let (begin, ready, transcript, relaunch) = match start {
            Start::Launching {
                ready,
                resumed,
                transcript,
            } => (Begin::Launch { resumed }, Some(ready), transcript, None),
            Start::Reattach {
                transcript,
                relaunch,
            } => (Begin::Reattach, None, Some(transcript), relaunch),
        };
        let actor = Actor {
            machine: Machine::new(
                limits,
                agent.habits(),
                begin,
                inst.agent_session_id.clone(),
                Instant::now(),
            ),
            parser: agent.parser(),
            shared: shared.clone(),
            id: inst.id.clone(),
            session: inst.tmux_session.clone(),
            agent,
            tx,
            transcript: None,
            ready,
            interrupts: HashMap::new(),
            exit: None,
            unwritten: Unwritten::default(),
            ready_said: false,
            answers: Vec::new(),
        };
        shared.tasks.spawn(actor.run(rx, transcript, relaunch));
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        transcript: Option<PathBuf>,
        relaunch: Option<String>,
    ) {
        let shutdown = self.shared.shutdown.clone();
        match Message::for_replay(&self.shared.pool, &self.id).await {
            Ok(messages) => {
                if let Some(reason) = relaunch {
                    self.feed(Input::RelaunchAsked { reason }).await;
                }
                let messages = messages
                    .into_iter()
                    .map(|m| machine::Known {
                        id: m.id,
                        text: m.content,
                        prompt_id: m.prompt_id,
                        state: m.state,
                    })
                    .collect();
                self.feed(Input::Restore {
                    messages,
                    transcript,
                })
                .await
            }
            Err(e) => {
                let reason = format!("cannot read its messages: {e}");
                self.carry_out(Effect::Fail {
                    reason,
                    kill: false,
                })
                .await;
            }
        }
        if !self.machine.starting() {
            self.watch_exit().await;
        }
        while !self.machine.is_done() {
            let wake = self.machine.next_deadline();
            tokio::select! {
                _ = exited(&self.exit) => {
                    self.exit = None;
                    self.feed(Input::ProcessExited).await;
                }
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
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                _ = sleep_until(wake) => self.feed(Input::Tick).await,
                _ = sleep_until(self.unwritten.retry_at()) => self.flush().await,
                _ = shutdown.cancelled() => break,
            }
        }
        self.finish_writes().await;
        self.detach();
        if self.machine.ended() == Some(End::Relaunching) {
            self.hand_over(&mut rx);
        }
    }

    /// Passes what reached this task while the CLI started again on to the new task (a
    /// message queued in that moment would otherwise wait for the next restart). Hooks are
    /// the old process's and are dropped.
    fn hand_over(&self, rx: &mut mpsc::UnboundedReceiver<Command>) {
        let Some(next) = self
            .shared
            .instances
            .lock()
            .expect("instances poisoned")
            .get(&self.id)
            .cloned()
        else {
            return;
        };
        while let Ok(cmd) = rx.try_recv() {
            if !matches!(cmd, Command::Hook(_)) {
                let _ = next.send(cmd);
            }
        }
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Queued { id, text } => self.feed(Input::Queued(Queued { id, text })).await,
            Command::TranscriptChanged => {
                if let Some(input) = self.read_transcript(false) {
                    self.feed(input).await;
                }
            }
            Command::Hook(payload) => {
                let hook = self.agent.hook(&payload);
                tracing::debug!(instance = %self.id, ?hook, "hook");
                // What the transcript already holds comes first: a hook is often the
                // quicker signal of the two, and never the earlier event.
                if let Some(input) = self.read_transcript(false) {
                    self.feed(input).await;
                }
                self.feed(Input::Hook(hook)).await;
            }
            Command::McpList(list) => {
                tracing::debug!(instance = %self.id, ?list, "the CLI's MCP client listed");
                self.feed(Input::McpListed(list)).await
            }
            Command::ProcessExited => self.feed(Input::ProcessExited).await,
            Command::PermissionAsked {
                request_id,
                summary,
            } => {
                self.feed(Input::PermissionAsked {
                    request_id,
                    summary,
                })
                .await
            }
            Command::PermissionAnswered => self.feed(Input::PermissionAnswered).await,
            Command::PermissionLeftAtPane => self.feed(Input::PermissionLeftAtPane).await,
            Command::Interrupt(reply) => {
                let message_id = self.machine.live_message();
                match Interrupt::insert(&self.shared.pool, &self.id, message_id.as_deref()).await {
                    Ok(row) => {
                        self.interrupts.insert(row, reply);
                        self.feed(Input::InterruptAsked { id: row }).await;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::Terminate(_) | Command::Suspend(_) => unreachable!("handled in run"),
        }
    }

    /// Feeds an input and carries out its effects; what an effect finds is fed next, before
    /// anything else.
    async fn feed(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let effects = self.machine.step(Instant::now(), input);
            for effect in effects {
                if let Some(found) = self.carry_out(effect).await {
                    inputs.push_back(found);
                }
            }
        }
        for (reply, result) in self.answers.drain(..) {
            let _ = reply.send(result);
        }
    }

    async fn carry_out(&mut self, effect: Effect) -> Option<Input> {
        let shared = self.shared.clone();
        let pool = &shared.pool;
        match effect {
            Effect::Follow(path) => return self.follow(path).await,
            Effect::AdoptSession(id) => self.persist(Write::Session { id }).await,
            Effect::ReadTranscript => return self.read_transcript(false),
            Effect::Deliver { message_id, text } => {
                return self.deliver(message_id, text).await;
            }
            Effect::Press(key) => {
                if let Err(e) = self
                    .shared
                    .tmux
                    .send_key(&self.session, self.agent.key(key))
                    .await
                {
                    tracing::warn!(instance = %self.id, error = %e, ?key, "cannot press key");
                    return Some(Input::Seen {
                        look: Look::Alive,
                        seen: self.look().await,
                    });
                }
            }
            Effect::PressKeys(keys) => {
                tracing::debug!(instance = %self.id, ?keys, "pressing keys");
                if let Err(e) = self.shared.tmux.send_keys(&self.session, &keys).await {
                    tracing::warn!(instance = %self.id, error = %e, ?keys, "cannot press keys");
                    return Some(Input::Seen {
                        look: Look::Alive,
                        seen: self.look().await,
                    });
                }
            }
            Effect::PressInterrupt { id } => {
                let key = self.agent.key(Key::Interrupt);
                if let Err(e) = self.shared.tmux.send_key(&self.session, key).await {
                    return Some(Input::InterruptKeyFailed {
                        id,
                        error: e.to_string(),
                    });
                }
            }
            Effect::Look(look) => {
                let seen = self.look().await;
                return Some(Input::Seen { look, seen });
            }
            Effect::MessageStarted {
                message_id,
                prompt_id,
            } => {
                self.persist(Write::Started {
                    message_id,
                    prompt_id,
                })
                .await
            }
            Effect::Output { message_id, record } => {
                self.persist(Write::Output { message_id, record }).await
            }
            Effect::FinishMessage {
                message_id,
                state,
                response,
                reason,
            } => {
                self.persist(Write::Finish {
                    message_id,
                    state,
                    response,
                    reason,
                })
                .await
            }
            Effect::Requeue { message_id } => self.persist(Write::Requeue { message_id }).await,
            Effect::Report { state, reason } => self.persist(Write::State { state, reason }).await,
            Effect::ResolveInterrupt { id, result } => {
                let (outcome, detail) = match &result {
                    Ok(report) => (report.outcome, report.detail.clone()),
                    Err(reason) => (InterruptOutcome::Unconfirmed, reason.clone()),
                };
                self.persist(Write::Interrupt {
                    id,
                    outcome,
                    detail,
                })
                .await;
                // Answered once the whole step is carried out: the state it leads to (idle)
                // is written by then, so the caller never reads the instance as still busy.
                if let Some(reply) = self.interrupts.remove(&id) {
                    self.answers.push((reply, result.map_err(Error::Agent)));
                }
            }
            Effect::Ready => {
                self.watch_exit().await;
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            Effect::Exit { reason } => {
                tracing::warn!(instance = %self.id, "exited: {reason}");
                self.shared
                    .notice("error", format!("{} exited: {reason}", self.id));
                self.persist(Write::State {
                    state: InstanceState::Exited,
                    reason: reason.clone(),
                })
                .await;
                self.finish_writes().await;
                audit::record(
                    pool,
                    None,
                    Some(&self.id),
                    "instance.exited",
                    serde_json::json!({ "reason": reason }),
                )
                .await;
                self.end_interrupts(&reason).await;
                self.forget();
            }
            Effect::Fail { reason, kill } => self.fail(&reason, kill).await,
            Effect::Relaunch { reason } => {
                audit::record(
                    pool,
                    None,
                    Some(&self.id),
                    "instance.relaunch",
                    serde_json::json!({ "reason": reason }),
                )
                .await;
                tracing::info!(instance = %self.id, "starting the CLI again: {reason}");
                // The new task follows the same transcript; this one lets go of it first.
                self.detach();
                let sup = super::Supervisor {
                    shared: self.shared.clone(),
                };
                if let Err(e) = sup.relaunch(&self.id).await {
                    let reason = format!("could not start its CLI again ({reason}): {e}");
                    self.shared.instance_failed(&self.id, &reason).await;
                }
            }
            Effect::Audit { kind, detail } => {
                audit::record(pool, None, Some(&self.id), &kind, detail).await;
            }
            Effect::Warn(text) => tracing::warn!(instance = %self.id, "{text}"),
        }
        None
    }

    async fn follow(&mut self, path: PathBuf) -> Option<Input> {
        tracing::debug!(instance = %self.id, path = %path.display(), "following transcript");
        if let Some(old) = self.transcript.take() {
            self.shared.watcher.unwatch(old.path());
        }
        // Recorded so a restarted troupe finds the transcript again.
        let path_str = path.display().to_string();
        if let Err(e) = Instance::set_transcript_path(&self.shared.pool, &self.id, &path_str).await
        {
            tracing::error!(instance = %self.id, error = %e, "cannot record transcript path");
        }
        if let Err(e) = self.shared.watcher.watch(&path, self.tx.clone()) {
            tracing::warn!(instance = %self.id, error = %e, "cannot watch transcript; relying on hooks");
        }
        self.transcript = Some(TranscriptReader::new(path));
        self.parser = self.agent.parser();
        Some(self.read_transcript(true).unwrap_or(Input::Records {
            records: Vec::new(),
            history: true,
        }))
    }

    fn read_transcript(&mut self, history: bool) -> Option<Input> {
        let reader = self.transcript.as_mut()?;
        let lines = match reader.read_new_lines() {
            Ok(lines) => lines,
            Err(e) => {
                tracing::warn!(instance = %self.id, error = %e, "cannot read transcript");
                return None;
            }
        };
        if lines.is_empty() {
            return None;
        }
        let records = lines
            .iter()
            .map(|l| self.parser.parse(l))
            .filter(|r| *r != Record::Other)
            .collect();
        Some(Input::Records { records, history })
    }

    /// Watches the CLI's process, so its death is noticed at once wherever it happens.
    async fn watch_exit(&mut self) {
        let pid = match self.shared.tmux.pane_pid(&self.session).await {
            Ok(pid) => pid,
            Err(e) => {
                tracing::warn!(instance = %self.id, error = %e, "cannot find the CLI's process");
                return;
            }
        };
        self.exit = match pid.map(ExitWatch::new) {
            Some(Ok(Some(watch))) => Some(watch),
            Some(Err(e)) => {
                tracing::warn!(instance = %self.id, error = %e, "cannot watch the CLI's process");
                None
            }
            // Gone already: say so now.
            Some(Ok(None)) | None => {
                let _ = self.tx.send(Command::ProcessExited);
                None
            }
        };
    }

    /// Writes the submission first, then types the message.
    async fn deliver(&mut self, message_id: String, text: String) -> Option<Input> {
        if let Err(e) = Message::mark_submitted(&self.shared.pool, &message_id).await {
            return Some(Input::DeliveryFailed {
                message_id,
                error: format!("cannot record the submission: {e}"),
            });
        }
        self.publish_message(&message_id, MessageState::Submitted);
        // Each step is its own tmux command: an Enter in the same command sequence as the
        // paste reached Claude Code 2.1.197 while it was still taking the paste, and was lost
        // (1 in 21 sends).
        let tmux = &self.shared.tmux;
        for step in self.agent.type_message(&text) {
            let typed = match step {
                TypeStep::Paste(text) => tmux.paste(&self.session, &text).await,
                TypeStep::Key(key) => tmux.send_key(&self.session, key).await,
                TypeStep::Pause(d) => {
                    // The CLI's own key timing (an Enter too soon after text is a newline
                    // there), not a wait for an event.
                    tokio::time::sleep(d).await;
                    Ok(())
                }
                TypeStep::AwaitShown(within) => {
                    self.await_shown(within).await;
                    Ok(())
                }
            };
            if let Err(e) = typed {
                return Some(Input::DeliveryFailed {
                    message_id,
                    error: e.to_string(),
                });
            }
        }
        None
    }

    /// Looks at the screen until its input box holds something (the paste, drawn), for at
    /// most `within`. The TUI draws to its terminal and tmux tells no one: a look through the
    /// control client (no process) every [`LOOK_EVERY`] is the signal there is. If it never
    /// shows, Enter is pressed all the same and the turn's recovery stands behind it.
    async fn await_shown(&self, within: std::time::Duration) {
        let deadline = Instant::now() + within;
        loop {
            match self.shared.tmux.capture(&self.session).await {
                Ok(text) if self.agent.read_screen(&text).input_pending => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(instance = %self.id, error = %e, "no screen to look at before Enter");
                    return;
                }
            }
            if Instant::now() >= deadline {
                tracing::debug!(instance = %self.id, ?within, "the paste was not on screen; Enter all the same");
                return;
            }
            tokio::time::sleep(LOOK_EVERY).await;
        }
    }

    /// Whether the CLI is there, and what its screen shows.
    async fn look(&self) -> Seen {
        let tmux = &self.shared.tmux;
        // tmux's own words go into the tail: "gone" has more than one cause, and the
        // reason a person reads should say which it was.
        let (alive, asked) = match tmux.has_session(&self.session).await {
            Ok(false) => (Alive::NoSession, None),
            Err(e) => (Alive::NoSession, Some(e.to_string())),
            Ok(true) if tmux.pane_dead(&self.session).await.unwrap_or(false) => {
                (Alive::Exited, None)
            }
            Ok(true) => (Alive::Running, None),
        };
        let (screen, mut tail) = match tmux.capture(&self.session).await {
            Ok(text) => (self.agent.read_screen(&text), last_lines(&text, 6)),
            Err(e) => (self.agent.read_screen(""), format!("(no screen: {e})")),
        };
        if let Some(asked) = asked {
            tail = format!("({asked}) {tail}");
        }
        Seen {
            alive,
            screen,
            tail,
        }
    }
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
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
