//! Queues: the same total work (100k no-op tasks, random priorities, concurrency 3 per
//! queue) in 1 queue and spread over 1,000.

mod common;

use common::Work;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

fn one_vs_many(c: &mut Criterion) {
    const N: u64 = 100_000;
    let rt = common::multi_thread();
    let mut group = c.benchmark_group("queues");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(N));
    for queues in [1usize, 1_000] {
        group.bench_function(format!("{queues}_queues"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| common::runner(&rt, N, 3, queues, true, Work::Noop))
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, one_vs_many);
criterion_main!(benches);
