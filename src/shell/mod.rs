//! [`ShellTask`]: a shell command as a background task, its whole process group under control.
//!
//! The type and its builder are here; running it is in `run`, the process group it runs in
//! in `process_group`, what it captures in `output`, and how it fails in `error`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::{Task, TaskContext};

mod error;
mod output;
mod process_group;
mod run;

pub use error::ShellError;
pub use output::ShellOutput;

/// A shell command (or a program and its arguments) to run as a task.
///
/// It is what an agent's "run this in the background" tool needs, without the bugs that
/// usually come with it:
///
/// - **A failing command fails the task.** A non-zero exit is [`ShellError::Exit`], with the
///   exit code and the tail of stderr; a command that cannot start is
///   [`ShellError::Spawn`] with the OS error.
/// - **Cancel and timeout kill everything it started.** The command runs in a process group
///   of its own; when the task is cancelled, times out or the runner shuts down, the whole
///   group gets `SIGKILL`, children and grandchildren included. Processes the command leaves
///   running when it exits are killed too (start them with `setsid` to let them outlive it).
/// - **Output cannot deadlock it.** stdout and stderr are read as the command writes them,
///   keeping the last [`output_cap`](Self::output_cap) bytes of each (the rest is read and
///   dropped), so a chatty command never blocks on a full pipe.
///
/// Its stdin is closed. It needs a tokio runtime with time and I/O enabled (`#[tokio::main]`
/// has both).
///
/// ```
/// use taskrunner::{ShellError, ShellTask, TaskError, TaskRunner};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let ok = runner.enqueue_task(ShellTask::new("echo hello").into_task())?;
/// assert_eq!(ok.await?.stdout, "hello\n");
///
/// let failing = runner.enqueue_task(ShellTask::new("echo oops >&2; exit 3").into_task())?;
/// match failing.await {
///     Err(TaskError::Failed(ShellError::Exit { code, stderr_tail, .. })) => {
///         assert_eq!((code, stderr_tail.as_str()), (3, "oops\n"));
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ShellTask {
    name: String,
    program: OsString,
    args: Vec<OsString>,
    display: String,
    current_dir: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    timeout: Option<Duration>,
    output_cap: usize,
}

/// How much of each stream is kept by default: 64 KiB.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

// ===== impl ShellTask =====

impl ShellTask {
    /// `command`, run by `sh -c`: pipes, redirections and `&&` work as in a terminal.
    ///
    /// An empty command (or one of blanks only) is a mistake, not a command that succeeds:
    /// its task fails with [`ShellError::EmptyCommand`] without starting anything.
    ///
    /// ```
    /// use taskrunner::{ShellError, ShellTask, TaskError, TaskRunner};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runner = TaskRunner::new();
    /// let empty = runner.enqueue_task(ShellTask::new("  ").into_task())?;
    /// assert!(matches!(empty.await, Err(TaskError::Failed(ShellError::EmptyCommand { .. }))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(command: impl Into<String>) -> Self {
        let command = command.into();
        ShellTask {
            name: "shell".to_owned(),
            program: "sh".into(),
            args: vec!["-c".into(), command.clone().into()],
            display: command,
            current_dir: None,
            env: Vec::new(),
            timeout: None,
            output_cap: DEFAULT_OUTPUT_CAP,
        }
    }

    /// `program` with `args`, run directly, with no shell to interpret them.
    pub fn program<S: Into<OsString>>(
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = S>,
    ) -> Self {
        let program = program.into();
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let display = std::iter::once(&program)
            .chain(&args)
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        ShellTask {
            name: "shell".to_owned(),
            program,
            args,
            display,
            current_dir: None,
            env: Vec::new(),
            timeout: None,
            output_cap: DEFAULT_OUTPUT_CAP,
        }
    }

    /// The task's name (default `shell`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The working directory (default: the process's).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// Sets an environment variable for the command, on top of the process's environment.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Kills the command (its whole process group) if it runs longer than `timeout`; the
    /// task then ends with [`TaskError::TimedOut`](crate::TaskError::TimedOut) (or retries,
    /// if given a retry policy). The same as [`Task::timeout`] on the task.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How many bytes of stdout, and of stderr, are kept: the last ones. Default 64 KiB.
    pub fn output_cap(mut self, bytes: usize) -> Self {
        self.output_cap = bytes;
        self
    }

    /// The task that runs the command. Give it a queue, priority, retry or call id like any
    /// other [`Task`]. Its `Ok` is a [`ShellOutput`] with exit code 0.
    pub fn into_task(
        self,
    ) -> Task<
        impl Fn(TaskContext) -> BoxFuture<'static, Result<ShellOutput, ShellError>> + Send + Sync,
    > {
        let name = self.name.clone();
        let timeout = self.timeout;
        let spec = Arc::new(self);
        let task = Task::new(name, move |_ctx: TaskContext| {
            let spec = Arc::clone(&spec);
            Box::pin(async move { spec.run().await }) as BoxFuture<'static, _>
        });
        match timeout {
            Some(timeout) => task.timeout(timeout),
            None => task,
        }
    }
}
