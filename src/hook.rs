//! `troupe hook --url URL --token-file FILE`: the command a CLI runs for the lifecycle hooks
//! it cannot post itself (Claude Code's SessionStart, every hook of Codex). It forwards the
//! hook's JSON (stdin) to the server with the instance's token, and always exits 0, so a
//! server that is down never blocks or breaks the CLI. The token comes from a private file,
//! never the command line, which every local user can read in `ps`.
//!
//! Most hooks only report, and give up after a few seconds. A permission hook asks: the
//! server holds it until someone decides (within its permission wait, at most an hour), and
//! its answer, printed on stdout, is what the CLI reads. When no answer comes, nothing is
//! printed and the CLI asks at its own dialog.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// How long a reporting hook may take.
const REPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a permission hook waits for the server's answer: past the longest permission
/// wait the server allows (3600 s), and short of the time the CLI gives the hook.
pub const PERMISSION_TIMEOUT: Duration = Duration::from_secs(3650);

/// Whether a hook payload asks for a decision the CLI waits for.
fn asks(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .is_ok_and(|v| crate::agents::hook_waits_for_answer(&v))
}

pub async fn forward(url: &str, token_file: Option<&Path>) {
    let mut body = String::new();
    if std::io::stdin().read_to_string(&mut body).is_err() || body.trim().is_empty() {
        return;
    }
    let asks = asks(&body);
    let client = match reqwest::Client::builder()
        .timeout(if asks {
            PERMISSION_TIMEOUT
        } else {
            REPORT_TIMEOUT
        })
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
    let Ok(resp) = req.send().await else {
        return;
    };
    if !asks || !resp.status().is_success() {
        return;
    }
    // Only a JSON object is an answer; anything else would read as a broken hook.
    let Ok(answer) = resp.json::<serde_json::Value>().await else {
        return;
    };
    if answer.is_object() {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_permission_request_waits_for_an_answer() {
        let permission = serde_json::json!({
            "hook_event_name": crate::agents::PERMISSION_HOOK, "tool_name": "Bash"
        });
        assert!(asks(&permission.to_string()));
        assert!(!asks(r#"{"hook_event_name":"Stop"}"#));
        assert!(!asks("not json"));
    }
}
