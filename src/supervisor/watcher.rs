//! One inotify watcher for every transcript: a write to an instance's transcript wakes that
//! instance's task, and nothing runs while transcripts are quiet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

use super::instance::Command;

#[derive(Default)]
struct Routes {
    /// transcript file -> the task that owns it
    files: HashMap<PathBuf, UnboundedSender<Command>>,
    /// watched directory -> how many files in it are routed
    dirs: HashMap<PathBuf, usize>,
}

pub struct TranscriptWatcher {
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    routes: Arc<Mutex<Routes>>,
}

impl TranscriptWatcher {
    pub fn new() -> Self {
        let routes: Arc<Mutex<Routes>> = Arc::default();
        let for_events = routes.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let routes = for_events.lock().expect("watcher routes poisoned");
            // An overflowed or failed watch may have lost events: every transcript re-reads.
            let event = match res {
                Ok(event) if !event.need_rescan() => event,
                _ => {
                    for tx in routes.files.values() {
                        let _ = tx.send(Command::TranscriptChanged);
                    }
                    return;
                }
            };
            if !matches!(event.kind, EventKind::Modify(_) | EventKind::Create(_)) {
                return;
            }
            for path in &event.paths {
                if let Some(tx) = routes.files.get(path) {
                    let _ = tx.send(Command::TranscriptChanged);
                }
            }
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(error = %e, "cannot watch transcripts; answers will only be read on hook events");
                None
            }
        };
        TranscriptWatcher {
            watcher: Mutex::new(watcher),
            routes,
        }
    }

    /// Routes changes of `file` to `tx`. The directory is created if missing so it can be
    /// watched before the CLI writes its first line.
    pub fn watch(&self, file: &Path, tx: UnboundedSender<Command>) -> std::io::Result<()> {
        let dir = file
            .parent()
            .ok_or_else(|| std::io::Error::other("transcript path has no directory"))?
            .to_path_buf();
        std::fs::create_dir_all(&dir)?;
        // The watcher lock serialises watch/unwatch. The routes lock is never held while
        // notify is called: notify waits for its event thread, which may be waiting for the
        // routes lock in the callback.
        let mut watcher = self.watcher.lock().expect("watcher poisoned");
        let first_in_dir = {
            let mut routes = self.routes.lock().expect("watcher routes poisoned");
            if routes.files.insert(file.to_path_buf(), tx).is_some() {
                return Ok(());
            }
            let count = routes.dirs.entry(dir.clone()).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first_in_dir && let Some(w) = watcher.as_mut() {
            w.watch(&dir, RecursiveMode::NonRecursive)
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    pub fn unwatch(&self, file: &Path) {
        let Some(dir) = file.parent() else { return };
        let mut watcher = self.watcher.lock().expect("watcher poisoned");
        let last_in_dir = {
            let mut routes = self.routes.lock().expect("watcher routes poisoned");
            if routes.files.remove(file).is_none() {
                return;
            }
            match routes.dirs.get_mut(dir) {
                Some(count) => {
                    *count -= 1;
                    if *count == 0 {
                        routes.dirs.remove(dir);
                        true
                    } else {
                        false
                    }
                }
                None => false,
            }
        };
        if last_in_dir && let Some(w) = watcher.as_mut() {
            let _ = w.unwatch(dir);
        }
    }
}
