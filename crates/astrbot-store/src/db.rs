//! Running statements on SQLite connections without a thread hand-off.
//!
//! A store call runs its statements on the calling thread: a point read or
//! a one-row commit takes microseconds, less than sending it to a worker
//! thread and waking the task again would. What could block for long is
//! kept off that path:
//! - connections do not wait for locks: a statement that meets another
//!   connection's lock fails with `SQLITE_BUSY` at once, and only then is
//!   the call repeated with a busy timeout, as blocking work;
//! - WAL checkpoints (which sync the files) run on their own thread, see
//!   `checkpoint`.

use std::path::Path;
use std::time::Duration;

use astrbot_core::StoreError;
use rusqlite::{Connection, ErrorCode, OpenFlags, Params, Row};

/// How long a statement waits for another connection's lock, once it has
/// met it, before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection: more than the store has.
const STATEMENT_CACHE: usize = 64;

/// Why a statement failed. `Busy` is retried by the caller; the rest is
/// the store's error.
#[derive(Debug)]
pub(crate) enum DbError {
    /// Another connection holds a lock this statement needs.
    Busy,
    Store(StoreError),
}

impl From<StoreError> for DbError {
    fn from(error: StoreError) -> DbError {
        DbError::Store(error)
    }
}

impl From<rusqlite::Error> for DbError {
    /// Unique violations are conflicts with existing data, values of the
    /// wrong type mean the stored data is bad, the rest is the database's.
    fn from(error: rusqlite::Error) -> DbError {
        use rusqlite::ffi;
        use rusqlite::Error as E;
        let store_error = match &error {
            E::SqliteFailure(failure, _) => match failure.code {
                // Another connection's lock; waiting helps. (SQLITE_LOCKED is a
                // conflict inside one connection, where waiting would not.)
                ErrorCode::DatabaseBusy => return DbError::Busy,
                ErrorCode::ConstraintViolation
                    if failure.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                        || failure.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    StoreError::Conflict(error.to_string())
                }
                _ => StoreError::Backend(error.to_string()),
            },
            E::FromSqlConversionFailure(..)
            | E::IntegralValueOutOfRange(..)
            | E::InvalidColumnType(..)
            | E::InvalidColumnName(_)
            | E::InvalidColumnIndex(_)
            | E::Utf8Error(_) => StoreError::Corrupt(error.to_string()),
            _ => StoreError::Backend(error.to_string()),
        };
        DbError::Store(store_error)
    }
}

impl From<DbError> for StoreError {
    /// A lock that was still held after waiting is the database's failure.
    fn from(error: DbError) -> StoreError {
        match error {
            DbError::Busy => StoreError::Backend("database is locked".to_owned()),
            DbError::Store(error) => error,
        }
    }
}

pub(crate) type DbResult<T> = Result<T, DbError>;

/// Locks a mutex of the store's own bookkeeping. Nothing panics while
/// holding one, and a list cannot be left half-changed by a panic
/// elsewhere, so a poisoned lock is used as it is.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Opens a connection set up the way every store connection is: no busy
/// waiting, foreign keys on, and (for the writer) WAL with NORMAL sync.
pub(crate) fn open(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    };
    // NOMUTEX: a connection is used by one thread at a time (the store
    // hands it out exclusively), so SQLite's own mutex would be pure cost.
    let connection = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Setting up may meet a lock (another process writing, the last
    // connection of a closed store cleaning up): opening is rare, so it
    // waits like any other SQLite client would.
    blocking(|| {
        connection.busy_timeout(BUSY_TIMEOUT)?;
        connection.pragma_update(None, "foreign_keys", true)?;
        if !read_only {
            // WAL lets readers run beside the one writer. NORMAL is durable
            // across application crashes in WAL mode and only risks the last
            // commits on power loss; FULL costs an fsync per commit.
            switch_to_wal(&connection)?;
            connection.pragma_update(None, "synchronous", "NORMAL")?;
        }
        connection.busy_timeout(Duration::ZERO)
    })?;
    Ok(connection)
}

/// Puts the database in WAL mode. Two processes switching a new file at
/// the same moment make one of them fail with `SQLITE_BUSY` without waiting
/// for the busy timeout, so that is retried here until the timeout.
fn switch_to_wal(connection: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match connection.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            done => return done,
        }
    }
}

/// Runs `work` on `connection`; if it met another connection's lock, runs
/// it again as blocking work that waits up to [`BUSY_TIMEOUT`] for it.
/// `work` must leave nothing behind when it fails (one statement, or one
/// transaction), so that running it twice is safe.
pub(crate) fn run<T>(
    connection: &mut Connection,
    work: impl Fn(&mut Connection) -> DbResult<T>,
) -> Result<T, StoreError> {
    let result = match work(connection) {
        Err(DbError::Busy) => blocking(|| {
            connection.busy_timeout(BUSY_TIMEOUT)?;
            let retried = work(connection);
            connection.busy_timeout(Duration::ZERO)?;
            retried
        }),
        done => done,
    };
    result.map_err(StoreError::from)
}

/// Runs work that may sleep: on a multi-threaded runtime the worker's other
/// tasks move to another thread first; elsewhere (a current-thread runtime,
/// no runtime) there is nothing else to hold up.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// The first row `sql` returns, if any, read with `from_row`.
pub(crate) fn optional_row<T>(
    connection: &Connection,
    sql: &str,
    params: impl Params,
    from_row: impl FnOnce(&Row) -> DbResult<T>,
) -> DbResult<Option<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    match rows.next()? {
        Some(row) => Ok(Some(from_row(row)?)),
        None => Ok(None),
    }
}

/// Every row `sql` returns, each read with `from_row`.
pub(crate) fn all_rows<T>(
    connection: &Connection,
    sql: &str,
    params: impl Params,
    mut from_row: impl FnMut(&Row) -> DbResult<T>,
) -> DbResult<Vec<T>> {
    let mut statement = connection.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        all.push(from_row(row)?);
    }
    Ok(all)
}

/// Runs one statement and returns how many rows it changed.
pub(crate) fn execute(connection: &Connection, sql: &str, params: impl Params) -> DbResult<usize> {
    Ok(connection.prepare_cached(sql)?.execute(params)?)
}
