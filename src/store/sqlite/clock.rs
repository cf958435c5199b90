//! The SqliteStore's clock, and its check that the file may be written.
//!
//! SQLite has no server, so no server clock: each process would stamp leases and due times
//! with its own clock, and a process whose clock is ahead would take a live worker's runs
//! and fire schedules early. So every time the store writes or compares comes from one
//! clock: the one of the machine that holds the file, as its kernel stamps a write to the
//! sidecar file `<database>-clock` (its modification time). All processes sharing the file
//! read that same clock, whatever their own says (a `faketime`, a container's clock); on a
//! network file system it is the server's. It costs a one-byte write and a `stat` per
//! statement, next to an `fsync` a commit. Where the sidecar cannot be written, or the
//! file system keeps whole seconds only, the process's own clock is used.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use sqlx::sqlite::SqlitePool;

use super::SqliteStore;
use crate::store::StoreError;

/// Opens the sidecar clock of the database at `path`, if it works as a clock here.
pub(super) fn open_clock(path: &Path) -> Option<File> {
    let mut name = path.as_os_str().to_owned();
    name.push("-clock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(name)
        .ok()?;
    // A file system that keeps whole seconds would make a clock too coarse for leases.
    let fine = (0..3).any(|_| {
        std::thread::sleep(Duration::from_millis(1));
        read(&file).is_some_and(|ms| ms % 1000 != 0)
    });
    fine.then_some(file)
}

/// The kernel's time, as it stamps a write to `file`, in ms since the epoch.
fn read(file: &File) -> Option<i64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt as _;
        file.write_at(&[0], 0).ok()?;
        let modified = file.metadata().ok()?.modified().ok()?;
        let since = modified.duration_since(UNIX_EPOCH).ok()?;
        i64::try_from(since.as_millis()).ok()
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        None
    }
}

impl SqliteStore {
    /// The time every statement of this store writes and compares: the file's clock, or
    /// this process's where it has none.
    pub(crate) fn now(&self) -> i64 {
        self.inner
            .clock
            .as_ref()
            .and_then(read)
            .unwrap_or_else(|| self.process_now())
    }
}

/// Refuses a database this process may not write: a write that changes nothing, rolled
/// back. (SQLite opens a file it may only read, and fails on the first write: the claim.)
pub(super) async fn check_writable(writer: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let probe = async {
        let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE taskrunner_schema SET version = version")
            .execute(&mut *tx)
            .await?;
        tx.rollback().await
    };
    probe.await.map_err(|e| read_only(e.to_string(), path))
}

/// `reason` as the error for `path`: [`StoreError::ReadOnly`] if SQLite said the database
/// is read-only.
pub(super) fn read_only(reason: String, path: &Path) -> StoreError {
    if reason.contains("readonly") || reason.contains("read-only") {
        StoreError::ReadOnly {
            path: path.to_path_buf(),
            reason,
        }
    } else {
        StoreError::Database(reason)
    }
}
