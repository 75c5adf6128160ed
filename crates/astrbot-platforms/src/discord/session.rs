//! What survives a gateway reconnect: the session to resume, the last
//! sequence number and our own user id.

/// Filled by READY and every dispatch; cleared when Discord says the
/// session cannot be resumed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Session {
    pub session_id: Option<String>,
    pub resume_url: Option<String>,
    /// The `s` of the last dispatch, sent with heartbeats and Resume.
    pub seq: Option<u64>,
    /// The bot's user id; kept across a fresh Identify (READY renews it).
    pub user_id: String,
}

impl Session {
    /// The session id and sequence number to resume with, if any.
    pub fn resumable(&self) -> Option<(String, u64)> {
        Some((self.session_id.clone()?, self.seq?))
    }

    /// Forgets the session so the next connection identifies afresh.
    pub fn invalidate(&mut self) {
        self.session_id = None;
        self.resume_url = None;
        self.seq = None;
    }
}
