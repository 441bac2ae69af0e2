//! `troupe hook --url URL --token-file FILE`: the command Claude Code runs for the lifecycle
//! hooks it cannot post itself. It forwards the hook's JSON (stdin) to the server with the
//! instance's token, and always exits 0 quickly, so a server that is down never blocks or
//! breaks the CLI. The token comes from a private file, never the command line, which every
//! local user can read in `ps`.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

pub async fn forward(url: &str, token_file: Option<&Path>) {
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
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token_file.and_then(|f| std::fs::read_to_string(f).ok()) {
        req = req.bearer_auth(token.trim());
    }
    let _ = req.send().await;
}
