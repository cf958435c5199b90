//! [`ShellTask`]: a shell command as a background task, its whole process group under control.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::{Task, TaskContext};

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

/// What a command wrote, and how it exited.
///
/// ```
/// use taskrunner::{ShellTask, TaskRunner};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runner = TaskRunner::new();
/// let out = runner.enqueue_task(ShellTask::new("echo out; echo err >&2").into_task())?.await?;
/// assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "out\n", "err\n"));
/// assert!(!out.stdout_truncated);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShellOutput {
    /// The exit code (0 for the `Ok` of a task).
    pub code: i32,
    /// The last `output_cap` bytes of stdout, as UTF-8 (invalid sequences replaced).
    pub stdout: String,
    /// The last `output_cap` bytes of stderr, likewise.
    pub stderr: String,
    /// Whether stdout was longer than what is kept.
    pub stdout_truncated: bool,
    /// Whether stderr was longer than what is kept.
    pub stderr_truncated: bool,
}

/// Why a [`ShellTask`] failed.
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

/// How much of each stream is kept by default: 64 KiB.
pub const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

/// How much of stderr an error message quotes.
const STDERR_TAIL: usize = 2_000;

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

    /// Whether there is nothing to run: `sh -c ""` would exit 0, hiding the mistake.
    fn is_empty(&self) -> bool {
        self.program.is_empty() || self.display.trim().is_empty()
    }

    async fn run(&self) -> Result<ShellOutput, ShellError> {
        if self.is_empty() {
            return Err(ShellError::EmptyCommand {
                task: self.name.clone(),
            });
        }
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|source| ShellError::Spawn {
            command: self.display.clone(),
            source,
        })?;
        // The child leads its own group (`process_group(0)`); the guard kills the group if
        // this future is dropped: on cancel, timeout or shutdown.
        let group = child.id().map(|pid| GroupKill(Pid::from_raw(pid as i32)));
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let wait = async {
            let status = child.wait().await;
            // Leftover processes would hold the pipes open: end them with the command.
            if let Some(group) = &group {
                group.kill();
            }
            status
        };
        let (status, stdout, stderr) = tokio::join!(
            wait,
            read_tail(stdout, self.output_cap),
            read_tail(stderr, self.output_cap)
        );
        let io = |source| ShellError::Io {
            command: self.display.clone(),
            source,
        };
        let (status, (stdout, stdout_truncated), (stderr, stderr_truncated)) = (
            status.map_err(io)?,
            stdout.map_err(io)?,
            stderr.map_err(io)?,
        );
        let output = ShellOutput {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
        };
        self.judge(status, output)
    }

    fn judge(&self, status: ExitStatus, output: ShellOutput) -> Result<ShellOutput, ShellError> {
        use std::os::unix::process::ExitStatusExt;
        if status.success() {
            return Ok(output);
        }
        let stderr_tail = tail_chars(&output.stderr, STDERR_TAIL).to_owned();
        match status.code() {
            Some(code) => Err(ShellError::Exit {
                command: self.display.clone(),
                code,
                stderr_tail,
                output,
            }),
            None => Err(ShellError::Signal {
                command: self.display.clone(),
                signal: status.signal().unwrap_or(0),
                stderr_tail,
            }),
        }
    }
}

/// Kills a process group when dropped (and on demand).
struct GroupKill(Pid);

impl GroupKill {
    fn kill(&self) {
        // ESRCH (the group is gone already) is the expected error; nothing else can be done
        // about the others.
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

impl fmt::Debug for GroupKill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupKill({})", self.0)
    }
}

/// Reads `stream` to its end, keeping the last `cap` bytes. Returns them as text, and
/// whether anything was dropped.
async fn read_tail(
    stream: Option<impl AsyncRead + Unpin>,
    cap: usize,
) -> std::io::Result<(String, bool)> {
    let Some(mut stream) = stream else {
        return Ok((String::new(), false));
    };
    let mut kept: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut buffer = [0u8; 8192];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buffer[..n]);
        // Trim once the excess is large, so trimming stays amortised O(1) a byte.
        if kept.len() > cap.saturating_mul(2).max(cap + 8192) {
            let excess = kept.len() - cap;
            kept.drain(..excess);
            truncated = true;
        }
    }
    if kept.len() > cap {
        kept.drain(..kept.len() - cap);
        truncated = true;
    }
    Ok((String::from_utf8_lossy(&kept).into_owned(), truncated))
}

/// The last `max` characters of `text`.
fn tail_chars(text: &str, max: usize) -> &str {
    let count = text.chars().count();
    match text.char_indices().nth(count.saturating_sub(max)) {
        Some((start, _)) if count > max => &text[start..],
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::tail_chars;

    #[test]
    fn tails_keep_whole_characters() {
        assert_eq!(tail_chars("abc", 5), "abc");
        assert_eq!(tail_chars("abcdef", 2), "ef");
        assert_eq!(tail_chars("añb", 2), "ñb");
        assert_eq!(tail_chars("", 2), "");
    }
}
