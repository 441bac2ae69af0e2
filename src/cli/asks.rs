//! The person's answers from the command line: permission requests (`troupe permissions`,
//! `allow`, `deny`) and approvals (`troupe approve`).

pub(super) async fn permissions(client: crate::cli::Client, json: bool) -> anyhow::Result<()> {
    let p = client.permissions().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&p)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = p["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or("").to_string();
            vec![
                field("request_id"),
                field("instance_id"),
                crate::cli::age(&field("asked_at"), chrono::Utc::now()),
                field("summary"),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no permission requests are waiting");
    } else {
        print!(
            "{}",
            crate::cli::table(&["REQUEST", "INSTANCE", "WAITING", "ASKS"], &rows)
        );
        eprintln!("decide with: troupe allow <request> | troupe deny <request> -m <why>");
    }
    Ok(())
}

pub(super) async fn allow(client: crate::cli::Client, request_id: &str) -> anyhow::Result<()> {
    let r = client.decide(request_id, "allow", None).await?;
    println!(
        "{request_id} allowed: {} goes on with {}",
        r["instance_id"].as_str().unwrap_or("?"),
        r["summary"].as_str().unwrap_or("it")
    );
    Ok(())
}

pub(super) async fn deny(
    client: crate::cli::Client,
    request_id: &str,
    message: Option<&str>,
) -> anyhow::Result<()> {
    let r = client.decide(request_id, "deny", message).await?;
    println!(
        "{request_id} denied: {} goes on without {}",
        r["instance_id"].as_str().unwrap_or("?"),
        r["summary"].as_str().unwrap_or("it")
    );
    Ok(())
}

pub(super) async fn approvals(client: crate::cli::Client, json: bool) -> anyhow::Result<()> {
    let p = client.approvals().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&p)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = p["approvals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let field = |k: &str| a[k].as_str().unwrap_or("").to_string();
            vec![
                field("approval_id"),
                field("instance_id"),
                crate::cli::age(&field("asked_at"), chrono::Utc::now()),
                format!("{} {}", field("tool"), a["arguments"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no calls are waiting for your approval");
    } else {
        print!(
            "{}",
            crate::cli::table(&["APPROVAL", "INSTANCE", "WAITING", "CALL"], &rows)
        );
        eprintln!(
            "answer with: troupe approve <approval> | troupe approve <approval> --deny -m <why>"
        );
    }
    Ok(())
}

pub(super) async fn approve(
    client: crate::cli::Client,
    id: &str,
    deny: bool,
    message: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let a = client.approve(id, !deny, message).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&a)?);
        return Ok(());
    }
    let (instance, tool) = (
        a["instance_id"].as_str().unwrap_or("?"),
        a["tool"].as_str().unwrap_or("its call"),
    );
    match deny {
        false => println!("{id} approved: {instance} goes on with {tool}"),
        true => println!("{id} denied: {instance} does not run {tool}"),
    }
    Ok(())
}
