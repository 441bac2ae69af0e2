//! Latency and idle cost of troupe with real Claude Code instances against the fake model:
//! spawn-to-ready and send-to-answer, the latter split by the timestamps troupe and the CLI
//! write (troupe's message row, the CLI's transcript) into troupe's own part before typing,
//! tmux + the CLI's input handling, the CLI's turn, and troupe's part after the turn ended.
//! Prints figures.
//!
//! cargo bench --bench roundtrip   (ROUNDTRIP_INSTANCES, ROUNDTRIP_SENDS to change the size)

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Harness;
use troupe::db::instances::Instance;
use troupe::db::messages::Message;

type Ts = chrono::DateTime<chrono::Utc>;

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

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pick = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<34} n={:<3} min={:>7.1}ms  median={:>7.1}ms  p90={:>7.1}ms  max={:>7.1}ms",
        ms.len(),
        ms[0],
        pick(0.5),
        pick(0.9),
        ms[ms.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let instances = env_usize("ROUNDTRIP_INSTANCES", 3);
    let sends = env_usize("ROUNDTRIP_SENDS", 10);
    let h = Harness::start().await;

    let mut spawn_ms = Vec::new();
    let mut ids = Vec::new();
    for i in 0..instances {
        let t = Instant::now();
        let id = h
            .spawn(json!({ "role": "tester", "name": format!("bench{i}") }))
            .await;
        spawn_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        ids.push(id);
    }

    let mut rtt_ms = Vec::new();
    let mut before_typing_ms = Vec::new();
    let mut typing_to_prompt_ms = Vec::new();
    let mut cli_turn_ms = Vec::new();
    let mut recorded_to_caller_ms = Vec::new();
    for id in &ids {
        let mut calls = Vec::new();
        for n in 0..sends {
            let started = chrono::Utc::now();
            let t = Instant::now();
            let r = h
                .call(
                    "send_to_instance",
                    json!({ "instance_id": id, "message": format!("ping {n}") }),
                )
                .await;
            assert!(!r.is_error, "{}", r.text);
            let rtt = t.elapsed();
            calls.push((
                started,
                started + rtt,
                r.structured["message_id"].as_str().unwrap().to_string(),
            ));
            rtt_ms.push(rtt.as_secs_f64() * 1000.0);
        }
        // Timestamps the CLI wrote: when it registered each prompt and when the turn ended.
        let inst = Instance::find(h.pool(), id).await.unwrap().unwrap();
        let transcript = std::fs::read_to_string(inst.transcript_path.unwrap()).unwrap();
        let mut turns = Vec::new();
        let mut prompt_at = None;
        for v in transcript
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            let ts = || ts(v["timestamp"].as_str().unwrap_or_default());
            if v["type"] == "user"
                && v["promptId"].is_string()
                && v["message"]["content"].is_string()
            {
                prompt_at = Some(ts());
            } else if v["subtype"] == "turn_duration" {
                turns.push(prompt_at.take().expect("a prompt before each turn end"));
            }
        }
        assert_eq!(turns.len(), calls.len(), "one turn per send");
        for ((call_at, answered_at, message_id), prompt_at) in calls.iter().zip(&turns) {
            let m = Message::find(h.pool(), message_id).await.unwrap().unwrap();
            let submitted = ts(m.submitted_at.as_deref().unwrap());
            before_typing_ms.push(ms(submitted - *call_at));
            typing_to_prompt_ms.push(ms(*prompt_at - submitted));
            let recorded = ts(m.finished_at.as_deref().unwrap());
            cli_turn_ms.push(ms(recorded - *prompt_at));
            recorded_to_caller_ms.push(ms(*answered_at - recorded));
        }
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
        "troupe roundtrip: {instances} Claude Code instances, {sends} sends each, fake model answering at once"
    );
    summary("spawn to ready (spawn_claude)", spawn_ms);
    summary("send to answer (send_to_instance)", rtt_ms);
    summary("  troupe: call to typing", before_typing_ms);
    summary("  typing to CLI prompt (tmux + TUI)", typing_to_prompt_ms);
    summary("  CLI turn (prompt to Stop hook)", cli_turn_ms);
    summary("  troupe: answer recorded to caller", recorded_to_caller_ms);
    summary("troupe hook (process + POST)", hook_ms);
    println!(
        "{:<34} {:?} of CPU in {:?} with {instances} idle instances",
        "idle cost (server + fake model)", idle_cpu, idle_for
    );
    for id in &ids {
        h.call("terminate_instance", json!({ "instance_id": id }))
            .await;
    }
}
