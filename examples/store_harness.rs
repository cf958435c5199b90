//! The durable store on the peer harness's workloads (`../shared/bench/durable/`):
//! `store_harness W1|W2|W3 <postgres-url | sqlite-file>`, env `N`, `CONC` (8), `MODE`,
//! `VARIANT` (`default`: the adaptive read-ahead; `ahead`: `claim_ahead(248)`; `free`:
//! `claim_ahead(0)`); prints one JSON line with the harness's fields.
//!
//! - W1: `N` runs submitted one by one (each its own commit), then a worker of concurrency
//!   `CONC` drains them; timed until the store shows all completed.
//! - W2: one worker of concurrency 1; submit one run, wait until its completion is visible,
//!   500 times (the first 20 dropped).
//! - W3: W1 with the harness's priorities 0..15; reports the share of priority inversions.
//!
//! Build with `cargo build --release --all-features --example store_harness`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taskrunner::store::{PgStore, SqliteStore, Store};
use taskrunner::{QueueConfig, RunFilter, RunOptions, RunStatus, TaskContext, TaskDef, TaskRunner};

type Order = Arc<Mutex<Vec<(u32, Instant)>>>;

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The harness's xorshift32 priorities (seed 42).
fn priorities(n: usize) -> Vec<u32> {
    let mut x: u32 = 42;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % 16
        })
        .collect()
}

fn inversions(order: &[u32]) -> f64 {
    let mut seen = [0u64; 16];
    let (mut inv, mut pairs) = (0u64, 0u64);
    for &p in order {
        for (q, count) in seen.iter().enumerate() {
            if (q as u32) < p {
                inv += count;
            }
            if q as u32 != p {
                pairs += count;
            }
        }
        seen[p as usize] += 1;
    }
    if pairs == 0 {
        0.0
    } else {
        (inv as f64 / pairs as f64 * 1e4).round() / 1e4
    }
}

async fn open(target: &str) -> Store {
    if target.starts_with("postgres://") || target.starts_with("postgresql://") {
        PgStore::connect(target).await.unwrap().into()
    } else {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{target}{suffix}"));
        }
        SqliteStore::open(target).await.unwrap().into()
    }
}

#[tokio::main]
async fn main() {
    // `HARNESS_LOG=1`: the runner's debug log on stderr (to look into a stalled run).
    if std::env::var_os("HARNESS_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().collect();
    let (workload, target) = match args.as_slice() {
        [_, w, t] if ["W1", "W2", "W3"].contains(&w.as_str()) => (w.clone(), t.clone()),
        _ => {
            eprintln!("usage: store_harness W1|W2|W3 <postgres-url | sqlite-file>");
            std::process::exit(2);
        }
    };
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("N", if workload == "W2" { 500 } else { 10_000 });
    let conc = if workload == "W2" { 1 } else { env("CONC", 8) };
    let variant = std::env::var("VARIANT").unwrap_or_else(|_| "default".into());
    // `default`: the adaptive read-ahead; `ahead`: a fixed 248; `free`: free slots only.
    let ahead = match variant.as_str() {
        "ahead" => Some(248),
        "free" => Some(0),
        _ => None,
    };
    let mode = std::env::var("MODE").unwrap_or_else(|_| "sync".into());
    let store = open(&target).await;

    let order: Order = Arc::default();
    let seen = Arc::clone(&order);
    let def = TaskDef::new("noop", move |_: TaskContext, p: u32| {
        seen.lock().unwrap().push((p, Instant::now()));
        futures::future::ready(Ok::<_, String>(()))
    })
    .queue("bench");
    let worker = |store: Store| {
        let builder = TaskRunner::builder()
            .queue("bench", QueueConfig::new().concurrency(conc))
            .store(store)
            .register(&def);
        match ahead {
            Some(n) => builder.claim_ahead(n),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let mut out = serde_json::json!({
        "anchor": "taskrunner", "variant": variant, "version": "taskrunner 0.1.0 (sqlx 0.9)",
        "workload": workload, "mode": mode, "n": n, "concurrency": conc,
        "settings": format!(
            "claim_ahead {}; {}; runs submitted one by one",
            ahead.map_or("adaptive".to_owned(), |n| n.to_string()),
            if target.contains("://") { "PostgreSQL, LISTEN/NOTIFY" } else { "SQLite WAL synchronous=FULL" }
        ),
    });
    if workload == "W2" {
        let runner = worker(store);
        let (mut done, mut pickup) = (Vec::new(), Vec::new());
        for i in 0..n {
            order.lock().unwrap().clear();
            let t = Instant::now();
            runner.submit(&def, 0).await.unwrap().await.unwrap();
            if i >= 20 {
                done.push(ms(t.elapsed()));
                pickup.push(ms(order.lock().unwrap()[0].1 - t));
            }
        }
        done.sort_by(f64::total_cmp);
        pickup.sort_by(f64::total_cmp);
        out["done_p50_ms"] = pct(&done, 50.0).into();
        out["done_p99_ms"] = pct(&done, 99.0).into();
        out["done_mean_ms"] = (done.iter().sum::<f64>() / done.len() as f64).into();
        out["pickup_p50_ms"] = pct(&pickup, 50.0).into();
        out["pickup_p99_ms"] = pct(&pickup, 99.0).into();
        runner.shutdown().await;
    } else {
        let prios = if workload == "W3" {
            priorities(n)
        } else {
            vec![0; n]
        };
        let submitter = TaskRunner::builder().store(store.clone()).build().unwrap();
        let t = Instant::now();
        for &p in &prios {
            let _run = submitter
                .submit_with(&def, p, RunOptions::new().priority(p as i32))
                .await
                .unwrap();
        }
        let insert = t.elapsed();
        let t = Instant::now();
        let runner = worker(store);
        loop {
            let open = runner
                .list_runs(RunFilter::new().status(RunStatus::Pending).limit(1))
                .await
                .unwrap()
                .len()
                + runner
                    .list_runs(RunFilter::new().status(RunStatus::Running).limit(1))
                    .await
                    .unwrap()
                    .len();
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let drain = t.elapsed();
        out["insert_per_s"] = (n as f64 / insert.as_secs_f64()).round().into();
        out["drain_per_s"] = (n as f64 / drain.as_secs_f64()).round().into();
        out["drain_s"] = ((drain.as_secs_f64() * 1e3).round() / 1e3).into();
        if workload == "W3" {
            let started: Vec<u32> = order.lock().unwrap().iter().map(|(p, _)| *p).collect();
            out["prio_inversion"] = inversions(&started).into();
        }
        runner.shutdown().await;
    }
    println!("{out}");
}
