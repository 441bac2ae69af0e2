//! Interrupts, and submitting: a typed message acknowledged, nudged or given up.

use super::*;

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
        assert_eq!(s.wait(), Some(super::super::interrupt::INTERRUPT_AGAIN));
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
        if press <= super::super::interrupt::INTERRUPT_PRESSES {
            assert_eq!(fx, [Effect::PressInterrupt { id: 7 }], "press {press}");
        } else {
            assert_eq!(
                fx,
                [],
                "no more than {} presses",
                super::super::interrupt::INTERRUPT_PRESSES
            );
        }
    }
    let waited = super::super::interrupt::INTERRUPT_AGAIN * 3;
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
    assert!(!report.interrupted());
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
    assert!(report.interrupted());
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
    assert!(!report.interrupted());
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

/// An interrupt asked before troupe has seen the CLI take the prompt: Claude Code may give
/// the prompt back to its input box. Enter must not be pressed again on it while the
/// interrupt stands (that would send the message the person asked to stop).
#[test]
fn no_enter_is_pressed_again_while_an_interrupt_stands() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "please count slowly to 40");
    assert_eq!(
        s.after(5, Input::InterruptAsked { id: 7 }),
        [Effect::PressInterrupt { id: 7 }]
    );
    let look = loop {
        let fx = s.tick();
        assert!(
            !fx.contains(&Effect::Look(Look::Nudge)),
            "a look to press Enter again: {fx:?}"
        );
        if let Some(Effect::Look(look @ Look::InterruptAgain { .. })) = fx.last() {
            break look.clone();
        }
    };
    let fx = s.step(seen(look, "input-pending.txt"));
    assert!(
        fx.contains(&Effect::Press(crate::agents::Key::ClearInput)),
        "{fx:?}"
    );
    assert!(!fx.contains(&Effect::Press(Key::Submit)), "{fx:?}");
    assert_eq!(finish_of(&fx, "m1").state, MessageState::Interrupted);
    assert!(
        fx.iter().any(|e| matches!(e,
            Effect::ResolveInterrupt { id: 7, result: Ok(a) }
                if a.outcome == crate::states::InterruptOutcome::Confirmed)),
        "{fx:?}"
    );
}
