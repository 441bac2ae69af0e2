//! troupe's overhead on a Codex round trip, against its floor in the same run: the same Codex
//! CLI and model against the same fake model (answering at once), in tmux with no
//! orchestrator. The floor's time is from Enter to its Stop hook (a shell script that writes
//! the time); its text is pasted well before Enter, as troupe pastes it. troupe's time is a
//! `send_to_instance` call, from call to answer. Floor and troupe sends alternate, each after
//! the same quiet time.
//!
//! cargo bench --bench codex_roundtrip   (CODEX_ROUNDTRIP_SENDS, default 20 of each)

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use common::{BAR_MEDIAN_MS, BAR_P90_MS, lines, now_ns, summary};

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Harness, TmuxServer};

const QUIET_BEFORE_SEND: Duration = Duration::from_millis(300);
const POLL_EVERY: Duration = Duration::from_millis(3);
/// The same Codex troupe runs, started by hand: the harness's Codex config, a Stop hook that
/// writes the time, nothing of troupe's.
struct Floor {
    _tmux: TmuxServer,
    socket: String,
    stops: PathBuf,
}

impl Floor {
    async fn launch(h: &Harness, codex_bin: &str) -> (Floor, Duration) {
        let dir = h.dir.path().join("codex-floor");
        let home = dir.join("codex-home");
        let work = dir.join("work");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let work = work.canonicalize().unwrap();
        let stops = dir.join("stops");
        let script = dir.join("stopped.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncat > /dev/null\ndate +%s%N >> '{}'\n",
                stops.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let command = script.display().to_string();
        let hooks = home.join("hooks.json");
        std::fs::write(
            &hooks,
            json!({ "hooks": { "Stop": [{ "hooks": [{ "type": "command", "command": command, "timeout": 10 }] }] } })
                .to_string(),
        )
        .unwrap();
        let mut config = std::fs::read_to_string(h.home.join(".codex/config.toml")).unwrap();
        config.push_str(&format!(
            "\n[projects.\"{}\"]\ntrust_level = \"trusted\"\n\n[hooks.state.\"{}:stop:0:0\"]\ntrusted_hash = \"{}\"\n",
            work.display(),
            hooks.display(),
            troupe::agents::codex::hook_trust_hash("stop", &command, 10)
        ));
        std::fs::write(home.join("config.toml"), config).unwrap();

        let socket = support::unique_socket("cxfloor");
        let floor = Floor {
            _tmux: TmuxServer(socket.clone()),
            socket,
            stops,
        };
        let mut args: Vec<String> = ["new-session", "-d", "-s", "floor", "-x", "200", "-y", "50"]
            .map(String::from)
            .into();
        args.extend(["-c".into(), work.display().to_string()]);
        args.extend(["-e".into(), format!("CODEX_HOME={}", home.display())]);
        args.extend(["-e".into(), format!("HOME={}", h.home.display())]);
        args.extend(
            [
                codex_bin,
                "--no-daemon",
                "-m",
                "gpt-5",
                "--dangerously-bypass-approvals-and-sandbox",
            ]
            .map(String::from),
        );
        let t = Instant::now();
        floor.tmux(&args).await;
        floor
            .wait(
                "the floor Codex's input box",
                Duration::from_secs(60),
                async || floor.screen().await.contains("› Ask Codex").then_some(()),
            )
            .await;
        (floor, t.elapsed())
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
        self.tmux(&["capture-pane", "-p", "-t", "=floor:"]).await
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

    /// One turn: the text pasted (as troupe pastes it), then, after a quiet time, Enter; the
    /// time from Enter to the Stop hook.
    async fn send(&self, text: &str) -> Duration {
        let before = lines(&self.stops).len();
        let buffer = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "set-buffer", "-b", "floor", text])
            .status()
            .unwrap();
        assert!(buffer.success());
        self.tmux(&["paste-buffer", "-p", "-b", "floor", "-t", "=floor:"])
            .await;
        tokio::time::sleep(QUIET_BEFORE_SEND).await;
        self.wait(
            "the pasted text on screen",
            Duration::from_secs(10),
            async || self.screen().await.contains(text).then_some(()),
        )
        .await;
        let enter = now_ns();
        self.tmux(&["send-keys", "-t", "=floor:", "Enter"]).await;
        let stop = self
            .wait(
                "the floor Codex's Stop hook",
                Duration::from_secs(60),
                async || lines(&self.stops).get(before).copied(),
            )
            .await;
        Duration::from_nanos(u64::try_from(stop - enter).expect("Stop after Enter"))
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sends: usize = std::env::var("CODEX_ROUNDTRIP_SENDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let h = Harness::start().await;
    let codex_bin = h.config().codex_bin;
    let (floor, floor_ready) = Floor::launch(&h, &codex_bin).await;
    let t = Instant::now();
    let r = h.call("spawn_codex", json!({ "role": "tester" })).await;
    assert!(!r.is_error, "{}", r.text);
    let troupe_ready = t.elapsed();
    let id = r.structured["instance_id"].as_str().unwrap().to_string();
    println!(
        "codex {} · spawn to ready: floor {:.0} ms, troupe {:.0} ms",
        std::process::Command::new(&codex_bin)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default(),
        floor_ready.as_secs_f64() * 1000.0,
        troupe_ready.as_secs_f64() * 1000.0
    );
    // One of each first, outside the figures: the first turn of a session does more.
    floor.send("warm up the floor").await;
    h.call(
        "send_to_instance",
        json!({ "instance_id": id, "message": "warm up troupe" }),
    )
    .await;

    let mut floor_ms = Vec::new();
    let mut troupe_ms = Vec::new();
    for i in 0..sends {
        floor_ms.push(floor.send(&format!("floor send {i}")).await.as_secs_f64() * 1000.0);
        tokio::time::sleep(QUIET_BEFORE_SEND).await;
        let text = format!("troupe send {i}");
        let t = Instant::now();
        let r = h
            .call(
                "send_to_instance",
                json!({ "instance_id": id, "message": text }),
            )
            .await;
        let took = t.elapsed();
        assert_eq!(
            r.structured["response"],
            format!("ECHO: {text}"),
            "{}",
            r.text
        );
        troupe_ms.push(took.as_secs_f64() * 1000.0);
        tokio::time::sleep(QUIET_BEFORE_SEND).await;
    }
    let floor = summary("floor: Enter to Stop hook", floor_ms);
    let troupe = summary("troupe: send_to_instance to answer", troupe_ms);
    println!(
        "troupe's overhead on a Codex round trip: median {:+.1} ms (bar {BAR_MEDIAN_MS}), p90 {:+.1} ms (bar {BAR_P90_MS})",
        troupe.median - floor.median,
        troupe.p90 - floor.p90
    );
}
