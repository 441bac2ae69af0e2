//! From launch to ready: the screen is looked at only until the CLI's session starts (for
//! dialogs that only the screen shows), then the instance is ready once the CLI's MCP client
//! has troupe's tools, or after a grace period.

use tokio::time::{Duration, Instant};

use super::machine::{Alive, Effect, Look, Machine, Phase, Seen};
use crate::agents::ScreenKind;
use crate::supervisor::McpList;

/// How often the screen is looked at while the CLI starts, until its session-started hook.
pub const STARTUP_SCREEN_CHECK: Duration = Duration::from_millis(200);
/// After the session started, how long to wait for the CLI's MCP client to list troupe's tools (a
/// first message sent earlier may find no troupe tools) before calling the instance ready.
pub const MCP_CONNECT_GRACE: Duration = Duration::from_secs(10);
/// A CLI may apply a new MCP connection to its session asynchronously after the lists arrive,
/// with nothing observable when it is done; a prompt in that window sees no troupe tools
/// (seen with Claude Code 2.1.197 in about 1 in 6 starts). This margin covers it.
pub const MCP_SETTLE: Duration = Duration::from_millis(250);
/// After answering a startup dialog, the screen takes a moment to redraw; looking again
/// sooner would see the old dialog and answer it twice (the next dialog's default may be
/// "exit").
pub const DIALOG_REDRAW: Duration = Duration::from_millis(500);

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
        }
    }

    pub fn lists_tools_only(&mut self) {
        self.lists_needed = 1;
    }

    pub fn session_started(&mut self, now: Instant) {
        if self.grace_end.is_none() {
            self.grace_end = Some(now + MCP_CONNECT_GRACE);
            self.next_look = None;
        }
    }

    fn settled_at(&self) -> Option<Instant> {
        if self.lists.len() >= self.lists_needed {
            self.listed_at.map(|t| t + MCP_SETTLE)
        } else {
            None
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        [
            (!self.timed_out).then_some(self.deadline),
            self.next_look,
            self.grace_end,
            self.grace_end.and(self.settled_at()),
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
            self.out.push(Effect::PressKeys(keys.clone()));
            if *answers {
                self.out.push(Effect::Audit {
                    kind: format!("instance.{name}_accepted"),
                    detail: serde_json::json!({}),
                });
            }
            next = now + DIALOG_REDRAW;
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
        let ready = startup.grace_end.is_some_and(|grace_end| {
            now >= grace_end || startup.settled_at().is_some_and(|t| now >= t)
        });
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
        if startup.resumed {
            self.close_cut_off_turn(now);
            self.start_recovery();
        }
        // Announced after this step's state report, so whoever waits for the instance finds
        // it idle, not starting.
        self.ready_pending = true;
    }
}
