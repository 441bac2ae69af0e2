//! troupe's overhead on a round trip, measured against its floor in the same run: the same
//! Claude Code CLI, same model, same fake model API (answering at once), in tmux with no
//! orchestrator. The floor's time is from Enter to its Stop hook, a two-line shell script that
//! writes the time; its text is typed well before Enter, so the floor is the CLI's own turn.
//! troupe's time is a `send_to_instance` call, from call to answer. Floor and troupe sends
//! alternate, each after the same quiet time, so whatever drifts during the run (CPU frequency,
//! other load, the conversations growing) weighs on both alike. Also prints spawn-to-ready,
//! where troupe's time goes within a send, the hook command's cost, and the CPU troupe uses
//! while its instances are idle.
//!
//! The same CLI also pastes its text at send time with the same tmux commands troupe uses (what
//! any orchestrator must do): the fair floor. A third, the twin, is the fair floor launched as
//! troupe launches its instance's CLI (the same arguments, system prompt file and environment,
//! troupe's MCP server configured), so that what is left between it and troupe is troupe's work
//! on the send, not the CLI's work on the instance's setup. troupe's overhead is printed against
//! each, with p99.
//!
//! cargo bench --bench roundtrip   (ROUNDTRIP_SENDS, default 100 of each;
//!                                  ROUNDTRIP_INSTANCES, default 3, for spawn-to-ready;
//!                                  TROUPE_TEST_PG=postgres://… for the registry on PostgreSQL)

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use common::{BAR_MEDIAN_MS, BAR_P90_MS, lines, mean, median_difference_interval, now_ns, summary};

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Harness, TmuxServer};
use troupe::db::instances::Instance;
use troupe::db::messages::Message;

/// The model of troupe's instances and of the floor's CLI.
const MODEL: &str = "haiku";
/// Long enough for the TUI to have taken every typed key before Enter, so the floor holds
/// nothing but the CLI's turn. troupe's call waits as long after the floor's turn as the floor's
/// Enter waits after troupe's answer: without it troupe's send would share the CPU with the
/// floor CLI finishing its turn (20-60 ms more at the median in trials on 2 cores).
const QUIET_BEFORE_SEND: Duration = Duration::from_millis(300);
/// Short against a turn; the floor reads the time its hook wrote, so the interval only delays
/// the next send and does not enter the figure.
const POLL_EVERY: Duration = Duration::from_millis(3);

type Ts = chrono::DateTime<chrono::Utc>;

/// A CLI's environment and arguments, as read from /proc.
type LaunchLine = (Vec<(String, String)>, Vec<String>);

fn ts(s: &str) -> Ts {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339 timestamp")
        .to_utc()
}

fn ms(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().unwrap_or(0) as f64 / 1000.0
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) this process has used so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// The same Claude Code troupe runs, started by hand in a tmux session of its own: no MCP
/// config, no troupe hooks, only a SessionStart and a Stop hook that append the time to a file.
struct Floor {
    _tmux: TmuxServer,
    socket: String,
    target: String,
    started: PathBuf,
    stops: PathBuf,
    home: PathBuf,
    session_id: String,
}

impl Floor {
    /// Starts the CLI and returns once it is ready for input, with how long that took.
    /// `like`: the environment and arguments of troupe's instance CLI, to start the floor's
    /// CLI the same way (the twin).
    /// `name`: its folder and session; `mcp`: troupe's MCP server in its config.
    async fn launch(
        h: &Harness,
        claude_bin: &str,
        like: Option<LaunchLine>,
        name: &str,
        mcp: bool,
    ) -> (Floor, Duration) {
        let dir = h.dir.path().join(name);
        // A HOME of its own: two CLIs rewriting one ~/.claude.json would disturb each other.
        let home = dir.join("home");
        support::seed_home(&home);
        let workdir = dir.join("work");
        std::fs::create_dir_all(&workdir).unwrap();
        let workdir = workdir.canonicalize().unwrap();
        // troupe answers the trust dialog on screen; here the answer is recorded up front.
        let state_path = home.join(".claude.json");
        let mut state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
        state["projects"][workdir.display().to_string()] =
            json!({ "hasTrustDialogAccepted": true });
        std::fs::write(&state_path, state.to_string()).unwrap();

        let started = dir.join("started");
        let stops = dir.join("stops");
        let hook = |name: &str, log: &Path| {
            let script = dir.join(name);
            std::fs::write(
                &script,
                format!("#!/bin/sh\ndate +%s%N >> '{}'\n", log.display()),
            )
            .unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            json!([{ "hooks": [{ "type": "command", "command": script.display().to_string() }] }])
        };
        let settings = dir.join("settings.json");
        std::fs::write(
            &settings,
            json!({
                "hooks": { "SessionStart": hook("started.sh", &started), "Stop": hook("stopped.sh", &stops) },
                "skipDangerousModePermissionPrompt": true
            })
            .to_string(),
        )
        .unwrap();

        let mut env = support::instance_env(&home, &h.model.base_url());
        if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            // Claude Code refuses to skip permissions as root outside a declared sandbox.
            env.push(("IS_SANDBOX".into(), "1".into()));
        }
        let mut extra_args = Vec::new();
        if let Some((their_env, their_args)) = &like {
            env = their_env
                .iter()
                .filter(|(k, _)| k != "HOME")
                .cloned()
                .chain([("HOME".to_string(), home.display().to_string())])
                .collect();
            extra_args = their_args.clone();
        }
        let socket = support::unique_socket("floor");
        let session_id = uuid::Uuid::new_v4().to_string();
        let floor = Floor {
            _tmux: TmuxServer(socket.clone()),
            socket,
            target: "=floor:".into(),
            started,
            stops,
            home: home.clone(),
            session_id: session_id.clone(),
        };
        let mut args: Vec<String> = ["new-session", "-d", "-s", "floor", "-x", "200", "-y", "50"]
            .map(String::from)
            .into();
        args.extend(["-c".into(), workdir.display().to_string()]);
        for (k, v) in &env {
            args.extend(["-e".into(), format!("{k}={v}")]);
        }
        args.extend([claude_bin.into()]);
        args.extend(extra_args);
        if mcp {
            // troupe's tools in the floor's requests too, as its instances have them: what is
            // left between the two is troupe's orchestration, not the CLI's bigger request.
            let mcp = dir.join("mcp.json");
            let config = json!({ "mcpServers": { "troupe": {
                "type": "http",
                "alwaysLoad": true,
                "url": format!("{}/mcp", h.server().url()),
                "headers": { "Authorization": format!("Bearer {}", h.server().token()) }
            } } });
            std::fs::write(&mcp, config.to_string()).unwrap();
            args.extend(["--mcp-config".into(), mcp.display().to_string()]);
        }
        args.extend([
            "--session-id".into(),
            session_id,
            "--model".into(),
            MODEL.into(),
            "--settings".into(),
            settings.display().to_string(),
        ]);
        if like.is_none() {
            args.push("--dangerously-skip-permissions".into());
        }
        // Keeps the screen of a CLI that exits, for the failure message.
        args.extend(
            [
                ";",
                "set-option",
                "-w",
                "-t",
                "=floor:",
                "remain-on-exit",
                "on",
            ]
            .map(String::from),
        );
        let t = Instant::now();
        match &like {
            // The tmux server starts with the environment troupe gives its own.
            Some((their_env, _)) => {
                let out = tokio::process::Command::new("tmux")
                    .env_clear()
                    .envs(their_env.iter().map(|(k, v)| (k, v)))
                    .arg("-L")
                    .arg(&floor.socket)
                    .args(&args)
                    .output()
                    .await
                    .expect("tmux runs");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => {
                floor.tmux(&args).await;
            }
        }
        // The first text must land in the input box, which SessionStart need not wait for.
        floor
            .wait(
                "the floor CLI's SessionStart hook",
                Duration::from_secs(60),
                async || lines(&floor.started).first().copied(),
            )
            .await;
        floor
            .wait(
                "the floor CLI's prompt",
                Duration::from_secs(30),
                async || floor.screen().await.contains('❯').then_some(()),
            )
            .await;
        let ready = t.elapsed();
        (floor, ready)
    }

    async fn tmux<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        let out = tokio::process::Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .await
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.target]).await
    }

    async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; screen:\n{}",
                    self.screen().await
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// When the Stop hook after the first `seen` ones ran.
    async fn next_stop(&self, seen: usize) -> i128 {
        self.wait(
            "the floor CLI's Stop hook",
            Duration::from_secs(60),
            async || lines(&self.stops).get(seen).copied(),
        )
        .await
    }

    /// One turn: returns the time from Enter to the Stop hook.
    async fn send(&self, text: &str) -> Duration {
        let stops_before = lines(&self.stops).len();
        self.tmux(&["send-keys", "-t", &self.target, "-l", text])
            .await;
        tokio::time::sleep(QUIET_BEFORE_SEND).await;
        // Outside the timed part: proof the text is in the input box, not lost or late.
        self.wait(
            "the typed text on screen",
            Duration::from_secs(10),
            async || self.screen().await.contains(text).then_some(()),
        )
        .await;
        let enter = now_ns();
        self.tmux(&["send-keys", "-t", &self.target, "Enter"]).await;
        let stop = self.next_stop(stops_before).await;
        Duration::from_nanos(u64::try_from(stop - enter).expect("Stop hook after Enter"))
    }

    /// One turn as any orchestrator must type it: the text pasted at send time (load-buffer and
    /// a bracketed paste-buffer, one tmux command, as troupe does), then Enter as a second
    /// command. Returns when the paste started and when the Stop hook ran (ns since the epoch).
    async fn send_pasted(&self, text: &str) -> (i128, i128) {
        let stops_before = lines(&self.stops).len();
        let start = now_ns();
        let mut paste = tokio::process::Command::new("tmux")
            .args(["-L", &self.socket])
            .args(["load-buffer", "-b", "floor", "-", ";"])
            .args([
                "paste-buffer",
                "-d",
                "-p",
                "-b",
                "floor",
                "-t",
                &self.target,
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("tmux runs");
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = paste.stdin.take().unwrap();
            stdin.write_all(text.as_bytes()).await.unwrap();
        }
        assert!(paste.wait().await.unwrap().success(), "tmux paste failed");
        self.tmux(&["send-keys", "-t", &self.target, "Enter"]).await;
        // The TUI can swallow an Enter that follows a paste closely (2.1.197 on a loaded
        // machine): with no prompt in the transcript after troupe's own wait, Enter is pressed
        // again, as any orchestrator must. An Enter on an empty input box does nothing.
        let late = troupe::supervisor::instance::machine::SUBMIT_ACK_LATE;
        let mut pressed = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(60);
        let stop = loop {
            if let Some(stop) = lines(&self.stops).get(stops_before).copied() {
                break stop;
            }
            if pressed.elapsed() >= late
                && !self
                    .transcript()
                    .is_some_and(|t| prompt_times(&t).contains_key(text))
            {
                self.tmux(&["send-keys", "-t", &self.target, "Enter"]).await;
                pressed = Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "timed out after 60s waiting for the floor CLI's Stop hook; screen:\n{}",
                self.screen().await
            );
            tokio::time::sleep(POLL_EVERY).await;
        };
        assert!(stop > start, "Stop hook after the paste");
        (start, stop)
    }

    /// The CLI's transcript so far, once it has one.
    fn transcript(&self) -> Option<String> {
        let name = format!("{}.jsonl", self.session_id);
        std::fs::read_dir(self.home.join(".claude/projects"))
            .ok()?
            .filter_map(|d| Some(d.ok()?.path().join(&name)))
            .find(|p| p.exists())
            .and_then(|p| std::fs::read_to_string(p).ok())
    }

    /// Fails unless every send was a real turn of its own: one Stop per send, and the fake
    /// model's answer to each text in the CLI's transcript.
    /// Returns the CLI's transcript.
    fn check_turns(&self, texts: &[String]) -> String {
        assert_eq!(lines(&self.stops).len(), texts.len(), "one Stop per send");
        let transcript = self.transcript().expect("the floor CLI's transcript");
        for text in texts {
            assert!(
                transcript.contains(&format!("ECHO: {text}\"")),
                "the floor CLI's transcript has no answer to {text:?}"
            );
        }
        transcript
    }
}

/// When the CLI registered each prompt, by its text (every text the bench sends is unique).
fn prompt_times(transcript: &str) -> HashMap<String, Ts> {
    transcript
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "user" && v["promptId"].is_string())
        .filter_map(|v| {
            let text = v["message"]["content"].as_str()?.to_string();
            Some((text, ts(v["timestamp"].as_str()?)))
        })
        .collect()
}

/// The environment and the arguments (without its session, settings and MCP config) troupe's
/// instance CLI runs with, read from /proc.
async fn instance_launch(h: &Harness, id: &str) -> LaunchLine {
    let inst = Instance::find(h.pool(), id).await.unwrap().unwrap();
    let pid = support::scripted::pane_pid(h, &inst.tmux_session);
    let split = |file: &str| -> Vec<String> {
        std::fs::read(format!("/proc/{pid}/{file}"))
            .unwrap()
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    };
    let env: Vec<(String, String)> = split("environ")
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let mut args = Vec::new();
    let mut it = split("cmdline").into_iter().skip(1);
    while let Some(a) = it.next() {
        if ["--session-id", "--resume", "--settings", "--mcp-config"].contains(&a.as_str()) {
            it.next();
        } else if a != "--model" {
            args.push(a);
        } else {
            it.next();
        }
    }
    println!("floor like troupe's instance: args {args:?}");
    println!(
        "  env: {:?}",
        env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
    );
    (env, args)
}

fn claude_version(claude_bin: &str) -> String {
    std::process::Command::new(claude_bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let instances = env_usize("ROUNDTRIP_INSTANCES", 3).max(1);
    let sends = env_usize("ROUNDTRIP_SENDS", 100).max(1);
    // The data directory under HOME, as serve's default: its workspaces folder is trusted
    // once at start, so instances there meet no trust dialog (the floor's folder is trusted
    // up front too).
    let t = Instant::now();
    let h = Harness::start_at_home().await;
    let claude_bin = h.config().claude_bin;
    support::eventually(
        "the workspaces folder trusted",
        Duration::from_secs(60),
        || async {
            let found = troupe::db::audit::of_kind(h.pool(), "workspaces.trust_accepted")
                .await
                .unwrap();
            (!found.is_empty()).then_some(())
        },
    )
    .await;
    let trusted_ms = t.elapsed().as_secs_f64() * 1000.0;

    let mut spawn_ms = Vec::new();
    let mut ids = Vec::new();
    for i in 0..instances {
        let t = Instant::now();
        let id = h
            .spawn(json!({ "role": "tester", "model": MODEL, "name": format!("bench{i}") }))
            .await;
        spawn_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        ids.push(id);
    }
    // Where each start's time went, as the instance's machine recorded it.
    let mut parts: [Vec<f64>; 4] = Default::default();
    for (id, total) in ids.iter().zip(&spawn_ms) {
        let audit = troupe::db::audit::for_instance(h.pool(), id).await.unwrap();
        let started = audit
            .iter()
            .find(|e| e.kind == "instance.started")
            .expect("each start is audited with its timings");
        let detail: serde_json::Value = serde_json::from_str(&started.detail).unwrap();
        let at = |k: &str| detail[k].as_f64().unwrap_or(f64::NAN);
        let ready = at("ready_ms");
        parts[0].push(at("session_ms"));
        parts[1].push(at("tools_listed_ms") - at("session_ms"));
        parts[2].push(ready - at("tools_listed_ms"));
        parts[3].push(total - ready);
    }
    // The floor's own launch, with troupe's MCP server configured (the spawn bar's floor),
    // as many times as troupe spawned.
    let mut floor_launch_ms = Vec::new();
    for i in 0..instances {
        let (_floor, took) =
            Floor::launch(&h, &claude_bin, None, &format!("launch{i}"), true).await;
        floor_launch_ms.push(took.as_secs_f64() * 1000.0);
    }
    let (floor, _) = Floor::launch(&h, &claude_bin, None, "floor", false).await;
    let like = instance_launch(&h, &ids[0]).await;
    let (twin, _) = Floor::launch(&h, &claude_bin, Some(like), "twin", true).await;

    let id = &ids[0];
    let troupe_send = async |text: &str| {
        let started = chrono::Utc::now();
        let t = Instant::now();
        let r = h
            .call(
                "send_to_instance",
                json!({ "instance_id": id, "message": text }),
            )
            .await;
        let rtt = t.elapsed();
        assert!(!r.is_error, "{}", r.text);
        let message_id = r.structured["message_id"].as_str().unwrap().to_string();
        (rtt, started, message_id)
    };
    // A CLI's first turn carries one-off work (first connection to the API, caches); it is
    // neither troupe's cost nor the floor's.
    let mut floor_texts = vec!["warm up".to_string()];
    floor.send("warm up").await;
    let mut twin_texts = vec!["twin warm up".to_string()];
    twin.send_pasted("twin warm up").await;
    troupe_send("warm up").await;

    let mut floor_ms = Vec::new();
    let mut pasted_ms = Vec::new();
    let mut pastes = Vec::new();
    let mut twin_ms = Vec::new();
    let mut twin_pastes = Vec::new();
    let mut troupe_ms = Vec::new();
    let mut calls = Vec::new();
    for n in 0..sends {
        let text = format!("ping {n}");
        floor_ms.push(floor.send(&text).await.as_secs_f64() * 1000.0);
        floor_texts.push(text.clone());
        tokio::time::sleep(QUIET_BEFORE_SEND).await;
        let pasted = format!("paste {n}");
        let (start, stop) = floor.send_pasted(&pasted).await;
        pasted_ms.push((stop - start) as f64 / 1e6);
        pastes.push((pasted.clone(), start, stop));
        floor_texts.push(pasted);
        tokio::time::sleep(QUIET_BEFORE_SEND).await;
        let pasted = format!("twin {n}");
        let (start, stop) = twin.send_pasted(&pasted).await;
        twin_ms.push((stop - start) as f64 / 1e6);
        twin_pastes.push((pasted.clone(), start, stop));
        twin_texts.push(pasted);
        tokio::time::sleep(QUIET_BEFORE_SEND).await;
        // A text of troupe's own: the model's arrivals are told apart by text.
        let text = format!("send {n}");
        let (rtt, started, message_id) = troupe_send(&text).await;
        troupe_ms.push(rtt.as_secs_f64() * 1000.0);
        calls.push((text.clone(), started, started + rtt, message_id));
    }
    let floor_prompts = prompt_times(&floor.check_turns(&floor_texts));
    let twin_prompts = prompt_times(&twin.check_turns(&twin_texts));

    // Where troupe's time goes, from the timestamps troupe (its message row) and the CLI (its
    // transcript) wrote: troupe before typing, tmux + the CLI taking the prompt, the CLI's
    // turn, and troupe from the turn's end to the caller.
    let inst = Instance::find(h.pool(), id).await.unwrap().unwrap();
    let transcript_path = inst.transcript_path.unwrap();
    // troupe can answer from the Stop hook before the CLI has written the turn to its
    // transcript, so the last prompts may still be on their way.
    let prompts = support::eventually(
        "every send's prompt in the transcript",
        Duration::from_secs(10),
        || async {
            let prompts = prompt_times(&std::fs::read_to_string(&transcript_path).unwrap());
            calls
                .iter()
                .all(|(text, ..)| prompts.contains_key(text))
                .then_some(prompts)
        },
    )
    .await;
    let mut before_typing_ms = Vec::new();
    let mut typing_to_prompt_ms = Vec::new();
    let mut cli_turn_ms = Vec::new();
    let mut recorded_to_caller_ms = Vec::new();
    // Each turn split where the CLI's request reaches the model: before it (typing, the TUI
    // taking the prompt, the CLI building its request) and after it (the answer streamed, the
    // CLI ending its turn, the Stop hook, troupe recording the answer).
    let mut arrived: HashMap<String, i128> = HashMap::new();
    for (text, at) in h.model.arrivals() {
        arrived.entry(text).or_insert(at);
    }
    let at = |text: &str| *arrived.get(text).expect("every send reached the model");
    let mut prompt_to_model_ms = Vec::new();
    let nanos = |t: &Ts| t.timestamp_nanos_opt().unwrap_or(0) as i128;
    // A paste's turn in four parts: paste to the CLI's prompt, prompt to model request, paste
    // to model request, model request to Stop hook.
    let split = |pastes: &[(String, i128, i128)], prompts: &HashMap<String, Ts>| {
        let mut parts: [Vec<f64>; 4] = Default::default();
        for (text, start, stop) in pastes {
            let prompt = nanos(&prompts[text]);
            parts[0].push((prompt - start) as f64 / 1e6);
            parts[1].push((at(text) - prompt) as f64 / 1e6);
            parts[2].push((at(text) - start) as f64 / 1e6);
            parts[3].push((stop - at(text)) as f64 / 1e6);
        }
        parts
    };
    let [
        floor_to_prompt_ms,
        floor_prompt_to_model_ms,
        floor_to_model_ms,
        floor_from_model_ms,
    ] = split(&pastes, &floor_prompts);
    let [
        twin_to_prompt_ms,
        twin_prompt_to_model_ms,
        twin_to_model_ms,
        twin_from_model_ms,
    ] = split(&twin_pastes, &twin_prompts);
    let mut to_model_ms = Vec::new();
    let mut from_model_ms = Vec::new();
    for (text, call_at, answered_at, message_id) in &calls {
        let prompt_at = prompts[text];
        let m = Message::find(h.pool(), message_id).await.unwrap().unwrap();
        let submitted = ts(m.submitted_at.as_deref().unwrap());
        before_typing_ms.push(ms(submitted - *call_at));
        typing_to_prompt_ms.push(ms(prompt_at - submitted));
        let recorded = ts(m.finished_at.as_deref().unwrap());
        cli_turn_ms.push(ms(recorded - prompt_at));
        to_model_ms.push((at(text) - nanos(call_at)) as f64 / 1e6);
        prompt_to_model_ms.push((at(text) - nanos(&prompt_at)) as f64 / 1e6);
        from_model_ms.push((nanos(&recorded) - at(text)) as f64 / 1e6);
        recorded_to_caller_ms.push(ms(*answered_at - recorded));
    }
    // Each send's parts, for a look at more than the medians.
    if let Some(path) = std::env::var_os("ROUNDTRIP_SAMPLES") {
        let mut csv =
            String::from("n,who,total_ms,to_prompt_ms,prompt_to_model_ms,from_model_ms\n");
        for (i, (text, start, stop)) in twin_pastes.iter().enumerate() {
            let prompt = nanos(&twin_prompts[text]);
            csv += &format!(
                "{i},twin,{:.3},{:.3},{:.3},{:.3}\n",
                (stop - start) as f64 / 1e6,
                (prompt - start) as f64 / 1e6,
                (at(text) - prompt) as f64 / 1e6,
                (stop - at(text)) as f64 / 1e6
            );
        }
        for (i, (text, call_at, _, _)) in calls.iter().enumerate() {
            let prompt = nanos(&prompts[text]);
            csv += &format!(
                "{i},troupe,{:.3},{:.3},{:.3},{:.3}\n",
                troupe_ms[i],
                (prompt - nanos(call_at)) as f64 / 1e6,
                (at(text) - prompt) as f64 / 1e6,
                troupe_ms[i] - (at(text) - nanos(call_at)) as f64 / 1e6
            );
        }
        std::fs::write(path, csv).expect("the samples file is written");
    }

    // The hook command each lifecycle event runs: process start, read stdin, POST.
    let mut hook_ms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args([
                "hook",
                "--url",
                &format!("{}/hooks/bench-0000", h.server().url()),
            ])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(br#"{"hook_event_name":"Stop"}"#)
            .unwrap();
        child.wait().unwrap();
        hook_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    // Idle: instances alive, nothing to do. troupe should use no CPU at all.
    let idle_for = Duration::from_secs(5);
    let before = cpu_time();
    tokio::time::sleep(idle_for).await;
    let idle_cpu = cpu_time() - before;

    println!(
        "troupe roundtrip: {}, model {MODEL}, fake model answering at once, registry on {}; \
         {sends} sends to troupe and {sends} to the floor, alternating, after one warm-up each",
        claude_version(&claude_bin),
        h.pool().engine()
    );
    println!("workspaces folder trusted {trusted_ms:.0} ms after the harness began");
    let spawn = summary("spawn to ready (spawn_claude)", spawn_ms);
    let [to_session, to_tools, to_ready, to_caller] = parts;
    summary("  launch to SessionStart hook", to_session);
    summary("  SessionStart to MCP tools listed", to_tools);
    summary("  tools listed to ready", to_ready);
    summary("  the call's own time (db, files, tmux)", to_caller);
    let floor_launch = summary(
        "floor: launch to ready, troupe's MCP configured",
        floor_launch_ms,
    );
    println!(
        "spawn over the floor's launch: median {:+.1} ms (bar +250 ms)",
        spawn.median - floor_launch.median
    );
    let floor_stats = summary("floor: Enter to Stop hook (no troupe)", floor_ms);
    let pasted = summary("fair floor: paste at send to Stop hook", pasted_ms);
    let (twin_all, troupe_all) = (twin_ms.clone(), troupe_ms.clone());
    let twin_stats = summary("twin floor: launched as troupe's CLI", twin_ms);
    let troupe = summary("troupe: send to answer (send_to_instance)", troupe_ms);
    summary("  troupe: call to typing", before_typing_ms);
    let typing_to_prompt = typing_to_prompt_ms.clone();
    summary("  typing to CLI prompt (tmux + TUI)", typing_to_prompt_ms);
    summary("  CLI turn (prompt to answer recorded)", cli_turn_ms);
    summary("  troupe: answer recorded to caller", recorded_to_caller_ms);
    summary("fair floor: paste to model request", floor_to_model_ms);
    let floor_to_prompt = floor_to_prompt_ms.clone();
    summary("  fair floor: paste to CLI prompt", floor_to_prompt_ms);
    summary(
        "  fair floor: CLI prompt to model request",
        floor_prompt_to_model_ms,
    );
    summary("twin floor: paste to model request", twin_to_model_ms);
    let twin_to_prompt = twin_to_prompt_ms.clone();
    summary("  twin floor: paste to CLI prompt", twin_to_prompt_ms);
    summary(
        "  twin floor: CLI prompt to model request",
        twin_prompt_to_model_ms,
    );
    summary("troupe: call to model request", to_model_ms);
    summary("  troupe: CLI prompt to model request", prompt_to_model_ms);
    summary(
        "fair floor: model request to Stop hook",
        floor_from_model_ms,
    );
    summary("twin floor: model request to Stop hook", twin_from_model_ms);
    summary("troupe: model request to answer recorded", from_model_ms);
    println!(
        "overhead at median: {:+.1} ms (bar {BAR_MEDIAN_MS} ms)",
        troupe.median - floor_stats.median
    );
    println!(
        "overhead at p90:    {:+.1} ms (bar {BAR_P90_MS} ms)",
        troupe.p90 - floor_stats.p90
    );
    println!(
        "against the fair floor: {:+.1} ms at the median, {:+.1} ms at p90, {:+.1} ms at p99 \
         (a bare CLI: also what the instance's system prompt, environment and MCP tools cost the CLI)",
        troupe.median - pasted.median,
        troupe.p90 - pasted.p90,
        troupe.p99 - pasted.p99
    );
    println!(
        "against the twin floor: {:+.1} ms at the median (bar 5 ms), {:+.1} ms at p90 (bar 10 \
         ms), {:+.1} ms at p99 (bar 50 ms)",
        troupe.median - twin_stats.median,
        troupe.p90 - twin_stats.p90,
        troupe.p99 - twin_stats.p99
    );
    // Sends alternate, so the n-th of each ran under the same conditions: the median of the
    // pairs' differences is the typical cost of one send, less moved by the spread.
    let (low, high) = median_difference_interval(&twin_all, &troupe_all);
    let mut paired: Vec<f64> = troupe_all
        .iter()
        .zip(&twin_all)
        .map(|(t, w)| t - w)
        .collect();
    paired.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "  how sure: the difference of medians lies in {low:+.1} … {high:+.1} ms in 90% of \
         2,000 resamplings; difference of means {:+.1} ms; median of the {} paired differences \
         {:+.1} ms",
        mean(&troupe_all) - mean(&twin_all),
        paired.len(),
        paired[paired.len() / 2]
    );
    // A send whose text took longer than SUBMIT_ACK_LATE to become a prompt had its Enter
    // pressed again: the first one was swallowed (or the machine was too busy to tell).
    let late = troupe::supervisor::instance::machine::SUBMIT_ACK_LATE;
    let late_ms = late.as_secs_f64() * 1000.0;
    println!(
        "{:<42} {} of {} sends (typing to CLI prompt over {} ms: Enter pressed again)",
        "troupe: Enter recovered",
        typing_to_prompt.iter().filter(|ms| **ms >= late_ms).count(),
        typing_to_prompt.len(),
        late.as_millis()
    );
    println!(
        "{:<42} {} of {} pastes (paste to CLI prompt over {} ms: Enter pressed again)",
        "  fair floor: as slow",
        floor_to_prompt.iter().filter(|ms| **ms >= late_ms).count(),
        floor_to_prompt.len(),
        late.as_millis()
    );
    println!(
        "{:<42} {} of {} pastes",
        "  twin floor: as slow",
        twin_to_prompt.iter().filter(|ms| **ms >= late_ms).count(),
        twin_to_prompt.len(),
    );
    summary("troupe hook (process + POST)", hook_ms);
    println!(
        "{:<42} {:?} of CPU in {:?} with {instances} idle instances",
        "idle cost (server + fake model)", idle_cpu, idle_for
    );

    for id in &ids {
        h.call("terminate_instance", json!({ "instance_id": id }))
            .await;
    }
    floor.tmux(&["kill-session", "-t", "=floor"]).await;
    twin.tmux(&["kill-session", "-t", "=floor"]).await;
}
