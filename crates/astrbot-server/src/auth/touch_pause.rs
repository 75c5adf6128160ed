//! Backing off from recording key use after a write failed.
//!
//! Recording when a key was last used is a write on the request's path,
//! but not one the request needs. When the database cannot be written
//! (disk full, another program holding its lock), every request would try
//! again, fail the same way and log the same warning, thousands of times a
//! second under load. After a failure, recording pauses for a while.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long recording pauses after a failed write.
const PAUSE: Duration = Duration::from_secs(10);

/// Whether key use may be recorded now.
#[derive(Debug, Default)]
pub struct TouchPause {
    until: Mutex<Option<Instant>>,
}

impl TouchPause {
    /// Whether recording is allowed at `now`.
    pub fn allows(&self, now: Instant) -> bool {
        let until = *self.until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_none_or(|until| now >= until)
    }

    /// A write failed at `now`: pause recording.
    pub fn pause(&self, now: Instant) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = Some(now + PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_pauses_recording_for_a_while_then_it_resumes() {
        let pause = TouchPause::default();
        let start = Instant::now();
        assert!(pause.allows(start));

        pause.pause(start);
        assert!(!pause.allows(start));
        assert!(!pause.allows(start + PAUSE - Duration::from_millis(1)));
        assert!(pause.allows(start + PAUSE));
    }
}
