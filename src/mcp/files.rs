//! An instance's files: list its working directory and read a file from it, inside the
//! directory only (the rules are in [`crate::files`]).

use rmcp::model::Extensions;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Json, Parameters, Troupe, caller, tool_error};
use crate::files::{FileContent, Listing};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListFilesParams {
    /// The instance whose working directory to list (live or ended; the directory must still exist).
    pub instance_id: String,
    /// A directory relative to the instance's working directory, `/`-separated (default "", the directory itself). Absolute paths and `..` are refused.
    #[serde(default)]
    pub path: Option<String>,
    /// List everything below as well (default false). Symlinks are listed, never followed; `.git` is listed but not its contents.
    #[serde(default)]
    pub recursive: Option<bool>,
    /// The most entries to return (default 1000, at most 10000); a longer list is cut and says so.
    #[serde(default)]
    #[schemars(range(min = 1, max = 10000))]
    pub max_entries: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RetrieveFileParams {
    /// The instance whose working directory holds the file (live or ended).
    pub instance_id: String,
    /// The file, relative to the instance's working directory, `/`-separated. Absolute paths, `..` and symlinks that lead out of the directory are refused.
    pub path: String,
    /// The most bytes to return, from the file's start (default 1048576 = 1 MiB, at most 10485760 = 10 MiB); a longer file is cut and `truncated` says so.
    #[serde(default)]
    #[schemars(range(min = 1, max = 10485760))]
    pub max_bytes: Option<u64>,
}

#[tool_router(router = file_tools, vis = "pub(super)")]
impl Troupe {
    #[tool(
        name = "list_instance_files",
        description = "List the files in an instance's working directory (or a directory in it; `recursive` for everything below): each entry's path (relative, /-separated), kind (file, dir, symlink, other), size and modified time (RFC 3339 UTC). Symlinks are listed, never followed; .git's contents are skipped; the list stops at max_entries (default 1000) and says so. An instance may list its own and its descendants' files."
    )]
    pub async fn list_instance_files(
        &self,
        Parameters(p): Parameters<ListFilesParams>,
        extensions: Extensions,
    ) -> Result<Json<Listing>, String> {
        self.sup
            .list_files(
                caller(&extensions).as_deref(),
                &p.instance_id,
                p.path.as_deref().unwrap_or(""),
                p.recursive.unwrap_or(false),
                p.max_entries,
            )
            .await
            .map(Json)
            .map_err(tool_error)
    }

    #[tool(
        name = "retrieve_instance_file",
        description = "Read a file from an instance's working directory: returns path, size, encoding (utf-8 when the bytes are valid UTF-8, else base64), content, content_bytes and truncated. At most max_bytes (default 1 MiB, at most 10 MiB) from the start; a longer file is cut and says so. Refuses absolute paths, `..`, and symlinks that lead out of the directory. An instance may read its own and its descendants' files."
    )]
    pub async fn retrieve_instance_file(
        &self,
        Parameters(p): Parameters<RetrieveFileParams>,
        extensions: Extensions,
    ) -> Result<Json<FileContent>, String> {
        self.sup
            .read_file(
                caller(&extensions).as_deref(),
                &p.instance_id,
                &p.path,
                p.max_bytes,
            )
            .await
            .map(Json)
            .map_err(tool_error)
    }
}
