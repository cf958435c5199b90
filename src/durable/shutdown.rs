//! The durable side's part in a runner's shutdown: stop claiming and hand back the runs
//! not to run here, then, once the runner is idle, let the writer store every end.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::Durable;
use crate::runner::{Extension, Stop};
use crate::sync::lock_std;
use crate::TaskRunner;

impl Extension for Durable {
    /// Begins a shutdown: stops claiming, and hands back to the store the runs claimed here
    /// that have not started (all of them for [`Stop::Abort`]), so another process takes
    /// them at once.
    fn begin_shutdown(
        self: Arc<Self>,
        runner: &TaskRunner,
        how: Stop,
    ) -> Option<BoxFuture<'static, ()>> {
        self.claiming.cancel();
        let mut released = Vec::new();
        let mut cancel = Vec::new();
        {
            let mut active = lock_std(&self.active);
            for (id, a) in active.iter_mut() {
                if a.quiet {
                    continue;
                }
                let unstarted = a.task.is_none_or(|task| {
                    runner
                        .get_status(task)
                        .is_some_and(|info| info.status == crate::TaskStatus::Pending)
                });
                if how == Stop::Abort || unstarted {
                    a.quiet = true;
                    released.push((*id, a.token));
                    cancel.extend(a.task);
                }
            }
        }
        for task in cancel {
            runner.cancel(task);
        }
        Some(Box::pin(async move {
            if let Err(e) = self.store.release(&released).await {
                tracing::warn!("could not release runs at shutdown: {e}");
            }
            let mut active = lock_std(&self.active);
            for (id, _) in &released {
                active.remove(id);
            }
        }))
    }

    /// Ends a shutdown once the runner is idle: waits (at most a few seconds) for the writer
    /// to store every end, then stops the loops.
    fn end_shutdown(self: Arc<Self>) -> Option<BoxFuture<'static, ()>> {
        Some(Box::pin(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let flushed = self.flushed.notified();
                tokio::pin!(flushed);
                flushed.as_mut().enable();
                if lock_std(&self.active).is_empty() {
                    break;
                }
                if tokio::time::timeout_at(deadline, flushed).await.is_err() {
                    tracing::warn!("durable runs' ends not all stored at shutdown");
                    break;
                }
            }
            self.stop.cancel();
        }))
    }
}
