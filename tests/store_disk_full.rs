//! A SQLite store whose disk fills up while runs end and are claimed, then has room again:
//! every run completes with its own output. Before, a COMMIT that failed on the full disk
//! left sqlx counting a transaction SQLite had already rolled back, so every later write
//! failed and the runs stalled for good; and an end that failed twice while reads still
//! worked was blamed on the row and stored as a failure.
//!
//! It mounts a small tmpfs, so it needs root (CI has it); elsewhere it says so and passes.
#![cfg(all(feature = "sqlite", target_os = "linux"))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use taskrunner::store::SqliteStore;
use taskrunner::{QueueConfig, RunFilter, RunStatus, TaskContext, TaskDef, TaskRunner};

const RUNS: u32 = 400;

/// A tmpfs mounted at a fresh directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("taskrunner-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|out| out.status.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_complete_once_a_full_disk_has_room_again() {
    let Some(fs) = Tmpfs::mount("16m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let filler = fs.0.join("filler");
    let store = SqliteStore::open(fs.0.join("runs.db")).await.unwrap();
    // Run 0 fills the disk, holds it full for a second while the others end and claim,
    // then frees it.
    let def = TaskDef::new("work", move |_: TaskContext, n: u32| {
        let filler = filler.clone();
        async move {
            if n == 0 {
                tokio::task::spawn_blocking({
                    let filler = filler.clone();
                    move || fill(&filler)
                })
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
                std::fs::remove_file(&filler).unwrap();
            }
            Ok::<_, String>(n * 2)
        }
    })
    .queue("work");
    let runner = TaskRunner::builder()
        .queue("work", QueueConfig::new().concurrency(8))
        .store(store)
        .poll_interval(Duration::from_millis(20))
        .register(&def)
        .build()
        .unwrap();
    let runs = runner.submit_many(&def, 0..RUNS).await.unwrap();
    for (n, run) in (0..RUNS).zip(runs) {
        let output = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .unwrap_or_else(|_| panic!("run {n} stalled"));
        assert_eq!(output.ok(), Some(n * 2), "run {n}");
    }
    let ended = runner
        .list_runs(RunFilter::new().limit(RUNS + 10))
        .await
        .unwrap();
    assert_eq!(ended.len(), RUNS as usize);
    assert!(
        ended.iter().all(|run| run.status == RunStatus::Completed),
        "{:?}",
        ended.iter().find(|run| run.status != RunStatus::Completed)
    );
    runner.shutdown().await;
}
