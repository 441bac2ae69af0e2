use super::*;

const REF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/codex-0.169.0");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{REF}/{name}")).unwrap()
}

fn records(name: &str) -> Vec<Record> {
    let mut parser = Rollout::default();
    fixture(name)
        .lines()
        .map(|l| parser.parse(l))
        .filter(|r| *r != Record::Other)
        .collect()
}

fn kind(r: &Record) -> &'static str {
    match r {
        Record::Prompt { .. } => "prompt",
        Record::ToolResult { .. } => "tool_result",
        Record::Interrupted { .. } => "interrupted",
        Record::Assistant { usage: Some(_), .. } => "usage",
        Record::Assistant { .. } => "assistant",
        Record::TurnEnd { .. } => "end",
        Record::Other => "other",
    }
}

#[test]
fn reference_rollout_reads_as_turns() {
    let records = records("rollout-0.jsonl");
    let kinds: Vec<&str> = records.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [
            "prompt",
            "assistant",
            "usage",
            "end", // echo
            "prompt",
            "interrupted", // slow count, Escape: the partial reply is not kept
            "prompt",
            "assistant",
            "usage",
            "end", // follow-up
        ]
    );
    let Record::Prompt {
        text, prompt_id, ..
    } = &records[0]
    else {
        panic!("a prompt")
    };
    assert_eq!(text, "hello codex reference");
    assert_eq!(
        prompt_id.as_deref(),
        Some("01a2134d-6030-76d0-9994-3c9f9d5516d0")
    );
    let Record::Assistant { blocks, model, .. } = &records[1] else {
        panic!("a reply")
    };
    assert_eq!(blocks, &[Block::Text("ECHO: hello codex reference".into())]);
    assert_eq!(model, "gpt-fake");
    let Record::Assistant {
        usage, message_id, ..
    } = &records[2]
    else {
        panic!("usage")
    };
    assert_eq!(message_id, "resp_fake_d9c156530da54b01");
    assert_eq!(
        *usage,
        Some(Usage {
            input: 12083,
            output: 4,
            cache_creation: 0,
            cache_read: 0
        })
    );
    let Record::Interrupted { prompt_id, .. } = &records[5] else {
        panic!("interrupted")
    };
    assert_eq!(
        prompt_id.as_deref(),
        Some("01a2134d-6ad1-7c20-bdee-59cb4cede5d7")
    );
}

#[test]
fn a_resumed_rollout_goes_on_in_the_same_file() {
    let kinds: Vec<&str> = records("rollout-interrupt-resume.jsonl")
        .iter()
        .map(kind)
        .collect();
    // Interrupted count, then after `codex resume`: a follow-up, four more prompts, and
    // a shell command typed with `!`, a turn of its own with no prompt in it.
    assert_eq!(&kinds[..2], ["prompt", "interrupted"]);
    assert_eq!(&kinds[2..6], ["prompt", "assistant", "usage", "end"]);
    assert_eq!(kinds.iter().filter(|k| **k == "prompt").count(), 6);
    assert_eq!(kinds.iter().filter(|k| **k == "end").count(), 6);
}

#[test]
fn cached_input_is_billed_apart() {
    let line = json!({"timestamp": "t", "type": "token_usage_record", "payload": {
        "response_id": "resp_1", "usage": {"input_tokens": 1000, "cached_input_tokens": 600,
        "cache_write_input_tokens": 50, "output_tokens": 20}}});
    let Record::Assistant { usage, .. } = Rollout::default().parse(&line.to_string()) else {
        panic!("usage")
    };
    assert_eq!(
        usage,
        Some(Usage {
            input: 400,
            output: 20,
            cache_creation: 50,
            cache_read: 600
        })
    );
}

#[test]
fn tool_calls_and_their_output_are_recognised() {
    let mut parser = Rollout::default();
    let call = json!({"timestamp": "t1", "type": "response_item", "payload": {
        "type": "function_call", "name": "shell", "call_id": "c1",
        "arguments": "{\"command\":[\"ls\"]}"}});
    let out = json!({"timestamp": "t2", "type": "response_item", "payload": {
        "type": "function_call_output", "call_id": "c1", "output": "a.txt"}});
    let Record::Assistant { blocks, .. } = parser.parse(&call.to_string()) else {
        panic!("a call")
    };
    assert_eq!(
        blocks,
        [Block::ToolUse {
            name: "shell".into(),
            input: json!({"command": ["ls"]})
        }]
    );
    assert!(matches!(parser.parse(&out.to_string()),
        Record::ToolResult { text, .. } if text == "a.txt"));
}

#[test]
fn reference_hooks_become_events() {
    let codex = Codex {
        bin: "codex".into(),
    };
    let events: Vec<AgentEvent> = fixture("hook-payloads.jsonl")
        .lines()
        .map(|l| codex.hook_event(&serde_json::from_str(l).unwrap()))
        .collect();
    assert!(
        matches!(&events[0], AgentEvent::SessionStarted { transcript: Some(p) }
        if codex.owns_transcript("01a227bc-bb8a-79a3-a15c-7e9b771156fc", p))
    );
    assert_eq!(
        events[1],
        AgentEvent::PromptSubmitted {
            prompt_id: Some("01a227bc-c282-71e2-aafb-05d979a33e4e".into())
        }
    );
    assert_eq!(
        events[2],
        AgentEvent::TurnStopped {
            prompt_id: Some("01a227bc-c282-71e2-aafb-05d979a33e4e".into()),
            reply: "ECHO: hello codex hooks".into()
        }
    );
}

#[test]
fn a_permission_request_names_the_command() {
    let codex = Codex {
        bin: "codex".into(),
    };
    let asks: Vec<AgentEvent> = fixture("hook-payloads-permission.jsonl")
        .lines()
        .map(|l| codex.hook_event(&serde_json::from_str(l).unwrap()))
        .filter(|e| matches!(e, AgentEvent::PermissionAsked { .. }))
        .collect();
    assert_eq!(asks.len(), 2, "one per turn");
    let AgentEvent::PermissionAsked { tool, input } = &asks[0] else {
        unreachable!()
    };
    assert_eq!(tool, "Bash");
    assert_eq!(input["command"], "touch /TMP/work/made.txt");
    assert_eq!(
        crate::permissions::describe(tool, input),
        "Bash: touch /TMP/work/made.txt"
    );
}

#[test]
fn the_permission_hook_outlasts_troupes_wait() {
    let hooks = hooks_file("troupe hook");
    let timeout = |event: &str| hooks["hooks"][event][0]["hooks"][0]["timeout"].as_u64();
    assert_eq!(timeout("PermissionRequest"), Some(PERMISSION_HOOK_TIMEOUT));
    assert_eq!(timeout("Stop"), Some(10));
    assert_eq!(timeout("SessionEnd"), Some(3));
    assert!(crate::hook::PERMISSION_TIMEOUT.as_secs() > 3600);
    assert!(crate::hook::PERMISSION_TIMEOUT.as_secs() < PERMISSION_HOOK_TIMEOUT);
}

#[test]
fn a_transcript_is_the_session_own_rollout_or_refused() {
    let codex = Codex {
        bin: "codex".into(),
    };
    let own = Path::new("/h/sessions/2026/11/29/rollout-2026-11-29T14-36-49-abc.jsonl");
    assert!(codex.owns_transcript("abc", own));
    assert!(!codex.owns_transcript("", own), "no session known yet");
    for other in [
        "/tmp/attacker.jsonl",
        "/h/sessions/rollout-2026-other.jsonl",
        "/h/sessions/../../tmp/rollout-x-abc.jsonl",
        "relative/rollout-x-abc.jsonl",
    ] {
        assert!(!codex.owns_transcript("abc", Path::new(other)), "{other}");
    }
}

#[test]
fn trust_hashes_match_what_codex_writes() {
    // Written by Codex 0.169.0 when "Trust all" was chosen for these hooks.
    assert_eq!(
        hook_trust_hash("stop", "/tmp/cx/hook.sh", 10),
        "sha256:a2963ce8525970b22625661ec5c922e8dfea4816b4c6860f63fd428848714344"
    );
    assert_eq!(
        hook_trust_hash("session_start", "/tmp/cx/hook.sh", 10),
        "sha256:ca5cc4770af4b1ee3fcdfafd3a4ba90c3f1c8f90e229971a08568343ab4e006c"
    );
}

#[test]
fn the_overlay_keeps_the_user_config_and_adds_troupe() {
    let user = "model = \"o3\"\nmodel_provider = \"corp\"\n\n\
                [model_providers.corp]\nbase_url = \"https://llm.corp/v1\"\n\n\
                [mcp_servers.troupe]\nurl = \"http://old\"\n\n\
                [mcp_servers.docs]\ncommand = \"docs-mcp\"\n\n\
                [hooks.state.\"/u/hooks.json:stop:0:0\"]\ntrusted_hash = \"sha256:x\"\n";
    let text = overlay_config(
        user,
        &Overlay {
            hooks_path: Path::new("/d/codex-home/hooks.json"),
            hook_command: "troupe hook",
            workdir: Path::new("/w/proj"),
            mcp_url: "http://127.0.0.1:7",
            instance_id: "dev-1a2b",
            token: "tok",
            system_prompt: "You are a \"developer\".\nBe brief.",
        },
    )
    .unwrap();
    let doc: toml_edit::DocumentMut = text.parse().unwrap();
    assert_eq!(doc["model_provider"].as_str(), Some("corp"));
    assert_eq!(
        doc["model_providers"]["corp"]["base_url"].as_str(),
        Some("https://llm.corp/v1")
    );
    assert_eq!(
        doc["mcp_servers"]["docs"]["command"].as_str(),
        Some("docs-mcp")
    );
    let troupe = &doc["mcp_servers"]["troupe"];
    assert_eq!(troupe["url"].as_str(), Some("http://127.0.0.1:7/mcp"));
    assert_eq!(
        troupe["http_headers"]["Authorization"].as_str(),
        Some("Bearer tok")
    );
    assert_eq!(
        troupe["http_headers"]["X-Troupe-Instance"].as_str(),
        Some("dev-1a2b")
    );
    assert_eq!(
        troupe["default_tools_approval_mode"].as_str(),
        Some("approve")
    );
    assert_eq!(
        doc["projects"]["/w/proj"]["trust_level"].as_str(),
        Some("trusted")
    );
    assert_eq!(
        doc["developer_instructions"].as_str(),
        Some("You are a \"developer\".\nBe brief.")
    );
    let state = doc["hooks"]["state"].as_table().unwrap();
    assert!(
        state.get("/u/hooks.json:stop:0:0").is_none(),
        "the user's hooks are not run"
    );
    assert_eq!(
        state["/d/codex-home/hooks.json:stop:0:0"]["trusted_hash"].as_str(),
        Some(hook_trust_hash("stop", "troupe hook", 10).as_str())
    );
    assert_eq!(
        state["/d/codex-home/hooks.json:permission_request:0:0"]["trusted_hash"].as_str(),
        Some(
            hook_trust_hash("permission_request", "troupe hook", PERMISSION_HOOK_TIMEOUT).as_str()
        )
    );
    assert!(
        overlay_config(
            "not = = toml",
            &Overlay {
                hooks_path: Path::new("/h"),
                hook_command: "c",
                workdir: Path::new("/w"),
                mcp_url: "u",
                instance_id: "i",
                token: "t",
                system_prompt: "",
            }
        )
        .is_err()
    );
}

#[test]
fn launch_lines_per_mode() {
    let a = argv("codex", "", false, "gpt-5", PermissionMode::Skip, None);
    assert_eq!(
        a,
        [
            "codex",
            "--no-daemon",
            "-m",
            "gpt-5",
            "--dangerously-bypass-approvals-and-sandbox"
        ]
    );
    let a = argv(
        "codex",
        "sid",
        true,
        "gpt-5",
        PermissionMode::Skip,
        Some("workspace-write"),
    );
    assert_eq!(
        a,
        [
            "codex",
            "resume",
            "sid",
            "--no-daemon",
            "-m",
            "gpt-5",
            "-s",
            "workspace-write",
            "-a",
            "never"
        ]
    );
    // A resume with no session known yet starts a new conversation.
    let a = argv("codex", "", true, "gpt-5", PermissionMode::Default, None);
    assert_eq!(a[1], "--no-daemon");
    assert!(a.ends_with(&[
        "-s".into(),
        "read-only".into(),
        "-a".into(),
        "on-request".into()
    ]));
}

#[test]
fn model_names() {
    assert_eq!(cli_model("gpt-5").as_deref(), Some("gpt-5"));
    assert_eq!(cli_model("o4-mini").as_deref(), Some("o4-mini"));
    assert_eq!(cli_model("gpt-fake").as_deref(), Some("gpt-fake"));
    assert_eq!(cli_model("sonnet"), None);
    assert_eq!(cli_model("gpt-5; rm -rf /"), None);
    assert_eq!(cli_model("--help"), None);
    assert_eq!(cli_model(""), None);
}

#[test]
fn reference_screens_classify() {
    let cases = [
        ("01-idle.txt", CodexScreen::Ready),
        ("02-turn-finished.txt", CodexScreen::Ready),
        ("03-busy.txt", CodexScreen::Ready),
        ("04-interrupted.txt", CodexScreen::Ready),
        ("05-after-followup.txt", CodexScreen::Ready),
        ("hooks-review.txt", CodexScreen::HooksReview),
        ("mcp-tool-approval.txt", CodexScreen::ApprovalPrompt),
        ("exec-approval.txt", CodexScreen::ApprovalPrompt),
        // The PermissionRequest hook runs before the dialog opens.
        ("permission-hook-running.txt", CodexScreen::Busy),
        ("permission-denied-by-hook.txt", CodexScreen::Ready),
    ];
    for (file, want) in cases {
        assert_eq!(
            classify_screen(&fixture(&format!("screens/{file}"))),
            want,
            "{file}"
        );
    }
    for file in ["01-idle.txt", "04-interrupted.txt", "05-after-followup.txt"] {
        assert_eq!(
            input_box(&fixture(&format!("screens/{file}"))).as_deref(),
            Some(""),
            "{file}: the box shows its placeholder, not the earlier prompts"
        );
    }
    let pending =
        fixture("screens/01-idle.txt").replace("› Ask Codex to do anything", "› fix the tests");
    assert_eq!(input_box(&pending).as_deref(), Some("fix the tests"));
}

#[test]
fn hostile_text_is_typed_as_text() {
    assert_eq!(as_text("/status"), " /status");
    assert_eq!(as_text("!echo hi"), " !echo hi");
    assert_eq!(as_text("@file"), " @file ");
    assert_eq!(as_text("@file summarise"), " @file summarise");
    assert_eq!(as_text("look at @file"), "look at @file ");
    assert_eq!(as_text("two\nlines @file"), "two\nlines @file ");
    assert_eq!(as_text("use $skill"), "use $skill ");
    assert_eq!(as_text("mail x@file"), "mail x@file");
    assert_eq!(as_text("look at @file\n"), "look at @file\n");
    assert_eq!(as_text("fix /etc/hosts"), "fix /etc/hosts");
    assert_eq!(as_text("a\x1b[201~\rb"), "a[201~\nb");
}
