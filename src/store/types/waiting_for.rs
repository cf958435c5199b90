//! [`WaitingFor`]: what a waiting run waits for.

use std::time::SystemTime;

/// What a [`Waiting`](super::RunStatus::Waiting) run waits for, in
/// [`RunInfo::waiting_for`](super::RunInfo::waiting_for).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use taskrunner::store::WaitingFor;
///
/// let w = WaitingFor::Signal { name: "approve_email".into(), deadline: SystemTime::now() + Duration::from_secs(60) };
/// assert!(matches!(w, WaitingFor::Signal { ref name, .. } if name == "approve_email"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitingFor {
    /// A signal of this name ([`TaskRunner::signal`](crate::TaskRunner::signal)), until the
    /// absolute deadline stored at its first wait.
    Signal {
        /// The signal's name.
        name: String,
        /// When the wait ends without one.
        deadline: SystemTime,
    },
    /// A durable sleep ([`TaskContext::sleep`](crate::TaskContext::sleep)).
    Sleep {
        /// When it wakes.
        until: SystemTime,
    },
    /// Child runs it joins ([`TaskContext::join`](crate::TaskContext::join)).
    Children {
        /// How many have not ended yet.
        left: u32,
    },
}
