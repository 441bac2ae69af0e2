//! From launch to the first ready prompt: dialogs, the MCP connection, the session's hooks.

use super::*;

// ---- startup -------------------------------------------------------------------------------

/// 2.1.197 lists "Yes, I trust this folder" first, 2.1.328 "No, exit" first: each is
/// answered by the label, from its own recorded screen.
#[test]
fn the_trust_dialog_is_answered_by_its_label_on_each_tested_version() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    // The cursor is moved first; Enter waits for a look that finds it on the choice.
    for (version, keys) in [("2.1.197", vec!["Enter"]), ("2.1.328", vec!["Down"])] {
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
        let answered = keys == ["Enter"];
        assert_eq!(fx.first(), Some(&Effect::PressKeys(keys)), "{version}");
        assert_eq!(
            fx.iter().any(|e| matches!(e, Effect::Audit { .. })),
            answered,
            "{version}: audited only when answered: {fx:?}"
        );
        if !answered {
            // The next look finds the cursor on the choice and confirms it.
            let moved = screen
                .replace("❯ No, exit", "  No, exit")
                .replace("  Yes, I trust this folder", "❯ Yes, I trust this folder");
            let fx = first_look(&moved);
            assert_eq!(
                fx,
                [
                    Effect::PressKeys(vec!["Enter"]),
                    Effect::Audit {
                        kind: "instance.trust_accepted".into(),
                        detail: json!({})
                    }
                ],
                "{version}"
            );
        }
        // The dialog half drawn (no cursor yet): nothing pressed, the next look decides.
        let fx = first_look(&screen.replace('❯', " "));
        assert_eq!(fx, [], "{version}");
    }
}

/// Claude Code 2.1.328: "No, exit" under the cursor. One Down, quick looks that press
/// nothing more, and Enter once a look a redraw after the Down finds the cursor on "Yes".
#[test]
fn the_328_trust_dialog_takes_one_down_and_an_enter_a_redraw_later() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let dialog = std::fs::read_to_string(format!(
        "{root}/claude-code-2.1.328/screens/trust-dialog.txt"
    ))
    .unwrap();
    let moved = dialog
        .replace("❯ No, exit", "  No, exit")
        .replace("  Yes, I trust this folder", "❯ Yes, I trust this folder");
    let mut s = Sim::new(Begin::Launch { resumed: false });
    s.step(Input::Restore {
        messages: vec![],
        transcript: None,
    });
    assert_eq!(s.tick(), [Effect::Look(Look::Startup)]);
    let look = |text: &str| Input::Seen {
        look: Look::Startup,
        seen: seen_text(text, Alive::Running),
    };
    assert_eq!(s.after(2, look(&dialog)), [Effect::PressKeys(vec!["Down"])]);
    let down_at = s.now();
    assert_eq!(s.wait(), Some(DIALOG_CURSOR_CHECK));
    assert_eq!(s.tick(), [Effect::Look(Look::Startup)]);
    // Not moved yet: no second Down.
    assert_eq!(s.after(2, look(&dialog)), []);
    assert_eq!(s.wait(), Some(DIALOG_CURSOR_CHECK));
    assert_eq!(s.tick(), [Effect::Look(Look::Startup)]);
    // On "Yes" already: no Enter until a look a redraw after the Down.
    let mut fx = s.after(2, look(&moved));
    while fx.is_empty() {
        assert_eq!(s.tick(), [Effect::Look(Look::Startup)]);
        fx = s.step(look(&moved));
    }
    assert!(s.now() >= down_at + DIALOG_REDRAW, "Enter too soon");
    assert_eq!(fx, trust_accepted());
    assert_eq!(s.wait(), Some(DIALOG_REDRAW));
}

/// What answering the trust dialog does: Enter on "Yes", and an audit row.
fn trust_accepted() -> Vec<Effect> {
    vec![
        Effect::PressKeys(vec!["Enter"]),
        Effect::Audit {
            kind: "instance.trust_accepted".into(),
            detail: json!({}),
        },
    ]
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
    assert_eq!(fx, trust_accepted());
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
fn ready_once_both_mcp_lists_are_in() {
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
    // Ready as soon as both lists are in: the settle margin holds back only a message (see
    // `message_queued_while_starting_is_typed_once_ready`).
    let fx = s.after(40, Input::McpListed(McpList::Prompts));
    // Idle is written before the spawn hears it is ready, so the spawn's answer reads idle.
    // The start's timings go to the audit log first.
    assert_eq!(
        fx,
        [
            Effect::Audit {
                kind: "instance.started".into(),
                detail: json!({
                    "session_ms": 100,
                    "tools_listed_ms": 300,
                    "ready_ms": 300,
                    "dialogs": 0,
                    "resumed": false,
                }),
            },
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
    // The actor reads the history of the transcript it follows (here, none yet).
    s.step(history(vec![]));
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
    // The actor reads the history of the transcript it follows (here, none yet).
    s.step(history(vec![]));
    s.after(10, Input::McpListed(McpList::Tools));
    // Ready with the lists, but the message waits out the settle margin: typed now, its
    // turn could see no troupe tools.
    let fx = s.after(10, Input::McpListed(McpList::Prompts));
    assert!(fx.contains(&Effect::Ready), "{fx:?}");
    assert_eq!(delivered(&fx), Vec::<&str>::new());
    assert_eq!(s.wait(), Some(MCP_SETTLE));
    let almost = MCP_SETTLE.as_millis() as u64 - 1;
    assert_eq!(delivered(&s.after(almost, Input::Tick)), Vec::<&str>::new());
    let fx = s.after(1, Input::Tick);
    assert_eq!(delivered(&fx), ["m1"]);
    assert_eq!(reports(&fx).last(), Some(&InstanceState::Busy));
}

#[test]
fn a_message_after_the_settle_margin_is_typed_at_once() {
    let mut s = Sim::new(Begin::Launch { resumed: false });
    s.step(Input::Restore {
        messages: vec![],
        transcript: None,
    });
    s.after(100, session_started());
    // The actor reads the history of the transcript it follows (here, none yet).
    s.step(history(vec![]));
    s.after(10, Input::McpListed(McpList::Tools));
    let fx = s.after(10, Input::McpListed(McpList::Prompts));
    assert!(fx.contains(&Effect::Ready), "{fx:?}");
    // Nothing queued: nothing to wake for.
    assert_eq!(s.wait(), None);
    let fx = s.after(
        MCP_SETTLE.as_millis() as u64,
        queue("m1", "hello reference one"),
    );
    assert_eq!(delivered(&fx), ["m1"]);
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
    let fx = s.after(5, Input::McpListed(McpList::Prompts));
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
    let fx = s.after(5, Input::McpListed(McpList::Prompts));
    assert_eq!(finish_of(&fx, "m1").state, MessageState::Interrupted);
    // The process that would have written the rest of that turn is gone.
    assert!(!s.m.busy());
    assert_eq!(s.m.next_deadline(), None);
}

/// Claude Code 2.1.197 lists troupe's tools before its SessionStart hook, so the session
/// starting is the last sign of readiness. The history the hook points at is read after that
/// step: the instance is ready only once it is, or a turn the killed process left without its
/// end would be read after the cut-off turns were closed, and stay open for good.
#[test]
fn resumed_launch_that_listed_first_reads_its_history_before_it_is_ready() {
    let mut s = Sim::new(Begin::Launch { resumed: true });
    s.step(Input::Restore {
        messages: vec![known(
            "m_a",
            "hello reference one",
            Some(P_ECHO),
            MessageState::Answered,
        )],
        transcript: None,
    });
    s.after(30, Input::McpListed(McpList::Tools));
    s.after(5, Input::McpListed(McpList::Prompts));
    let fx = s.after(200, session_started());
    assert!(fx.contains(&Effect::Follow(transcript_path())), "{fx:?}");
    assert!(
        !fx.contains(&Effect::Ready),
        "ready before its history: {fx:?}"
    );
    // The earlier process was killed after the reply, before the turn's end line.
    let lines: Vec<Record> = turn_of(ECHO, P_ECHO)
        .into_iter()
        .filter(|r| !matches!(r, Record::TurnEnd { .. }))
        .collect();
    let fx = s.step(history(lines));
    assert!(fx.contains(&Effect::Ready), "{fx:?}");
    assert_eq!(finishes(&fx), Vec::<&str>::new(), "{fx:?}");
    assert!(!s.m.busy());
    assert_eq!(reports(&fx), [InstanceState::Idle]);
}
