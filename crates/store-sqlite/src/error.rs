//! sqlx errors as store errors: the database cannot be reached or is busy → `Unavailable` (the
//! server answers 503), a unique or foreign-key constraint → `Conflict`, anything else → `Other`.

use ballast_store::StoreError;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::migrate::MigrateError;

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) => database_error(d.as_ref()),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

/// SQLite result codes that mean "not now" rather than "wrong": BUSY (after the busy timeout),
/// LOCKED, IOERR, FULL, CANTOPEN.
const UNAVAILABLE_CODES: [i32; 5] = [5, 6, 10, 13, 14];

fn database_error(d: &dyn DatabaseError) -> StoreError {
    match d.kind() {
        ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation => {
            return StoreError::Conflict(d.message().to_string());
        }
        _ => {}
    }
    // Extended result codes keep the primary code in their low byte.
    let primary = d
        .code()
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff);
    if primary.is_some_and(|c| UNAVAILABLE_CODES.contains(&c)) {
        StoreError::Unavailable(d.message().to_string())
    } else {
        StoreError::Other(d.message().to_string())
    }
}

pub(crate) fn migrate_err(e: MigrateError) -> StoreError {
    match e {
        MigrateError::Execute(e) => db_err(e),
        other => StoreError::Other(format!("migrations: {other}")),
    }
}
