//! Parses cron expressions with `croner`, naming the field at fault when one is wrong.

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::ScheduleError;

const FIVE: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
const SIX: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day of month",
    "month",
    "day of week",
];

/// Parses a 5- or 6-field expression (or a nickname such as `@daily`).
pub(crate) fn parse(expression: &str) -> Result<Cron, ScheduleError> {
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let invalid = |field: &str, reason: String| ScheduleError::InvalidCron {
        expression: expression.to_owned(),
        field: field.to_owned(),
        reason,
    };
    let trimmed = expression.trim();
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    let names: &[&str] = match fields.len() {
        5 => &FIVE,
        6 => &SIX,
        _ if trimmed.starts_with('@') => &[],
        n => return Err(invalid("expression", format!("has {n} fields, not 5 or 6"))),
    };
    let error = match parser.parse(trimmed) {
        Ok(cron) => return Ok(cron),
        Err(error) => error,
    };
    // Find the field at fault: each field alone, with every other field `*`.
    for (i, name) in names.iter().enumerate() {
        let mut probe = vec!["*"; fields.len()];
        probe[i] = fields[i];
        if let Err(alone) = parser.parse(&probe.join(" ")) {
            return Err(invalid(
                name,
                format!("field `{}` is wrong ({alone})", fields[i]),
            ));
        }
    }
    Err(invalid("expression", format!("is wrong ({error})")))
}
