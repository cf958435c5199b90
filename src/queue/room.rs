//! A queue's room under `max_pending`: the places its waiting tasks hold.

use super::flow::Flow;
use super::Queue;

impl Queue {
    // ----- room under max_pending -----

    /// A new task that holds a place leaves without waiting (it started, or was cancelled).
    /// Gives a place under `max_pending` back, once the queue lock is released (it may wake
    /// an `enqueue_task_wait`; see [`Locked`](super::Locked)).
    pub(super) fn give_back_room(&self, flow: &mut Flow) {
        if self.room().is_some() {
            flow.room_back += 1;
        }
    }

    /// A task that holds no place starts waiting: it takes one if there is one.
    pub(super) fn take_room(&self, flow: &mut Flow) {
        if let Some(room) = self.room() {
            match room.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(_) => flow.overflow += 1,
            }
        }
    }

    /// A waiting task stops waiting (started or cancelled).
    pub(super) fn leave_room(&self, flow: &mut Flow) {
        if flow.overflow > 0 {
            flow.overflow -= 1;
        } else {
            self.give_back_room(flow);
        }
    }
}
