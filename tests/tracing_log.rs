//! With no `tracing` subscriber, an attempt's `task` span still reaches a `log` logger that
//! takes info records (`tracing`'s `log` feature, which `sqlx` turns on): the runner skips
//! making the span only when neither could see it. Its own binary: the logger is global.
#![cfg(feature = "sqlite")]

use std::sync::Mutex;

use taskrunner::{Task, TaskContext, TaskRunner};

/// Every record logged, as `target: message`.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{}: {}", record.target(), record.args());
        self.0.lock().unwrap().push(line);
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

#[tokio::test]
async fn an_attempts_span_reaches_a_log_logger_without_a_subscriber() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    assert!(!tracing::dispatcher::has_been_set(), "no subscriber here");

    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(Task::new("logged_task", |_: TaskContext| async {
            Ok::<_, String>(7)
        }))
        .unwrap();
    assert_eq!(handle.await.unwrap(), 7);

    let lines = LOGGER.0.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("taskrunner::task::attempt: task;")
                && line.contains("name=\"logged_task\"")
                && line.contains("attempt=1")),
        "the attempt's span was logged: {lines:#?}"
    );
}
