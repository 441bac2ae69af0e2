//! Several hosts on one PostgreSQL registry: each registers, sees the others, and keeps to its
//! own instances. Needs TROUPE_TEST_PG (`.ci/run` sets it):
//! `TROUPE_TEST_PG=postgres://… cargo test --test fleet -- --ignored`.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Harness, McpClient, TmuxServer, unique_socket};

/// A second host on the harness's registry: its own data directory and tmux server.
struct Other {
    server: troupe::Server,
    config: troupe::Config,
    _tmux: TmuxServer,
}

fn other_config(h: &Harness, name: &str, socket: &str) -> troupe::Config {
    let mut config = h.config();
    config.host = name.into();
    config.data_dir = h.dir.path().join(format!("{socket}-data"));
    config.db_path = config.data_dir.join("troupe.db");
    config.tmux_socket = socket.into();
    config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // A host joins with the fleet's token, as a person starts one.
    config.token = h.server().token().to_string();
    config
}

async fn other(h: &Harness, name: &str) -> Other {
    other_with(h, name, |_| {}).await
}

async fn other_with(h: &Harness, name: &str, tune: impl Fn(&mut troupe::Config)) -> Other {
    let socket = unique_socket(name);
    let mut config = other_config(h, name, &socket);
    tune(&mut config);
    let server = troupe::Server::start(config.clone())
        .await
        .expect("the other host starts");
    Other {
        server,
        config,
        _tmux: TmuxServer(socket),
    }
}

/// A webhook receiver on a port of its own, and every body it took.
async fn receiver() -> (std::sync::Arc<std::sync::Mutex<Vec<Value>>>, String) {
    let got: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body.0);
                "taken"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (got, url)
}

async fn hosts(server: &troupe::Server) -> Vec<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{}/api/hosts", server.url()))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["hosts"].as_array().cloned().unwrap_or_default()
}

fn named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {list:?}"))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn hosts_see_each_other_and_keep_to_their_own_instances() {
    let mut h = Harness::start_with(|c| c.host = "alpha".into()).await;
    assert!(h.db_url.is_some(), "TROUPE_TEST_PG names a server");
    let b = other(&h, "beta").await;

    for (server, me) in [(h.server(), "alpha"), (&b.server, "beta")] {
        let list = hosts(server).await;
        assert_eq!(list.len(), 2, "{list:?}");
        for name in ["alpha", "beta"] {
            let host = named(&list, name);
            assert_eq!(host["state"], "up", "{host}");
            assert_eq!(host["this"], name == me, "{host}");
        }
    }

    // Each spawn belongs to the host that made it.
    let on_a = h.spawn(json!({ "role": "tester", "name": "on-a" })).await;
    let b_mcp = McpClient::user(&b.server).await;
    let r = b_mcp
        .call_tool("spawn_claude", json!({ "role": "tester", "name": "on-b" }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let on_b = r.structured["instance_id"].as_str().unwrap().to_string();
    assert_eq!(r.structured["instance"]["host"], "beta", "{}", r.structured);
    let list = h.call("list_instances", json!({})).await;
    let host_of = |id: &str| {
        list.structured["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["instance_id"] == id)
            .unwrap_or_else(|| panic!("{id} listed on alpha"))["host"]
            .clone()
    };
    assert_eq!(host_of(&on_a), "alpha");
    assert_eq!(host_of(&on_b), "beta");
    let counted = hosts(h.server()).await;
    assert_eq!(named(&counted, "beta")["instances"], 1);

    // A second server cannot take a name a running host holds.
    let socket = unique_socket("beta2");
    let _tmux = TmuxServer(socket.clone());
    let refused = troupe::Server::start(other_config(&h, "beta", &socket))
        .await
        .err()
        .expect("a second beta is refused")
        .to_string();
    assert!(
        refused.contains("another troupe serve is host \"beta\""),
        "{refused}"
    );

    // Every host answers the person with the fleet's token: one with another is refused.
    let socket = unique_socket("delta");
    let _delta_tmux = TmuxServer(socket.clone());
    let mut config = other_config(&h, "delta", &socket);
    config.token = "not-the-fleets-token-0123456789".into();
    let refused = troupe::Server::start(config)
        .await
        .err()
        .expect("a host with another token is refused")
        .to_string();
    assert!(
        refused.contains("alpha, beta serve this registry with another server token"),
        "{refused}"
    );

    // beta stops cleanly: alpha sees it stopped, and a restart of alpha leaves beta's
    // instance alone (no session for it on alpha's tmux server).
    let Other {
        server,
        config,
        _tmux: b_tmux,
    } = b;
    server.stop().await;
    assert_eq!(named(&hosts(h.server()).await, "beta")["state"], "stopped");
    h.stop_server().await;
    h.start_server().await;
    let inst = troupe::db::instances::Instance::find(h.pool(), &on_b)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.host, "beta");
    assert_eq!(inst.state.as_str(), "idle", "{inst:?}");
    assert!(!h.tmux_has_session(&inst.tmux_session));

    // beta comes back and takes its instance up again: it answers through beta.
    let server = troupe::Server::start(config).await.expect("beta restarts");
    let b_mcp = McpClient::user(&server).await;
    let r = b_mcp
        .call_tool(
            "send_to_instance",
            json!({ "instance_id": on_b, "message": "still yours" }),
        )
        .await;
    assert_eq!(r.structured["response"], "ECHO: still yours", "{}", r.text);
    assert_eq!(named(&hosts(h.server()).await, "beta")["state"], "up");

    // A host silent past the limit is lost to the others.
    let pool = sqlx::PgPool::connect(h.db_url.as_ref().unwrap())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO hosts (name, url, version, state, machine, pid, started_at, heartbeat_at)
         VALUES ('gamma', 'http://10.0.0.9:8001', '0.1.0', 'up', 'elsewhere', 1,
                 '2026-12-06T12:00:00.000Z', '2026-12-06T12:00:00.000Z')",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(named(&hosts(h.server()).await, "gamma")["state"], "lost");

    // `troupe hosts` shows the same.
    let table = troupe(&h, &["hosts"]);
    assert!(table.contains("alpha (this)"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("gamma") && l.contains("lost")),
        "{table}"
    );

    // beta will not come back: forgetting it fails its instance, with that reason.
    server.stop().await;
    drop(b_tmux);
    let said = troupe(&h, &["host", "forget", "beta"]);
    assert!(
        said.contains(&format!("its instances failed: {on_b}")),
        "{said}"
    );
    let inst = troupe::db::instances::Instance::find(h.pool(), &on_b)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.state.as_str(), "failed");
    assert!(
        inst.state_reason.contains("host beta was forgotten"),
        "{inst:?}"
    );
    assert!(hosts(h.server()).await.iter().all(|x| x["name"] != "beta"));
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a PostgreSQL server: set TROUPE_TEST_PG and pass --ignored"]
async fn any_host_acts_on_another_hosts_instance_through_its_owner() {
    // The person hears of a lost host through a webhook.
    let (told, url) = receiver().await;
    let table = format!(
        "[[notify]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{url}\"\n\
         secret = \"a-fleet-test-secret\"\nevents = [\"host_lost\"]\n"
    );
    let file: troupe::settings::ConfigFile = toml::from_str(&table).unwrap();
    let sinks = troupe::notify::sink::check(file.notify).unwrap();
    let h = Harness::start_with(move |c| {
        c.host = "alpha".into();
        c.notify = sinks.clone();
    })
    .await;
    let b = other_with(&h, "beta", |c| c.labels = vec!["gpu".into()]).await;
    let b_mcp = McpClient::user(&b.server).await;

    // Spawned through alpha onto the host labelled gpu: beta runs it.
    let r = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "name": "far", "host": "label:gpu" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["instance"]["host"], "beta", "{}", r.structured);
    let far = r.structured["instance_id"].as_str().unwrap().to_string();
    let on_beta = |session: &str| {
        std::process::Command::new("tmux")
            .args(["-L", &b.config.tmux_socket, "has-session", "-t"])
            .arg(format!("={session}"))
            .status()
            .unwrap()
            .success()
    };
    let inst = troupe::db::instances::Instance::find(h.pool(), &far)
        .await
        .unwrap()
        .unwrap();
    assert!(on_beta(&inst.tmux_session), "beta's tmux runs {far}");
    assert!(!h.tmux_has_session(&inst.tmux_session));

    // alpha's dashboard shows the fleet's hosts and which one runs each instance.
    let browser = support::browser::Browser::start().await;
    browser.goto(&h.server().login_link()).await;
    browser
        .wait_for_text("[data-testid=hosts]", "beta up", Duration::from_secs(30))
        .await;
    browser
        .wait_for_text(
            &format!("[data-testid=instance-row][data-instance-id=\"{far}\"] .model"),
            "@ beta",
            Duration::from_secs(30),
        )
        .await;
    browser.quit().await;

    // A child goes to its parent's host unless told otherwise.
    let r = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "name": "kid", "parent_instance_id": far }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["instance"]["host"], "beta", "{}", r.structured);
    // A team's member pinned to the gpu label runs on beta; the other where the call came in.
    let r = h
        .call(
            "create_team",
            json!({ "name": "split", "members": [
                { "role": "tester", "name": "near" },
                { "role": "tester", "name": "gpu-side", "host": "label:gpu" },
            ] }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = h.call("start_team", json!({ "name": "split" })).await;
    assert!(!r.is_error, "{}", r.text);
    let team = h.call("list_teams", json!({})).await;
    let members = team.structured["teams"][0]["members"]
        .as_array()
        .unwrap()
        .clone();
    for (seat, host) in [("near", "alpha"), ("gpu-side", "beta")] {
        let m = members.iter().find(|m| m["name"] == seat).unwrap();
        let inst =
            troupe::db::instances::Instance::find(h.pool(), m["instance_id"].as_str().unwrap())
                .await
                .unwrap()
                .unwrap();
        assert_eq!(inst.host, host, "{seat}: {m}");
    }
    let r = h
        .call(
            "spawn_claude",
            json!({ "role": "tester", "host": "label:arm" }),
        )
        .await;
    assert!(r.is_error, "{}", r.text);
    assert_eq!(r.text, "no host has the label \"arm\"; the labels are gpu");
    let r = h
        .call("spawn_claude", json!({ "role": "tester", "host": "zeta" }))
        .await;
    assert!(
        r.is_error
            && r.text
                .contains("no host \"zeta\" in this fleet; the hosts are alpha, beta"),
        "{}",
        r.text
    );

    // Sent through alpha, typed by beta, answered to alpha's caller.
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": far, "message": "hello from alpha" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(
        r.structured["response"], "ECHO: hello from alpha",
        "{}",
        r.text
    );

    // Its files are on beta's machine; alpha reads them through beta.
    let inst = troupe::db::instances::Instance::find(h.pool(), &far)
        .await
        .unwrap()
        .unwrap();
    std::fs::write(
        std::path::Path::new(&inst.workdir).join("far.txt"),
        "on beta\n",
    )
    .unwrap();
    let r = h
        .call(
            "retrieve_instance_file",
            json!({ "instance_id": far, "path": "far.txt" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["content"], "on beta\n", "{}", r.structured);
    let r = h
        .call(
            "retrieve_instance_file",
            json!({ "instance_id": far, "path": "../../etc/passwd" }),
        )
        .await;
    assert!(
        r.is_error && r.text.contains("leaves the instance's directory"),
        "beta's refusal comes back as beta said it: {}",
        r.text
    );

    // An interrupt through alpha stops beta's turn, and the message says so.
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": far, "message": "please count slowly to 40", "wait_for_response": false }),
        )
        .await;
    let message_id = r.structured["message_id"].as_str().unwrap().to_string();
    h.model
        .wait_for_request(
            |r| support::fake_model::last_user_text(r).ends_with("count slowly to 40"),
            std::time::Duration::from_secs(30),
        )
        .await
        .expect("the model got the question");
    let r = h
        .call("interrupt_instance", json!({ "instance_id": far }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["outcome"], "confirmed", "{}", r.structured);
    assert_eq!(r.structured["message_id"], message_id.as_str());
    let m = troupe::db::messages::Message::find(h.pool(), &message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.state, "interrupted");

    // Terminated through alpha: beta ends its tmux session, and beta's log of acts names it.
    let r = h
        .call("terminate_instance", json!({ "instance_id": far }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let inst = troupe::db::instances::Instance::find(h.pool(), &far)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.state.as_str(), "terminated");
    assert!(
        !on_beta(&inst.tmux_session),
        "beta's session for {far} is gone"
    );
    let acts: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM audit_events WHERE instance_id = $1 ORDER BY id")
            .bind(&far)
            .fetch_all(
                &sqlx::PgPool::connect(h.db_url.as_ref().unwrap())
                    .await
                    .unwrap(),
            )
            .await
            .unwrap();
    for kind in ["instance.interrupt", "instance.terminate"] {
        assert!(acts.iter().any(|k| k == kind), "{kind} in {acts:?}");
    }

    let r = b_mcp
        .call_tool("spawn_claude", json!({ "role": "tester", "name": "left" }))
        .await;
    let left = r.structured["instance_id"].as_str().unwrap().to_string();

    // Drained with --suspend from alpha: beta suspends what it runs; a message through alpha
    // brings it back (resumed on beta), and undrain takes spawns again.
    let said = troupe(&h, &["host", "drain", "beta", "--suspend"]);
    let suspended = said
        .lines()
        .next()
        .and_then(|l| l.split_once("suspended "))
        .map(|(_, ids)| ids.split(", ").collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(suspended.contains(&left.as_str()), "{said}");
    let inst = troupe::db::instances::Instance::find(h.pool(), &left)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inst.state.as_str(), "suspended", "{inst:?}");
    assert!(!on_beta(&inst.tmux_session));
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": left, "message": "wake up" }),
        )
        .await;
    assert_eq!(r.structured["response"], "ECHO: wake up", "{}", r.text);
    assert!(on_beta(&inst.tmux_session), "resumed on beta");
    let said = troupe(&h, &["host", "undrain", "beta"]);
    assert!(said.contains("beta takes new instances again"), "{said}");

    // With beta stopped, alpha says so at once instead of waiting.
    b.server.stop().await;
    let started = std::time::Instant::now();
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": left, "message": "anyone there?" }),
        )
        .await;
    assert!(r.is_error, "{}", r.text);
    assert!(
        r.text.contains("runs on host beta, which is stopped"),
        "{}",
        r.text
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let pg = sqlx::PgPool::connect(h.db_url.as_ref().unwrap())
        .await
        .unwrap();
    let calls: i64 = sqlx::query_scalar("SELECT count(*) FROM host_calls")
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(calls, 0, "no act is left in flight");

    // beta as if it had crashed: its row says up, its heartbeat is old. alpha marks what it
    // ran host_lost (not failed), and a send says which host and since when.
    sqlx::query(
        "UPDATE hosts SET state = 'up', heartbeat_at = '2026-12-06T12:00:00.000Z'
         WHERE name = 'beta'",
    )
    .execute(&pg)
    .await
    .unwrap();
    let state_of = |id: String| {
        let pool = h.pool().clone();
        async move {
            troupe::db::instances::Instance::find(&pool, &id)
                .await
                .unwrap()
                .unwrap()
        }
    };
    support::eventually(
        "beta's instance is host_lost",
        Duration::from_secs(10),
        || async {
            let inst = state_of(left.clone()).await;
            (inst.state.as_str() == "host_lost").then_some(inst)
        },
    )
    .await;
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": left, "message": "anyone there?" }),
        )
        .await;
    assert!(
        r.is_error && r.text.contains("silent since 2026-12-06T12:00:00.000Z"),
        "{}",
        r.text
    );
    let listed = h.call("list_instances", json!({})).await;
    assert!(listed.text.contains("host_lost"), "{}", listed.text);
    let notice = support::eventually("the person told", Duration::from_secs(10), || async {
        told.lock()
            .unwrap()
            .iter()
            .find(|b| b["kind"] == "host_lost")
            .cloned()
    })
    .await;
    assert_eq!(notice["title"], "Host beta is lost");
    assert!(
        notice["text"].as_str().unwrap().contains("silent since"),
        "{notice}"
    );

    // beta is back: it takes its instance up again, and alpha's send reaches it.
    let back = troupe::Server::start(b.config.clone())
        .await
        .expect("beta comes back");
    let inst = support::eventually(
        "beta's instance is idle again",
        Duration::from_secs(30),
        || async {
            let inst = state_of(left.clone()).await;
            (inst.state.as_str() == "idle").then_some(inst)
        },
    )
    .await;
    assert!(on_beta(&inst.tmux_session), "the same tmux session");
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": left, "message": "welcome back" }),
        )
        .await;
    assert_eq!(r.structured["response"], "ECHO: welcome back", "{}", r.text);

    // terminate_all through alpha ends the fleet's instances, beta's through beta.
    let r = h.call("terminate_all", json!({})).await;
    assert!(!r.is_error, "{}", r.text);
    let ended = r.structured["terminated"].as_array().unwrap().clone();
    assert!(ended.iter().any(|i| i == left.as_str()), "{ended:?}");
    assert_eq!(state_of(left.clone()).await.state.as_str(), "terminated");
    assert!(!on_beta(&inst.tmux_session), "beta ended its session");
    back.stop().await;
}

/// Runs the troupe command line against the harness's server; what it printed.
fn troupe(h: &Harness, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .args(["--url", &h.server().url(), "--token", h.server().token()])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
