//! [`AttemptBlock`]: the memory a worker runs its attempts in, reused from one attempt to the
//! next, so that an attempt's future costs no allocation of its own.
//!
//! A boxed future (`BoxFuture`) per attempt was one of the three allocations a task paid (about
//! 180 instructions of `malloc` and `free`, freed on whichever thread dropped it). A worker
//! runs many attempts in a row, nearly always of the same handler type, so it keeps one block
//! and places each attempt's future in it: the block is reused when the new future has the
//! layout of the one before, and replaced otherwise. The block is tokio-util's
//! `ReusableBoxFuture`, so the pinning and the drop in place are its `unsafe`, not this
//! crate's (`#![forbid(unsafe_code)]`). A queued task carries nothing for it; a worker that
//! ends leaves its block to the runner for the next one (`runner/worker.rs`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_util::sync::ReusableBoxFuture;

use super::attempt::Attempt;

/// A reusable place for one attempt's future at a time.
pub(crate) struct AttemptBlock {
    boxed: ReusableBoxFuture<'static, Attempt>,
    /// Whether an attempt's future is in the block, not yet ready.
    live: bool,
    /// The size of the memory the block holds (the last future placed in it). A `u32` beside
    /// `live`, so the block stays 24 bytes: it is moved with every worker's future.
    bytes: u32,
}

impl Default for AttemptBlock {
    fn default() -> Self {
        AttemptBlock {
            // A zero-sized future: no allocation until the first attempt.
            boxed: ReusableBoxFuture::new(std::future::pending()),
            live: false,
            bytes: 0,
        }
    }
}

impl AttemptBlock {
    /// Places `future` in the block (dropping the one there, if any), in the same memory if
    /// it has the same layout as the one before.
    pub(crate) fn place<Fut>(&mut self, future: Fut)
    where
        Fut: Future<Output = Attempt> + Send + 'static,
    {
        self.boxed.set(Once {
            future: Some(future),
        });
        self.live = true;
        self.bytes = u32::try_from(std::mem::size_of::<Once<Fut>>()).unwrap_or(u32::MAX);
    }

    /// Polls the future in the block; once it is ready, it is dropped (in place: the memory
    /// stays for the next). With nothing in the block (which the worker never does) the
    /// attempt reads as cancelled.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Attempt> {
        if !self.live {
            debug_assert!(false, "an empty attempt block was polled");
            return Poll::Ready(Attempt::Cancelled);
        }
        let poll = self.boxed.poll(cx);
        if poll.is_ready() {
            self.live = false;
        }
        poll
    }

    /// Whether an attempt's future is in the block, not yet ready.
    pub(crate) fn is_live(&self) -> bool {
        self.live
    }

    /// How many bytes of memory the block holds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes as usize
    }

    /// Drops the future in the block and gives its memory back. It is marked gone before its
    /// `Drop` runs, so a panic there (which the caller may contain) cannot drop it twice.
    pub(crate) fn clear(&mut self) {
        self.live = false;
        self.bytes = 0;
        self.boxed.set(std::future::pending());
    }
}

pin_project_lite::pin_project! {
    /// A future dropped in place as soon as it is ready, so that what it holds (the task's
    /// cell, its span) goes then, not when the block is next used.
    struct Once<Fut> {
        #[pin]
        future: Option<Fut>,
    }
}

impl<Fut: Future<Output = Attempt>> Future for Once<Fut> {
    type Output = Attempt;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Ready(Attempt::Cancelled);
        };
        let attempt = std::task::ready!(future.poll(cx));
        this.future.set(None);
        Poll::Ready(attempt)
    }
}

#[cfg(all(test, not(taskrunner_loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Counts its drops; ready on its second poll.
    struct Probe {
        drops: Arc<AtomicUsize>,
        polls: u32,
        _pad: [u64; 4],
    }

    impl Future for Probe {
        type Output = Attempt;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt> {
            self.polls += 1;
            if self.polls < 2 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(Attempt::Ok)
        }
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn probe(drops: &Arc<AtomicUsize>) -> Probe {
        Probe {
            drops: Arc::clone(drops),
            polls: 0,
            _pad: [0; 4],
        }
    }

    #[test]
    fn a_block_runs_futures_one_after_another_in_the_same_memory() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut block = AttemptBlock::default();
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut first_at = None;
        for round in 1..=3 {
            block.place(probe(&drops));
            assert!(block.is_live());
            let at = std::ptr::from_ref(&*block.boxed.get_pin()).cast::<u8>() as usize;
            assert_eq!(*first_at.get_or_insert(at), at, "the block is reused");
            assert!(block.poll(&mut cx).is_pending());
            assert!(matches!(block.poll(&mut cx), Poll::Ready(Attempt::Ok)));
            assert!(!block.is_live(), "a ready future is dropped at once");
            assert_eq!(drops.load(Ordering::SeqCst), round);
        }
        // A bigger future grows the block; a zero-sized one needs no memory.
        block.place(Big([7; 64]));
        assert!(block.bytes() >= std::mem::size_of::<Big>());
        assert!(matches!(
            block.poll(&mut cx),
            Poll::Ready(Attempt::Cancelled)
        ));
        block.place(Zst);
        assert!(matches!(
            block.poll(&mut cx),
            Poll::Ready(Attempt::TimedOut)
        ));
    }

    struct Big([u64; 64]);

    impl Future for Big {
        type Output = Attempt;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Attempt> {
            assert!(
                self.0.iter().all(|&x| x == 7),
                "the future's memory is intact"
            );
            Poll::Ready(Attempt::Cancelled)
        }
    }

    struct Zst;

    impl Future for Zst {
        type Output = Attempt;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Attempt> {
            Poll::Ready(Attempt::TimedOut)
        }
    }

    #[test]
    fn a_future_left_in_a_block_is_dropped_with_it_or_by_clear() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut block = AttemptBlock::default();
        block.place(probe(&drops));
        assert!(block.is_live());
        block.clear();
        assert!(!block.is_live());
        assert_eq!(block.bytes(), 0, "the memory went with it");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        block.clear();
        assert_eq!(drops.load(Ordering::SeqCst), 1, "cleared once");
        block.place(probe(&drops));
        block.place(probe(&drops));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            2,
            "a placement drops the one before"
        );
        drop(block);
        assert_eq!(drops.load(Ordering::SeqCst), 3);
    }
}
