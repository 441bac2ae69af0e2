//! Interrupts: the CLI's interrupt key stops the running turn and keeps the conversation. The CLI confirms by
//! writing the interrupted turn to its transcript; a turn that ends on its own first, or no
//! sign at all within the limit, is reported as such.

use tokio::time::{Duration, Instant};

use super::machine::{Effect, Hold, InterruptAnswer, Look, Machine, Seen};
use crate::states::InterruptOutcome;

/// An interrupt key that lands as a turn begins can be lost (measured with Claude Code
/// 2.1.197: an Escape about 0.3 s after the prompt was sent stopped nothing). Unconfirmed
/// after this long, with the turn still running on screen, the key is pressed again ...
pub const INTERRUPT_AGAIN: Duration = Duration::from_millis(1500);
/// ... at most this many times in all.
pub const INTERRUPT_PRESSES: u32 = 3;
/// After the clear key, the box is looked at again this soon ...
pub const CLEAR_CHECK: Duration = Duration::from_millis(200);
/// ... and the key pressed at most this many times (one line each).
pub const CLEAR_PRESSES: u32 = 20;

#[derive(Debug)]
pub(super) struct Pending {
    pub id: i64,
    pub message_id: Option<String>,
    /// When to stop waiting for the CLI's confirmation (None once the look is asked for).
    pub deadline: Option<Instant>,
    /// When to look whether the key needs pressing again.
    pub again_at: Option<Instant>,
    pub presses: u32,
}

impl Machine {
    pub(super) fn ask_interrupt(&mut self, now: Instant, id: i64) {
        let refused = if self.interrupting().is_some() {
            Some((
                InterruptOutcome::Unconfirmed,
                "another interrupt is already in progress",
            ))
        } else if self.turns.live().is_none() {
            Some((
                InterruptOutcome::NotBusy,
                "the instance was idle; there was nothing to interrupt",
            ))
        } else {
            None
        };
        if let Some((outcome, detail)) = refused {
            self.out.push(Effect::ResolveInterrupt {
                id,
                result: Ok(InterruptAnswer {
                    outcome,
                    message_id: None,
                    partial_response: None,
                    detail: detail.into(),
                }),
            });
            return;
        }
        self.out.push(Effect::PressInterrupt { id });
        // A turn runs, so nothing else holds the instance but a box being cleared or a look
        // for the CLI, which the interrupt's own looks replace.
        self.hold = Hold::Interrupting(Pending {
            id,
            message_id: self.live_message(),
            deadline: Some(now + self.limits.interrupt),
            again_at: Some(now + INTERRUPT_AGAIN),
            presses: 1,
        });
    }

    /// The look before pressing the key again: only a turn still running on screen gets it
    /// (a second key on an idle input box would mean something else to the CLI).
    pub(super) fn interrupt_again_seen(&mut self, now: Instant, id: i64, seen: &Seen) {
        if self.withdrawn(now, id, seen) {
            return;
        }
        let Some(pending) = self.interrupting_mut().filter(|p| p.id == id) else {
            return;
        };
        if seen.screen.kind == crate::agents::ScreenKind::Busy
            && pending.presses < INTERRUPT_PRESSES
        {
            pending.presses += 1;
            pending.again_at = Some(now + INTERRUPT_AGAIN);
            self.out.push(Effect::PressInterrupt { id });
        }
    }

    pub(super) fn interrupt_tick(&mut self, now: Instant) {
        if let Some(pending) = self.interrupting_mut()
            && pending.again_at.is_some_and(|t| now >= t)
            && pending.deadline.is_some_and(|d| now < d)
        {
            pending.again_at = None;
            let id = pending.id;
            // The confirmation may sit unread in the transcript.
            self.out.push(Effect::ReadTranscript);
            self.out.push(Effect::Look(Look::InterruptAgain { id }));
        }
        if let Some(pending) = self.interrupting_mut()
            && pending.deadline.is_some_and(|d| now >= d)
        {
            pending.deadline = None;
            let id = pending.id;
            // The confirmation may sit unread in the transcript.
            self.out.push(Effect::ReadTranscript);
            self.out.push(Effect::Look(Look::InterruptLate { id }));
        }
    }

    pub(super) fn interrupt_late_seen(&mut self, now: Instant, id: i64, seen: &Seen) {
        if self.withdrawn(now, id, seen) {
            return;
        }
        if self.interrupting().is_some_and(|p| p.id == id) {
            self.resolve_interrupt(
                InterruptOutcome::Unconfirmed,
                None,
                None,
                &format!(
                    "no interrupted turn in the transcript after the interrupt key; screen ends with: {}",
                    seen.tail
                ),
            );
        }
    }

    /// An interrupt key that lands before the model's first word makes Claude Code take the
    /// turn back: nothing is answered, nothing is written as interrupted, and the prompt is put
    /// back in the input box (seen on 2.1.197). The screen shows it: the CLI idle, the box not
    /// empty. The turn is over; the box is emptied so the next message is not typed after it.
    fn withdrawn(&mut self, now: Instant, id: i64, seen: &Seen) -> bool {
        let taken_back = self.interrupting().is_some_and(|p| p.id == id)
            && seen.screen.kind == crate::agents::ScreenKind::Ready
            && seen.screen.input_pending;
        if !taken_back {
            return false;
        }
        self.out.push(Effect::Press(crate::agents::Key::ClearInput));
        // Answered first: completing the turn with an interrupt pending would report it as
        // finished before the interrupt.
        self.resolve_interrupt(
            InterruptOutcome::Confirmed,
            None,
            None,
            "the turn stopped before the model answered; the conversation is kept",
        );
        self.hold = Hold::Clearing {
            look_at: Some(now + CLEAR_CHECK),
            presses_left: CLEAR_PRESSES - 1,
        };
        if let Some(key) = self.turns.live_key() {
            // The CLI writes nothing for a turn it takes back, so the output marks it here, as
            // a transcript's interrupt record would be.
            let turn = self.turns.live();
            self.out.push(Effect::Output {
                message_id: turn.and_then(|t| t.message_id.clone()),
                record: crate::agents::Record::Interrupted {
                    uuid: format!("interrupt-{id}"),
                    prompt_id: turn.and_then(|t| t.prompt_id.clone()),
                },
            });
            self.complete(
                now,
                key,
                crate::states::MessageState::Interrupted,
                None,
                "interrupted before the model answered; the CLI took the message back",
            );
        }
        true
    }

    pub(super) fn clearing_tick(&mut self, now: Instant) {
        if let Hold::Clearing { look_at, .. } = &mut self.hold
            && look_at.is_some_and(|at| now >= at)
        {
            // No other look until this one is answered.
            *look_at = None;
            self.out.push(Effect::Look(Look::Cleared));
        }
    }

    pub(super) fn cleared_seen(&mut self, now: Instant, seen: &Seen) {
        let Hold::Clearing {
            look_at,
            presses_left,
        } = &mut self.hold
        else {
            return;
        };
        if seen.screen.input_pending && *presses_left > 0 {
            *look_at = Some(now + CLEAR_CHECK);
            *presses_left -= 1;
            self.out.push(Effect::Press(crate::agents::Key::ClearInput));
        } else {
            self.hold = Hold::None;
        }
    }

    /// Answers the pending interrupt.
    pub(super) fn resolve_interrupt(
        &mut self,
        outcome: InterruptOutcome,
        message_id: Option<String>,
        partial_response: Option<String>,
        detail: &str,
    ) {
        let Some(pending) = self.take_interrupt() else {
            return;
        };
        self.out.push(Effect::ResolveInterrupt {
            id: pending.id,
            result: Ok(InterruptAnswer {
                outcome,
                message_id: message_id.or(pending.message_id),
                partial_response,
                detail: detail.to_string(),
            }),
        });
    }
}
