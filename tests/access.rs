//! Least privilege, with the real Claude Code as the instances: an instance acts on itself
//! and the instances below it, never on its parent, its grandparent or a stranger; it cannot
//! change controls or approve its own calls; lists show it its own subtree.

mod support;

use serde_json::json;
use support::Harness;
use support::asking::{as_instance, lead_under_approval, person_code};

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_acts_only_on_itself_and_the_instances_below_it() {
    let h = Harness::start().await;
    let lead = h
        .spawn(json!({ "role": "architect", "name": "lead", "model": "haiku" }))
        .await;
    let mid = h
        .spawn(json!({ "role": "developer", "name": "mid", "model": "haiku", "parent_instance_id": lead }))
        .await;
    let leaf = h
        .spawn(json!({ "role": "tester", "name": "leaf", "model": "haiku", "parent_instance_id": mid }))
        .await;
    let other = h
        .spawn(json!({ "role": "tester", "name": "other", "model": "haiku" }))
        .await;
    let as_leaf = as_instance(&h, &leaf).await;

    // Upwards and sideways: refused, each naming the reason.
    let refused = [
        (
            "terminate_instance",
            json!({ "instance_id": lead }),
            "neither you nor",
        ),
        (
            "interrupt_instance",
            json!({ "instance_id": mid }),
            "neither you nor",
        ),
        (
            "send_to_instance",
            json!({ "instance_id": other, "message": "hi", "wait_for_response": false }),
            "outside your reach",
        ),
        (
            "get_instance_output",
            json!({ "instance_id": other }),
            "outside your reach",
        ),
        (
            "get_instance_status",
            json!({ "instance_id": lead }),
            "outside your reach",
        ),
        (
            "spawn_claude",
            json!({ "role": "tester", "parent_instance_id": other }),
            "under itself only",
        ),
        (
            "configure_orchestration",
            json!({ "max_instances": 1000 }),
            "the person's",
        ),
        ("terminate_all", json!({}), "the person's"),
        (
            "create_team",
            json!({ "name": "mine", "members": [{ "role": "tester" }] }),
            "the person's",
        ),
    ];
    for (tool, args, why) in &refused {
        let r = as_leaf.call_tool(tool, args.clone()).await;
        assert!(r.is_error, "{tool} was allowed: {}", r.text);
        assert!(r.text.contains(why), "{tool}: {}", r.text);
    }
    for id in [&lead, &mid, &other] {
        let s = h
            .call("get_instance_status", json!({ "instance_id": id }))
            .await;
        assert_eq!(s.structured["instances"][0]["state"], "idle", "{id}");
    }
    let settings = h.call("get_orchestration_settings", json!({})).await;
    assert_ne!(
        settings.structured["max_instances"]["value"], 1000,
        "{}",
        settings.text
    );
    let refusals = troupe::db::audit::of_kind(h.pool(), "access.refused")
        .await
        .unwrap();
    assert_eq!(refusals.len(), refused.len(), "{refusals:?}");

    // Lists show an instance its own subtree.
    let listed = as_leaf.call_tool("list_instances", json!({})).await;
    assert_eq!(listed.structured["count"], 1, "{}", listed.text);
    // A spawned instance's entry names its parent, on both of the answer's forms.
    let entry = &listed.structured["instances"][0];
    assert_eq!(entry["parent_instance_id"], mid.as_str(), "{entry}");
    assert!(
        listed.text.contains(&format!("parent {mid}")),
        "{}",
        listed.text
    );
    let as_mid = as_instance(&h, &mid).await;
    let listed = as_mid.call_tool("get_instance_status", json!({})).await;
    let ids: Vec<&str> = listed.structured["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&mid.as_str()) && ids.contains(&leaf.as_str()));
    let tree = as_mid.call_tool("get_instance_tree", json!({})).await;
    let text = tree.structured["text"].as_str().unwrap();
    assert!(!text.contains(&lead) && !text.contains(&other), "{text}");

    // Downwards: allowed.
    let as_lead = as_instance(&h, &lead).await;
    let r = as_lead
        .call_tool("get_instance_output", json!({ "instance_id": leaf }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = as_lead
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": leaf, "message": "hello from the top" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["response"], "ECHO: hello from the top");
    let r = as_lead
        .call_tool("terminate_instance", json!({ "instance_id": mid }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let gone = r.structured["terminated"].to_string();
    assert!(gone.contains(&leaf) && gone.contains(&mid), "{gone}");
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_is_the_persons_and_an_instances_call_waits_for_it() {
    let h = Harness::start().await;
    let lead = lead_under_approval(&h).await;

    // An instance's call is asked of the person and waits for them; the instance gets no code.
    let http = reqwest::Client::new();
    let url = h.server().url();
    let token = h.server().token().to_string();
    let pending = || async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let list: serde_json::Value = http
                .get(format!("{url}/api/approvals"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(a) = list["approvals"].as_array().and_then(|l| l.first()) {
                return a.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nothing asked: {list}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let asking = {
        let as_lead = as_instance(&h, &lead).await;
        tokio::spawn(async move {
            as_lead
                .call_tool("spawn_claude", json!({ "role": "tester", "name": "kid" }))
                .await
        })
    };
    let asked = pending().await;
    let r = http
        .get(format!("{url}/api/approvals/appr-none"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "an unknown approval");
    assert_eq!(asked["instance_id"], lead.as_str());
    assert_eq!(asked["tool"], "spawn_claude");
    assert_eq!(
        asked["arguments"],
        json!({ "role": "tester", "name": "kid" })
    );
    let id = asked["approval_id"].as_str().unwrap().to_string();
    // Only the person answers: not the instance over MCP, nor over REST.
    let as_lead = as_instance(&h, &lead).await;
    let r = as_lead
        .call_tool(
            "respond_to_approval",
            json!({ "approval_id": id, "approve": true }),
        )
        .await;
    assert!(r.is_error && r.text.contains("the person's"), "{}", r.text);
    let r = http
        .post(format!("{url}/api/approvals/{id}"))
        .bearer_auth(support::asking::token_of(&h, &lead).await)
        .header("x-troupe-instance", &lead)
        .json(&json!({ "approve": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = as_lead
        .call_tool("get_approval", json!({ "approval_id": id }))
        .await;
    assert_eq!(
        r.structured["approvals"][0]["state"], "pending",
        "{}",
        r.text
    );
    let r = http
        .post(format!("{url}/api/approvals/{id}"))
        .bearer_auth(&token)
        .json(&json!({ "approve": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let spawned = asking.await.unwrap();
    assert!(!spawned.is_error, "{}", spawned.text);
    assert!(
        !spawned.text.contains("ok-"),
        "a code was handed to an instance: {}",
        spawned.text
    );
    let kid = spawned.structured["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = support::asking::status(&h, &kid).await;
    assert_eq!(s["parent_instance_id"], lead.as_str(), "{s}");
    // The approval was for that one call: used now, and good for nothing else.
    let r = as_lead
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "name": "kid", "approval": id }),
        )
        .await;
    assert!(r.is_error && r.text.contains("used already"), "{}", r.text);

    // A refusal reaches the instance with the person's reason, and nothing runs.
    let asking = {
        let as_lead = as_instance(&h, &lead).await;
        tokio::spawn(async move {
            as_lead
                .call_tool("spawn_claude", json!({ "role": "tester", "name": "kid2" }))
                .await
        })
    };
    let asked = pending().await;
    let id2 = asked["approval_id"].as_str().unwrap();
    assert_ne!(id2, id);
    let r = http
        .post(format!("{url}/api/approvals/{id2}"))
        .bearer_auth(&token)
        .json(&json!({ "approve": false, "reason": "two testers are enough" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refused = asking.await.unwrap();
    assert!(
        refused.is_error && refused.text.contains("two testers are enough"),
        "{}",
        refused.text
    );
    let listed = h.call("list_instances", json!({})).await;
    assert!(!listed.text.contains("kid2"), "{}", listed.text);

    // The person's own code works for nobody else's call and for no other arguments.
    let person = h
        .call("spawn_claude", json!({ "role": "tester", "name": "kid3" }))
        .await;
    let code = person_code(&person);
    let r = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "name": "someone-else", "approval": code }),
        )
        .await;
    assert!(r.is_error && r.text.contains("not valid"), "{}", r.text);
    let audit = troupe::db::audit::of_kind(h.pool(), "approval.granted")
        .await
        .unwrap();
    assert!(
        audit.iter().any(|e| e.detail.contains("\"how\":\"rest\"")),
        "{audit:?}"
    );
}

/// An instance's call whose approval does not come in time ends with the approval's id; the
/// person's later answer lets the instance make exactly that call.
#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_approval_can_be_used_once_answered() {
    let h = Harness::start_with(|c| c.permission_wait = std::time::Duration::from_secs(2)).await;
    let lead = lead_under_approval(&h).await;
    let as_lead = as_instance(&h, &lead).await;
    let args = json!({ "role": "tester", "name": "later" });
    let r = as_lead.call_tool("spawn_claude", args.clone()).await;
    assert!(
        r.is_error && r.text.contains("waiting for the person's approval"),
        "{}",
        r.text
    );
    let id = r
        .text
        .split("approval appr-")
        .nth(1)
        .map(|rest| format!("appr-{}", &rest[..12]))
        .expect("the approval's id");
    let r = as_lead.call_tool("get_approval", json!({})).await;
    assert_eq!(
        r.structured["approvals"][0]["approval_id"],
        id.as_str(),
        "{}",
        r.text
    );
    // The person answers with the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["approve", &id, "--url", &h.server().url()])
        .env("TROUPE_TOKEN", h.server().token())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("{id} approved")), "{said}");
    // Other arguments are refused; the same ones run, once.
    let mut other = args.clone();
    other["name"] = json!("someone-else");
    other["approval"] = json!(id);
    let r = as_lead.call_tool("spawn_claude", other).await;
    assert!(r.is_error && r.text.contains("exact call"), "{}", r.text);
    let mut same = args.clone();
    same["approval"] = json!(id);
    let r = as_lead.call_tool("spawn_claude", same).await;
    assert!(!r.is_error, "{}", r.text);
    let r = h.call("get_approval", json!({ "approval_id": id })).await;
    assert_eq!(r.structured["approvals"][0]["state"], "used", "{}", r.text);
}

/// A person who exported TROUPE_TOKEN (as `serve` suggests for Codex) starts troupe from that
/// shell: the instances it runs, and the tmux server they run in, do not get the token, nor
/// any other variable outside the allowlist unless `--pass-env` names it.
#[tokio::test(flavor = "multi_thread")]
async fn no_instance_inherits_the_server_token() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::seed_home(&home);
    let model = support::FakeModel::start().await;
    let socket = support::unique_socket("token");
    let _tmux = support::TmuxServer(socket.clone());
    let secret = "secret-server-token-0123456789abcdef";
    let mut env = support::instance_env(&home, &model.base_url());
    env.push(("TROUPE_TOKEN".into(), secret.into()));
    // Other secrets of the person's shell stay out too; a name passed with --pass-env goes in.
    env.push(("GITHUB_TOKEN".into(), "ghp-not-for-instances".into()));
    env.push((
        "AWS_SECRET_ACCESS_KEY".into(),
        "aws-not-for-instances".into(),
    ));
    env.push(("PROJECT_SETTING".into(), "passed-on-purpose".into()));
    let mut spec = support::process::ServeSpec::new(dir.path(), &socket, env).await;
    spec.extra_args = vec!["--pass-env".into(), "PROJECT_SETTING".into()];
    let serve = support::process::ServeProcess::start(&spec).await;
    let person = support::McpClient::with_token(&serve.url, secret).await;
    let r = person
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "model": "haiku" }),
        )
        .await;
    assert!(
        !r.is_error,
        "{}\n{}",
        r.text,
        support::process::ServeProcess::log_tail(&spec, 40)
    );
    let global = std::process::Command::new("tmux")
        .args(["-L", &socket, "show-environment", "-g"])
        .output()
        .unwrap();
    let global = String::from_utf8_lossy(&global.stdout);
    assert!(global.contains("HOME="), "{global}");
    assert!(!global.contains(secret), "the tmux server holds the token");
    let panes = std::process::Command::new("tmux")
        .args(["-L", &socket, "list-panes", "-a", "-F", "#{pane_pid}"])
        .output()
        .unwrap();
    let pids = String::from_utf8_lossy(&panes.stdout).into_owned();
    assert!(!pids.trim().is_empty());
    for pid in pids.lines() {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            environ.contains("ANTHROPIC_BASE_URL="),
            "the pane's environment is read"
        );
        assert!(!environ.contains(secret), "pane {pid} holds the token");
        for other in ["ghp-not-for-instances", "aws-not-for-instances"] {
            assert!(!environ.contains(other), "pane {pid} holds {other}");
        }
        assert!(
            environ.contains("PROJECT_SETTING=passed-on-purpose"),
            "--pass-env"
        );
    }
    for other in ["ghp-not-for-instances", "aws-not-for-instances"] {
        assert!(!global.contains(other), "the tmux server holds {other}");
    }
}

/// A second `troupe serve` on a data directory a running one uses is refused, naming the
/// first, and leaves the first and its instances alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    support::seed_home(&home);
    let model = support::FakeModel::start().await;
    let socket = support::unique_socket("lock");
    let _tmux = support::TmuxServer(socket.clone());
    let spec = support::process::ServeSpec::new(
        dir.path(),
        &socket,
        support::instance_env(&home, &model.base_url()),
    )
    .await;
    let first = support::process::ServeProcess::start(&spec).await;
    let person = first.mcp().await;
    let r = person
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "model": "haiku" }),
        )
        .await;
    assert!(
        !r.is_error,
        "{}\n{}",
        r.text,
        support::process::ServeProcess::log_tail(&spec, 40)
    );
    let id = r.structured["instance_id"].as_str().unwrap().to_string();
    // The same data directory on another port, and another data directory on the same
    // tmux socket: both refused.
    for (data_dir, sock) in [
        (spec.data_dir.clone(), format!("{socket}-other")),
        (dir.path().join("elsewhere"), socket.clone()),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(["--db"])
            .arg(data_dir.join("troupe.db"))
            .args(["--tmux-socket", &sock])
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a second server started: {err}");
        assert!(
            err.contains(&format!(
                "another troupe serve (pid {}, 127.0.0.1:{})",
                first.pid(),
                first.port
            )),
            "{err}"
        );
    }
    let r = person
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": id, "message": "still here" }),
        )
        .await;
    assert_eq!(r.structured["response"], "ECHO: still here", "{}", r.text);
}

/// The server token stays out of what outlives the moment: the background server's log is the
/// person's alone, a later start prints where the token is rather than the token, and a URL
/// with the token does not log a browser in.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_stay_out_of_logs_and_urls() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let socket = support::unique_socket("secrets");
    let _tmux = support::TmuxServer(socket.clone());
    let port = support::process::free_port();
    let url = format!("http://127.0.0.1:{port}");
    // `troupe stdio` with no server: it starts one in the background, logging to serve.log.
    let mut stdio = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("stdio")
        .env("TROUPE_URL", &url)
        .env("TROUPE_DATA_DIR", &data_dir)
        .env("TROUPE_TMUX_SOCKET", &socket)
        .env("TROUPE_CLAUDE_BIN", support::clis::claude_bin())
        .env("TROUPE_CODEX_BIN", support::clis::codex_bin())
        .env_remove("TROUPE_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lock = data_dir.join("serve.lock");
    let pid = support::eventually(
        "the background server",
        std::time::Duration::from_secs(30),
        || async {
            let held = std::fs::read_to_string(&lock).ok()?;
            let pid = held
                .strip_prefix("pid ")?
                .split(',')
                .next()?
                .parse::<i32>()
                .ok()?;
            reqwest::get(format!("{url}/health"))
                .await
                .ok()?
                .status()
                .is_success()
                .then_some(pid)
        },
    )
    .await;
    let log = data_dir.join("serve.log");
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "serve.log is {mode:o}");
    let token = std::fs::read_to_string(data_dir.join("token")).unwrap();
    let token = token.trim();
    // A log file gets where the token is, not what it is, even at the first start.
    let first = support::eventually(
        "the way in, in the log",
        std::time::Duration::from_secs(10),
        || async {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains("Clients need the server token")
                .then_some(text)
        },
    )
    .await;
    assert!(
        !first.contains(token),
        "the background log holds the token:\n{first}"
    );
    assert!(first.contains("Bearer $(cat "), "{first}");
    // A browser given the token in a URL is not logged in.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(format!("{url}/login?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let _ = stdio.kill().await;
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    support::eventually(
        "the background server to stop",
        std::time::Duration::from_secs(30),
        || async {
            (!std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")))
            .then_some(())
        },
    )
    .await;
    // The next start says where the token is.
    let mut spec = support::process::ServeSpec::new(dir.path(), &socket, vec![]).await;
    spec.data_dir = data_dir.clone();
    spec.db = data_dir.join("troupe.db").display().to_string();
    let again = support::process::ServeProcess::start(&spec).await;
    // /health answers as soon as the server listens; the way in is printed just after.
    let said = support::eventually(
        "the way in, in the second log",
        std::time::Duration::from_secs(10),
        || async {
            let text = std::fs::read_to_string(&spec.log).ok()?;
            text.contains("Clients need the server token")
                .then_some(text)
        },
    )
    .await;
    assert!(
        !said.contains(token),
        "a later start printed the token:\n{said}"
    );
    assert!(
        said.contains(&format!(
            "Bearer $(cat {})",
            data_dir.join("token").display()
        )),
        "{said}"
    );
    drop(again);
}

/// An instance's helpers get no more than the instance has: its permission mode or a stricter
/// one, and a directory inside its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_child_never_gets_more_than_its_parent() {
    let shared = tempfile::tempdir().unwrap();
    let shared = shared.path().canonicalize().unwrap();
    let allowed = shared.clone();
    let h = Harness::start_with(move |c| c.allow_dirs = vec![allowed.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    std::fs::create_dir(work.join("sub")).unwrap();
    let lead = h
        .spawn(json!({
            "role": "architect", "name": "careful", "model": "haiku",
            "permission_mode": "default", "project_dir": work.display().to_string(),
        }))
        .await;
    let as_lead = as_instance(&h, &lead).await;
    // Nothing asked: the parent's mode, not the server's skip.
    let kid = as_lead
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "model": "haiku" }),
        )
        .await;
    assert!(!kid.is_error, "{}", kid.text);
    assert_eq!(
        kid.structured["instance"]["permission_mode"], "default",
        "{}",
        kid.text
    );
    assert_eq!(
        kid.structured["instance"]["parent_instance_id"],
        lead.as_str()
    );
    // Looser than the parent: refused.
    let r = as_lead
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "model": "haiku", "permission_mode": "skip" }),
        )
        .await;
    assert!(
        r.is_error && r.text.contains("more than its parent"),
        "{}",
        r.text
    );
    // Outside the parent's directory: refused; inside: allowed.
    let r = as_lead
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "model": "haiku", "project_dir": "/" }),
        )
        .await;
    assert!(r.is_error && r.text.contains("outside"), "{}", r.text);
    assert!(r.text.contains(&shared.display().to_string()), "{}", r.text);
    let r = as_lead
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "model": "haiku", "project_dir": work.join("sub").display().to_string() }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    // A directory the person allowed with --allow-dir: allowed too.
    let r = as_lead
        .call_tool(
            "spawn_claude",
            json!({ "role": "tester", "model": "haiku", "project_dir": shared.display().to_string() }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    // The person is bound by none of this.
    let r = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "model": "haiku", "parent_instance_id": lead, "permission_mode": "skip" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
}

/// An instance whose CLI is gone can be terminated as it is, without resuming it first; its
/// dead pane goes with it.
#[tokio::test(flavor = "multi_thread")]
async fn an_exited_instance_is_terminated_where_it_lies() {
    use troupe::db::instances::Instance;
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester", "model": "haiku" })).await;
    let inst = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    let socket = h.config().tmux_socket;
    let out = std::process::Command::new("tmux")
        .args(["-L", &socket, "display-message", "-p", "-t"])
        .arg(format!("={}:", inst.tmux_session))
        .arg("#{pane_pid}")
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    support::eventually(
        "the instance to read exited",
        std::time::Duration::from_secs(10),
        || async {
            let i = Instance::find(h.pool(), &id).await.unwrap().unwrap();
            (i.state == "exited").then_some(())
        },
    )
    .await;
    let r = h
        .call("terminate_instance", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let i = Instance::find(h.pool(), &id).await.unwrap().unwrap();
    assert_eq!(i.state, "terminated");
    assert_eq!(i.state_reason, "terminated while exited");
    assert!(
        !h.tmux_has_session(&inst.tmux_session),
        "the dead pane stays"
    );
}

/// Each dashboard login is a session of its own, kept by the server: logging out ends that
/// browser's and no other, `DELETE /api/logins` ends every one, and a cookie never carries
/// anything derived from the server token.
#[tokio::test(flavor = "multi_thread")]
async fn each_dashboard_login_is_its_own_and_logout_ends_it() {
    let h = Harness::start().await;
    let url = h.server().url();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let log_in = || async {
        let r = browser.get(h.server().login_link()).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
        set.split(';').next().unwrap().to_string()
    };
    let (a, b) = (log_in().await, log_in().await);
    assert_ne!(a, b, "two logins share a cookie");
    let status = |cookie: String| {
        let browser = browser.clone();
        let url = url.clone();
        async move {
            browser
                .get(format!("{url}/api/instances"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(a.clone()).await, 200);
    assert_eq!(status(b.clone()).await, 200);
    let r = browser
        .post(format!("{url}/logout"))
        .header("cookie", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        status(a.clone()).await,
        401,
        "a logged-out cookie still works"
    );
    assert_eq!(
        status(b.clone()).await,
        200,
        "logging out one ended another"
    );
    let page = browser
        .get(format!("{url}/"))
        .header("cookie", &a)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-testid=\"login\""), "{page}");
    // The person lists and ends every login.
    let http = reqwest::Client::new();
    let listed: serde_json::Value = http
        .get(format!("{url}/api/logins"))
        .bearer_auth(h.server().token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["logins"].as_array().unwrap().len(), 1, "{listed}");
    let ended: serde_json::Value = http
        .delete(format!("{url}/api/logins"))
        .bearer_auth(h.server().token())
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ended["ended"], 1, "{ended}");
    assert_eq!(status(b).await, 401);
}

/// The REST API is the person's: every route, whatever it reads or changes, refuses an
/// instance's own token (it acts through its MCP tools, where each call is checked).
#[tokio::test(flavor = "multi_thread")]
async fn every_rest_route_refuses_an_instance() {
    let h = Harness::start().await;
    let id = h
        .spawn(json!({ "role": "tester", "name": "probe", "model": "haiku" }))
        .await;
    let token = support::asking::token_of(&h, &id).await;
    let url = h.server().url();
    let http = reqwest::Client::new();
    for (method, path) in troupe::http::api::ROUTES {
        let path = path
            .replace("{id}", &id)
            .replace("{name}", "team")
            .replace("{request_id}", "perm-1");
        let r = http
            .request(method.parse().unwrap(), format!("{url}{path}"))
            .bearer_auth(&token)
            .header("x-troupe-instance", &id)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("for the person's clients")),
            "{method} {path}: {body}"
        );
    }
    let s = support::asking::status(&h, &id).await;
    assert_eq!(s["state"], "idle", "nothing reached the instance: {s}");
}
