//! The command-line client against a real server on port 0: aligned tables for people,
//! JSON for scripts, and a clear error when no server answers.

mod support;

use serde_json::{Value, json};
use support::Harness;

fn troupe(url: &str, token: &str, args: &[&str]) -> (bool, String) {
    support::process::troupe_cli(url, token, args)
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

    // An ended instance leaves `ls`, and `ls --all` still shows it.
    let r = h
        .call("terminate_instance", json!({ "instance_id": kid }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["ls"]));
    assert!(ok && !out.contains(&kid), "{out}");
    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["ls", "--all"]));
    assert!(ok, "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with(&kid))
        .unwrap_or_else(|| panic!("no row for {kid}: {out}"));
    assert!(row.contains("terminated"), "{row}");

    // No server there: a clear error, exit 1.
    let port = support::process::free_port();
    let (ok, out) = tokio::task::block_in_place(|| {
        troupe(&format!("http://127.0.0.1:{port}"), &token, &["ls"])
    });
    assert!(!ok);
    assert!(
        out.starts_with("error: no troupe server answers at"),
        "{out}"
    );
    assert!(out.contains("troupe serve"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_interrupt_kill_resume_and_tree_from_the_command_line() {
    let h = Harness::start().await;
    let url = h.server().url();
    let token = h.server().token().to_string();
    let run = |args: Vec<String>| {
        let (url, token) = (url.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            troupe(&url, &token, &args)
        })
    };
    let lead = h
        .spawn(json!({ "role": "architect", "name": "lead", "model": "haiku" }))
        .await;
    let kid = h
        .spawn(json!({ "role": "tester", "name": "kid", "parent_instance_id": lead }))
        .await;

    let (ok, out) = run(vec!["send".into(), kid.clone(), "hello there".into()])
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "ECHO: hello there");
    let (ok, out) = run(vec!["tree".into()]).await.unwrap();
    assert!(ok && out.contains(&lead) && out.contains(&kid), "{out}");

    let (ok, out) = run(vec![
        "send".into(),
        kid.clone(),
        "please count slowly to 40".into(),
        "--no-wait".into(),
    ])
    .await
    .unwrap();
    assert!(ok && out.starts_with("queued as msg-"), "{out}");
    h.model
        .wait_for_request(
            |r| support::fake_model::last_user_text(r).ends_with("count slowly to 40"),
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    let (ok, out) = run(vec!["interrupt".into(), "--all".into()]).await.unwrap();
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{kid}: confirmed")), "{out}");

    let (ok, out) = run(vec!["kill".into(), "--all".into()]).await.unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains(&kid) && out.contains(&lead),
        "one kill of the top ends both: {out}"
    );
    let (ok, out) = run(vec!["resume".into(), kid.clone()]).await.unwrap();
    assert!(ok && out.contains("idle"), "{out}");

    let (ok, out) = run(vec!["send".into(), "ghost-0000".into(), "hi".into()])
        .await
        .unwrap();
    assert!(
        !ok && out.contains("ghost-0000") && out.contains("404"),
        "{out}"
    );

    // The REST API says what is wrong, in JSON, with the status that fits.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/api/instances/{kid}/send"))
        .bearer_auth(&token)
        .json(&json!({ "mesage": "typo" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("mesage"), "{body}");
    let r = http
        .get(format!("{url}/api/instances/ghost-0000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_open_and_attach_from_the_command_line() {
    let h = Harness::start().await;
    let url = h.server().url();
    let token = h.server().token().to_string();
    let id = h
        .spawn(json!({ "role": "developer", "name": "logger", "model": "haiku" }))
        .await;
    let (ok, out) = tokio::task::block_in_place(|| {
        troupe(
            &url,
            &token,
            &["send", &id, "first words", "--wait", "--json"],
        )
    });
    assert!(ok, "{out}");
    let sent: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sent["response"], "ECHO: first words");
    // The answer is back before the CLI has written the turn down.
    h.wait_for_transcript(&id, sent["id"].as_str().unwrap())
        .await;

    // The conversation so far, for people and as JSON lines.
    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["logs", &id]));
    assert!(ok, "{out}");
    assert!(out.contains("> first words\n"), "{out}");
    assert!(out.contains("ECHO: first words\n"), "{out}");
    let (ok, out) =
        tokio::task::block_in_place(|| troupe(&url, &token, &["logs", &id, "--json", "-n", "1"]));
    assert!(ok, "{out}");
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["source"], "assistant");

    // -f follows live output until the instance ends.
    let mut follower = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["logs", "-f", &id])
        .env("TROUPE_URL", &url)
        .env("TROUPE_TOKEN", &token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    // The history arrives first, so the stream is open once it has been printed.
    let mut history = Vec::new();
    while !history.iter().any(|l: &String| l == "ECHO: first words") {
        history.push(lines.next_line().await.unwrap().expect("history"));
    }
    let (ok, out) =
        tokio::task::block_in_place(|| troupe(&url, &token, &["send", &id, "later words"]));
    assert!(ok, "{out}");
    let mut followed = Vec::new();
    while !followed.iter().any(|l: &String| l == "ECHO: later words") {
        let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("followed output within 30s")
            .unwrap()
            .expect("the follower goes on");
        followed.push(line);
    }
    assert!(
        followed.contains(&"> later words".to_string()),
        "{followed:?}"
    );
    assert!(
        !followed.contains(&"ECHO: first words".to_string()),
        "history is not printed twice: {followed:?}"
    );
    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["kill", &id]));
    assert!(ok, "{out}");
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), follower.wait())
        .await
        .expect("logs -f ends when the instance does")
        .unwrap();
    assert!(status.success());

    // open: a one-time link that logs a browser in.
    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["open"]));
    assert!(ok, "{out}");
    let link = out.lines().next().unwrap().to_string();
    assert!(link.starts_with(&format!("{url}/login?code=")), "{out}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(&token), "the cookie is not the token");
    assert_eq!(
        http.get(&link).send().await.unwrap().status(),
        401,
        "once only"
    );

    // attach needs a terminal, and says what to run instead.
    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["attach", &id]));
    assert!(!ok);
    assert!(out.contains("tmux -L"), "{out}");

    // Errors name what to do next.
    let (ok, out) = tokio::task::block_in_place(|| troupe(&url, &token, &["logs", "ghost-0000"]));
    assert!(
        !ok && out.contains("ghost-0000") && out.contains("`troupe ls`"),
        "{out}"
    );
}

/// `troupe doctor` against a running server: every part checked, the tested CLI versions
/// named, and each MCP client with the era it speaks (the instance's Claude Code included).
#[tokio::test(flavor = "multi_thread")]
async fn doctor_checks_each_part_and_names_the_clients_eras() {
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester", "model": "haiku" })).await;
    let server = h.server();
    let doctor = |more: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(["doctor", "--data-dir"])
            .arg(&h.data_dir)
            .args(more)
            .env("TROUPE_URL", server.url())
            .env("TROUPE_TOKEN", server.token())
            .env("TROUPE_CLAUDE_BIN", support::clis::claude_bin())
            .env("TROUPE_CODEX_BIN", support::clis::codex_bin())
            .output()
            .unwrap()
    };
    let out = doctor(&[]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let version = support::clis::claude_version();
    for line in [
        format!("ok    claude       Claude Code {version} (tested)"),
        "ok    codex        Codex 0.169.0 (tested)".to_string(),
        format!("ok    server       troupe answers at {}", server.url()),
        "ok    token        from the --token flag or TROUPE_TOKEN".to_string(),
    ] {
        assert!(text.contains(&line), "{line:?} not in\n{text}");
    }
    // The test's own client speaks sessions; the instance's Claude Code its own era.
    assert!(
        text.contains("troupe-tests 0 (the person): MCP 2025-06-18 (sessions)"),
        "{text}"
    );
    let era = match support::clis::claude_era() {
        troupe::mcp::clients::Era::Stateless => "MCP 2026-07-28 (stateless)",
        troupe::mcp::clients::Era::Session => "(sessions)",
    };
    let instance_line = text
        .lines()
        .find(|l| l.contains(&format!("(instance {id})")))
        .unwrap_or_else(|| panic!("no line for {id} in\n{text}"));
    assert!(instance_line.contains(era), "{instance_line}");
    assert!(instance_line.contains("claude-code"), "{instance_line}");
    // As JSON, for scripts.
    let out = doctor(&["--json"]);
    assert!(out.status.success());
    let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "server" && c["status"] == "ok")
    );
}
