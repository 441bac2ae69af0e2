//! After a restart, the CLI going away, permissions, the transcript as a fallback, an idle
//! instance's cost, a relaunch, and Codex's habits.

use super::*;

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
    assert_eq!(
        s.after(10, Input::Hook(AgentEvent::SessionEnded.into())),
        []
    );
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
    s.after(10, Input::Hook(AgentEvent::SessionEnded.into()));
    assert_eq!(s.tick(), [Effect::Look(Look::Alive)]);
    assert_eq!(s.after(5, seen(Look::Alive, "01-idle.txt")), []);
    assert!(!s.m.is_done());
    assert_eq!(s.m.next_deadline(), None);
}

/// A turn whose Bash call troupe holds for a decision; returns the machine and the tool's
/// result line, not yet read.
fn held_bash_request() -> (Sim, Record) {
    let mut s = started_machine();
    deliver(
        &mut s,
        "m1",
        r#"CALL_TOOL Bash {"command": "touch made_by_bash.txt", "description": "Create a file"}"#,
    );
    let [prompt, tool_use, result, _reply, _end] = parts(transcript(TOOL_USE));
    s.after(200, records(vec![prompt, tool_use]));
    let fx = s.after(
        5,
        Input::PermissionAsked {
            request_id: "perm-1".into(),
            summary: "Bash: touch made_by_bash.txt".into(),
        },
    );
    assert_eq!(reports(&fx), [InstanceState::WaitingPermission]);
    (s, result)
}

#[test]
fn a_held_permission_request_is_answered_by_its_decision_not_by_a_late_tool_result() {
    let (mut s, result) = held_bash_request();
    // A tool result read while troupe holds the question is not its answer.
    let fx = s.after(10, records(vec![result.clone()]));
    assert_eq!(reports(&fx), Vec::<InstanceState>::new(), "{fx:?}");
    assert!(s.m.waiting_permission);
    // The decision is.
    s.after(10, Input::PermissionAnswered);
    assert!(!s.m.waiting_permission);
    assert!(s.m.busy());
}

#[test]
fn a_question_left_to_the_pane_is_answered_by_the_tool_running() {
    let (mut s, result) = held_bash_request();
    // Nobody decided in time; the CLI's dialog asks at the pane and the state still says so.
    assert_eq!(s.after(10, Input::PermissionLeftAtPane), []);
    assert!(s.m.waiting_permission);
    // Someone answered there: the tool ran.
    let fx = s.after(10, records(vec![result]));
    assert_eq!(reports(&fx), [InstanceState::Busy], "{fx:?}");
    assert!(!s.m.waiting_permission);
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
            Input::Hook(claude().hook(p))
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
        // Each version's recording is its own session.
        s.m.session = payloads
            .iter()
            .find(|p| p["hook_event_name"] == "SessionStart")
            .and_then(|p| p["session_id"].as_str())
            .unwrap()
            .to_string();
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
        let fx = s.after(5, Input::McpListed(McpList::Prompts));
        assert!(fx.contains(&Effect::Ready), "{name}: {fx:?}");
        s.after(MCP_SETTLE.as_millis() as u64, Input::Tick);

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
        Input::Hook(codex.hook(&p))
    };
    for joins in [true, false] {
        let mut s = started_machine();
        s.m.habits.joins_closing_turn = joins && codex.habits().joins_closing_turn;
        // Codex names its own session in its first hook.
        s.m.session = String::new();
        deliver(&mut s, "m1", "hello codex hooks");
        s.after(30, Input::Hook(codex.hook(&submit)));
        let fx = s.after(200, Input::Hook(codex.hook(&stop)));
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
        bin: crate::agents::AgentKind::Codex.default_bin().into(),
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
        Input::Hook(codex.hook(payload))
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
    s.m.session = String::new();
    deliver(&mut s, "m1", "what number did you reach");
    s.after(5, queue("m2", "/status"));
    let fx = s.after(700, hook("SessionStart", ""));
    assert!(
        matches!(fx.as_slice(), [Effect::AdoptSession(id), Effect::Follow(_)] if id == "01a233f0-86c0-7b33-afeb-1c94b860426e"),
        "{fx:?}"
    );
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

/// After a restart, a message Codex takes into the turn that had just stopped (its submit and
/// stop hooks name that turn, whose own hooks went to the process before) starts and is
/// answered: the replayed turn counts as hooked.
#[test]
fn after_a_restart_a_message_taken_into_the_replayed_turn_is_answered() {
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
    let turn = submit["turn_id"].as_str().unwrap().to_string();
    let session = submit["session_id"].as_str().unwrap().to_string();
    let steered = |mut p: Value, key: &str, text: &str| {
        p[key] = json!(text);
        Input::Hook(codex.hook(&p))
    };

    let mut s = Sim::new(Begin::Reattach);
    s.m.habits = codex.habits();
    s.m.session = session.clone();
    let rollout = PathBuf::from(format!(
        "/tmp/sessions/rollout-2026-12-06T10-58-00-{session}.jsonl"
    ));
    let fx = s.step(Input::Restore {
        messages: vec![known(
            "m1",
            "please count slowly to 8",
            Some(&turn),
            MessageState::Answered,
        )],
        transcript: Some(rollout.clone()),
    });
    assert_eq!(fx, [Effect::Follow(rollout)]);
    s.step(history(vec![
        prompt_line(
            "u1",
            &turn,
            "2026-12-06T10:58:40.000Z",
            "please count slowly to 8",
        ),
        reply_line(
            "u2",
            "2026-12-06T10:58:44.000Z",
            "resp-1",
            "1 2 3 4 5 6 7 8",
        ),
        Record::TurnEnd {
            uuid: "end-1".into(),
            ts: "2026-12-06T10:58:44.100Z".into(),
        },
    ]));
    deliver(&mut s, "m2", "still here?");
    let fx = s.after(55, steered(submit, "prompt", "still here?"));
    assert!(
        fx.iter()
            .any(|e| matches!(e, Effect::MessageStarted { message_id, .. } if message_id == "m2")),
        "{fx:?}"
    );
    let fx = s.after(
        200,
        steered(stop, "last_assistant_message", "ECHO: still here?"),
    );
    assert_eq!(finish_of(&fx, "m2"), answered("ECHO: still here?"));
    assert!(!s.m.busy());
}
