//! `troupe report` reads the database itself (the SQLite file, or the PostgreSQL database when
//! TROUPE_TEST_PG names a server): the same sums in every format, with the server stopped; and
//! the schema document's example queries run as written.

mod support;

use serde_json::{Value, json};
use support::Harness;

fn report(db: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("report")
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_agree_in_every_format_with_the_server_stopped() {
    let mut h = Harness::start().await;
    let priced = h.spawn(json!({ "role": "tester", "model": "haiku" })).await;
    let odd = h
        .spawn(json!({ "role": "tester", "model": "claude-unpriced-1" }))
        .await;
    for id in [&priced, &odd] {
        let r = h
            .call(
                "send_to_instance",
                json!({ "instance_id": id, "message": "count me" }),
            )
            .await;
        h.wait_for_transcript(id, r.structured["message_id"].as_str().unwrap())
            .await;
    }
    let (mut want_tokens, mut want_cost) = (0, 0);
    for id in [&priced, &odd] {
        for u in troupe::db::usage::UsageRecord::for_instance(h.pool(), id)
            .await
            .unwrap()
        {
            want_tokens +=
                u.input_tokens + u.output_tokens + u.cache_creation_tokens + u.cache_read_tokens;
            want_cost += u.cost_micros.unwrap_or(0);
        }
    }
    h.stop_server().await;
    let db = h
        .db_url
        .clone()
        .unwrap_or_else(|| h.data_dir.join("troupe.db").display().to_string());

    let (ok, json_text) = report(&db, &["cost", "--by", "model", "--format", "json"]);
    assert!(ok, "{json_text}");
    let rows: Vec<Value> = serde_json::from_str(&json_text).unwrap();
    let tokens: i64 = rows
        .iter()
        .map(|r| {
            [
                "input_tokens",
                "output_tokens",
                "cache_write_tokens",
                "cache_read_tokens",
            ]
            .iter()
            .map(|k| r[k].as_i64().unwrap())
            .sum::<i64>()
        })
        .sum();
    assert_eq!(tokens, want_tokens);
    let cost: f64 = rows.iter().filter_map(|r| r["cost_usd"].as_f64()).sum();
    assert!(
        (cost - want_cost as f64 / 1e6).abs() < 1e-9,
        "{cost} vs {want_cost}"
    );
    let unpriced = rows
        .iter()
        .find(|r| r["model"] == "claude-unpriced-1")
        .expect("the unpriced model has its row");
    assert_eq!(unpriced["cost_usd"], Value::Null);

    let (ok, csv) = report(&db, &["cost", "--by", "model", "--format", "csv"]);
    assert!(ok, "{csv}");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let csv_cost: f64 = lines
        .clone()
        .filter_map(|l| {
            l.split(',')
                .nth(at("cost_usd"))
                .and_then(|c| c.parse::<f64>().ok())
        })
        .sum();
    assert!((csv_cost - cost).abs() < 1e-9);
    assert!(
        lines.any(|l| l.starts_with("claude-unpriced-1,") && l.contains(",,")),
        "{csv}"
    );

    let (ok, table) = report(&db, &["cost", "--by", "model"]);
    assert!(ok, "{table}");
    assert!(
        table.lines().next().unwrap().starts_with("model"),
        "{table}"
    );
    assert!(table.contains("unpriced"), "{table}");
    for by in ["instance", "team", "day", "message"] {
        let (ok, out) = report(&db, &["cost", "--by", by, "--format", "json"]);
        assert!(ok, "{by}: {out}");
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
        let t: i64 = rows.iter().map(|r| r["calls"].as_i64().unwrap()).sum();
        assert!(t >= 2, "{by}: {out}");
    }
    // One host ran them all: every call is counted under it.
    let (ok, out) = report(&db, &["cost", "--by", "host", "--format", "json"]);
    assert!(ok, "{out}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["host"], h.config().host.as_str(), "{out}");
    let (ok, out) = report(&db, &["cost", "--team", "nobody", "--format", "json"]);
    assert!(ok && out.trim() == "[]", "{out}");

    let (ok, audit) = report(&db, &["audit", "--instance", &priced]);
    assert!(ok, "{audit}");
    assert!(audit.contains("instance.spawn"), "{audit}");
    let (ok, said) = report(&db, &["cost", "--since", "yesterday"]);
    assert!(!ok && said.contains("YYYY-MM-DD"), "{said}");
    let (ok, said) = report(h.dir.path().join("none.db"), &["cost"]);
    assert!(!ok && said.contains("no troupe database"), "{said}");

    // The schema document's example queries run as written.
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema.md")).unwrap();
    let queries: Vec<&str> = doc
        .split("```sql")
        .skip(1)
        .map(|block| block.split("```").next().unwrap())
        .collect();
    assert_eq!(
        queries.len(),
        4,
        "three example queries, one in two dialects"
    );
    let backend = if h.db_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let mut ran = 0;
    for q in queries {
        let marked = q
            .trim_start()
            .strip_prefix("-- ")
            .and_then(|l| l.lines().next());
        if marked.is_some_and(|m| m != backend) {
            continue;
        }
        let rows = match &h.db_url {
            Some(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(q.to_string()))
                    .fetch_all(&pool)
                    .await
                    .map(|r| r.len())
            }
            None => {
                let pool = troupe::report::open(std::path::Path::new(&db))
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(q.to_string()))
                    .fetch_all(pool.as_sqlite().unwrap())
                    .await
                    .map(|r| r.len())
            }
        }
        .unwrap_or_else(|e| panic!("{backend}: {e}\n{q}"));
        assert!(rows > 0, "{q}");
        ran += 1;
    }
    assert_eq!(ran, 3, "three example queries on {backend}");
}
