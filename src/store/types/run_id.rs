//! [`RunId`]: a durable run's identity, and [`ParseRunIdError`] for a string that is not one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A durable run's identity: unique in its store, never reused (not even after pruning).
///
/// Displayed as its number, and parsed back from it, so it can travel through a URL or an
/// agent's tool call and be polled from any process.
///
/// ```
/// use taskrunner::RunId;
///
/// let id: RunId = "42".parse().unwrap();
/// assert_eq!(id.to_string(), "42");
/// assert_eq!(serde_json::to_string(&id).unwrap(), "42");
/// assert!("forty-two".parse::<RunId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(i64);

impl RunId {
    /// The id as a number.
    pub const fn as_i64(self) -> i64 {
        self.0
    }

    pub(crate) const fn from_i64(id: i64) -> RunId {
        RunId(id)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A string that is not a [`RunId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a run id: a run id is a positive whole number, such as `42`")]
pub struct ParseRunIdError(String);

impl FromStr for RunId {
    type Err = ParseRunIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().parse::<i64>() {
            Ok(id) if id > 0 => Ok(RunId(id)),
            _ => Err(ParseRunIdError(s.chars().take(64).collect())),
        }
    }
}
