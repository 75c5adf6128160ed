//! The lean client's idle keep-alive connections to one provider.
//!
//! The most recently used connection is reused first. A connection the
//! server has closed, or that has been idle too long, is closed rather
//! than reused; a sweep every few seconds closes those nobody takes, so
//! that a quiet provider's closed connections are not held open.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Idle connections kept per provider.
const MAX_IDLE: usize = 256;

/// An idle connection older than this is closed rather than reused: many
/// servers close theirs after a few seconds, and one closed under a
/// request costs a retry.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// How often the connections nobody took are checked.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(super) struct IdlePool {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Oldest first.
    idle: Vec<IdleConnection>,
    /// A sweep task is running for this pool.
    sweeping: bool,
}

#[derive(Debug)]
struct IdleConnection {
    stream: TcpStream,
    since: Instant,
}

impl IdleConnection {
    fn reusable(&self) -> bool {
        self.since.elapsed() < IDLE_LIMIT && still_open(&self.stream)
    }
}

impl IdlePool {
    /// The most recently used connection that can still be used.
    pub fn take(&self) -> Option<TcpStream> {
        let mut state = self.lock();
        while let Some(connection) = state.idle.pop() {
            if connection.reusable() {
                return Some(connection.stream);
            }
        }
        None
    }

    /// Keeps `stream` for the next request, unless the pool is full.
    pub fn give_back(self: &Arc<Self>, stream: TcpStream) {
        let start_sweep = {
            let mut state = self.lock();
            if state.idle.len() >= MAX_IDLE {
                return;
            }
            state.idle.push(IdleConnection {
                stream,
                since: Instant::now(),
            });
            !std::mem::replace(&mut state.sweeping, true)
        };
        if start_sweep {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(sweep(Arc::downgrade(self)))),
                // No runtime to sweep on; requests still skip dead ones.
                Err(_) => self.lock().sweeping = false,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Closes, every [`SWEEP_EVERY`], the connections that can no longer be
/// used; ends when none is left or the provider is gone.
async fn sweep(pool: Weak<IdlePool>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(pool) = pool.upgrade() else { return };
        let mut state = pool.lock();
        state.idle.retain(IdleConnection::reusable);
        if state.idle.is_empty() {
            state.sweeping = false;
            return;
        }
    }
}

/// Whether an idle connection has neither been closed by its server nor
/// sent anything unasked. Costs no system call while nothing arrived.
fn still_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(error) if error.kind() == io::ErrorKind::WouldBlock)
}
