//! Property test of the instance machine: the recorded hooks and transcript lines of a few
//! turns reach it in random orders (as far as the real CLIs allow), and whatever the order,
//! each message is typed only when no turn runs, finished once with its own turn's outcome,
//! and each interrupt answered once.
//!
//! A small simulated CLI stands behind the machine. When the machine types a message, the
//! CLI plays that message's recorded turn: its hooks and its transcript lines, in an order
//! that respects what the CLI does (the submit hook runs before the model is called, the
//! stop hook before the turn's end is written, and each hook holds the CLI until it is
//! handed over). Everything reaches the machine as it reaches the instance's task: through
//! one channel, in the order sent, taken one at a time by a task that is now and then held
//! up. A transcript read takes whatever is written by the time the task gets to it, so
//! lines and hooks interleave either way, and the first read (when the transcript is
//! followed, which Codex makes happen with its first prompt) can hold a whole turn. A turn
//! recorded as interrupted runs until the machine presses the interrupt key.
//!
//! Seeds are fixed: a failure names its seed and the inputs that led to it;
//! `INTERLEAVINGS_SEED=<n> cargo test --lib interleavings` runs that seed alone, and
//! `INTERLEAVINGS_SEEDS=<count>` runs more than the usual ones.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::time::{Duration, Instant};

use super::machine::{Alive, Begin, Effect, Input, Limits, Machine, Queued, Seen};
use crate::agents::{Agent, AgentEvent, Habits, Hook, Record, Screen, ScreenKind};
use crate::states::{InterruptOutcome, MessageState};
use crate::supervisor::McpList;

mod recordings;
mod run;

use recordings::*;
use run::*;

/// Seeds run for each recorded CLI.
const SEEDS: u64 = 1000;

const LIMITS: Limits = Limits {
    startup: Duration::from_secs(30),
    submit: Duration::from_secs(10),
    interrupt: Duration::from_secs(5),
};

/// Inputs fed before a run counts as never settling.
const MAX_STEPS: usize = 5000;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

#[test]
fn claude_2_1_197_interleavings() {
    check_seeds(&claude("2.1.197"));
}

#[test]
fn claude_2_1_328_interleavings() {
    check_seeds(&claude("2.1.328"));
}

#[test]
fn codex_0_169_0_interleavings() {
    check_seeds(&codex());
}

fn check_seeds(cli: &Cli) {
    let number = |name: &str| {
        std::env::var(name).ok().map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} is a number"))
        })
    };
    let seeds = match (number("INTERLEAVINGS_SEED"), number("INTERLEAVINGS_SEEDS")) {
        (Some(seed), _) => seed..seed + 1,
        (None, Some(count)) => 0..count,
        (None, None) => 0..SEEDS,
    };
    let all = seeds.start == 0 && seeds.end >= SEEDS;
    let mut covered = Coverage::default();
    for seed in seeds {
        covered.add(Run::new(cli, seed).run());
    }
    eprintln!("{}: {covered:?}", cli.name);
    if all {
        // The orders the machine must cope with do come up: a generator that drifted into
        // always feeding hooks first would pass without testing much.
        let Coverage {
            prompt_read_before_submit,
            stop_before_prompt_read,
            end_read_before_stop,
            read_after_next_typed,
            finished_first,
            confirmed,
            history_lines,
            history_end,
            reread_lines,
        } = covered;
        for (what, n) in [
            (
                "prompt read before its submit hook",
                prompt_read_before_submit,
            ),
            (
                "stop hook before its prompt is read",
                stop_before_prompt_read,
            ),
            ("turn end read before its stop hook", end_read_before_stop),
            (
                "lines read after the next message was typed",
                read_after_next_typed,
            ),
            ("interrupt that loses to the stop hook", finished_first),
            ("interrupt confirmed", confirmed),
            ("lines found by a read the machine asked for", reread_lines),
        ] {
            assert!(n > 0, "{}: no run has a {what}", cli.name);
        }
        if !cli.habits.announces_session {
            assert!(
                history_lines > 0,
                "{}: the first read never finds lines",
                cli.name
            );
            assert!(
                history_end > 0,
                "{}: the first read never ends a turn",
                cli.name
            );
        }
    }
}

/// How many runs had each order worth testing.
#[derive(Debug, Default)]
struct Coverage {
    prompt_read_before_submit: usize,
    stop_before_prompt_read: usize,
    end_read_before_stop: usize,
    read_after_next_typed: usize,
    finished_first: usize,
    confirmed: usize,
    /// The first read of the transcript found lines of the running turn ...
    history_lines: usize,
    /// ... and its end.
    history_end: usize,
    reread_lines: usize,
}

impl Coverage {
    fn add(&mut self, other: Coverage) {
        self.prompt_read_before_submit += other.prompt_read_before_submit;
        self.stop_before_prompt_read += other.stop_before_prompt_read;
        self.end_read_before_stop += other.end_read_before_stop;
        self.read_after_next_typed += other.read_after_next_typed;
        self.finished_first += other.finished_first;
        self.confirmed += other.confirmed;
        self.history_lines += other.history_lines;
        self.history_end += other.history_end;
        self.reread_lines += other.reread_lines;
    }
}

/// What reached the machine, by message, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Typed,
    Submit,
    Stop,
    Prompt,
    End,
}
