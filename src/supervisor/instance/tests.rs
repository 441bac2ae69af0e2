//! Unit tests of the instance machine: no tmux, no CLI, a fake clock.
//!
//! Transcript lines and hook payloads come from the Claude Code 2.1.197 recordings in
//! `tests/fixtures`, read through the same `Agent` the server uses; orders the recordings do
//! not hold are built by hand in the recordings' shapes.

use std::path::PathBuf;

use serde_json::{Value, json};
use tokio::time::{Duration, Instant};

use super::machine::{
    Alive, Begin, EXIT_CHECK_DELAY, Effect, Input, InterruptReport, Limits, Look, Machine, Queued,
    SUBMIT_ACK_LATE, Seen,
};
use super::startup::{DIALOG_REDRAW, MCP_CONNECT_GRACE, MCP_SETTLE, STARTUP_SCREEN_CHECK};
use super::turn::{KnownMessage, REPLY_GRACE, REPLY_RECHECK, STOP_LATE};
use crate::agents::claude::ClaudeCode;
use crate::agents::{Agent, AgentEvent, Key, Record};
use crate::states::{InstanceState, InterruptOutcome, MessageState};
use crate::supervisor::McpList;

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
    Input::Hook(claude().hook_event(&payload))
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
    Input::Hook(claude().hook_event(&payload))
}

fn session_started() -> Input {
    let payload = hook_payloads()
        .into_iter()
        .find(|p| p["hook_event_name"] == "SessionStart")
        .unwrap();
    Input::Hook(claude().hook_event(&payload))
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

fn known(id: &str, content: &str, prompt: Option<&str>, state: MessageState) -> KnownMessage {
    KnownMessage {
        id: id.into(),
        content: content.into(),
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
            m: Machine::new(LIMITS, begin, t0),
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
    assert_eq!(s.after(5, Input::McpListed(McpList::Prompts)), []);
    assert_eq!(s.wait(), Some(MCP_SETTLE));
    let fx = s.tick();
    assert!(fx.contains(&Effect::Ready), "{fx:?}");
    assert_eq!(reports(&fx), [InstanceState::Idle]);
    assert!(!s.m.starting() && !s.m.busy());
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
fn resolution(fx: &[Effect], id: i64) -> &InterruptReport {
    let found: Vec<&Result<InterruptReport, String>> = fx
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

// ---- startup -------------------------------------------------------------------------------

/// 2.1.197 lists "Yes, I trust this folder" first, 2.1.328 "No, exit" first: each is
/// answered by the label, from its own recorded screen.
#[test]
fn the_trust_dialog_is_answered_by_its_label_on_each_tested_version() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    for (version, keys) in [
        ("2.1.197", vec!["Enter"]),
        ("2.1.328", vec!["Down", "Enter"]),
    ] {
        let screen = std::fs::read_to_string(format!(
            "{root}/claude-code-{version}/screens/trust-dialog.txt"
        ))
        .unwrap();
        // What a fresh launch does on its first look at this screen.
        let first_look = |screen: &str| {
            let mut s = Sim::new(Begin::Launch { resumed: false });
            s.step(Input::Restore {
                messages: vec![],
                transcript: None,
            });
            assert_eq!(s.tick(), [Effect::Look(Look::Startup)]);
            s.after(
                5,
                Input::Seen {
                    look: Look::Startup,
                    seen: seen_text(screen, Alive::Running),
                },
            )
        };
        let fx = first_look(&screen);
        assert_eq!(fx.first(), Some(&Effect::PressKeys(keys)), "{version}");
        // The dialog half drawn (no cursor yet): nothing pressed, the next look decides.
        let fx = first_look(&screen.replace('❯', " "));
        assert_eq!(fx, [], "{version}");
    }
}

#[test]
fn trust_dialog_at_startup_is_accepted_and_audited() {
    let mut s = Sim::new(Begin::Launch { resumed: false });
    s.step(Input::Restore {
        messages: vec![],
        transcript: None,
    });
    assert_eq!(s.wait(), Some(STARTUP_SCREEN_CHECK));
    assert_eq!(s.tick(), [Effect::Look(Look::Startup)]);
    let fx = s.after(5, seen(Look::Startup, "trust-dialog.txt"));
    assert_eq!(
        fx,
        [
            Effect::PressKeys(vec!["Enter"]),
            Effect::Audit {
                kind: "instance.trust_accepted".into(),
                detail: json!({})
            }
        ]
    );
    // A look sooner than the redraw would see the same dialog and answer it twice.
    assert_eq!(s.wait(), Some(DIALOG_REDRAW));
    assert_eq!(s.tick(), [Effect::Look(Look::Startup)]);
    // Looks go on until the session starts, then stop.
    assert_eq!(s.after(5, seen(Look::Startup, "")), []);
    assert_eq!(s.wait(), Some(STARTUP_SCREEN_CHECK));
    assert_eq!(s.tick(), [Effect::Look(Look::Startup)]);
    assert_eq!(s.after(5, seen(Look::Startup, "01-idle.txt")), []);
    s.after(20, session_started());
    assert_eq!(s.wait(), Some(MCP_CONNECT_GRACE));
}

#[test]
fn refused_dialog_at_startup_fails_and_kills_the_session() {
    let mut s = Sim::new(Begin::Launch { resumed: false });
    s.step(Input::Restore {
        messages: vec![],
        transcript: None,
    });
    assert_eq!(s.tick(), [Effect::Look(Look::Startup)]);
    let fx = s.after(5, seen(Look::Startup, "bypass-warning.txt"));
    let (reason, kill) = failure(&fx);
    assert!(reason.contains("bypass-permissions warning"), "{reason}");
    assert!(kill);
    assert!(presses(&fx).is_empty(), "troupe must not accept it");
    assert!(s.m.is_done());
    assert_eq!(s.m.next_deadline(), None);
    assert_eq!(s.after(10, session_started()), []);
}

#[test]
fn cli_exiting_while_starting_fails_the_instance() {
    let mut s = Sim::new(Begin::Launch { resumed: false });
    s.step(Input::Restore {
        messages: vec![],
        transcript: None,
    });
    assert_eq!(s.tick(), [Effect::Look(Look::Startup)]);
    let look = look_at("01-idle.txt", Alive::Exited);
    let tail = look.tail.clone();
    let fx = s.after(
        5,
        Input::Seen {
            look: Look::Startup,
            seen: look,
        },
    );
    assert_eq!(
        fx,
        [Effect::Fail {
            reason: format!("the CLI exited while starting; screen ends with: {tail}"),
            kill: false
        }]
    );
    assert!(s.m.is_done());
}

#[test]
fn startup_that_outlasts_its_limit_fails_naming_the_screen() {
    let mut s = Sim::new(Begin::Launch { resumed: false });
    s.step(Input::Restore {
        messages: vec![],
        transcript: None,
    });
    let timeout = loop {
        let fx = s.tick();
        match fx.as_slice() {
            [Effect::Look(Look::Startup)] => {
                assert_eq!(s.after(1, seen(Look::Startup, "")), []);
            }
            [Effect::Look(Look::StartupTimeout)] => break s.now(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(timeout, s.t0 + LIMITS.startup);
    let look = look_at("06-busy-thinking.txt", Alive::Running);
    let tail = look.tail.clone();
    let fx = s.step(Input::Seen {
        look: Look::StartupTimeout,
        seen: look,
    });
    assert_eq!(
        fx,
        [Effect::Fail {
            reason: format!("the CLI did not become ready within 30s; screen ends with: {tail}"),
            kill: true
        }]
    );
}

#[test]
fn ready_only_after_both_mcp_lists_and_the_settle_margin() {
    let mut s = Sim::new(Begin::Launch { resumed: false });
    s.step(Input::Restore {
        messages: vec![],
        transcript: None,
    });
    s.after(100, session_started());
    s.step(history(vec![]));
    assert_eq!(s.wait(), Some(MCP_CONNECT_GRACE));
    assert_eq!(s.after(50, Input::McpListed(McpList::Tools)), []);
    // The same list again does not count as the second one.
    assert_eq!(s.after(10, Input::McpListed(McpList::Tools)), []);
    assert_eq!(s.after(100, Input::Tick), []);
    assert!(s.m.starting());
    assert_eq!(s.after(40, Input::McpListed(McpList::Prompts)), []);
    assert_eq!(s.wait(), Some(MCP_SETTLE));
    let almost = MCP_SETTLE.as_millis() as u64 - 1;
    assert_eq!(s.after(almost, Input::Tick), []);
    let fx = s.after(1, Input::Tick);
    // Idle is written before the spawn hears it is ready, so the spawn's answer reads idle.
    assert_eq!(
        fx,
        [
            Effect::Report {
                state: InstanceState::Idle,
                reason: "ready".into()
            },
            Effect::Ready,
        ]
    );
}

#[test]
fn ready_after_the_mcp_grace_with_a_warning_when_the_lists_never_come() {
    let mut s = Sim::new(Begin::Launch { resumed: false });
    s.step(Input::Restore {
        messages: vec![],
        transcript: None,
    });
    s.after(100, session_started());
    s.after(50, Input::McpListed(McpList::Tools));
    assert_eq!(
        s.wait(),
        Some(MCP_CONNECT_GRACE - Duration::from_millis(50))
    );
    let fx = s.tick();
    assert!(warned(&fx), "{fx:?}");
    assert!(fx.contains(&Effect::Ready));
    assert_eq!(reports(&fx), [InstanceState::Idle]);
    assert!(!s.m.starting());
}

#[test]
fn message_queued_while_starting_is_typed_once_ready() {
    let mut s = Sim::new(Begin::Launch { resumed: false });
    s.step(Input::Restore {
        messages: vec![],
        transcript: None,
    });
    assert_eq!(s.after(10, queue("m1", "hello reference one")), []);
    s.after(100, session_started());
    s.after(10, Input::McpListed(McpList::Tools));
    assert_eq!(s.after(10, Input::McpListed(McpList::Prompts)), []);
    let fx = s.tick();
    assert!(fx.contains(&Effect::Ready));
    assert_eq!(delivered(&fx), ["m1"]);
    assert_eq!(reports(&fx).last(), Some(&InstanceState::Busy));
}

#[test]
fn resumed_launch_closes_the_turn_the_transcript_left_open_as_interrupted() {
    let mut s = Sim::new(Begin::Launch { resumed: true });
    s.step(Input::Restore {
        messages: vec![
            known(
                "m_a",
                "hello reference one",
                Some(P_ECHO),
                MessageState::Answered,
            ),
            known(
                "m_b",
                "line one\nline two\nline three",
                Some(P_LINES),
                MessageState::Answered,
            ),
            known(
                "m1",
                "please count slowly to 40",
                Some(P_COUNT),
                MessageState::Started,
            ),
        ],
        transcript: None,
    });
    s.after(200, session_started());
    // The previous process died mid-count: the transcript holds the partial reply and no end.
    let mut lines = turn_of(ECHO, P_ECHO);
    lines.extend(turn_of(ECHO, P_LINES));
    lines.extend(
        turn_of(ECHO, P_COUNT)
            .into_iter()
            .filter(|r| !matches!(r, Record::Interrupted { .. })),
    );
    let fx = s.step(history(lines));
    assert_eq!(finishes(&fx), Vec::<&str>::new(), "{fx:?}");
    assert_eq!(replies_of(&fx, "m_a").len(), 1);
    assert_eq!(replies_of(&fx, "m1").len(), 1);
    s.after(30, Input::McpListed(McpList::Tools));
    s.after(5, Input::McpListed(McpList::Prompts));
    let fx = s.tick();
    assert!(fx.contains(&Effect::Ready));
    assert_eq!(finishes(&fx), ["m1"]);
    let finish = finish_of(&fx, "m1");
    assert_eq!(finish.state, MessageState::Interrupted);
    assert_eq!(finish.response.as_deref(), Some("1 2 3 4 5 "));
    assert!(finish.reason.contains("resumed"), "{}", finish.reason);
    assert_eq!(reports(&fx), [InstanceState::Idle]);
    assert!(!s.m.busy());
}

#[test]
fn resumed_instance_idles_without_waiting_for_the_cut_off_turn() {
    let mut s = Sim::new(Begin::Launch { resumed: true });
    s.step(Input::Restore {
        messages: vec![known(
            "m1",
            "please count slowly to 40",
            Some(P_COUNT),
            MessageState::Started,
        )],
        transcript: None,
    });
    s.after(200, session_started());
    let [prompt, partial, _] = parts(turn_of(ECHO, P_COUNT));
    s.step(history(vec![prompt, partial]));
    s.after(30, Input::McpListed(McpList::Tools));
    s.after(5, Input::McpListed(McpList::Prompts));
    let fx = s.tick();
    assert_eq!(finish_of(&fx, "m1").state, MessageState::Interrupted);
    // The process that would have written the rest of that turn is gone.
    assert!(!s.m.busy());
    assert_eq!(s.m.next_deadline(), None);
}

// ---- turns ---------------------------------------------------------------------------------

/// troupe installs no UserPromptSubmit hook for Claude Code (the turn would wait for it), so
/// the Stop hook is often the first word of a turn whose prompt the transcript has not shown.
#[test]
fn stop_hook_as_the_first_word_of_a_turn_starts_and_answers_its_message() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    let fx = s.after(80, hook("Stop", P_ECHO));
    let started = fx
        .iter()
        .position(|e| {
            *e == Effect::MessageStarted {
                message_id: "m1".into(),
                prompt_id: Some(P_ECHO.into()),
            }
        })
        .expect("the message starts under the hook's prompt id");
    let finished = fx
        .iter()
        .position(|e| matches!(e, Effect::FinishMessage { .. }))
        .expect("and is answered");
    assert!(started < finished, "{fx:?}");
    assert_eq!(finish_of(&fx, "m1"), answered(ECHO_REPLY));
    // The prompt record read later belongs to the same message and starts nothing again.
    let fx = s.after(20, records(turn_of(ECHO, P_ECHO)));
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::MessageStarted { .. })),
        "{fx:?}"
    );
    assert!(outputs(&fx).iter().all(|(m, _)| *m == Some("m1")), "{fx:?}");
}

#[test]
fn stop_hook_answers_before_the_transcript_has_the_reply() {
    let mut s = started_machine();
    let fx = s.after(10, queue("m1", "hello reference one"));
    assert_eq!(
        fx,
        [
            Effect::Deliver {
                message_id: "m1".into(),
                text: "hello reference one".into()
            },
            Effect::Report {
                state: InstanceState::Busy,
                reason: "working on a turn".into()
            }
        ]
    );
    assert_eq!(
        s.after(30, hook("UserPromptSubmit", P_ECHO)),
        [Effect::MessageStarted {
            message_id: "m1".into(),
            prompt_id: Some(P_ECHO.into())
        }]
    );
    let fx = s.after(200, hook("Stop", P_ECHO));
    assert_eq!(finish_of(&fx, "m1"), answered(ECHO_REPLY));
    assert_eq!(reports(&fx), [InstanceState::Idle]);
    assert!(!s.m.busy());
    // The output is still to come: the transcript is read again in case its event is missed.
    assert_eq!(s.wait(), Some(REPLY_RECHECK));
    let fx = s.after(40, records(turn_of(ECHO, P_ECHO)));
    assert_eq!(finishes(&fx), Vec::<&str>::new());
    let outs = outputs(&fx);
    assert_eq!(outs.len(), 2, "the prompt and the reply: {fx:?}");
    assert!(outs.iter().all(|(id, _)| *id == Some("m1")), "{fx:?}");
    assert_eq!(replies_of(&fx, "m1").len(), 1);
    assert_eq!(s.m.next_deadline(), None);
}

#[test]
fn answered_turn_rereads_the_transcript_for_its_output_until_the_grace_ends() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    s.after(200, hook("Stop", P_ECHO));
    let stopped = s.now();
    let mut rereads = 0;
    while s.m.next_deadline().is_some() {
        match s.tick().as_slice() {
            [Effect::ReadTranscript] => rereads += 1,
            [] => assert!(s.now() - stopped >= REPLY_GRACE),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(s.now() - stopped, REPLY_GRACE);
    assert_eq!(rereads, REPLY_GRACE.as_secs() / REPLY_RECHECK.as_secs() - 1);
}

#[test]
fn turn_end_read_before_its_prompt_is_kept_for_that_prompt() {
    let mut s = started_machine();
    echo_turn(&mut s, "m0");
    deliver(&mut s, "m1", "the code word is marmalade");
    s.after(
        20,
        hand_hook(
            "UserPromptSubmit",
            P_MARMALADE,
            json!({ "prompt": "the code word is marmalade" }),
        ),
    );
    let lines = transcript(OUT_OF_ORDER);
    let [
        end @ Record::TurnEnd { .. },
        prompt @ Record::Prompt { .. },
        Record::Assistant { .. },
    ] = lines.as_slice()
    else {
        panic!("the recording's order: {lines:?}")
    };
    // Nothing to end yet: the echo turn is over and this prompt is not read.
    assert_eq!(s.after(100, records(vec![end.clone()])), []);
    assert!(s.m.busy());
    let fx = s.after(5, records(vec![prompt.clone()]));
    assert_eq!(finishes(&fx), Vec::<&str>::new());
    assert_eq!(outputs(&fx), [(Some("m1"), prompt)]);
    // The turn counts as ended in the transcript, so only its reply is awaited.
    assert_eq!(s.wait(), Some(REPLY_RECHECK));
    let fx = s.after(
        30,
        hand_hook(
            "Stop",
            P_MARMALADE,
            json!({ "last_assistant_message": "ECHO: the code word is marmalade" }),
        ),
    );
    assert_eq!(finishes(&fx), ["m1"]);
    assert_eq!(
        finish_of(&fx, "m1"),
        answered("ECHO: the code word is marmalade")
    );
    // The end was used up: the next turn is open until its own end.
    deliver(&mut s, "m2", "and again");
    s.after(20, hand_hook("UserPromptSubmit", "p-again", json!({})));
    let fx = s.after(
        100,
        records(vec![
            prompt_line(
                "u-again",
                "p-again",
                "2026-11-25T17:10:00.000Z",
                "and again",
            ),
            reply_line(
                "u-again-reply",
                "2026-11-25T17:10:00.200Z",
                "msg_again",
                "ECHO: and again",
            ),
        ]),
    );
    assert_eq!(replies_of(&fx, "m2").len(), 1, "{fx:?}");
    assert!(s.m.busy());
}

#[test]
fn reply_after_an_early_turn_end_is_recorded_for_its_turn() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "the code word is marmalade");
    s.after(20, hand_hook("UserPromptSubmit", P_MARMALADE, json!({})));
    // The recording's order in one read: turn end, prompt, reply (earlier than the end).
    let fx = s.after(150, records(transcript(OUT_OF_ORDER)));
    assert_eq!(replies_of(&fx, "m1").len(), 1, "{fx:?}");
}

#[test]
fn reply_read_before_its_prompt_is_held_then_given_to_that_prompt() {
    let mut s = started_machine();
    for (id, prompt, text, reply) in [
        ("m1", P_ECHO, "hello reference one", ECHO_REPLY),
        ("m2", P_LINES, "line one\nline two\nline three", LINES_REPLY),
    ] {
        deliver(&mut s, id, text);
        s.after(20, hook("UserPromptSubmit", prompt));
        let [
            p @ Record::Prompt { .. },
            r @ Record::Assistant { .. },
            end @ Record::TurnEnd { .. },
        ] = parts(turn_of(ECHO, prompt))
        else {
            panic!("prompt, reply, end")
        };
        let fx = s.after(100, records(vec![r.clone()]));
        assert_eq!(outputs(&fx), [], "{id}: held for its prompt");
        let fx = s.after(5, records(vec![p.clone(), end]));
        assert_eq!(outputs(&fx), [(Some(id), &p), (Some(id), &r)], "{id}");
        assert_eq!(finishes(&fx), Vec::<&str>::new());
        // The hook's copy is the answer; the transcript's waits for it a moment.
        assert_eq!(s.wait(), Some(STOP_LATE));
        let fx = s.after(20, hook("Stop", prompt));
        assert_eq!(finish_of(&fx, id), answered(reply));
    }
}

#[test]
fn interrupt_after_the_turn_ended_is_not_busy_and_presses_nothing() {
    let mut s = started_machine();
    echo_turn(&mut s, "m1");
    let fx = s.after(10, Input::InterruptAsked { id: 3 });
    assert_eq!(fx.len(), 1, "{fx:?}");
    let report = resolution(&fx, 3);
    assert_eq!(report.outcome, InterruptOutcome::NotBusy);
    assert!(!report.interrupted);
    assert_eq!(report.message_id, None);
    assert!(!s.m.busy());
}

#[test]
fn swallowed_enter_is_pressed_again_only_when_the_text_sits_in_the_box() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello paste\nsecond line");
    assert_eq!(s.wait(), Some(SUBMIT_ACK_LATE));
    let early = SUBMIT_ACK_LATE.as_millis() as u64 - 1;
    assert_eq!(s.after(early, Input::Tick), []);
    assert_eq!(s.after(1, Input::Tick), [Effect::Look(Look::Nudge)]);
    // The box is empty: the CLI took it and its hook is slow; pressing would send a blank.
    assert_eq!(s.after(5, seen(Look::Nudge, "01-idle.txt")), []);
    assert_eq!(s.wait(), Some(SUBMIT_ACK_LATE));
    assert_eq!(s.tick(), [Effect::Look(Look::Nudge)]);
    assert_eq!(
        s.after(5, seen(Look::Nudge, "input-pending.txt")),
        [Effect::Press(Key::Submit)]
    );
    let fx = s.after(30, hand_hook("UserPromptSubmit", "p-paste", json!({})));
    assert_eq!(
        fx,
        [Effect::MessageStarted {
            message_id: "m1".into(),
            prompt_id: Some("p-paste".into())
        }]
    );
    assert_eq!(s.m.next_deadline(), None);
}

/// A long conversation replayed after a restart: more turns than the machine keeps.
#[test]
fn replay_of_a_long_history_keeps_only_recent_turns_and_finishes_nothing() {
    let mut s = Sim::new(Begin::Reattach);
    let n = 40;
    let messages = (0..n)
        .map(|i| {
            known(
                &format!("m{i}"),
                &format!("turn {i}"),
                Some(&format!("pid-{i}")),
                MessageState::Answered,
            )
        })
        .collect();
    s.step(Input::Restore {
        messages,
        transcript: Some(transcript_path()),
    });
    let mut lines = Vec::new();
    for i in 0..n {
        let at = |ms: u32| format!("2026-11-29T10:{:02}:{:02}.{ms:03}Z", i / 60, i % 60);
        lines.push(prompt_line(
            &format!("u{i}"),
            &format!("pid-{i}"),
            &at(0),
            &format!("turn {i}"),
        ));
        lines.push(reply_line(
            &format!("a{i}"),
            &at(100),
            &format!("r{i}"),
            &format!("ECHO: turn {i}"),
        ));
        lines.push(hand_record(json!({
            "type": "system", "subtype": "turn_duration", "uuid": format!("e{i}"),
            "timestamp": at(200),
        })));
    }
    let fx = s.after(5, history(lines));
    assert_eq!(finishes(&fx), Vec::<&str>::new());
    let outs = outputs(&fx);
    assert_eq!(outs.len(), 2 * n, "a prompt and a reply per turn");
    assert_eq!(outs.last().map(|(m, _)| *m), Some(Some("m39")));
    assert!(!s.m.busy());
    assert_eq!(reports(&fx), [InstanceState::Idle]);
}

#[test]
fn replayed_answered_turn_after_a_restart_is_not_finished_again() {
    let mut s = Sim::new(Begin::Reattach);
    let fx = s.step(Input::Restore {
        messages: vec![known(
            "m1",
            "hello reference one",
            Some(P_ECHO),
            MessageState::Answered,
        )],
        transcript: Some(transcript_path()),
    });
    assert!(fx.contains(&Effect::Follow(transcript_path())), "{fx:?}");
    let mut all = fx;
    let fx = s.after(5, history(turn_of(ECHO, P_ECHO)));
    assert_eq!(finishes(&fx), Vec::<&str>::new());
    let outs = outputs(&fx);
    assert_eq!(outs.len(), 2, "{fx:?}");
    assert!(outs.iter().all(|(id, _)| *id == Some("m1")), "{fx:?}");
    all.extend(fx);
    assert_eq!(reports(&all), [InstanceState::Idle]);
    assert!(!s.m.busy());
    assert_eq!(s.m.next_deadline(), None);
}

#[test]
fn replay_of_the_whole_transcript_finishes_nothing_already_finished() {
    let mut s = Sim::new(Begin::Reattach);
    s.step(Input::Restore {
        messages: vec![
            known(
                "m1",
                "hello reference one",
                Some(P_ECHO),
                MessageState::Answered,
            ),
            known(
                "m2",
                "line one\nline two\nline three",
                Some(P_LINES),
                MessageState::Answered,
            ),
            known(
                "m3",
                "please count slowly to 40",
                Some(P_COUNT),
                MessageState::Interrupted,
            ),
        ],
        transcript: Some(transcript_path()),
    });
    let fx = s.after(5, history(transcript(ECHO)));
    // The last two turns were typed by someone else: closed, but no message of troupe's.
    assert_eq!(finishes(&fx), Vec::<&str>::new(), "{fx:?}");
    assert_eq!(replies_of(&fx, "m2").len(), 1);
    assert_eq!(replies_of(&fx, "m3").len(), 1);
    assert!(!s.m.busy());
    assert_eq!(s.m.next_deadline(), None);
}

#[test]
fn reattach_types_nothing_until_the_replay_is_folded_in() {
    let mut s = Sim::new(Begin::Reattach);
    let fx = s.step(Input::Restore {
        messages: vec![
            known(
                "m1",
                "hello reference one",
                Some(P_ECHO),
                MessageState::Answered,
            ),
            known(
                "m2",
                "line one\nline two\nline three",
                None,
                MessageState::Queued,
            ),
        ],
        transcript: Some(transcript_path()),
    });
    assert_eq!(delivered(&fx), Vec::<&str>::new());
    let fx = s.after(5, history(turn_of(ECHO, P_ECHO)));
    assert_eq!(delivered(&fx), ["m2"]);
}

#[test]
fn reattach_reports_busy_not_idle_when_the_replay_shows_a_running_turn() {
    let mut s = Sim::new(Begin::Reattach);
    let mut fx = s.step(Input::Restore {
        messages: vec![known(
            "m1",
            "please count slowly to 40",
            Some(P_COUNT),
            MessageState::Started,
        )],
        transcript: Some(transcript_path()),
    });
    let running: Vec<Record> = turn_of(ECHO, P_COUNT)
        .into_iter()
        .filter(|r| !matches!(r, Record::Interrupted { .. }))
        .collect();
    fx.extend(s.after(5, history(running)));
    assert!(s.m.busy());
    assert_eq!(reports(&fx), [InstanceState::Busy]);
}

#[test]
fn stop_failure_fails_the_message_and_types_the_next() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    assert_eq!(s.after(5, queue("m2", "line one")), []);
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    s.after(100, records(turn_of(ECHO, P_ECHO)[..1].to_vec()));
    let fx = s.after(
        500,
        hand_hook(
            "StopFailure",
            P_ECHO,
            json!({ "error": "API Error: 529 overloaded" }),
        ),
    );
    assert_eq!(
        finish_of(&fx, "m1"),
        Finish {
            state: MessageState::Failed,
            response: None,
            reason: "API Error: 529 overloaded".into()
        }
    );
    assert_eq!(reports(&fx), [InstanceState::Idle, InstanceState::Busy]);
    assert_eq!(delivered(&fx), ["m2"]);
    assert_eq!(s.m.live_message().as_deref(), Some("m2"));
}

#[test]
fn second_prompt_closes_an_open_turn_answered_when_it_had_a_reply() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    let echo = turn_of(ECHO, P_ECHO);
    s.after(100, records(echo[..2].to_vec()));
    // Someone typed into the session before the turn's end was read.
    let other = turn_of(ECHO, P_LINES)[0].clone();
    let fx = s.after(100, records(vec![other.clone()]));
    assert_eq!(finish_of(&fx, "m1"), answered(ECHO_REPLY));
    assert_eq!(outputs(&fx), [(None, &other)]);
    assert!(s.m.busy(), "the CLI works on the other prompt");
    assert_eq!(s.m.live_message(), None);
}

#[test]
fn second_prompt_closes_an_open_turn_failed_when_it_had_no_reply() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    s.after(100, records(turn_of(ECHO, P_ECHO)[..1].to_vec()));
    let fx = s.after(100, records(turn_of(ECHO, P_LINES)[..1].to_vec()));
    let finish = finish_of(&fx, "m1");
    assert_eq!(finish.state, MessageState::Failed);
    assert_eq!(finish.response, None);
    assert!(
        finish.reason.contains("another prompt"),
        "{}",
        finish.reason
    );
}

#[test]
fn message_queued_behind_a_busy_turn_is_typed_when_the_turn_ends() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    assert_eq!(
        s.after(10, queue("m2", "line one\nline two\nline three")),
        []
    );
    // Queued twice (a retried request): typed once.
    assert_eq!(
        s.after(10, queue("m2", "line one\nline two\nline three")),
        []
    );
    s.after(100, records(turn_of(ECHO, P_ECHO)));
    let fx = s.after(10, hook("Stop", P_ECHO));
    assert_eq!(finish_of(&fx, "m1"), answered(ECHO_REPLY));
    assert_eq!(
        fx.iter()
            .filter(|e| matches!(e, Effect::Deliver { .. }))
            .collect::<Vec<_>>(),
        [&Effect::Deliver {
            message_id: "m2".into(),
            text: "line one\nline two\nline three".into()
        }]
    );
    s.after(30, hook("UserPromptSubmit", P_LINES));
    s.after(100, records(turn_of(ECHO, P_LINES)));
    let fx = s.after(10, hook("Stop", P_LINES));
    assert_eq!(finish_of(&fx, "m2"), answered(LINES_REPLY));
    assert_eq!(delivered(&fx), Vec::<&str>::new());
}

// ---- interrupts ----------------------------------------------------------------------------

#[test]
fn an_interrupt_before_the_first_word_takes_the_turn_back_and_the_box_is_emptied() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "please count slowly to 40");
    s.after(30, hook("UserPromptSubmit", P_COUNT));
    s.after(5, queue("m2", "next"));
    s.after(300, Input::InterruptAsked { id: 4 });
    s.tick();
    // The CLI is idle again with the message back in its input box, and wrote nothing.
    let fx = s.after(
        0,
        Input::Seen {
            look: Look::InterruptAgain { id: 4 },
            seen: look_at("input-pending.txt", Alive::Running),
        },
    );
    assert_eq!(fx[0], Effect::Press(Key::ClearInput), "{fx:?}");
    assert_eq!(finish_of(&fx, "m1").state, MessageState::Interrupted);
    assert!(
        fx.iter().any(|e| matches!(e, Effect::Output {
            message_id: Some(m),
            record: crate::agents::Record::Interrupted { .. },
        } if m == "m1")),
        "the output marks the interrupt the CLI wrote nothing for: {fx:?}"
    );
    let report = resolution(&fx, 4);
    assert_eq!(report.outcome, InterruptOutcome::Confirmed);
    assert_eq!(
        delivered(&fx),
        Vec::<&str>::new(),
        "not while the box holds text"
    );
    assert_eq!(s.tick(), [Effect::Look(Look::Cleared)]);
    let fx = s.after(
        0,
        Input::Seen {
            look: Look::Cleared,
            seen: look_at("input-pending.txt", Alive::Running),
        },
    );
    assert_eq!(fx, [Effect::Press(Key::ClearInput)], "a line at a time");
    assert_eq!(s.tick(), [Effect::Look(Look::Cleared)]);
    let fx = s.after(
        0,
        Input::Seen {
            look: Look::Cleared,
            seen: look_at("01-idle.txt", Alive::Running),
        },
    );
    assert_eq!(delivered(&fx), ["m2"], "typed once the box is empty");
}

#[test]
fn an_interrupt_key_is_not_pressed_again_on_a_screen_that_is_not_busy() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "please count slowly to 40");
    s.after(30, hook("UserPromptSubmit", P_COUNT));
    s.after(300, Input::InterruptAsked { id: 3 });
    s.tick();
    let fx = s.after(
        0,
        Input::Seen {
            look: Look::InterruptAgain { id: 3 },
            seen: look_at("01-idle.txt", Alive::Running),
        },
    );
    assert_eq!(fx, []);
}

#[test]
fn interrupt_without_confirmation_resolves_unconfirmed_after_the_limit() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "please count slowly to 40");
    s.after(30, hook("UserPromptSubmit", P_COUNT));
    assert_eq!(
        s.after(1000, Input::InterruptAsked { id: 7 }),
        [Effect::PressInterrupt { id: 7 }]
    );
    assert!(s.m.busy());
    // Unconfirmed while the screen shows the turn running: the key again, twice more at most.
    for press in 2..=4 {
        assert_eq!(s.wait(), Some(super::interrupt::INTERRUPT_AGAIN));
        assert_eq!(
            s.tick(),
            [
                Effect::ReadTranscript,
                Effect::Look(Look::InterruptAgain { id: 7 })
            ]
        );
        let fx = s.after(
            0,
            Input::Seen {
                look: Look::InterruptAgain { id: 7 },
                seen: look_at("04-busy-streaming.txt", Alive::Running),
            },
        );
        if press <= super::interrupt::INTERRUPT_PRESSES {
            assert_eq!(fx, [Effect::PressInterrupt { id: 7 }], "press {press}");
        } else {
            assert_eq!(
                fx,
                [],
                "no more than {} presses",
                super::interrupt::INTERRUPT_PRESSES
            );
        }
    }
    let waited = super::interrupt::INTERRUPT_AGAIN * 3;
    assert_eq!(s.wait(), Some(LIMITS.interrupt - waited));
    assert_eq!(
        s.tick(),
        [
            Effect::ReadTranscript,
            Effect::Look(Look::InterruptLate { id: 7 })
        ]
    );
    let look = look_at("04-busy-streaming.txt", Alive::Running);
    let tail = look.tail.clone();
    let fx = s.after(
        5,
        Input::Seen {
            look: Look::InterruptLate { id: 7 },
            seen: look,
        },
    );
    let report = resolution(&fx, 7);
    assert_eq!(report.outcome, InterruptOutcome::Unconfirmed);
    assert!(!report.interrupted);
    assert_eq!(report.message_id.as_deref(), Some("m1"));
    assert!(report.detail.contains(&tail), "{}", report.detail);
    assert_eq!(finishes(&fx), Vec::<&str>::new());
}

#[test]
fn interrupt_confirmed_by_the_transcript_keeps_the_partial_reply() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "please count slowly to 40");
    s.after(5, queue("m2", "what number did you reach"));
    s.after(30, hook("UserPromptSubmit", P_COUNT));
    let [prompt, partial, interrupted] = parts(turn_of(ECHO, P_COUNT));
    assert!(matches!(interrupted, Record::Interrupted { .. }));
    s.after(100, records(vec![prompt, partial]));
    assert_eq!(
        s.after(3000, Input::InterruptAsked { id: 1 }),
        [Effect::PressInterrupt { id: 1 }]
    );
    let fx = s.after(20, records(vec![interrupted.clone()]));
    assert_eq!(outputs(&fx), [(Some("m1"), &interrupted)]);
    assert_eq!(
        finish_of(&fx, "m1"),
        Finish {
            state: MessageState::Interrupted,
            response: Some("1 2 3 4 5 ".into()),
            reason: "interrupted on request".into()
        }
    );
    let report = resolution(&fx, 1);
    assert_eq!(report.outcome, InterruptOutcome::Confirmed);
    assert!(report.interrupted);
    assert_eq!(report.message_id.as_deref(), Some("m1"));
    assert_eq!(report.partial_response.as_deref(), Some("1 2 3 4 5 "));
    // The queue waited for the interrupt's answer and moves on now.
    assert_eq!(delivered(&fx), ["m2"]);
    s.after(30, hook("UserPromptSubmit", P_REACH));
    s.after(100, records(turn_of(ECHO, P_REACH)));
    let fx = s.after(10, hook("Stop", P_REACH));
    assert_eq!(
        finish_of(&fx, "m2"),
        answered("ECHO: [Request interrupted by user]\n\nwhat number did you reach")
    );
}

#[test]
fn interrupt_loses_to_a_turn_that_finishes_first() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    assert_eq!(
        s.after(100, Input::InterruptAsked { id: 2 }),
        [Effect::PressInterrupt { id: 2 }]
    );
    let fx = s.after(10, hook("Stop", P_ECHO));
    assert_eq!(finish_of(&fx, "m1"), answered(ECHO_REPLY));
    let report = resolution(&fx, 2);
    assert_eq!(report.outcome, InterruptOutcome::FinishedFirst);
    assert!(!report.interrupted);
    assert_eq!(report.message_id.as_deref(), Some("m1"));
    assert_eq!(report.partial_response.as_deref(), Some(ECHO_REPLY));
    assert!(!s.m.busy());
}

#[test]
fn interrupt_key_failure_answers_the_interrupt_with_the_error() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "please count slowly to 40");
    s.after(30, hook("UserPromptSubmit", P_COUNT));
    s.after(100, Input::InterruptAsked { id: 4 });
    let fx = s.after(
        5,
        Input::InterruptKeyFailed {
            id: 4,
            error: "no server running".into(),
        },
    );
    assert_eq!(
        fx,
        [Effect::ResolveInterrupt {
            id: 4,
            result: Err("could not press the interrupt key: no server running".into())
        }]
    );
    // The turn goes on, and a new interrupt may be asked.
    assert_eq!(s.m.live_message().as_deref(), Some("m1"));
    assert_eq!(
        s.after(5, Input::InterruptAsked { id: 5 }),
        [Effect::PressInterrupt { id: 5 }]
    );
}

// ---- submitting ----------------------------------------------------------------------------

#[test]
fn unacknowledged_message_fails_at_the_submit_limit_naming_the_screen() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(5, queue("m2", "line one"));
    let typed = s.now();
    let late = loop {
        let fx = s.tick();
        match fx.as_slice() {
            [Effect::Look(Look::Nudge)] => {
                assert_eq!(s.step(seen(Look::Nudge, "01-idle.txt")), []);
            }
            [Effect::Look(look @ Look::SubmitLate { .. })] => break look.clone(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        late,
        Look::SubmitLate {
            message_id: "m1".into()
        }
    );
    // Queued 5 ms after the typing.
    assert_eq!(s.now() - typed, LIMITS.submit - Duration::from_millis(5));
    let look = look_at("01-idle.txt", Alive::Running);
    let tail = look.tail.clone();
    let fx = s.step(Input::Seen {
        look: late,
        seen: look,
    });
    let finish = finish_of(&fx, "m1");
    assert_eq!(finish.state, MessageState::Failed);
    assert_eq!(
        finish.reason,
        format!(
            "the CLI did not start a turn for this message within 10s; screen ends with: {tail}"
        )
    );
    assert_eq!(delivered(&fx), ["m2"]);
}

#[test]
fn failed_delivery_fails_the_message_and_checks_the_cli() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    let fx = s.after(
        5,
        Input::DeliveryFailed {
            message_id: "m1".into(),
            error: "no server running".into(),
        },
    );
    assert_eq!(
        finish_of(&fx, "m1"),
        Finish {
            state: MessageState::Failed,
            response: None,
            reason: "could not type the message into tmux: no server running".into()
        }
    );
    assert_eq!(looks(&fx), [&Look::Alive]);
    assert_eq!(reports(&fx), [InstanceState::Idle]);
    assert_eq!(s.m.next_deadline(), None);
    let fx = s.after(
        5,
        Input::Seen {
            look: Look::Alive,
            seen: look_at("", Alive::NoSession),
        },
    );
    assert_eq!(
        fx,
        [Effect::Exit {
            reason: "its tmux session is gone".into(),
        }]
    );
    assert!(s.m.is_done());
}

#[test]
fn after_a_failed_delivery_nothing_is_typed_until_the_cli_is_seen_alive() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "first");
    assert!(delivered(&s.after(5, queue("m2", "second"))).is_empty());
    let fx = s.after(
        5,
        Input::DeliveryFailed {
            message_id: "m1".into(),
            error: "server exited unexpectedly".into(),
        },
    );
    assert_eq!(looks(&fx), [&Look::Alive]);
    assert!(delivered(&fx).is_empty(), "typed before the look: {fx:?}");
    let fx = s.after(
        5,
        Input::Seen {
            look: Look::Alive,
            seen: look_at("", Alive::Running),
        },
    );
    assert_eq!(delivered(&fx), ["m2"]);
}

// ---- restart recovery ----------------------------------------------------------------------

/// A reattach to a CLI that was typed a message troupe never heard back about.
fn reattach_with_unacknowledged() -> Sim {
    let mut s = Sim::new(Begin::Reattach);
    s.step(Input::Restore {
        messages: vec![
            known("m1", "hello reference one", None, MessageState::Submitted),
            known("m2", "line one", None, MessageState::Queued),
        ],
        transcript: Some(transcript_path()),
    });
    let fx = s.after(5, history(vec![]));
    assert_eq!(looks(&fx), [&Look::Recover]);
    assert_eq!(delivered(&fx), Vec::<&str>::new());
    s
}

#[test]
fn recovery_adopts_a_message_the_busy_cli_already_took() {
    let mut s = reattach_with_unacknowledged();
    let fx = s.after(5, seen(Look::Recover, "04-busy-streaming.txt"));
    assert_eq!(delivered(&fx), Vec::<&str>::new());
    assert!(!fx.iter().any(|e| matches!(e, Effect::Requeue { .. })));
    assert_eq!(reports(&fx), [InstanceState::Busy]);
    assert_eq!(s.m.live_message().as_deref(), Some("m1"));
    // Its prompt reaches the transcript as usual.
    let fx = s.after(50, records(turn_of(ECHO, P_ECHO)[..1].to_vec()));
    assert!(fx.contains(&Effect::MessageStarted {
        message_id: "m1".into(),
        prompt_id: Some(P_ECHO.into())
    }));
    let fx = s.after(50, hook("Stop", P_ECHO));
    assert_eq!(finish_of(&fx, "m1"), answered(ECHO_REPLY));
    assert_eq!(delivered(&fx), ["m2"]);
}

#[test]
fn recovery_nudges_a_message_still_in_the_input_box() {
    let mut s = reattach_with_unacknowledged();
    let fx = s.after(5, seen(Look::Recover, "input-pending.txt"));
    assert_eq!(delivered(&fx), Vec::<&str>::new());
    assert_eq!(s.m.live_message().as_deref(), Some("m1"));
    assert_eq!(s.wait(), Some(Duration::ZERO));
    assert_eq!(s.tick(), [Effect::Look(Look::Nudge)]);
    assert_eq!(
        s.after(5, seen(Look::Nudge, "input-pending.txt")),
        [Effect::Press(Key::Submit)]
    );
}

#[test]
fn recovery_requeues_a_message_the_cli_never_got_ahead_of_newer_ones() {
    let mut s = reattach_with_unacknowledged();
    let fx = s.after(5, seen(Look::Recover, "01-idle.txt"));
    assert_eq!(
        fx,
        [
            Effect::Requeue {
                message_id: "m1".into()
            },
            Effect::Deliver {
                message_id: "m1".into(),
                text: "hello reference one".into()
            },
            Effect::Report {
                state: InstanceState::Busy,
                reason: "working on a turn".into()
            }
        ]
    );
}

// ---- the CLI going away, permissions, the transcript as a fallback -------------------------

#[test]
fn session_end_is_checked_on_the_pane_after_a_delay() {
    let mut s = started_machine();
    assert_eq!(s.after(10, Input::Hook(AgentEvent::SessionEnded)), []);
    assert_eq!(s.wait(), Some(EXIT_CHECK_DELAY));
    let early = EXIT_CHECK_DELAY.as_millis() as u64 - 1;
    assert_eq!(s.after(early, Input::Tick), []);
    assert_eq!(s.after(1, Input::Tick), [Effect::Look(Look::Alive)]);
    let look = look_at("01-idle.txt", Alive::Exited);
    let tail = look.tail.clone();
    let fx = s.after(
        5,
        Input::Seen {
            look: Look::Alive,
            seen: look,
        },
    );
    assert_eq!(
        fx,
        [Effect::Exit {
            reason: format!("the CLI exited; screen ends with: {tail}"),
        }]
    );
    assert!(s.m.is_done());
    assert_eq!(s.m.next_deadline(), None);
}

/// kill -9 of the CLI mid-turn: its process watch says so at once; the running message fails
/// with the evidence, a queued one waits for the resume, and the instance reads `exited`.
#[test]
fn cli_process_dying_mid_turn_fails_its_message_and_keeps_the_queue() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "please count slowly to 40");
    assert!(delivered(&s.after(5, queue("m2", "later"))).is_empty());
    assert_eq!(
        s.after(300, Input::ProcessExited),
        [Effect::Look(Look::Alive)]
    );
    let look = look_at("04-busy-streaming.txt", Alive::Exited);
    let tail = look.tail.clone();
    let fx = s.after(
        5,
        Input::Seen {
            look: Look::Alive,
            seen: look,
        },
    );
    let reason = format!("the CLI exited; screen ends with: {tail}");
    assert_eq!(
        finish_of(&fx, "m1"),
        Finish {
            state: MessageState::Failed,
            response: None,
            reason: reason.clone()
        }
    );
    assert_eq!(fx.last(), Some(&Effect::Exit { reason }));
    assert!(delivered(&fx).is_empty(), "m2 stays queued: {fx:?}");
    assert!(finishes(&fx) == ["m1"], "{fx:?}");
    assert!(s.m.is_done());
}

#[test]
fn session_end_from_a_replaced_process_changes_nothing_while_the_cli_runs() {
    let mut s = started_machine();
    s.after(10, Input::Hook(AgentEvent::SessionEnded));
    assert_eq!(s.tick(), [Effect::Look(Look::Alive)]);
    assert_eq!(s.after(5, seen(Look::Alive, "01-idle.txt")), []);
    assert!(!s.m.is_done());
    assert_eq!(s.m.next_deadline(), None);
}

#[test]
fn permission_request_reports_waiting_until_the_tool_runs() {
    let mut s = started_machine();
    deliver(
        &mut s,
        "m1",
        r#"CALL_TOOL Bash {"command": "touch made_by_bash.txt", "description": "Create a file"}"#,
    );
    s.after(30, hook("UserPromptSubmit", P_TOOL));
    let lines = transcript(TOOL_USE);
    let [prompt, tool_use, result, reply, end] = parts(lines);
    let fx = s.after(200, records(vec![prompt, tool_use]));
    assert_eq!(outputs(&fx).len(), 2);
    assert_eq!(s.after(5, hook("PreToolUse", P_TOOL)), []);
    let fx = s.after(5, hook(crate::agents::PERMISSION_HOOK, P_TOOL));
    assert_eq!(
        fx,
        [
            Effect::Report {
                state: InstanceState::WaitingPermission,
                reason: "Bash asks for permission".into()
            },
            Effect::Audit {
                kind: "instance.permission_request".into(),
                detail: json!({
                    "tool_name": "Bash",
                    "tool_input": {
                        "command": "touch made_by_bash.txt",
                        "description": "Create a file"
                    }
                })
            }
        ]
    );
    assert!(s.m.busy());
    let fx = s.after(1400, records(vec![result.clone()]));
    assert_eq!(outputs(&fx), [(Some("m1"), &result)]);
    assert_eq!(reports(&fx), [InstanceState::Busy]);
    assert_eq!(s.after(5, hook("PostToolUse", P_TOOL)), []);
    s.after(200, records(vec![reply, end]));
    let fx = s.after(10, hook("Stop", P_TOOL));
    assert_eq!(
        finish_of(&fx, "m1"),
        answered("ECHO: (Bash completed with no output)")
    );
    assert_eq!(reports(&fx), [InstanceState::Idle]);
}

#[test]
fn transcript_answers_after_stop_late_when_no_stop_hook_comes() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    let fx = s.after(200, records(turn_of(ECHO, P_ECHO)));
    assert_eq!(finishes(&fx), Vec::<&str>::new());
    assert!(s.m.busy());
    assert_eq!(s.wait(), Some(STOP_LATE));
    let fx = s.tick();
    assert!(warned(&fx), "{fx:?}");
    assert_eq!(finish_of(&fx, "m1"), answered(ECHO_REPLY));
    assert_eq!(reports(&fx), [InstanceState::Idle]);
    // The hook, when it finally comes, has nothing left to close.
    assert_eq!(s.after(500, hook("Stop", P_ECHO)), []);
    assert_eq!(s.m.next_deadline(), None);
}

#[test]
fn late_stop_hook_of_an_answered_turn_does_not_finish_the_next_message() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(5, queue("m2", "line one\nline two\nline three"));
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    s.after(200, records(turn_of(ECHO, P_ECHO)));
    let fx = s.tick();
    assert_eq!(finish_of(&fx, "m1"), answered(ECHO_REPLY));
    assert_eq!(delivered(&fx), ["m2"]);
    // m2 is typed but not acknowledged yet when m1's hook finally arrives.
    let fx = s.after(20, hook("Stop", P_ECHO));
    assert_eq!(finishes(&fx), Vec::<&str>::new(), "{fx:?}");
    assert_eq!(s.m.live_message().as_deref(), Some("m2"));
}

#[test]
fn turn_end_before_its_reply_rereads_the_transcript_until_the_reply_comes() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    let [prompt, _reply, end] = parts(turn_of(ECHO, P_ECHO));
    let fx = s.after(200, records(vec![prompt, end]));
    assert_eq!(finishes(&fx), Vec::<&str>::new());
    assert!(s.m.busy());
    assert_eq!(s.wait(), Some(REPLY_RECHECK));
    assert_eq!(s.tick(), [Effect::ReadTranscript]);
    assert_eq!(s.wait(), Some(REPLY_RECHECK));
    assert_eq!(s.tick(), [Effect::ReadTranscript]);
    assert!(s.m.busy());
}

#[test]
fn turn_end_before_its_reply_answers_when_the_reply_arrives() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    let [prompt, reply, end] = parts(turn_of(ECHO, P_ECHO));
    s.after(200, records(vec![prompt, end]));
    assert_eq!(s.tick(), [Effect::ReadTranscript]);
    let fx = s.after(10, records(vec![reply]));
    assert_eq!(replies_of(&fx, "m1").len(), 1, "{fx:?}");
    let since = s.now();
    let mut fx = Vec::new();
    while s.m.busy() {
        fx = s.tick();
    }
    assert!(s.now() - since <= STOP_LATE);
    assert_eq!(finish_of(&fx, "m1"), answered(ECHO_REPLY));
}

#[test]
fn api_error_in_the_transcript_fails_the_message() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    let [prompt, _, end] = parts(turn_of(ECHO, P_ECHO));
    let error = hand_record(json!({
        "parentUuid": null, "isSidechain": false, "type": "assistant",
        "message": {
            "id": "api-error-1", "model": "<synthetic>", "role": "assistant", "type": "message",
            "content": [{ "type": "text", "text": "API Error: 500 internal server error" }],
        },
        "isApiErrorMessage": true,
        "uuid": "u-error", "timestamp": "2026-11-25T15:21:37.000Z",
    }));
    let fx = s.after(300, records(vec![prompt, error, end]));
    let finish = finish_of(&fx, "m1");
    assert_eq!(finish.state, MessageState::Failed);
    assert_eq!(finish.reason, "API Error: 500 internal server error");
    assert!(!s.m.busy());
    // Its StopFailure hook comes after and changes nothing.
    let fx = s.after(
        10,
        hand_hook(
            "StopFailure",
            P_ECHO,
            json!({ "error": "API Error: 500 internal server error" }),
        ),
    );
    assert_eq!(fx, []);
}

// ---- cost of an idle instance --------------------------------------------------------------

#[test]
fn idle_instance_has_no_deadline() {
    let mut s = started_machine();
    assert_eq!(s.m.next_deadline(), None);
    echo_turn(&mut s, "m1");
    assert_eq!(s.m.next_deadline(), None);
    assert!(!s.m.busy());
    assert_eq!(s.m.live_message(), None);
}

// ---- relaunch (the server moved) ----------------------------------------------------------

#[test]
fn relaunch_waits_for_the_running_turn_and_leaves_the_queue_for_the_new_cli() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    let asked = Input::RelaunchAsked {
        reason: "moved".into(),
    };
    assert_eq!(s.after(5, asked), []);
    assert!(!s.m.is_done(), "a running turn is not cut off");
    assert_eq!(
        delivered(&s.after(5, queue("m2", "next"))),
        Vec::<&str>::new()
    );
    s.after(30, hook("UserPromptSubmit", P_ECHO));
    let fx = s.after(200, hook("Stop", P_ECHO));
    assert_eq!(finish_of(&fx, "m1"), answered(ECHO_REPLY));
    assert!(
        fx.contains(&Effect::Relaunch {
            reason: "moved".into()
        }),
        "{fx:?}"
    );
    assert_eq!(
        delivered(&fx),
        Vec::<&str>::new(),
        "m2 waits for the new CLI"
    );
    assert!(s.m.is_done());
}

#[test]
fn relaunch_of_an_idle_instance_happens_at_once() {
    let mut s = started_machine();
    let fx = s.after(
        5,
        Input::RelaunchAsked {
            reason: "moved".into(),
        },
    );
    assert_eq!(
        fx,
        [Effect::Relaunch {
            reason: "moved".into()
        }]
    );
    assert!(s.m.is_done());
}

/// Every recorded Claude Code version (`tests/fixtures/claude-code-*`, made by
/// `.ci/record-claude`) drives the machine through its own recording: started from its
/// SessionStart hook, then its first two turns typed, acknowledged by their hooks, read from
/// its transcript and answered with the model's words.
#[test]
fn every_recorded_version_drives_the_machine_through_its_turns() {
    let dirs = crate::agents::claude::recorded_versions();
    for dir in dirs {
        let name = dir.display().to_string();
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let payloads: Vec<Value> = serde_json::Deserializer::from_str(&read("hook-payloads.jsonl"))
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect();
        let hook_of = |event: &str, prompt: Option<&str>| -> Input {
            let p = payloads
                .iter()
                .find(|p| {
                    p["hook_event_name"] == event && prompt.is_none_or(|id| p["prompt_id"] == id)
                })
                .unwrap_or_else(|| panic!("{name}: no {event} hook for {prompt:?}"));
            Input::Hook(claude().hook_event(p))
        };
        let records: Vec<Record> = read("transcript-echo-multiline-interrupt.jsonl")
            .lines()
            .map(|l| claude().parse_record(l))
            .filter(|r| *r != Record::Other)
            .collect();
        let starts: Vec<usize> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Record::Prompt { .. }))
            .map(|(i, _)| i)
            .collect();

        let mut s = Sim::new(Begin::Launch { resumed: false });
        s.step(Input::Restore {
            messages: vec![],
            transcript: None,
        });
        let fx = s.after(150, hook_of("SessionStart", None));
        assert!(
            matches!(fx.as_slice(), [Effect::Follow(_)]),
            "{name}: {fx:?}"
        );
        s.step(history(vec![]));
        s.after(40, Input::McpListed(McpList::Tools));
        s.after(5, Input::McpListed(McpList::Prompts));
        let fx = s.tick();
        assert!(fx.contains(&Effect::Ready), "{name}: {fx:?}");

        for (n, id) in [(0, "m-echo"), (1, "m-lines")] {
            let turn = records[starts[n]..starts[n + 1]].to_vec();
            let Record::Prompt {
                text,
                prompt_id: Some(prompt),
                ..
            } = turn[0].clone()
            else {
                panic!("{name}: turn {n} starts with {:?}", turn[0])
            };
            let reply = turn
                .iter()
                .rev()
                .find_map(|r| r.reply_text())
                .unwrap_or_else(|| panic!("{name}: turn {n} has no reply"));
            deliver(&mut s, id, &text);
            s.after(30, hook_of("UserPromptSubmit", Some(&prompt)));
            s.after(200, self::records(turn));
            let fx = s.after(20, hook_of("Stop", Some(&prompt)));
            assert_eq!(finish_of(&fx, id), answered(&reply), "{name}: turn {n}");
            assert!(reply.starts_with("ECHO: "), "{name}: {reply}");
        }
    }
}

/// Codex's recorded hook payloads, in order.
fn codex_hooks() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/codex-0.169.0/hook-payloads.jsonl"
    ))
    .unwrap();
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

/// Codex 0.169 takes a message typed right after a Stop hook into the turn that just
/// stopped: its UserPromptSubmit and the Stop with its answer name that turn again (seen
/// about 55 ms after the Stop). The message starts and is answered all the same; a CLI
/// without that habit keeps treating such a hook as a late one.
#[test]
fn a_message_taken_into_the_turn_that_just_stopped_is_answered() {
    let codex = crate::agents::codex::Codex {
        bin: crate::agents::AgentKind::Codex.default_bin().into(),
    };
    let hooks = codex_hooks();
    let first = |event: &str| {
        hooks
            .iter()
            .find(|p| p["hook_event_name"] == event)
            .unwrap()
            .clone()
    };
    let (submit, stop) = (first("UserPromptSubmit"), first("Stop"));
    assert_eq!(submit["turn_id"], stop["turn_id"]);
    let steered = |mut p: Value, key: &str, text: &str| {
        p[key] = json!(text);
        Input::Hook(codex.hook_event(&p))
    };
    for joins in [true, false] {
        let mut s = started_machine();
        s.m.habits.joins_closing_turn = joins && codex.habits().joins_closing_turn;
        deliver(&mut s, "m1", "hello codex hooks");
        s.after(30, Input::Hook(codex.hook_event(&submit)));
        let fx = s.after(200, Input::Hook(codex.hook_event(&stop)));
        assert_eq!(finish_of(&fx, "m1"), answered("ECHO: hello codex hooks"));
        deliver(&mut s, "m2", "next message zero");
        let fx = s.after(55, steered(submit.clone(), "prompt", "next message zero"));
        let started = fx
            .iter()
            .any(|e| matches!(e, Effect::MessageStarted { message_id, .. } if message_id == "m2"));
        assert_eq!(started, joins, "{fx:?}");
        let fx = s.after(
            200,
            steered(
                stop.clone(),
                "last_assistant_message",
                "ECHO: next message zero",
            ),
        );
        if joins {
            assert_eq!(finish_of(&fx, "m2"), answered("ECHO: next message zero"));
            assert!(!s.m.busy());
        } else {
            assert_eq!(finishes(&fx), Vec::<&str>::new(), "{fx:?}");
        }
    }
}

/// Codex sends its session-started hook with the first prompt, and the transcript is first
/// read when that hook is handled. A task held up meanwhile (typing, a database write) can
/// find the whole first turn in that read, its end included, and answer it before handling
/// the turn's own submit hook. That late hook is the turn's first, not a message taken into
/// it (that would be a second one): the message typed next starts and is answered under its
/// own turn. Found by the `interleavings` property test.
#[test]
fn a_late_submit_hook_of_a_turn_answered_from_the_first_read_starts_no_other_message() {
    let codex = crate::agents::codex::Codex {
        bin: "codex".into(),
    };
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/codex-0.169.0");
    let hooks: Vec<Value> = serde_json::Deserializer::from_str(
        &std::fs::read_to_string(format!("{dir}/hook-payloads-resume.jsonl")).unwrap(),
    )
    .into_iter::<Value>()
    .map(Result::unwrap)
    .collect();
    let hook = |event: &str, turn: &str| {
        let payload = hooks
            .iter()
            .find(|p| p["hook_event_name"] == event && (turn.is_empty() || p["turn_id"] == turn))
            .unwrap_or_else(|| panic!("no {event} hook for {turn}"));
        Input::Hook(codex.hook_event(payload))
    };
    let mut parser = codex.parser();
    let rollout: Vec<Record> =
        std::fs::read_to_string(format!("{dir}/rollout-interrupt-resume.jsonl"))
            .unwrap()
            .lines()
            .map(|l| parser.parse(l))
            .filter(|r| *r != Record::Other)
            .collect();
    // A turn's lines: its prompt up to its end.
    let turn = |prompt: &str| -> Vec<Record> {
        let start = rollout
            .iter()
            .position(|r| matches!(r, Record::Prompt { prompt_id: Some(p), .. } if p == prompt))
            .unwrap();
        let len = rollout[start..]
            .iter()
            .position(|r| matches!(r, Record::TurnEnd { .. }))
            .unwrap();
        rollout[start..=start + len].to_vec()
    };
    const REACH: &str = "01a233f1-0e22-7511-83db-f3d3773be776";
    const STATUS: &str = "01a233f2-342b-7d02-bfd2-bf500f4f3415";

    let mut s = started_machine();
    s.m.habits = codex.habits();
    deliver(&mut s, "m1", "what number did you reach");
    s.after(5, queue("m2", "/status"));
    let fx = s.after(700, hook("SessionStart", ""));
    assert!(matches!(fx.as_slice(), [Effect::Follow(_)]), "{fx:?}");
    let fx = s.step(history(turn(REACH)));
    assert_eq!(
        finish_of(&fx, "m1"),
        answered("ECHO: what number did you reach")
    );
    assert_eq!(delivered(&fx), ["m2"]);
    // The hooks Codex sent while the task was held up.
    let fx = s.step(hook("UserPromptSubmit", REACH));
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::MessageStarted { .. })),
        "{fx:?}"
    );
    let fx = s.step(hook("Stop", REACH));
    assert_eq!(finishes(&fx), Vec::<&str>::new(), "{fx:?}");
    let fx = s.after(100, hook("UserPromptSubmit", STATUS));
    assert_eq!(
        fx.iter()
            .filter_map(|e| match e {
                Effect::MessageStarted {
                    message_id,
                    prompt_id,
                } => Some((message_id.as_str(), prompt_id.as_deref())),
                _ => None,
            })
            .collect::<Vec<_>>(),
        [("m2", Some(STATUS))]
    );
    let fx = s.after(50, records(turn(STATUS)));
    assert!(outputs(&fx).iter().all(|(m, _)| *m == Some("m2")), "{fx:?}");
    let fx = s.after(10, hook("Stop", STATUS));
    assert_eq!(finish_of(&fx, "m2"), answered("ECHO: /status"));
    assert!(!s.m.busy());
}
