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

use super::machine::{Alive, Effect, Look, Machine, Phase, SUBMIT_ACK_LATE, Seen};
#[cfg(doc)]
use crate::agents::AgentEvent;
use crate::agents::{Key, Record};
use crate::states::{InstanceState, InterruptOutcome, MessageState};

use super::machine::Known;

mod hooks;
mod transcript;

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

    /// The CLI took this turn's prompt (a hook or the transcript says so), under `prompt_id`
    /// if it named one. The message started: said the first time, and again when its prompt
    /// id is learned.
    fn acknowledge(&mut self, prompt_id: &Option<String>) -> Option<Effect> {
        let learned = !self.acked || (self.prompt_id.is_none() && prompt_id.is_some());
        self.acked = true;
        self.submit_deadline = None;
        self.nudge_at = None;
        if self.prompt_id.is_none() {
            self.prompt_id = prompt_id.clone();
        }
        let message_id = self.message_id.clone().filter(|_| learned)?;
        Some(Effect::MessageStarted {
            message_id,
            prompt_id: self.prompt_id.clone(),
        })
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
    pub(super) known: Vec<Known>,
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
            .map(|m| m.text.clone())
    }

    /// The known message a replayed prompt belongs to: the one with its prompt id, else the
    /// oldest typed-but-unacknowledged one with the same text (troupe may have gone away
    /// between typing it and hearing back).
    fn known_for(&self, prompt_id: &Option<String>, text: &str) -> Option<Known> {
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
                    && m.text.trim() == text.trim()
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
    pub(super) fn turns_tick(&mut self, now: Instant) {
        let due = |t: Option<Instant>| t.is_some_and(|t| now >= t);
        let keys: Vec<u64> = self.turns.list.iter().map(|t| t.key).collect();
        let mut reread = false;
        // While an interrupt stands, a prompt in the input box may be one the CLI gave back
        // when the interrupt stopped it: Enter would send it again.
        let interrupting = self.interrupting().is_some();
        for key in keys {
            let live = self.turns.live == Some(key);
            let turn = self.turns.get_mut(key).expect("listed");
            if live && !turn.acked && due(turn.nudge_at) {
                if interrupting {
                    turn.nudge_at = Some(now + SUBMIT_ACK_LATE);
                } else {
                    turn.nudge_at = None;
                    self.out.push(Effect::Look(Look::Nudge));
                }
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
        // An interrupt asked while this look was on its way: see turns_tick.
        if seen.screen.input_pending && self.interrupting().is_none() {
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
