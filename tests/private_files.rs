//! Everything troupe writes is its user's alone, whatever the umask. Its own test binary: the
//! umask is per process.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::json;
use support::Harness;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn data_dir_database_and_instance_files_are_private_under_umask_022() {
    // SAFETY: umask only sets this process's file-creation mask.
    unsafe { libc::umask(0o022) };
    let h = Harness::start().await;
    let id = h.spawn(json!({ "role": "tester" })).await;
    let config = h.config();
    assert_eq!(mode(&config.data_dir), 0o700);
    assert_eq!(mode(&config.db_path), 0o600);
    let wal = format!("{}-wal", config.db_path.display());
    assert_eq!(mode(Path::new(&wal)), 0o600);
    let instance_dir = config.data_dir.join("instances").join(&id);
    assert_eq!(mode(&instance_dir), 0o700);
    for file in ["settings.json", "mcp.json"] {
        assert_eq!(mode(&instance_dir.join(file)), 0o600, "{file}");
    }
}
