//! Runs the fake Anthropic Messages API server used by the integration tests.
//!
//! Usage: `cargo run --example fake_model [PORT]` (default 0: any free port).
//! Prints `listening on http://ADDR`, then serves forever. If `FAKE_MODEL_LOG`
//! is set, every `/v1/messages` request body is appended to that file as one
//! JSON line.

#[path = "../tests/support/fake_model.rs"]
mod fake_model;

use std::io::Write as _;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = match std::env::args().nth(1) {
        Some(arg) => arg.parse::<u16>().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("bad port {arg:?}: {e}"),
            )
        })?,
        None => 0,
    };
    let server = fake_model::FakeModel::start_on(port).await?;
    if let Some(path) = std::env::var_os("FAKE_MODEL_LOG") {
        server.log_requests_to(path);
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", server.base_url())?;
    stdout.flush()?;
    std::future::pending::<()>().await;
    Ok(())
}
