//! Which hooks an instance takes: only its own CLI session's, naming its own transcript, and a
//! CLI that makes its session id up names it once, in its first hook.

use super::*;

fn refusals(fx: &[Effect]) -> Vec<&Value> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Audit { kind, detail } if kind == "instance.hook_refused" => Some(detail),
            _ => None,
        })
        .collect()
}

fn codex() -> crate::agents::codex::Codex {
    crate::agents::codex::Codex {
        bin: crate::agents::AgentKind::Codex.default_bin().into(),
    }
}

#[test]
fn a_hook_of_another_session_is_refused_and_changes_nothing() {
    let mut s = started_machine();
    deliver(&mut s, "m1", "hello reference one");
    let mut payload = hook_payloads()
        .into_iter()
        .find(|p| p["hook_event_name"] == "Stop" && p["prompt_id"] == P_ECHO)
        .unwrap();
    payload["session_id"] = json!("99999999-0000-4000-8000-000000000000");
    let fx = s.after(20, Input::Hook(claude().hook(&payload)));
    assert_eq!(
        refusals(&fx),
        [&json!({ "session_id": "99999999-0000-4000-8000-000000000000" })]
    );
    assert_eq!(finishes(&fx), Vec::<&str>::new(), "{fx:?}");
    assert!(s.m.busy(), "the forged stop ended nothing");
    // The instance's own hook still counts.
    payload["session_id"] = json!(SESSION);
    s.after(5, hook("UserPromptSubmit", P_ECHO));
    let fx = s.after(20, Input::Hook(claude().hook(&payload)));
    assert!(refusals(&fx).is_empty(), "{fx:?}");
}

#[test]
fn a_session_start_naming_another_transcript_is_not_followed() {
    let mut s = Sim::new(Begin::Launch { resumed: false });
    s.step(Input::Restore {
        messages: vec![],
        transcript: None,
    });
    let mut payload = hook_payloads()
        .into_iter()
        .find(|p| p["hook_event_name"] == "SessionStart")
        .unwrap();
    payload["transcript_path"] = json!("/home/someone/.ssh/id_ed25519");
    let fx = s.after(150, ours(&payload));
    assert_eq!(
        refusals(&fx),
        [&json!({ "transcript_path": "/home/someone/.ssh/id_ed25519" })]
    );
    assert!(!fx.iter().any(|e| matches!(e, Effect::Follow(_))), "{fx:?}");
}

/// Codex makes its session id up and names it first in the hook of its first prompt: the
/// machine takes it then, records it, and from then on refuses any other.
#[test]
fn codex_names_its_session_in_its_first_hook_and_keeps_it() {
    let codex = codex();
    let hooks: Vec<Value> = serde_json::Deserializer::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/codex-0.169.0/hook-payloads.jsonl"
        ))
        .unwrap(),
    )
    .into_iter::<Value>()
    .map(Result::unwrap)
    .collect();
    let t0 = Instant::now();
    let mut m = Machine::new(
        LIMITS,
        codex.habits(),
        Begin::Launch { resumed: false },
        String::new(),
        t0,
    );
    m.step(
        t0,
        Input::Restore {
            messages: vec![],
            transcript: None,
        },
    );
    let first = &hooks[0];
    let id = first["session_id"].as_str().unwrap();
    let fx = m.step(t0, Input::Hook(codex.hook(first)));
    assert_eq!(
        fx.iter()
            .filter(|e| matches!(e, Effect::AdoptSession(_)))
            .collect::<Vec<_>>(),
        [&Effect::AdoptSession(id.into())]
    );
    assert!(refusals(&fx).is_empty(), "{fx:?}");
    let mut other = first.clone();
    other["session_id"] = json!("01a227bc-0000-7000-8000-000000000000");
    let fx = m.step(t0, Input::Hook(codex.hook(&other)));
    assert_eq!(refusals(&fx).len(), 1, "{fx:?}");
    assert!(!fx.iter().any(|e| matches!(e, Effect::AdoptSession(_))));
}

/// The id goes on the CLI's command line to resume: one that could be read as an option, or
/// holds anything but letters, digits and dashes, is never kept.
#[test]
fn an_unusable_session_id_is_never_adopted() {
    let codex = codex();
    for bad in ["--dangerously-bypass", "a b", "x;rm -rf", &"a".repeat(65)] {
        let t0 = Instant::now();
        let mut m = Machine::new(LIMITS, codex.habits(), Begin::Reattach, String::new(), t0);
        let hook = Hook {
            session: Some(bad.to_string()),
            event: AgentEvent::PromptSubmitted { prompt_id: None },
        };
        let fx = m.step(t0, Input::Hook(hook));
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::AdoptSession(_))),
            "{bad}: {fx:?}"
        );
        assert_eq!(refusals(&fx).len(), 1, "{bad}: {fx:?}");
    }
}
