//! The synchronisation primitives of the concurrency core (the queue's slot accounting and
//! each task's state machine): std's, or loom's when built with `--cfg taskrunner_loom`, so
//! that loom can explore every interleaving of them.
//!
//! The cfg is not plain `loom` because tokio, a dependency, does not build under that one.

#[cfg(not(taskrunner_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize};
#[cfg(not(taskrunner_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(taskrunner_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU8, AtomicUsize};
#[cfg(taskrunner_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// Locks `mutex`, ignoring poison: every critical section in this crate leaves its data
/// consistent even if user code panicked while the lock was held.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Locks a std mutex that loom need not model (a task's handler and result slot).
pub(crate) fn lock_std<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
