//! The write queue's duty (see `write_queue`) when callers give up, when
//! runtimes stop or sit idle, and under load: no write hangs, none runs
//! after its caller gave up before it ran, every result told is true, and
//! one task's writes commit in the order it queued them.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use astrbot_core::{Store, StoreResult};
use tokio::runtime::Runtime;

use crate::db::DbResult;
use crate::tests::TempDb;
use crate::SqliteStore;

/// A write made on another thread: its outcome, or `Elapsed` if it hung.
type WriteElsewhere = std::thread::JoinHandle<Result<StoreResult<()>, tokio::time::error::Elapsed>>;

/// A runtime of its own: `workers` threads, or the current thread for 0.
fn runtime(workers: usize) -> Runtime {
    let mut builder = match workers {
        0 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    builder.enable_all().build().unwrap()
}

/// Creates session `id` on another thread, in a runtime of its own, giving
/// up after a few seconds; `Err` means it hung.
fn create_elsewhere(store: &SqliteStore, id: &'static str, after: Duration) -> WriteElsewhere {
    let store = store.clone();
    std::thread::spawn(move || {
        std::thread::sleep(after);
        runtime(0).block_on(async move {
            let created = store.create_session(id, "webchat", "alice", false);
            tokio::time::timeout(Duration::from_secs(3), created)
                .await
                .map(|created| created.map(drop))
        })
    })
}

/// Waits for a write from [`create_elsewhere`]; it must have succeeded.
fn wait_for_write(write: WriteElsewhere) {
    let outcome = write.join().unwrap();
    outcome.expect("the write hung").unwrap();
}

/// Nobody holds the duty and nothing is queued.
fn queue_is_idle(store: &SqliteStore) -> bool {
    let queue = &store.shared.queue;
    queue.claim() && !queue.release()
}

#[tokio::test]
async fn writes_go_on_when_the_task_running_them_is_cancelled() {
    let db = TempDb::new();
    let store = db.open().await;
    // Holding the writing connection keeps the first write, which took
    // the duty of running the queue, waiting for it.
    let connection = store.shared.writer.lock().await;
    let create = |id: &'static str| {
        let store = store.clone();
        tokio::spawn(async move { store.create_session(id, "webchat", "alice", false).await })
    };
    let first = create("first");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = create("second");
    tokio::time::sleep(Duration::from_millis(20)).await;

    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    drop(connection);

    let second = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the waiting write was run by its own caller");
    second.unwrap().unwrap();
    assert!(store.get_session("second").await.unwrap().is_some());
    assert!(
        store.get_session("first").await.unwrap().is_none(),
        "the cancelled write was taken back"
    );
}

#[test]
fn a_write_given_up_outside_a_runtime_is_not_run() {
    let db = TempDb::new();
    let runtime = runtime(0);
    let store = runtime.block_on(db.open());

    // Polled once by some other executor: it takes the duty and yields.
    let mut write = Box::pin(store.create_session("given-up", "webchat", "alice", false));
    let mut context = Context::from_waker(Waker::noop());
    assert!(write.as_mut().poll(&mut context).is_pending());
    drop(write);

    let found = runtime.block_on(store.get_session("given-up")).unwrap();
    assert!(
        found.is_none(),
        "a write given up before it ran was committed"
    );
    assert!(queue_is_idle(&store));
}

#[test]
fn writes_go_on_when_the_runtime_running_them_shuts_down() {
    let db = TempDb::new();
    let store = runtime(0).block_on(db.open());
    // As the checkpoint thread does, hold the connection for a while, so
    // that the first write waits for it holding the duty.
    let connection = store.shared.writer.try_lock().unwrap();
    let first_runtime = runtime(1);
    let first = store.clone();
    first_runtime.spawn(async move { first.create_session("a", "webchat", "alice", false).await });
    let second = create_elsewhere(&store, "b", Duration::from_millis(100));
    std::thread::sleep(Duration::from_millis(200));

    drop(first_runtime);
    drop(connection);

    wait_for_write(second);
    assert!(queue_is_idle(&store));
}

#[test]
fn a_write_queued_during_a_batch_is_run_by_its_own_caller() {
    let db = TempDb::new();
    let idle_later = runtime(0);
    let store = idle_later.block_on(db.open());
    let second = create_elsewhere(&store, "b", Duration::from_millis(100));

    // This batch takes 300 ms; the second write queues meanwhile. Then
    // nothing drives this runtime any more.
    let slow = store.write(|_| -> DbResult<()> {
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    });
    idle_later.block_on(slow).unwrap();

    wait_for_write(second);
    assert!(queue_is_idle(&store));
}

/// One queued insert of row (`task`, `seq`) into the stress test's table.
fn insert(store: &SqliteStore, task: i64, seq: i64) -> impl Future<Output = StoreResult<()>> + '_ {
    store.write(move |c| -> DbResult<()> {
        c.execute("INSERT INTO t (task, seq) VALUES (?1, ?2)", [task, seq])?;
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_and_cancellations_every_result_is_true_and_in_order() {
    let db = TempDb::new();
    let store = db.open().await;
    store
        .write(|c| -> DbResult<()> {
            c.execute_batch(
                "CREATE TABLE t (n INTEGER PRIMARY KEY AUTOINCREMENT, task INT, seq INT)",
            )?;
            Ok(())
        })
        .await
        .unwrap();
    // Something else takes the connection now and then, as the checkpoint
    // thread does.
    let stop = Arc::new(AtomicBool::new(false));
    let checkpointer = {
        let (writer, stop) = (store.shared.writer.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                {
                    let _held = writer.blocking_lock();
                    std::thread::sleep(Duration::from_micros(200));
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };

    // Each task writes rows 0, 1, 2 … in order; every third write is
    // given up at once or after a few microseconds.
    let tasks: Vec<_> = (0..32)
        .map(|task: i64| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut succeeded = Vec::new();
                for seq in 0..100 {
                    let write = insert(&store, task, seq);
                    let outcome = match seq % 6 {
                        0 => tokio::time::timeout(Duration::ZERO, write).await,
                        3 => tokio::time::timeout(Duration::from_micros(200), write).await,
                        _ => Ok(write.await),
                    };
                    match outcome {
                        Ok(Ok(())) => succeeded.push((task, seq)),
                        Ok(Err(error)) => panic!("write {task}/{seq} failed: {error}"),
                        Err(_) => {}
                    }
                }
                succeeded
            })
        })
        .collect();
    let mut succeeded = Vec::new();
    for task in tasks {
        let done = tokio::time::timeout(Duration::from_secs(60), task);
        succeeded.extend(done.await.expect("a writer hung").unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    checkpointer.join().unwrap();

    let rows: Vec<(i64, i64)> = {
        let connection = store.shared.writer.lock().await;
        let mut rows = connection
            .prepare("SELECT task, seq FROM t ORDER BY n")
            .unwrap();
        let rows = rows.query_map([], |row| Ok((row.get(0)?, row.get(1)?)));
        rows.unwrap().map(Result::unwrap).collect()
    };
    let stored: HashSet<(i64, i64)> = rows.iter().copied().collect();
    for row in &succeeded {
        assert!(
            stored.contains(row),
            "{row:?} was reported written but is not"
        );
    }
    let mut last_seq = HashMap::new();
    for (task, seq) in rows {
        if let Some(before) = last_seq.insert(task, seq) {
            assert!(
                seq > before,
                "task {task}: row {seq} committed after {before}"
            );
        }
    }
    assert!(queue_is_idle(&store));
}
