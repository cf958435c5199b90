//! Run streams: what a run says while it works, readable from any process and resumable by
//! offset.
//!
//! A handler calls [`TaskContext::emit`](crate::TaskContext::emit) for what a watcher must
//! not miss (the plan, each tool call, the answer) and
//! [`TaskContext::emit_live`](crate::TaskContext::emit_live) for what only someone watching
//! now needs (tokens). In a durable run, each emit is appended to the run's log at its next
//! offset (0, 1, 2, ...), and so is every status change the store records (claimed, a new
//! attempt, finished with its status). [`TaskRunner::run_events`](crate::TaskRunner::run_events)
//! reads the log from any process, then tails it, and ends after the run's terminal status;
//! [`RunEvents::from`] resumes after a disconnect with no gap and no duplicate. In an
//! ordinary task, emits go to the runner's event stream ([`EventKind::Emitted`](crate::EventKind::Emitted)),
//! so one handler works in both modes.
//!
//! # What holds
//!
//! | | |
//! |---|---|
//! | order | a run's events have offsets 0, 1, 2, ... in the order they happened; a reader sees them in that order, each once |
//! | resume | `from(n)` starts at offset `n`: resume with [`RunEvent::next_offset`] of the last event seen |
//! | replay | a retried or recovered attempt does not store an emit twice: the n-th emit of an attempt is skipped if the run stored an n-th emit |
//! | commit | `emit` queues; the queued emits are committed before the run's next step starts and before its end is stored (batched: one commit carries many) |
//! | end | a stream ends after the run's terminal status, whichever process stored it; on a finished run it replays the log and ends |
//! | live | `emit_live` is never stored: readers of this process get it; on PostgreSQL readers of other processes too (`NOTIFY`, values up to ~7.9 KB) |
//! | tail | readers wake at once on a write of this process; across processes within about a millisecond on SQLite (the `-wal` file is watched) or at once on PostgreSQL (`LISTEN`); each also polls (1 s), so a lost wake-up delays, never loses, an event |
//! | size | an emitted value is at most [`MAX_EMIT_BYTES`] of JSON: a bigger one is an [`EmitError::TooLarge`] |
//! | retention | a run's events are deleted with the run |

mod emit;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod event;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod reader;

pub use emit::{EmitError, MAX_EMIT_BYTES};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use event::{RunEvent, RunEventKind};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use reader::{RunEvents, DEFAULT_STREAM_POLL};
