//! Notices reach the person's receivers: a signed webhook, an ntfy server and a Slack-style
//! webhook, each a local HTTP server in the test. A permission request held by the real Claude
//! Code reaches all three; the ntfy Allow button's link lets the command run, the same link
//! again is refused, and a Deny link reaches the model as a denial. A receiver that fails twice
//! gets the notice once; a burst of failures becomes the first and one digest.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use support::asking::{WAIT, answered, send, status, waiting_request};
use support::browser::{Browser, Viewport};
use support::{Harness, eventually};

const SECRET: &str = "a-webhook-secret-of-the-test";

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Got {
    path: String,
    headers: HeaderMap,
    body: Value,
    /// The status the receiver answered.
    status: u16,
}

#[derive(Default)]
struct Receivers {
    got: Mutex<Vec<Got>>,
    /// Requests to /hook that are answered 500 before one is taken.
    fail_hook: Mutex<u32>,
}

impl Receivers {
    fn at(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path && g.status == 200)
            .cloned()
            .collect()
    }

    fn all_at(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }
}

async fn take(
    rx: Arc<Receivers>,
    path: &str,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let mut status = StatusCode::OK;
    if path == "/hook" {
        // The receiver checks the signature over the exact bytes, as a real one would.
        let sig = headers
            .get("x-troupe-signature")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256="))
            .unwrap_or("")
            .to_string();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
        let tag: Vec<u8> = (0..sig.len() / 2)
            .filter_map(|i| u8::from_str_radix(sig.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        if ring::hmac::verify(&key, &body, &tag).is_err() {
            status = StatusCode::UNAUTHORIZED;
        } else {
            let mut fail = rx.fail_hook.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                status = StatusCode::INTERNAL_SERVER_ERROR;
            }
        }
    }
    rx.got.lock().unwrap().push(Got {
        path: path.to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status: status.as_u16(),
    });
    (status, "taken")
}

/// The receivers on a port of their own: /hook (webhook), /ntfy/ (ntfy's JSON publishing),
/// /slack.
async fn receivers() -> (Arc<Receivers>, SocketAddr) {
    let rx = Arc::new(Receivers::default());
    let app = Router::new()
        .route(
            "/hook",
            post(|State(rx): State<Arc<Receivers>>, h: HeaderMap, b: Bytes| {
                take(rx, "/hook", h, b)
            }),
        )
        .route(
            "/ntfy/",
            post(|State(rx): State<Arc<Receivers>>, h: HeaderMap, b: Bytes| {
                take(rx, "/ntfy/", h, b)
            }),
        )
        .route(
            "/slack",
            post(|State(rx): State<Arc<Receivers>>, h: HeaderMap, b: Bytes| {
                take(rx, "/slack", h, b)
            }),
        )
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (rx, addr)
}

/// The config file's [[notify]] tables for the receivers at `addr`.
fn sinks(addr: SocketAddr, events: &str) -> Vec<troupe::notify::sink::Sink> {
    let text = format!(
        "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n\
         secret = \"{SECRET}\"\nevents = {events}\n\
         [[notify]]\nname = \"ntfy\"\nkind = \"ntfy\"\nurl = \"http://{addr}/ntfy/troupe-test\"\n\
         events = {events}\n\
         [[notify]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"http://{addr}/slack\"\n\
         events = {events}\n"
    );
    let file: troupe::settings::ConfigFile = toml::from_str(&text).unwrap();
    troupe::notify::sink::check(file.notify).unwrap()
}

/// A harness whose server listens on a port chosen first, so its links can name it.
async fn harness(addr: SocketAddr, events: &'static str) -> (Harness, String) {
    let port = support::process::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let link = base.clone();
    let h = Harness::start_with(move |c| {
        c.bind = format!("127.0.0.1:{port}").parse().unwrap();
        c.link_url = Some(link.clone());
        c.notify = sinks(addr, events);
        c.notify_digest = Duration::from_secs(3);
    })
    .await;
    (h, base)
}

fn bash(command: &str) -> String {
    format!(
        "CALL_TOOL Bash {}",
        json!({ "command": command, "description": "make a file" })
    )
}

/// The first notice at `path` that mentions `needle`.
async fn notice_of(rx: &Receivers, path: &str, needle: &str) -> Got {
    eventually(&format!("{path} told of {needle}"), WAIT, || async {
        rx.at(path)
            .into_iter()
            .find(|g| g.body.to_string().contains(needle))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permission_request_reaches_each_sink_and_its_links_decide_it() {
    let (rx, addr) = receivers().await;
    let (h, base) = harness(addr, r#"["permission", "answered"]"#).await;
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().canonicalize().unwrap();
    let kid = h
        .spawn(json!({
            "role": "developer", "name": "careful", "model": "haiku",
            "permission_mode": "default", "project_dir": workdir.display().to_string(),
        }))
        .await;

    let made = workdir.join("allowed.txt");
    let m = send(&h, &kid, &bash(&format!("touch {}", made.display()))).await;
    let request = waiting_request(&h, &kid, "touch").await;

    // The webhook: troupe's JSON, signed (the receiver refuses a bad signature with 401).
    let hook = notice_of(&rx, "/hook", &request).await;
    assert_eq!(hook.body["kind"], "permission");
    assert_eq!(hook.body["request_id"], request.as_str());
    assert_eq!(hook.body["instance"]["id"], kid.as_str());
    assert_eq!(hook.body["instance"]["name"], "careful");
    assert!(
        hook.body["text"]
            .as_str()
            .unwrap()
            .starts_with("Bash: touch")
    );
    assert_eq!(hook.headers["x-troupe-event"], "permission");
    assert!(
        hook.body["links"]["allow"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base}/n/"))
    );
    let leaked = hook.body.to_string();
    assert!(
        !leaked.contains(h.server().token()),
        "no token in a payload"
    );

    // ntfy: title, priority and the buttons; Allow posts to its link.
    let ntfy = notice_of(&rx, "/ntfy/", "careful asks permission").await;
    assert_eq!(ntfy.body["topic"], "troupe-test");
    assert_eq!(ntfy.body["title"], "careful asks permission");
    assert_eq!(ntfy.body["priority"], 4);
    let actions = ntfy.body["actions"].as_array().unwrap();
    assert_eq!(actions[0]["label"], "Allow");
    assert_eq!(actions[0]["method"], "POST");
    assert_eq!(actions[1]["label"], "Deny");
    assert_eq!(actions[2]["action"], "view");

    // Slack: the same notice in its text, links as Slack writes them.
    let slack = eventually("slack told", WAIT, || async {
        rx.at("/slack").into_iter().find(|g| {
            g.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("careful asks permission"))
        })
    })
    .await;
    assert!(
        slack.body["text"].as_str().unwrap().contains("|Allow>"),
        "{}",
        slack.body
    );

    // A GET shows the question and decides nothing: in a phone's browser, and plainly.
    let web = reqwest::Client::new();
    let allow = actions[0]["url"].as_str().unwrap().to_string();
    let phone = Browser::start_with(Viewport::PHONE).await;
    phone.goto(&allow).await;
    phone
        .wait_for_text("h1", "Allow careful's request?", WAIT)
        .await;
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    phone.screenshot(artifacts.join("notify-link.png")).await;
    let page = web.get(&allow).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let text = page.text().await.unwrap();
    assert!(
        text.contains("<form method=\"post\">") && text.contains("Bash: touch"),
        "{text}"
    );
    assert_eq!(status(&h, &kid).await["state"], "waiting_permission");
    assert!(!made.exists());

    // The phone's Allow: the command runs and the turn finishes.
    let r = web.post(&allow).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("careful goes on"));
    answered(&h, &m).await;
    assert!(made.exists(), "the allowed command ran");

    // The same link again, and the webhook's Deny for the same request: refused, with who
    // decided.
    let again = web.post(&allow).send().await.unwrap();
    assert_eq!(again.status(), 409);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("allowed (by notify:ntfy")
    );
    let deny = hook.body["links"]["deny"].as_str().unwrap();
    let late = web.post(deny).send().await.unwrap();
    assert_eq!(late.status(), 409);
    assert!(late.text().await.unwrap().contains("Nothing was changed"));

    // A Deny link from the webhook, opened in a phone's browser: its page shows the request,
    // and its button denies; nothing runs and the model hears it was denied.
    let refused = workdir.join("denied.txt");
    let m2 = send(&h, &kid, &bash(&format!("touch {}", refused.display()))).await;
    let request2 = waiting_request(&h, &kid, "denied.txt").await;
    let hook2 = notice_of(&rx, "/hook", &request2).await;
    let deny = hook2.body["links"]["deny"].as_str().unwrap();
    phone.goto(deny).await;
    phone
        .wait_for_text("h1", "Deny careful's request?", WAIT)
        .await;
    assert!(phone.find("body").await.text().await.contains("denied.txt"));
    phone.find("form button").await.click().await;
    phone.wait_for_text("h1", "Denied", WAIT).await;
    assert!(
        phone
            .find("body")
            .await
            .text()
            .await
            .contains("careful goes on without it")
    );
    phone.quit().await;
    let done = answered(&h, &m2).await;
    assert!(!refused.exists(), "the denied command did not run");
    assert!(
        done["response"]
            .as_str()
            .unwrap_or_default()
            .contains("denied this from a notification"),
        "the model was told: {done}"
    );

    // Each decision is audited as made through its sink.
    let decided = troupe::db::audit::of_kind(h.pool(), "permission.decided")
        .await
        .unwrap();
    let by: Vec<String> = decided
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.detail).unwrap()["by"].to_string())
        .collect();
    assert_eq!(by, ["\"notify:ntfy\"", "\"notify:hook\""]);

    // A message nobody waits for: its answer is a notice of its own.
    let m3 = send(&h, &kid, "hello reference one").await;
    let answered_notice = eventually("the answer told", WAIT, || async {
        rx.at("/hook").into_iter().find(|g| {
            g.body["kind"] == "answered" && g.body.to_string().contains("hello reference")
        })
    })
    .await;
    assert!(
        answered_notice.body["title"]
            .as_str()
            .unwrap()
            .starts_with("careful answered")
    );
    let _ = m3;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_receiver_gets_the_notice_once_and_a_burst_becomes_a_digest() {
    let (rx, addr) = receivers().await;
    *rx.fail_hook.lock().unwrap() = 2;
    let port = support::process::free_port();
    let h = Harness::start_with(move |c| {
        c.bind = format!("127.0.0.1:{port}").parse().unwrap();
        c.notify = sinks(addr, r#"["failed"]"#);
        c.notify_digest = Duration::from_secs(3);
        // A CLI that exits at once: each instance fails as it starts.
        c.claude_bin = "/bin/false".into();
        c.startup_timeout = Duration::from_secs(20);
        c.env_controls.max_instances = Some(40);
    })
    .await;

    let spawns = (0..20).map(|i| {
        h.call(
            "spawn_claude",
            json!({ "name": format!("doomed-{i}"), "role": "developer", "model": "haiku" }),
        )
    });
    for r in futures::future::join_all(spawns).await {
        assert!(r.is_error, "the instance cannot start: {}", r.text);
    }

    // The webhook failed twice, then took the first notice: one notice, three attempts of
    // the same delivery.
    let id = eventually("a notice at the webhook", WAIT, || async {
        Some(rx.all_at("/hook").first()?.headers["x-troupe-delivery"].clone())
    })
    .await;
    let first = eventually("the first notice taken", WAIT, || async {
        rx.at("/hook")
            .into_iter()
            .find(|g| g.headers["x-troupe-delivery"] == id)
    })
    .await;
    assert_eq!(first.body["kind"], "failed");
    // Every attempt of that delivery carries its id and the same body.
    let attempts: Vec<Got> = rx
        .all_at("/hook")
        .into_iter()
        .filter(|a| a.headers["x-troupe-delivery"] == id)
        .collect();
    let statuses: Vec<u16> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert!(attempts.iter().all(|a| a.body == first.body));

    // The other nineteen: one digest, at every receiver.
    let digest = eventually("the digest", WAIT, || async {
        rx.at("/ntfy/").into_iter().find(|g| {
            g.body["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("19 instances"))
        })
    })
    .await;
    assert!(digest.body["message"].as_str().unwrap().contains("doomed-"));
    let hook_digest = eventually("the webhook's digest", WAIT, || async {
        rx.at("/hook")
            .into_iter()
            .find(|g| g.body["items"].is_array())
    })
    .await;
    assert_eq!(hook_digest.body["items"].as_array().unwrap().len(), 19);
    let told: Vec<String> = rx
        .at("/ntfy/")
        .iter()
        .map(|g| format!("{} {}", g.body["title"], g.body["message"]))
        .collect();
    assert_eq!(told.len(), 2, "the first and one digest: {told:#?}");
    assert!(
        hook_digest.body["links"].is_null() && hook_digest.body["links_note"].is_string(),
        "without --public-url, no links, and the notice says so: {}",
        hook_digest.body
    );

    // Recorded: every delivery delivered, the first after three attempts.
    let deliveries = eventually("every delivery done", WAIT, || async {
        let d = troupe::db::notify::Delivery::recent(h.pool(), 50)
            .await
            .unwrap();
        d.iter().all(|d| d.state != "pending").then_some(d)
    })
    .await;
    assert_eq!(deliveries.len(), 6, "two notices to three sinks");
    assert!(
        deliveries.iter().all(|d| d.state == "delivered"),
        "{deliveries:?}"
    );
    let hook_first = deliveries
        .iter()
        .find(|d| d.sink == "hook" && d.attempts == 3)
        .expect("the webhook's first took three attempts");
    assert_eq!(hook_first.last_status, Some(200));

    // `troupe notify` shows the sinks without their secret; `troupe notify test` sends one.
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .args(args)
            .env("TROUPE_URL", h.server().url())
            .env("TROUPE_TOKEN", h.server().token())
            .output()
            .unwrap()
    };
    let out = run(&["notify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("hook") && text.contains("webhook") && text.contains("failed"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("no links"), "{text}");
    let out = run(&["notify", "test", "slack"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.trim(), "slack: delivered (HTTP 200): taken");
    assert!(rx.at("/slack").iter().any(|g| {
        g.body["text"]
            .as_str()
            .unwrap_or("")
            .contains("troupe test notice")
    }));
    let kept = troupe::db::notify::Delivery::recent(h.pool(), 1)
        .await
        .unwrap();
    assert_eq!(
        (
            kept[0].kind.as_str(),
            kept[0].sink.as_str(),
            kept[0].state.as_str()
        ),
        ("test", "slack", "delivered"),
        "a test notice is kept as a delivery too"
    );
    let out = run(&["notify", "test", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no sink is named \"nope\""), "{err}");
}

/// What a browser does with a push: the body decrypted with its own keys (RFC 8291).
fn decrypt_push(body: &[u8], ua: &p256::SecretKey, auth: &[u8]) -> Vec<u8> {
    use aes_gcm::aead::{Aead, KeyInit};
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let (salt, rest) = body.split_at(16);
    let idlen = rest[4] as usize;
    assert_eq!(idlen, 65, "the sender's key is in the header");
    let as_public = &rest[5..5 + idlen];
    let sealed = &rest[5 + idlen..];
    let shared = p256::ecdh::diffie_hellman(
        ua.to_nonzero_scalar(),
        p256::PublicKey::from_sec1_bytes(as_public)
            .unwrap()
            .as_affine(),
    );
    let ua_public = ua.public_key().to_encoded_point(false);
    let mut info = b"WebPush: info\0".to_vec();
    info.extend_from_slice(ua_public.as_bytes());
    info.extend_from_slice(as_public);
    let mut ikm = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(auth), shared.raw_secret_bytes())
        .expand(&info, &mut ikm)
        .unwrap();
    let prk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .unwrap();
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .unwrap();
    let mut plain = aes_gcm::Aes128Gcm::new_from_slice(&cek)
        .unwrap()
        .decrypt(&aes_gcm::Nonce::from(nonce), sealed)
        .expect("the body opens with the browser's keys");
    assert_eq!(plain.pop(), Some(2), "one record, the last");
    plain
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_that_added_the_dashboard_gets_notices_encrypted_for_it_alone() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // The push service: takes /push/live, says /push/gone is no more.
    let pushes: Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>> = Arc::default();
    let taken = pushes.clone();
    let app = Router::new().route(
        "/push/{which}",
        post(
            move |axum::extract::Path(which): axum::extract::Path<String>,
                  h: HeaderMap,
                  b: Bytes| {
                let taken = taken.clone();
                async move {
                    taken.lock().unwrap().push((which.clone(), h, b));
                    if which == "gone" {
                        StatusCode::GONE
                    } else {
                        StatusCode::CREATED
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let h = Harness::start_with(|c| {
        c.claude_bin = "/bin/false".into();
        c.startup_timeout = Duration::from_secs(20);
    })
    .await;
    let web = reqwest::Client::new();
    let api = |path: &str| format!("{}{path}", h.server().url());
    let token = h.server().token().to_string();

    // Two browsers subscribe, each with keys of its own.
    let ua = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let auth: [u8; 16] = rand::random();
    let ua_public = {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        b64.encode(ua.public_key().to_encoded_point(false).as_bytes())
    };
    for which in ["live", "gone"] {
        let r = web
            .post(api("/api/push/subscriptions"))
            .bearer_auth(&token)
            .json(&json!({
                "endpoint": format!("http://{service}/push/{which}"),
                "expirationTime": null,
                "keys": { "p256dh": ua_public, "auth": b64.encode(auth) },
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let bad = web
        .post(api("/api/push/subscriptions"))
        .bearer_auth(&token)
        .json(&json!({ "endpoint": "http://push.example/x", "keys": { "p256dh": ua_public, "auth": b64.encode(auth) } }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("https"));
    let push_info = || async {
        web.get(api("/api/push"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let info = push_info().await;
    assert_eq!(info["browsers"], 2);
    let vapid = info["public_key"].as_str().unwrap().to_string();

    // An instance fails: each browser's push service gets the notice.
    let r = h
        .call(
            "spawn_claude",
            json!({ "name": "doomed", "role": "developer", "model": "haiku" }),
        )
        .await;
    assert!(r.is_error, "{}", r.text);
    let (_, headers, body) = eventually("the push", WAIT, || async {
        pushes
            .lock()
            .unwrap()
            .iter()
            .find(|(w, _, _)| w == "live")
            .cloned()
    })
    .await;
    assert_eq!(headers["content-encoding"], "aes128gcm");
    assert_eq!(headers["ttl"], "3600");
    assert_eq!(headers["urgency"], "high");

    // Signed with the key the dashboard subscribes with, for this push service alone.
    let authz = headers["authorization"].to_str().unwrap();
    let (jwt, k) = authz
        .strip_prefix("vapid t=")
        .and_then(|r| r.split_once(", k="))
        .unwrap();
    assert_eq!(k, vapid);
    let parts: Vec<&str> = jwt.split('.').collect();
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["aud"], format!("http://{service}"));
    {
        use p256::ecdsa::signature::Verifier;
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&b64.decode(k).unwrap()).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&b64.decode(parts[2]).unwrap()).unwrap();
        key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("the VAPID signature verifies");
    }

    // Only the browser's keys open it, and inside is what the service worker shows.
    let plain = decrypt_push(&body, &ua, &auth);
    let shown: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(shown["title"], "doomed failed");
    assert_eq!(shown["kind"], "failed");
    assert!(
        shown["body"].as_str().unwrap().contains("exited"),
        "{shown}"
    );
    assert!(
        !String::from_utf8_lossy(&body).contains("doomed"),
        "the body is encrypted"
    );

    // The push service said the other browser is gone: it is forgotten.
    eventually("the gone browser forgotten", WAIT, || async {
        (push_info().await["browsers"] == 1).then_some(())
    })
    .await;

    // `troupe notify test push` reaches the browser that is left.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(["notify", "test", "push"])
        .env("TROUPE_URL", h.server().url())
        .env("TROUPE_TOKEN", &token)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("push: delivered (HTTP 201)"), "{text}");
    let last = pushes.lock().unwrap().last().cloned().unwrap();
    let shown: Value = serde_json::from_slice(&decrypt_push(&last.2, &ua, &auth)).unwrap();
    assert_eq!(shown["title"], "troupe test notice");
}

/// An instance's call that waits for the person's approval: its notice's Allow link lets the
/// call go on, and the approval is recorded as answered through the sink.
#[tokio::test(flavor = "multi_thread")]
async fn an_approval_is_answered_from_its_link() {
    let (rx, addr) = receivers().await;
    let (h, _) = harness(addr, r#"["approval"]"#).await;
    let lead = support::asking::lead_under_approval(&h).await;

    // The lead's own spawn waits for the person; the notice carries the links.
    let as_lead = support::asking::as_instance(&h, &lead).await;
    let call = tokio::spawn(async move {
        as_lead
            .call_tool(
                "spawn_claude",
                json!({ "role": "tester", "name": "helper" }),
            )
            .await
    });
    let hook = eventually("the approval told", WAIT, || async {
        rx.at("/hook")
            .into_iter()
            .find(|g| g.body["kind"] == "approval")
    })
    .await;
    assert_eq!(hook.body["title"], "lead waits for your approval");
    let approval = hook.body["approval_id"].as_str().unwrap().to_string();
    let allow = hook.body["links"]["allow"].as_str().unwrap();
    let r = reqwest::Client::new().post(allow).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let done = call.await.unwrap();
    assert!(!done.is_error, "the call went on: {}", done.text);
    let r = h
        .call("get_approval", json!({ "approval_id": approval }))
        .await;
    let a = &r.structured["approvals"][0];
    assert_eq!(a["decided_by"], "notify:hook", "{}", r.text);
}

/// A team whose members all went idle after work, and a crossed cost limit, reach the sinks.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_team_and_a_crossed_budget_reach_the_sinks() {
    let (rx, addr) = receivers().await;
    let (h, _) = harness(addr, r#"["team_idle", "budget"]"#).await;
    let r = h
        .call(
            "create_team",
            json!({ "name": "crew", "members": [
                { "role": "tester", "name": "one", "model": "haiku" },
                { "role": "tester", "name": "two", "model": "haiku" }
            ]}),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = h.call("start_team", json!({ "name": "crew" })).await;
    assert!(!r.is_error, "{}", r.text);
    let members: Vec<String> = troupe::db::instances::Instance::list(h.pool(), false)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(members.len(), 2);
    // Idle from the start is not "after work": nothing is said until one has worked.
    for id in &members {
        let s = status(&h, id).await;
        assert_eq!(s["state"], "idle", "{s}");
    }
    assert!(rx.at("/hook").is_empty());
    // A limit the first model call crosses: nothing is spent yet, so the message goes.
    let r = h
        .call(
            "configure_orchestration",
            json!({ "max_session_cost": 0.000001 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": members[0], "message": "hello" }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let idle = notice_of(&rx, "/hook", "team_idle").await;
    assert_eq!(idle.body["title"], "Team crew is idle");
    assert!(
        idle.body["text"].as_str().unwrap().contains("one, two"),
        "{}",
        idle.body
    );
    let budget = notice_of(&rx, "/hook", "\"budget\"").await;
    assert_eq!(budget.body["title"], "A cost limit was crossed");
    assert!(
        budget.body["text"]
            .as_str()
            .unwrap()
            .contains("max_session_cost"),
        "{}",
        budget.body
    );
}
