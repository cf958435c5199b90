//! Every attempt runs inside a `task` span carrying id, call id, name, queue and attempt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taskrunner::{RetryPolicy, Task, TaskContext, TaskRunner};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

type Fields = BTreeMap<String, String>;

/// Records each span's fields, and for each event the fields of the span it happened in.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, (String, Fields)>>>,
    events: Arc<Mutex<Vec<(String, Fields)>>>,
}

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Visitor(&mut fields));
        self.spans
            .lock()
            .unwrap()
            .insert(id.into_u64(), (attrs.metadata().name().to_owned(), fields));
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let span = ctx.event_span(event).and_then(|span| {
            self.spans
                .lock()
                .unwrap()
                .get(&span.id().into_u64())
                .cloned()
        });
        let (name, span_fields) = span.unwrap_or_default();
        self.events
            .lock()
            .unwrap()
            .push((format!("{name}: {message}"), span_fields));
    }
}

#[tokio::test(start_paused = true)]
async fn each_attempt_runs_in_a_span_with_the_tasks_identity() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let runner = TaskRunner::new();
    let handle = runner
        .enqueue_task(
            Task::new("fetch_price", |ctx: TaskContext| async move {
                tracing::info!("fetching");
                if ctx.attempt() == 1 {
                    Err("flaky")
                } else {
                    Ok(())
                }
            })
            .call_id("call_abc")
            .retry(RetryPolicy::fixed(Duration::from_millis(5))),
        )
        .unwrap();
    let id = handle.id().to_string();
    handle.await.unwrap();

    let events = capture.events.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    for (attempt, (message, fields)) in events.iter().enumerate() {
        assert_eq!(message, "task: fetching");
        let expected: Fields = [
            ("attempt", (attempt + 1).to_string()),
            ("call_id", "call_abc".to_owned()),
            ("id", id.clone()),
            ("name", "fetch_price".to_owned()),
            ("queue", "main".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(fields, &expected);
    }
}
