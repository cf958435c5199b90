//! The run-streams section of `store_bench`: stored-emit throughput within one run, and emit →
//! delivered latency to a reader in another process.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use taskrunner::store::{PgStore, SqliteStore, Store};
use taskrunner::{RunEventKind, TaskContext, TaskDef, TaskRunner};

/// The first argument that makes this binary a reader child.
pub const READER_ARG: &str = "--stream-reader";

/// Emits in the throughput run.
const BURST: u64 = 50_000;
/// Paced emits in the latency run, and their spacing.
const SAMPLES: u64 = 400;
const SPACING: Duration = Duration::from_millis(5);

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `(kind, count)`: `burst` emits `count` events as fast as it can; `paced` emits `count`
/// timestamps (µs since the epoch) `SPACING` apart.
type Emitter = TaskDef<
    fn(TaskContext, (String, u64)) -> futures::future::BoxFuture<'static, Result<f64, String>>,
>;

fn emitter_handler(
    ctx: TaskContext,
    (kind, count): (String, u64),
) -> futures::future::BoxFuture<'static, Result<f64, String>> {
    Box::pin(async move {
        let t = Instant::now();
        for i in 0..count {
            if kind == "paced" {
                tokio::time::sleep(SPACING).await;
                ctx.emit("t", &micros_now()).await?;
            } else {
                ctx.emit("n", &i).await?;
            }
        }
        // The end waits for the last emit's commit: this is the committed rate.
        Ok(t.elapsed().as_secs_f64())
    })
}

fn emitter() -> Emitter {
    TaskDef::new("emitter", emitter_handler as fn(_, _) -> _)
}

pub async fn bench(label: &str, store: Store, locator: &str) {
    let def = emitter();
    let runner = TaskRunner::builder()
        .store(store)
        .register(&def)
        .build()
        .unwrap();

    // Throughput: one run emits BURST events; timed from its first emit to its end stored.
    let t = Instant::now();
    let run = runner
        .submit(&def, ("burst".to_owned(), BURST))
        .await
        .unwrap();
    let id = run.id();
    let inside = run.await.unwrap();
    let total = t.elapsed();
    // Read them all back (paged), to show a reader keeps up.
    let t_read = Instant::now();
    let read = runner.run_events(id).count().await;
    let read_time = t_read.elapsed();

    // Latency: a reader in another process follows a run that emits a timestamp every 5 ms.
    let run = runner
        .submit(&def, ("paced".to_owned(), SAMPLES))
        .await
        .unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([READER_ARG, locator, &run.id().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    run.await.unwrap();
    let out = child.wait_with_output().unwrap();
    let mut lat: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    lat.sort_by(f64::total_cmp);
    // The child starts while the first events go out: drop the first 50 (its start-up).
    let lat = if lat.len() > 100 {
        &lat[50..]
    } else {
        &lat[..]
    };
    let p = |q: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{label:<8} streams: {BURST} stored emits in one run: {:>7.0} events/s committed ({:.2} s in the handler, {:.2} s to the stored end) | read back {read} events in {:.0} ms | emit -> reader in another process ({} samples): p50 {:.2} ms, p99 {:.2} ms",
        BURST as f64 / total.as_secs_f64(),
        inside,
        total.as_secs_f64(),
        read_time.as_secs_f64() * 1e3,
        lat.len(),
        p(0.5) / 1e3,
        p(0.99) / 1e3,
    );
    runner.shutdown().await;
}

/// The reader child: follows a run and prints, for each timestamp emitted, how many µs
/// after its emit it arrived.
pub async fn reader_child(args: &[String]) {
    let store: Store = match args[0].strip_prefix("sqlite:") {
        Some(path) => SqliteStore::open(path).await.unwrap().into(),
        None => PgStore::connect(&args[0]).await.unwrap().into(),
    };
    let runner = TaskRunner::builder().store(store).build().unwrap();
    let mut events = runner.run_events(args[1].parse().unwrap());
    let mut out = String::new();
    while let Some(event) = events.next().await {
        if let RunEventKind::Emitted { value, .. } = event.unwrap().kind {
            if let Some(sent) = value.as_u64() {
                out.push_str(&format!("{}\n", micros_now().saturating_sub(sent)));
            }
        }
    }
    print!("{out}");
}
