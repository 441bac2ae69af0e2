//! Unit tests of the instance machine: no tmux, no CLI, a fake clock.
//!
//! Transcript lines and hook payloads come from the Claude Code 2.1.197 recordings in
//! `tests/fixtures`, read through the same `Agent` the server uses; orders the recordings do
//! not hold are built by hand in the recordings' shapes.

use std::path::PathBuf;

use serde_json::{Value, json};
use tokio::time::{Duration, Instant};

use super::machine::Known;
use super::machine::{
    Alive, Begin, EXIT_CHECK_DELAY, Effect, Input, InterruptAnswer, Limits, Look, Machine, Queued,
    SUBMIT_ACK_LATE, Seen,
};
use super::startup::{
    DIALOG_CURSOR_CHECK, DIALOG_REDRAW, MCP_CONNECT_GRACE, MCP_SETTLE, STARTUP_SCREEN_CHECK,
};
use super::turn::{REPLY_GRACE, REPLY_RECHECK, STOP_LATE};
use crate::agents::claude::ClaudeCode;
use crate::agents::{Agent, AgentEvent, Hook, Key, Record};
use crate::states::{InstanceState, InterruptOutcome, MessageState};
use crate::supervisor::McpList;

mod hooks;
mod interrupts;
mod recovery;
mod startup;
mod turns;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/claude-code-2.1.197"
);
/// Five turns: echo, three lines, a slow count interrupted by Escape, a follow-up, a stall.
const ECHO: &str = "transcript-echo-multiline-interrupt.jsonl";
/// One turn whose turn-end line was flushed before its prompt and reply.
const OUT_OF_ORDER: &str = "transcript-out-of-order.jsonl";
/// One turn that runs Bash after a permission dialog.
const TOOL_USE: &str = "transcript-tool-use-permission.jsonl";

/// The session the machine runs: the recorded sessions are played as this one.
const SESSION: &str = "612438f4-3ef9-4a0f-9264-688645e1e08f";

const P_ECHO: &str = "a1b18c3b-f258-4eb3-91db-5bc6d056b197";
const P_LINES: &str = "683fd782-eb61-44da-b23e-35bd82e33b62";
const P_COUNT: &str = "7dd3489a-7c0b-4ad0-9a0b-6d72b00a4973";
const P_REACH: &str = "6d0e83d4-5369-492f-a9b1-58e822dcac8d";
const P_TOOL: &str = "c81a3b03-fdf1-4dfd-92b5-affd13c9f85f";
/// The out-of-order recording's prompt; no hooks were recorded with it.
const P_MARMALADE: &str = "f29308b8-9a05-4b6c-8cce-35e4ed4a14ef";

const ECHO_REPLY: &str = "ECHO: hello reference one";
const LINES_REPLY: &str = "ECHO: line one\nline two\nline three";

const LIMITS: Limits = Limits {
    startup: Duration::from_secs(30),
    submit: Duration::from_secs(10),
    interrupt: Duration::from_secs(5),
};

// ---- recorded data -------------------------------------------------------------------------

fn claude() -> ClaudeCode {
    ClaudeCode {
        bin: crate::agents::AgentKind::Claude.default_bin().into(),
        version: None,
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// A transcript's records, as the actor hands them over (lines troupe ignores left out).
fn transcript(name: &str) -> Vec<Record> {
    fixture(name)
        .lines()
        .map(|l| claude().parse_record(l))
        .filter(|r| *r != Record::Other)
        .collect()
}

/// One turn of a recorded transcript: its prompt and the lines up to the next prompt.
fn turn_of(name: &str, prompt: &str) -> Vec<Record> {
    let records = transcript(name);
    let start = records
        .iter()
        .position(|r| matches!(r, Record::Prompt { prompt_id: Some(p), .. } if p == prompt))
        .unwrap_or_else(|| panic!("no prompt {prompt} in {name}"));
    let len = records[start + 1..]
        .iter()
        .position(|r| matches!(r, Record::Prompt { .. }))
        .unwrap_or(records.len() - start - 1);
    records[start..=start + len].to_vec()
}

/// A recorded turn taken apart line by line.
fn parts<const N: usize>(records: Vec<Record>) -> [Record; N] {
    records
        .try_into()
        .unwrap_or_else(|r: Vec<Record>| panic!("{N} lines expected: {r:?}"))
}

fn hook_payloads() -> Vec<Value> {
    serde_json::Deserializer::from_str(&fixture("hook-payloads.jsonl"))
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

/// The recorded hook `event` of prompt `prompt`.
fn hook(event: &str, prompt: &str) -> Input {
    let payload = hook_payloads()
        .into_iter()
        .find(|p| p["hook_event_name"] == event && p["prompt_id"] == prompt)
        .unwrap_or_else(|| panic!("no {event} hook for {prompt}"));
    ours(&payload)
}

/// A recorded hook, as the machine's own session sent it.
fn ours(payload: &Value) -> Input {
    Input::Hook(Hook {
        session: Some(SESSION.into()),
        event: claude().hook_event(payload),
    })
}

/// A hook the recordings lack, shaped like the recorded ones.
fn hand_hook(event: &str, prompt: &str, extra: Value) -> Input {
    let mut payload = json!({
        "session_id": "612438f4-3ef9-4a0f-9264-688645e1e08f",
        "transcript_path": transcript_path(),
        "cwd": "/TMP/work",
        "prompt_id": prompt,
        "permission_mode": "bypassPermissions",
        "hook_event_name": event,
    });
    for (k, v) in extra.as_object().unwrap() {
        payload[k] = v.clone();
    }
    ours(&payload)
}

fn session_started() -> Input {
    let payload = hook_payloads()
        .into_iter()
        .find(|p| p["hook_event_name"] == "SessionStart")
        .unwrap();
    ours(&payload)
}

fn transcript_path() -> PathBuf {
    let first = fixture("transcript-path.txt");
    PathBuf::from(first.lines().next().unwrap().trim())
}

/// A transcript line the recordings lack, in the recordings' shape.
fn hand_record(line: Value) -> Record {
    let record = claude().parse_record(&line.to_string());
    assert_ne!(record, Record::Other, "{line}");
    record
}

fn prompt_line(uuid: &str, prompt: &str, ts: &str, text: &str) -> Record {
    hand_record(json!({
        "parentUuid": null, "isSidechain": false, "promptId": prompt, "type": "user",
        "message": { "role": "user", "content": text },
        "uuid": uuid, "timestamp": ts, "userType": "external", "version": "2.1.197",
    }))
}

fn reply_line(uuid: &str, ts: &str, response: &str, text: &str) -> Record {
    hand_record(json!({
        "parentUuid": null, "isSidechain": false, "type": "assistant",
        "message": {
            "id": response, "model": "claude-opus-4-8", "role": "assistant", "type": "message",
            "content": [{ "type": "text", "text": text }],
            "stop_reason": "end_turn",
            "usage": { "input_tokens": 100, "output_tokens": 5,
                       "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0 },
        },
        "uuid": uuid, "timestamp": ts, "version": "2.1.197",
    }))
}

fn records(records: Vec<Record>) -> Input {
    Input::Records {
        records,
        history: false,
    }
}

fn history(records: Vec<Record>) -> Input {
    Input::Records {
        records,
        history: true,
    }
}

fn queue(id: &str, text: &str) -> Input {
    Input::Queued(Queued {
        id: id.into(),
        text: text.into(),
    })
}

fn known(id: &str, content: &str, prompt: Option<&str>, state: MessageState) -> Known {
    Known {
        id: id.into(),
        text: content.into(),
        prompt_id: prompt.map(str::to_string),
        state,
    }
}

/// What a look at a recorded screen finds.
fn look_at(screen: &str, alive: Alive) -> Seen {
    let text = if screen.is_empty() {
        String::new()
    } else {
        fixture(&format!("screens/{screen}"))
    };
    seen_text(&text, alive)
}

fn seen_text(text: &str, alive: Alive) -> Seen {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    Seen {
        alive,
        screen: claude().read_screen(text),
        tail: lines[lines.len().saturating_sub(2)..].join(" | "),
    }
}

fn seen(look: Look, screen: &str) -> Input {
    Input::Seen {
        look,
        seen: look_at(screen, Alive::Running),
    }
}

// ---- the fake clock ------------------------------------------------------------------------

/// A machine and the time it is at; nothing sleeps.
struct Sim {
    m: Machine,
    t0: Instant,
    ms: u64,
}

impl Sim {
    fn new(begin: Begin) -> Sim {
        let t0 = Instant::now();
        Sim {
            m: Machine::new(LIMITS, claude().habits(), begin, SESSION.into(), t0),
            t0,
            ms: 0,
        }
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    /// Feeds `input` `ms` milliseconds after the previous one.
    fn after(&mut self, ms: u64, input: Input) -> Vec<Effect> {
        self.ms += ms;
        self.m.step(self.t0 + Duration::from_millis(self.ms), input)
    }

    fn step(&mut self, input: Input) -> Vec<Effect> {
        self.after(0, input)
    }

    /// How long until the machine wants a tick.
    fn wait(&self) -> Option<Duration> {
        self.m
            .next_deadline()
            .map(|d| d.saturating_duration_since(self.now()))
    }

    /// Ticks at the machine's next deadline.
    fn tick(&mut self) -> Vec<Effect> {
        let wait = self.wait().expect("the machine wants a tick");
        self.after(wait.as_millis() as u64, Input::Tick)
    }
}

/// A fresh launch taken to ready: session up, both MCP lists in, the settle margin ticked past.
fn started_machine() -> Sim {
    let mut s = Sim::new(Begin::Launch { resumed: false });
    assert_eq!(
        s.step(Input::Restore {
            messages: vec![],
            transcript: None
        }),
        []
    );
    assert_eq!(
        s.after(150, session_started()),
        [Effect::Follow(transcript_path())]
    );
    // The CLI creates its transcript with the first prompt: the first read finds nothing.
    assert_eq!(s.step(history(vec![])), []);
    assert_eq!(s.after(40, Input::McpListed(McpList::Tools)), []);
    let fx = s.after(5, Input::McpListed(McpList::Prompts));
    assert!(fx.contains(&Effect::Ready), "{fx:?}");
    assert_eq!(reports(&fx), [InstanceState::Idle]);
    assert!(!s.m.starting() && !s.m.busy());
    // Past the settle margin: a message is typed as soon as it comes.
    assert_eq!(s.wait(), None, "nothing waits for a deadline");
    assert_eq!(s.after(MCP_SETTLE.as_millis() as u64, Input::Tick), []);
    s
}

/// A queued message typed into an idle instance.
fn deliver(s: &mut Sim, id: &str, text: &str) {
    let fx = s.after(10, queue(id, text));
    assert_eq!(delivered(&fx), [id], "{fx:?}");
}

// ---- effects by kind -----------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Finish {
    state: MessageState,
    response: Option<String>,
    reason: String,
}

fn finishes(fx: &[Effect]) -> Vec<&str> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::FinishMessage { message_id, .. } => Some(message_id.as_str()),
            _ => None,
        })
        .collect()
}

/// The one outcome recorded for `id`.
fn finish_of(fx: &[Effect], id: &str) -> Finish {
    let found: Vec<Finish> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::FinishMessage {
                message_id,
                state,
                response,
                reason,
            } if message_id == id => Some(Finish {
                state: *state,
                response: response.clone(),
                reason: reason.clone(),
            }),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one outcome for {id} in {fx:?}");
    found.into_iter().next().unwrap()
}

fn answered(reply: &str) -> Finish {
    Finish {
        state: MessageState::Answered,
        response: Some(reply.into()),
        reason: String::new(),
    }
}

fn reports(fx: &[Effect]) -> Vec<InstanceState> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Report { state, .. } => Some(*state),
            _ => None,
        })
        .collect()
}

fn delivered(fx: &[Effect]) -> Vec<&str> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Deliver { message_id, .. } => Some(message_id.as_str()),
            _ => None,
        })
        .collect()
}

/// Output records and the message each is tied to.
fn outputs(fx: &[Effect]) -> Vec<(Option<&str>, &Record)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Output { message_id, record } => Some((message_id.as_deref(), record)),
            _ => None,
        })
        .collect()
}

fn replies_of<'a>(fx: &'a [Effect], id: &str) -> Vec<&'a Record> {
    outputs(fx)
        .into_iter()
        .filter(|(m, r)| *m == Some(id) && matches!(r, Record::Assistant { .. }))
        .map(|(_, r)| r)
        .collect()
}

fn looks(fx: &[Effect]) -> Vec<&Look> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Look(look) => Some(look),
            _ => None,
        })
        .collect()
}

fn presses(fx: &[Effect]) -> Vec<Key> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Press(key) => Some(*key),
            _ => None,
        })
        .collect()
}

fn warned(fx: &[Effect]) -> bool {
    fx.iter().any(|e| matches!(e, Effect::Warn(_)))
}

/// The answer to interrupt `id`.
fn resolution(fx: &[Effect], id: i64) -> &InterruptAnswer {
    let found: Vec<&Result<InterruptAnswer, String>> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::ResolveInterrupt { id: i, result } if *i == id => Some(result),
            _ => None,
        })
        .collect();
    assert_eq!(found.len(), 1, "one answer to interrupt {id} in {fx:?}");
    found[0].as_ref().expect("an interrupt report")
}

fn failure(fx: &[Effect]) -> (&str, bool) {
    fx.iter()
        .find_map(|e| match e {
            Effect::Fail { reason, kill } => Some((reason.as_str(), *kill)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Fail in {fx:?}"))
}

/// The first message typed and acknowledged, with the whole echo turn read and answered.
fn echo_turn(s: &mut Sim, id: &str) {
    deliver(s, id, "hello reference one");
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    s.after(200, records(turn_of(ECHO, P_ECHO)));
    let fx = s.after(20, hook("Stop", P_ECHO));
    assert_eq!(finish_of(&fx, id), answered(ECHO_REPLY));
}
