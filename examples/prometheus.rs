//! Queue metrics in Prometheus' text format (feature `metrics`).
//!
//! An agent runs a burst of tool calls on two queues, some flaky; the runner reports
//! through the `metrics` facade, and `metrics-exporter-prometheus` renders what a
//! `/metrics` endpoint would serve. Run with
//! `cargo run --example prometheus --features metrics`.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use taskrunner::{QueueConfig, RetryPolicy, Task, TaskRunner};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In a server: `PrometheusBuilder::new().with_http_listener(..).install()` (the exporter's
    // default `http-listener` feature) serves this on an HTTP endpoint instead.
    let prometheus = PrometheusBuilder::new()
        .set_buckets(&[0.001, 0.01, 0.05, 0.1, 0.5, 1.0])?
        .install_recorder()?;

    let runner = TaskRunner::builder()
        .queue("llm", QueueConfig::new().concurrency(1))
        .queue("tools", QueueConfig::new().concurrency(4))
        .build()?;
    let mut handles = Vec::new();
    for i in 0..12u64 {
        let task = Task::new("tool_call", move |ctx| async move {
            tokio::time::sleep(Duration::from_millis(5 + i % 4 * 5)).await;
            if i % 5 == 0 && ctx.attempt() == 1 {
                Err(format!("HTTP 503 on call {i}"))
            } else {
                Ok(i)
            }
        })
        .queue(if i % 3 == 0 { "llm" } else { "tools" })
        .retry(RetryPolicy::fixed(Duration::from_millis(10)).max_retries(2));
        handles.push(runner.enqueue_task(task)?);
    }
    for handle in handles {
        handle.await?;
    }
    runner.wait_idle().await;

    for queue in ["llm", "tools"] {
        let stats = runner.queue_stats(queue).expect("declared");
        println!(
            "# {queue}: run-time p50/p99 {:?}",
            stats.run_time.map(|p| (p.p50, p.p99))
        );
    }
    let text = prometheus.render();
    print!("{text}");
    assert!(text.contains("taskrunner_tasks_completed_total{queue=\"tools\"} 8"));
    Ok(())
}
