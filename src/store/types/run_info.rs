//! [`RunInfo`]: a durable run's record, as the store hands it back.

use std::time::SystemTime;

use super::{RunId, RunStatus, WaitingFor};

/// A durable run's record, from [`TaskRunner::run_info`](crate::TaskRunner::run_info) or
/// [`TaskRunner::list_runs`](crate::TaskRunner::list_runs).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunInfo {
    /// The run's id.
    pub id: RunId,
    /// The [`TaskDef`](crate::TaskDef)'s name.
    pub name: String,
    /// The queue it runs in.
    pub queue: String,
    /// Higher is claimed first.
    pub priority: i32,
    /// Where it is now.
    pub status: RunStatus,
    /// Attempts started so far, across every process that claimed it (recoveries
    /// included). A [`Waiting`](RunStatus::Waiting) run has given its attempt back: the
    /// claim that resumes it counts it again, so a wait costs no attempt.
    pub attempts: u32,
    /// The most attempts it may have (1 + the definition's retries), not counting
    /// recoveries.
    pub max_attempts: u32,
    /// How many times it was claimed again because the process running it was lost
    /// (killed, crashed, or stopped renewing its lease). A recovery uses none of its
    /// retries; [`TaskDef::max_recoveries`](crate::TaskDef::max_recoveries) bounds them.
    pub recoveries: u32,
    /// The call id it answers.
    pub call_id: Option<String>,
    /// Its deduplication key, if submitted with one.
    pub dedup_key: Option<String>,
    /// When it was submitted.
    pub created_at: SystemTime,
    /// When it may start (later than `created_at` for a delayed run).
    pub scheduled_at: SystemTime,
    /// When its first attempt started.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: Option<SystemTime>,
    /// Why it failed or was cancelled: the handler's error as its `Display`, or what the
    /// runner saw (a timeout, a panic, an input that no longer deserializes, a lost worker).
    pub error: Option<String>,
    /// The handler's `Ok` value, as JSON.
    pub output: Option<serde_json::Value>,
    /// Its input, as the JSON text it was submitted with.
    pub input: String,
    /// Whether a cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// Its durable steps ([`TaskContext::step`](crate::TaskContext::step)) in the order they
    /// first started: how far the run got. Filled by
    /// [`run_info`](crate::TaskRunner::run_info); empty in
    /// [`list_runs`](crate::TaskRunner::list_runs).
    pub steps: Vec<crate::store::StepInfo>,
    /// What it waits for, while [`Waiting`](RunStatus::Waiting).
    pub waiting_for: Option<WaitingFor>,
    /// The run that spawned it ([`TaskContext::spawn`](crate::TaskContext::spawn)), if any.
    pub parent: Option<RunId>,
    /// Its estimate in its queue's budget units, if submitted with
    /// [`RunOptions::cost`](super::RunOptions::cost).
    pub cost: Option<u64>,
    /// The units charged for it across its claims: the estimate each claim of a queue with
    /// a [`global_budget`](crate::QueueConfig::global_budget) reserved, replaced by what its
    /// handler reported with [`TaskContext::charge`](crate::TaskContext::charge) (a claim
    /// handed back unstarted keeps its reservation). `None` until something is charged.
    pub charged: Option<u64>,
}
