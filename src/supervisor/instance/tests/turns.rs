//! Turns: a message typed, its prompt acknowledged, its reply and its end, whichever way
//! the hooks and the transcript come.

use super::*;

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
    assert!(!report.interrupted());
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
