//! What the transcript says of a turn: its prompt, replies and tool calls, an interrupt, its
//! end, read live or as history after a restart.

use super::*;

impl Machine {
    pub(in crate::supervisor::instance) fn on_record(
        &mut self,
        now: Instant,
        record: Record,
        history: bool,
    ) {
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

    pub(in crate::supervisor::instance) fn on_prompt(
        &mut self,
        now: Instant,
        uuid: String,
        prompt_id: Option<String>,
        text: String,
        ts: String,
        history: bool,
    ) {
        let Some(key) = self.turn_of_prompt(&prompt_id, &text) else {
            return;
        };
        if matches!(self.phase, Phase::Replaying)
            && let Some(turn) = self.turns.get_mut(key)
        {
            // A turn from before this task: its submit hook went to the process before, so
            // one naming it now is a message the CLI took into it.
            turn.submit_hooked = true;
        }
        // An earlier turn still open in the transcript is over now.
        if let Some(prev) = self.turns.tx.filter(|p| *p != key) {
            self.supersede(now, prev);
        }
        let turn = self.turns.get_mut(key).expect("turn exists");
        if !turn.finished {
            let started = turn.acknowledge(&prompt_id);
            self.out.extend(started);
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
        self.place_orphans(now, &ts, history);
        if self.turns.get(key).is_some_and(|t| t.ended.is_some()) {
            self.check_transcript_end(now, key, history);
        }
    }

    /// Which turn a prompt read from the transcript is: the one the hooks named, else the
    /// message just typed, else a message known from before a restart, else a prompt troupe
    /// did not type. None when it is the same prompt read again (the CLI rewrote its file, or
    /// a replay overlapped).
    fn turn_of_prompt(&mut self, prompt_id: &Option<String>, text: &str) -> Option<u64> {
        if let Some(k) = self.turns.by_prompt(prompt_id) {
            return self
                .turns
                .get(k)
                .is_some_and(|t| t.prompt_ts.is_none())
                .then_some(k);
        }
        if let Some(t) = self.turns.live()
            && t.prompt_ts.is_none()
            && !t.finished
            && t.prompt_fits(prompt_id)
        {
            return Some(t.key);
        }
        let Some(m) = self.turns.known_for(prompt_id, text) else {
            return Some(self.turns.add(None));
        };
        let key = self.turns.add(Some(m.id));
        if let Some(turn) = self.turns.get_mut(key) {
            turn.finished = m.state.is_finished();
            turn.prompt_id = m.prompt_id;
        }
        Some(key)
    }

    /// Lines read before the prompt `ts` was written: later ones are its turn's, earlier ones
    /// the previous turn's.
    fn place_orphans(&mut self, now: Instant, ts: &str, history: bool) {
        let mut orphans = std::mem::take(&mut self.turns.orphans);
        orphans.sort_by(|a, b| a.ts().cmp(b.ts()));
        let earlier = self.turns.message_of(self.turns.tx_prev);
        let mut adopted = Vec::new();
        for r in orphans {
            if r.ts() >= ts {
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
    }

    pub(in crate::supervisor::instance) fn on_turn_line(
        &mut self,
        now: Instant,
        record: Record,
        history: bool,
    ) {
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
        if matches!(record, Record::ToolResult { .. }) && !self.permission_held {
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

    pub(in crate::supervisor::instance) fn hold(&mut self, record: Record) {
        if self.turns.orphans.len() >= MAX_ORPHANS {
            let oldest = self.turns.orphans.remove(0);
            self.out.push(Effect::Output {
                message_id: None,
                record: oldest,
            });
        }
        self.turns.orphans.push(record);
    }

    pub(in crate::supervisor::instance) fn on_interrupted(&mut self, record: Record) {
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
        self.permission_held = false;
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
        if self.interrupting().is_some() {
            self.resolve_interrupt(
                InterruptOutcome::Confirmed,
                message_id,
                partial,
                "the turn stopped; the conversation is kept",
            );
        }
    }

    pub(in crate::supervisor::instance) fn on_turn_end(
        &mut self,
        now: Instant,
        ts: String,
        history: bool,
    ) {
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
    pub(in crate::supervisor::instance) fn check_transcript_end(
        &mut self,
        now: Instant,
        key: u64,
        history: bool,
    ) {
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
}
