//! Containing panics of user code.

use std::any::Any;
use std::panic::AssertUnwindSafe;

/// Runs `f` (user code, or a drop of something user code made), logging a panic instead of
/// propagating it.
pub(crate) fn contain(what: &str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
        tracing::warn!(panic = %panic_message(panic), "{what}");
    }
}

/// The message a panic carried, or a placeholder for a non-string payload.
pub(crate) fn panic_message(panic: Box<dyn Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => match panic.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "a panic with a non-string payload".to_owned(),
        },
    }
}
