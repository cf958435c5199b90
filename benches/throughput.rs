//! Throughput: enqueue N tasks, await them all. The baselines `spawn_all` and `semaphore_*`
//! run in the same group as the runner, so every report carries the ratio.
//!
//! `cargo bench --bench throughput`; `cargo run --release --example bench_report` prints the
//! headline cases as one table of medians and ratios.

mod common;

use common::Work;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

/// Backlog growth: N from 1k to 1M, concurrency 3, random priorities, 2 workers.
fn by_backlog(c: &mut Criterion) {
    let rt = common::multi_thread();
    let mut group = c.benchmark_group("throughput/backlog");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    for n in [1_000u64, 10_000, 100_000, 1_000_000] {
        group.throughput(Throughput::Elements(n));
        group.measurement_time(Duration::from_secs(if n >= 1_000_000 { 8 } else { 2 }));
        group.bench_with_input(BenchmarkId::new("spawn_all", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| common::spawn_all(&rt, n, Work::Noop))
                    .sum()
            })
        });
        group.bench_with_input(BenchmarkId::new("semaphore_3", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| common::semaphore(&rt, n, 3, Work::Noop))
                    .sum()
            })
        });
        group.bench_with_input(BenchmarkId::new("runner_c3_random", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| common::runner(&rt, n, 3, 1, true, Work::Noop))
                    .sum()
            })
        });
    }
    group.finish();
}

/// The matrix at N = 10k: concurrency 3 and 64, random and equal priorities, no-op and
/// yield-once handlers, current-thread and 2-worker runtimes.
fn by_shape(c: &mut Criterion) {
    const N: u64 = 10_000;
    for (rt_name, rt) in [
        ("current", common::current_thread()),
        ("multi2", common::multi_thread()),
    ] {
        for (work_name, work) in [("noop", Work::Noop), ("yield", Work::YieldOnce)] {
            let mut group = c.benchmark_group(format!("throughput/{rt_name}/{work_name}"));
            group
                .sample_size(10)
                .warm_up_time(Duration::from_millis(300))
                .measurement_time(Duration::from_secs(1))
                .throughput(Throughput::Elements(N));
            group.bench_function("spawn_all", |b| {
                b.iter_custom(|iters| (0..iters).map(|_| common::spawn_all(&rt, N, work)).sum())
            });
            for concurrency in [3usize, 64] {
                group.bench_function(format!("semaphore_{concurrency}"), |b| {
                    b.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| common::semaphore(&rt, N, concurrency, work))
                            .sum()
                    })
                });
                for (prio_name, random) in [("random", true), ("equal", false)] {
                    group.bench_function(format!("runner_c{concurrency}_{prio_name}"), |b| {
                        b.iter_custom(|iters| {
                            (0..iters)
                                .map(|_| common::runner(&rt, N, concurrency, 1, random, work))
                                .sum()
                        })
                    });
                }
            }
            group.finish();
        }
    }
}

criterion_group!(benches, by_backlog, by_shape);
criterion_main!(benches);
