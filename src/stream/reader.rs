//! [`RunEvents`]: a durable run's stream, read from its log in pages and then tailed.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::Stream;

use super::event::RunEvent;
use crate::store::events::{LiveRow, Signal, Subscription};
use crate::store::{RunId, RunStatus, Store, StoreError};
use crate::TaskRunner;

/// How often a reader that is caught up reads the log anyway (a lost wake-up delays an
/// event by at most this), unless [`RunEvents::poll_interval`] says otherwise.
pub const DEFAULT_STREAM_POLL: Duration = Duration::from_secs(1);

/// Events read a query: a long log is read in pages, never loaded whole.
const PAGE: i64 = 512;

/// A durable run's stream of [`RunEvent`]s, from [`TaskRunner::run_events`]: a
/// [`Stream`] of `Result<RunEvent, StoreError>`.
///
/// It yields the run's log from offset 0 (or from [`from`](Self::from)), in order, each
/// event once, then waits for more, and ends after the run's terminal status. A run that
/// already finished replays and ends. Live events
/// ([`emit_live`](crate::TaskContext::emit_live)) come in between while it tails. A store
/// error is yielded as `Err` and the stream goes on (it retries after the poll interval);
/// a run that is not in the store (never was, or was pruned) yields
/// [`StoreError::UnknownRun`] and ends.
///
/// To resume after a disconnect, start a new one `from` the
/// [`next_offset`](RunEvent::next_offset) of the last event handled: no gap, no duplicate.
///
/// ```
/// use futures::StreamExt as _;
/// use taskrunner::store::SqliteStore;
/// use taskrunner::{RunEventKind, TaskContext, TaskDef, TaskRunner};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("taskrunner-doc-runevents-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let count = TaskDef::new("count", |ctx: TaskContext, n: u32| async move {
///     for i in 0..n {
///         ctx.emit("tick", &i).await?;
///     }
///     Ok::<_, String>(n)
/// });
/// let runner = TaskRunner::builder()
///     .store(SqliteStore::open(dir.join("runs.db")).await?)
///     .register(&count)
///     .build()?;
/// let run = runner.submit(&count, 3).await?;
/// let mut events = runner.run_events(run.id());
/// let mut last = 0;
/// while let Some(event) = events.next().await {
///     let event = event?;
///     last = event.next_offset();
///     if let RunEventKind::Emitted { value, .. } = event.kind {
///         println!("{value}");
///     }
/// }
/// // Ended after `Status(Completed)`; a reader from `last` has nothing more to read.
/// assert_eq!(runner.run_events(run.id()).from(last).count().await, 0);
/// # runner.shutdown().await;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a stream does nothing unless polled"]
pub struct RunEvents {
    id: RunId,
    store: Option<Store>,
    from: u64,
    poll: Duration,
    inner: Option<BoxStream<'static, Result<RunEvent, StoreError>>>,
}

impl RunEvents {
    /// Run `id`'s stream in `store`, from offset 0 (the same as
    /// [`TaskRunner::run_events`], for a process with a store and no runner).
    pub fn new(store: Store, id: RunId) -> RunEvents {
        RunEvents {
            id,
            store: Some(store),
            from: 0,
            poll: DEFAULT_STREAM_POLL,
            inner: None,
        }
    }

    /// Starts at offset `offset` (the [`next_offset`](RunEvent::next_offset) of the last
    /// event seen) instead of 0. No effect once the stream was polled.
    pub fn from(mut self, offset: u64) -> RunEvents {
        self.from = offset;
        self
    }

    /// How often a caught-up reader reads the log in case a wake-up was lost (default
    /// [`DEFAULT_STREAM_POLL`]; at least 1 ms).
    pub fn poll_interval(mut self, every: Duration) -> RunEvents {
        self.poll = every.max(Duration::from_millis(1));
        self
    }

    /// The run.
    pub fn id(&self) -> RunId {
        self.id
    }
}

impl Stream for RunEvents {
    type Item = Result<RunEvent, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let inner = this.inner.get_or_insert_with(|| {
            let Some(store) = this.store.take() else {
                return Box::pin(futures::stream::once(async { Err(StoreError::NoStore) }));
            };
            let reader = Reader {
                id: this.id,
                sub: store.subscribe_events(this.id),
                store,
                cursor: this.from,
                poll: this.poll,
                buf: VecDeque::new(),
                held: VecDeque::new(),
                ended: false,
                last_terminal: false,
                failed: false,
                check: true,
                gone: None,
                dirty: true,
            };
            Box::pin(futures::stream::unfold(reader, |mut reader| async move {
                reader.next().await.map(|item| (item, reader))
            }))
        });
        inner.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for RunEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunEvents")
            .field("id", &self.id)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl TaskRunner {
    /// Run `id`'s stream of events, from offset 0: the stored log, then what comes, ending
    /// after the run's terminal status (see [`RunEvents`]). Resume with
    /// [`from`](RunEvents::from). Works in any process on the same store, whether or not
    /// it runs the run.
    ///
    /// Without a store, the stream yields [`StoreError::NoStore`] and ends.
    pub fn run_events(&self, id: RunId) -> RunEvents {
        RunEvents {
            id,
            store: self.store().cloned(),
            from: 0,
            poll: DEFAULT_STREAM_POLL,
            inner: None,
        }
    }
}

/// The reading state behind [`RunEvents`].
struct Reader {
    id: RunId,
    store: Store,
    sub: Subscription,
    /// The next stored offset to deliver.
    cursor: u64,
    poll: Duration,
    buf: VecDeque<RunEvent>,
    /// Live events waiting for the stored events before them.
    held: VecDeque<Arc<LiveRow>>,
    ended: bool,
    /// The last event delivered was a terminal status.
    last_terminal: bool,
    /// The last read failed: wait the poll interval before the next.
    failed: bool,
    /// Look at the run's status when next caught up.
    check: bool,
    /// The run is not in the store: said once, at the end.
    gone: Option<StoreError>,
    /// The log may hold events not read yet.
    dirty: bool,
}

/// What ended a wait.
enum Woke {
    Poll,
    Stored,
    Live,
}

impl Reader {
    async fn next(&mut self) -> Option<Result<RunEvent, StoreError>> {
        loop {
            if let Some(event) = self.buf.pop_front() {
                self.last_terminal = event.is_terminal();
                return Some(Ok(event));
            }
            if self.ended {
                return self.gone.take().map(Err);
            }
            if std::mem::take(&mut self.failed) {
                self.wait().await;
                self.dirty = true;
            }
            if std::mem::take(&mut self.dirty) {
                let read = match self.read().await {
                    Ok(read) => read,
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                };
                // A full page: there may be more. Otherwise caught up, and a held live
                // event waits for nothing more.
                self.dirty = read as i64 == PAGE;
                self.release_held(read == 0);
                if !self.buf.is_empty() || self.dirty {
                    continue;
                }
            }
            if self.last_terminal {
                self.ended = true;
                continue;
            }
            // Caught up for the first time, or the poll: the run may have ended before this
            // reader started at an offset past its end, or be gone.
            if std::mem::take(&mut self.check) {
                if let Err(e) = self.check_run().await {
                    self.failed = true;
                    return Some(Err(e));
                }
                if self.ended || !self.buf.is_empty() {
                    continue;
                }
            }
            match self.wait().await {
                Woke::Poll => {
                    self.check = true;
                    self.dirty = true;
                }
                Woke::Stored => self.dirty = true,
                // Delivered at once if every stored event before it was; else read first.
                Woke::Live => self.dirty = !self.held.is_empty(),
            }
        }
    }

    /// Ends the stream if the run is not in the store (with an error) or has ended with
    /// nothing more in its log.
    async fn check_run(&mut self) -> Result<(), StoreError> {
        let status = self.store.run_status(self.id).await?;
        let ended = status
            .as_deref()
            .is_none_or(|s| RunStatus::from_db(s, 0, 0, false).is_terminal());
        // Its end and its terminal event commit together: once the end is seen, the log
        // read after it is complete.
        if ended && self.read().await? == 0 {
            self.ended = true;
            if status.is_none() {
                self.gone = Some(StoreError::UnknownRun(self.id));
            }
        }
        Ok(())
    }

    /// Reads a page of the log from the cursor into `buf`; how many events it read.
    async fn read(&mut self) -> Result<usize, StoreError> {
        let from = i64::try_from(self.cursor).unwrap_or(i64::MAX);
        let rows = self.store.read_events(self.id, from, PAGE).await?;
        let read = rows.len();
        for row in rows {
            self.cursor = u64::try_from(row.seq).unwrap_or(0) + 1;
            if let Some(event) = RunEvent::from_row(row) {
                self.buf.push_back(event);
            }
        }
        Ok(read)
    }

    /// Waits for a signal or the poll interval. A live event is delivered at once if every
    /// stored event before it was, else held until they are.
    async fn wait(&mut self) -> Woke {
        let signal = tokio::select! {
            signal = self.sub.recv() => signal,
            _ = tokio::time::sleep(self.poll) => return Woke::Poll,
        };
        match signal {
            Some(Signal::Live(row)) => {
                self.held.push_back(row);
                self.release_held(false);
                Woke::Live
            }
            Some(Signal::Stored) => Woke::Stored,
            None => {
                tokio::time::sleep(self.poll).await;
                Woke::Poll
            }
        }
    }

    /// Moves the held live events whose stored predecessors were delivered (all of them if
    /// `all`) behind the buffered events, at the cursor's offset.
    fn release_held(&mut self, all: bool) {
        while let Some(row) = self.held.front() {
            let due = u64::try_from(row.next_seq).unwrap_or(0) <= self.cursor;
            if !(due || all) || self.last_terminal_buffered() {
                break;
            }
            if let Some(row) = self.held.pop_front() {
                self.buf.push_back(RunEvent::live(&row, self.cursor));
            }
        }
    }

    fn last_terminal_buffered(&self) -> bool {
        self.buf.back().is_some_and(RunEvent::is_terminal)
    }
}
