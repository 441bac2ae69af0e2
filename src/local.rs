//! The local server, from a client's side: is one answering, and if not, start one in the
//! background (`troupe chat` and `troupe stdio` both need one and start it for the person).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// How long a server started here may take to answer.
const SERVER_START: Duration = Duration::from_secs(20);

/// A server answers at `url`, or one is started here in the background, with its log in the
/// data directory.
pub async fn ensure_server(url: &str, data_dir: &Path) -> anyhow::Result<()> {
    if healthy(url).await {
        return Ok(());
    }
    let bind = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--url {url} is not an http:// URL"))?;
    crate::private::dir(data_dir)?;
    let log_path = data_dir.join("serve.log");
    // The log names instances, messages and dashboard links: the person's alone.
    let log = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new().create(true).append(true),
        0o600,
    )
    .open(&log_path)?;
    std::fs::set_permissions(
        &log_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let exe = std::env::current_exe()?;
    eprintln!(
        "troupe: no server at {url}; starting one (its log: {})",
        log_path.display()
    );
    let mut child = std::process::Command::new(exe);
    child
        .args(["serve", "--bind", bind, "--data-dir"])
        .arg(data_dir)
        .arg("--db")
        .arg(data_dir.join("troupe.db"))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: the terminal's Ctrl-C is the chat's, not the server's.
    std::os::unix::process::CommandExt::process_group(&mut child, 0);
    let mut server = child.spawn()?;
    let deadline = tokio::time::Instant::now() + SERVER_START;
    let mut wait = Duration::from_millis(20);
    // Another process's readiness: asked until it answers, with a deadline.
    while tokio::time::Instant::now() < deadline {
        if let Some(status) = server.try_wait()? {
            anyhow::bail!(
                "the server started here exited ({status}); its log {} says why",
                log_path.display()
            );
        }
        if healthy(url).await {
            return Ok(());
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(250));
    }
    anyhow::bail!(
        "the server started here did not answer within {SERVER_START:?}; see {}",
        log_path.display()
    )
}

pub async fn healthy(url: &str) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    match client.get(format!("{url}/health")).send().await {
        Ok(r) => r
            .json::<Value>()
            .await
            .is_ok_and(|v| v["service"] == "troupe"),
        Err(_) => false,
    }
}
