//! The command-line client against a real server on port 0: aligned tables for people,
//! JSON for scripts, and a clear error when no server answers.

mod support;

use serde_json::{Value, json};
use support::Harness;

fn troupe(url: &str, token: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .env("TROUPE_URL", url)
        .env("TROUPE_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_and_cost_print_tables_and_json() {
    let h = Harness::start().await;
    let url = h.server().url();
    let token = h.server().token().to_string();
    let lead = h
        .spawn(json!({ "role": "architect", "name": "lead", "model": "haiku" }))
        .await;
    let kid = h
        .spawn(json!({ "role": "tester", "parent_instance_id": lead }))
        .await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": kid, "message": "hi" }),
        )
        .await;
    h.wait_for_transcript(&kid, r.structured["message_id"].as_str().unwrap())
        .await;

    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["ls"]));
    assert!(ok, "{out}");
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("ID"), "{out}");
    for col in ["AGENT", "ROLE", "MODEL", "STATE", "PARENT", "AGE", "COST"] {
        assert!(header.contains(col), "{col}: {out}");
    }
    let kid_row = lines
        .find(|l| l.starts_with(&kid))
        .expect("the child's row");
    assert!(
        kid_row.contains(&lead) && kid_row.contains("claude"),
        "{kid_row}"
    );
    assert!(kid_row.contains('$'), "{kid_row}");

    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["ls", "--json"]));
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["instances"].as_array().unwrap().len(), 2);

    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["cost"]));
    assert!(ok, "{out}");
    assert!(out.starts_with("2 spawned, 2 active"), "{out}");
    assert!(out.contains("MODEL") && out.contains("claude-"), "{out}");
    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["cost", "--json"]));
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["cost_micros"].as_i64().unwrap() > 0, "{v}");

    // No server there: a clear error, exit 1.
    let port = support::process::free_port();
    let (ok, out) = tokio::task::block_in_place(|| {
        troupe(&format!("http://127.0.0.1:{port}"), &token, &["ls"])
    });
    assert!(!ok);
    assert!(out.starts_with("error: cannot reach troupe"), "{out}");
    assert!(out.contains("troupe serve"), "{out}");
}
