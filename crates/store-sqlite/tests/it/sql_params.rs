//! The engine's statements are shared with PostgreSQL and written with `$N` placeholders
//! (`src/exec_common.rs`). SQLite treats `$1` as a *named* parameter and numbers named
//! parameters by first appearance; these tests pin that sqlx's SQLite driver binds `$N` by its
//! number instead, so a statement may use its parameters out of order and more than once.

use sqlx::{Connection, SqliteConnection};

async fn memory() -> SqliteConnection {
    match SqliteConnection::connect("sqlite::memory:").await {
        Ok(c) => c,
        Err(e) => panic!("opening an in-memory SQLite database: {e}"),
    }
}

#[tokio::test]
async fn dollar_parameters_bind_by_number() {
    let mut conn = memory().await;
    let got: (String, String, i64) = match sqlx::query_as("SELECT $2 || $1, $2, $3 + $3")
        .bind("a")
        .bind("b")
        .bind(20_i64)
        .fetch_one(&mut conn)
        .await
    {
        Ok(row) => row,
        Err(e) => panic!("a statement with out-of-order $N parameters: {e}"),
    };
    assert_eq!(got, ("ba".to_string(), "b".to_string(), 40));
}

#[tokio::test]
async fn null_parameter_tests_as_null() {
    // The listing filters are written `($1 IS NULL OR column = $1)`.
    let mut conn = memory().await;
    let none: Option<&str> = None;
    let got: (bool, bool) = match sqlx::query_as("SELECT $1 IS NULL, $2 IS NULL")
        .bind(none)
        .bind(Some("x"))
        .fetch_one(&mut conn)
        .await
    {
        Ok(row) => row,
        Err(e) => panic!("binding NULL: {e}"),
    };
    assert_eq!(got, (true, false));
}
