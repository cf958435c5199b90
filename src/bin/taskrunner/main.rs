//! `taskrunner`: look at and steer the durable runs of a taskrunner store from a shell (feature
//! `cli`).
//!
//! ```sh
//! taskrunner --db runs.db runs list --status failed --name research -o json
//! taskrunner --db runs.db runs show 42 | cancel 42 | retry 42
//! taskrunner --db runs.db runs signal 42 approve '{"ok":true}'
//! taskrunner --db postgres://app@db/app schedules list | pause NAME | resume NAME | trigger NAME
//! taskrunner --db runs.db queues | prune | migrate
//! taskrunner --db runs.db ui --port 8080
//! ```
//!
//! Every read and action goes through the dashboard's JSON API, in process, so the tool and
//! the web pages always agree. Tables by default; `-o json` prints only JSON on stdout
//! (messages go to stderr), and every failure exits non-zero.

mod args;
mod client;
mod commands;
mod output;
mod ui;

use std::process::ExitCode;

use clap::Parser as _;

use args::{Cli, Format};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.output;
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            if format == Format::Json {
                println!("{}", serde_json::json!({ "error": message }));
            }
            ExitCode::FAILURE
        }
    }
}
