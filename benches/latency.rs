//! Latency: the idle round trip (one task in flight: enqueue, run, await) against
//! `tokio::spawn(..).await`, on both runtimes. Enqueue-to-start percentiles under a burst are
//! in `cargo run --release --example bench_report`, which can collect per-task samples.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

fn round_trip(c: &mut Criterion) {
    const N: u64 = 1_000;
    for (rt_name, rt) in [
        ("current", common::current_thread()),
        ("multi2", common::multi_thread()),
    ] {
        let mut group = c.benchmark_group(format!("latency/round_trip/{rt_name}"));
        group
            .sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2))
            .throughput(Throughput::Elements(N));
        group.bench_function("spawn_await", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| common::round_trip_spawn(&rt, N)).sum())
        });
        group.bench_function("runner", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| common::round_trip_runner(&rt, N)).sum())
        });
        group.finish();
    }
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
