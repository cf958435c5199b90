//! Printing: aligned tables for people, JSON for scripts.

use serde_json::Value;

use crate::args::Format;

/// Prints `value` as JSON, or as a table of `columns` (a JSON field each, `a.b` for nested)
/// over the rows `value` is (an array) or holds.
pub(crate) fn print(format: Format, value: &Value, rows: &[Value], columns: &[(&str, &str)]) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Format::Table => print!("{}", table(rows, columns)),
    }
}

/// A field of `row` as one line of text.
fn cell(row: &Value, path: &str) -> String {
    let mut v = row;
    for key in path.split('.') {
        v = &v[key];
    }
    let text = match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let line: String = text.replace(['\n', '\r', '\t'], " ");
    match line.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

pub(crate) fn table(rows: &[Value], columns: &[(&str, &str)]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|(_, path)| cell(row, path)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (title, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([title.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |items: Vec<&str>| {
        let mut out = items
            .iter()
            .zip(&widths)
            .map(|(text, width)| format!("{text:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(columns.iter().map(|(title, _)| *title).collect());
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Prints one record as `key: value` lines (or JSON).
pub(crate) fn record(format: Format, value: &Value, fields: &[(&str, &str)]) {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Format::Table => {
            let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (title, path) in fields {
                let mut v = value;
                for key in path.split('.') {
                    v = &v[key];
                }
                let text = match v {
                    Value::Null => "-".to_owned(),
                    Value::String(s) => s.clone(),
                    other => serde_json::to_string_pretty(other).unwrap_or_default(),
                };
                println!("{title:<width$}  {text}");
            }
        }
    }
}
