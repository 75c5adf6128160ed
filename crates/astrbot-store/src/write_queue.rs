//! Group commit: concurrent writes share one transaction.
//!
//! Every commit costs the same fixed work whatever it holds: taking the
//! WAL's write lock, writing the changed pages (the newest page of a busy
//! table is changed by nearly every insert) and a frame header each,
//! releasing the lock. Under load many writes wait for the one writing
//! connection at once, so they queue here and one caller at a time holds
//! the duty of running them: it takes every write that is waiting, runs
//! each in its own savepoint, and commits them together. The others only
//! wait for their results; none of them queues for the connection, which
//! under load had each wait its turn to find its write already done. A
//! duty given up while writes still wait is offered to one of their
//! callers, which takes it up.
//!
//! So a write's future must be polled to the end or dropped: one that
//! holds the duty and is kept but not polled holds up every other write.
//!
//! A write that fails (a duplicate id) is rolled back alone; the others
//! still commit. Results are handed out only after the commit, so a write
//! never reports success for a transaction that was then lost, and a write
//! reported failed was not committed.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use astrbot_core::StoreError;
use rusqlite::Connection;
use tokio::sync::{oneshot, Notify};

use crate::db::{self, lock, DbError, DbResult};

/// One queued write: runs its statements (given the connection; `None`
/// when the batch could not start), and returns what to tell its caller
/// once the outcome of the commit is known.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Delivery + Send>;

/// Tells a caller its result, given how the commit went.
type Delivery = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// Writes waiting for the writing connection, in the order they came.
#[derive(Default)]
pub(crate) struct WriteQueue {
    waiting: Mutex<Waiting>,
    /// Wakes one waiting caller when the duty is given up with writes
    /// still waiting (or, with none waiting, the next caller to wait).
    duty_offer: Notify,
}

#[derive(Default)]
struct Waiting {
    /// Ids tell a withdrawn job apart.
    last_id: u64,
    jobs: Vec<(u64, Job)>,
    /// Someone holds the duty of running the jobs.
    duty_taken: bool,
}

impl Waiting {
    /// Takes the duty if nobody holds it.
    fn take_duty(&mut self) -> bool {
        !std::mem::replace(&mut self.duty_taken, true)
    }
}

/// A queued write: its result once committed, the guard that withdraws
/// it, and whether the caller took the duty of running the queue (and so
/// must run it, see [`WriteQueue::run_batch`] and [`WriteQueue::release`]).
pub(crate) struct Queued<T> {
    pub result: oneshot::Receiver<Result<T, StoreError>>,
    pub withdraw: Withdraw,
    pub has_duty: bool,
}

impl std::fmt::Debug for WriteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteQueue").finish_non_exhaustive()
    }
}

impl WriteQueue {
    /// Queues `work`; the caller takes the duty of running the queue if
    /// nobody holds it.
    pub(crate) fn push<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> DbResult<T> + Send + 'static,
    ) -> Queued<T> {
        let (sender, receiver) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            let result = connection.map(|connection| in_savepoint(connection, work));
            Box::new(move |committed| {
                let outcome = match (committed, result) {
                    (Err(error), _) => Err(error.clone()),
                    (Ok(()), Some(result)) => result,
                    (Ok(()), None) => Err(StoreError::Backend("the write did not run".into())),
                };
                // The caller may have stopped waiting; the write stands.
                let _ = sender.send(outcome);
            })
        });
        let (id, has_duty) = {
            let mut waiting = lock(&self.waiting);
            waiting.last_id += 1;
            let id = waiting.last_id;
            waiting.jobs.push((id, job));
            (id, waiting.take_duty())
        };
        Queued {
            result: receiver,
            withdraw: Withdraw {
                queue: self.clone(),
                id,
            },
            has_duty,
        }
    }

    /// Takes the duty if nobody holds it.
    pub(crate) fn claim(&self) -> bool {
        lock(&self.waiting).take_duty()
    }

    /// Runs the writes waiting now as one transaction. Called by the
    /// duty's holder, with the writing connection held. `count` is told
    /// how many writes ran before any caller learns its result.
    pub(crate) fn run_batch(&self, connection: &mut Connection, count: impl FnOnce(u64)) {
        let batch = std::mem::take(&mut lock(&self.waiting).jobs);
        if !batch.is_empty() {
            run_batch(connection, batch, count);
        }
    }

    /// Gives the duty up. Writes still waiting are not run by their
    /// callers unless asked (they only wait for results), so one of them
    /// is offered the duty ([`WriteQueue::duty_offered`]). Returns whether
    /// writes were waiting.
    pub(crate) fn release(&self) -> bool {
        let left = {
            let mut waiting = lock(&self.waiting);
            waiting.duty_taken = false;
            !waiting.jobs.is_empty()
        };
        if left {
            self.duty_offer.notify_one();
        }
        left
    }

    /// Completes when the duty is offered to this caller; it should then
    /// [`claim`](WriteQueue::claim) it and run a batch. Dropped after the
    /// offer came, it passes the offer on.
    pub(crate) async fn duty_offered(&self) {
        self.duty_offer.notified().await
    }
}

/// Takes a queued write back out of the queue when its caller is dropped
/// before the write ran (the caller's request was cancelled).
pub(crate) struct Withdraw {
    queue: Arc<WriteQueue>,
    id: u64,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        lock(&self.queue.waiting)
            .jobs
            .retain(|(id, _)| *id != self.id);
    }
}

/// One transaction for the whole batch.
fn run_batch(connection: &mut Connection, batch: Vec<(u64, Job)>, count: impl FnOnce(u64)) {
    if let Err(error) = begin(connection) {
        for (_, job) in batch {
            job(None)(Err(&error));
        }
        return;
    }
    count(batch.len() as u64);

    // A failure so bad that SQLite rolled the whole transaction back (disk
    // full, I/O error) ends the batch: the writes after it are not run, as
    // outside the transaction each would commit on its own.
    let deliveries: Vec<Delivery> = batch
        .into_iter()
        .map(|(_, job)| job((!connection.is_autocommit()).then_some(&*connection)))
        .collect();
    let committed = if connection.is_autocommit() {
        Err(StoreError::Backend(
            "the write was rolled back by the database".to_owned(),
        ))
    } else {
        // BEGIN, SAVEPOINT, RELEASE and COMMIT go through `db::execute`,
        // which prepares each once per connection: they run for every
        // write, and parsing them each time cost about 2 % of the
        // server's CPU under chat load.
        db::execute(connection, "COMMIT", [])
            .map(drop)
            .map_err(|error| {
                let _ = connection.execute_batch("ROLLBACK");
                StoreError::from(error)
            })
    };
    for delivery in deliveries {
        delivery(committed.as_ref().map(|_| ()));
    }
}

/// Starts the batch's transaction, taking the write lock now. Another
/// process holding it makes this wait as blocking work, with the busy
/// timeout, instead of failing.
fn begin(connection: &mut Connection) -> Result<(), StoreError> {
    db::run(connection, |connection| {
        db::execute(connection, "BEGIN IMMEDIATE", [])?;
        Ok(())
    })
}

/// Runs one write in a savepoint, so that its failure (or panic) undoes
/// only its own changes.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> DbResult<T>,
) -> Result<T, StoreError> {
    if let Err(error) = db::execute(connection, "SAVEPOINT write", []) {
        return Err(error.into());
    }
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(connection)))
        .unwrap_or_else(|_| Err(StoreError::Backend("a write failed unexpectedly".into()).into()));
    if connection.is_autocommit() {
        // The whole transaction was rolled back; the savepoint went with it.
        return result.map_err(StoreError::from);
    }
    let closed = if result.is_ok() {
        db::execute(connection, "RELEASE write", []).map(drop)
    } else {
        connection
            .execute_batch("ROLLBACK TO write; RELEASE write")
            .map_err(DbError::from)
    };
    match (result, closed) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(error), _) => Err(error.into()),
        (Ok(_), Err(error)) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch("CREATE TABLE t (x INTEGER UNIQUE)")
            .unwrap();
        connection
    }

    fn insert(connection: &Connection, x: i64) -> DbResult<()> {
        connection.execute("INSERT INTO t (x) VALUES (?)", [x])?;
        Ok(())
    }

    fn rows(connection: &Connection) -> Vec<i64> {
        let mut statement = connection.prepare("SELECT x FROM t ORDER BY x").unwrap();
        let rows = statement.query_map([], |row| row.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[tokio::test]
    async fn a_failed_write_is_undone_alone_and_the_rest_commit_together() {
        let mut connection = table();
        let queue = Arc::new(WriteQueue::default());
        let first = queue.push(|c| insert(c, 1));
        // Inserts 2, then fails on the duplicate 1: its 2 must go too.
        let failing = queue.push(|c| {
            insert(c, 2)?;
            insert(c, 1)
        });
        let last = queue.push(|c| insert(c, 3));

        queue.run_batch(&mut connection, |ran| assert_eq!(ran, 3));

        assert!(first.result.await.unwrap().is_ok());
        assert!(matches!(
            failing.result.await.unwrap(),
            Err(StoreError::Conflict(_))
        ));
        assert!(last.result.await.unwrap().is_ok());
        assert_eq!(rows(&connection), [1, 3]);
        assert!(connection.is_autocommit(), "the batch was committed");
    }

    #[tokio::test]
    async fn a_withdrawn_write_never_runs() {
        let mut connection = table();
        let queue = Arc::new(WriteQueue::default());
        let queued = queue.push(|c| insert(c, 1));
        drop(queued.withdraw);

        queue.run_batch(&mut connection, |_| panic!("nothing is left to run"));
        assert!(
            queued.result.await.is_err(),
            "the caller is told it did not run"
        );
        assert!(rows(&connection).is_empty());
    }

    #[tokio::test]
    async fn one_caller_at_a_time_holds_the_duty_of_running_the_queue() {
        let mut connection = table();
        let queue = Arc::new(WriteQueue::default());
        let first = queue.push(|c| insert(c, 1));
        let second = queue.push(|c| insert(c, 2));
        assert!(
            first.has_duty,
            "the first write finds nobody running the queue"
        );
        assert!(!second.has_duty, "the second waits for the first's batch");
        assert!(!queue.claim(), "the duty is held");

        queue.run_batch(&mut connection, drop);
        let third = queue.push(|c| insert(c, 3));
        assert!(!third.has_duty, "the duty is held until it is given up");
        assert!(queue.release(), "the third write still waits to be run");
        assert!(queue.claim(), "whoever runs it next takes the duty");
        queue.run_batch(&mut connection, drop);
        assert!(!queue.release(), "nothing waits");

        assert!(queue.push(|c| insert(c, 4)).has_duty);
        for queued in [first, second, third] {
            assert!(queued.result.await.unwrap().is_ok());
        }
        assert_eq!(rows(&connection), [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_batch_rolled_back_whole_reports_every_write_failed_and_keeps_none() {
        let mut connection = table();
        connection
            .execute_batch(
                "CREATE TRIGGER boom BEFORE INSERT ON t WHEN NEW.x = 2 \
                 BEGIN SELECT RAISE(ROLLBACK, 'boom'); END",
            )
            .unwrap();
        let queue = Arc::new(WriteQueue::default());
        let before = queue.push(|c| insert(c, 1));
        let boom = queue.push(|c| insert(c, 2));
        let after = queue.push(|c| insert(c, 3));

        queue.run_batch(&mut connection, drop);

        for queued in [before, boom, after] {
            assert!(queued.result.await.unwrap().is_err());
        }
        assert!(rows(&connection).is_empty(), "nothing was committed");
        assert!(connection.is_autocommit());
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone() {
        let mut connection = table();
        let queue = Arc::new(WriteQueue::default());
        let first = queue.push(|c| insert(c, 1));
        let panicking = queue.push(|c| -> DbResult<()> {
            insert(c, 2)?;
            panic!("a bug in a write")
        });
        queue.run_batch(&mut connection, drop);
        let later = queue.push(|c| insert(c, 3));
        queue.run_batch(&mut connection, drop);

        assert!(first.result.await.unwrap().is_ok());
        assert!(panicking.result.await.unwrap().is_err());
        assert!(
            later.result.await.unwrap().is_ok(),
            "the writer still works"
        );
        assert_eq!(rows(&connection), [1, 3]);
    }
}
