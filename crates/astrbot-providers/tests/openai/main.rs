//! The OpenAI-compatible provider against the local fake server, in one
//! test binary: answers and what goes over the wire, failures, and the
//! two HTTP clients.

mod answers;
mod common;
mod failures;
mod transports;
