//! The queries behind `troupe report`, on a database opened read-only.

use std::path::Path;
use std::str::FromStr;

use serde_json::{Value, json};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// How cost rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Instance,
    Model,
    Team,
    Day,
    Message,
    /// The host that ran the instance (a fleet's hosts on one PostgreSQL registry).
    Host,
}

/// Opens the database read-only; a missing file is an error that names the fix. A
/// `postgres://` URL opens that registry (read in a read-only transaction mode).
pub async fn open(path: &Path) -> anyhow::Result<super::Db> {
    if let Some(url) = path.to_str().filter(|p| super::is_postgres_url(p)) {
        let shown = super::redacted(url);
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?
            .options([("default_transaction_read_only", "on")]);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach the database {shown}: {}",
                    super::no_secret(&e, url)
                )
            })?;
        return Ok(super::Db::postgres(pool));
    }
    if !path.exists() {
        anyhow::bail!(
            "no troupe database at {}; `troupe serve` makes it there, or name another with --db \
             (TROUPE_DB)",
            path.display()
        );
    }
    let options =
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?.read_only(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    Ok(super::Db::sqlite(pool))
}

/// A report: column names and rows of values (numbers, text, or null).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

/// Cost grouped `by`, since a day (YYYY-MM-DD) and for one team if given. A group whose calls
/// are all to unpriced models has no cost (null, shown as "unpriced"); one with some gets
/// the priced part and the count of the others.
pub async fn cost(
    db: &super::Db,
    by: By,
    since: Option<&str>,
    team: Option<&str>,
) -> anyhow::Result<Report> {
    // Each grouping is one fixed expression: nothing from the caller is spliced into SQL.
    let (keys, columns): (&str, Vec<&'static str>) = match by {
        By::Instance => ("u.instance_id, i.role", vec!["instance", "role"]),
        By::Model => ("u.model", vec!["model"]),
        By::Team => ("COALESCE(t.name, '(no team)')", vec!["team"]),
        By::Day => ("substr(u.created_at, 1, 10)", vec!["day"]),
        By::Host => ("COALESCE(NULLIF(i.host, ''), '(unknown)')", vec!["host"]),
        By::Message => (
            "COALESCE(u.message_id, '(none)'), u.instance_id",
            vec!["message", "instance"],
        ),
    };
    // The backends differ in how a parameter is named and typed, and PostgreSQL sums BIGINTs
    // into NUMERIC unless told otherwise.
    let sql = |filter: &str, sum: &str| {
        format!(
            "SELECT {keys}, COUNT(*), SUM(u.input_tokens){sum}, SUM(u.output_tokens){sum},
                    SUM(u.cache_creation_tokens){sum}, SUM(u.cache_read_tokens){sum},
                    CASE WHEN COUNT(u.cost_micros) = 0 THEN NULL ELSE SUM(u.cost_micros){sum} END,
                    COUNT(*) - COUNT(u.cost_micros)
             FROM usage_records u
             JOIN instances i ON i.id = u.instance_id
             LEFT JOIN teams t ON t.id = i.team_id
             WHERE {filter}
             GROUP BY {keys}
             ORDER BY MIN(u.created_at)"
        )
    };
    // Audited: `keys` is one of the fixed expressions above, `filter` and `sum` constants.
    super::on!(db,
        sqlite: |pool| {
            let sql = sql("(?1 IS NULL OR u.created_at >= ?1) AND (?2 IS NULL OR t.name = ?2)", "");
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(since)
                .bind(team)
                .fetch_all(pool)
                .await?;
            Ok(cost_report(&rows, columns))
        },
        postgres: |pool| {
            let sql = sql(
                "($1::text IS NULL OR u.created_at >= $1) AND ($2::text IS NULL OR t.name = $2)",
                "::bigint",
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(since)
                .bind(team)
                .fetch_all(pool)
                .await?;
            Ok(cost_report(&rows, columns))
        },
    )
}

/// The cost rows as a report: the grouping's columns, five sums, the cost in dollars (null
/// when nothing in the group is priced) and the count of unpriced calls.
fn cost_report<R>(rows: &[R], columns: Vec<&'static str>) -> Report
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let n = columns.len();
    let mut out = Report {
        columns: columns
            .into_iter()
            .chain([
                "calls",
                "input_tokens",
                "output_tokens",
                "cache_write_tokens",
                "cache_read_tokens",
                "cost_usd",
                "unpriced_calls",
            ])
            .collect(),
        rows: Vec::new(),
    };
    for row in rows {
        let mut values: Vec<Value> = (0..n)
            .map(|i| json!(row.try_get::<Option<String>, _>(i).ok().flatten()))
            .collect();
        for i in n..n + 5 {
            values.push(json!(row.try_get::<i64, _>(i).unwrap_or(0)));
        }
        let cost: Option<i64> = row.try_get(n + 5).unwrap_or(None);
        values.push(cost.map_or(Value::Null, |c| json!(c as f64 / 1e6)));
        values.push(json!(row.try_get::<i64, _>(n + 6).unwrap_or(0)));
        out.rows.push(values);
    }
    out
}

/// The audit log, oldest first, since a day and for one instance if given.
pub async fn audit(
    db: &super::Db,
    since: Option<&str>,
    instance: Option<&str>,
) -> anyhow::Result<Report> {
    super::on!(db,
        sqlite: |pool| {
            let rows = sqlx::query(
                "SELECT at, actor, instance_id, kind, detail FROM audit_events
                 WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR instance_id = ?2)
                 ORDER BY id",
            )
            .bind(since)
            .bind(instance)
            .fetch_all(pool)
            .await?;
            Ok(Report {
                columns: vec!["at", "actor", "instance", "kind", "detail"],
                rows: rows
                    .into_iter()
                    .map(|r| {
                        (0..5)
                            .map(|i| json!(r.try_get::<Option<String>, _>(i).ok().flatten()))
                            .collect()
                    })
                    .collect(),
            })
        },
        postgres: |pool| {
            let rows = sqlx::query(
                "SELECT at, actor, instance_id, kind, detail FROM audit_events
                 WHERE ($1::text IS NULL OR at >= $1) AND ($2::text IS NULL OR instance_id = $2)
                 ORDER BY id",
            )
            .bind(since)
            .bind(instance)
            .fetch_all(pool)
            .await?;
            Ok(Report {
                columns: vec!["at", "actor", "instance", "kind", "detail"],
                rows: rows
                    .into_iter()
                    .map(|r| {
                        (0..5)
                            .map(|i| json!(r.try_get::<Option<String>, _>(i).ok().flatten()))
                            .collect()
                    })
                    .collect(),
            })
        },
    )
}
