//! Schema migrations: the files in `migrations/`, compiled in, applied in
//! order.
//!
//! Applied migrations are recorded in `_sqlx_migrations`, with the columns,
//! descriptions and SHA-384 checksums that sqlx's migrator writes, so
//! databases made by earlier builds (which used it) open unchanged.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha384};

use crate::db::DbResult;
use astrbot_core::StoreError;

/// One migration file: `NNNN_description_words.sql`.
struct Migration {
    version: i64,
    /// The file name's words, `_` read as a space.
    description: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "astrbot tables",
        sql: include_str!("../migrations/0001_astrbot_tables.sql"),
    },
    Migration {
        version: 2,
        description: "api key lookup hash",
        sql: include_str!("../migrations/0002_api_key_lookup_hash.sql"),
    },
    Migration {
        version: 3,
        description: "personas",
        sql: include_str!("../migrations/0003_personas.sql"),
    },
];

/// Brings the schema up to date, in one transaction that takes the write
/// lock first, so two processes opening a new database at once do not
/// both apply the same migration. A migration that was applied with other
/// content, left half-done, or that this build does not know (a newer
/// build's) stops the open instead of guessing.
pub(crate) fn run(connection: &mut Connection) -> DbResult<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
             version BIGINT PRIMARY KEY,
             description TEXT NOT NULL,
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
             success BOOLEAN NOT NULL,
             checksum BLOB NOT NULL,
             execution_time BIGINT NOT NULL
         )",
    )?;
    let newest: Option<i64> =
        transaction.query_row("SELECT MAX(version) FROM _sqlx_migrations", [], |row| {
            row.get(0)
        })?;
    if let Some(newest) = newest.filter(|&v| MIGRATIONS.iter().all(|m| m.version != v)) {
        return Err(StoreError::Backend(format!(
            "the database was migrated by a newer build (schema version {newest})"
        ))
        .into());
    }

    for migration in MIGRATIONS {
        let checksum = Sha384::digest(migration.sql.as_bytes());
        let applied: Option<(bool, Vec<u8>)> = transaction
            .query_row(
                "SELECT success, checksum FROM _sqlx_migrations WHERE version = ?",
                [migration.version],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        match applied {
            Some((false, _)) => {
                return Err(failed(migration, "was left partly applied"));
            }
            Some((true, stored)) if stored != checksum.as_slice() => {
                return Err(failed(migration, "was applied with different content"));
            }
            Some(_) => continue,
            None => {}
        }

        let started = std::time::Instant::now();
        transaction.execute_batch(migration.sql)?;
        let elapsed = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        transaction.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?, ?, TRUE, ?, ?)",
            params![migration.version, migration.description, checksum.as_slice(), elapsed],
        )?;
    }
    transaction.commit()?;
    Ok(())
}

fn failed(migration: &Migration, what: &str) -> crate::db::DbError {
    StoreError::Backend(format!(
        "migration {} ({}) {what}",
        migration.version, migration.description
    ))
    .into()
}
