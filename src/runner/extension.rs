//! [`Extension`]: a layer built on the runner (schedules, the durable store) that keeps its
//! state on the runner and must be stopped by the runner's shutdown; [`Extensions`] holds
//! them by type; [`BuildHook`] is such a layer's settings on the builder.
//!
//! The runner names none of these layers: they sit above it, and reach down to it. Each
//! finds its own state with [`Extensions::get`], and the runner's shutdown calls them through
//! the trait, in three phases (see [`Extension`]).

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use futures::future::BoxFuture;

use super::{Shared, TaskRunner};
use crate::config::QueueConfig;
use crate::error::ConfigError;
use crate::sync::lock_std;

/// How a shutdown treats the runner's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// [`TaskRunner::shutdown`]: tasks already taken finish.
    Drain,
    /// [`TaskRunner::shutdown_now`]: every task is cancelled.
    Abort,
}

/// A layer built on the runner that its shutdown must stop.
///
/// A shutdown calls each extension in three phases, in the order the extensions were added:
///
/// 1. [`before_close`](Self::before_close), while the runner still takes tasks: stop making
///    new ones (schedules stop firing);
/// 2. [`begin_shutdown`](Self::begin_shutdown), once it takes none (for [`Stop::Abort`],
///    before its tasks are cancelled): hand back what is not to run here; its future is
///    awaited before the runner waits to go idle;
/// 3. [`end_shutdown`](Self::end_shutdown), once the runner is idle.
///
/// Each phase does nothing unless the extension says otherwise.
pub(crate) trait Extension: Any + Send + Sync {
    /// Stops making tasks for the runner. Called again, at once, on an extension added after
    /// a shutdown began.
    fn before_close(&self) {}

    /// Begins the shutdown of the layer, the runner being closed: the work done now, and a
    /// future to await before the runner waits to go idle.
    fn begin_shutdown(
        self: Arc<Self>,
        runner: &TaskRunner,
        how: Stop,
    ) -> Option<BoxFuture<'static, ()>> {
        let _ = (runner, how);
        None
    }

    /// Ends the shutdown of the layer, the runner being idle.
    fn end_shutdown(self: Arc<Self>) -> Option<BoxFuture<'static, ()>> {
        None
    }
}

/// A layer's settings on [`TaskRunnerBuilder`](super::TaskRunnerBuilder): checked, then
/// started, by [`build`](super::TaskRunnerBuilder::build).
pub(crate) trait BuildHook: Any + Send + Sync + fmt::Debug {
    /// Checks the settings against the runner's queues (queue `main` included).
    fn validate(&self, queues: &[(String, QueueConfig)]) -> Result<(), ConfigError>;

    /// Starts the layer on the runner just assembled, adding its [`Extension`] if it has one.
    fn start(&self, queues: &[(String, QueueConfig)], shared: &Arc<Shared>);
}

/// The extensions of a runner, one of each type, in the order they were added.
///
/// A list that only grows, each link set once: reading needs no lock, and a reference to an
/// extension lives as long as the runner.
pub(crate) struct Extensions {
    head: OnceLock<Box<Link>>,
    /// Taken to add an extension (so that a type is added once) and to begin a shutdown;
    /// `true` once a shutdown began.
    closing: Mutex<bool>,
}

struct Link {
    /// The extension as its own type: an `Arc<T>`, for [`Extensions::get`].
    typed: Box<dyn Any + Send + Sync>,
    /// The same extension, for the shutdown.
    extension: Arc<dyn Extension>,
    next: OnceLock<Box<Link>>,
}

// ===== impl Extensions =====

impl Extensions {
    pub(super) fn new() -> Extensions {
        Extensions {
            head: OnceLock::new(),
            closing: Mutex::new(false),
        }
    }

    /// The extension of type `T`, if one was added.
    pub(crate) fn get<T: Extension>(&self) -> Option<&Arc<T>> {
        self.links()
            .find_map(|link| link.typed.downcast_ref::<Arc<T>>())
    }

    /// The extension of type `T`, made by `make` and added if there is none yet. One added
    /// after a shutdown began is stopped at once ([`Extension::before_close`]).
    pub(crate) fn get_or_add<T: Extension>(&self, make: impl FnOnce() -> Arc<T>) -> &Arc<T> {
        if let Some(found) = self.get::<T>() {
            return found;
        }
        let closing = lock_std(&self.closing);
        if let Some(found) = self.get::<T>() {
            return found;
        }
        let extension = make();
        let tail = self.links().last().map_or(&self.head, |last| &last.next);
        // Links are set only under `closing`, which is held here: the tail's is free.
        let link = tail.get_or_init(|| {
            Box::new(Link {
                typed: Box::new(Arc::clone(&extension)),
                extension,
                next: OnceLock::new(),
            })
        });
        let closed = *closing;
        drop(closing);
        if closed {
            // Too late for the shutdown's first phase: it goes through it now.
            link.extension.before_close();
        }
        link.typed
            .downcast_ref()
            .expect("the link just added holds an Arc<T>")
    }

    /// The first phase of a shutdown: [`Extension::before_close`] on each extension, and on
    /// each added from now on.
    pub(super) fn before_close(&self) {
        let mut closing = lock_std(&self.closing);
        *closing = true;
        let all = self.all();
        drop(closing);
        for extension in all {
            extension.before_close();
        }
    }

    /// Every extension, in the order they were added.
    pub(super) fn all(&self) -> Vec<Arc<dyn Extension>> {
        self.links()
            .map(|link| Arc::clone(&link.extension))
            .collect()
    }

    fn links(&self) -> impl Iterator<Item = &Link> {
        std::iter::successors(self.head.get(), |link| link.next.get()).map(|link| &**link)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts its `before_close` calls.
    #[derive(Default)]
    struct Early(AtomicUsize);

    impl Extension for Early {
        fn before_close(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The same, as another type.
    #[derive(Default)]
    struct Late(AtomicUsize);

    impl Extension for Late {
        fn before_close(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn one_of_each_type_in_the_order_added() {
        let extensions = Extensions::new();
        assert!(extensions.get::<Early>().is_none());
        let late = Arc::clone(extensions.get_or_add(Arc::<Late>::default));
        let early = Arc::clone(extensions.get_or_add(Arc::<Early>::default));
        let again = extensions.get_or_add::<Late>(|| panic!("a second Late was made"));
        assert!(Arc::ptr_eq(&late, again));
        assert!(Arc::ptr_eq(&early, extensions.get::<Early>().unwrap()));
        let all = extensions.all();
        assert_eq!(all.len(), 2);
        let (first, second): (&dyn Any, &dyn Any) = (&*all[0], &*all[1]);
        assert!(first.is::<Late>() && second.is::<Early>());
    }

    #[test]
    fn one_added_after_a_shutdown_began_is_closed_at_once() {
        let extensions = Extensions::new();
        let early = Arc::clone(extensions.get_or_add(Arc::<Early>::default));
        extensions.before_close();
        assert_eq!(early.0.load(Ordering::SeqCst), 1);
        let late = extensions.get_or_add(Arc::<Late>::default);
        assert_eq!(late.0.load(Ordering::SeqCst), 1, "closed as it was added");
        assert_eq!(early.0.load(Ordering::SeqCst), 1, "closed once");
    }
}
