//! Logging the requests a webhook refuses, without letting strangers fill
//! the log: webhook ports face the internet.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often refused requests are logged at most.
pub(crate) const LOGGED_EVERY: Duration = Duration::from_secs(60);

/// Counts refused requests and says when to log them: the first at once,
/// then the count at most every [`LOGGED_EVERY`].
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    /// When the count was last logged, and refusals since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RefusalLog {
    /// Counts one refusal at `now`; returns how many to report now, if it
    /// is time to.
    pub fn refused(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last_logged, unlogged) = &mut *state;
        *unlogged += 1;
        if last_logged.is_some_and(|at| now.duration_since(at) < LOGGED_EVERY) {
            return None;
        }
        *last_logged = Some(now);
        Some(std::mem::take(unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_at_once_then_counted_once_a_minute() {
        let log = RefusalLog::default();
        let start = Instant::now();
        assert_eq!(log.refused(start), Some(1));
        for second in 1..60 {
            assert_eq!(log.refused(start + Duration::from_secs(second)), None);
        }
        assert_eq!(log.refused(start + LOGGED_EVERY), Some(60));
        assert_eq!(log.refused(start + Duration::from_secs(61)), None);
    }
}
