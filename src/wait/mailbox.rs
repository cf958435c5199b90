//! The mailbox of in-process tasks: signals sent with
//! [`TaskRunner::signal_task`](crate::TaskRunner::signal_task), kept per task and name until a
//! wait takes them, in order, each once. Values are any `Send` type, checked on receipt.
//!
//! Task ids are unique in the process, so one map serves every runner; a runner sweeps the
//! boxes of its finished tasks when it sends a signal.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

use crate::sync::lock_std;
use crate::TaskId;

/// A signal's value and its type's name (for the error when it is not the type waited for).
pub(super) struct Sent {
    pub(super) value: Box<dyn Any + Send>,
    pub(super) type_name: &'static str,
}

#[derive(Default)]
struct Slot {
    values: VecDeque<Sent>,
    notify: Arc<Notify>,
}

type Boxes = HashMap<TaskId, HashMap<String, Slot>>;

fn boxes() -> &'static Mutex<Boxes> {
    static BOXES: OnceLock<Mutex<Boxes>> = OnceLock::new();
    BOXES.get_or_init(Default::default)
}

/// Keeps `sent` for task `task`'s next wait for `name`.
pub(super) fn deposit(task: TaskId, name: &str, sent: Sent) {
    let mut all = lock_std(boxes());
    let slot = all
        .entry(task)
        .or_default()
        .entry(name.to_owned())
        .or_default();
    slot.values.push_back(sent);
    // A stored permit if the task is not waiting yet: its next wait sees it at once.
    slot.notify.notify_one();
}

/// Takes the oldest signal `name` of `task`, or the handle to be woken by the next one.
pub(super) fn take(task: TaskId, name: &str) -> Result<Sent, Arc<Notify>> {
    let mut all = lock_std(boxes());
    let boxes = all.entry(task).or_default();
    let slot = boxes.entry(name.to_owned()).or_default();
    match slot.values.pop_front() {
        Some(sent) => {
            if slot.values.is_empty() {
                boxes.remove(name);
            }
            if boxes.is_empty() {
                all.remove(&task);
            }
            Ok(sent)
        }
        None => Err(Arc::clone(&slot.notify)),
    }
}

/// Drops the boxes of tasks that `finished` says have ended (nothing will take them).
pub(super) fn sweep(finished: impl Fn(TaskId) -> bool) {
    lock_std(boxes()).retain(|task, _| !finished(*task));
}
