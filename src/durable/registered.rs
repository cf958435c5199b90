//! A registered [`TaskDef`], with its input and output types erased: what a claim loop needs
//! to turn a claimed run (JSON in) into a task of the runner (JSON out).

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Instrument as _;

use tokio_util::sync::CancellationToken;

use super::Durable;
use crate::store::{Claimed, RunId, Store};
use crate::{EnqueueError, TaskContext, TaskDef, TaskHandle, TaskRunner};

/// The error an attempt ends with when its claim's lease was lost (never stored: a lost
/// claim writes nothing).
const LEASE_LOST: &str = "this process lost the run's lease: another claim runs it";

/// The run a durable handler is running, reachable from inside it (for durable steps: a
/// step's stored result is fenced by `token`).
#[derive(Debug, Clone)]
pub(crate) struct RunScope {
    pub(crate) id: RunId,
    pub(crate) token: i64,
    pub(crate) store: Store,
    /// How many steps of each name this attempt has called (fresh every attempt).
    pub(crate) steps: super::step::StepCounts,
    /// How many waits of each kind and name this attempt has made (fresh every attempt).
    pub(crate) waits: super::step::StepCounts,
    /// Fired by a wait that parked the run in the store: the attempt stops here, holding
    /// nothing (fresh every attempt).
    pub(crate) park: CancellationToken,
    /// The wait in progress in this attempt, if any: a run waits for one thing at a time
    /// (fresh every attempt).
    pub(crate) waiting: Arc<std::sync::Mutex<Option<String>>>,
    /// The durable side, for the handles of spawned children.
    pub(crate) durable: Arc<Durable>,
    /// Ends the claim in this process when a fenced write finds its lease lost.
    pub(crate) lease: super::LeaseWatch,
    /// This attempt's emits (fresh every attempt, counted like steps).
    pub(crate) emits: super::emit::Emitter,
    /// This attempt's charges and pauses (fresh every attempt).
    pub(crate) limits: super::charge::AttemptLimits,
}

tokio::task_local! {
    static RUN: RunScope;
}

/// The durable run the current handler runs, if it is one.
pub(crate) fn current_run() -> Option<RunScope> {
    RUN.try_with(Clone::clone).ok()
}

/// A definition this process runs, whatever its types.
pub(crate) trait Registered: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn queue(&self) -> &str;
    /// How many recoveries a run of it may have ([`TaskDef::max_recoveries`]).
    fn max_recoveries(&self) -> u32;
    /// Whether `input` deserializes as the definition's input type; the error says why not.
    fn check_input(&self, input: &str) -> Result<(), String>;
    /// Enqueues `run` on `runner` as a task whose `Ok` is the output as JSON and whose `Err`
    /// is the error's `Display`; the writes of its latest attempt are flushed through
    /// `latest`.
    fn enqueue(
        &self,
        runner: &TaskRunner,
        run: &Claimed,
        durable: &Arc<Durable>,
        lease: super::LeaseWatch,
        latest: &super::charge::LatestLimits,
    ) -> Result<TaskHandle<String, String>, EnqueueError>;
}

/// The types a definition's handler takes and gives, for `PhantomData`.
type Signature<I, Fut, T, E> = fn(I) -> (Fut, T, E);

pub(crate) struct Def<H, I, Fut, T, E> {
    def: TaskDef<H>,
    types: PhantomData<Signature<I, Fut, T, E>>,
}

impl<H, I, Fut, T, E> Def<H, I, Fut, T, E> {
    pub(crate) fn new(def: TaskDef<H>) -> Self {
        Def {
            def,
            types: PhantomData,
        }
    }
}

impl<H, I, Fut, T, E> Registered for Def<H, I, Fut, T, E>
where
    H: Fn(TaskContext, I) -> Fut + Send + Sync + 'static,
    I: DeserializeOwned + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Serialize + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    fn name(&self) -> &str {
        self.def.name()
    }

    fn queue(&self) -> &str {
        self.def.queue_name()
    }

    fn max_recoveries(&self) -> u32 {
        self.def.max_recoveries_value()
    }

    fn check_input(&self, input: &str) -> Result<(), String> {
        serde_json::from_str::<I>(input).map(drop).map_err(|e| {
            format!(
                "the run's input no longer deserializes as `{}`: {e}",
                std::any::type_name::<I>()
            )
        })
    }

    fn enqueue(
        &self,
        runner: &TaskRunner,
        run: &Claimed,
        durable: &Arc<Durable>,
        lease: super::LeaseWatch,
        latest: &super::charge::LatestLimits,
    ) -> Result<TaskHandle<String, String>, EnqueueError> {
        let handler = Arc::clone(self.def.handler());
        let input: Arc<str> = run.input.as_str().into();
        let budgeted = durable
            .plans
            .iter()
            .any(|p| p.queue == self.def.queue_name() && p.global.budget.is_some());
        let (queue, reserved) = (self.def.queue_name().to_owned(), run.reserved);
        let (store, limits_lease, id, token) =
            (durable.store.clone(), lease.clone(), run.id, run.token);
        // An attempt's charges and pauses: the claim's reservation is its first attempt's.
        let attempt_limits = move |attempt: i32, first: bool| {
            super::charge::AttemptLimits::new(super::charge::AttemptOf {
                store: &store,
                lease: &limits_lease,
                run: id,
                token,
                attempt,
                queue: &queue,
                budgeted,
                reserved: if first { reserved } else { 0 },
            })
        };
        let scope = RunScope {
            id: run.id,
            token: run.token,
            store: durable.store.clone(),
            steps: Default::default(),
            waits: Default::default(),
            park: CancellationToken::new(),
            waiting: Default::default(),
            durable: Arc::clone(durable),
            emits: super::emit::Emitter::new(
                run.id,
                run.token,
                durable.store.clone(),
                lease.clone(),
            ),
            limits: attempt_limits(run.attempts, true),
            lease,
        };
        let latest = latest.clone();
        // Attempts already used by earlier claims (this claim's first attempt included).
        let base = run.attempts;
        let span_name = run.name.clone();
        // The error of this claim's last attempt, stored with the next attempt's number.
        let failed: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let mut task = crate::Task::new(run.name.clone(), move |ctx: TaskContext| {
            let handler = Arc::clone(&handler);
            let failed = Arc::clone(&failed);
            let failed_slot = Arc::clone(&failed);
            let input = Arc::clone(&input);
            let scope = RunScope {
                steps: Default::default(),
                waits: Default::default(),
                park: CancellationToken::new(),
                waiting: Default::default(),
                emits: super::emit::Emitter::new(
                    scope.id,
                    scope.token,
                    scope.store.clone(),
                    scope.lease.clone(),
                ),
                limits: attempt_limits(base - 1 + ctx.attempt() as i32, ctx.attempt() == 1),
                ..scope.clone()
            };
            latest.set(&scope.limits);
            let attempt = base - 1 + ctx.attempt() as i32;
            let span = tracing::info_span!("run", run_id = %scope.id, name = %span_name, attempt);
            let attempt_body = async move {
                if scope.lease.is_lost() {
                    // The claim is over in this process: never run the handler again.
                    return Err(LEASE_LOST.to_owned());
                }
                if !scope.durable.begin(scope.id, scope.token) {
                    // Claimed ahead and handed back by the heartbeat while it waited for a
                    // slot (or its lease was lost): it runs in another claim. Its local task
                    // ends as parked: the run is back in the store.
                    ctx.mark_parked();
                    return Ok(super::wait::PARKED.to_owned());
                }
                if ctx.attempt() > 1 {
                    // A retry in this process: count it in the store, fenced, with the
                    // error of the attempt before (none if it timed out or panicked).
                    let error = failed.lock().map(|mut e| e.take()).unwrap_or_default();
                    match scope
                        .store
                        .record_attempt(scope.id, scope.token, attempt, error.as_deref())
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            scope.lease.lost();
                            return Err(LEASE_LOST.to_owned());
                        }
                        Err(e) => {
                            tracing::warn!(run = %scope.id, "could not record an attempt: {e}");
                        }
                    }
                }
                let input: I = serde_json::from_str(&input).map_err(|e| e.to_string())?;
                let emits = scope.emits.clone();
                let limits = scope.limits.clone();
                let parked = scope.park.clone();
                let marker = ctx.clone();
                // A wait that parked the run stops the attempt: the handler is dropped and
                // the run resumes from the top, replaying, once what it waits for happens.
                let output = tokio::select! {
                    biased;
                    output = RUN.scope(
                        scope,
                        crate::task::DURABLE_LIMITS.scope(Arc::new(limits.clone()), handler(ctx, input)),
                    ) => output,
                    () = parked.cancelled() => {
                        limits.flush().await;
                        if let Err(e) = emits.flush().await {
                            tracing::warn!("a parked run's emits were not stored: {e}");
                        }
                        marker.mark_parked();
                        return Ok(super::wait::PARKED.to_owned());
                    }
                };
                // The attempt's charges, pauses and emits are committed before its end is
                // stored.
                limits.flush().await;
                emits.flush().await.map_err(|e| e.to_string())?;
                match output {
                    Ok(value) => serde_json::to_string(&value)
                        .map_err(|e| format!("the run's output does not serialize to JSON: {e}")),
                    Err(e) => Err(e.to_string()),
                }
            };
            async move {
                let result = attempt_body.await;
                if let (Err(e), Ok(mut slot)) = (&result, failed_slot.lock()) {
                    *slot = Some(e.clone());
                }
                result
            }
            .instrument(span)
        })
        .queue(self.def.queue_name())
        .priority(run.priority)
        .call_id(
            run.call_id
                .clone()
                .unwrap_or_else(|| format!("run-{}", run.id)),
        );
        // Attempts lost with a dead process were recoveries, not retries.
        let used = run.attempts - run.recoveries;
        let left = u32::try_from(run.max_attempts - used).unwrap_or(0);
        if let Some(policy) = self.def.retry_policy() {
            task = task.retry(policy.clone().max_retries(left));
        }
        if let Some(timeout) = self.def.timeout_value() {
            task = task.timeout(timeout);
        }
        runner.enqueue_task(task)
    }
}
