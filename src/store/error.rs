//! [`StoreError`]: what went wrong with the durable store, and what to do about it.

use std::path::PathBuf;

/// A durable store could not be opened, migrated, read or written.
///
/// No message ever contains a connection URL's password: URLs are shown with it replaced
/// by `***`, and database errors are scrubbed of it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The SQLite file exists but is not a SQLite database. It was left untouched.
    #[error(
        "`{}` is not a SQLite database (it was left untouched): give the path of a \
         taskrunner database, or of a file that does not exist yet",
        path.display()
    )]
    NotADatabase {
        /// The path given.
        path: PathBuf,
    },
    /// The SQLite file could not be opened or created.
    #[error("cannot open SQLite database `{}`: {reason}", path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// What SQLite said.
        reason: String,
    },
    /// The SQLite file exists but this process may not write it (its mode, its owner, or
    /// a read-only directory or mount): a runner writes its store on every claim.
    #[error(
        "SQLite database `{}` is read-only for this process ({reason}): give the process \
         write access to the file and to its directory",
        path.display()
    )]
    ReadOnly {
        /// The path given.
        path: PathBuf,
        /// What SQLite said.
        reason: String,
    },
    /// The connection URL could not be parsed.
    #[error("bad PostgreSQL URL `{url}`: {reason} (expected postgres://user[:password]@host[:port]/database)")]
    BadUrl {
        /// The URL, its password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database server could not be reached or refused the connection.
    #[error("cannot connect to PostgreSQL at `{url}`: {reason}")]
    Connect {
        /// The URL, its password replaced by `***`.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The database holds a schema from a newer version of this crate.
    #[error(
        "the database's taskrunner schema is version {found}, newer than this build knows \
         ({supported}): upgrade taskrunner in this process, or point it at another database"
    )]
    SchemaTooNew {
        /// The version found in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A run's input or output could not be turned into JSON, or back.
    #[error("run `{name}`: {what} is not valid JSON for its type: {reason}")]
    Json {
        /// The definition's name.
        name: String,
        /// `input` or `output`.
        what: &'static str,
        /// What serde said.
        reason: String,
    },
    /// The runner was built without [`store`](crate::TaskRunnerBuilder::store).
    #[error(
        "this runner has no durable store: build it with \
         `TaskRunner::builder().store(SqliteStore::open(path).await?)`"
    )]
    NoStore,
    /// The run names a queue this runner does not declare.
    #[error(
        "unknown queue `{0}`: declare it with `TaskRunner::builder().queue(\"{0}\", QueueConfig::new())`"
    )]
    UnknownQueue(String),
    /// The run is not in the store: it was pruned, or submitted to another store.
    #[error(
        "run {0} is not in the store: it was pruned (finished runs go after the retention), \
         or submitted to another store"
    )]
    UnknownRun(super::RunId),
    /// The run's [`cost`](crate::store::RunOptions::cost) estimate is larger than the whole
    /// [`global_budget`](crate::QueueConfig::global_budget) of its queue, so no claim could
    /// ever take it. Nothing was submitted.
    #[error(
        "run `{name}`: its estimated cost of {cost} units is more than the whole global budget \
         of queue `{queue}` ({units} units a window), so it could never start: lower its \
         RunOptions::cost, or raise the queue's global_budget"
    )]
    OverBudget {
        /// The definition's name.
        name: String,
        /// Its queue.
        queue: String,
        /// Its estimate.
        cost: u64,
        /// The units per window of the queue's global budget.
        units: u64,
    },
    /// A query failed.
    #[error("durable store: {0}")]
    Database(String),
    /// The store could not take a read or write now, through no fault of what was asked: a
    /// full disk, an I/O error, a lost or exhausted connection, a lock or deadlock it gave up
    /// on. The same request can succeed once the store has recovered.
    #[error("durable store unavailable, try again once it has recovered: {0}")]
    Unavailable(String),
}

impl StoreError {
    pub(crate) fn db(error: sqlx::Error, secret: Option<&str>) -> StoreError {
        let passing = match &error {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(e) => e.code().is_some_and(|code| passing_code(&code)),
            _ => false,
        };
        let message = scrub(error.to_string(), secret);
        match passing {
            true => StoreError::Unavailable(message),
            false => StoreError::Database(message),
        }
    }
}

/// Whether a database's error code says the store is out of a resource rather than that the
/// request is wrong: PostgreSQL's SQLSTATE (five characters) of class 08 (connection), 40
/// (deadlock, serialization), 53 (disk full, out of memory, too many connections), 57 (shut
/// down) or 58 (I/O error); SQLite's result code (extended codes keep the primary in their
/// low byte) BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN or PROTOCOL.
fn passing_code(code: &str) -> bool {
    if code.len() == 5 {
        return ["08", "40", "53", "57", "58"]
            .iter()
            .any(|class| code.starts_with(class));
    }
    code.parse::<u32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15))
}

/// Removes `secret` (a password) from `text`.
pub(crate) fn scrub(text: String, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if !secret.is_empty() && text.contains(secret) => text.replace(secret, "***"),
        _ => text,
    }
}

/// `url` with the password of its user part and any `password=` parameter replaced by
/// `***`; also returns the password found, to scrub it from error messages.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn redact_url(url: &str) -> (String, Option<String>) {
    let mut out = url.to_owned();
    let mut secret = None;
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                let end = rest_start + at;
                secret = Some(out[start..end].to_owned());
                out.replace_range(start..end, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let parts: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if key.eq_ignore_ascii_case("password") => {
                    secret.get_or_insert_with(|| value.to_owned());
                    format!("{key}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", parts.join("&"));
    }
    (out, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let (url, secret) = redact_url("postgres://alice:s3cr%40t@db:5432/app?sslmode=disable");
        assert_eq!(url, "postgres://alice:***@db:5432/app?sslmode=disable");
        assert_eq!(secret.as_deref(), Some("s3cr%40t"));
        let (url, secret) = redact_url("postgres://db/app?user=bob&password=hunter2");
        assert_eq!(url, "postgres://db/app?user=bob&password=***");
        assert_eq!(secret.as_deref(), Some("hunter2"));
        let (url, secret) = redact_url("postgres://bob@db/app");
        assert_eq!(url, "postgres://bob@db/app");
        assert_eq!(secret, None);
        assert_eq!(
            scrub("bad hunter2 here".into(), Some("hunter2")),
            "bad *** here"
        );
    }

    #[test]
    fn a_full_disk_or_a_lost_connection_is_not_the_request_s_fault() {
        for passing in [
            "13", "10", "266", "5", "517", "53100", "08006", "40P01", "57P01",
        ] {
            assert!(passing_code(passing), "{passing}");
        }
        // A NUL byte (22021), a constraint (23505, SQLite 19 and 2067), a row too big (54000,
        // SQLite 18), a syntax error (42601, SQLite 1).
        for refused in ["22021", "23505", "19", "2067", "54000", "18", "42601", "1"] {
            assert!(!passing_code(refused), "{refused}");
        }
        let full = StoreError::db(sqlx::Error::PoolTimedOut, None);
        assert!(matches!(full, StoreError::Unavailable(_)), "{full:?}");
    }
}
