//! The recorded turns each CLI's runs play: hooks and transcript lines, read through the
//! same agent the server uses.

use super::*;

/// One recorded turn.
pub(super) struct Recorded {
    pub(super) text: String,
    pub(super) submit: Input,
    /// Hooks sent between the submit and stop hooks (a tool's, a permission request), in order.
    pub(super) between: Vec<Input>,
    /// None for a turn stopped by the interrupt key: the CLIs send no stop hook then.
    pub(super) stop: Option<Input>,
    /// In file order; an interrupted turn's interrupt record last.
    pub(super) lines: Vec<Record>,
    /// The stop hook's copy of the answer.
    pub(super) reply: Option<String>,
    /// The transcript's.
    pub(super) written_reply: Option<String>,
}

impl Recorded {
    pub(super) fn interrupted(&self) -> bool {
        self.stop.is_none()
    }
}

pub(super) struct Cli {
    pub(super) name: String,
    pub(super) habits: Habits,
    /// Claude Code sends it at launch, Codex with the first prompt.
    pub(super) session: Input,
    /// The session id the machine starts with: the one troupe chose, or none for a CLI that
    /// names its own in its first hook.
    pub(super) launch_session: String,
    /// In the order they were recorded, so transcript timestamps only grow.
    pub(super) turns: Vec<Recorded>,
}

pub(super) fn payloads(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

/// A turn from its transcript lines and its hooks as sent (submit first, stop last if any).
pub(super) fn recorded(
    agent: &dyn Agent,
    session: &str,
    lines: Vec<Record>,
    hooks: &[&Value],
) -> Recorded {
    let Some(Record::Prompt { text, .. }) = lines.first() else {
        panic!("a turn starts with its prompt: {lines:?}")
    };
    let [submit, rest @ ..] = hooks else {
        panic!("no hooks for {text}")
    };
    assert_eq!(submit["hook_event_name"], "UserPromptSubmit", "{text}");
    let (stop, between) = match rest.split_last() {
        Some((last, between)) if last["hook_event_name"] == "Stop" => (Some(*last), between),
        _ => (None, rest),
    };
    if stop.is_none() {
        assert!(
            matches!(lines.last(), Some(Record::Interrupted { .. })),
            "a turn without a stop hook was interrupted: {text}"
        );
    }
    let hook = |p: &Value| as_session(agent, session, p);
    let last = lines.iter().rev().find_map(|r| match r {
        Record::Assistant { message_id, .. } if r.reply_text().is_some_and(|t| !t.is_empty()) => {
            Some(message_id)
        }
        _ => None,
    });
    let written_reply = last.map(|id| {
        let parts: Vec<String> = lines
            .iter()
            .filter(|r| matches!(r, Record::Assistant { message_id, .. } if message_id == id))
            .filter_map(Record::reply_text)
            .filter(|t| !t.is_empty())
            .collect();
        parts.join("\n")
    });
    Recorded {
        written_reply,
        text: text.clone(),
        submit: hook(submit),
        between: between.iter().map(|p| hook(p)).collect(),
        stop: stop.map(hook),
        reply: stop.map(|p| p["last_assistant_message"].as_str().unwrap().to_string()),
        lines,
    }
}

/// A recorded hook as sent by `session`: recordings of several sessions are played as one.
fn as_session(agent: &dyn Agent, session: &str, payload: &Value) -> Input {
    Input::Hook(Hook {
        session: Some(session.to_string()),
        event: agent.hook_event(payload),
    })
}

/// Claude Code's two recorded sessions (echo, three lines, a count interrupted by Escape, a
/// follow-up, a stall; then a Bash call after a permission dialog), taken as one session:
/// the second started after the first ended, so its timestamps come later.
pub(super) fn claude(version: &str) -> Cli {
    let dir = Path::new(FIXTURES).join(format!("claude-code-{version}"));
    let agent = crate::agents::claude::ClaudeCode {
        bin: crate::agents::AgentKind::Claude.default_bin().into(),
        version: None,
    };
    let hooks = payloads(&dir.join("hook-payloads.jsonl"));
    let session = hooks
        .iter()
        .find(|p| p["hook_event_name"] == "SessionStart")
        .unwrap();
    let session_id = session["session_id"].as_str().unwrap();
    let mut turns = Vec::new();
    for file in [
        "transcript-echo-multiline-interrupt.jsonl",
        "transcript-tool-use-permission.jsonl",
    ] {
        let mut parser = agent.parser();
        let records: Vec<Record> = std::fs::read_to_string(dir.join(file))
            .unwrap()
            .lines()
            .map(|l| parser.parse(l))
            .filter(|r| *r != Record::Other)
            .collect();
        let starts: Vec<usize> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Record::Prompt { .. }))
            .map(|(i, _)| i)
            .collect();
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(records.len());
            let lines = records[start..end].to_vec();
            let Record::Prompt {
                prompt_id: Some(prompt),
                ..
            } = &lines[0]
            else {
                panic!("{version}: a prompt without an id")
            };
            let of_turn: Vec<&Value> = hooks
                .iter()
                .filter(|p| p["prompt_id"] == prompt.as_str())
                // The session's end is no part of a turn.
                .filter(|p| p["hook_event_name"] != "SessionEnd")
                .collect();
            turns.push(recorded(&agent, session_id, lines, &of_turn));
        }
    }
    assert_eq!(turns.len(), 6, "{version}");
    Cli {
        name: format!("claude-code-{version}"),
        habits: agent.habits(),
        session: as_session(&agent, session_id, session),
        launch_session: session_id.to_string(),
        turns,
    }
}

/// Codex's session with both hooks and rollout recorded: a count interrupted by Escape, then
/// (after a resume, which the machine here does not see) five answered prompts. The rollout's
/// turn with no prompt (a shell command typed as `!echo hi`) is left out: troupe never types
/// one.
pub(super) fn codex() -> Cli {
    let dir = Path::new(FIXTURES).join("codex-0.169.0");
    let agent = crate::agents::codex::Codex {
        bin: crate::agents::AgentKind::Codex.default_bin().into(),
    };
    let hooks = payloads(&dir.join("hook-payloads-resume.jsonl"));
    let session = hooks
        .iter()
        .find(|p| p["hook_event_name"] == "SessionStart")
        .unwrap();
    let session_id = session["session_id"].as_str().unwrap();
    let mut parser = agent.parser();
    let mut by_turn: Vec<(String, Vec<Record>)> = Vec::new();
    for line in std::fs::read_to_string(dir.join("rollout-interrupt-resume.jsonl"))
        .unwrap()
        .lines()
    {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["payload"]["type"] == "task_started" {
            let id = v["payload"]["turn_id"].as_str().unwrap().to_string();
            by_turn.push((id, Vec::new()));
        }
        // Every line goes through the parser: it remembers the model from turn contexts.
        let record = parser.parse(line);
        if record != Record::Other
            && let Some((_, lines)) = by_turn.last_mut()
        {
            lines.push(record);
        }
    }
    let mut turns = Vec::new();
    for (turn_id, lines) in by_turn {
        let Some(Record::Prompt { text, .. }) = lines.first() else {
            continue;
        };
        let mut of_turn: Vec<Value> = hooks
            .iter()
            .filter(|p| p["turn_id"] == turn_id.as_str())
            .cloned()
            .collect();
        if of_turn.is_empty() {
            // The interrupted count ran before the hook log of this recording begins: its
            // submit hook is the recorded one with this turn's id and prompt.
            let mut submit = hooks
                .iter()
                .find(|p| p["hook_event_name"] == "UserPromptSubmit")
                .unwrap()
                .clone();
            submit["turn_id"] = json!(turn_id);
            submit["prompt"] = json!(text);
            of_turn.push(submit);
        }
        let refs: Vec<&Value> = of_turn.iter().collect();
        turns.push(recorded(&agent, session_id, lines, &refs));
    }
    assert_eq!(turns.len(), 6);
    assert!(turns[0].interrupted());
    Cli {
        name: "codex-0.169.0".into(),
        habits: agent.habits(),
        session: as_session(&agent, session_id, session),
        // Codex makes its session id up and names it in its first hook.
        launch_session: String::new(),
        turns,
    }
}
