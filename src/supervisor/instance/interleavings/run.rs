//! One run: the simulated CLI, the channel to the machine, and the checks on what the
//! machine did.

use super::*;

/// A command to the instance's task.
pub(super) enum Event {
    Queue(usize),
    Hook(Input),
    /// The transcript changed: what is written by the time the task gets to it is read.
    Read,
    InterruptAsked(i64),
    Listed(McpList),
}

/// A transcript line and when the CLI writes it.
pub(super) struct Line {
    pub(super) write: u64,
    pub(super) record: Record,
}

/// What the simulated CLI does in a turn: write a line or send a hook.
pub(super) enum Act {
    Write(Record),
    Hook(Input),
}

/// An interrupt asked.
#[derive(Clone)]
pub(super) struct Asked {
    /// The message whose turn the CLI stops on its key.
    pub(super) stops: Option<usize>,
    pub(super) answers: Vec<Result<InterruptOutcome, String>>,
}

#[derive(Default)]
pub(super) struct Message {
    pub(super) queued: bool,
    pub(super) delivered: bool,
    pub(super) started: usize,
    pub(super) finishes: Vec<(MessageState, Option<String>)>,
}

pub(super) struct Run<'a> {
    pub(super) cli: &'a Cli,
    pub(super) seed: u64,
    pub(super) rng: StdRng,
    pub(super) m: Machine,
    pub(super) t0: Instant,
    pub(super) now: u64,
    /// The task's channel, keyed by when each command is sent, then a random number (sent at
    /// the same moment, in any order). The task takes them in that order, one at a time.
    pub(super) events: BTreeMap<(u64, u64), Event>,
    /// When the task is done with what it is doing.
    pub(super) free_at: u64,
    /// Lines not read yet, in file order.
    pub(super) unread: VecDeque<Line>,
    /// Every line written, for checking where its output went: (line, message, times output).
    pub(super) written: Vec<(Record, usize, usize)>,
    pub(super) following: bool,
    /// When the CLI last acted.
    pub(super) cli_at: u64,
    /// The message the CLI works on, and when its turn ends (None: when interrupted).
    pub(super) running: Option<(usize, Option<u64>)>,
    /// Which recorded turn each message plays.
    pub(super) plan: Vec<usize>,
    pub(super) messages: Vec<Message>,
    pub(super) interrupts: BTreeMap<i64, Asked>,
    pub(super) warnings: Vec<String>,
    pub(super) ready: bool,
    pub(super) log: Vec<String>,
    pub(super) marks: Vec<(usize, Mark)>,
    pub(super) covered: Coverage,
}

impl<'a> Run<'a> {
    pub(super) fn new(cli: &'a Cli, seed: u64) -> Run<'a> {
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
        let m = Machine::new(
            LIMITS,
            cli.habits,
            Begin::Launch { resumed: false },
            cli.launch_session.clone(),
            t0,
        );
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

    pub(super) fn at(&mut self, ms: u64, event: Event) {
        let tie = self.rng.random();
        self.events.insert((ms, tie), event);
    }

    pub(super) fn ms(&mut self, range: std::ops::RangeInclusive<u64>) -> u64 {
        self.rng.random_range(range)
    }

    pub(super) fn run(mut self) -> Coverage {
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

    pub(super) fn coverage(mut self) -> Coverage {
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
    pub(super) fn owner(&self, record: &Record) -> Option<usize> {
        self.written
            .iter()
            .find(|(w, ..)| w == record)
            .map(|(_, n, _)| *n)
    }

    /// The message whose turn has this prompt id.
    pub(super) fn prompted(&self, prompt: &Option<String>) -> Option<usize> {
        self.plan.iter().position(|&t| {
            matches!(self.cli.turns[t].lines.first(), Some(Record::Prompt { prompt_id, .. }) if prompt_id == prompt)
        })
    }

    pub(super) fn mark(&mut self, input: &Input) {
        match input {
            Input::Hook(Hook {
                event: AgentEvent::PromptSubmitted { prompt_id },
                ..
            }) => {
                if let Some(n) = self.prompted(prompt_id) {
                    self.marks.push((n, Mark::Submit));
                }
            }
            Input::Hook(Hook {
                event: AgentEvent::TurnStopped { prompt_id, .. },
                ..
            }) => {
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

    pub(super) fn happen(&mut self, event: Event) {
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
    pub(super) fn feed(&mut self, input: Input) {
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
    pub(super) fn read(&mut self, due: impl Fn(&Line) -> bool, history: bool) -> Option<Input> {
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

    pub(super) fn carry_out(&mut self, effect: Effect) -> Option<Input> {
        self.log.push(format!("          -> {}", brief(&effect)));
        let now = self.now;
        match effect {
            Effect::AdoptSession(id) => {
                if self.m.habits.session_id_chosen {
                    self.fail(&format!("adopted session {id} though troupe chose one"));
                }
            }
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
    pub(super) fn delivered(&mut self, id: &str) {
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

    pub(super) fn play(&mut self, n: usize) {
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
                    if matches!(
                        hook,
                        Input::Hook(Hook {
                            event: AgentEvent::TurnStopped { .. },
                            ..
                        })
                    ) {
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

    pub(super) fn ask_interrupt(&mut self, at: u64, stops: Option<usize>) {
        let id = self.interrupts.len() as i64 + 1;
        let answers = Vec::new();
        self.interrupts.insert(id, Asked { stops, answers });
        self.at(at, Event::InterruptAsked(id));
    }

    pub(super) fn write(&mut self, t: u64, record: Record, message: usize) {
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
    pub(super) fn interrupt_key(&mut self) {
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

    pub(super) fn output(&mut self, message_id: Option<String>, record: &Record) {
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

    pub(super) fn check_end(&mut self) {
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

    pub(super) fn index(&self, id: &str) -> usize {
        id.strip_prefix('m')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=self.messages.len()).contains(n))
            .map(|n| n - 1)
            .unwrap_or_else(|| self.fail(&format!("unknown message {id}")))
    }

    pub(super) fn check(&self, ok: bool, what: &str) {
        if !ok {
            self.fail(what);
        }
    }

    pub(super) fn fail(&self, what: &str) -> ! {
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
    pub(super) fn describe(&self, input: &Input) -> String {
        let owner = |r: &Record| self.owner(r).map(id_of).unwrap_or_default();
        match input {
            Input::Hook(Hook { event, .. }) => {
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

pub(super) fn id_of(n: usize) -> String {
    format!("m{}", n + 1)
}

pub(super) fn kind(r: &Record) -> &'static str {
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
pub(super) fn brief(effect: &Effect) -> String {
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
