//! What each command does, through the dashboard's JSON API.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use serde_json::{json, Value};
use taskrunner::store::Retention;

use crate::args::{Cli, Command, Filter, Format, Runs, Schedules};
use crate::client::{self, encode, Api};
use crate::output;

const RUN_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("QUEUE", "queue"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("CREATED", "created_at"),
    ("INPUT", "input"),
    ("ERROR", "error"),
];

fn query(filter: &Filter, before: Option<&str>, limit: u32) -> String {
    let mut pairs = vec![("limit", limit.to_string())];
    for (key, value) in [
        ("status", &filter.status),
        ("queue", &filter.queue),
        ("name", &filter.name),
        ("q", &filter.input),
        ("from", &filter.from),
        ("to", &filter.to),
    ] {
        if let Some(v) = value {
            pairs.push((key, v.clone()));
        }
    }
    if let Some(b) = before {
        pairs.push(("before", b.to_owned()));
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `7d`, `24h`, `30m`, `90s` as a duration.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("`{text}` is not a duration: use 7d, 24h, 30m or 90s");
    let (number, unit) = text.trim().split_at(text.trim().len().saturating_sub(1));
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "d" => n * 86_400,
        "h" => n * 3_600,
        "m" => n * 60,
        "s" => n,
        _ => return Err(bad()),
    };
    Ok(std::time::Duration::from_secs(secs))
}

pub(crate) async fn run(cli: Cli) -> Result<(), String> {
    let format = cli.output;
    let store = client::open(cli.db.as_deref()).await?;
    match cli.command {
        Command::Migrate => {
            let shown = client::redact(cli.db.as_deref().unwrap_or_default());
            eprintln!("the schema of {shown} is up to date");
            if format == Format::Json {
                println!("{}", json!({ "migrated": true }));
            }
            return Ok(());
        }
        Command::Prune { max_age, keep } => {
            let retention = Retention::new()
                .max_age(duration(&max_age)?)
                .max_finished(keep);
            let pruned = store.prune(&retention).await.map_err(|e| e.to_string())?;
            match format {
                Format::Json => println!("{}", json!({ "pruned": pruned })),
                Format::Table => println!("pruned {pruned} finished runs"),
            }
            return Ok(());
        }
        Command::Ui { port } => {
            let runner = client::runner(store)?;
            return crate::ui::serve(runner, port).await;
        }
        _ => {}
    }
    let runner = client::runner(store)?;
    let api = Api::new(runner.clone());
    let result = command(&api, format, cli.command).await;
    runner.shutdown().await;
    result
}

async fn command(api: &Api, format: Format, command: Command) -> Result<(), String> {
    match command {
        Command::Runs(Runs::List {
            filter,
            before,
            limit,
        }) => {
            let page = api
                .get(&format!(
                    "/api/runs?{}",
                    query(&filter, before.as_deref(), limit)
                ))
                .await?;
            let rows = page["runs"].as_array().cloned().unwrap_or_default();
            output::print(format, &page, &rows, RUN_COLUMNS);
            if format == Format::Table {
                if let Some(next) = page["next"].as_i64() {
                    eprintln!("more: --before {next}");
                }
            }
        }
        Command::Runs(Runs::Show { id }) => {
            let run = api.get(&format!("/api/runs/{}", encode(&id))).await?;
            output::record(
                format,
                &run,
                &[
                    ("id", "id"),
                    ("name", "name"),
                    ("queue", "queue"),
                    ("status", "status"),
                    ("attempts", "attempts"),
                    ("max attempts", "max_attempts"),
                    ("recoveries", "recoveries"),
                    ("waiting for", "waiting_for"),
                    ("parent", "parent"),
                    ("created", "created_at"),
                    ("started", "started_at"),
                    ("finished", "finished_at"),
                    ("input", "input"),
                    ("output", "output"),
                    ("error", "error"),
                    ("steps", "steps"),
                ],
            );
        }
        Command::Runs(Runs::Retry { id }) => {
            let done = api
                .post(&format!("/api/runs/{}/retry", encode(&id)))
                .await?;
            report(
                format,
                &done,
                &format!("run {id} will run again"),
                "it has not failed or been cancelled",
            )?;
        }
        Command::Runs(Runs::Signal { id, name, value }) => {
            if let Err(e) = serde_json::from_str::<Value>(&value) {
                return Err(format!(
                    "the signal's value `{value}` is not JSON: {e}; quote it for the shell, e.g. '{{\"ok\":true}}' or '\"text\"'"
                ));
            }
            let done = api
                .post_form(
                    &format!("/api/runs/{}/signal", encode(&id)),
                    &[("name", &name), ("value", &value)],
                )
                .await?;
            report(
                format,
                &done,
                &format!("signal `{name}` sent to run {id}"),
                "the run did not take it",
            )?;
        }
        Command::Runs(Runs::Cancel { id: Some(id), .. }) => {
            let done = api
                .post(&format!("/api/runs/{}/cancel", encode(&id)))
                .await?;
            report(
                format,
                &done,
                &format!("run {id} cancelled"),
                "it had already finished",
            )?;
        }
        Command::Runs(Runs::Cancel {
            id: None,
            filter,
            yes,
        }) => bulk_cancel(api, format, filter, yes).await?,
        Command::Schedules(Schedules::List) => {
            let all = api.get("/api/schedules").await?;
            output::print(
                format,
                &all,
                all.as_array().map_or(&[][..], Vec::as_slice),
                &[
                    ("NAME", "name"),
                    ("STATUS", "status"),
                    ("RUNS", "runs"),
                    ("FAILURES", "failures"),
                    ("LAST RUN", "last_run_at"),
                    ("NEXT RUN", "next_run_at"),
                    ("LAST ERROR", "last_error"),
                ],
            );
        }
        Command::Schedules(action) => {
            let (verb, name) = match &action {
                Schedules::Pause { name } => ("pause", name),
                Schedules::Resume { name } => ("resume", name),
                Schedules::Trigger { name } => ("trigger", name),
                Schedules::List => unreachable!("listed above"),
            };
            let done = api
                .post(&format!("/api/schedules/durable/{}/{verb}", encode(name)))
                .await?;
            report(
                format,
                &done,
                &format!("schedule {name}: {verb} done"),
                "nothing to do in its state",
            )?;
        }
        Command::Queues => {
            let all = api.get("/api/queues").await?;
            let durable: Vec<Value> = all
                .as_array()
                .map(|qs| {
                    qs.iter()
                        .filter(|q| !q["durable"].is_null())
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            output::print(
                format,
                &Value::Array(durable.clone()),
                &durable,
                &[
                    ("QUEUE", "name"),
                    ("PENDING", "durable.pending"),
                    ("DELAYED", "durable.delayed"),
                    ("RUNNING", "durable.running"),
                    ("FAILED 1H", "durable.failed_last_hour"),
                    ("DONE 1H", "durable.completed_last_hour"),
                    ("WAIT P50 MS", "durable.wait_p50_ms"),
                    ("RUN P50 MS", "durable.run_p50_ms"),
                    ("RUN P99 MS", "durable.run_p99_ms"),
                ],
            );
        }
        Command::Prune { .. } | Command::Migrate | Command::Ui { .. } => {
            unreachable!("handled before")
        }
    }
    Ok(())
}

/// Prints an action's answer; an action that did nothing is a failure (exit 1).
fn report(format: Format, done: &Value, yes: &str, no: &str) -> Result<(), String> {
    if done["done"] != true {
        return Err(format!("nothing done: {no}"));
    }
    match format {
        Format::Json => println!("{done}"),
        Format::Table => println!("{yes}"),
    }
    Ok(())
}

async fn bulk_cancel(api: &Api, format: Format, filter: Filter, yes: bool) -> Result<(), String> {
    let any = [
        &filter.status,
        &filter.queue,
        &filter.name,
        &filter.input,
        &filter.from,
        &filter.to,
    ];
    if any.iter().all(|f| f.is_none()) {
        return Err("give a run id, or a filter (--status, --queue, --name, --input, --from, --to) to cancel every run it matches".into());
    }
    let mut ids = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = api
            .get(&format!(
                "/api/runs?{}",
                query(&filter, before.as_deref(), 500)
            ))
            .await?;
        for run in page["runs"].as_array().into_iter().flatten() {
            if matches!(
                run["status"].as_str(),
                Some("pending" | "delayed" | "running")
            ) {
                ids.push(run["id"].as_i64().unwrap_or_default());
            }
        }
        match page["next"].as_i64() {
            Some(next) => before = Some(next.to_string()),
            None => break,
        }
    }
    eprintln!("{} unfinished runs match", ids.len());
    if ids.is_empty() {
        if format == Format::Json {
            println!("{}", json!({ "matched": 0, "cancelled": 0 }));
        }
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err("not cancelled: pass --yes to cancel without a question".into());
        }
        eprint!("cancel {} runs? [y/N] ", ids.len());
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err("not cancelled".into());
        }
    }
    let mut cancelled = 0;
    for id in &ids {
        if api.post(&format!("/api/runs/{id}/cancel")).await?["done"] == true {
            cancelled += 1;
        }
    }
    match format {
        Format::Json => println!(
            "{}",
            json!({ "matched": ids.len(), "cancelled": cancelled })
        ),
        Format::Table => println!("cancelled {cancelled} of {} runs", ids.len()),
    }
    Ok(())
}
