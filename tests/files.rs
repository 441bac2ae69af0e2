//! An instance's files, through list_instance_files, retrieve_instance_file and their REST
//! routes, against the real server and real Claude Code instances (the fake model behind
//! them): files the test puts in the instance's working directory are listed and read,
//! binary-safe and cut at the limit, and nothing outside the directory can be reached, by
//! `..`, an absolute path or a symlink. An instance sees its own and its children's files,
//! not its parent's.

mod support;

use std::os::unix::fs::symlink;
use std::path::Path;

use base64::Engine;
use serde_json::{Value, json};
use support::Harness;
use support::mcp::McpClient;
use troupe::db::credentials::Credentials;
use troupe::db::instances::Instance;

const BLOB: [u8; 8] = [0x00, 0x9f, 0x92, 0x96, 0xff, b'a', 0xfe, 0x0a];

async fn workdir(h: &Harness, id: &str) -> std::path::PathBuf {
    let inst = Instance::find(h.pool(), id).await.unwrap().unwrap();
    std::path::PathBuf::from(inst.workdir)
}

/// GET `path` with `query` as `auth` (a bearer token, and the instance header when given).
async fn get(
    url: &str,
    path: &str,
    query: &[(&str, &str)],
    token: &str,
    instance: Option<&str>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .query(query)
        .bearer_auth(token);
    if let Some(id) = instance {
        req = req.header("x-troupe-instance", id);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn token_of(h: &Harness, id: &str) -> String {
    Credentials::find(h.pool(), id)
        .await
        .unwrap()
        .unwrap()
        .token
}

/// An MCP session that speaks for instance `id`, with its own token.
async fn as_instance(h: &Harness, id: &str, token: &str) -> McpClient {
    let bearer = format!("Bearer {token}");
    McpClient::connect(
        &format!("{}/mcp", h.server().url()),
        &[("x-troupe-instance", id), ("authorization", &bearer)],
    )
    .await
}

fn entry<'a>(listing: &'a Value, path: &str) -> &'a Value {
    listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in {listing}"))
}

fn paths(listing: &Value) -> Vec<String> {
    listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

/// A text file, a binary one, a nested directory, a link inside, a link out, `.git`.
fn fill(dir: &Path, outside: &Path) {
    std::fs::write(dir.join("notes.txt"), "hello\nworld\n").unwrap();
    std::fs::write(dir.join("blob.bin"), BLOB).unwrap();
    std::fs::write(dir.join("big.txt"), "0123456789".repeat(500)).unwrap();
    std::fs::create_dir_all(dir.join("nested/inner")).unwrap();
    std::fs::write(dir.join("nested/inner/deep.txt"), "deep down").unwrap();
    std::fs::create_dir_all(dir.join(".git/refs")).unwrap();
    std::fs::write(dir.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::create_dir_all(outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "not for instances").unwrap();
    symlink(outside.join("secret.txt"), dir.join("escape")).unwrap();
    symlink(outside, dir.join("escape-dir")).unwrap();
    symlink("nested/inner/deep.txt", dir.join("inside-link")).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_listed_and_read_inside_the_instance_directory_only() {
    let h = Harness::start().await;
    let id = h
        .spawn(json!({ "role": "developer", "model": "haiku" }))
        .await;
    let dir = workdir(&h, &id).await;
    let outside = h.dir.path().join("outside");
    fill(&dir, &outside);

    // The top level: every kind, links as links, sizes and times.
    let r = h
        .call("list_instance_files", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let top = r.structured;
    assert_eq!(top["path"], "");
    assert_eq!(top["truncated"], false);
    let notes = entry(&top, "notes.txt");
    assert_eq!(
        (&notes["kind"], &notes["size"]),
        (&json!("file"), &json!(12))
    );
    let modified = notes["modified"].as_str().unwrap();
    assert!(modified.ends_with('Z'), "{modified}");
    let at = chrono::DateTime::parse_from_rfc3339(modified).unwrap();
    assert!(
        (chrono::Utc::now() - at.to_utc()).num_minutes().abs() < 5,
        "{modified}"
    );
    assert_eq!(entry(&top, "blob.bin")["size"], BLOB.len());
    assert_eq!(entry(&top, "nested")["kind"], "dir");
    assert_eq!(entry(&top, ".git")["kind"], "dir");
    for link in ["escape", "escape-dir", "inside-link"] {
        assert_eq!(entry(&top, link)["kind"], "symlink", "{link}");
    }
    assert!(!paths(&top).iter().any(|p| p.contains('/')), "{top}");

    // Everything below: nested files, not .git's, and no link followed.
    let r = h
        .call(
            "list_instance_files",
            json!({ "instance_id": id, "recursive": true }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let all = paths(&r.structured);
    for p in ["nested/inner", "nested/inner/deep.txt"] {
        assert!(all.contains(&p.to_string()), "{p} in {all:?}");
    }
    assert!(!all.iter().any(|p| p.starts_with(".git/")), "{all:?}");
    assert!(!all.iter().any(|p| p.starts_with("escape-dir/")), "{all:?}");
    let all_listing = r.structured;

    // A subdirectory, and a list cut at the limit.
    let r = h
        .call(
            "list_instance_files",
            json!({ "instance_id": id, "path": "nested", "recursive": true }),
        )
        .await;
    assert_eq!(
        paths(&r.structured),
        ["nested/inner", "nested/inner/deep.txt"]
    );
    let r = h
        .call(
            "list_instance_files",
            json!({ "instance_id": id, "recursive": true, "max_entries": 2 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    assert_eq!(r.structured["entries"].as_array().unwrap().len(), 2);
    assert_eq!(r.structured["truncated"], true);
    assert!(r.text.contains("max_entries"), "{}", r.text);
    let r = h
        .call(
            "list_instance_files",
            json!({ "instance_id": id, "path": "escape-dir" }),
        )
        .await;
    assert!(
        r.is_error && r.text.contains("leaves the instance's directory"),
        "{}",
        r.text
    );

    // Text as text, bytes as base64, a link inside read through.
    let read = |path: &str, max: Option<u64>| {
        let mut args = json!({ "instance_id": id, "path": path });
        if let Some(m) = max {
            args["max_bytes"] = json!(m);
        }
        h.call("retrieve_instance_file", args)
    };
    let r = read("notes.txt", None).await;
    assert!(!r.is_error, "{}", r.text);
    let s = &r.structured;
    assert_eq!(
        (
            &s["path"],
            &s["size"],
            &s["encoding"],
            &s["content"],
            &s["truncated"]
        ),
        (
            &json!("notes.txt"),
            &json!(12),
            &json!("utf-8"),
            &json!("hello\nworld\n"),
            &json!(false)
        )
    );
    let r = read("blob.bin", None).await;
    assert_eq!(r.structured["encoding"], "base64", "{}", r.text);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r.structured["content"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, BLOB);
    let blob_answer = r.structured;
    let r = read("inside-link", None).await;
    assert_eq!(r.structured["content"], "deep down", "{}", r.text);
    let r = read("./nested//inner/deep.txt", None).await;
    assert_eq!(r.structured["path"], "nested/inner/deep.txt", "{}", r.text);

    // Cut at max_bytes, and said so.
    let r = read("big.txt", Some(100)).await;
    assert!(!r.is_error, "{}", r.text);
    let s = &r.structured;
    assert_eq!(s["content"], "0123456789".repeat(10));
    assert_eq!(
        (&s["size"], &s["content_bytes"]),
        (&json!(5000), &json!(100))
    );
    assert_eq!(s["truncated"], true);
    for bad in [0, 10 * 1024 * 1024 + 1] {
        let r = read("big.txt", Some(bad)).await;
        assert!(
            r.is_error && r.text.contains("max_bytes"),
            "{bad}: {}",
            r.text
        );
    }

    // Nothing outside: .., an absolute path, a link out (to a file, through a directory).
    let secret = outside.join("secret.txt");
    let absolute = secret.to_str().unwrap().to_string();
    let inside_absolute = dir.join("notes.txt").to_str().unwrap().to_string();
    for (path, why) in [
        ("../x", "\"../x\" leaves the instance's directory"),
        (
            "nested/../../outside/secret.txt",
            "leaves the instance's directory",
        ),
        ("nested/../notes.txt", "contains \"..\""),
        (absolute.as_str(), "is absolute"),
        (inside_absolute.as_str(), "is absolute"),
        (
            "escape",
            "\"escape\" is a symlink that leaves the instance's directory",
        ),
        ("escape-dir/secret.txt", "leaves the instance's directory"),
        ("nested", "is a directory"),
        ("missing.txt", "there is no missing.txt"),
        ("a\0b", "NUL"),
    ] {
        let r = read(path, None).await;
        assert!(r.is_error, "{path:?} was read: {}", r.structured);
        assert!(r.text.contains(why), "{path:?}: {}", r.text);
        assert!(!r.text.contains("not for instances"), "{}", r.text);
    }
    let r = h
        .call(
            "retrieve_instance_file",
            json!({ "instance_id": "ghost-0000", "path": "notes.txt" }),
        )
        .await;
    assert!(
        r.is_error && r.text.contains("no instance ghost-0000"),
        "{}",
        r.text
    );

    // REST answers the same, 404 for an unknown instance, 400 for a bad path.
    let url = h.server().url();
    let token = h.server().token().to_string();
    let files = format!("/api/instances/{id}/files");
    let content = format!("/api/instances/{id}/files/content");
    let (status, listing) = get(&url, &files, &[("recursive", "true")], &token, None).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing, all_listing);
    let (status, blob) = get(&url, &content, &[("path", "blob.bin")], &token, None).await;
    assert_eq!((status, &blob), (200, &blob_answer));
    let (status, cut) = get(
        &url,
        &content,
        &[("path", "big.txt"), ("max_bytes", "10")],
        &token,
        None,
    )
    .await;
    assert_eq!(
        (status, &cut["content"], &cut["truncated"]),
        (200, &json!("0123456789"), &json!(true))
    );
    for path in ["../x", absolute.as_str(), "escape"] {
        let (status, err) = get(&url, &content, &[("path", path)], &token, None).await;
        assert_eq!(status, 400, "{path}: {err}");
        assert!(err["error"].as_str().unwrap().contains("path"), "{err}");
    }
    let (status, err) = get(&url, &files, &[("path", "../")], &token, None).await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = get(&url, &files, &[("colour", "red")], &token, None).await;
    assert_eq!(status, 400, "{err}");
    for route in [
        "/api/instances/ghost-0000/files",
        "/api/instances/ghost-0000/files/content",
    ] {
        let (status, err) = get(&url, route, &[("path", "notes.txt")], &token, None).await;
        assert_eq!(status, 404, "{route}: {err}");
    }

    // An ended instance's files can still be read, while its directory is there.
    let r = h
        .call("terminate_instance", json!({ "instance_id": id }))
        .await;
    assert!(!r.is_error, "{}", r.text);
    let r = read("notes.txt", None).await;
    assert_eq!(r.structured["content"], "hello\nworld\n", "{}", r.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_reads_its_own_and_its_childrens_files_but_not_its_parents() {
    let h = Harness::start().await;
    let parent = h
        .spawn(json!({ "role": "developer", "model": "haiku", "name": "parent" }))
        .await;
    let child_dir = h.dir.path().join("child-project");
    std::fs::create_dir_all(&child_dir).unwrap();
    std::fs::write(child_dir.join("result.txt"), "the child's work").unwrap();
    let child = h
        .spawn(json!({
            "role": "tester", "model": "haiku", "name": "child",
            "parent_instance_id": parent, "project_dir": child_dir,
        }))
        .await;
    std::fs::write(
        workdir(&h, &parent).await.join("plan.txt"),
        "the parent's plan",
    )
    .unwrap();

    // The parent's own Claude Code reads its child's file through troupe's tool.
    let call = format!(
        r#"CALL_TOOL mcp__troupe__retrieve_instance_file {{"instance_id": "{child}", "path": "result.txt"}}"#
    );
    let r = h
        .call(
            "send_to_instance",
            json!({ "instance_id": parent, "message": call, "timeout_seconds": 120 }),
        )
        .await;
    assert!(!r.is_error, "{}", r.text);
    let answer = r.structured["response"].as_str().unwrap_or_default();
    assert!(answer.contains("the child's work"), "{answer}");

    let parent_token = token_of(&h, &parent).await;
    let child_token = token_of(&h, &child).await;
    let by_parent = as_instance(&h, &parent, &parent_token).await;
    let by_child = as_instance(&h, &child, &child_token).await;

    for (client, id, path, text) in [
        (&by_parent, &parent, "plan.txt", "the parent's plan"),
        (&by_parent, &child, "result.txt", "the child's work"),
        (&by_child, &child, "result.txt", "the child's work"),
    ] {
        let r = client
            .call_tool(
                "retrieve_instance_file",
                json!({ "instance_id": id, "path": path }),
            )
            .await;
        assert!(!r.is_error, "{id}/{path}: {}", r.text);
        assert_eq!(r.structured["content"], text);
    }
    for tool in ["retrieve_instance_file", "list_instance_files"] {
        let r = by_child
            .call_tool(tool, json!({ "instance_id": parent, "path": "plan.txt" }))
            .await;
        assert!(r.is_error, "{tool}: {}", r.structured);
        assert!(
            r.text
                .contains("neither you nor one of the instances you spawned"),
            "{tool}: {}",
            r.text
        );
    }

    // REST is the person's: an instance, even with its own token, is sent to its MCP tools.
    let url = h.server().url();
    let (status, answer) = get(
        &url,
        &format!("/api/instances/{child}/files/content"),
        &[("path", "result.txt")],
        &parent_token,
        Some(&parent),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("MCP"),
        "{answer}"
    );
    for route in ["files", "files/content"] {
        let (status, err) = get(
            &url,
            &format!("/api/instances/{parent}/{route}"),
            &[("path", "plan.txt")],
            &child_token,
            Some(&child),
        )
        .await;
        assert_eq!(status, 403, "{route}: {err}");
    }
}
