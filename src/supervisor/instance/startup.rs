//! From launch to ready: the screen is looked at only until the CLI's session starts (for
//! dialogs that only the screen shows), then the instance is ready once the CLI's MCP client
//! has troupe's tools, or after a grace period.

use tokio::time::{Duration, Instant};

use super::machine::{Alive, Effect, Look, Machine, Phase, Seen};
use crate::agents::ScreenKind;
use crate::supervisor::McpList;

/// How often the screen is looked at while the CLI starts, until its session-started hook (a
/// look is a command on the tmux control client, no process).
pub const STARTUP_SCREEN_CHECK: Duration = Duration::from_millis(100);
/// After the session started, how long to wait for the CLI's MCP client to list troupe's tools (a
/// first message sent earlier may find no troupe tools) before calling the instance ready.
pub const MCP_CONNECT_GRACE: Duration = Duration::from_secs(10);
/// A CLI may apply a new MCP connection to its session asynchronously after the lists arrive,
/// with nothing observable when it is done; a prompt in that window sees no troupe tools
/// (seen with Claude Code 2.1.197 in about 1 in 6 starts). This margin covers it. Measured
/// again on 2.1.328, a message sent as soon as each of a run of spawns was ready: with no
/// margin, 2 first requests of 25 carried no troupe tool; with this one, none of 30.
///
/// The instance is ready when the lists arrive, as the CLI's own input box is: only a message
/// typed within the margin waits for the rest of it, so a spawn does not.
pub const MCP_SETTLE: Duration = Duration::from_millis(250);
/// After answering a startup dialog, the screen takes a moment to redraw; looking again
/// sooner would see the old dialog and answer it twice (the next dialog's default may be
/// "exit").
pub const DIALOG_REDRAW: Duration = Duration::from_millis(500);
/// After a dialog's cursor key, how soon to look for the cursor on the choice.
pub const DIALOG_CURSOR_CHECK: Duration = Duration::from_millis(50);

/// The cursor keys pressed in the dialog on screen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CursorKeys {
    dialog: &'static str,
    presses: u32,
    last: Instant,
}

/// What to do about a startup dialog: press its keys or not, and when to look next.
///
/// A cursor key can be lost while the dialog is still setting up, or arrive late on a busy
/// machine, so a cursor key is pressed again only after [`DIALOG_REDRAW`] without the cursor
/// reaching the choice. Enter waits until [`DIALOG_REDRAW`] after the last cursor key and a
/// look that still finds the cursor on the choice, even when the cursor got there sooner.
/// Seen on Claude Code 2.1.328 with an Enter sent 50 ms after a look found the cursor moved:
/// once the Enter did nothing and the next look found the dialog again with the cursor back
/// on "No, exit" (the dialog drawn anew), and twice in the same run of the suite the Enter
/// took "No, exit".
pub(crate) fn dialog_step(
    cursor: &mut Option<CursorKeys>,
    dialog: &'static str,
    answers: bool,
    now: Instant,
) -> (bool, Instant) {
    let mine = cursor.filter(|c| c.dialog == dialog);
    let settled = mine.is_none_or(|c| now >= c.last + DIALOG_REDRAW);
    if answers {
        if settled {
            *cursor = None;
            return (true, now + DIALOG_REDRAW);
        }
        let last = mine.map_or(now, |c| c.last);
        return (false, last + DIALOG_REDRAW);
    }
    if !settled {
        let last = mine.map_or(now, |c| c.last);
        return (false, (now + DIALOG_CURSOR_CHECK).min(last + DIALOG_REDRAW));
    }
    *cursor = Some(CursorKeys {
        dialog,
        presses: mine.map_or(0, |c| c.presses) + 1,
        last: now,
    });
    (true, now + DIALOG_CURSOR_CHECK)
}

#[derive(Debug)]
pub(super) struct Startup {
    deadline: Instant,
    resumed: bool,
    /// The next look at the screen, until the session starts.
    next_look: Option<Instant>,
    timed_out: bool,
    /// Set when the session started: when to stop waiting for the MCP client.
    grace_end: Option<Instant>,
    lists: Vec<McpList>,
    /// How many lists the CLI's MCP client fetches (tools, and prompts where it does).
    lists_needed: usize,
    listed_at: Option<Instant>,
    /// The cursor keys pressed in the dialog on screen, if any.
    cursor: Option<CursorKeys>,
    /// When the machine began (the CLI's tmux session just made), and when the CLI said its
    /// session started: with `listed_at`, where a start's time went.
    began: Instant,
    session_at: Option<Instant>,
    /// Startup dialogs answered.
    dialogs: u32,
    /// A transcript is being followed whose history is not read yet. Until it is, the
    /// instance is not ready: a resumed start closes the turn its history leaves open, and
    /// it must have read that history to know the turn (2.1.197 lists troupe's tools before
    /// its session starts, so readiness and the history's arrival fall in different steps).
    pub(super) history_pending: bool,
}

impl Startup {
    pub fn new(deadline: Instant, now: Instant, resumed: bool) -> Startup {
        Startup {
            deadline,
            resumed,
            next_look: Some(now + STARTUP_SCREEN_CHECK),
            timed_out: false,
            grace_end: None,
            lists: Vec::new(),
            lists_needed: 2,
            listed_at: None,
            cursor: None,
            began: now,
            session_at: None,
            dialogs: 0,
            history_pending: false,
        }
    }

    pub fn lists_tools_only(&mut self) {
        self.lists_needed = 1;
    }

    pub fn session_started(&mut self, now: Instant) {
        if self.grace_end.is_none() {
            self.grace_end = Some(now + MCP_CONNECT_GRACE);
            self.next_look = None;
            self.session_at = Some(now);
        }
    }

    /// When the CLI's MCP client had listed everything troupe waits for.
    fn listed(&self) -> Option<Instant> {
        if self.lists.len() >= self.lists_needed {
            self.listed_at
        } else {
            None
        }
    }

    /// Where the start's time went, in milliseconds from the CLI's launch: its session
    /// started, its MCP client listed troupe's tools (None if it did not in time), ready.
    fn timings(&self, ready: Instant) -> serde_json::Value {
        let ms = |t: Instant| t.saturating_duration_since(self.began).as_millis() as u64;
        let listed = self
            .listed_at
            .filter(|_| self.lists.len() >= self.lists_needed);
        serde_json::json!({
            "session_ms": self.session_at.map(ms),
            "tools_listed_ms": listed.map(ms),
            "ready_ms": ms(ready),
            "dialogs": self.dialogs,
            "resumed": self.resumed,
        })
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        [
            (!self.timed_out).then_some(self.deadline),
            self.next_look,
            // Both lists in after the session started make the instance ready in that step:
            // nothing to wake for.
            self.grace_end,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Machine {
    pub(super) fn startup_tick(&mut self, now: Instant) {
        let Some(startup) = self.startup_mut() else {
            return;
        };
        if !startup.timed_out && now >= startup.deadline {
            startup.timed_out = true;
            startup.next_look = None;
            self.out.push(Effect::Look(Look::StartupTimeout));
            return;
        }
        if startup.next_look.is_some_and(|t| now >= t) {
            startup.next_look = None;
            self.out.push(Effect::Look(Look::Startup));
        }
        self.ready_if_started(now);
    }

    pub(super) fn startup_seen(&mut self, now: Instant, look: Look, seen: &Seen) {
        if !self.starting() {
            return;
        }
        if seen.alive != Alive::Running {
            self.cli_gone(seen);
            return;
        }
        if let ScreenKind::Refused(reason) = &seen.screen.kind {
            self.fail(reason, true);
            return;
        }
        if look == Look::StartupTimeout {
            let reason = format!(
                "the CLI did not become ready within {}s; screen ends with: {}",
                self.limits.startup.as_secs(),
                seen.tail
            );
            self.fail(&reason, true);
            return;
        }
        let mut next = now + STARTUP_SCREEN_CHECK;
        if seen.screen.kind == ScreenKind::Ready && !self.habits.announces_session {
            // This CLI's session-started hook waits for the first prompt: its input box is
            // the sign that it started.
            if let Some(startup) = self.startup_mut() {
                startup.session_started(now);
            }
            self.ready_if_started(now);
            return;
        }
        if let ScreenKind::Dialog {
            name,
            keys,
            answers,
        } = &seen.screen.kind
        {
            let Some(startup) = self.startup_mut() else {
                return;
            };
            let (press, look) = dialog_step(&mut startup.cursor, name, *answers, now);
            if press && *answers {
                startup.dialogs += 1;
            }
            next = look;
            if press {
                self.out.push(Effect::PressKeys(keys.clone()));
                if *answers {
                    self.out.push(Effect::Audit {
                        kind: format!("instance.{name}_accepted"),
                        detail: serde_json::json!({}),
                    });
                }
            }
        }
        if let Some(startup) = self.startup_mut()
            && startup.grace_end.is_none()
        {
            startup.next_look = Some(next);
        }
    }

    pub(super) fn on_mcp_list(&mut self, now: Instant, list: McpList) {
        if let Some(startup) = self.startup_mut()
            && !startup.lists.contains(&list)
        {
            startup.lists.push(list);
            startup.listed_at = Some(now);
        }
        self.ready_if_started(now);
    }

    /// Ready once the session started and its MCP client knows troupe's tools (or that
    /// client took too long).
    pub(super) fn ready_if_started(&mut self, now: Instant) {
        let Phase::Starting(startup) = &self.phase else {
            return;
        };
        let ready = !startup.history_pending
            && startup
                .grace_end
                .is_some_and(|grace_end| now >= grace_end || startup.listed().is_some());
        if !ready {
            return;
        }
        let Phase::Starting(startup) = std::mem::replace(&mut self.phase, Phase::Running) else {
            unreachable!("matched above")
        };
        if startup.lists.len() < startup.lists_needed {
            self.out.push(Effect::Warn(
                "the CLI's MCP client did not list troupe's tools; it may not reach troupe".into(),
            ));
        }
        self.deliver_from = startup
            .listed()
            .map(|t| t + MCP_SETTLE)
            .filter(|t| *t > now);
        self.out.push(Effect::Audit {
            kind: "instance.started".into(),
            detail: startup.timings(now),
        });
        if startup.resumed {
            self.close_cut_off_turn(now);
            self.start_recovery();
        }
        // Announced after this step's state report, so whoever waits for the instance finds
        // it idle, not starting.
        self.ready_pending = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn enter_waits_a_redraw_after_the_cursor_key_even_when_the_cursor_is_there_sooner() {
        let t0 = Instant::now();
        let mut cursor = None;
        // "No, exit" under the cursor: Down, and a look soon after.
        assert_eq!(
            dialog_step(&mut cursor, "trust", false, t0),
            (true, t0 + DIALOG_CURSOR_CHECK)
        );
        // The cursor has not moved yet: no second Down, only another look.
        let t1 = t0 + MS(50);
        assert_eq!(
            dialog_step(&mut cursor, "trust", false, t1),
            (false, t1 + DIALOG_CURSOR_CHECK)
        );
        // On the choice: the dialog may still be drawn anew, so Enter waits for a look a
        // redraw after the Down.
        let t2 = t0 + MS(100);
        assert_eq!(
            dialog_step(&mut cursor, "trust", true, t2),
            (false, t0 + DIALOG_REDRAW)
        );
        let t3 = t0 + DIALOG_REDRAW;
        assert_eq!(
            dialog_step(&mut cursor, "trust", true, t3),
            (true, t3 + DIALOG_REDRAW)
        );
        assert_eq!(cursor, None);
    }

    #[test]
    fn a_lost_cursor_key_is_pressed_again_only_after_the_redraw_and_enter_then_waits() {
        let t0 = Instant::now();
        let mut cursor = None;
        assert!(dialog_step(&mut cursor, "trust", false, t0).0);
        // Nothing moved for as long as a redraw: the key was lost, press it again.
        let t1 = t0 + MS(450);
        assert_eq!(
            dialog_step(&mut cursor, "trust", false, t1),
            (false, t0 + DIALOG_REDRAW)
        );
        let t2 = t0 + DIALOG_REDRAW;
        assert_eq!(
            dialog_step(&mut cursor, "trust", false, t2),
            (true, t2 + DIALOG_CURSOR_CHECK)
        );
        // The cursor on the choice right after the second press may be the first key's
        // doing: Enter waits for a look a redraw after the last press.
        let t3 = t2 + MS(50);
        assert_eq!(
            dialog_step(&mut cursor, "trust", true, t3),
            (false, t2 + DIALOG_REDRAW)
        );
        let t4 = t2 + DIALOG_REDRAW;
        assert_eq!(
            dialog_step(&mut cursor, "trust", true, t4),
            (true, t4 + DIALOG_REDRAW)
        );
    }

    #[test]
    fn a_dialog_answered_by_enter_alone_is_answered_at_once() {
        let t0 = Instant::now();
        let mut cursor = None;
        assert_eq!(
            dialog_step(&mut cursor, "trust", true, t0),
            (true, t0 + DIALOG_REDRAW)
        );
        // Keys pressed in one dialog do not hold back the next one.
        let mut cursor = Some(CursorKeys {
            dialog: "trust",
            presses: 3,
            last: t0,
        });
        assert_eq!(
            dialog_step(&mut cursor, "bypass", true, t0 + MS(10)),
            (true, t0 + MS(10) + DIALOG_REDRAW)
        );
    }
}
