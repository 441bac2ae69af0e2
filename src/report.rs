//! `troupe report`: cost and audit reports read from the database file itself, read-only, so
//! they work with the server running or stopped. The queries are in `db::report`; this is how
//! their rows are shown.

use serde_json::Value;

pub use crate::db::report::{By, Report, audit, cost, open};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
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
    use serde_json::json;

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
