//! The WebDriver client by itself (`support::browser`): real headless Chromium against a
//! small page served here, on port 0. No troupe server is started.
//!
//! The page's behaviour lives in an external script (`/app.js`), as the dashboard's does: a
//! button that changes a span's text a little later, an input echoed into another span, and
//! `data-ready` on the body once the script has wired everything up.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use support::browser::{Browser, Viewport};

/// Generous: only a failing test waits this long.
const WAIT: Duration = Duration::from_secs(10);
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

const PAGE: &str = r#"<!doctype html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width">
<title>browser selftest</title>
<script src="/app.js" defer></script>
</head>
<body>
<h1>Browser self-test</h1>
<p><button id="go" type="button">Go</button> <span id="out">not clicked</span></p>
<p><input id="name" autocomplete="off"> <span id="echo"></span></p>
<ul id="items"><li>one</li><li>two</li><li>three</li></ul>
</body>
</html>
"#;

const APP_JS: &str = r#"
let clicks = 0;
document.getElementById('go').addEventListener('click', () => {
  // Later than the click command's answer, so the test has to wait for it.
  setTimeout(() => {
    clicks += 1;
    document.getElementById('out').textContent = 'clicked ' + clicks;
  }, 150);
});
document.getElementById('name').addEventListener('input', (e) => {
  document.getElementById('echo').textContent = 'hello ' + e.target.value;
});
document.body.dataset.ready = '1';
"#;

async fn index() -> impl IntoResponse {
    // Two headers of the same name: a HeaderMap appends.
    let mut headers = axum::http::HeaderMap::new();
    headers.append(
        header::SET_COOKIE,
        "selftest_session=s3cr3t; Path=/; HttpOnly; SameSite=Strict"
            .parse()
            .unwrap(),
    );
    headers.append(
        header::SET_COOKIE,
        "selftest_theme=dark; Path=/; SameSite=Lax".parse().unwrap(),
    );
    headers.insert(
        header::CONTENT_TYPE,
        "text/html; charset=utf-8".parse().unwrap(),
    );
    (headers, PAGE)
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
}

/// The page server on 127.0.0.1:0; it lives as long as the test's runtime.
async fn serve_page() -> SocketAddr {
    let app = Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[tokio::test(flavor = "multi_thread")]
async fn drives_a_page_with_an_external_script() {
    let addr = serve_page().await;
    let browser = Browser::start().await;
    let url = format!("http://{addr}/");
    browser.goto(&url).await;
    assert_eq!(browser.current_url().await, url);
    assert_eq!(browser.title().await, "browser selftest");
    // The script is loaded from its own route; it marks the page ready when wired up.
    browser
        .wait_for(
            "body[data-ready='1']",
            "to be marked ready by /app.js",
            WAIT,
            |_| true,
        )
        .await;

    let out = browser.find("#out").await;
    assert_eq!(out.text().await, "not clicked");
    browser.find("#go").await.click().await;
    browser.wait_for_text("#out", "clicked 1", WAIT).await;
    assert_eq!(out.text().await, "clicked 1");

    let input = browser.find("#name").await;
    input.send_keys("Ada").await;
    browser.wait_for_text("#echo", "hello Ada", WAIT).await;
    assert_eq!(input.prop("value").await, "Ada");
    assert_eq!(input.attr("autocomplete").await.as_deref(), Some("off"));
    assert_eq!(input.attr("placeholder").await, None);

    let items = browser.find_all("#items li").await;
    assert_eq!(items.len(), 3);
    assert_eq!(items[2].text().await, "three");
    let list = browser.find("#items").await;
    assert_eq!(list.find("li").await.text().await, "one");
    assert!(browser.find_all(".nothing-like-this").await.is_empty());
    assert!(browser.try_find(".nothing-like-this").await.is_none());

    let seen = browser
        .execute(
            "return {sum: arguments[0] + arguments[1], id: arguments[2].id, \
             width: window.innerWidth, height: window.innerHeight, cookie: document.cookie};",
            &[json!(2), json!(3), browser.find("#go").await.as_arg()],
        )
        .await;
    assert_eq!(seen["sum"], 5, "{seen}");
    assert_eq!(seen["id"], "go", "{seen}");
    assert_eq!(seen["width"], Viewport::LAPTOP.width, "{seen}");
    assert_eq!(seen["height"], Viewport::LAPTOP.height, "{seen}");
    // The page's own script cannot read the HttpOnly cookie...
    assert_eq!(seen["cookie"], "selftest_theme=dark", "{seen}");
    // ...but WebDriver reports it, with its flags.
    let session = browser
        .cookie("selftest_session")
        .await
        .expect("the HttpOnly cookie is reported");
    assert_eq!(session.value, "s3cr3t");
    assert!(session.http_only, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Strict"), "{session:?}");
    let theme = browser
        .cookie("selftest_theme")
        .await
        .expect("the theme cookie");
    assert!(!theme.http_only, "{theme:?}");
    assert_eq!(theme.same_site.as_deref(), Some("Lax"), "{theme:?}");

    let shot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/browser-selftest.png");
    let _ = std::fs::remove_file(&shot);
    browser.screenshot(&shot).await;
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(
        png.starts_with(PNG_SIGNATURE),
        "not a PNG: {:?}",
        &png[..png.len().min(16)]
    );
    assert_eq!(png_size(&png), (1400, 900));

    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phone_sized_window_is_the_viewport() {
    let addr = serve_page().await;
    let browser = Browser::start_with(Viewport::PHONE).await;
    browser.goto(&format!("http://{addr}/")).await;
    let seen = browser
        .execute(
            "return [window.innerWidth, window.innerHeight, navigator.maxTouchPoints > 0];",
            &[],
        )
        .await;
    assert_eq!(
        seen,
        json!([Viewport::PHONE.width, Viewport::PHONE.height, true])
    );
    // Dropped without quit(): Drop ends the session and the driver.
}
