//! `troupe migrate`: a registry copied from an SQLite file into a PostgreSQL database, in one
//! transaction on each side, then checked (row counts and cost sums) before it commits.
//!
//! The copy is driven by the PostgreSQL schema: each table's columns, in order, with their
//! types, are read from `information_schema`, and the same columns are selected from the SQLite
//! file. So the texts are built at run time; `tests/postgres.rs` runs the whole copy against a
//! registry a real server wrote.

use std::path::Path;

use anyhow::{Context, bail};
use futures::TryStreamExt;
use sqlx::Row;

/// Every table of the registry, each after those it refers to. The copy refuses a database
/// whose tables are not exactly these, so a table added later cannot be left behind.
pub const TABLES: &[&str] = &[
    "hosts",
    "host_calls",
    "fleet",
    "teams",
    "instances",
    "messages",
    "output_chunks",
    "interrupts",
    "team_members",
    "audit_events",
    "settings",
    "replies",
    "instance_credentials",
    "usage_records",
    "worktrees",
    "permission_requests",
    "approvals",
    "web_sessions",
    "events",
    "notify_deliveries",
    "notify_links",
    "push_subscriptions",
];

/// Rows per INSERT: well under PostgreSQL's 65,535 parameters for the widest table.
const BATCH: usize = 500;

/// What was copied: each table with its rows, and the cost recorded (micro-dollars), as both
/// sides counted them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub tables: Vec<(&'static str, i64)>,
    pub cost_micros: i64,
}

/// Why a copy did not start: the target holds a registry already.
#[derive(Debug)]
pub struct NotEmpty(pub Vec<(&'static str, i64)>);

impl std::fmt::Display for NotEmpty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held: Vec<String> = self
            .0
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        write!(
            f,
            "the target database already holds a registry ({}); nothing was copied. Pass \
             --replace to empty it and copy over it",
            held.join(", ")
        )
    }
}

impl std::error::Error for NotEmpty {}

/// One column of a table, as PostgreSQL declares it.
#[derive(Debug)]
struct Column {
    name: String,
    kind: Kind,
    identity: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Int,
    Bool,
}

enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
}

/// Copies the SQLite registry at `from` into the PostgreSQL database at `to` (its schema made
/// or brought up to date first), calling `progress` after each table. Nothing is written to
/// the target unless every row is copied and the counts and cost sums agree.
pub async fn sqlite_to_postgres(
    from: &Path,
    to: &str,
    replace: bool,
    mut progress: impl FnMut(&str, i64),
) -> anyhow::Result<Copied> {
    if !from.exists() {
        bail!("no troupe database at {}", from.display());
    }
    is_registry(from).await?;
    // Brought up to date as `serve` would, so both sides have the same columns.
    let source = super::open(from, std::time::Duration::from_secs(60)).await?;
    let source = source
        .as_sqlite()
        .cloned()
        .context("the source is an SQLite file")?;
    let target = super::connect_postgres(to, std::time::Duration::from_secs(60)).await?;
    let shown = super::redacted(to);

    let mut src = source.acquire().await?;
    let mut dst = target.begin().await?;
    check_tables(&mut dst).await?;
    let held = counts_pg(&mut dst).await?;
    if held.iter().any(|(_, n)| *n > 0) {
        if !replace {
            return Err(NotEmpty(held).into());
        }
        let all = TABLES.join(", ");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "TRUNCATE {all} RESTART IDENTITY"
        )))
        .execute(&mut *dst)
        .await?;
    }
    // The rows keep their own events: the event log is copied as it is, not written again.
    for table in TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} DISABLE TRIGGER USER"
        )))
        .execute(&mut *dst)
        .await
        .with_context(|| format!("cannot set aside {table}'s triggers in {shown}"))?;
    }

    // One snapshot of the source: a server still writing to it changes nothing read here.
    sqlx::query("BEGIN").execute(&mut *src).await?;
    let mut copied = Vec::new();
    for table in TABLES {
        let n = copy_table(&mut src, &mut dst, table).await?;
        progress(table, n);
        copied.push((*table, n));
    }

    for table in TABLES {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE {table} ENABLE TRIGGER USER"
        )))
        .execute(&mut *dst)
        .await?;
    }
    let theirs = counts_pg(&mut dst).await?;
    let ours = counts_sqlite(&mut src).await?;
    if theirs != ours || ours != copied {
        bail!(
            "the copy does not add up (source {ours:?}, target {theirs:?}); nothing was kept in \
             the target"
        );
    }
    let cost_src: i64 =
        sqlx::query_scalar("SELECT COALESCE(SUM(cost_micros), 0) FROM usage_records")
            .fetch_one(&mut *src)
            .await?;
    let cost_dst: i64 =
        sqlx::query_scalar("SELECT COALESCE(SUM(cost_micros), 0)::BIGINT FROM usage_records")
            .fetch_one(&mut *dst)
            .await?;
    if cost_src != cost_dst {
        bail!(
            "the cost does not add up (source {cost_src} µ$, target {cost_dst} µ$); nothing was \
             kept in the target"
        );
    }
    dst.commit().await?;
    sqlx::query("COMMIT").execute(&mut *src).await?;
    src.close().await.ok();
    source.close().await;
    target.close().await;
    Ok(Copied {
        tables: copied,
        cost_micros: cost_src,
    })
}

/// Whether `path` is a troupe registry (before it is opened to be brought up to date, which
/// would add troupe's tables to any SQLite file).
async fn is_registry(path: &Path) -> anyhow::Result<()> {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    let mut conn =
        sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .read_only(true)
            .connect()
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master
         WHERE type = 'table' AND name IN ('_sqlx_migrations', 'instances', 'messages')",
    )
    .fetch_one(&mut conn)
    .await
    .with_context(|| format!("{} is not an SQLite database", path.display()))?;
    if tables < 3 {
        bail!(
            "{} is not a troupe registry (it has no instances or messages tables)",
            path.display()
        );
    }
    Ok(())
}

/// The target's tables are the ones this copy knows.
async fn check_tables(dst: &mut sqlx::PgConnection) -> anyhow::Result<()> {
    let mut found: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::TEXT FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
           AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *dst)
    .await?;
    found.sort();
    let mut known: Vec<&str> = TABLES.to_vec();
    known.sort();
    if found != known {
        bail!(
            "the target's tables ({}) are not the registry's ({}); is it a database of a newer \
             troupe?",
            found.join(", "),
            known.join(", ")
        );
    }
    Ok(())
}

async fn counts_pg(dst: &mut sqlx::PgConnection) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let mut out = Vec::new();
    for table in TABLES {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *dst)
                .await?;
        out.push((*table, n));
    }
    Ok(out)
}

async fn counts_sqlite(
    src: &mut sqlx::SqliteConnection,
) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let mut out = Vec::new();
    for table in TABLES {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *src)
                .await?;
        out.push((*table, n));
    }
    Ok(out)
}

async fn columns(dst: &mut sqlx::PgConnection, table: &str) -> anyhow::Result<Vec<Column>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name::TEXT, data_type::TEXT, is_identity::TEXT
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut *dst)
    .await?;
    rows.into_iter()
        .map(|(name, data_type, identity)| {
            let kind = match data_type.as_str() {
                "text" => Kind::Text,
                "bigint" | "integer" => Kind::Int,
                "boolean" => Kind::Bool,
                other => bail!("{table}.{name} is of type {other}, which the copy does not know"),
            };
            Ok(Column {
                name,
                kind,
                identity: identity == "YES",
            })
        })
        .collect()
}

/// The SQLite expression for a PostgreSQL column: the column itself, except the order seats
/// were made in, which SQLite keeps as the rowid.
fn source_expr(table: &str, column: &str) -> String {
    match (table, column) {
        ("team_members", "seat") => "rowid".into(),
        _ => format!("\"{column}\""),
    }
}

async fn copy_table(
    src: &mut sqlx::SqliteConnection,
    dst: &mut sqlx::PgConnection,
    table: &str,
) -> anyhow::Result<i64> {
    let columns = columns(dst, table).await?;
    let select: Vec<String> = columns
        .iter()
        .map(|c| source_expr(table, &c.name))
        .collect();
    let select = format!("SELECT {} FROM {table} ORDER BY rowid", select.join(", "));
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let insert = format!(
        "INSERT INTO {table} ({}) OVERRIDING SYSTEM VALUE ",
        names.join(", ")
    );
    let mut copied = 0i64;
    let mut batch: Vec<Vec<Cell>> = Vec::with_capacity(BATCH);
    {
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(select.clone())).fetch(&mut *src);
        while let Some(row) = rows
            .try_next()
            .await
            .with_context(|| format!("cannot read {table} from the source"))?
        {
            let cells = columns
                .iter()
                .enumerate()
                .map(|(i, c)| cell(&row, i, c.kind))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("cannot read a row of {table}"))?;
            batch.push(cells);
            if batch.len() == BATCH {
                copied += insert_batch(dst, &insert, &mut batch, table).await?;
            }
        }
    }
    copied += insert_batch(dst, &insert, &mut batch, table).await?;
    for c in columns.iter().filter(|c| c.identity) {
        // The next id made in the target follows the last one copied.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{name}'),
                           (SELECT COALESCE(MAX({name}), 0) + 1 FROM {table}), false)",
            name = c.name
        )))
        .execute(&mut *dst)
        .await?;
    }
    Ok(copied)
}

fn cell(row: &sqlx::sqlite::SqliteRow, i: usize, kind: Kind) -> sqlx::Result<Cell> {
    Ok(match kind {
        Kind::Text => Cell::Text(row.try_get(i)?),
        Kind::Int => Cell::Int(row.try_get(i)?),
        Kind::Bool => Cell::Bool(row.try_get(i)?),
    })
}

async fn insert_batch(
    dst: &mut sqlx::PgConnection,
    insert: &str,
    batch: &mut Vec<Vec<Cell>>,
    table: &str,
) -> anyhow::Result<i64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let n = batch.len() as i64;
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(insert);
    q.push_values(batch.drain(..), |mut row, cells| {
        for c in cells {
            match c {
                Cell::Text(v) => row.push_bind(v),
                Cell::Int(v) => row.push_bind(v),
                Cell::Bool(v) => row.push_bind(v),
            };
        }
    });
    q.build()
        .execute(&mut *dst)
        .await
        .with_context(|| format!("cannot write {table} to the target"))?;
    Ok(n)
}
