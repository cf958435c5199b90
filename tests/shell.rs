//! Background shell commands, with real processes: exit codes, output, and a process group
//! that dies on cancel, timeout and exit. (Real time here: these wait on real processes,
//! polling with generous bounds, never asserting a duration.)
#![cfg(all(feature = "process", unix))]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use taskrunner::{ShellError, ShellTask, TaskError, TaskRunner, TaskStatus};

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("taskrunner-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits (up to 10 s) for `file` to hold a pid, and returns it.
async fn read_pid(file: &PathBuf) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no pid written to {file:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits (up to 10 s) for `pid` to die.
async fn assert_dies(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_and_exit_codes() {
    let runner = TaskRunner::new();
    let ok = runner
        .enqueue_task(ShellTask::new("echo out; echo err >&2").into_task())
        .unwrap();
    let out = ok.await.unwrap();
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "out\n", "err\n")
    );

    let failing = runner
        .enqueue_task(
            ShellTask::new("echo partial; echo 'error: it broke' >&2; exit 7")
                .name("build")
                .into_task(),
        )
        .unwrap();
    let id = failing.id();
    match failing.await {
        Err(TaskError::Failed(ShellError::Exit {
            code,
            stderr_tail,
            output,
            ..
        })) => {
            assert_eq!(code, 7);
            assert_eq!(stderr_tail, "error: it broke\n");
            assert_eq!(output.stdout, "partial\n");
        }
        other => panic!("expected an exit error, got {other:?}"),
    }
    let info = runner.get_status(id).unwrap();
    assert_eq!(
        (info.name.as_str(), info.status),
        ("build", TaskStatus::Failed)
    );
    assert!(info
        .error
        .unwrap()
        .contains("exited with code 7: error: it broke"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_start_fails_with_the_os_error_and_the_runner_goes_on() {
    let runner = TaskRunner::new();
    let missing = runner
        .enqueue_task(ShellTask::program("/no/such/program", ["--help"]).into_task())
        .unwrap();
    match missing.await {
        Err(TaskError::Failed(ShellError::Spawn { command, source })) => {
            assert_eq!(command, "/no/such/program --help");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a spawn error, got {other:?}"),
    }
    let bad_dir = runner
        .enqueue_task(
            ShellTask::new("true")
                .current_dir("/no/such/dir")
                .into_task(),
        )
        .unwrap();
    assert!(matches!(
        bad_dir.await,
        Err(TaskError::Failed(ShellError::Spawn { .. }))
    ));
    let after = runner
        .enqueue_task(ShellTask::new("true").into_task())
        .unwrap();
    assert_eq!(after.await.unwrap().code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_command_fails_clearly_instead_of_succeeding() {
    let runner = TaskRunner::new();
    for task in [
        ShellTask::new("").name("empty"),
        ShellTask::new(" \t\n").name("empty"),
        ShellTask::program("", ["x"]).name("empty"),
    ] {
        let handle = runner.enqueue_task(task.into_task()).unwrap();
        match handle.await {
            Err(TaskError::Failed(error @ ShellError::EmptyCommand { .. })) => {
                let message = error.to_string();
                assert!(
                    message.contains("task `empty`") && message.contains("is empty"),
                    "{message}"
                );
            }
            other => panic!("expected EmptyCommand, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_directory_environment_and_argv() {
    let dir = scratch("cwd");
    let runner = TaskRunner::new();
    let out = runner
        .enqueue_task(
            ShellTask::new("pwd; echo \"$GREETING\"")
                .current_dir(&dir)
                .env("GREETING", "hi there")
                .into_task(),
        )
        .unwrap()
        .await
        .unwrap();
    let expected = format!("{}\nhi there\n", dir.canonicalize().unwrap().display());
    assert_eq!(out.stdout, expected);
    // The argv form passes arguments untouched: no shell expands `$HOME` or splits words.
    let out = runner
        .enqueue_task(ShellTask::program("printf", ["%s|", "$HOME", "two words"]).into_task())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(out.stdout, "$HOME|two words|");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_output_on_both_streams_is_capped_without_deadlock() {
    let runner = TaskRunner::new();
    // 4 MB on each stream: far past a pipe's 64 KiB buffer.
    let command = "head -c 4000000 /dev/zero | tr '\\0' a; head -c 4000000 /dev/zero | tr '\\0' b >&2; echo; echo end";
    let out = runner
        .enqueue_task(ShellTask::new(command).output_cap(1000).into_task())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.stdout.ends_with("a\nend\n"), "the tail is kept");
    assert!(out.stdout_truncated && out.stderr_truncated);
    assert_eq!(out.stderr, "b".repeat(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_the_whole_process_group() {
    let dir = scratch("cancel");
    let pid_file = dir.join("pid");
    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(
            ShellTask::new(format!(
                "sleep 300 & echo $! > {}; wait",
                pid_file.display()
            ))
            .into_task(),
        )
        .unwrap();
    let grandchild = read_pid(&pid_file).await;
    assert!(alive(grandchild));
    assert!(handle.cancel());
    assert!(matches!(handle.await, Err(TaskError::Cancelled)));
    assert_dies(grandchild).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_kills_the_whole_process_group() {
    let dir = scratch("timeout");
    let pid_file = dir.join("pid");
    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(
            ShellTask::new(format!(
                "sleep 300 & echo $! > {}; wait",
                pid_file.display()
            ))
            .timeout(Duration::from_millis(500))
            .into_task(),
        )
        .unwrap();
    let grandchild = read_pid(&pid_file).await;
    assert!(matches!(handle.await, Err(TaskError::TimedOut)));
    assert_dies(grandchild).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_left_behind_are_killed_when_the_command_exits() {
    let dir = scratch("leftover");
    let pid_file = dir.join("pid");
    let runner = TaskRunner::new();
    // The shell exits at once; its background `sleep` would hold stdout open for 300 s.
    let out = runner
        .enqueue_task(
            ShellTask::new(format!(
                "sleep 300 & echo $! > {}; echo started",
                pid_file.display()
            ))
            .into_task(),
        )
        .unwrap()
        .await
        .unwrap();
    assert_eq!(out.stdout, "started\n");
    assert_dies(read_pid(&pid_file).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_now_kills_running_commands() {
    let dir = scratch("shutdown");
    let pid_file = dir.join("pid");
    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(
            ShellTask::new(format!("echo $$ > {}; sleep 300", pid_file.display())).into_task(),
        )
        .unwrap();
    let shell = read_pid(&pid_file).await;
    runner.shutdown_now().await;
    assert!(matches!(handle.await, Err(TaskError::Shutdown)));
    assert_dies(shell).await;
}
