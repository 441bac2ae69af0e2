//! `troupe notify`: where notices go, what reached them, and a test notice.

use serde_json::Value;

pub(super) async fn list(client: crate::cli::Client, json: bool) -> anyhow::Result<()> {
    let v = client.notify().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let sinks = v["sinks"].as_array().cloned().unwrap_or_default();
    if sinks.is_empty() {
        println!(
            "no notification sinks: add a [[notify]] table to troupe's config file and restart \
             troupe serve (the README's Notifications shows one)"
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = sinks
        .iter()
        .map(|s| {
            let events: Vec<&str> = s["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            vec![
                s["name"].as_str().unwrap_or("").to_string(),
                s["kind"].as_str().unwrap_or("").to_string(),
                s["url"].as_str().unwrap_or("").to_string(),
                events.join(","),
                s["quiet_hours"].as_str().unwrap_or("-").to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::cli::table(&["SINK", "KIND", "URL", "EVENTS", "QUIET"], &rows)
    );
    match v["public_url"].as_str() {
        Some(url) => println!("links point to {url}"),
        None => println!("no links: troupe serve runs without --public-url"),
    }
    let deliveries = v["deliveries"].as_array().cloned().unwrap_or_default();
    if deliveries.is_empty() {
        println!("nothing delivered yet");
        return Ok(());
    }
    let now = chrono::Utc::now();
    let rows: Vec<Vec<String>> = deliveries
        .iter()
        .map(|d| {
            let field = |k: &str| d[k].as_str().unwrap_or("").to_string();
            let status = match (d["state"].as_str(), d["last_status"].as_i64()) {
                (Some(state), Some(code)) => format!("{state} ({code})"),
                (Some(state), None) => state.to_string(),
                _ => String::new(),
            };
            vec![
                crate::cli::age(&field("created_at"), now),
                field("sink"),
                field("kind"),
                status,
                d["attempts"].to_string(),
                field("title"),
            ]
        })
        .collect();
    println!();
    print!(
        "{}",
        crate::cli::table(&["AGO", "SINK", "KIND", "STATE", "TRIES", "NOTICE"], &rows)
    );
    Ok(())
}

pub(super) async fn test(
    client: crate::cli::Client,
    name: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let v = client.notify_test(name).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut failed = 0;
    for r in v["results"].as_array().into_iter().flatten() {
        let sink = r["sink"].as_str().unwrap_or("?");
        let answer = r["answer"].as_str().unwrap_or("");
        let answer = if answer.is_empty() {
            String::new()
        } else {
            format!(": {answer}")
        };
        if r["delivered"].as_bool() == Some(true) {
            println!("{sink}: delivered (HTTP {}){answer}", r["status"]);
        } else {
            failed += 1;
            match r["status"].as_i64() {
                Some(code) => println!("{sink}: refused (HTTP {code}){answer}"),
                None => println!("{sink}: no answer{answer}"),
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} sink(s) did not take the test notice; see above");
    }
    Ok(())
}
