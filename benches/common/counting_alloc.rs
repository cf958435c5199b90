//! A global allocator that counts the bytes live on the heap, shared by the soak test and
//! the bench report. `Counting<true>` counts always; `Counting<false>` counts only while
//! switched on with [`set_counting`], so it costs the other measurements one relaxed load.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting. Install with
/// `#[global_allocator] static A: Counting<ALWAYS> = Counting;`.
pub struct Counting<const ALWAYS: bool>;

impl<const ALWAYS: bool> Counting<ALWAYS> {
    fn count(delta: isize) {
        if ALWAYS || COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

unsafe impl<const ALWAYS: bool> GlobalAlloc for Counting<ALWAYS> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Bytes allocated and not yet freed, while counted.
pub fn live() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// Switches counting on or off (for `Counting<false>`).
pub fn set_counting(on: bool) {
    COUNTING.store(on, Ordering::SeqCst);
}
