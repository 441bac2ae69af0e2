use super::*;

const REF: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/claude-code-2.1.197"
);

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{REF}/{name}")).unwrap()
}

#[test]
fn reference_transcript_reads_as_turns() {
    let records: Vec<Record> = fixture("transcript-echo-multiline-interrupt.jsonl")
        .lines()
        .map(parse_record)
        .filter(|r| *r != Record::Other)
        .collect();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| match r {
            Record::Prompt { .. } => "prompt",
            Record::ToolResult { .. } => "tool_result",
            Record::Interrupted { .. } => "interrupted",
            Record::Assistant {
                synthetic: true, ..
            } => "partial",
            Record::Assistant { .. } => "assistant",
            Record::TurnEnd { .. } => "end",
            Record::Other => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "prompt",
            "assistant",
            "end", // echo
            "prompt",
            "assistant",
            "end", // three lines
            "prompt",
            "partial",
            "interrupted", // slow count, Escape
            "prompt",
            "assistant",
            "end", // follow-up
            "prompt",
            "assistant",
            "end", // stalled
        ]
    );
    let Record::Prompt {
        text, prompt_id, ..
    } = &records[3]
    else {
        panic!("expected a prompt")
    };
    assert_eq!(text, "line one\nline two\nline three");
    assert_eq!(
        prompt_id.as_deref(),
        Some("683fd782-eb61-44da-b23e-35bd82e33b62")
    );
    let Record::Assistant {
        blocks,
        usage,
        model,
        message_id,
        ..
    } = &records[1]
    else {
        panic!("expected an assistant reply")
    };
    assert_eq!(blocks, &[Block::Text("ECHO: hello reference one".into())]);
    assert_eq!(model, "claude-opus-4-8");
    assert_eq!(message_id, "msg_fake_83b1509c09ca4e37b11c");
    assert_eq!(
        *usage,
        Some(Usage {
            input: 22242,
            output: 4,
            cache_creation: 0,
            cache_read: 0
        })
    );
    let Record::Assistant { blocks, usage, .. } = &records[7] else {
        panic!("expected the partial reply")
    };
    assert_eq!(blocks, &[Block::Text("1 2 3 4 5 ".into())]);
    assert_eq!(*usage, None, "a synthetic partial reply costs nothing");
}

#[test]
fn turn_end_lines_carry_the_time_that_orders_them() {
    // Recorded here: the CLI flushed the turn-end line before the prompt and reply.
    let records: Vec<Record> = fixture("transcript-out-of-order.jsonl")
        .lines()
        .map(parse_record)
        .filter(|r| !matches!(r, Record::Other))
        .collect();
    let Some(Record::TurnEnd { ts: end, .. }) = records.first() else {
        panic!("the turn end comes first in this file: {records:?}")
    };
    let Some(Record::Prompt { ts: prompt, .. }) =
        records.iter().find(|r| matches!(r, Record::Prompt { .. }))
    else {
        panic!("no prompt")
    };
    assert!(
        end > prompt,
        "the end is later than the prompt by the CLI's clock"
    );
}

#[test]
fn tool_use_and_result_are_recognised() {
    let records: Vec<Record> = fixture("transcript-tool-use-permission.jsonl")
        .lines()
        .map(parse_record)
        .filter(|r| *r != Record::Other)
        .collect();
    assert!(matches!(&records[1], Record::Assistant { blocks, .. }
        if matches!(&blocks[0], Block::ToolUse { name, .. } if name == "Bash")));
    assert!(matches!(&records[2], Record::ToolResult { text, .. }
        if text == "(Bash completed with no output)"));
    assert!(matches!(records.last(), Some(Record::TurnEnd { .. })));
}

#[test]
fn reference_screens_classify() {
    let cases = [
        ("01-idle.txt", ClaudeScreen::Ready),
        ("02-turn-finished.txt", ClaudeScreen::Ready),
        ("04-busy-streaming.txt", ClaudeScreen::Busy),
        ("05-interrupted.txt", ClaudeScreen::Ready),
        ("06-busy-thinking.txt", ClaudeScreen::Busy),
        ("08-permission-prompt.txt", ClaudeScreen::PermissionPrompt),
        ("trust-dialog.txt", ClaudeScreen::TrustDialog),
        ("bypass-warning.txt", ClaudeScreen::BypassWarning),
    ];
    for (file, want) in cases {
        assert_eq!(
            classify_screen(&fixture(&format!("screens/{file}"))),
            want,
            "{file}"
        );
    }
}

#[test]
fn input_box_shows_text_not_yet_submitted() {
    let pending = fixture("screens/input-pending.txt");
    assert_eq!(
        input_box(&pending).as_deref(),
        Some("hello paste\nsecond line")
    );
    assert_eq!(
        input_box(&fixture("screens/01-idle.txt")).as_deref(),
        Some("")
    );
    assert_eq!(
        input_box(&fixture("screens/05-interrupted.txt")).as_deref(),
        Some("")
    );
    assert_eq!(
        input_box(&fixture("screens/08-permission-prompt.txt")),
        None
    );
}

#[test]
fn transcript_path_follows_the_cli_rule() {
    let p = transcript_path(Path::new("/TMP/home"), Path::new("/TMP/work"), "abc");
    assert_eq!(
        p,
        Path::new("/TMP/home/.claude/projects/-TMP-work/abc.jsonl")
    );
}

#[test]
fn model_names_map_to_cli_models() {
    assert_eq!(cli_model("opus-4").as_deref(), Some("opus"));
    assert_eq!(cli_model("sonnet-4").as_deref(), Some("sonnet"));
    assert_eq!(cli_model("haiku").as_deref(), Some("haiku"));
    assert_eq!(cli_model("Opus-4-1").as_deref(), Some("opus"));
    assert_eq!(
        cli_model("claude-sonnet-4-5").as_deref(),
        Some("claude-sonnet-4-5")
    );
    assert_eq!(cli_model("gpt-5"), None);
    assert_eq!(cli_model("opus; rm -rf"), None);
}

#[test]
fn a_transcript_is_the_session_own_file_or_refused() {
    let claude = ClaudeCode {
        bin: "claude".into(),
        version: None,
    };
    let own = transcript_path(Path::new("/h"), Path::new("/w"), "abc");
    assert!(claude.owns_transcript("abc", &own));
    for other in [
        "/tmp/attacker.jsonl",
        "/h/.claude/projects/-w/other.jsonl",
        "/h/.claude/projects/../../tmp/abc.jsonl",
        "relative/abc.jsonl",
    ] {
        assert!(!claude.owns_transcript("abc", Path::new(other)), "{other}");
    }
}

#[test]
fn hostile_text_is_typed_as_text() {
    const OLD: Option<Version> = Some(Version(2, 1, 197));
    const NEW: Option<Version> = Some(Version(2, 1, 328));
    assert_eq!(as_text("/clear", OLD), " /clear");
    assert_eq!(as_text("/clear", NEW), "Text: /clear");
    assert_eq!(as_text("  /exit now", NEW), "Text: /exit now");
    assert_eq!(as_text("/clear", None), "Text: /clear");
    for v in [OLD, NEW, None] {
        assert_eq!(as_text("!rm -rf ~", v), " !rm -rf ~");
        assert_eq!(as_text("# remember", v), " # remember");
        assert_eq!(as_text("&later", v), " &later");
        assert_eq!(as_text("fix /etc/hosts", v), "fix /etc/hosts");
        assert_eq!(
            as_text("ECHO one\x1b[201~\rECHO two\r", v),
            "ECHO one[201~\nECHO two\n"
        );
        assert_eq!(as_text("a\r\nb\u{9b}c\u{7f}", v), "a\nbc");
        assert_eq!(as_text("line one\n\tline two", v), "line one\n\tline two");
        // `@` starting a word is no file mention; inside a word it is left alone.
        assert_eq!(as_text("@/etc/passwd sum", v), "`@/etc/passwd` sum");
        assert_eq!(as_text("see @a and\n@b", v), "see `@a` and\n`@b`");
        assert_eq!(as_text("me@example.com", v), "me@example.com");
        assert_eq!(as_text("x\u{feff}@y", v), "x\u{feff}`@y`");
    }
    let typed = ClaudeCode {
        bin: "claude".into(),
        version: OLD,
    }
    .type_message("/exit");
    assert_eq!(
        typed,
        [
            TypeStep::Paste(" /exit".into()),
            TypeStep::AwaitShown(PASTE_SHOWN_WITHIN),
            TypeStep::Key("Enter")
        ],
        "2.1.197 may lose an Enter that overtakes the paste"
    );
    let typed = ClaudeCode {
        bin: "claude".into(),
        version: Some(Version(2, 1, 328)),
    }
    .type_message("hello");
    assert_eq!(
        typed,
        [TypeStep::Paste("hello".into()), TypeStep::Key("Enter")],
        "2.1.328 takes Enter at once"
    );
}

#[test]
fn skip_mode_acknowledges_the_bypass_warning() {
    let s = settings("troupe hook", "http://h/hooks/x", "t", PermissionMode::Skip);
    assert_eq!(s["skipDangerousModePermissionPrompt"], true);
    let s = settings(
        "troupe hook",
        "http://h/hooks/x",
        "t",
        PermissionMode::Default,
    );
    assert!(s.get("skipDangerousModePermissionPrompt").is_none());
}

#[test]
fn hooks_and_mcp_calls_carry_the_instance_token() {
    let s = settings(
        "troupe hook",
        "http://h/hooks/x",
        "tok",
        PermissionMode::Skip,
    );
    for event in HOOK_EVENTS.iter().filter(|e| **e != "SessionStart") {
        let hook = &s["hooks"][event][0]["hooks"][0];
        assert_eq!(hook["type"], "http", "{event}");
        assert_eq!(hook["headers"]["Authorization"], "Bearer tok", "{event}");
    }
    let m = mcp_config("http://127.0.0.1:1", "dev-1a2b", "tok");
    let headers = &m["mcpServers"]["troupe"]["headers"];
    assert_eq!(headers["X-Troupe-Instance"], "dev-1a2b");
    assert_eq!(headers["Authorization"], "Bearer tok");
}

fn recorded_versions() -> Vec<std::path::PathBuf> {
    super::recorded_versions()
}

fn read(dir: &std::path::Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

#[test]
fn every_recorded_version_reads_its_screens() {
    let expected = [
        ("trust-dialog.txt", ClaudeScreen::TrustDialog),
        ("bypass-warning.txt", ClaudeScreen::BypassWarning),
        ("01-idle.txt", ClaudeScreen::Ready),
        ("02-turn-finished.txt", ClaudeScreen::Ready),
        ("03-multiline-answered.txt", ClaudeScreen::Ready),
        ("04-busy-streaming.txt", ClaudeScreen::Busy),
        ("05-interrupted.txt", ClaudeScreen::Ready),
        ("06-busy-thinking.txt", ClaudeScreen::Busy),
        ("07-idle-default-permissions.txt", ClaudeScreen::Ready),
        ("08-permission-prompt.txt", ClaudeScreen::PermissionPrompt),
    ];
    for dir in recorded_versions() {
        let agent = ClaudeCode {
            bin: "claude".into(),
            version: None,
        };
        for (file, kind) in expected {
            let screen = read(&dir, &format!("screens/{file}"))
                .unwrap_or_else(|| panic!("{} has no screens/{file}", dir.display()));
            assert_eq!(classify_screen(&screen), kind, "{}/{file}", dir.display());
            let seen = agent.read_screen(&screen);
            assert!(
                !seen.input_pending,
                "{}/{file}: input pending",
                dir.display()
            );
            if kind == ClaudeScreen::TrustDialog {
                assert!(
                    matches!(seen.kind, ScreenKind::Dialog { name: "trust", .. }),
                    "{}: the trust choice is found",
                    dir.display()
                );
            }
        }
    }
}

#[test]
fn every_recorded_version_reads_its_hooks() {
    for dir in recorded_versions() {
        let agent = ClaudeCode {
            bin: "claude".into(),
            version: None,
        };
        let text = read(&dir, "hook-payloads.jsonl").unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let payload: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", dir.display()));
            let name = payload["hook_event_name"].as_str().unwrap().to_string();
            let event = agent.hook_event(&payload);
            let ok = match name.as_str() {
                "SessionStart" => matches!(
                    event,
                    AgentEvent::SessionStarted {
                        transcript: Some(_)
                    }
                ),
                "Stop" => matches!(
                    &event,
                    AgentEvent::TurnStopped {
                        prompt_id: Some(_),
                        ..
                    }
                ),
                "PermissionRequest" => {
                    matches!(&event, AgentEvent::PermissionAsked { tool, .. } if tool == "Bash")
                }
                "SessionEnd" => event == AgentEvent::SessionEnded,
                _ => true,
            };
            assert!(ok, "{}: {name} read as {event:?}", dir.display());
            *seen.entry(name).or_insert(0) += 1;
        }
        for name in ["SessionStart", "Stop", "PermissionRequest"] {
            assert!(
                seen.contains_key(name),
                "{}: no {name} in {seen:?}",
                dir.display()
            );
        }
    }
}

#[test]
fn every_recorded_version_reads_its_transcripts_as_turns() {
    for dir in recorded_versions() {
        let records: Vec<Record> = read(&dir, "transcript-echo-multiline-interrupt.jsonl")
            .unwrap()
            .lines()
            .map(parse_record)
            .filter(|r| *r != Record::Other)
            .collect();
        let prompts: Vec<&str> = records
            .iter()
            .filter_map(|r| match r {
                Record::Prompt { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert!(prompts.len() >= 5, "{}: {prompts:?}", dir.display());
        assert_eq!(prompts[0], "hello reference one", "{}", dir.display());
        assert_eq!(
            prompts[1],
            "line one\nline two\nline three",
            "{}",
            dir.display()
        );
        assert!(prompts[2].contains("count slowly"), "{}", dir.display());
        let replies: Vec<String> = records
            .iter()
            .filter_map(|r| match r {
                Record::Assistant {
                    blocks,
                    synthetic: false,
                    ..
                } => Some(
                    blocks
                        .iter()
                        .map(|b| match b {
                            Block::Text(t) => t.clone(),
                            Block::ToolUse { name, .. } => name.clone(),
                        })
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect();
        assert_eq!(replies[0], "ECHO: hello reference one", "{}", dir.display());
        assert!(
            records
                .iter()
                .any(|r| matches!(r, Record::Interrupted { .. })),
            "{}: the Escape is recorded",
            dir.display()
        );
        let ends = records
            .iter()
            .filter(|r| matches!(r, Record::TurnEnd { .. }))
            .count();
        assert_eq!(
            ends,
            4,
            "{}: four turns end, the interrupted one does not",
            dir.display()
        );
        // The permission recording: a Bash call, its result, an answer.
        let tool: Vec<Record> = read(&dir, "transcript-tool-use-permission.jsonl")
            .unwrap()
            .lines()
            .map(parse_record)
            .filter(|r| *r != Record::Other)
            .collect();
        assert!(
            tool.iter().any(|r| matches!(r, Record::Assistant { blocks, .. }
                if blocks.iter().any(|b| matches!(b, Block::ToolUse { name, .. } if name == "Bash")))),
            "{}: {tool:?}",
            dir.display()
        );
        assert!(
            tool.iter().any(|r| matches!(r, Record::ToolResult { .. })),
            "{}",
            dir.display()
        );
    }
}

#[test]
fn trust_answered_in_a_parent_is_read_from_each_versions_recorded_state() {
    for dir in recorded_versions() {
        let state = std::fs::read_to_string(dir.join("state-trusted-parent.json")).unwrap();
        assert!(trust_recorded(&state, Path::new("/TMP/home/ws")), "{dir:?}");
        // The child started without a dialog, inheriting its parent's trust; its own entry
        // says no.
        assert!(
            !trust_recorded(&state, Path::new("/TMP/home/ws/child")),
            "{dir:?}"
        );
        assert!(!trust_recorded(&state, Path::new("/TMP/home")), "{dir:?}");
    }
    assert!(!trust_recorded("not json", Path::new("/TMP/home/ws")));
    assert!(!trust_recorded(
        r#"{"projects":{"/w":{"hasTrustDialogAccepted":"true"}}}"#,
        Path::new("/w")
    ));
}

#[test]
fn trust_reaches_folders_under_home_only() {
    let env = |home: &'static str| move |k: &str| (k == "HOME").then(|| home.to_string());
    let root = Path::new("/home/u/.local/share/troupe/workspaces");
    assert!(trust_inherited(root, &env("/home/u")));
    assert!(trust_inherited(root, &env("/home/u/")));
    // Outside $HOME the CLI does not look up past the folder itself.
    assert!(!trust_inherited(
        Path::new("/tmp/troupe/workspaces"),
        &env("/home/u")
    ));
    // A sibling whose name starts alike is not under $HOME.
    assert!(!trust_inherited(
        Path::new("/home/u2/workspaces"),
        &env("/home/u")
    ));
    // $HOME itself is never trusted on the user's behalf.
    assert!(!trust_inherited(Path::new("/home/u"), &env("/home/u")));
    assert!(!trust_inherited(root, &|_: &str| None));
}

#[test]
fn the_state_file_follows_the_config_dir_then_home() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(
        state_file(&env(&[("HOME", "/home/u")])),
        Some(PathBuf::from("/home/u/.claude.json"))
    );
    assert_eq!(
        state_file(&env(&[("HOME", "/home/u"), ("CLAUDE_CONFIG_DIR", "/cfg")])),
        Some(PathBuf::from("/cfg/.claude.json"))
    );
    assert_eq!(state_file(&env(&[("CLAUDE_CONFIG_DIR", "")])), None);
}

#[test]
fn the_trust_launch_turns_hooks_and_mcp_servers_off_and_names_a_mode() {
    let argv = trust_argv("claude", Some(Version(2, 1, 328)));
    assert_eq!(
        argv,
        [
            "claude",
            "--strict-mcp-config",
            "--settings",
            r#"{"disableAllHooks":true}"#,
            "--permission-mode",
            "manual"
        ]
    );
    assert_eq!(
        trust_argv("claude", Some(Version(2, 1, 197)))
            .last()
            .unwrap(),
        "default"
    );
}
