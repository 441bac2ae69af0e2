//! `troupe hook --url URL`: the command Claude Code runs for each lifecycle hook. It forwards
//! the hook's JSON (stdin) to the server and always exits 0 quickly, so a server that is down
//! never blocks or breaks the CLI.

use std::io::Read;
use std::time::Duration;

pub async fn forward(url: &str) {
    let mut body = String::new();
    if std::io::stdin().read_to_string(&mut body).is_err() || body.trim().is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    {
        Ok(c) => c,
        Err(_) => return,
    };
    let _ = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
}
