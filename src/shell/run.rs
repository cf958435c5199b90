//! Running a [`ShellTask`]: spawn it in a process group of its own, capture its output while
//! it runs, and judge how it exited.

use std::process::{ExitStatus, Stdio};

use nix::unistd::Pid;
use tokio::process::Command;

use super::output::{read_tail, tail_chars};
use super::process_group::GroupKill;
use super::{ShellError, ShellOutput, ShellTask};

/// How much of stderr an error message quotes.
const STDERR_TAIL: usize = 2_000;

impl ShellTask {
    /// Whether there is nothing to run: `sh -c ""` would exit 0, hiding the mistake.
    fn is_empty(&self) -> bool {
        self.program.is_empty() || self.display.trim().is_empty()
    }

    pub(super) async fn run(&self) -> Result<ShellOutput, ShellError> {
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
