//! [`Locked`]: a queue's state under its lock, and what is done once the lock is released.

use std::sync::Weak;

use super::{Queue, State};
use crate::sync::{lock, MutexGuard};

/// The queue's state, locked. Dropping it releases the lock, then gives back the places
/// under `max_pending` and sets the timer an operation decided on under it (a rate limit or
/// a hold that runs out): nothing that wakes or runs other code is done under the queue
/// lock.
pub(super) struct Locked<'a> {
    guard: Option<MutexGuard<'a, State>>,
    queue: &'a Queue,
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        self.guard.as_deref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_deref_mut().expect("held until dropped")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        let (arm, room_back) = guard.flow.as_mut().map_or((None, 0), |flow| {
            (flow.arm.take(), std::mem::take(&mut flow.room_back))
        });
        drop(guard);
        if let (true, Some(room)) = (room_back > 0, self.queue.room()) {
            room.add_permits(room_back);
        }
        if let Some(at) = arm {
            if let Some(host) = self.queue.host.get().and_then(Weak::upgrade) {
                host.wake_at(self.queue.tag.index(), at);
            }
        }
    }
}

impl Queue {
    /// Locks the queue's state (see [`Locked`]).
    pub(super) fn lock(&self) -> Locked<'_> {
        Locked {
            guard: Some(lock(&self.state)),
            queue: self,
        }
    }
}
