//! The own-queue deadlock: a handler that awaits a task waiting in its own full queue is
//! warned about, in debug builds, through `tracing`.
#![cfg(debug_assertions)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrunner::{QueueConfig, Task, TaskContext, TaskRunner};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Keeps every warning's message.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut message = String::new();
            event.record(&mut Message(&mut message));
            self.0.lock().unwrap().push(message);
        }
    }
}

fn parent(
    runner: &TaskRunner,
    child_queue: &'static str,
) -> Task<
    impl Fn(TaskContext) -> futures::future::BoxFuture<'static, Result<&'static str, String>>
        + Send
        + Sync,
> {
    let inner = runner.clone();
    Task::new("parent", move |_ctx| {
        let runner = inner.clone();
        Box::pin(async move {
            let child = runner
                .enqueue_task(
                    Task::new("child", |_ctx| async { Ok::<_, String>(()) }).queue(child_queue),
                )
                .map_err(|e| e.to_string())?;
            // A bounded wait, so that the test ends; a real handler would hang here.
            match tokio::time::timeout(Duration::from_secs(1), child).await {
                Ok(_) => Ok("child finished"),
                Err(_) => Ok("deadlocked"),
            }
        }) as futures::future::BoxFuture<'static, _>
    })
    .queue("one")
}

#[test]
fn awaiting_a_task_of_the_handlers_own_full_queue_is_warned_about() {
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let runner = TaskRunner::builder()
            .queue("one", QueueConfig::new().concurrency(1))
            .queue("subtasks", QueueConfig::new().concurrency(1))
            .build()
            .unwrap();
        let stuck = runner.enqueue_task(parent(&runner, "one")).unwrap();
        assert_eq!(stuck.await.unwrap(), "deadlocked");
        let logged = warnings.0.lock().unwrap().clone();
        assert_eq!(logged.len(), 1, "one warning a handle: {logged:?}");
        assert!(
            logged[0].contains("queue `one`") && logged[0].contains("deadlock"),
            "{}",
            logged[0]
        );

        // The way out: another queue for sub-tasks. No warning.
        let fine = runner.enqueue_task(parent(&runner, "subtasks")).unwrap();
        assert_eq!(fine.await.unwrap(), "child finished");
        assert_eq!(warnings.0.lock().unwrap().len(), 1);
        runner.shutdown().await;
    });
}
