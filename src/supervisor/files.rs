//! An instance's files, for a caller who may see them: the person any instance's, an
//! instance its own and its descendants'. The path rules are [`crate::files`]'.

use super::Supervisor;
use crate::error::{Error, Result};
use crate::files::{self, FileContent, Listing};
use crate::handover::Act;

impl Supervisor {
    /// The instance `id`'s files at `path`.
    pub async fn list_files(
        &self,
        caller: Option<&str>,
        id: &str,
        path: &str,
        recursive: bool,
        max_entries: Option<u64>,
    ) -> Result<Listing> {
        let max = files::entries_limit(max_entries)?;
        if let Some(host) = self.owner_elsewhere(id).await? {
            let act = Act::ListFiles {
                path: path.to_string(),
                recursive,
                max_entries,
            };
            return self.hand_over(&host, id, caller, act).await;
        }
        let inst = self.visible_to(caller, id).await?;
        let path = path.to_string();
        blocking(move || files::list(&files::root(&inst.workdir)?, &path, recursive, max)).await
    }

    /// The file at `path` in the instance `id`'s directory.
    pub async fn read_file(
        &self,
        caller: Option<&str>,
        id: &str,
        path: &str,
        max_bytes: Option<u64>,
    ) -> Result<FileContent> {
        let max = files::bytes_limit(max_bytes)?;
        if let Some(host) = self.owner_elsewhere(id).await? {
            let act = Act::ReadFile {
                path: path.to_string(),
                max_bytes,
            };
            return self.hand_over(&host, id, caller, act).await;
        }
        let inst = self.visible_to(caller, id).await?;
        let path = path.to_string();
        blocking(move || files::read(&files::root(&inst.workdir)?, &path, max)).await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}
