//! A task with no handler, for driving a [`Queue`] directly in tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;

use super::Queue;
use crate::job::{Attempt, End, Header, Job};
use crate::TaskId;

pub(super) struct TestJob {
    header: Header,
    published: AtomicUsize,
}

impl TestJob {
    pub(super) fn new(queue: &Arc<Queue>, priority: i32) -> Arc<TestJob> {
        TestJob::with_key(queue, priority, None)
    }

    /// A test task with a concurrency key.
    pub(super) fn with_key(queue: &Arc<Queue>, priority: i32, key: Option<&str>) -> Arc<TestJob> {
        let options = key.map(|key| {
            let mut options = Box::<crate::task::Options>::default();
            options.flow.concurrency_key = Some(key.into());
            options
        });
        let header = Header::new(
            TaskId::next(),
            "test".to_owned(),
            None,
            Arc::clone(queue),
            priority,
            options,
        );
        Arc::new(TestJob {
            header,
            published: AtomicUsize::new(0),
        })
    }

    #[cfg_attr(taskrunner_loom, allow(dead_code))]
    pub(super) fn published(&self) -> usize {
        self.published.load(Ordering::SeqCst)
    }
}

impl Job for TestJob {
    fn header(&self) -> &Header {
        &self.header
    }

    fn run(self: Arc<Self>, _attempt: u32) -> BoxFuture<'static, Attempt> {
        Box::pin(async { Attempt::Ok })
    }

    fn publish(&self, _end: End) {
        self.published.fetch_add(1, Ordering::SeqCst);
    }
}

/// The id of a job the queue handed back, to compare with a model's.
pub(super) fn id_of(job: &Arc<dyn Job>) -> u64 {
    job.header().id.as_u64()
}
