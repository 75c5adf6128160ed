//! `personas`: AstrBot 4's personas, read for a chat's system prompt.

use astrbot_core::store::PersonaRecord;
use rusqlite::Connection;
use serde_json::Value;

use crate::codec::opt_json;
use crate::db::{optional_row, DbResult};

pub(crate) fn get(connection: &Connection, persona_id: &str) -> DbResult<Option<PersonaRecord>> {
    optional_row(
        connection,
        "SELECT persona_id, system_prompt, begin_dialogs FROM personas WHERE persona_id = ?",
        [persona_id],
        |row| {
            // Dialogs that cannot be read are left out, not the persona.
            let begin_dialogs = opt_json(row, "begin_dialogs")
                .ok()
                .flatten()
                .unwrap_or(Value::Null);
            Ok(PersonaRecord {
                persona_id: row.get("persona_id")?,
                system_prompt: row.get("system_prompt")?,
                begin_dialogs: dialogs(begin_dialogs),
            })
        },
    )
}

/// The opening exchanges: a list of strings of even length, user and
/// assistant alternating. AstrBot drops a list of odd length (and logs it),
/// so a persona never opens with a question left unanswered.
fn dialogs(value: Value) -> Vec<String> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    let lines: Vec<String> = items
        .into_iter()
        .map(|item| match item {
            Value::String(line) => line,
            other => other.to_string(),
        })
        .collect();
    if !lines.len().is_multiple_of(2) {
        tracing::warn!("a persona's begin_dialogs has an odd number of lines; they are ignored");
        return Vec::new();
    }
    lines
}
