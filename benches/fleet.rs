//! What a fleet adds: a send and a spawn through a host that does not run the instance (handed
//! to its owner through the PostgreSQL registry), against the same through the owner, in one
//! run. Two hosts, alpha and beta, run in this process on one registry; beta runs the instance.
//! Sends alternate between the two paths, each after the same quiet time, each path first in
//! every other pair.
//!
//! TROUPE_TEST_PG=postgres://… cargo bench --bench fleet   (FLEET_SENDS, default 30 of each;
//!                                                          FLEET_SPAWNS, default 3 of each)

// Shared with the round-trip benches, whose floors use the rest of it.
#[allow(dead_code)]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::summary;
use serde_json::json;
use support::{Harness, McpClient, TmuxServer, unique_socket};

/// Between two sends: the instance's last turn is closed on both paths alike.
const QUIET: Duration = Duration::from_millis(300);
/// The bars from the issue, printed next to the figures.
const SEND_BAR_MS: f64 = 10.0;
const SPAWN_BAR_MS: f64 = 50.0;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn timed(mcp: &McpClient, tool: &str, args: serde_json::Value) -> (f64, serde_json::Value) {
    let t = Instant::now();
    let r = mcp.call_tool(tool, args).await;
    let took = t.elapsed().as_secs_f64() * 1000.0;
    assert!(!r.is_error, "{tool}: {}", r.text);
    (took, r.structured)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let sends = env_usize("FLEET_SENDS", 30).max(1);
    let spawns = env_usize("FLEET_SPAWNS", 3).max(1);
    if std::env::var("TROUPE_TEST_PG").is_err() {
        eprintln!("the fleet bench needs a PostgreSQL server: set TROUPE_TEST_PG=postgres://…");
        std::process::exit(2);
    }
    let h = Harness::start_with(|c| c.host = "alpha".into()).await;
    let socket = unique_socket("beta");
    let _beta_tmux = TmuxServer(socket.clone());
    let mut config = h.config();
    config.host = "beta".into();
    config.data_dir = h.dir.path().join("beta-data");
    config.db_path = config.data_dir.join("troupe.db");
    config.tmux_socket = socket;
    config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.token = h.server().token().to_string();
    let beta = troupe::Server::start(config).await.expect("beta starts");
    let (alpha_mcp, beta_mcp) = (
        McpClient::user(h.server()).await,
        McpClient::user(&beta).await,
    );

    let mut spawn_owner = Vec::new();
    let mut spawn_other = Vec::new();
    let mut ids = Vec::new();
    for i in 0..spawns {
        let args = |who: &str| json!({ "role": "tester", "model": "haiku", "name": format!("{who}{i}"), "host": "beta" });
        let (ms, r) = timed(&beta_mcp, "spawn_claude", args("own")).await;
        spawn_owner.push(ms);
        ids.push(r["instance_id"].as_str().unwrap().to_string());
        let (ms, r) = timed(&alpha_mcp, "spawn_claude", args("far")).await;
        assert_eq!(r["instance"]["host"], "beta");
        spawn_other.push(ms);
        ids.push(r["instance_id"].as_str().unwrap().to_string());
    }

    let id = &ids[0];
    let mut owner = Vec::new();
    let mut other = Vec::new();
    for i in 0..sends {
        // Each path goes first in every other pair: neither always follows the other's turn.
        let mut pair = [(&beta_mcp, &mut owner), (&alpha_mcp, &mut other)];
        if i % 2 == 1 {
            pair.reverse();
        }
        for (mcp, into) in pair {
            tokio::time::sleep(QUIET).await;
            let text = format!("fleet bench {i} {}", into.len());
            let (ms, r) = timed(
                mcp,
                "send_to_instance",
                json!({ "instance_id": id, "message": text }),
            )
            .await;
            assert_eq!(r["response"], format!("ECHO: {text}"));
            into.push(ms);
        }
    }

    println!("registry: PostgreSQL; the instance runs on beta");
    let own = summary("send through the owner (beta)", owner);
    let far = summary("send through another host (alpha)", other);
    let (dm, dp) = (far.median - own.median, far.p90 - own.p90);
    println!(
        "send through another host adds {dm:+.1} ms at the median, {dp:+.1} ms at p90 \
         (bar: {SEND_BAR_MS} ms at the median)"
    );
    let own = summary("spawn through the owner (beta)", spawn_owner);
    let far = summary("spawn through another host (alpha)", spawn_other);
    println!(
        "spawn through another host adds {:+.1} ms at the median (bar: {SPAWN_BAR_MS} ms)",
        far.median - own.median
    );
    beta.stop().await;
}
