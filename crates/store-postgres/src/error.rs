//! sqlx errors as store errors: the database cannot be reached, is shutting down, overloaded, or
//! asks for a retry (serialisation failure, deadlock) → `Unavailable` (the server answers 503); a
//! unique or foreign-key constraint → `Conflict`; anything else → `Other`.

use ballast_store::StoreError;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::migrate::MigrateError;

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) => database_error(d.as_ref()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

/// SQLSTATEs (or their classes) that mean "not now" rather than "wrong": 08 connection
/// exception, 53 insufficient resources, 57P01–57P03 shutdown / cannot connect now, 40001
/// serialisation failure, 40P01 deadlock, 55000 "database is not currently accepting
/// connections", 3D000 the database does not exist (dropped or not yet created).
fn unavailable(state: &str) -> bool {
    state.starts_with("08")
        || state.starts_with("53")
        || matches!(
            state,
            "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "55000" | "3D000"
        )
}

fn database_error(d: &dyn DatabaseError) -> StoreError {
    match d.kind() {
        ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation => {
            return StoreError::Conflict(d.message().to_string());
        }
        _ => {}
    }
    if d.code().is_some_and(|c| unavailable(&c)) {
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
