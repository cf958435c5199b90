//! [`TaskRunner::find_call`]: a task found by its call id, through an index of the call ids
//! given to tasks (a generated one, `call-{id}`, names its task's id already).

use dashmap::DashMap;

use super::TaskRunner;
use crate::id::TaskId;
use crate::status::TaskInfo;
use crate::task::Header;

/// The task of each given call id: the last one enqueued with it, while its record is kept.
#[derive(Default)]
pub(crate) struct CallIndex(DashMap<Box<str>, TaskId>);

impl CallIndex {
    pub(crate) fn insert(&self, header: &Header) {
        self.0.insert(header.call_id().into(), header.id);
    }

    /// `header`'s record was evicted: forgets its call id, unless a later task took it.
    pub(crate) fn remove(&self, header: &Header) {
        self.0.remove_if(header.call_id(), |_, id| *id == header.id);
    }

    fn get(&self, call_id: &str) -> Option<TaskId> {
        self.0.get(call_id).map(|id| *id)
    }
}

impl TaskRunner {
    /// The status of the task with call id `call_id`, found through an index (not a scan):
    /// the last task enqueued with that [`call_id`](crate::Task::call_id), or the task whose
    /// generated call id (`call-{id}`) it is, while the runner keeps its record.
    ///
    /// ```
    /// use taskrunner::{Task, TaskRunner, TaskStatus};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let search = Task::new("search", |_ctx| async { Ok::<_, String>(3) }).call_id("call_abc");
    /// runner.enqueue_task(search)?.await?;
    /// let info = runner.find_call("call_abc").unwrap();
    /// assert_eq!((info.name.as_str(), info.status), ("search", TaskStatus::Completed));
    ///
    /// let other = runner.enqueue_task(Task::new("other", |_ctx| async { Ok::<_, String>(()) }))?;
    /// assert_eq!(runner.find_call(other.call_id()).unwrap().id, other.id());
    /// assert!(runner.find_call("call_unknown").is_none());
    /// # other.await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn find_call(&self, call_id: &str) -> Option<TaskInfo> {
        let shared = &self.shared;
        let id = shared.calls.get(call_id).or_else(|| {
            let n: u64 = call_id.strip_prefix("call-")?.parse().ok()?;
            Some(TaskId::from_u64(n))
        })?;
        let job = shared.registry.get(id)?;
        (job.header().call_id() == call_id).then(|| shared.info(&*job))
    }
}
