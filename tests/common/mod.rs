//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use taskrunner::{Event, EventStream, Lagged};
use tokio::time::Instant;

/// Counts handlers inside a section, remembering the most at once and the order they entered.
#[derive(Default)]
pub struct Probe {
    inside: AtomicUsize,
    max: AtomicUsize,
    entered: Mutex<Vec<String>>,
}

/// Leaves the probe's section when dropped, so a cancelled (dropped) handler leaves too.
pub struct Inside(Arc<Probe>);

impl Probe {
    pub fn new() -> Arc<Probe> {
        Arc::new(Probe::default())
    }

    pub fn enter(self: &Arc<Self>, label: impl Into<String>) -> Inside {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        self.entered.lock().unwrap().push(label.into());
        Inside(Arc::clone(self))
    }

    pub fn inside(&self) -> usize {
        self.inside.load(Ordering::SeqCst)
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    pub fn entered(&self) -> Vec<String> {
        self.entered.lock().unwrap().clone()
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Lets every ready task run on a paused clock: the runtime advances time only once nothing
/// is ready, and then only to this sleep's deadline (one timer tick, 1 ms), so timers set
/// further out do not fire.
pub async fn settle() {
    tokio::time::sleep(Duration::from_micros(1)).await;
}

/// A task named `name` that holds its slot until `gate` gives it a permit, then returns
/// `value`.
pub fn gated<T: Clone + Send + Sync + 'static>(
    name: &str,
    gate: &Arc<tokio::sync::Semaphore>,
    value: T,
) -> taskrunner::Task<
    impl Fn(taskrunner::TaskContext) -> futures::future::BoxFuture<'static, Result<T, String>>
        + Send
        + Sync,
> {
    let gate = Arc::clone(gate);
    taskrunner::Task::new(name, move |_: taskrunner::TaskContext| {
        let (gate, value) = (Arc::clone(&gate), value.clone());
        Box::pin(async move {
            gate.acquire().await.unwrap().forget();
            Ok(value)
        }) as futures::future::BoxFuture<'static, Result<T, String>>
    })
}

/// Records the clock at the start of every attempt.
#[derive(Clone, Default)]
pub struct Starts(Arc<Mutex<Vec<Instant>>>);

impl Starts {
    pub fn mark(&self) {
        self.0.lock().unwrap().push(Instant::now());
    }
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    /// The waits between consecutive attempt starts.
    pub fn gaps(&self) -> Vec<Duration> {
        let starts = self.0.lock().unwrap();
        starts.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Every event received so far, without waiting.
pub fn received(events: &mut EventStream) -> Vec<Result<Event, Lagged>> {
    let mut out = Vec::new();
    // Unconstrained: past tokio's coop budget, a receive would say "pending" instead.
    while let Some(Some(event)) =
        futures::FutureExt::now_or_never(tokio::task::unconstrained(events.next()))
    {
        out.push(event);
    }
    out
}
