//! [`ShellError`]: why a [`ShellTask`](super::ShellTask) failed.

use super::ShellOutput;

/// Why a [`ShellTask`](super::ShellTask) failed.
///
/// ```
/// use taskrunner::{ShellError, ShellTask, TaskError, TaskRunner};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let missing = runner.enqueue_task(ShellTask::program("/no/such/tool", ["-v"]).into_task())?;
/// match missing.await {
///     Err(TaskError::Failed(ShellError::Spawn { command, .. })) => assert_eq!(command, "/no/such/tool -v"),
///     other => panic!("{other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShellError {
    /// The command could not be started (no such program, permission denied, bad working
    /// directory...).
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The command exited with a non-zero code.
    #[error("`{command}` exited with code {code}: {stderr_tail}")]
    Exit {
        /// The command.
        command: String,
        /// Its exit code.
        code: i32,
        /// The last lines of its stderr (at most 2,000 characters).
        stderr_tail: String,
        /// Everything it wrote, as far as kept.
        output: ShellOutput,
    },
    /// The command was killed by a signal it did not get from the runner.
    #[error("`{command}` was killed by signal {signal}: {stderr_tail}")]
    Signal {
        /// The command.
        command: String,
        /// The signal's number.
        signal: i32,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// The command is empty (or only blanks): there is nothing to run. Nothing is started.
    #[error(
        "the shell command of task `{task}` is empty: give ShellTask::new a command to run \
         (or ShellTask::program a program)"
    )]
    EmptyCommand {
        /// The task's name.
        task: String,
    },
    /// Waiting for the command or reading its output failed.
    #[error("running `{command}` failed: {source}")]
    Io {
        /// The command.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
