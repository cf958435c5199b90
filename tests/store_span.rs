//! A durable run's handler runs inside a `run` span carrying the run's id.
#![cfg(feature = "sqlite")]

use std::sync::{Arc, Mutex};

use taskrunner::store::SqliteStore;
use taskrunner::{TaskContext, TaskDef, TaskRunner};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The `run_id` of every `run` span created.
#[derive(Clone, Default)]
struct RunSpans(Arc<Mutex<Vec<String>>>);

struct RunId<'a>(&'a mut Option<String>);

impl Visit for RunId<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "run_id" {
            *self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for RunSpans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "run" {
            let mut id = None;
            attrs.record(&mut RunId(&mut id));
            self.0.lock().unwrap().extend(id);
        }
    }
}

#[tokio::test]
async fn a_run_is_traced_with_its_id() {
    let spans = RunSpans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let dir = std::env::temp_dir().join(format!("taskrunner_span_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let def = TaskDef::new("traced", |_: TaskContext, n: u32| async move {
        Ok::<_, String>(n)
    });
    let runner = TaskRunner::builder()
        .store(SqliteStore::open(dir.join("runs.db")).await.unwrap())
        .register(&def)
        .build()
        .unwrap();
    let run = runner.submit(&def, 3).await.unwrap();
    let id = run.id();
    assert_eq!(run.await.unwrap(), 3);
    assert_eq!(*spans.0.lock().unwrap(), [id.to_string()]);
    runner.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}
