//! The OpenAI-compatible provider against the local fake server, in one
//! test binary: answers and what goes over the wire, then failures.

mod answers;
mod common;
mod failures;
