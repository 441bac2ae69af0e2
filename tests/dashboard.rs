//! The dashboard in a real headless Chromium against a real server, with a team of real Claude
//! Code instances answering through the fake model: log in with the one-time link, see a spawn
//! appear without reload, watch a sent message's answer arrive, interrupt a slow reply. The
//! screenshots are kept in target/test-artifacts/.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::Harness;
use support::browser::{Browser, Viewport};

const WAIT: Duration = Duration::from_secs(30);

fn artifacts() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts")
}

async fn post(h: &Harness, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", h.server().url()))
        .bearer_auth(h.server().token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

fn row(id: &str) -> String {
    format!("[data-testid=instance-row][data-instance-id=\"{id}\"]")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_a_team_at_work_live() {
    let h = Harness::start().await;
    let url = h.server().url();

    // A team at work before the page opens: three members, each with an answered message.
    post(
        &h,
        "/api/teams",
        json!({
            "name": "webapp",
            "description": "the signup flow",
            "members": [
                { "name": "architect", "role": "architect", "model": "opus" },
                { "name": "developer", "role": "developer", "model": "sonnet" },
                { "name": "tester", "role": "tester", "model": "haiku" }
            ]
        }),
    )
    .await;
    let team = post(&h, "/api/teams/webapp/start", json!({})).await;
    let members: Vec<String> = team["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["instance_id"].as_str().unwrap().to_string())
        .collect();
    for (id, text) in members.iter().zip([
        "Sketch the signup flow's modules",
        "Write the signup form handler",
        "List the signup edge cases to test",
    ]) {
        let m = post(
            &h,
            &format!("/api/instances/{id}/send"),
            json!({ "message": text }),
        )
        .await;
        assert_eq!(m["state"], "answered", "{m}");
    }

    let browser = Browser::start().await;

    // Not logged in: the page says how to log in, and the API refuses the browser.
    browser.goto(&format!("{url}/")).await;
    browser.find("[data-testid=login]").await;

    // The one-time link logs in and leaves the address bar; the cookie is out of scripts' reach.
    browser.goto(&h.server().login_link()).await;
    assert_eq!(browser.current_url().await, format!("{url}/"));
    let cookie = browser
        .cookie("troupe_session")
        .await
        .expect("a session cookie");
    assert!(cookie.http_only, "{cookie:?}");
    assert_eq!(cookie.same_site.as_deref(), Some("Strict"));
    let seen_by_scripts = browser.execute("return document.cookie", &[]).await;
    assert_eq!(seen_by_scripts, json!(""));
    browser
        .wait_for_text("[data-testid=connection]", "live", WAIT)
        .await;
    for id in &members {
        browser
            .wait_for(&row(id), "the member's row", WAIT, |_| true)
            .await;
    }

    // A spawn through the API appears without reload.
    let spawned = post(
        &h,
        "/api/instances",
        json!({ "role": "reviewer", "name": "reviewer", "model": "haiku" }),
    )
    .await;
    let id = spawned["id"].as_str().unwrap().to_string();
    let state = format!("{} [data-testid=instance-state]", row(&id));
    browser.wait_for_text(&state, "idle", WAIT).await;

    // Its output: a message sent from the page, and its answer arriving.
    browser.find(&row(&id)).await.click().await;
    let input = browser.find("[data-testid=send-input]").await;
    input.send_keys("Review the signup handler").await;
    browser
        .find("[data-testid=send-button]")
        .await
        .click()
        .await;
    browser
        .wait_for_text(
            "[data-testid=output]",
            "ECHO: Review the signup handler",
            WAIT,
        )
        .await;
    browser
        .wait_for_text("[data-testid=message-state]", "answered", WAIT)
        .await;

    // A slow reply, interrupted from the page: the state changes and the turn is marked.
    input.send_keys("please count slowly to 60").await;
    browser
        .find("[data-testid=send-button]")
        .await
        .click()
        .await;
    browser.wait_for_text(&state, "busy", WAIT).await;
    // Claude Code writes an answer down when it is complete, so the reply's start is seen at
    // the model, not in the output.
    h.model
        .wait_for_request(
            |r| support::fake_model::last_user_text(r).ends_with("count slowly to 60"),
            WAIT,
        )
        .await
        .unwrap();
    browser.screenshot(artifacts().join("dashboard.png")).await;
    browser
        .find("[data-testid=interrupt-button]")
        .await
        .click()
        .await;
    browser.wait_for_text(&state, "idle", WAIT).await;
    browser
        .wait_for(
            "[data-testid=output-chunk][data-source=interrupt]",
            "the interrupt marked in the output",
            WAIT,
            |_| true,
        )
        .await;
    support::eventually("the message shown interrupted", WAIT, || async {
        for s in browser.find_all("[data-testid=message-state]").await {
            if s.text().await == "interrupted" {
                return Some(());
            }
        }
        None
    })
    .await;
    browser
        .screenshot(artifacts().join("dashboard-interrupted.png"))
        .await;
    browser.quit().await;

    // And on a phone.
    let phone = Browser::start_with(Viewport::PHONE).await;
    phone.goto(&h.server().login_link()).await;
    phone
        .wait_for_text("[data-testid=connection]", "live", WAIT)
        .await;
    phone
        .wait_for(&row(&id), "the reviewer's row", WAIT, |_| true)
        .await;
    let overflow = phone
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth",
            &[],
        )
        .await;
    assert!(
        overflow.as_i64().unwrap_or(0) <= 0,
        "nothing wider than the phone: {overflow}"
    );
    phone
        .screenshot(artifacts().join("dashboard-phone.png"))
        .await;
    phone.quit().await;
}

/// Whether anything on the page matches `css`, polled until it is as `wanted` (tests only).
async fn wait_until_present(browser: &Browser, css: &str, wanted: bool, what: &str) {
    support::eventually(what, WAIT, || async {
        (browser.try_find(css).await.is_some() == wanted).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permission_request_is_decided_from_the_dashboard() {
    let started = std::time::Instant::now();
    let h = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let spawned = post(
        &h,
        "/api/instances",
        json!({
            "role": "developer", "model": "haiku", "name": "careful",
            "permission_mode": "default", "project_dir": workdir.display().to_string(),
        }),
    )
    .await;
    let id = spawned["id"].as_str().unwrap().to_string();

    let browser = Browser::start().await;
    browser.goto(&h.server().login_link()).await;
    browser
        .wait_for_text("[data-testid=connection]", "live", WAIT)
        .await;
    let state = format!("{} [data-testid=instance-state]", row(&id));
    browser.wait_for_text(&state, "idle", WAIT).await;
    assert!(
        browser
            .find("[data-testid=permissions]")
            .await
            .prop("hidden")
            .await
            == json!(true),
        "the panel stays out of the way while nothing waits"
    );
    browser.find(&row(&id)).await.click().await;

    // Notifications on: the page asks the browser's leave (granted here by a stand-in for the
    // browser's Notification, which headless Chromium cannot show), and registers its service
    // worker for Web Push.
    browser
        .execute(
            "window.__notes = [];
             class Shown {
               constructor(title, opts) { window.__notes.push({ title, body: opts.body, tag: opts.tag }); }
               close() {}
             }
             Shown.permission = 'granted';
             Shown.requestPermission = async () => 'granted';
             window.Notification = Shown;
             document.hasFocus = () => false;
             window.__sw = null;",
            &[],
        )
        .await;
    browser
        .find("[data-testid=notify-toggle]")
        .await
        .click()
        .await;
    // Done once Web Push is on, or the page says why it is not.
    let notify_state = support::eventually("notifications turned on", WAIT, || async {
        let text = browser
            .find("[data-testid=notify-state]")
            .await
            .text()
            .await;
        (text.starts_with("on this device") || text.contains("(no Web Push")).then_some(text)
    })
    .await;
    assert!(
        notify_state.starts_with("while this page is open")
            || notify_state.starts_with("on this device"),
        "{notify_state}"
    );
    let scope = support::eventually("the service worker", WAIT, || async {
        let v = browser
            .execute(
                "navigator.serviceWorker.getRegistration('/').then((r) => { window.__sw = r && r.scope; });
                 return window.__sw;",
                &[],
            )
            .await;
        v.as_str().map(str::to_string)
    })
    .await;
    assert_eq!(
        scope,
        format!("{}/", h.server().url()),
        "registered for the whole page ({notify_state})"
    );

    // Asked: the request shows with its instance and command, the tree says it waits, and
    // nothing runs before a decision.
    let made = workdir.join("allowed.txt");
    let bash = |command: String| {
        format!(
            "CALL_TOOL Bash {}",
            json!({ "command": command, "description": "x" })
        )
    };
    post(
        &h,
        &format!("/api/instances/{id}/send"),
        json!({ "message": bash(format!("touch {}", made.display())), "wait": false }),
    )
    .await;
    let request = format!("[data-testid=permission-row][data-instance-id=\"{id}\"]");
    let asked = browser.wait_for_text(&request, "allowed.txt", WAIT).await;
    let text = asked.text().await;
    // ... and a notification said so, once.
    let shown = browser.execute("return window.__notes;", &[]).await;
    let shown = shown.as_array().cloned().unwrap_or_default();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0]["title"], "careful asks permission");
    assert!(
        shown[0]["body"]
            .as_str()
            .unwrap_or("")
            .starts_with("Bash: touch"),
        "{shown:?}"
    );
    assert!(
        text.contains("careful") && text.contains("Bash: touch"),
        "{text}"
    );
    assert!(
        asked
            .attr("data-request-id")
            .await
            .unwrap()
            .starts_with("perm-"),
        "{text}"
    );
    browser
        .wait_for_text(&state, "waiting_permission", WAIT)
        .await;
    // The input arrives with the list after the event: wait for it too, for the screenshot.
    browser
        .wait_for_text(&format!("{request} .perm-input"), "\"command\"", WAIT)
        .await;
    assert!(!made.exists(), "nothing runs before a decision");
    browser
        .screenshot(artifacts().join("dashboard-permission.png"))
        .await;

    // Allowed: the command runs, the request leaves the list, the instance is idle again.
    asked
        .find("[data-testid=permission-allow]")
        .await
        .click()
        .await;
    support::eventually("the allowed command to run", WAIT, || async {
        made.exists().then_some(())
    })
    .await;
    wait_until_present(&browser, &request, false, "the request to leave the list").await;
    // The panel hides itself a while after a decision, and a hidden element has no rendered
    // text: read what the decided row says, shown or not.
    support::eventually("the decision shown with who made it", WAIT, || async {
        let text = browser
            .execute(
                "const e = document.querySelector('[data-testid=permission-decided]'); \
                 return e ? e.textContent : ''",
                &[],
            )
            .await;
        text.as_str()
            .is_some_and(|t| t.contains("allowed by person"))
            .then_some(())
    })
    .await;
    browser.wait_for_text(&state, "idle", WAIT).await;

    // Denied with a reason typed inline: nothing runs and the model is told why.
    let refused = workdir.join("denied.txt");
    post(
        &h,
        &format!("/api/instances/{id}/send"),
        json!({ "message": bash(format!("touch {}", refused.display())), "wait": false }),
    )
    .await;
    let asked = browser.wait_for_text(&request, "denied.txt", WAIT).await;
    let deny = asked.find("[data-testid=permission-deny]").await;
    deny.click().await; // opens the reason field
    asked
        .find("[data-testid=permission-reason]")
        .await
        .send_keys("not in this directory")
        .await;
    browser
        .screenshot(artifacts().join("dashboard-permission-deny.png"))
        .await;
    deny.click().await;
    wait_until_present(
        &browser,
        &request,
        false,
        "the denied request to leave the list",
    )
    .await;
    browser
        .wait_for_text("[data-testid=output]", "not in this directory", WAIT)
        .await;
    browser.wait_for_text(&state, "idle", WAIT).await;
    assert!(!refused.exists(), "the denied command did not run");

    // The audit log tells it in words.
    browser
        .wait_for_text(
            "[data-testid=audit]",
            "denied by person: not in this directory",
            WAIT,
        )
        .await;
    browser
        .wait_for_text("[data-testid=audit]", "asks: Bash: touch", WAIT)
        .await;
    browser
        .screenshot(artifacts().join("dashboard-permission-decided.png"))
        .await;
    browser.quit().await;
    eprintln!("the permission test took {:?}", started.elapsed());
}

/// An instance's call that needs the person's approval shows on the dashboard with its
/// arguments; Approve lets the waiting call run. Log out ends the browser's session.
#[tokio::test(flavor = "multi_thread")]
async fn an_approval_is_answered_from_the_dashboard_and_log_out_ends_the_session() {
    let h = Harness::start().await;
    let url = h.server().url();
    let spawned = post(
        &h,
        "/api/instances",
        json!({ "role": "architect", "model": "haiku", "name": "lead" }),
    )
    .await;
    let lead = spawned["id"].as_str().unwrap().to_string();
    let r = h
        .call(
            "configure_orchestration",
            json!({ "require_approval": ["spawn_claude"] }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);

    let browser = Browser::start().await;
    browser.goto(&h.server().login_link()).await;
    browser
        .wait_for_text("[data-testid=connection]", "live", WAIT)
        .await;
    let asking = {
        let as_lead = support::asking::as_instance(&h, &lead).await;
        tokio::spawn(async move {
            as_lead
                .call_tool(
                    "spawn_claude",
                    json!({ "role": "tester", "name": "helper", "model": "haiku" }),
                )
                .await
        })
    };
    let asked = format!("[data-testid=approval-row][data-instance-id=\"{lead}\"]");
    let shown = browser.wait_for_text(&asked, "spawn_claude", WAIT).await;
    let text = shown.text().await;
    assert!(text.contains("helper") && text.contains("lead"), "{text}");
    browser
        .screenshot(artifacts().join("dashboard-approval.png"))
        .await;
    shown
        .find("[data-testid=approval-allow]")
        .await
        .click()
        .await;
    let done = tokio::time::timeout(WAIT, asking).await.unwrap().unwrap();
    assert!(!done.is_error, "{}", done.text);
    assert!(done.text.contains("helper-"), "{}", done.text);
    wait_until_present(&browser, &asked, false, "the answered approval to leave").await;

    // Log out: the page asks for a login again, and the cookie no longer opens the API.
    let cookie = browser.cookie("troupe_session").await.expect("a session");
    browser.find("[data-testid=logout]").await.click().await;
    browser
        .wait_for("[data-testid=login]", "the login page", WAIT, |_| true)
        .await;
    let r = reqwest::Client::new()
        .get(format!("{url}/api/instances"))
        .header("cookie", format!("troupe_session={}", cookie.value))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    browser.quit().await;
}
