//! `troupe report`: cost and audit reports read from the database file itself, read-only, so
//! they work with the server running or stopped.

use std::path::Path;
use std::str::FromStr;

use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

/// How cost rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Instance,
    Model,
    Team,
    Day,
    Message,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Opens the database read-only; a missing file is an error that names the fix.
pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    if !path.exists() {
        anyhow::bail!(
            "no troupe database at {}; `troupe serve` makes it there, or name another with --db \
             (TROUPE_DB)",
            path.display()
        );
    }
    let options =
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?.read_only(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))
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
    pool: &SqlitePool,
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
        By::Message => (
            "COALESCE(u.message_id, '(none)'), u.instance_id",
            vec!["message", "instance"],
        ),
    };
    let sql = format!(
        "SELECT {keys}, COUNT(*), SUM(u.input_tokens), SUM(u.output_tokens),
                SUM(u.cache_creation_tokens), SUM(u.cache_read_tokens),
                CASE WHEN COUNT(u.cost_micros) = 0 THEN NULL ELSE SUM(u.cost_micros) END,
                COUNT(*) - COUNT(u.cost_micros)
         FROM usage_records u
         JOIN instances i ON i.id = u.instance_id
         LEFT JOIN teams t ON t.id = i.team_id
         WHERE (?1 IS NULL OR u.created_at >= ?1) AND (?2 IS NULL OR t.name = ?2)
         GROUP BY {keys}
         ORDER BY MIN(u.created_at)"
    );
    // Audited: `keys` is one of the fixed expressions above.
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(since)
        .bind(team)
        .fetch_all(pool)
        .await?;
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
    Ok(out)
}

/// The audit log, oldest first, since a day and for one instance if given.
pub async fn audit(
    pool: &SqlitePool,
    since: Option<&str>,
    instance: Option<&str>,
) -> anyhow::Result<Report> {
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
}

impl Report {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let rows: Vec<Value> = self
                    .rows
                    .iter()
                    .map(|r| {
                        Value::Object(
                            self.columns
                                .iter()
                                .map(|c| c.to_string())
                                .zip(r.iter().cloned())
                                .collect(),
                        )
                    })
                    .collect();
                serde_json::to_string_pretty(&rows).expect("JSON") + "\n"
            }
            Format::Csv => {
                let mut out = self.columns.join(",") + "\n";
                for r in &self.rows {
                    let cells: Vec<String> = r.iter().map(|v| csv_cell(&plain(v))).collect();
                    out.push_str(&cells.join(","));
                    out.push('\n');
                }
                out
            }
            Format::Table => {
                let cells: Vec<Vec<String>> = self
                    .rows
                    .iter()
                    .map(|r| {
                        r.iter()
                            .zip(&self.columns)
                            .map(|(v, c)| shown(v, c))
                            .collect()
                    })
                    .collect();
                let widths: Vec<usize> = (0..self.columns.len())
                    .map(|i| {
                        cells
                            .iter()
                            .map(|r| r[i].chars().count())
                            .chain([self.columns[i].len()])
                            .max()
                            .unwrap_or(0)
                    })
                    .collect();
                let line = |row: Vec<String>| {
                    row.iter()
                        .zip(&widths)
                        .map(|(c, w)| format!("{c:<w$}"))
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_string()
                        + "\n"
                };
                let mut out = line(self.columns.iter().map(|c| c.to_string()).collect());
                if cells.is_empty() {
                    out.push_str("(nothing recorded)\n");
                }
                for r in cells {
                    out.push_str(&line(r));
                }
                out
            }
        }
    }
}

/// A value as CSV takes it: null as empty.
fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value for people: a cost in dollars, an unpriced cost named so.
fn shown(v: &Value, column: &str) -> String {
    match (column, v) {
        ("cost_usd", Value::Null) => "unpriced".into(),
        ("cost_usd", Value::Number(n)) => format!("${:.4}", n.as_f64().unwrap_or(0.0)),
        (_, Value::Null) => "-".into(),
        _ => plain(v),
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_formats_hold_the_same_figures() {
        let r = Report {
            columns: vec!["model", "calls", "cost_usd"],
            rows: vec![
                vec![json!("claude-haiku-4-5"), json!(2), json!(0.0123)],
                vec![json!("mystery, v2"), json!(1), Value::Null],
            ],
        };
        let table = r.render(Format::Table);
        assert!(
            table.starts_with("model             calls  cost_usd\n"),
            "{table}"
        );
        assert!(table.contains("$0.0123"), "{table}");
        assert!(table.contains("unpriced"), "{table}");
        let csv = r.render(Format::Csv);
        assert_eq!(
            csv,
            "model,calls,cost_usd\nclaude-haiku-4-5,2,0.0123\n\"mystery, v2\",1,\n"
        );
        let json: Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(json[0]["cost_usd"], 0.0123);
        assert_eq!(json[1]["cost_usd"], Value::Null);
    }
}
