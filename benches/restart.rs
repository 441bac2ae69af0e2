//! How long `troupe serve` takes to bring instances back after a restart: reattaching live
//! CLIs (server restarted, tmux alive) and resuming dead ones with `--resume` (tmux killed).
//! Prints figures.
//!
//! cargo bench --bench restart   (RESTART_INSTANCES to change the count, default 10)

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use serde_json::json;
use support::Harness;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("RESTART_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut h = Harness::start().await;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = h
            .spawn(json!({ "role": "tester", "name": format!("r{i}") }))
            .await;
        let r = h
            .call(
                "send_to_instance",
                json!({ "instance_id": id, "message": format!("hello {i}") }),
            )
            .await;
        assert!(!r.is_error, "{}", r.text);
        ids.push(id);
    }

    h.stop_server().await;
    let t = Instant::now();
    h.start_server().await;
    let reattach = t.elapsed();
    check_all(&h, &ids, "reattached").await;

    h.stop_server().await;
    h.kill_tmux();
    let t = Instant::now();
    h.start_server().await;
    let resume = t.elapsed();
    check_all(&h, &ids, "resumed").await;

    println!("troupe restart: {n} Claude Code instances, each with one earlier turn");
    println!(
        "{:<44} {:>8.1} ms",
        "start to all reattached (tmux alive)",
        reattach.as_secs_f64() * 1000.0
    );
    println!(
        "{:<44} {:>8.1} ms",
        "start to all resumed (tmux killed)",
        resume.as_secs_f64() * 1000.0
    );
}

async fn check_all(h: &Harness, ids: &[String], outcome: &str) {
    for id in ids {
        let events = troupe::db::audit::for_instance(h.pool(), id).await.unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.kind == format!("instance.{outcome}")),
            "{id} was not {outcome}: {events:?}"
        );
        let inst = troupe::db::instances::Instance::find(h.pool(), id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(inst.state, "idle", "{id}: {}", inst.state_reason);
    }
}
