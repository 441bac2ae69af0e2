//! What of troupe's own environment its instances get. troupe's tmux server, and so every
//! instance, starts from an allowlist: what a shell and the usual toolchains need, what the
//! CLIs read (their own settings, their provider's endpoint and key), and names the person
//! passes with `serve --pass-env`. Everything else a `troupe serve` was started with (cloud
//! credentials, tokens for other services, troupe's own settings and server token) stays out.

use std::ffi::OsString;

/// Names passed whole.
const NAMES: &[&str] = &[
    // A shell and its terminal.
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "TZ",
    "TMPDIR",
    "TMUX_TMPDIR",
    "EDITOR",
    "VISUAL",
    "PAGER",
    // git over ssh, and proxies and certificates for the model API.
    "SSH_AUTH_SOCK",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    // Toolchains that live outside the default places.
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOPATH",
    "GOROOT",
    "JAVA_HOME",
    "NVM_DIR",
    "NODE_PATH",
    "PYENV_ROOT",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    // Claude Code settings read from the environment.
    "MAX_THINKING_TOKENS",
    "BASH_DEFAULT_TIMEOUT_MS",
    "BASH_MAX_TIMEOUT_MS",
    "BASH_MAX_OUTPUT_LENGTH",
    "MCP_TIMEOUT",
    "MCP_TOOL_TIMEOUT",
];

/// Prefixes passed: locale, XDG directories, and the CLIs' own settings and providers.
const PREFIXES: &[&str] = &[
    "LC_",
    "XDG_",
    "ANTHROPIC_",
    "CLAUDE_",
    "DISABLE_",
    "OPENAI_",
    "CODEX_",
];

/// Passed only when the CLI is told to use that cloud (Claude Code on Bedrock or Vertex):
/// the switch, then the prefixes its credentials use.
const CLOUDS: &[(&str, &[&str])] = &[
    ("CLAUDE_CODE_USE_BEDROCK", &["AWS_"]),
    (
        "CLAUDE_CODE_USE_VERTEX",
        &["GOOGLE_", "CLOUD_ML_", "VERTEX_", "GCLOUD_"],
    ),
];

/// Whether an instance gets the variable `name`. `set` says whether a name is set (and not
/// empty or `0`) in the same environment; `also` holds the names `--pass-env` adds.
pub fn passes(name: &str, set: impl Fn(&str) -> bool, also: &[String]) -> bool {
    if name.starts_with("TROUPE_") {
        return false;
    }
    NAMES.contains(&name)
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || CLOUDS
            .iter()
            .any(|(switch, prefixes)| set(switch) && prefixes.iter().any(|p| name.starts_with(p)))
        || also.iter().any(|a| a == name)
}

/// The part of `vars` instances get.
pub fn allowed(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    also: &[String],
) -> Vec<(OsString, OsString)> {
    let vars: Vec<(OsString, OsString)> = vars.into_iter().collect();
    let set = |name: &str| {
        vars.iter()
            .any(|(k, v)| k == name && !v.is_empty() && v != "0")
    };
    vars.iter()
        .filter(|(k, _)| k.to_str().is_some_and(|k| passes(k, set, also)))
        .cloned()
        .collect()
}

/// A `--pass-env` name, checked: letters, digits and `_`, not starting with a digit.
pub fn pass_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match ok {
        true if name.starts_with("TROUPE_") => Err(format!(
            "--pass-env {name}: troupe's own settings never reach instances"
        )),
        true => Ok(name.to_string()),
        false => Err(format!(
            "--pass-env {name:?}: give a variable's name (letters, digits and _)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn names(vars: Vec<(OsString, OsString)>) -> Vec<String> {
        vars.into_iter()
            .map(|(k, _)| k.into_string().unwrap())
            .collect()
    }

    #[test]
    fn instances_get_what_the_clis_and_a_shell_need_and_nothing_else() {
        let serve = env(&[
            ("PATH", "/usr/bin"),
            ("HOME", "/home/p"),
            ("LC_ALL", "C.UTF-8"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
            ("CLAUDE_CONFIG_DIR", "/x"),
            ("DISABLE_TELEMETRY", "1"),
            ("OPENAI_API_KEY", "sk-codex"),
            ("TROUPE_TOKEN", "the-server-token"),
            ("TROUPE_DATA_DIR", "/d"),
            ("GITHUB_TOKEN", "ghp_x"),
            ("AWS_SECRET_ACCESS_KEY", "aws"),
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("SSH_AUTH_SOCK", "/tmp/agent"),
        ]);
        assert_eq!(
            names(allowed(serve.clone(), &[])),
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "ANTHROPIC_BASE_URL",
                "CLAUDE_CONFIG_DIR",
                "DISABLE_TELEMETRY",
                "OPENAI_API_KEY",
                "SSH_AUTH_SOCK"
            ]
        );
        let also = ["DATABASE_URL".to_string()];
        assert!(names(allowed(serve, &also)).contains(&"DATABASE_URL".to_string()));
    }

    #[test]
    fn cloud_credentials_pass_only_when_the_cli_uses_that_cloud() {
        let aws = env(&[("AWS_REGION", "eu-west-1"), ("GOOGLE_CLOUD_PROJECT", "p")]);
        assert!(allowed(aws.clone(), &[]).is_empty());
        let mut bedrock = aws.clone();
        bedrock.extend(env(&[("CLAUDE_CODE_USE_BEDROCK", "1")]));
        assert_eq!(
            names(allowed(bedrock, &[])),
            ["AWS_REGION", "CLAUDE_CODE_USE_BEDROCK"]
        );
        let mut off = aws;
        off.extend(env(&[("CLAUDE_CODE_USE_VERTEX", "0")]));
        assert_eq!(names(allowed(off, &[])), ["CLAUDE_CODE_USE_VERTEX"]);
    }

    #[test]
    fn troupe_settings_never_pass_even_when_asked() {
        assert!(!passes("TROUPE_TOKEN", |_| false, &["TROUPE_TOKEN".into()]));
        assert!(pass_name("TROUPE_TOKEN").is_err());
        assert!(pass_name("9LIVES").is_err());
        assert!(pass_name("A B").is_err());
        assert_eq!(pass_name(" MY_VAR ").as_deref(), Ok("MY_VAR"));
    }
}
