//! `troupe mcp install` / `uninstall`: troupe, with the server token, in a client's own MCP
//! configuration. Each change is said exactly; doing it twice changes nothing the second time.
//!
//! Claude Code keeps user-scope servers in `~/.claude.json` (`mcpServers`) and project-scope
//! ones in `.mcp.json` of the project, a file people commit: there the token is written as
//! `${TROUPE_TOKEN}`, which Claude Code expands from the environment. Codex is configured
//! through its own `codex mcp add`, which stores the name of the variable holding the token,
//! never the token.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The name troupe has in every client's configuration.
pub const SERVER_NAME: &str = "troupe";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    Claude,
    Codex,
    Desktop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// For every project of this user.
    User,
    /// For the project in the current directory (a file that may be committed).
    Project,
}

/// What an install or uninstall did, for the person to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Unchanged(String),
    Changed(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Unchanged(s) | Outcome::Changed(s) => f.write_str(s),
        }
    }
}

/// troupe's entry in a Claude Code `mcpServers` table.
pub fn claude_entry(mcp_url: &str, token_value: &str) -> Value {
    json!({
        "type": "http",
        "url": mcp_url,
        "headers": { "Authorization": format!("Bearer {token_value}") }
    })
}

/// Sets `mcpServers.troupe` in a Claude Code config document; says whether it changed.
pub fn put_server(doc: &mut Value, entry: Value) -> Result<bool, String> {
    let root = doc
        .as_object_mut()
        .ok_or("the file does not hold a JSON object")?;
    let servers = root
        .entry("mcpServers")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("its mcpServers is not a JSON object")?;
    if servers.get(SERVER_NAME) == Some(&entry) {
        return Ok(false);
    }
    servers.insert(SERVER_NAME.to_string(), entry);
    Ok(true)
}

/// Removes `mcpServers.troupe`; says whether it was there.
pub fn remove_server(doc: &mut Value) -> bool {
    doc.get_mut("mcpServers")
        .and_then(Value::as_object_mut)
        .is_some_and(|servers| servers.remove(SERVER_NAME).is_some())
}

/// The Claude Code file for a scope.
pub fn claude_file(scope: Scope, home: &Path, cwd: &Path) -> PathBuf {
    match scope {
        Scope::User => home.join(".claude.json"),
        Scope::Project => cwd.join(".mcp.json"),
    }
}

pub fn install_claude(
    scope: Scope,
    file: &Path,
    mcp_url: &str,
    token: &str,
) -> anyhow::Result<Outcome> {
    // A project file may be committed: the token stays in the environment.
    let token_value = match scope {
        Scope::User => token.to_string(),
        Scope::Project => "${TROUPE_TOKEN}".to_string(),
    };
    let mut doc = read_json(file)?;
    let changed = put_server(&mut doc, claude_entry(mcp_url, &token_value))
        .map_err(|e| anyhow::anyhow!("cannot add troupe to {}: {e}", file.display()))?;
    if !changed {
        return Ok(Outcome::Unchanged(format!(
            "{} already has troupe at {mcp_url}; nothing changed",
            file.display()
        )));
    }
    write_json(file, &doc)?;
    let mut said = format!(
        "added troupe ({mcp_url}, with the server token) to {} as mcpServers.troupe",
        file.display()
    );
    if scope == Scope::Project {
        said.push_str(
            "; it reads the token from TROUPE_TOKEN, so export TROUPE_TOKEN before starting claude",
        );
    }
    Ok(Outcome::Changed(said))
}

pub fn uninstall_claude(file: &Path) -> anyhow::Result<Outcome> {
    if !file.exists() {
        return Ok(Outcome::Unchanged(format!(
            "{} does not exist; nothing to remove",
            file.display()
        )));
    }
    let mut doc = read_json(file)?;
    if !remove_server(&mut doc) {
        return Ok(Outcome::Unchanged(format!(
            "{} has no troupe server; nothing changed",
            file.display()
        )));
    }
    write_json(file, &doc)?;
    Ok(Outcome::Changed(format!(
        "removed mcpServers.troupe from {}",
        file.display()
    )))
}

/// Claude Desktop's config file.
pub fn desktop_file(home: &Path) -> PathBuf {
    let base = if cfg!(target_os = "macos") {
        home.join("Library").join("Application Support")
    } else {
        std::env::var_os("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".config"))
    };
    base.join("Claude").join("claude_desktop_config.json")
}

/// Claude Desktop speaks stdio only: it runs `troupe stdio`, which finds the token in the
/// data directory, so the token is not written into the Desktop's config.
pub fn install_desktop(file: &Path, troupe_bin: &Path, url: &str) -> anyhow::Result<Outcome> {
    let entry = json!({
        "command": troupe_bin.display().to_string(),
        "args": ["stdio"],
        "env": { "TROUPE_URL": url }
    });
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let mut doc = read_json(file)?;
    let changed = put_server(&mut doc, entry)
        .map_err(|e| anyhow::anyhow!("cannot add troupe to {}: {e}", file.display()))?;
    if !changed {
        return Ok(Outcome::Unchanged(format!(
            "{} already runs troupe stdio for {url}; nothing changed",
            file.display()
        )));
    }
    write_json(file, &doc)?;
    Ok(Outcome::Changed(format!(
        "added troupe to {} as mcpServers.troupe: `{} stdio`, forwarding to {url}; restart \
         Claude Desktop to load it",
        file.display(),
        troupe_bin.display()
    )))
}

/// Codex, through its own CLI (`codex_bin`): the entry names the variable that holds the
/// token (TROUPE_TOKEN), never the token.
pub fn install_codex(codex_bin: &str, mcp_url: &str) -> anyhow::Result<Outcome> {
    if let Some(current) = codex_entry(codex_bin)? {
        let transport = &current["transport"];
        if transport["url"] == mcp_url && transport["bearer_token_env_var"] == "TROUPE_TOKEN" {
            return Ok(Outcome::Unchanged(format!(
                "Codex already has troupe at {mcp_url}; nothing changed"
            )));
        }
    }
    codex(
        codex_bin,
        &[
            "mcp",
            "add",
            SERVER_NAME,
            "--url",
            mcp_url,
            "--bearer-token-env-var",
            "TROUPE_TOKEN",
        ],
    )?;
    Ok(Outcome::Changed(format!(
        "added troupe ({mcp_url}) to Codex's config.toml as [mcp_servers.troupe]; it reads the \
         token from TROUPE_TOKEN, so export TROUPE_TOKEN before starting codex"
    )))
}

pub fn uninstall_codex(codex_bin: &str) -> anyhow::Result<Outcome> {
    if codex_entry(codex_bin)?.is_none() {
        return Ok(Outcome::Unchanged(
            "Codex has no troupe server; nothing changed".into(),
        ));
    }
    codex(codex_bin, &["mcp", "remove", SERVER_NAME])?;
    Ok(Outcome::Changed(
        "removed [mcp_servers.troupe] from Codex's config.toml".into(),
    ))
}

/// troupe's entry as `codex mcp get --json` shows it, if there is one.
fn codex_entry(codex_bin: &str) -> anyhow::Result<Option<Value>> {
    let out = run_codex(codex_bin, &["mcp", "get", SERVER_NAME, "--json"])?;
    Ok(serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .filter(|v| v["name"] == SERVER_NAME))
}

fn codex(codex_bin: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = run_codex(codex_bin, args)?;
    if !out.status.success() {
        anyhow::bail!(
            "`{codex_bin} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn run_codex(codex_bin: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    std::process::Command::new(codex_bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run Codex ({codex_bin:?}: {e}); install it with `npm install -g \
                 @openai/codex`, or name it with --codex-bin"
            )
        })
}

fn read_json(file: &Path) -> anyhow::Result<Value> {
    match std::fs::read_to_string(file) {
        Ok(text) if text.trim().is_empty() => Ok(json!({})),
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!("{} is not valid JSON ({e}); fix it first", file.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", file.display())),
    }
}

/// Written next to the file and renamed over it, so a crash never leaves half a config; the
/// file holds a token, so it is private.
fn write_json(file: &Path, doc: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(doc)?;
    let tmp = file.with_extension("troupe-tmp");
    crate::private::write(&tmp, format!("{text}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, file)
        .map_err(|e| anyhow::anyhow!("cannot replace {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn troupe_is_added_once_and_other_servers_are_kept() {
        let mut doc = json!({ "mcpServers": { "other": { "type": "stdio" } }, "theme": "dark" });
        let entry = claude_entry("http://127.0.0.1:8001/mcp", "tok");
        assert_eq!(put_server(&mut doc, entry.clone()), Ok(true));
        assert_eq!(put_server(&mut doc, entry.clone()), Ok(false));
        assert_eq!(doc["mcpServers"]["other"]["type"], "stdio");
        assert_eq!(doc["theme"], "dark");
        assert_eq!(
            doc["mcpServers"]["troupe"]["headers"]["Authorization"],
            "Bearer tok"
        );
        // A new token or URL is a change.
        assert_eq!(
            put_server(&mut doc, claude_entry("http://127.0.0.1:9/mcp", "tok")),
            Ok(true)
        );
        assert!(remove_server(&mut doc));
        assert!(!remove_server(&mut doc));
        assert_eq!(doc["mcpServers"]["other"]["type"], "stdio");
        assert!(put_server(&mut json!([]), entry).is_err());
    }

    #[test]
    fn a_project_file_gets_the_variable_not_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".mcp.json");
        let said = install_claude(Scope::Project, &file, "http://h/mcp", "secret-token")
            .unwrap()
            .to_string();
        assert!(said.contains("TROUPE_TOKEN"), "{said}");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("secret-token"), "{text}");
        assert!(text.contains("Bearer ${TROUPE_TOKEN}"), "{text}");
        assert!(matches!(
            install_claude(Scope::Project, &file, "http://h/mcp", "secret-token").unwrap(),
            Outcome::Unchanged(_)
        ));
        assert!(matches!(
            uninstall_claude(&file).unwrap(),
            Outcome::Changed(_)
        ));
        assert!(matches!(
            uninstall_claude(&file).unwrap(),
            Outcome::Unchanged(_)
        ));
        std::fs::write(&file, "{ not json").unwrap();
        let e = install_claude(Scope::Project, &file, "http://h/mcp", "t").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }
}
