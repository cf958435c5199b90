//! A task with no handler, for driving a [`Queue`] directly in tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use std::time::Duration;

use super::Queue;
use crate::id::TaskId;
use crate::observe::Observers;
use crate::task::{
    Attempt, AttemptBlock, AttemptEnd, Cancel, CancelCause, Ending, Finished, GroupCore, Header,
    Job, Phase, QueueTag, Transition,
};

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
            "test".into(),
            None,
            Arc::clone(queue.tag()),
            priority,
            options,
        );
        Arc::new(TestJob {
            header,
            published: AtomicUsize::new(0),
        })
    }

    /// A test task, a member of `group`.
    #[allow(dead_code)]
    pub(super) fn in_group(queue: &Arc<Queue>, group: &Arc<GroupCore>) -> Arc<TestJob> {
        let header = Header::new(
            TaskId::next(),
            "member".into(),
            None,
            Arc::clone(queue.tag()),
            0,
            None,
        )
        .with_group(Some(Arc::clone(group)));
        let job = Arc::new(TestJob {
            header,
            published: AtomicUsize::new(0),
        });
        let as_job: Arc<dyn Job> = job.clone();
        assert!(group.join(&as_job));
        job
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

    fn run(self: Arc<Self>, _attempt: u32, block: &mut AttemptBlock) {
        block.place(std::future::ready(Attempt::Ok));
    }

    fn publish(&self, _finished: Finished) {
        self.published.fetch_add(1, Ordering::SeqCst);
    }
}

/// The id of a job the queue handed back, to compare with a model's.
pub(super) fn id_of(job: &Arc<dyn Job>) -> u64 {
    job.header().id.as_u64()
}

/// A queue of concurrency `limit` alone, for tests.
pub(super) fn queue(name: &str, limit: usize) -> Arc<Queue> {
    Arc::new(Queue::new(name, limit, Arc::new(Observers::default())))
}

/// A tag for a queue made by hand in a test.
#[allow(dead_code)]
pub(super) fn tag(name: &str) -> QueueTag {
    QueueTag::new(0, name, Arc::new(Observers::default()))
}

/// Ends `job`'s attempt as going `to` `Completed`, `Failed` or `Retrying` (with no delay),
/// as a worker would: the phase it reached, the proof if it ended, and the next job.
pub(super) fn end(
    queue: &Queue,
    job: &dyn Job,
    to: Phase,
) -> (Phase, Option<Finished>, Option<Arc<dyn Job>>) {
    let transition = match to {
        Phase::Retrying => Transition::Retry {
            error: String::new(),
            delay: Duration::ZERO,
        },
        Phase::Completed => Transition::End {
            ending: Ending::Completed,
            error: None,
        },
        _ => Transition::End {
            ending: Ending::Failed,
            error: None,
        },
    };
    let (end, next) = queue.end_attempt(job, transition);
    let (phase, finished) = match end {
        AttemptEnd::Retrying(_) => (Phase::Retrying, None),
        AttemptEnd::Finished(finished) => (job.header().phase(), Some(finished)),
    };
    (phase, finished, next)
}

/// A user's cancel of `header`'s task.
pub(super) fn cancel(queue: &Queue, header: &Header) -> Cancel {
    queue.cancel(header, CancelCause::User)
}
