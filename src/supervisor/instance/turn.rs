//! A message's way from typing to its answer.
//!
//! Two sources say where a turn is. The hooks are exact and quick: one names the prompt the
//! CLI took ([`AgentEvent::PromptSubmitted`]), another closes the turn with the CLI's own copy
//! of the answer ([`AgentEvent::TurnStopped`]). The
//! transcript comes later and not always in order; it supplies the output chunks, tool calls
//! and usage, and the answer only where no hook did (a replay after a restart, an interrupt,
//! an API error). So a turn has two cursors on it: `live` (what the CLI works on, which makes
//! the instance busy) and `tx` (the turn the transcript is writing, which output belongs to).

use tokio::time::{Duration, Instant};

use super::machine::{Alive, Effect, Look, Machine, SUBMIT_ACK_LATE, Seen};
#[cfg(doc)]
use crate::agents::AgentEvent;
use crate::agents::{Key, Record};
use crate::states::{InstanceState, InterruptOutcome, MessageState};

pub use crate::db::messages::KnownMessage;

/// The transcript ended the running turn but the turn-stopped hook, which normally comes
/// within tens of milliseconds, has not: answer from the transcript after this long.
pub const STOP_LATE: Duration = Duration::from_secs(2);
/// A turn closed (or ended in the transcript) whose lines have not all arrived: read the
/// transcript again this often, in case a file event was missed ...
pub const REPLY_RECHECK: Duration = Duration::from_secs(1);
/// ... and stop waiting after this long.
pub const REPLY_GRACE: Duration = Duration::from_secs(30);
/// Finished turns kept for matching late hooks and transcript lines to them.
const KEPT_TURNS: usize = 16;
/// Transcript lines held for a prompt not read yet; beyond this the oldest go unattributed.
const MAX_ORPHANS: usize = 1000;

#[derive(Debug)]
pub(super) struct Turn {
    key: u64,
    pub message_id: Option<String>,
    pub(super) prompt_id: Option<String>,
    /// The CLI's timestamp of the prompt, once the transcript showed it.
    prompt_ts: Option<String>,
    /// The CLI took the prompt (its hook or its transcript said so).
    acked: bool,
    /// Its submit hook came (the CLI sends one per prompt it takes).
    submit_hooked: bool,
    /// Give up on a typed message unacknowledged after this.
    submit_deadline: Option<Instant>,
    /// Look whether the Enter was swallowed at this time.
    nudge_at: Option<Instant>,
    /// The message's outcome is recorded (here or before a restart).
    finished: bool,
    /// The latest reply the transcript holds for the turn: (model response id, text).
    reply: Option<(String, String)>,
    api_error: Option<String>,
    /// The transcript's turn-end line was read: its timestamp (empty when an interrupted
    /// record ended the turn).
    ended: Option<String>,
    /// Answer from the transcript at this time unless the turn-stopped hook comes first.
    stop_wait: Option<Instant>,
    /// Waiting for the transcript to catch up: since when, and the next re-read.
    catch_up: Option<(Instant, Instant)>,
}

impl Turn {
    fn new(key: u64, message_id: Option<String>) -> Turn {
        Turn {
            key,
            message_id,
            prompt_id: None,
            prompt_ts: None,
            acked: false,
            submit_hooked: false,
            submit_deadline: None,
            nudge_at: None,
            finished: false,
            reply: None,
            api_error: None,
            ended: None,
            stop_wait: None,
            catch_up: None,
        }
    }

    fn reply_text(&self) -> Option<String> {
        self.reply
            .as_ref()
            .map(|(_, t)| t.clone())
            .filter(|t| !t.trim().is_empty())
    }

    fn prompt_fits(&self, prompt_id: &Option<String>) -> bool {
        self.prompt_id.is_none() || prompt_id.is_none() || self.prompt_id == *prompt_id
    }
}

#[derive(Debug, Default)]
pub(crate) struct Turns {
    list: Vec<Turn>,
    next_key: u64,
    live: Option<u64>,
    tx: Option<u64>,
    tx_prev: Option<u64>,
    /// A turn-end line read before its turn's prompt (its timestamp).
    early_end: Option<String>,
    /// Replies and tool results read before their turn's prompt.
    orphans: Vec<Record>,
    /// Messages from the database, while a restart is being reconciled.
    pub(super) known: Vec<KnownMessage>,
}

impl Turns {
    fn get(&self, key: u64) -> Option<&Turn> {
        self.list.iter().find(|t| t.key == key)
    }

    fn get_mut(&mut self, key: u64) -> Option<&mut Turn> {
        self.list.iter_mut().find(|t| t.key == key)
    }

    pub(super) fn live_key(&self) -> Option<u64> {
        self.live
    }

    pub(super) fn live(&self) -> Option<&Turn> {
        self.live.and_then(|k| self.get(k))
    }

    fn live_mut(&mut self) -> Option<&mut Turn> {
        let key = self.live?;
        self.get_mut(key)
    }

    fn message_of(&self, key: Option<u64>) -> Option<String> {
        key.and_then(|k| self.get(k))
            .and_then(|t| t.message_id.clone())
    }

    fn by_prompt(&self, prompt_id: &Option<String>) -> Option<u64> {
        prompt_id.as_ref()?;
        self.list
            .iter()
            .rev()
            .find(|t| t.prompt_id == *prompt_id)
            .map(|t| t.key)
    }

    /// The hook names a turn other than the running one: a late hook of a turn already
    /// closed (the transcript closed it first, or hooks arrived out of order).
    fn late_hook(&self, prompt_id: &Option<String>) -> bool {
        self.by_prompt(prompt_id)
            .is_some_and(|k| Some(k) != self.live)
    }

    pub(super) fn has_message(&self, id: &str) -> bool {
        self.list
            .iter()
            .any(|t| t.message_id.as_deref() == Some(id))
    }

    fn add(&mut self, turn_message: Option<String>) -> u64 {
        let key = self.next_key;
        self.next_key += 1;
        self.list.push(Turn::new(key, turn_message));
        self.prune();
        key
    }

    fn prune(&mut self) {
        while self.list.len() > KEPT_TURNS {
            let keep = [self.live, self.tx, self.tx_prev];
            let Some(i) = self
                .list
                .iter()
                .position(|t| t.finished && !keep.contains(&Some(t.key)))
            else {
                break;
            };
            self.list.remove(i);
        }
    }

    /// A message was typed: it is the running turn until the CLI says otherwise.
    pub(super) fn typed(&mut self, message_id: String, now: Instant, submit: Duration) {
        let key = self.add(Some(message_id));
        let turn = self.get_mut(key).expect("just added");
        turn.submit_deadline = Some(now + submit);
        turn.nudge_at = Some(now + SUBMIT_ACK_LATE);
        self.live = Some(key);
    }

    /// After a restart, a message typed before it is taken to be running: acknowledged
    /// already (no deadline), or still in the input box (a deadline, and a look right away).
    pub(super) fn recovered_typed(
        &mut self,
        message_id: String,
        deadline: Option<Instant>,
        now: Instant,
    ) {
        let key = self.add(Some(message_id));
        let turn = self.get_mut(key).expect("just added");
        turn.submit_deadline = deadline;
        turn.nudge_at = deadline.map(|_| now);
        self.live = Some(key);
    }

    pub(super) fn drop_live_for(&mut self, message_id: &str) {
        if let Some(turn) = self.live_mut()
            && turn.message_id.as_deref() == Some(message_id)
        {
            turn.finished = true;
            self.live = None;
        }
    }

    /// Ends the running turn without an outcome of its own (its CLI is gone): its message
    /// and what it had said so far.
    pub(super) fn abandon_live(&mut self) -> Option<(String, Option<String>)> {
        let key = self.live.take()?;
        let turn = self.get_mut(key)?;
        if turn.finished {
            return None;
        }
        turn.finished = true;
        turn.catch_up = None;
        turn.stop_wait = None;
        let partial = turn.reply_text();
        turn.message_id.clone().map(|id| (id, partial))
    }

    pub(super) fn clear_live(&mut self) {
        self.live = None;
    }

    /// After a reattach's replay: the newest message the CLI acknowledged that the
    /// transcript does not show yet is the running turn.
    pub(super) fn adopt_in_flight(&mut self) {
        if self.live.is_some() {
            return;
        }
        let Some(m) = self
            .known
            .iter()
            .rev()
            .find(|m| m.state == MessageState::Started && !self.has_message(&m.id))
            .cloned()
        else {
            return;
        };
        let key = self.add(Some(m.id));
        let turn = self.get_mut(key).expect("just added");
        turn.prompt_id = m.prompt_id;
        turn.acked = true;
        self.live = Some(key);
    }

    pub(super) fn known_text(&self, id: &str) -> Option<String> {
        self.known
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.content.clone())
    }

    /// The known message a replayed prompt belongs to: the one with its prompt id, else the
    /// oldest typed-but-unacknowledged one with the same text (troupe may have gone away
    /// between typing it and hearing back).
    fn known_for(&self, prompt_id: &Option<String>, text: &str) -> Option<KnownMessage> {
        if prompt_id.is_some()
            && let Some(m) = self.known.iter().find(|m| m.prompt_id == *prompt_id)
        {
            return Some(m.clone());
        }
        self.known
            .iter()
            .find(|m| {
                m.state == MessageState::Submitted
                    && m.prompt_id.is_none()
                    && m.content.trim() == text.trim()
                    && !self.has_message(&m.id)
            })
            .cloned()
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.list
            .iter()
            .flat_map(|t| {
                let live = self.live == Some(t.key) && !t.acked;
                [
                    t.nudge_at.filter(|_| live),
                    t.submit_deadline.filter(|_| live),
                    t.stop_wait,
                    t.catch_up.map(|(_, next)| next),
                ]
            })
            .flatten()
            .min()
    }
}

impl Machine {
    /// The CLI took a prompt.
    pub(super) fn prompt_submitted(&mut self, now: Instant, prompt_id: Option<String>) {
        if self.turns.late_hook(&prompt_id) && !self.joins_closed_turn(&prompt_id) {
            // A later submit hook naming this turn is a message taken into it.
            if let Some(turn) = self
                .turns
                .by_prompt(&prompt_id)
                .and_then(|k| self.turns.get_mut(k))
            {
                turn.submit_hooked = true;
            }
            return;
        }
        if let Some(turn) = self.turns.live_mut()
            && turn.prompt_fits(&prompt_id)
        {
            let learned = !turn.acked || (turn.prompt_id.is_none() && prompt_id.is_some());
            turn.acked = true;
            turn.submit_hooked = true;
            turn.submit_deadline = None;
            turn.nudge_at = None;
            if prompt_id.is_some() {
                turn.prompt_id = prompt_id.clone();
            }
            if learned && let Some(message_id) = turn.message_id.clone() {
                self.out.push(Effect::MessageStarted {
                    message_id,
                    prompt_id,
                });
            }
            return;
        }
        // A prompt troupe did not type (someone attached to the session): the CLI is busy
        // with it all the same.
        if let Some(old) = self.turns.live {
            self.supersede(now, old);
        }
        let key = self.turns.add(None);
        let turn = self.turns.get_mut(key).expect("just added");
        turn.acked = true;
        turn.submit_hooked = true;
        turn.prompt_id = prompt_id;
        self.turns.live = Some(key);
    }

    /// Whether a prompt submitted under a turn that already finished is the typed message
    /// that is waiting to start, taken by the CLI into the turn it was closing: a second
    /// submit hook naming that turn. The turn's own may come after its end was read (the
    /// first read of a transcript can hold a whole turn), and is only late.
    fn joins_closed_turn(&self, prompt_id: &Option<String>) -> bool {
        let closed = self
            .turns
            .by_prompt(prompt_id)
            .and_then(|k| self.turns.get(k))
            .is_some_and(|t| t.finished && t.submit_hooked);
        let waiting = self
            .turns
            .live()
            .is_some_and(|t| !t.acked && t.message_id.is_some() && t.prompt_id.is_none());
        self.habits.joins_closing_turn && closed && waiting
    }

    /// The turn is over and the hook carries its answer.
    pub(super) fn turn_stopped(&mut self, now: Instant, prompt_id: Option<String>, reply: String) {
        let Some(key) = self.stopped_turn(&prompt_id) else {
            return;
        };
        let turn = self.turns.get(key).expect("live turn");
        let answer = if reply.trim().is_empty() {
            turn.reply_text()
        } else {
            Some(reply)
        };
        self.complete(now, key, MessageState::Answered, answer, "");
    }

    /// The turn ended in an API error.
    pub(super) fn turn_failed(&mut self, now: Instant, prompt_id: Option<String>, error: String) {
        let Some(key) = self.stopped_turn(&prompt_id) else {
            return;
        };
        let partial = self.turns.get(key).and_then(Turn::reply_text);
        self.complete(now, key, MessageState::Failed, partial, &error);
    }

    /// The running turn a turn-stopped or turn-failed hook closes, if it fits.
    fn stopped_turn(&mut self, prompt_id: &Option<String>) -> Option<u64> {
        if self.turns.late_hook(prompt_id) {
            return None;
        }
        let key = self.turns.live?;
        let turn = self.turns.get_mut(key)?;
        if !turn.prompt_fits(prompt_id) {
            // A stray hook (a late one of an earlier turn, or not from this turn at all).
            return None;
        }
        // The hook may be the first word of this turn (its prompt not read yet): the
        // message started, under this prompt id, before it ends.
        let learned = !turn.acked || (turn.prompt_id.is_none() && prompt_id.is_some());
        if turn.prompt_id.is_none() {
            turn.prompt_id = prompt_id.clone();
        }
        turn.acked = true;
        if learned && let Some(message_id) = turn.message_id.clone() {
            self.out.push(Effect::MessageStarted {
                message_id,
                prompt_id: turn.prompt_id.clone(),
            });
        }
        Some(key)
    }

    /// Records a turn's outcome; the instance is free before its caller hears the answer,
    /// so a caller that looks right after sees it idle.
    pub(super) fn complete(
        &mut self,
        now: Instant,
        key: u64,
        state: MessageState,
        response: Option<String>,
        reason: &str,
    ) {
        let Some(turn) = self.turns.get_mut(key) else {
            return;
        };
        if turn.finished {
            return;
        }
        turn.finished = true;
        turn.stop_wait = None;
        turn.submit_deadline = None;
        turn.nudge_at = None;
        // Output and usage still arrive from the transcript; make sure they are read.
        turn.catch_up = turn.ended.is_none().then_some((now, now + REPLY_RECHECK));
        let message_id = turn.message_id.clone();
        if self.turns.live == Some(key) {
            self.turns.live = None;
            self.waiting_permission = false;
            if self.startup.is_none() {
                self.report(InstanceState::Idle, "turn finished");
            }
        }
        if let Some(id) = &message_id {
            self.finish(id, state, response.clone(), reason);
        }
        if self.interrupt.is_some() {
            self.resolve_interrupt(
                InterruptOutcome::FinishedFirst,
                message_id,
                response,
                "the turn finished before the interrupt arrived",
            );
        }
    }

    /// The turn is over because another prompt started: answered if it said something,
    /// failed otherwise.
    fn supersede(&mut self, now: Instant, key: u64) {
        let Some(turn) = self.turns.get(key) else {
            return;
        };
        if turn.finished {
            return;
        }
        match turn.reply_text() {
            Some(reply) => self.complete(now, key, MessageState::Answered, Some(reply), ""),
            None => self.complete(
                now,
                key,
                MessageState::Failed,
                None,
                "another prompt started before this turn ended",
            ),
        }
    }

    /// After a resume: a turn the transcript leaves open died with the previous process.
    pub(super) fn close_cut_off_turn(&mut self, now: Instant) {
        if let Some(key) = self.turns.live {
            let partial = self.turns.get(key).and_then(Turn::reply_text);
            self.complete(
                now,
                key,
                MessageState::Interrupted,
                partial,
                "the CLI stopped during this turn; troupe resumed the conversation",
            );
            // The process that would have written the rest of it is gone.
            if let Some(turn) = self.turns.get_mut(key) {
                turn.catch_up = None;
            }
        }
    }

    pub(super) fn on_record(&mut self, now: Instant, record: Record, history: bool) {
        match record {
            Record::Prompt {
                uuid,
                prompt_id,
                text,
                ts,
            } => self.on_prompt(now, uuid, prompt_id, text, ts, history),
            Record::Assistant { .. } | Record::ToolResult { .. } => {
                self.on_turn_line(now, record, history)
            }
            Record::Interrupted { .. } => self.on_interrupted(record),
            Record::TurnEnd { ts, .. } => self.on_turn_end(now, ts, history),
            Record::Other => {}
        }
    }

    fn on_prompt(
        &mut self,
        now: Instant,
        uuid: String,
        prompt_id: Option<String>,
        text: String,
        ts: String,
        history: bool,
    ) {
        // Which turn is this? The one the hooks named, else the message just typed, else a
        // message known from before a restart, else a prompt troupe did not type.
        let key = match self.turns.by_prompt(&prompt_id) {
            // The same prompt read again (the CLI rewrote its file, or a replay overlapped).
            Some(k) if self.turns.get(k).is_some_and(|t| t.prompt_ts.is_some()) => return,
            Some(k) => k,
            None => match self.turns.live() {
                Some(t) if t.prompt_ts.is_none() && !t.finished && t.prompt_fits(&prompt_id) => {
                    t.key
                }
                _ => match self.turns.known_for(&prompt_id, &text) {
                    Some(m) => {
                        let key = self.turns.add(Some(m.id));
                        let turn = self.turns.get_mut(key).expect("just added");
                        turn.finished = m.state.is_finished();
                        turn.prompt_id = m.prompt_id;
                        key
                    }
                    None => self.turns.add(None),
                },
            },
        };
        // An earlier turn still open in the transcript is over now.
        if let Some(prev) = self.turns.tx.filter(|p| *p != key) {
            self.supersede(now, prev);
        }
        let turn = self.turns.get_mut(key).expect("turn exists");
        if !turn.finished {
            let learned = !turn.acked || (turn.prompt_id.is_none() && prompt_id.is_some());
            turn.acked = true;
            turn.submit_deadline = None;
            turn.nudge_at = None;
            if turn.prompt_id.is_none() {
                turn.prompt_id = prompt_id.clone();
            }
            if learned && let Some(message_id) = turn.message_id.clone() {
                self.out.push(Effect::MessageStarted {
                    message_id,
                    prompt_id: prompt_id.clone(),
                });
            }
            if self.turns.live != Some(key) {
                // The transcript shows the CLI working on it.
                if let Some(old) = self.turns.live {
                    self.supersede(now, old);
                }
                self.turns.live = Some(key);
            }
        }
        let ended_early = self.turns.early_end.take().filter(|end| *end >= ts);
        let turn = self.turns.get_mut(key).expect("turn exists");
        turn.prompt_ts = Some(ts.clone());
        if turn.ended.is_none() {
            turn.ended = ended_early;
        }
        let message_id = turn.message_id.clone();
        self.out.push(Effect::Output {
            message_id,
            record: Record::Prompt {
                uuid,
                prompt_id,
                text,
                ts: ts.clone(),
            },
        });
        self.turns.tx_prev = self.turns.tx;
        self.turns.tx = Some(key);
        // Lines that came before this prompt: later ones are this turn's, earlier ones the
        // previous turn's.
        let mut orphans = std::mem::take(&mut self.turns.orphans);
        orphans.sort_by(|a, b| a.ts().cmp(b.ts()));
        let earlier = self.turns.message_of(self.turns.tx_prev);
        let mut adopted = Vec::new();
        for r in orphans {
            if r.ts() >= ts.as_str() {
                adopted.push(r);
            } else {
                self.out.push(Effect::Output {
                    message_id: earlier.clone(),
                    record: r,
                });
            }
        }
        for r in adopted {
            self.on_turn_line(now, r, history);
        }
        if self.turns.get(key).is_some_and(|t| t.ended.is_some()) {
            self.check_transcript_end(now, key, history);
        }
    }

    fn on_turn_line(&mut self, now: Instant, record: Record, history: bool) {
        let Some(key) = self.turns.tx else {
            // The CLI can write a reply before the prompt it answers: hold it for that prompt.
            self.hold(record);
            return;
        };
        let turn = self.turns.get(key).expect("transcript turn");
        let ts = record.ts();
        if !ts.is_empty() && turn.prompt_ts.as_deref().is_some_and(|p| ts < p) {
            // A late line of the previous turn.
            let message_id = self.turns.message_of(self.turns.tx_prev);
            self.out.push(Effect::Output { message_id, record });
            return;
        }
        if let Some(end) = &turn.ended
            && (ts.is_empty() || end.is_empty() || ts > end.as_str())
        {
            // Written after this turn's end: the line belongs to a prompt not read yet.
            self.hold(record);
            return;
        }
        let message_id = turn.message_id.clone();
        if matches!(record, Record::ToolResult { .. }) {
            // A tool ran, so any permission dialog was answered.
            self.waiting_permission = false;
        }
        if let Record::Assistant {
            message_id: response_id,
            api_error,
            ..
        } = &record
        {
            let text = record.reply_text().unwrap_or_default();
            let turn = self.turns.get_mut(key).expect("transcript turn");
            match &mut turn.reply {
                Some((id, so_far)) if id == response_id && !text.is_empty() => {
                    if !so_far.is_empty() {
                        so_far.push('\n');
                    }
                    so_far.push_str(&text);
                }
                Some((id, _)) if id == response_id => {}
                _ if !text.is_empty() => turn.reply = Some((response_id.clone(), text.clone())),
                _ => {}
            }
            if *api_error {
                turn.api_error = Some(text);
            }
        }
        self.out.push(Effect::Output { message_id, record });
        if self.turns.get(key).is_some_and(|t| t.ended.is_some()) {
            self.check_transcript_end(now, key, history);
        }
    }

    fn hold(&mut self, record: Record) {
        if self.turns.orphans.len() >= MAX_ORPHANS {
            let oldest = self.turns.orphans.remove(0);
            self.out.push(Effect::Output {
                message_id: None,
                record: oldest,
            });
        }
        self.turns.orphans.push(record);
    }

    fn on_interrupted(&mut self, record: Record) {
        let Record::Interrupted { prompt_id, .. } = &record else {
            return;
        };
        let key = self
            .turns
            .by_prompt(prompt_id)
            .or(self
                .turns
                .tx
                .filter(|k| self.turns.get(*k).is_some_and(|t| !t.finished)))
            .or(self.turns.live);
        let message_id = self.turns.message_of(key);
        self.out.push(Effect::Output {
            message_id: message_id.clone(),
            record,
        });
        self.waiting_permission = false;
        let mut partial = None;
        if let Some(key) = key {
            let turn = self.turns.get_mut(key).expect("turn exists");
            turn.ended.get_or_insert_default();
            turn.catch_up = None;
            partial = turn.reply_text();
            if !turn.finished {
                turn.finished = true;
                turn.stop_wait = None;
                if self.turns.live == Some(key) {
                    self.turns.live = None;
                }
                if let Some(id) = &message_id {
                    self.finish(
                        id,
                        MessageState::Interrupted,
                        partial.clone(),
                        "interrupted on request",
                    );
                }
            }
        }
        if self.interrupt.is_some() {
            self.resolve_interrupt(
                InterruptOutcome::Confirmed,
                message_id,
                partial,
                "the turn stopped; the conversation is kept",
            );
        }
    }

    fn on_turn_end(&mut self, now: Instant, ts: String, history: bool) {
        let Some(key) = self.turns.tx else {
            // Written before its prompt: keep it for the prompt that comes next.
            self.turns.early_end = Some(ts);
            return;
        };
        let turn = self.turns.get_mut(key).expect("transcript turn");
        if turn.prompt_ts.as_deref().is_some_and(|p| ts.as_str() < p) {
            if let Some(prev) = self.turns.tx_prev
                && let Some(t) = self.turns.get_mut(prev)
            {
                t.ended = Some(ts);
                self.check_transcript_end(now, prev, history);
            }
        } else if turn.ended.is_some() {
            self.turns.early_end = Some(ts);
        } else {
            turn.ended = Some(ts);
            self.check_transcript_end(now, key, history);
        }
    }

    /// The transcript says the turn is over: close it from the transcript where no hook did.
    fn check_transcript_end(&mut self, now: Instant, key: u64, history: bool) {
        let live = self.turns.live == Some(key);
        let turn = self.turns.get_mut(key).expect("turn exists");
        if turn.finished {
            turn.catch_up = None;
            return;
        }
        if let Some(error) = turn.api_error.clone() {
            let partial = turn.reply_text();
            self.complete(now, key, MessageState::Failed, partial, &error);
        } else if let Some(reply) = turn.reply_text() {
            if history || !live {
                self.complete(now, key, MessageState::Answered, Some(reply), "");
            } else if turn.stop_wait.is_none() {
                // The hook's copy is the answer; it normally follows within milliseconds.
                turn.stop_wait = Some(now + STOP_LATE);
            }
        } else if turn.catch_up.is_none() {
            // The turn end came before its reply (the CLI writes out of order).
            turn.catch_up = Some((now, now + REPLY_RECHECK));
        }
    }

    pub(super) fn turns_tick(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| now >= t);
        let keys: Vec<u64> = self.turns.list.iter().map(|t| t.key).collect();
        let mut reread = false;
        for key in keys {
            let live = self.turns.live == Some(key);
            let turn = self.turns.get_mut(key).expect("listed");
            if live && !turn.acked && due(turn.nudge_at) {
                turn.nudge_at = None;
                self.out.push(Effect::Look(Look::Nudge));
            }
            let turn = self.turns.get_mut(key).expect("listed");
            if live && !turn.acked && due(turn.submit_deadline) {
                turn.submit_deadline = None;
                if let Some(message_id) = turn.message_id.clone() {
                    self.out.push(Effect::Look(Look::SubmitLate { message_id }));
                }
            }
            let turn = self.turns.get_mut(key).expect("listed");
            if due(turn.stop_wait) {
                turn.stop_wait = None;
                let reply = turn.reply_text();
                self.out.push(Effect::Warn(
                    "the turn ended in the transcript but no turn-stopped hook came; answering \
                     from the transcript"
                        .into(),
                ));
                self.complete(now, key, MessageState::Answered, reply, "");
            }
            let turn = self.turns.get_mut(key).expect("listed");
            if let Some((since, next)) = turn.catch_up
                && now >= next
            {
                if now >= since + REPLY_GRACE {
                    turn.catch_up = None;
                    if !turn.finished {
                        let reply = turn.reply_text();
                        self.out.push(Effect::Warn(
                            "the turn ended but its reply never reached the transcript".into(),
                        ));
                        self.complete(now, key, MessageState::Answered, reply, "");
                    }
                } else {
                    turn.catch_up = Some((since, now + REPLY_RECHECK));
                    reread = true;
                }
            }
        }
        if reread {
            self.out.push(Effect::ReadTranscript);
        }
    }

    /// The look after a typed message went unacknowledged: press Enter again if the text
    /// still sits in the input box.
    pub(super) fn nudge_seen(&mut self, now: Instant, seen: &Seen) {
        if seen.alive != Alive::Running {
            self.cli_gone(seen);
            return;
        }
        let Some(turn) = self.turns.live_mut().filter(|t| !t.acked) else {
            return;
        };
        turn.nudge_at = Some(now + SUBMIT_ACK_LATE);
        if seen.screen.input_pending {
            self.out.push(Effect::Press(Key::Submit));
        }
    }

    pub(super) fn submit_late_seen(&mut self, message_id: &str, seen: &Seen) {
        let still_waiting = self
            .turns
            .live()
            .is_some_and(|t| !t.acked && t.message_id.as_deref() == Some(message_id));
        if !still_waiting {
            return;
        }
        self.turns.drop_live_for(message_id);
        let reason = format!(
            "the CLI did not start a turn for this message within {}s; screen ends with: {}",
            self.limits.submit.as_secs(),
            seen.tail
        );
        self.finish(message_id, MessageState::Failed, None, &reason);
        if seen.alive != Alive::Running {
            self.cli_gone(seen);
        }
    }
}
