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
use crate::agents::{Agent, AgentEvent, Habits, Record, Screen, ScreenKind};
use crate::states::{InterruptOutcome, MessageState};
use crate::supervisor::McpList;

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

// ---- the recordings ------------------------------------------------------------------------

/// One recorded turn.
struct Recorded {
    text: String,
    submit: Input,
    /// Hooks sent between the submit and stop hooks (a tool's, a permission request), in order.
    between: Vec<Input>,
    /// None for a turn stopped by the interrupt key: the CLIs send no stop hook then.
    stop: Option<Input>,
    /// In file order; an interrupted turn's interrupt record last.
    lines: Vec<Record>,
    /// The stop hook's copy of the answer.
    reply: Option<String>,
    /// The transcript's.
    written_reply: Option<String>,
}

impl Recorded {
    fn interrupted(&self) -> bool {
        self.stop.is_none()
    }
}

struct Cli {
    name: String,
    habits: Habits,
    /// Claude Code sends it at launch, Codex with the first prompt.
    session: Input,
    /// In the order they were recorded, so transcript timestamps only grow.
    turns: Vec<Recorded>,
}

fn payloads(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

/// A turn from its transcript lines and its hooks as sent (submit first, stop last if any).
fn recorded(agent: &dyn Agent, lines: Vec<Record>, hooks: &[&Value]) -> Recorded {
    let Some(Record::Prompt { text, .. }) = lines.first() else {
        panic!("a turn starts with its prompt: {lines:?}")
    };
    let [submit, rest @ ..] = hooks else {
        panic!("no hooks for {text}")
    };
    assert_eq!(submit["hook_event_name"], "UserPromptSubmit", "{text}");
    let (stop, between) = match rest.split_last() {
        Some((last, between)) if last["hook_event_name"] == "Stop" => (Some(*last), between),
        _ => (None, rest),
    };
    if stop.is_none() {
        assert!(
            matches!(lines.last(), Some(Record::Interrupted { .. })),
            "a turn without a stop hook was interrupted: {text}"
        );
    }
    let hook = |p: &Value| Input::Hook(agent.hook_event(p));
    let last = lines.iter().rev().find_map(|r| match r {
        Record::Assistant { message_id, .. } if r.reply_text().is_some_and(|t| !t.is_empty()) => {
            Some(message_id)
        }
        _ => None,
    });
    let written_reply = last.map(|id| {
        let parts: Vec<String> = lines
            .iter()
            .filter(|r| matches!(r, Record::Assistant { message_id, .. } if message_id == id))
            .filter_map(Record::reply_text)
            .filter(|t| !t.is_empty())
            .collect();
        parts.join("\n")
    });
    Recorded {
        written_reply,
        text: text.clone(),
        submit: hook(submit),
        between: between.iter().map(|p| hook(p)).collect(),
        stop: stop.map(hook),
        reply: stop.map(|p| p["last_assistant_message"].as_str().unwrap().to_string()),
        lines,
    }
}

/// Claude Code's two recorded sessions (echo, three lines, a count interrupted by Escape, a
/// follow-up, a stall; then a Bash call after a permission dialog), taken as one session:
/// the second started after the first ended, so its timestamps come later.
fn claude(version: &str) -> Cli {
    let dir = Path::new(FIXTURES).join(format!("claude-code-{version}"));
    let agent = crate::agents::claude::ClaudeCode {
        bin: crate::agents::AgentKind::Claude.default_bin().into(),
        version: None,
    };
    let hooks = payloads(&dir.join("hook-payloads.jsonl"));
    let session = hooks
        .iter()
        .find(|p| p["hook_event_name"] == "SessionStart")
        .unwrap();
    let mut turns = Vec::new();
    for file in [
        "transcript-echo-multiline-interrupt.jsonl",
        "transcript-tool-use-permission.jsonl",
    ] {
        let mut parser = agent.parser();
        let records: Vec<Record> = std::fs::read_to_string(dir.join(file))
            .unwrap()
            .lines()
            .map(|l| parser.parse(l))
            .filter(|r| *r != Record::Other)
            .collect();
        let starts: Vec<usize> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Record::Prompt { .. }))
            .map(|(i, _)| i)
            .collect();
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(records.len());
            let lines = records[start..end].to_vec();
            let Record::Prompt {
                prompt_id: Some(prompt),
                ..
            } = &lines[0]
            else {
                panic!("{version}: a prompt without an id")
            };
            let of_turn: Vec<&Value> = hooks
                .iter()
                .filter(|p| p["prompt_id"] == prompt.as_str())
                // The session's end is no part of a turn.
                .filter(|p| p["hook_event_name"] != "SessionEnd")
                .collect();
            turns.push(recorded(&agent, lines, &of_turn));
        }
    }
    assert_eq!(turns.len(), 6, "{version}");
    Cli {
        name: format!("claude-code-{version}"),
        habits: agent.habits(),
        session: Input::Hook(agent.hook_event(session)),
        turns,
    }
}

/// Codex's session with both hooks and rollout recorded: a count interrupted by Escape, then
/// (after a resume, which the machine here does not see) five answered prompts. The rollout's
/// turn with no prompt (a shell command typed as `!echo hi`) is left out: troupe never types
/// one.
fn codex() -> Cli {
    let dir = Path::new(FIXTURES).join("codex-0.169.0");
    let agent = crate::agents::codex::Codex {
        bin: crate::agents::AgentKind::Codex.default_bin().into(),
    };
    let hooks = payloads(&dir.join("hook-payloads-resume.jsonl"));
    let session = hooks
        .iter()
        .find(|p| p["hook_event_name"] == "SessionStart")
        .unwrap();
    let mut parser = agent.parser();
    let mut by_turn: Vec<(String, Vec<Record>)> = Vec::new();
    for line in std::fs::read_to_string(dir.join("rollout-interrupt-resume.jsonl"))
        .unwrap()
        .lines()
    {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["payload"]["type"] == "task_started" {
            let id = v["payload"]["turn_id"].as_str().unwrap().to_string();
            by_turn.push((id, Vec::new()));
        }
        // Every line goes through the parser: it remembers the model from turn contexts.
        let record = parser.parse(line);
        if record != Record::Other
            && let Some((_, lines)) = by_turn.last_mut()
        {
            lines.push(record);
        }
    }
    let mut turns = Vec::new();
    for (turn_id, lines) in by_turn {
        let Some(Record::Prompt { text, .. }) = lines.first() else {
            continue;
        };
        let mut of_turn: Vec<Value> = hooks
            .iter()
            .filter(|p| p["turn_id"] == turn_id.as_str())
            .cloned()
            .collect();
        if of_turn.is_empty() {
            // The interrupted count ran before the hook log of this recording begins: its
            // submit hook is the recorded one with this turn's id and prompt.
            let mut submit = hooks
                .iter()
                .find(|p| p["hook_event_name"] == "UserPromptSubmit")
                .unwrap()
                .clone();
            submit["turn_id"] = json!(turn_id);
            submit["prompt"] = json!(text);
            of_turn.push(submit);
        }
        let refs: Vec<&Value> = of_turn.iter().collect();
        turns.push(recorded(&agent, lines, &refs));
    }
    assert_eq!(turns.len(), 6);
    assert!(turns[0].interrupted());
    Cli {
        name: "codex-0.169.0".into(),
        habits: agent.habits(),
        session: Input::Hook(agent.hook_event(session)),
        turns,
    }
}

// ---- one run -------------------------------------------------------------------------------

/// A command to the instance's task.
enum Event {
    Queue(usize),
    Hook(Input),
    /// The transcript changed: what is written by the time the task gets to it is read.
    Read,
    InterruptAsked(i64),
    Listed(McpList),
}

/// A transcript line and when the CLI writes it.
struct Line {
    write: u64,
    record: Record,
}

/// What the simulated CLI does in a turn: write a line or send a hook.
enum Act {
    Write(Record),
    Hook(Input),
}

/// An interrupt asked.
#[derive(Clone)]
struct Asked {
    /// The message whose turn the CLI stops on its key.
    stops: Option<usize>,
    answers: Vec<Result<InterruptOutcome, String>>,
}

#[derive(Default)]
struct Message {
    queued: bool,
    delivered: bool,
    started: usize,
    finishes: Vec<(MessageState, Option<String>)>,
}

struct Run<'a> {
    cli: &'a Cli,
    seed: u64,
    rng: StdRng,
    m: Machine,
    t0: Instant,
    now: u64,
    /// The task's channel, keyed by when each command is sent, then a random number (sent at
    /// the same moment, in any order). The task takes them in that order, one at a time.
    events: BTreeMap<(u64, u64), Event>,
    /// When the task is done with what it is doing.
    free_at: u64,
    /// Lines not read yet, in file order.
    unread: VecDeque<Line>,
    /// Every line written, for checking where its output went: (line, message, times output).
    written: Vec<(Record, usize, usize)>,
    following: bool,
    /// When the CLI last acted.
    cli_at: u64,
    /// The message the CLI works on, and when its turn ends (None: when interrupted).
    running: Option<(usize, Option<u64>)>,
    /// Which recorded turn each message plays.
    plan: Vec<usize>,
    messages: Vec<Message>,
    interrupts: BTreeMap<i64, Asked>,
    warnings: Vec<String>,
    ready: bool,
    log: Vec<String>,
    marks: Vec<(usize, Mark)>,
    covered: Coverage,
}

impl<'a> Run<'a> {
    fn new(cli: &'a Cli, seed: u64) -> Run<'a> {
        // Each CLI its own orders for the same seed number.
        let salt = cli
            .name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        let mut rng = StdRng::seed_from_u64(seed ^ salt);
        // 2-5 turns of the recording, in recorded order.
        let count = rng.random_range(2..=5);
        let mut plan: Vec<usize> = rand::seq::index::sample(&mut rng, cli.turns.len(), count)
            .into_iter()
            .collect();
        plan.sort_unstable();
        let t0 = Instant::now();
        let m = Machine::new(LIMITS, Begin::Launch { resumed: false }, t0).with_habits(cli.habits);
        Run {
            cli,
            seed,
            rng,
            m,
            t0,
            now: 0,
            events: BTreeMap::new(),
            free_at: 0,
            unread: VecDeque::new(),
            written: Vec::new(),
            following: false,
            cli_at: 0,
            running: None,
            messages: plan.iter().map(|_| Message::default()).collect(),
            plan,
            interrupts: BTreeMap::new(),
            warnings: Vec::new(),
            ready: false,
            log: Vec::new(),
            marks: Vec::new(),
            covered: Coverage::default(),
        }
    }

    fn at(&mut self, ms: u64, event: Event) {
        let tie = self.rng.random();
        self.events.insert((ms, tie), event);
    }

    fn ms(&mut self, range: std::ops::RangeInclusive<u64>) -> u64 {
        self.rng.random_range(range)
    }

    fn run(mut self) -> Coverage {
        self.feed(Input::Restore {
            messages: vec![],
            transcript: None,
        });
        if self.cli.habits.announces_session {
            let at = self.ms(20..=180);
            self.at(at, Event::Hook(self.cli.session.clone()));
        }
        let listed = self.ms(30..=400);
        self.at(listed, Event::Listed(McpList::Tools));
        if self.cli.habits.lists_prompts {
            let more = self.ms(0..=50);
            self.at(listed + more, Event::Listed(McpList::Prompts));
        }
        // Some messages queued before the instance is ready, some while it is busy or idle.
        let mut at = self.ms(0..=600);
        for n in 0..self.plan.len() {
            self.at(at, Event::Queue(n));
            at += self.ms(1..=1500);
        }
        let mut steps = 0;
        loop {
            let free = self.free_at;
            let deadline = self
                .m
                .next_deadline()
                .map(|d| (d.saturating_duration_since(self.t0).as_millis() as u64).max(free));
            let event = self
                .events
                .first_key_value()
                .map(|((t, _), _)| (*t).max(free));
            // The task selects between its channel and its deadline; both ready, either.
            let tick = match (deadline, event) {
                (None, None) => break,
                (Some(d), Some(e)) if d == e => self.rng.random_bool(0.5),
                (Some(d), e) => e.is_none_or(|e| d < e),
                (None, Some(_)) => false,
            };
            if tick {
                self.now = deadline.expect("a deadline");
                self.feed(Input::Tick);
            } else {
                let ((sent, _), event) = self.events.pop_first().expect("an event");
                self.now = sent.max(free);
                self.happen(event);
            }
            // Mostly quick; now and then the task is held up (typing into tmux, a database
            // write), rarely for long (a write waiting on another's lock), and what is sent
            // meanwhile waits in the channel.
            let busy = match self.rng.random_range(0..100) {
                0..3 => self.ms(400..=1500),
                3..13 => self.ms(30..=400),
                _ => self.ms(0..=3),
            };
            self.free_at = self.now + busy;
            steps += 1;
            self.check(steps < MAX_STEPS, "the machine never settles");
        }
        self.check_end();
        self.coverage()
    }

    fn coverage(mut self) -> Coverage {
        let at = |n: usize, mark: Mark| self.marks.iter().position(|m| *m == (n, mark));
        let before = |a: Option<usize>, b: Option<usize>| a.zip(b).is_some_and(|(a, b)| a < b);
        let count = self.messages.len();
        let any = |f: &dyn Fn(usize) -> bool| usize::from((0..count).any(f));
        self.covered.prompt_read_before_submit +=
            any(&|n| before(at(n, Mark::Prompt), at(n, Mark::Submit)));
        self.covered.stop_before_prompt_read +=
            any(&|n| before(at(n, Mark::Stop), at(n, Mark::Prompt)));
        self.covered.end_read_before_stop += any(&|n| before(at(n, Mark::End), at(n, Mark::Stop)));
        self.covered.read_after_next_typed += any(&|n| {
            let last = self
                .marks
                .iter()
                .rposition(|(k, m)| *k == n && matches!(m, Mark::Prompt | Mark::End));
            before(at(n + 1, Mark::Typed), last)
        });
        for Asked { stops, answers } in self.interrupts.values() {
            match (stops, answers.first()) {
                (None, Some(Ok(InterruptOutcome::FinishedFirst))) => {
                    self.covered.finished_first += 1
                }
                (Some(_), Some(Ok(InterruptOutcome::Confirmed))) => self.covered.confirmed += 1,
                _ => {}
            }
        }
        self.covered
    }

    /// The message a line was written for.
    fn owner(&self, record: &Record) -> Option<usize> {
        self.written
            .iter()
            .find(|(w, ..)| w == record)
            .map(|(_, n, _)| *n)
    }

    /// The message whose turn has this prompt id.
    fn prompted(&self, prompt: &Option<String>) -> Option<usize> {
        self.plan.iter().position(|&t| {
            matches!(self.cli.turns[t].lines.first(), Some(Record::Prompt { prompt_id, .. }) if prompt_id == prompt)
        })
    }

    fn mark(&mut self, input: &Input) {
        match input {
            Input::Hook(AgentEvent::PromptSubmitted { prompt_id }) => {
                if let Some(n) = self.prompted(prompt_id) {
                    self.marks.push((n, Mark::Submit));
                }
            }
            Input::Hook(AgentEvent::TurnStopped { prompt_id, .. }) => {
                if let Some(n) = self.prompted(prompt_id) {
                    self.marks.push((n, Mark::Stop));
                }
            }
            Input::Records { records, history } => {
                if *history && !records.is_empty() {
                    self.covered.history_lines += 1;
                    self.covered.history_end +=
                        usize::from(records.iter().any(|r| {
                            matches!(r, Record::TurnEnd { .. } | Record::Interrupted { .. })
                        }));
                }
                for r in records {
                    let mark = match r {
                        Record::Prompt { .. } => Mark::Prompt,
                        Record::TurnEnd { .. } => Mark::End,
                        _ => continue,
                    };
                    if let Some(n) = self.owner(r) {
                        self.marks.push((n, mark));
                    }
                }
            }
            _ => {}
        }
    }

    fn happen(&mut self, event: Event) {
        match event {
            Event::Queue(n) => {
                self.messages[n].queued = true;
                let text = self.cli.turns[self.plan[n]].text.clone();
                self.feed(Input::Queued(Queued { id: id_of(n), text }));
            }
            Event::Hook(input) => self.feed(input),
            Event::Read => {
                let now = self.now;
                if let Some(input) = self.read(|l| l.write <= now, false) {
                    self.feed(input);
                }
            }
            Event::InterruptAsked(id) => self.feed(Input::InterruptAsked { id }),
            Event::Listed(list) => self.feed(Input::McpListed(list)),
        }
    }

    /// Feeds an input, and what its effects bring back, as the instance's task does.
    fn feed(&mut self, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let line = format!("{:>6} ms  {}", self.now, self.describe(&input));
            self.log.push(line);
            self.mark(&input);
            let at = self.t0 + Duration::from_millis(self.now);
            for effect in self.m.step(at, input) {
                if let Some(found) = self.carry_out(effect) {
                    inputs.push_back(found);
                }
            }
        }
    }

    /// The unread lines `due` says are read now, in file order.
    fn read(&mut self, due: impl Fn(&Line) -> bool, history: bool) -> Option<Input> {
        if !self.following {
            // Not followed yet: the first read finds them.
            return None;
        }
        let mut records = Vec::new();
        while self.unread.front().is_some_and(&due) {
            records.push(self.unread.pop_front().expect("checked").record);
        }
        (history || !records.is_empty()).then_some(Input::Records { records, history })
    }

    fn carry_out(&mut self, effect: Effect) -> Option<Input> {
        self.log.push(format!("          -> {}", brief(&effect)));
        let now = self.now;
        match effect {
            Effect::Follow(_) => {
                self.following = true;
                return self.read(|l| l.write <= now, true);
            }
            Effect::ReadTranscript => {
                let found = self.read(|l| l.write <= now, false);
                self.covered.reread_lines += usize::from(found.is_some());
                return found;
            }
            Effect::Deliver { message_id, .. } => self.delivered(&message_id),
            Effect::Look(look) => {
                let busy = self
                    .running
                    .is_some_and(|(_, end)| end.is_none_or(|e| now < e));
                let seen = Seen {
                    alive: Alive::Running,
                    screen: Screen {
                        kind: if busy {
                            ScreenKind::Busy
                        } else {
                            ScreenKind::Ready
                        },
                        input_pending: false,
                    },
                    tail: String::new(),
                };
                return Some(Input::Seen { look, seen });
            }
            Effect::PressInterrupt { .. } => self.interrupt_key(),
            Effect::MessageStarted { message_id, .. } => {
                let n = self.index(&message_id);
                self.messages[n].started += 1;
            }
            Effect::Output { message_id, record } => self.output(message_id, &record),
            Effect::FinishMessage {
                message_id,
                state,
                response,
                ..
            } => {
                let n = self.index(&message_id);
                self.check(
                    self.messages[n].delivered,
                    "a message finished before it was typed",
                );
                self.messages[n].finishes.push((state, response));
                self.check(
                    self.messages[n].finishes.len() == 1,
                    &format!("{message_id} finished twice"),
                );
            }
            Effect::ResolveInterrupt { id, result } => {
                let Some(Asked { answers, .. }) = self.interrupts.get_mut(&id) else {
                    self.fail(&format!("interrupt {id} answered but never asked"));
                };
                answers.push(result.map(|r| r.outcome));
                let n = answers.len();
                self.check(n == 1, &format!("interrupt {id} answered {n} times"));
            }
            Effect::Ready => self.ready = true,
            // The task held up past STOP_LATE with the stop hook in its channel: the machine
            // answers from the transcript, as it should.
            Effect::Warn(w) if w.starts_with("the turn ended in the transcript but no") => {}
            Effect::Warn(w) => self.warnings.push(w),
            Effect::Fail { reason, .. } => self.fail(&format!("the instance failed: {reason}")),
            Effect::Exit { reason } => self.fail(&format!("the instance exited: {reason}")),
            Effect::Relaunch { .. } | Effect::Requeue { .. } => {
                self.fail("a relaunch or requeue nobody asked for")
            }
            Effect::Press(_)
            | Effect::PressKeys(_)
            | Effect::Report { .. }
            | Effect::Audit { .. } => {}
        }
        None
    }

    /// The machine typed message `id`: the CLI plays its recorded turn.
    fn delivered(&mut self, id: &str) {
        let n = self.index(id);
        // Ready is announced at the end of the step that types a message queued meanwhile.
        self.check(!self.m.starting(), "typed before the instance started");
        self.check(self.messages[n].queued, "typed a message never queued");
        let expected = self.messages.iter().filter(|m| m.delivered).count();
        self.check(n == expected, "typed out of queue order");
        let unfinished: Vec<String> = (0..n)
            .filter(|&k| self.messages[k].finishes.is_empty())
            .map(id_of)
            .collect();
        self.check(
            unfinished.is_empty(),
            &format!("{id} typed while {unfinished:?} had not finished"),
        );
        let now = self.now;
        if let Some((k, end)) = self.running {
            self.check(
                end.is_some_and(|e| e <= now),
                &format!(
                    "{id} typed while the CLI still ran the turn of {}",
                    id_of(k)
                ),
            );
        }
        self.messages[n].delivered = true;
        self.marks.push((n, Mark::Typed));
        self.play(n);
    }

    fn play(&mut self, n: usize) {
        let cli = self.cli;
        let turn = &cli.turns[self.plan[n]];
        let mut acts: Vec<Act> = turn.lines.iter().cloned().map(Act::Write).collect();
        if turn.interrupted() {
            // Written when the key lands.
            acts.pop();
        }
        // The submit hook runs before the model is called, so before every line but the
        // prompt's; the prompt's line may be written either side of it.
        let submit = self.rng.random_range(0..=1);
        acts.insert(submit, Act::Hook(turn.submit.clone()));
        if n == 0 && !self.cli.habits.announces_session {
            acts.insert(submit, Act::Hook(self.cli.session.clone()));
        }
        let submit = submit + usize::from(n == 0 && !self.cli.habits.announces_session);
        // The stop hook comes after the model's last word and before the turn's end is
        // written (a stop hook can make the CLI go on, so the turn is not over before it).
        let stop = acts
            .iter()
            .rposition(|a| matches!(a, Act::Write(Record::TurnEnd { .. })))
            .unwrap_or(acts.len());
        if let Some(hook) = &turn.stop {
            acts.insert(stop, Act::Hook(hook.clone()));
        }
        // Tool and permission hooks, in their order, anywhere between the two.
        let mut at: Vec<usize> = turn
            .between
            .iter()
            .map(|_| self.rng.random_range(submit + 1..=stop))
            .collect();
        at.sort_unstable();
        for (hook, at) in turn.between.iter().zip(at).rev() {
            acts.insert(at, Act::Hook(hook.clone()));
        }

        // Each hook holds the CLI until it is handed to the task, so the CLI acts one thing
        // at a time and its hooks enter the channel in the order sent.
        let mut t = self.now.max(self.cli_at) + self.ms(5..=60);
        let mut before_stop = t;
        let mut stop_sent = None;
        for act in acts {
            let last = t;
            t += self.ms(1..=120);
            match act {
                Act::Write(record) => self.write(t, record, n),
                Act::Hook(hook) => {
                    if matches!(hook, Input::Hook(AgentEvent::TurnStopped { .. })) {
                        before_stop = last;
                        stop_sent = Some(t);
                    }
                    self.at(t, Event::Hook(hook));
                }
            }
        }
        self.cli_at = t;
        match stop_sent {
            Some(sent) => {
                self.running = Some((n, Some(sent)));
                // Now and then an interrupt is asked as the turn finishes: after the model's
                // last word, before the stop hook. The key finds the turn over, or is lost
                // (seen on Claude Code 2.1.197 for a key pressed as a turn begins); either
                // way the turn ends as recorded.
                if self.rng.random_bool(0.3) {
                    let at = self.rng.random_range(before_stop..sent);
                    self.ask_interrupt(at, None);
                }
            }
            None => {
                self.running = Some((n, None));
                let at = t + self.ms(50..=800);
                self.ask_interrupt(at, Some(n));
            }
        }
    }

    fn ask_interrupt(&mut self, at: u64, stops: Option<usize>) {
        let id = self.interrupts.len() as i64 + 1;
        let answers = Vec::new();
        self.interrupts.insert(id, Asked { stops, answers });
        self.at(at, Event::InterruptAsked(id));
    }

    fn write(&mut self, t: u64, record: Record, message: usize) {
        self.written.push((record.clone(), message, 0));
        self.unread.push_back(Line { write: t, record });
        // The file event mostly comes at once; now and then late (or missed, and a later
        // event or a read the machine asks for finds the line).
        let notified = if self.rng.random_bool(0.15) {
            self.ms(300..=2500)
        } else {
            self.ms(0..=30)
        };
        self.at(t + notified, Event::Read);
    }

    /// The interrupt key: it stops a turn recorded as interrupted, and lands on nothing
    /// otherwise.
    fn interrupt_key(&mut self) {
        let Some((n, None)) = self.running else {
            return;
        };
        let t = self.now + self.ms(5..=60);
        let record = self.cli.turns[self.plan[n]]
            .lines
            .last()
            .expect("an interrupt record")
            .clone();
        self.cli_at = self.cli_at.max(t);
        self.write(t, record, n);
        self.running = Some((n, Some(t)));
    }

    fn output(&mut self, message_id: Option<String>, record: &Record) {
        let Some(i) = self.written.iter().position(|(r, ..)| r == record) else {
            // A record the machine made up (an interrupt the CLI wrote nothing for).
            return;
        };
        let owner = self.written[i].1;
        self.written[i].2 += 1;
        let times = self.written[i].2;
        self.check(
            message_id.as_deref() == Some(id_of(owner).as_str()),
            &format!(
                "{} of {} recorded for {message_id:?}",
                kind(record),
                id_of(owner)
            ),
        );
        self.check(
            times == 1,
            &format!(
                "{} of {} recorded {times} times",
                kind(record),
                id_of(owner)
            ),
        );
    }

    fn check_end(&mut self) {
        self.check(self.ready, "never ready");
        self.check(!self.m.busy(), "busy at the end");
        for n in 0..self.messages.len() {
            let m = &self.messages[n];
            let turn = &self.cli.turns[self.plan[n]];
            let id = id_of(n);
            self.check(m.delivered, &format!("{id} was never typed"));
            self.check(m.finishes.len() == 1, &format!("{id} never finished"));
            self.check(m.started == 1, &format!("{id} started {} times", m.started));
            let (state, response) = m.finishes[0].clone();
            if turn.interrupted() {
                self.check(
                    state == MessageState::Interrupted,
                    &format!("{id}, interrupted, finished {state:?}"),
                );
            } else {
                // The transcript's copy when the stop hook came too late.
                self.check(
                    state == MessageState::Answered
                        && (response == turn.reply || response == turn.written_reply),
                    &format!("{id} finished {state:?} with {response:?}"),
                );
            }
        }
        let interrupts: Vec<_> = self.interrupts.clone().into_iter().collect();
        for (id, Asked { stops, answers }) in interrupts {
            self.check(
                answers.len() == 1,
                &format!("interrupt {id} never answered"),
            );
            if stops.is_some() {
                self.check(
                    answers[0] == Ok(InterruptOutcome::Confirmed),
                    &format!("interrupt {id} answered {:?}", answers[0]),
                );
            }
        }
        for (record, owner, times) in self.written.clone() {
            // A turn's end is no output of its own.
            let expected = usize::from(!matches!(record, Record::TurnEnd { .. }));
            self.check(
                times == expected,
                &format!(
                    "{} of {} recorded {times} times",
                    kind(&record),
                    id_of(owner)
                ),
            );
        }
        self.check(
            self.warnings.is_empty(),
            &format!("warnings: {:?}", self.warnings),
        );
    }

    fn index(&self, id: &str) -> usize {
        id.strip_prefix('m')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=self.messages.len()).contains(n))
            .map(|n| n - 1)
            .unwrap_or_else(|| self.fail(&format!("unknown message {id}")))
    }

    fn check(&self, ok: bool, what: &str) {
        if !ok {
            self.fail(what);
        }
    }

    fn fail(&self, what: &str) -> ! {
        let turns: Vec<String> = self
            .plan
            .iter()
            .enumerate()
            .map(|(n, &t)| format!("{}: {:?}", id_of(n), self.cli.turns[t].text))
            .collect();
        panic!(
            "{} seed {}: {what}\n(rerun alone with INTERLEAVINGS_SEED={})\nmessages: {}\ninputs and effects:\n{}",
            self.cli.name,
            self.seed,
            self.seed,
            turns.join(", "),
            self.log.join("\n")
        );
    }

    /// An input, short, naming the message each hook and line belongs to.
    fn describe(&self, input: &Input) -> String {
        let owner = |r: &Record| self.owner(r).map(id_of).unwrap_or_default();
        match input {
            Input::Hook(event) => {
                let prompt = |p: &Option<String>| {
                    self.prompted(p)
                        .map(id_of)
                        .unwrap_or_else(|| format!("{p:?}"))
                };
                match event {
                    AgentEvent::SessionStarted { .. } => "hook SessionStart".into(),
                    AgentEvent::PromptSubmitted { prompt_id } => {
                        format!("hook UserPromptSubmit of {}", prompt(prompt_id))
                    }
                    AgentEvent::TurnStopped { prompt_id, .. } => {
                        format!("hook Stop of {}", prompt(prompt_id))
                    }
                    other => format!("hook {other:?}"),
                }
            }
            Input::Records { records, history } => {
                let lines: Vec<String> = records
                    .iter()
                    .map(|r| format!("{} of {}", kind(r), owner(r)))
                    .collect();
                let what = if *history { "first read" } else { "read" };
                format!("{what} [{}]", lines.join(", "))
            }
            Input::Queued(q) => format!("queued {}", q.id),
            Input::Seen { look, seen } => format!("seen {look:?}: {:?}", seen.screen.kind),
            other => format!("{other:?}"),
        }
    }
}

fn id_of(n: usize) -> String {
    format!("m{}", n + 1)
}

fn kind(r: &Record) -> &'static str {
    match r {
        Record::Prompt { .. } => "prompt",
        Record::ToolResult { .. } => "tool result",
        Record::Interrupted { .. } => "interrupt record",
        Record::Assistant { .. } => "reply",
        Record::TurnEnd { .. } => "turn end",
        Record::Other => "other",
    }
}

/// An effect, short.
fn brief(effect: &Effect) -> String {
    match effect {
        Effect::Output { message_id, record } => {
            format!("output {} for {message_id:?}", kind(record))
        }
        Effect::FinishMessage {
            message_id,
            state,
            reason,
            ..
        } => format!("finish {message_id} {state:?} {reason}"),
        Effect::Deliver { message_id, .. } => format!("deliver {message_id}"),
        Effect::Report { state, .. } => format!("report {state:?}"),
        Effect::ResolveInterrupt { id, result } => format!(
            "resolve interrupt {id}: {:?}",
            result.as_ref().map(|r| r.outcome)
        ),
        other => format!("{other:?}"),
    }
}
