//! The command line, as clap parses it.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Look at and steer the durable runs of a taskrunner store.
#[derive(Debug, Parser)]
#[command(name = "taskrunner", version)]
pub(crate) struct Cli {
    /// The store: a SQLite file's path, or a postgres:// URL.
    #[arg(long, env = "TASKRUNNER_DB", global = true, hide_env_values = true)]
    pub(crate) db: Option<String>,
    /// How to print: tables for people, JSON for scripts (only JSON on stdout).
    #[arg(short, long, value_enum, default_value = "table", global = true)]
    pub(crate) output: Format,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Durable runs: list, show, cancel, retry, signal.
    #[command(subcommand)]
    Runs(Runs),
    /// Durable schedules: list, pause, resume, trigger.
    #[command(subcommand)]
    Schedules(Schedules),
    /// Every queue with durable runs: counts and recent times.
    Queues,
    /// Deletes finished runs past an age or a count.
    Prune {
        /// Delete finished runs older than this (`7d`, `24h`, `30m`, `90s`).
        #[arg(long, default_value = "7d")]
        max_age: String,
        /// Keep at most this many finished runs.
        #[arg(long, default_value_t = 100_000)]
        keep: u64,
    },
    /// Brings the store's schema up to date (opening it does; this only says so).
    Migrate,
    /// Serves the dashboard on 127.0.0.1, behind a one-time token in the printed URL.
    Ui {
        /// The port (0: any free one).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

/// Which runs a listing or a bulk cancel takes.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct Filter {
    /// pending, delayed, running, completed, failed or cancelled.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Only this queue.
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// Only runs of this definition.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Only runs whose input JSON contains this text.
    #[arg(long)]
    pub(crate) input: Option<String>,
    /// Only runs submitted at or after this time (2026-12-03T14:00:00Z, 2026-12-03).
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// Only runs submitted before this time.
    #[arg(long)]
    pub(crate) to: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Runs {
    /// Runs, newest first.
    List {
        #[command(flatten)]
        filter: Filter,
        /// Only runs older than this id (the `next` of the page before).
        #[arg(long)]
        before: Option<String>,
        /// At most this many runs (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One run: input, output, error, steps.
    Show { id: String },
    /// Cancels one run, or every unfinished run a filter matches (after a confirmation).
    Cancel {
        /// The run; without it, every run the filter matches.
        id: Option<String>,
        #[command(flatten)]
        filter: Filter,
        /// Do not ask before a bulk cancel.
        #[arg(long)]
        yes: bool,
    },
    /// Runs a failed or cancelled run again (same id).
    Retry { id: String },
    /// Sends a signal to a run that has not finished (an approval, say): kept until the
    /// run's `wait_for_signal(name, ..)` takes it.
    Signal {
        id: String,
        /// The signal's name, as the run waits for it.
        name: String,
        /// Its value, as JSON: '{"ok":true}', '"text"', 42 (default: null).
        #[arg(default_value = "null")]
        value: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum Schedules {
    /// Every durable schedule.
    List,
    /// No fire until resumed.
    Pause { name: String },
    /// Fires again from the next occurrence.
    Resume { name: String },
    /// One run now.
    Trigger { name: String },
}
