//! Records a Claude Code version's captures into `tests/fixtures/claude-code-<version>/`: the
//! screens troupe reads, the hook payloads it receives and the transcripts it parses, from the
//! real CLI in tmux against the fake model. The unit tests read every such directory, so a new
//! version's differences show at once. Run through `.ci/record-claude VERSION`, which installs
//! the version and then runs this (ignored in the normal suite: it writes into the tree).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use troupe::agents::claude::{ClaudeScreen, classify_screen};
use troupe::tmux::{SessionSpec, Tmux};

const WAIT: Duration = Duration::from_secs(60);

struct Recorder {
    tmux: Tmux,
    _server: support::TmuxServer,
    root: PathBuf,
    out: PathBuf,
    hooks: PathBuf,
}

/// The moves to a dialog's choice and then Enter: the recorder presses the keys one by one,
/// slowly, and checks the dialog went.
fn with_enter((mut keys, answers): (Vec<&'static str>, bool)) -> Vec<&'static str> {
    if !answers {
        keys.push("Enter");
    }
    keys
}

impl Recorder {
    async fn screen(&self, name: &str) -> String {
        self.tmux.capture(name).await.unwrap_or_default()
    }

    /// Polls the screen until `want` holds, failing with what it showed.
    async fn until(&self, session: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let s = self.screen(session).await;
            if want(&s) {
                return s;
            }
            assert!(
                started.elapsed() < WAIT,
                "no {what} within {WAIT:?}; the screen:\n{s}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a screen with the recorder's paths made neutral.
    fn save(&self, file: &str, text: &str) {
        let path = self.out.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, self.neutral(text)).unwrap();
    }

    fn neutral(&self, text: &str) -> String {
        text.replace(self.root.to_str().unwrap(), "/TMP")
    }

    fn stops(&self) -> usize {
        std::fs::read_to_string(&self.hooks)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"hook_event_name\":\"Stop\""))
            .count()
    }

    async fn until_stops(&self, n: usize) {
        let started = Instant::now();
        while self.stops() < n {
            assert!(started.elapsed() < WAIT, "no Stop hook number {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses `keys` until the screen no longer shows `gone`: a dialog drawn a moment ago may
    /// not take keys yet.
    async fn answer(&self, session: &str, keys: &[&str], gone: impl Fn(&str) -> bool) {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for key in keys {
                self.tmux.send_key(session, key).await.unwrap();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                if gone(&self.screen(session).await) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!(
            "{keys:?} did not answer the dialog:\n{}",
            self.screen(session).await
        );
    }

    /// Types a message once the CLI is ready for one, pressing Enter again if the TUI let
    /// the text sit in its input box.
    async fn say(&self, session: &str, text: &str) {
        use troupe::agents::Agent;
        let agent = troupe::agents::claude::ClaudeCode {
            bin: String::new(),
            version: None,
        };
        self.until(session, "the CLI ready for a message", |s| {
            classify_screen(s) == ClaudeScreen::Ready && !agent.read_screen(s).input_pending
        })
        .await;
        self.tmux.paste(session, text).await.unwrap();
        self.tmux.send_key(session, "Enter").await.unwrap();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !agent.read_screen(&self.screen(session).await).input_pending {
                return;
            }
            self.tmux.send_key(session, "Enter").await.unwrap();
        }
        panic!(
            "{text:?} stayed in the input box:\n{}",
            self.screen(session).await
        );
    }

    /// The session's transcript once it holds `turns` finished turns (the CLI may write a
    /// turn's last lines after its Stop hook), copied with the recorder's paths made neutral.
    async fn keep_transcript(&self, home: &Path, session_id: &str, turns: usize, file: &str) {
        let started = Instant::now();
        loop {
            let found = walk(&home.join(".claude/projects")).into_iter().find(|p| {
                p.file_name()
                    .is_some_and(|n| n == format!("{session_id}.jsonl").as_str())
            });
            let text = found
                .map(|f| std::fs::read_to_string(f).unwrap_or_default())
                .unwrap_or_default();
            if text.matches("\"turn_duration\"").count() >= turns {
                std::fs::write(self.out.join(file), self.neutral(&text)).unwrap();
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "the transcript of {session_id} has not {turns} turns:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Command hooks that append each payload, one per line, to `file`.
fn hook_settings(file: &Path, skip_warning: bool) -> serde_json::Value {
    let command = format!("cat >> '{}'; echo >> '{}'", file.display(), file.display());
    let mut hooks = serde_json::Map::new();
    for event in [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PermissionRequest",
        "PostToolUse",
        "Notification",
        "Stop",
        "StopFailure",
        "SessionEnd",
    ] {
        hooks.insert(
            event.into(),
            json!([{ "matcher": "*", "hooks": [{ "type": "command", "command": command, "timeout": 10 }] }]),
        );
    }
    let mut s = json!({ "hooks": hooks });
    if skip_warning {
        s["skipDangerousModePermissionPrompt"] = json!(true);
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "writes tests/fixtures: run through .ci/record-claude VERSION"]
async fn record_claude_code_captures() {
    let bin = std::env::var("TROUPE_RECORD_CLAUDE_BIN")
        .expect("TROUPE_RECORD_CLAUDE_BIN names the Claude Code to record");
    let printed = troupe::process::version(&bin, &["--version"]).expect("the CLI runs");
    let version = troupe::agents::versions::Version::find(&printed).expect("a version");
    let out = match std::env::var_os("TROUPE_RECORD_INTO") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/claude-code-{version}")),
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let home = root.join("home");
    support::seed_home(&home);
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let model = support::FakeModel::start().await;
    let socket = support::unique_socket("record");
    let hooks = root.join("hooks.jsonl");
    let r = Recorder {
        tmux: Tmux::new(socket.clone()),
        _server: support::TmuxServer(socket),
        root: root.clone(),
        out: out.clone(),
        hooks: hooks.clone(),
    };
    let mut env = support::instance_env(&home, &model.base_url());
    env.push(("IS_SANDBOX".into(), "1".into()));
    env.push(("CLAUDE_CODE_MCP_AUTO_BACKGROUND_MS".into(), "0".into()));

    // 1. Skip mode in a folder the CLI has not seen: the trust dialog, the bypass warning,
    //    then five turns (echo, three lines, a slow count stopped with Escape, a follow-up,
    //    a stall).
    let settings = root.join("settings-skip.json");
    std::fs::write(&settings, hook_settings(&hooks, false).to_string()).unwrap();
    let session = uuid::Uuid::new_v4().to_string();
    let argv: Vec<String> = [
        bin.as_str(),
        "--session-id",
        &session,
        "--dangerously-skip-permissions",
        "--settings",
        settings.to_str().unwrap(),
        "--model",
        "opus",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let name = "rec-skip";
    r.tmux
        .new_session(&SessionSpec {
            name,
            workdir: work.to_str().unwrap(),
            argv: &argv,
            env: &env,
            width: 160,
            height: 45,
        })
        .await
        .unwrap();
    let trust = r
        .until(name, "trust dialog", |s| {
            classify_screen(s) == ClaudeScreen::TrustDialog && s.contains('❯')
        })
        .await;
    r.save("screens/trust-dialog.txt", &trust);
    let keys = with_enter(
        troupe::agents::choose(&trust, troupe::agents::claude::TRUST_YES, '❯')
            .expect("the trust choice"),
    );
    r.answer(name, &keys, |s| {
        !s.contains(troupe::agents::claude::TRUST_YES)
    })
    .await;
    let warning = r
        .until(name, "bypass warning", |s| {
            classify_screen(s) == ClaudeScreen::BypassWarning && s.contains('❯')
        })
        .await;
    r.save("screens/bypass-warning.txt", &warning);
    let accept =
        with_enter(troupe::agents::choose(&warning, "Yes, I accept", '❯').expect("accept"));
    r.answer(name, &accept, |s| !s.contains("Yes, I accept"))
        .await;
    let idle = r
        .until(name, "the input box", |s| {
            classify_screen(s) == ClaudeScreen::Ready
        })
        .await;
    r.save("screens/01-idle.txt", &idle);
    r.say(name, "hello reference one").await;
    r.until_stops(1).await;
    let s = r
        .until(name, "the echo", |s| {
            s.contains("ECHO: hello reference one")
        })
        .await;
    r.save("screens/02-turn-finished.txt", &s);
    r.say(name, "line one\nline two\nline three").await;
    r.until_stops(2).await;
    let s = r
        .until(name, "the three lines", |s| s.contains("ECHO: line one"))
        .await;
    r.save("screens/03-multiline-answered.txt", &s);
    r.say(name, "count slowly to 40").await;
    let s = r
        .until(name, "a busy count", |s| {
            // Streaming has begun: an Escape before the first token gives the prompt back to
            // the input box instead of interrupting a turn.
            classify_screen(s) == ClaudeScreen::Busy
                && s.contains("❯ count slowly to 40")
                && (s.contains("tokens") || s.contains(" 3 "))
        })
        .await;
    r.save("screens/04-busy-streaming.txt", &s);
    r.tmux.send_key(name, "Escape").await.unwrap();
    let s = r
        .until(name, "the interrupted turn", |s| {
            s.contains("Interrupted") && classify_screen(s) == ClaudeScreen::Ready
        })
        .await;
    r.save("screens/05-interrupted.txt", &s);
    r.say(name, "what number did you reach").await;
    r.until_stops(3).await;
    r.say(name, "please stall a moment").await;
    let s = r
        .until(name, "thinking before the first token", |s| {
            classify_screen(s) == ClaudeScreen::Busy && s.contains("❯ please stall a moment")
        })
        .await;
    r.save("screens/06-busy-thinking.txt", &s);
    r.until_stops(4).await;
    r.keep_transcript(
        &home,
        &session,
        4,
        "transcript-echo-multiline-interrupt.jsonl",
    )
    .await;
    r.tmux.kill_session(name).await.unwrap();

    // 2. The asking mode, now trusted: a Bash call stops at the CLI's own permission dialog
    //    (the PermissionRequest hook answers nothing), which is allowed.
    let settings = root.join("settings-ask.json");
    std::fs::write(&settings, hook_settings(&hooks, true).to_string()).unwrap();
    let agent = troupe::agents::claude::ClaudeCode {
        bin: bin.clone(),
        version: Some(version),
    };
    let mode = agent.asking_mode_name();
    let session = uuid::Uuid::new_v4().to_string();
    let argv: Vec<String> = [
        bin.as_str(),
        "--session-id",
        &session,
        "--permission-mode",
        mode,
        "--settings",
        settings.to_str().unwrap(),
        "--model",
        "haiku",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let name = "rec-ask";
    r.tmux
        .new_session(&SessionSpec {
            name,
            workdir: work.to_str().unwrap(),
            argv: &argv,
            env: &env,
            width: 160,
            height: 45,
        })
        .await
        .unwrap();
    let idle = r
        .until(name, "the input box", |s| {
            classify_screen(s) == ClaudeScreen::Ready
        })
        .await;
    r.save("screens/07-idle-default-permissions.txt", &idle);
    let made = work.join("made.txt");
    let call = format!(
        "CALL_TOOL Bash {}",
        json!({ "command": format!("touch {}", made.display()), "description": "make a file" })
    );
    r.say(name, &call).await;
    let prompt = r
        .until(name, "the permission dialog", |s| {
            classify_screen(s) == ClaudeScreen::PermissionPrompt && s.contains('❯')
        })
        .await;
    r.save("screens/08-permission-prompt.txt", &prompt);
    let yes = with_enter(troupe::agents::choose(&prompt, "Yes", '❯').expect("the Yes choice"));
    r.answer(name, &yes, |s| !s.contains("Do you want to proceed?"))
        .await;
    r.until_stops(5).await;
    let s = r
        .until(name, "the answer after approval", |s| {
            classify_screen(s) == ClaudeScreen::Ready && s.contains("ECHO")
        })
        .await;
    r.save("screens/09-after-approval.txt", &s);
    assert!(made.exists(), "the approved command ran");
    r.keep_transcript(&home, &session, 1, "transcript-tool-use-permission.jsonl")
        .await;
    r.tmux.kill_session(name).await.unwrap();

    let payloads = std::fs::read_to_string(&hooks).unwrap();
    std::fs::write(out.join("hook-payloads.jsonl"), r.neutral(&payloads)).unwrap();
    eprintln!("recorded Claude Code {version} into {}", out.display());
}
