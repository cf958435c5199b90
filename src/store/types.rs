//! The records the durable store keeps and hands back: [`RunId`], [`RunStatus`], [`RunInfo`],
//! [`RunOptions`] and [`RunFilter`], one a file; the records a backend and the runner pass each
//! other in `records`; the store's time (milliseconds since the epoch) in `time`.

mod records;
mod run_filter;
mod run_id;
mod run_info;
mod run_options;
mod run_status;
mod time;
mod waiting_for;

pub(crate) use records::{clean_text, CancelFound, Cancelled, Held, NewRun, Outcome};
pub use records::{Claimed, Ending, Finish};
pub use run_filter::RunFilter;
pub use run_id::{ParseRunIdError, RunId};
pub use run_info::RunInfo;
pub use run_options::RunOptions;
pub use run_status::RunStatus;
pub(crate) use time::{duration_ms, now_ms, to_time};
pub use waiting_for::WaitingFor;
