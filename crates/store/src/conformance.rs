//! The conformance suite: one set of cases every backend must pass.
//!
//! Each case is a `pub async fn` taking the store(s) under test and panicking with a clear message
//! on failure. A backend's integration-test binary provides a [`Fixture`] (a fresh, empty database
//! plus raw SQL on it) and invokes [`conformance_tests!`](crate::conformance_tests), which expands
//! to one `#[tokio::test]` per case:
//!
//! ```ignore
//! async fn fixture() -> MyFixture { /* a fresh, empty database */ }
//! ballast_store::conformance_tests!(fixture());
//! ```
//!
//! Behaviour the cases pin down beyond the trait's signatures:
//! - timestamps are kept to the microsecond (truncated), on every backend;
//! - `touch_session`/`touch_token` never move a time backwards and ignore unknown ids;
//! - `set_mfa_last_step` only moves forward (a replayed step is a `Conflict`);
//! - unknown users in the `Tx` setters are `NotFound`; a binding to an unknown user or role, a
//!   duplicate username, binding, session, token hash or checkpoint is a `Conflict`;
//! - audit search: newest first, `from` inclusive, `to` exclusive, `action_prefix` and `text`
//!   case-sensitive and literal (no wildcards), `limit` 0 returns nothing;
//! - lists are ordered: users and tokens by id, roles by key, environments by name, bindings by
//!   (user, role, scope), recovery-code hashes by hash, checkpoints by sequence number;
//! - the engine (`exec`): a duplicate script or plan name, version, agent id or certificate
//!   fingerprint, enrolment-token hash or output sequence number, a run of a plan version or a
//!   task of a step that does not exist is a `Conflict`; a version of an unknown script or plan,
//!   a change to an unknown row is `NotFound`; deciding a decided approval and revoking a revoked
//!   agent are `Conflict`; a lease expires at `lease_until` (a claim at that instant takes it
//!   over); `update_run_progress` by anyone but the lease holder is `Conflict`; a status change to
//!   a final status (run: succeeded, failed, cancelled, blocked; step: succeeded, failed, skipped,
//!   cancelled) sets `finished_at` once, the first progress past `pending` sets `started_at`;
//!   `mark_tasks` sets `finished_at` where it is empty; an agent's last-seen time never moves
//!   backwards; an enrolment token expires at `expires_at`.

mod assessment;
mod cmdb;
mod schedule;
pub use assessment::*;
pub use cmdb::*;
pub use schedule::*;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;

use async_trait::async_trait;
use ballast_core::audit::{Actor, AuditDraft, AuditRecord, ChainVerifier, CheckpointKey, Outcome};
use ballast_core::authz::{self, Permission, Role, RoleBinding, Scope};
use ballast_core::user::{User, UserId, UserKind};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::json;

use crate::{
    AgentRow, ApiToken, ApprovalRow, AuditQuery, EnrollTokenRow, Environment, HostKeyRow,
    NewUserRow, OutputChunkRow, PlanRow, PlanVersionRow, Result, RunQuery, RunRow, ScriptRow,
    ScriptVersionRow, Session, SettingRow, SshCredentialRow, StepRow, Store, StoreError, TaskRow,
};

/// What a backend's test binary provides to the suite: a fresh, empty store of its own.
#[async_trait]
pub trait Fixture: Send + Sync + 'static {
    fn store(&self) -> &dyn Store;
    /// Runs one SQL statement directly on the database, outside the product's API (to prove that
    /// the database itself refuses some changes); returns the number of rows changed.
    async fn execute_raw(&self, sql: &str) -> Result<u64>;
    /// Releases what the fixture holds (e.g. drops its test database). Best effort; runs after
    /// the case, whether it passed or not.
    async fn teardown(&self) {}
}

/// Expands to one `#[tokio::test]` per conformance case; `$make` is an expression evaluating to
/// a future of a fresh [`Fixture`] (evaluated once per store a case needs).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@store $make;
            ping_and_migrations,
            users_create_read_update,
            username_unique_conflict,
            credentials_and_login_state,
            mfa_secret_and_last_step,
            recovery_codes_used_once,
            roles_upsert,
            bindings_insert_delete_unique,
            environments_upsert,
            sessions_insert_touch_revoke,
            tokens_insert_lookup_revoke,
            revoke_all_for_user,
            commit_without_audit_refused,
            audit_chain_verifies,
            rolled_back_tx_writes_nothing,
            concurrent_commits_keep_chain,
            audit_search_filters,
            leases,
            checkpoints_insert_and_list,
            timestamps_keep_microseconds,
            exec_scripts_and_versions,
            exec_plans_and_versions,
            exec_approvals_decided_once,
            exec_run_steps_tasks_output,
            exec_run_and_step_status,
            exec_claim_runs_exclusive,
            exec_claim_runs_concurrent,
            exec_run_progress_needs_lease,
            exec_mark_tasks,
            exec_agents_revoke_touch,
            exec_enroll_token_once,
            exec_ssh_credentials_and_host_keys,
            exec_settings,
            schedules_create_update_delete,
            schedule_fires_recorded_and_listed,
            schedule_claim_fire_compare_and_set,
            schedule_claim_fire_concurrent,
            assessments_create_update_lock,
            assessment_items_and_answers,
            assessment_evidence_and_expiry,
            assessment_improvement_actions,
            assessment_lock_serialises,
            cmdb_models_versioned,
            cmdb_instances_unique_and_indexed,
            cmdb_long_id_lists_page_in_order,
            cmdb_relations_history_conflicts,
        );
        $crate::conformance_tests!(@fixture $make;
            audit_is_append_only,
            corrupt_rows_reported,
        );
        $crate::conformance_tests!(@pair $make;
            export_import_round_trip,
            import_refuses_non_empty,
            cmdb_export_import,
        );
    };
    (@store $make:expr; $($case:ident),* $(,)?) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let fx = ::std::sync::Arc::new($make.await);
            let f = ::std::sync::Arc::clone(&fx);
            let run = ::tokio::spawn(async move {
                $crate::conformance::$case($crate::conformance::Fixture::store(&*f)).await
            });
            $crate::conformance::finish(run.await, &[&*fx]).await;
        }
    )*};
    (@fixture $make:expr; $($case:ident),* $(,)?) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let fx = ::std::sync::Arc::new($make.await);
            let f = ::std::sync::Arc::clone(&fx);
            let run = ::tokio::spawn(async move { $crate::conformance::$case(&*f).await });
            $crate::conformance::finish(run.await, &[&*fx]).await;
        }
    )*};
    (@pair $make:expr; $($case:ident),* $(,)?) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let a = ::std::sync::Arc::new($make.await);
            let b = ::std::sync::Arc::new($make.await);
            let (fa, fb) = (::std::sync::Arc::clone(&a), ::std::sync::Arc::clone(&b));
            let run = ::tokio::spawn(async move {
                $crate::conformance::$case(
                    $crate::conformance::Fixture::store(&*fa),
                    $crate::conformance::Fixture::store(&*fb),
                )
                .await
            });
            $crate::conformance::finish(run.await, &[&*a, &*b]).await;
        }
    )*};
}

/// Tears the fixtures down, then re-raises the case's panic, if any. The macro's tests end with
/// it; a backend's own tests can too, to drop their databases whatever the outcome.
pub async fn finish<F: Fixture>(
    outcome: std::result::Result<(), tokio::task::JoinError>,
    fixtures: &[&F],
) {
    for f in fixtures {
        f.teardown().await;
    }
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the case did not finish: {e}"),
        }
    }
}

// ---------------------------------------------------------------- helpers

/// `.must("what")`: the value, or a panic naming what failed and why.
trait Must<T> {
    fn must(self, what: &str) -> T;
}

impl<T, E: Debug> Must<T> for std::result::Result<T, E> {
    fn must(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: {e:?}"),
        }
    }
}

impl<T> Must<T> for Option<T> {
    fn must(self, what: &str) -> T {
        match self {
            Some(v) => v,
            None => panic!("{what}: nothing there"),
        }
    }
}

fn assert_conflict<T: Debug>(r: Result<T>, what: &str) {
    match r {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected StoreError::Conflict, got {other:?}"),
    }
}

fn assert_not_found<T: Debug>(r: Result<T>, what: &str) {
    match r {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected StoreError::NotFound, got {other:?}"),
    }
}

/// 2026-11-25T01:02:03.123456Z plus `secs` seconds: a time with microseconds, as stored.
fn at(secs: i64) -> DateTime<Utc> {
    let base = Utc
        .with_ymd_and_hms(2026, 11, 25, 1, 2, 3)
        .single()
        .must("base time");
    base + Duration::microseconds(123_456) + Duration::seconds(secs)
}

fn actor(username: &str) -> Actor {
    Actor {
        user_id: None,
        username: username.to_string(),
        real_name: format!("{username} 测试"),
        roles: Vec::new(),
    }
}

fn draft(username: &str, action: &str, outcome: Outcome) -> AuditDraft {
    AuditDraft::new(actor(username), action, "test", outcome)
}

fn new_user_row(username: &str, created_at: DateTime<Utc>) -> NewUserRow {
    NewUserRow {
        username: username.to_string(),
        real_name: format!("{username} 实名"),
        department: "运维部".to_string(),
        kind: UserKind::Employee,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${username}"),
        must_change_password: true,
        created_at,
    }
}

/// Commits one transaction that only writes an audit record.
async fn audit_only(store: &dyn Store, d: AuditDraft, when: DateTime<Utc>) -> Vec<AuditRecord> {
    let tx = store.begin().await.must("begin");
    tx.commit(vec![d], when)
        .await
        .must("commit an audit record")
}

/// Creates a user in its own audited transaction.
async fn create_user(store: &dyn Store, username: &str, when: DateTime<Utc>) -> UserId {
    let mut tx = store.begin().await.must("begin");
    let id = tx
        .insert_user(&new_user_row(username, when))
        .await
        .must("insert user");
    let d = draft("admin", "user.create", Outcome::Success).object(id);
    tx.commit(vec![d], when).await.must("commit user");
    id
}

async fn upsert_roles(store: &dyn Store, roles: &[Role]) {
    let mut tx = store.begin().await.must("begin");
    for r in roles {
        tx.upsert_role(r).await.must("upsert role");
    }
    let d = draft("system", "role.upsert", Outcome::Success);
    tx.commit(vec![d], at(0)).await.must("commit roles");
}

fn session(id_hash: &str, user_id: UserId, created: DateTime<Utc>) -> Session {
    Session {
        id_hash: id_hash.to_string(),
        user_id,
        csrf_token: format!("csrf-{id_hash}"),
        created_at: created,
        last_seen_at: created,
        expires_at: created + Duration::hours(8),
        mfa_verified: false,
        source_ip: Some("10.1.2.3".to_string()),
        user_agent: Some("Mozilla/5.0 测试".to_string()),
        revoked: false,
    }
}

fn token(token_hash: &str, user_id: UserId, created: DateTime<Utc>) -> ApiToken {
    ApiToken {
        id: 0,
        user_id,
        name: format!("token {token_hash}"),
        token_hash: token_hash.to_string(),
        permissions: vec![Permission::JobRun, Permission::AuditRead],
        created_at: created,
        expires_at: created + Duration::days(90),
        revoked_at: None,
        last_used_at: None,
    }
}

async fn all_audit(store: &dyn Store) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    loop {
        let after = out.last().map_or(0, |r| r.seq);
        let page = store.audit_range(after, 100).await.must("audit_range");
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Verifies the whole chain and returns its records.
async fn verified_chain(store: &dyn Store) -> Vec<AuditRecord> {
    let records = all_audit(store).await;
    let mut v = ChainVerifier::default();
    for r in &records {
        if let Err(b) = v.push(r) {
            panic!(
                "the audit chain is broken at seq {}: {}",
                b.seq, b.reason_en
            );
        }
    }
    let head = store.audit_head().await.must("audit_head");
    let expected = records.last().map(|r| (r.seq, r.hash.clone()));
    assert_eq!(
        head, expected,
        "audit_head is the last record's (seq, hash)"
    );
    records
}

fn seqs(records: &[AuditRecord]) -> Vec<i64> {
    records.iter().map(|r| r.seq).collect()
}

/// Polls futures together on the current task (the suite's stores are borrowed, so it cannot
/// spawn); each holds its own connection, so the database sees them concurrently.
async fn join_all<F: Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in futures.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
}

// ---------------------------------------------------------------- cases

/// The store answers, its migrations are current, and a new database is empty.
pub async fn ping_and_migrations(store: &dyn Store) {
    store.ping().await.must("ping");
    assert!(
        store.migrations_current().await.must("migrations_current"),
        "a freshly opened store has exactly the embedded migrations applied"
    );
    assert!(
        ["sqlite", "postgres"].contains(&store.backend()),
        "unexpected backend name {}",
        store.backend()
    );
    assert_eq!(store.user_count().await.must("user_count"), 0);
    assert_eq!(store.audit_head().await.must("audit_head"), None);
    assert!(
        store.roles().await.must("roles").is_empty(),
        "no roles are seeded"
    );
}

/// Users: insert, read by id and name, list, update; unknown ids are `NotFound`.
pub async fn users_create_read_update(store: &dyn Store) {
    let alice = create_user(store, "alice", at(0)).await;
    let mut tx = store.begin().await.must("begin");
    let vendor = NewUserRow {
        kind: UserKind::Outsourced {
            vendor: "某外包公司".to_string(),
            contract_end: NaiveDate::from_ymd_opt(2027, 6, 30).must("date"),
        },
        ..new_user_row("bob.wang", at(1))
    };
    let bob = tx.insert_user(&vendor).await.must("insert outsourced user");
    tx.commit(vec![draft("admin", "user.create", Outcome::Success)], at(1))
        .await
        .must("commit");
    assert!(bob > alice, "ids increase");

    let read = store.user_by_id(bob).await.must("user_by_id").must("bob");
    let expected = User {
        id: bob,
        username: "bob.wang".into(),
        real_name: "bob.wang 实名".into(),
        department: "运维部".into(),
        kind: vendor.kind.clone(),
        disabled: false,
        disabled_reason: None,
        must_change_password: true,
        mfa_enrolled: false,
        created_at: at(1),
        updated_at: at(1),
    };
    assert_eq!(read, expected, "a new user reads back as inserted");
    let by_name = store.user_by_name("bob.wang").await.must("user_by_name");
    assert_eq!(by_name.as_ref(), Some(&expected));
    assert_eq!(
        store.user_by_name("nobody").await.must("user_by_name"),
        None
    );
    assert_eq!(store.user_by_id(9999).await.must("user_by_id"), None);
    let all = store.users().await.must("users");
    assert_eq!(
        all.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![alice, bob]
    );
    assert_eq!(store.user_count().await.must("user_count"), 2);

    let mut changed = expected.clone();
    changed.real_name = "王博".into();
    changed.department = "信息技术部".into();
    changed.kind = UserKind::Employee;
    changed.disabled = true;
    changed.disabled_reason = Some("合同到期 contract ended".into());
    changed.must_change_password = false;
    changed.mfa_enrolled = true;
    changed.updated_at = at(60);
    let mut tx = store.begin().await.must("begin");
    tx.update_user(&changed).await.must("update_user");
    tx.commit(
        vec![draft("admin", "user.update", Outcome::Success)],
        at(60),
    )
    .await
    .must("commit");
    let read = store.user_by_id(bob).await.must("user_by_id").must("bob");
    assert_eq!(read, changed, "an updated user reads back as written");
    assert_eq!(read.created_at, at(1), "created_at never changes");

    let mut tx = store.begin().await.must("begin");
    let ghost = User {
        id: 9999,
        ..changed.clone()
    };
    assert_not_found(tx.update_user(&ghost).await, "update_user of an unknown id");
}

/// A username is unique: a second insert, or a rename onto it, is a `Conflict`.
pub async fn username_unique_conflict(store: &dyn Store) {
    create_user(store, "alice", at(0)).await;
    let carol = create_user(store, "carol", at(1)).await;
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_user(&new_user_row("alice", at(2))).await,
        "inserting a second alice",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    let mut renamed = store.user_by_id(carol).await.must("read").must("carol");
    renamed.username = "alice".into();
    assert_conflict(tx.update_user(&renamed).await, "renaming carol to alice");
    drop(tx);
    assert_eq!(store.user_count().await.must("user_count"), 2);
    let carol_now = store.user_by_id(carol).await.must("read").must("carol");
    assert_eq!(
        carol_now.username, "carol",
        "the refused rename left no trace"
    );
}

/// Credentials: the first password, password changes, failed-login counter and lock-out.
pub async fn credentials_and_login_state(store: &dyn Store) {
    let id = create_user(store, "alice", at(0)).await;
    let c = store
        .credentials(id)
        .await
        .must("credentials")
        .must("alice");
    assert_eq!(c.user_id, id);
    assert_eq!(c.password_hash, new_user_row("alice", at(0)).password_hash);
    assert_eq!(
        c.password_changed_at,
        Some(at(0)),
        "the first password was set at creation"
    );
    assert_eq!((c.mfa_secret, c.mfa_last_step), (None, None));
    assert_eq!((c.failed_logins, c.locked_until), (0, None));

    let mut tx = store.begin().await.must("begin");
    tx.set_login_state(id, 5, Some(at(900)))
        .await
        .must("set_login_state");
    tx.commit(
        vec![draft("alice", "auth.lockout", Outcome::Success)],
        at(10),
    )
    .await
    .must("commit");
    let c = store
        .credentials(id)
        .await
        .must("credentials")
        .must("alice");
    assert_eq!((c.failed_logins, c.locked_until), (5, Some(at(900))));

    let mut tx = store.begin().await.must("begin");
    tx.set_password(id, "$argon2id$new", false, at(20))
        .await
        .must("set_password");
    tx.set_login_state(id, 0, None)
        .await
        .must("set_login_state");
    tx.commit(
        vec![draft("alice", "user.change_password", Outcome::Success)],
        at(20),
    )
    .await
    .must("commit");
    let c = store
        .credentials(id)
        .await
        .must("credentials")
        .must("alice");
    assert_eq!(c.password_hash, "$argon2id$new");
    assert_eq!(c.password_changed_at, Some(at(20)));
    assert_eq!((c.failed_logins, c.locked_until), (0, None));
    let u = store.user_by_id(id).await.must("user").must("alice");
    assert!(
        !u.must_change_password,
        "set_password sets must_change_password"
    );
    assert_eq!(u.updated_at, at(20), "a password change updates the user");

    assert_eq!(store.credentials(9999).await.must("credentials"), None);
    let mut tx = store.begin().await.must("begin");
    assert_not_found(
        tx.set_password(9999, "x", false, at(30)).await,
        "set_password of an unknown user",
    );
    assert_not_found(
        tx.set_login_state(9999, 1, None).await,
        "set_login_state of an unknown user",
    );
}

/// The second factor: secret, enrolment flag and the last used TOTP step (only forward).
pub async fn mfa_secret_and_last_step(store: &dyn Store) {
    let id = create_user(store, "alice", at(0)).await;
    let mut tx = store.begin().await.must("begin");
    tx.set_mfa(id, Some("JBSWY3DPEHPK3PXP"), true)
        .await
        .must("set_mfa");
    tx.set_mfa_last_step(id, 100)
        .await
        .must("set_mfa_last_step");
    tx.commit(vec![draft("alice", "mfa.enrol", Outcome::Success)], at(1))
        .await
        .must("commit");
    let c = store
        .credentials(id)
        .await
        .must("credentials")
        .must("alice");
    assert_eq!(c.mfa_secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));
    assert_eq!(c.mfa_last_step, Some(100));
    let u = store.user_by_id(id).await.must("user").must("alice");
    assert!(u.mfa_enrolled, "set_mfa sets mfa_enrolled");

    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.set_mfa_last_step(id, 100).await,
        "reusing TOTP step 100 (a replayed code)",
    );
    assert_conflict(tx.set_mfa_last_step(id, 99).await, "an earlier TOTP step");
    tx.set_mfa_last_step(id, 101)
        .await
        .must("the next TOTP step");
    tx.commit(vec![draft("alice", "auth.mfa", Outcome::Success)], at(2))
        .await
        .must("commit");
    let c = store
        .credentials(id)
        .await
        .must("credentials")
        .must("alice");
    assert_eq!(c.mfa_last_step, Some(101));

    let mut tx = store.begin().await.must("begin");
    tx.set_mfa(id, None, false).await.must("clear mfa");
    tx.commit(vec![draft("admin", "mfa.reset", Outcome::Success)], at(3))
        .await
        .must("commit");
    let c = store
        .credentials(id)
        .await
        .must("credentials")
        .must("alice");
    assert_eq!(
        (c.mfa_secret, c.mfa_last_step),
        (None, None),
        "clearing the factor forgets its secret and last step"
    );
    let u = store.user_by_id(id).await.must("user").must("alice");
    assert!(!u.mfa_enrolled);

    let mut tx = store.begin().await.must("begin");
    assert_not_found(
        tx.set_mfa(9999, Some("X"), true).await,
        "set_mfa of an unknown user",
    );
    assert_not_found(
        tx.set_mfa_last_step(9999, 1).await,
        "set_mfa_last_step of an unknown user",
    );
}

/// Recovery codes: replaced as a set, each usable once; a rolled-back use does not consume.
pub async fn recovery_codes_used_once(store: &dyn Store) {
    let id = create_user(store, "alice", at(0)).await;
    let other = create_user(store, "bob", at(0)).await;
    let codes: Vec<String> = ["c3", "a1", "b2"].iter().map(|s| s.to_string()).collect();
    let mut tx = store.begin().await.must("begin");
    tx.replace_recovery_codes(id, &codes).await.must("replace");
    tx.replace_recovery_codes(other, &["a1".to_string()])
        .await
        .must("replace for bob");
    tx.commit(vec![draft("alice", "mfa.codes", Outcome::Success)], at(1))
        .await
        .must("commit");
    assert_eq!(
        store.recovery_code_hashes(id).await.must("hashes"),
        vec!["a1", "b2", "c3"],
        "recovery-code hashes are listed in hash order"
    );

    let mut tx = store.begin().await.must("begin");
    assert!(tx.use_recovery_code(id, "b2").await.must("use b2"));
    drop(tx);
    assert_eq!(
        store.recovery_code_hashes(id).await.must("hashes").len(),
        3,
        "a rolled-back use does not consume the code"
    );

    let mut tx = store.begin().await.must("begin");
    assert!(tx.use_recovery_code(id, "b2").await.must("use b2"));
    assert!(
        !tx.use_recovery_code(id, "b2").await.must("use b2 again"),
        "a code is used once"
    );
    assert!(
        !tx.use_recovery_code(id, "zz").await.must("use unknown"),
        "an unknown code is refused"
    );
    tx.commit(vec![draft("alice", "auth.mfa", Outcome::Success)], at(2))
        .await
        .must("commit");
    let mut tx = store.begin().await.must("begin");
    assert!(
        !tx.use_recovery_code(id, "b2").await.must("use b2 later"),
        "a used code stays used"
    );
    assert!(
        tx.use_recovery_code(other, "a1").await.must("bob's a1"),
        "codes are per user"
    );
    tx.replace_recovery_codes(id, &["d4".to_string()])
        .await
        .must("replace");
    tx.commit(vec![draft("alice", "mfa.codes", Outcome::Success)], at(3))
        .await
        .must("commit");
    assert_eq!(
        store.recovery_code_hashes(id).await.must("hashes"),
        vec!["d4"]
    );
    assert_eq!(
        store.recovery_code_hashes(other).await.must("hashes"),
        Vec::<String>::new()
    );

    let mut tx = store.begin().await.must("begin");
    assert_not_found(
        tx.replace_recovery_codes(9999, &codes).await,
        "replace_recovery_codes of an unknown user",
    );
}

fn custom_role() -> Role {
    Role {
        key: "dba_prod".into(),
        name_zh: "生产数据库管理员".into(),
        name_en: "Production DBA".into(),
        permissions: [Permission::JobRun, Permission::CmdbRead]
            .into_iter()
            .collect(),
        privileged: true,
        builtin: false,
        allowed_networks: serde_json::from_value(json!(["10.1.0.0/16", "2001:db8::/32"]))
            .must("networks"),
    }
}

/// Roles: inserted and updated by key, listed by key.
pub async fn roles_upsert(store: &dyn Store) {
    let mut roles = authz::builtin_roles();
    roles.push(custom_role());
    upsert_roles(store, &roles).await;
    roles.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(store.roles().await.must("roles"), roles);

    let mut changed = custom_role();
    changed.name_en = "Production database administrator".into();
    changed.permissions = BTreeSet::from([Permission::JobRead]);
    changed.allowed_networks.clear();
    changed.privileged = false;
    upsert_roles(store, std::slice::from_ref(&changed)).await;
    let read = store.roles().await.must("roles");
    assert_eq!(
        read.len(),
        roles.len(),
        "an upsert of an existing key adds no role"
    );
    assert_eq!(read.iter().find(|r| r.key == "dba_prod"), Some(&changed));
}

/// Role bindings: scoped, unique per (user, role, scope), deletable; unknown user or role refused.
pub async fn bindings_insert_delete_unique(store: &dyn Store) {
    upsert_roles(store, &authz::builtin_roles()).await;
    let u1 = create_user(store, "alice", at(0)).await;
    let u2 = create_user(store, "bob", at(0)).await;
    let b = |user, role: &str, scope| RoleBinding {
        user_id: user,
        role: role.into(),
        scope,
    };
    let grants = [
        b(u1, authz::AUDITOR, Scope::Global),
        b(
            u1,
            authz::AUTOMATION_OPERATOR,
            Scope::Environment("test".into()),
        ),
        b(
            u1,
            authz::AUTOMATION_OPERATOR,
            Scope::BusinessSystem("集中交易".into()),
        ),
        b(u2, authz::AUDITOR, Scope::Global),
    ];
    let mut tx = store.begin().await.must("begin");
    for g in &grants {
        tx.insert_binding(g, at(1)).await.must("insert_binding");
    }
    tx.commit(vec![draft("admin", "role.grant", Outcome::Success)], at(1))
        .await
        .must("commit");
    let mine = store.bindings(Some(u1)).await.must("bindings of u1");
    assert_eq!(mine.len(), 3);
    for g in &grants[..3] {
        assert!(mine.contains(g), "binding {g:?} is listed");
    }
    assert_eq!(store.bindings(None).await.must("all bindings").len(), 4);
    assert!(store.bindings(Some(9999)).await.must("none").is_empty());

    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_binding(&grants[1], at(2)).await,
        "a duplicate binding",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_binding(&b(u1, "no_such_role", Scope::Global), at(2))
            .await,
        "a binding to an unknown role",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_binding(&b(9999, authz::AUDITOR, Scope::Global), at(2))
            .await,
        "a binding of an unknown user",
    );
    drop(tx);

    let mut tx = store.begin().await.must("begin");
    assert!(tx.delete_binding(&grants[1]).await.must("delete"));
    assert!(
        !tx.delete_binding(&grants[1]).await.must("delete again"),
        "a deleted binding is gone"
    );
    assert!(
        !tx.delete_binding(&b(u1, authz::AUDITOR, Scope::Environment("test".into())))
            .await
            .must("delete another scope"),
        "the scope is part of the binding"
    );
    tx.commit(vec![draft("admin", "role.revoke", Outcome::Success)], at(3))
        .await
        .must("commit");
    let mine = store.bindings(Some(u1)).await.must("bindings of u1");
    assert_eq!(mine.len(), 2);
    assert!(!mine.contains(&grants[1]));
}

/// Environments: inserted and updated by name (keeping `created_at`), listed by name.
pub async fn environments_upsert(store: &dyn Store) {
    let env = |name: &str, zones: &[&str], created| Environment {
        name: name.into(),
        description: format!("{name} 环境"),
        security_zones: zones.iter().map(|z| z.to_string()).collect(),
        created_at: created,
    };
    let prod = env("prod", &["交易区", "DMZ"], at(0));
    let test = env("test", &[], at(1));
    let mut tx = store.begin().await.must("begin");
    tx.upsert_environment(&test).await.must("upsert test");
    tx.upsert_environment(&prod).await.must("upsert prod");
    tx.commit(
        vec![draft("admin", "environment.create", Outcome::Success)],
        at(1),
    )
    .await
    .must("commit");
    assert_eq!(
        store.environments().await.must("environments"),
        vec![prod.clone(), test.clone()]
    );
    let changed = Environment {
        description: "生产".into(),
        security_zones: vec!["交易区".into()],
        created_at: at(50),
        ..prod.clone()
    };
    let mut tx = store.begin().await.must("begin");
    tx.upsert_environment(&changed).await.must("update prod");
    tx.commit(
        vec![draft("admin", "environment.update", Outcome::Success)],
        at(50),
    )
    .await
    .must("commit");
    let read = store.environments().await.must("environments");
    assert_eq!(read.len(), 2);
    assert_eq!(
        read[0],
        Environment {
            created_at: at(0),
            ..changed
        },
        "an update keeps the first created_at"
    );
}

/// Sessions: inserted, read by hash, touched (never backwards), MFA-marked, revoked.
pub async fn sessions_insert_touch_revoke(store: &dyn Store) {
    let id = create_user(store, "alice", at(0)).await;
    let s = session("h-1", id, at(10));
    let plain = Session {
        source_ip: None,
        user_agent: None,
        ..session("h-2", id, at(11))
    };
    let mut tx = store.begin().await.must("begin");
    tx.insert_session(&s).await.must("insert_session");
    tx.insert_session(&plain).await.must("insert_session");
    tx.commit(vec![draft("alice", "auth.login", Outcome::Success)], at(10))
        .await
        .must("commit");
    assert_eq!(store.session("h-1").await.must("session"), Some(s.clone()));
    assert_eq!(store.session("h-2").await.must("session"), Some(plain));
    assert_eq!(store.session("nope").await.must("session"), None);

    store.touch_session("h-1", at(100)).await.must("touch");
    store
        .touch_session("h-1", at(50))
        .await
        .must("touch earlier");
    store
        .touch_session("nope", at(100))
        .await
        .must("touch unknown");
    let read = store.session("h-1").await.must("session").must("h-1");
    assert_eq!(
        read.last_seen_at,
        at(100),
        "touch moves last_seen_at forward only"
    );

    let mut tx = store.begin().await.must("begin");
    tx.set_session_mfa("h-1").await.must("set_session_mfa");
    assert_not_found(
        tx.set_session_mfa("nope").await,
        "set_session_mfa of an unknown session",
    );
    tx.commit(vec![draft("alice", "auth.mfa", Outcome::Success)], at(101))
        .await
        .must("commit");
    assert!(
        store
            .session("h-1")
            .await
            .must("session")
            .must("h-1")
            .mfa_verified
    );

    let mut tx = store.begin().await.must("begin");
    assert_conflict(tx.insert_session(&s).await, "a duplicate session hash");
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    tx.revoke_session("h-1").await.must("revoke");
    tx.revoke_session("nope")
        .await
        .must("revoking an unknown session is a no-op");
    tx.commit(
        vec![draft("alice", "auth.logout", Outcome::Success)],
        at(102),
    )
    .await
    .must("commit");
    let read = store.session("h-1").await.must("session").must("h-1");
    assert!(read.revoked);
    assert!(
        !store
            .session("h-2")
            .await
            .must("session")
            .must("h-2")
            .revoked
    );
}

/// API tokens: inserted (id assigned), found by hash, listed, touched, revoked once.
pub async fn tokens_insert_lookup_revoke(store: &dyn Store) {
    let alice = create_user(store, "alice", at(0)).await;
    let bob = create_user(store, "bob", at(0)).await;
    let mut tx = store.begin().await.must("begin");
    let t1 = tx
        .insert_token(&token("t-1", alice, at(1)))
        .await
        .must("insert");
    let t2 = tx
        .insert_token(&token("t-2", bob, at(2)))
        .await
        .must("insert");
    tx.commit(
        vec![draft("alice", "token.create", Outcome::Success)],
        at(2),
    )
    .await
    .must("commit");
    assert!(t2 > t1, "token ids increase");
    let read = store.token("t-1").await.must("token").must("t-1");
    assert_eq!(
        read,
        ApiToken {
            id: t1,
            ..token("t-1", alice, at(1))
        }
    );
    assert_eq!(store.token("nope").await.must("token"), None);
    assert_eq!(
        store
            .tokens(Some(bob))
            .await
            .must("tokens")
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        vec![t2]
    );
    assert_eq!(
        store
            .tokens(None)
            .await
            .must("tokens")
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        vec![t1, t2]
    );

    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_token(&token("t-1", bob, at(3))).await,
        "a duplicate token hash",
    );
    drop(tx);

    store.touch_token(t1, at(30)).await.must("touch");
    store.touch_token(t1, at(20)).await.must("touch earlier");
    store.touch_token(9999, at(30)).await.must("touch unknown");
    let read = store.token("t-1").await.must("token").must("t-1");
    assert_eq!(
        read.last_used_at,
        Some(at(30)),
        "touch moves last_used_at forward only"
    );

    let mut tx = store.begin().await.must("begin");
    assert!(tx.revoke_token(t1, at(40)).await.must("revoke"));
    assert!(!tx.revoke_token(t1, at(41)).await.must("revoke again"));
    assert!(!tx.revoke_token(9999, at(41)).await.must("revoke unknown"));
    tx.commit(
        vec![draft("alice", "token.revoke", Outcome::Success)],
        at(40),
    )
    .await
    .must("commit");
    let read = store.token("t-1").await.must("token").must("t-1");
    assert_eq!(
        read.revoked_at,
        Some(at(40)),
        "the first revocation's time is kept"
    );
    assert_eq!(
        store
            .token("t-2")
            .await
            .must("token")
            .must("t-2")
            .revoked_at,
        None
    );
}

/// `revoke_all_for_user` revokes that user's live sessions and tokens, and counts them.
pub async fn revoke_all_for_user(store: &dyn Store) {
    let alice = create_user(store, "alice", at(0)).await;
    let bob = create_user(store, "bob", at(0)).await;
    let mut tx = store.begin().await.must("begin");
    tx.insert_session(&session("a-1", alice, at(1)))
        .await
        .must("session");
    tx.insert_session(&session("a-2", alice, at(1)))
        .await
        .must("session");
    tx.insert_session(&session("b-1", bob, at(1)))
        .await
        .must("session");
    let ta = tx
        .insert_token(&token("ta-1", alice, at(1)))
        .await
        .must("token");
    let old = tx
        .insert_token(&token("ta-2", alice, at(1)))
        .await
        .must("token");
    tx.revoke_token(old, at(2)).await.must("revoke");
    tx.insert_token(&token("tb-1", bob, at(1)))
        .await
        .must("token");
    tx.commit(vec![draft("alice", "auth.login", Outcome::Success)], at(2))
        .await
        .must("commit");

    let mut tx = store.begin().await.must("begin");
    let n = tx
        .revoke_all_for_user(alice, at(10))
        .await
        .must("revoke_all");
    tx.commit(
        vec![draft("admin", "user.disable", Outcome::Success)],
        at(10),
    )
    .await
    .must("commit");
    assert_eq!(n, 3, "two sessions and the one live token");
    for h in ["a-1", "a-2"] {
        assert!(
            store.session(h).await.must("session").must(h).revoked,
            "{h} revoked"
        );
    }
    let t = store.token("ta-1").await.must("token").must("ta-1");
    assert_eq!((t.id, t.revoked_at), (ta, Some(at(10))));
    let t = store.token("ta-2").await.must("token").must("ta-2");
    assert_eq!(t.revoked_at, Some(at(2)), "an earlier revocation is kept");
    assert!(
        !store
            .session("b-1")
            .await
            .must("session")
            .must("b-1")
            .revoked
    );
    assert_eq!(
        store
            .token("tb-1")
            .await
            .must("token")
            .must("tb-1")
            .revoked_at,
        None
    );

    let mut tx = store.begin().await.must("begin");
    assert_eq!(tx.revoke_all_for_user(alice, at(11)).await.must("again"), 0);
}

/// A transaction cannot commit without audit records, and the refused one writes nothing.
pub async fn commit_without_audit_refused(store: &dyn Store) {
    let mut tx = store.begin().await.must("begin");
    tx.insert_user(&new_user_row("alice", at(0)))
        .await
        .must("insert");
    match tx.commit(Vec::new(), at(0)).await {
        Err(StoreError::NoAudit) => {}
        other => panic!("a commit without audit must be refused with NoAudit, got {other:?}"),
    }
    assert_eq!(
        store.user_count().await.must("user_count"),
        0,
        "the change was not written"
    );
    assert_eq!(store.audit_head().await.must("head"), None);
    // The store is still usable.
    create_user(store, "alice", at(1)).await;
    assert_eq!(store.user_count().await.must("user_count"), 1);
}

/// Many commits form one chain: contiguous sequence numbers, verifying hashes, exact content.
pub async fn audit_chain_verifies(store: &dyn Store) {
    let mut returned: Vec<AuditRecord> = Vec::new();
    for i in 0..20 {
        let tx = store.begin().await.must("begin");
        let drafts = (0..=(i % 3))
            .map(|j| {
                draft("alice", "test.append", Outcome::Success)
                    .object(format!("{i}-{j}"))
                    .detail(format!("第 {i} 次提交 \"quoted\" \n newline"))
                    .after(json!({"i": i, "j": j, "名称": "值"}))
            })
            .collect();
        returned.extend(tx.commit(drafts, at(i)).await.must("commit"));
    }
    let stored = verified_chain(store).await;
    let total: i64 = (0..20).map(|i| i % 3 + 1).sum();
    assert_eq!(
        seqs(&stored),
        (1..=total).collect::<Vec<_>>(),
        "seq is 1, 2, 3, …"
    );
    assert_eq!(
        stored, returned,
        "the records commit returned are the ones stored"
    );
    let first = stored[0].parsed().must("content parses");
    assert_eq!(
        (first.v, first.seq, first.draft.action.as_str()),
        (1, 1, "test.append")
    );
    assert_eq!(first.draft.object_id.as_deref(), Some("0-0"));
    assert_eq!(stored.last().map(|r| r.at), Some(at(19)));

    let page = store.audit_range(5, 3).await.must("audit_range");
    assert_eq!(
        seqs(&page),
        vec![6, 7, 8],
        "audit_range pages after a sequence number"
    );
    assert!(
        store
            .audit_range(total, 10)
            .await
            .must("audit_range")
            .is_empty()
    );
    assert!(store.audit_range(0, 0).await.must("audit_range").is_empty());
}

/// A dropped (rolled-back) transaction writes neither its change nor its audit.
pub async fn rolled_back_tx_writes_nothing(store: &dyn Store) {
    audit_only(
        store,
        draft("system", "test.first", Outcome::Success),
        at(0),
    )
    .await;
    let head = store.audit_head().await.must("head");

    let mut tx = store.begin().await.must("begin");
    tx.insert_user(&new_user_row("alice", at(1)))
        .await
        .must("insert");
    tx.upsert_role(&custom_role()).await.must("role");
    drop(tx);
    assert_eq!(
        store.user_count().await.must("user_count"),
        0,
        "the change was rolled back"
    );
    assert!(store.roles().await.must("roles").is_empty());
    assert_eq!(
        store.audit_head().await.must("head"),
        head,
        "no audit was written"
    );

    // A transaction whose commit fails (a constraint at the end) writes nothing either.
    create_user(store, "bob", at(2)).await;
    let head = store.audit_head().await.must("head");
    let mut tx = store.begin().await.must("begin");
    tx.upsert_role(&custom_role()).await.must("role");
    let dup = tx.insert_user(&new_user_row("bob", at(3))).await;
    assert_conflict(dup, "a duplicate username");
    drop(tx);
    assert!(store.roles().await.must("roles").is_empty());
    assert_eq!(store.audit_head().await.must("head"), head);

    let next = audit_only(store, draft("system", "test.next", Outcome::Success), at(4)).await;
    assert_eq!(
        next[0].seq, 3,
        "the chain continues after the last committed record"
    );
    verified_chain(store).await;
}

/// 8 writers × 25 commits at once: 200 records, contiguous and verifying, none lost or doubled.
/// Every other commit writes only its audit record, so the transaction's first statement reads
/// the chain head (a read that must not stop the write that follows).
pub async fn concurrent_commits_keep_chain(store: &dyn Store) {
    const WRITERS: usize = 8;
    const COMMITS: usize = 25;
    let writer = |w: usize| async move {
        for c in 0..COMMITS {
            let mut tx = store.begin().await.must("begin");
            let name = format!("w{w}-c{c}");
            if c % 2 == 0 {
                let env = Environment {
                    name: name.clone(),
                    description: String::new(),
                    security_zones: Vec::new(),
                    created_at: at(0),
                };
                tx.upsert_environment(&env).await.must("upsert environment");
            }
            let d = draft("system", "test.concurrent", Outcome::Success).object(name);
            tx.commit(vec![d], at(0)).await.must("concurrent commit");
        }
    };
    join_all((0..WRITERS).map(writer).collect()).await;
    let stored = verified_chain(store).await;
    let total = WRITERS * COMMITS;
    assert_eq!(seqs(&stored), (1..=total as i64).collect::<Vec<_>>());
    let objects: BTreeSet<String> = stored
        .iter()
        .filter_map(|r| r.parsed().and_then(|c| c.draft.object_id))
        .collect();
    assert_eq!(
        objects.len(),
        total,
        "every commit's record is there exactly once"
    );
    let changes = WRITERS * COMMITS.div_ceil(2);
    assert_eq!(
        store.environments().await.must("environments").len(),
        changes
    );
}

/// The database itself refuses UPDATE, DELETE (and TRUNCATE) on the audit trail.
pub async fn audit_is_append_only(fx: &dyn Fixture) {
    let store = fx.store();
    for i in 0..3 {
        audit_only(
            store,
            draft("alice", "test.append", Outcome::Success),
            at(i),
        )
        .await;
    }
    let head = store.audit_head().await.must("head").must("head");
    let key = CheckpointKey::generate();
    store
        .insert_checkpoint(&key.sign(head.0, &head.1, at(10)))
        .await
        .must("checkpoint");
    let before = all_audit(store).await;
    let mut attempts = vec![
        "UPDATE audit_log SET content = 'forged' WHERE seq = 2",
        "UPDATE audit_log SET outcome = 'denied'",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log",
        "UPDATE audit_checkpoints SET hash = 'forged'",
        "DELETE FROM audit_checkpoints",
    ];
    if store.backend() == "postgres" {
        attempts.push("TRUNCATE audit_log CASCADE");
        attempts.push("TRUNCATE audit_checkpoints");
    }
    for sql in attempts {
        match fx.execute_raw(sql).await {
            Ok(n) => panic!(
                "the database accepted `{sql}` ({n} rows): the audit trail must be append-only"
            ),
            Err(e) => assert!(
                e.to_string().contains("append-only"),
                "`{sql}` must be refused by the append-only trigger, not by {e}"
            ),
        }
    }
    assert_eq!(all_audit(store).await, before, "the records are unchanged");
    assert_eq!(store.checkpoints().await.must("checkpoints").len(), 1);
    verified_chain(store).await;
}

/// Data that does not decode is `Corrupt`, naming the table and column, never a panic.
pub async fn corrupt_rows_reported(fx: &dyn Fixture) {
    let store = fx.store();
    let id = create_user(store, "alice", at(0)).await;
    upsert_roles(store, &[custom_role()]).await;
    fx.execute_raw(&format!(
        "UPDATE users SET kind = '{{\"type\":\"alien\"}}' WHERE id = {id}"
    ))
    .await
    .must("corrupting users.kind");
    fx.execute_raw("UPDATE roles SET permissions = '[\"root.everything\"]'")
        .await
        .must("corrupting roles.permissions");
    for (what, result) in [
        ("user_by_id", store.user_by_id(id).await.map(|_| ())),
        ("users", store.users().await.map(|_| ())),
        ("roles", store.roles().await.map(|_| ())),
        ("export_all", store.export_all().await.map(|_| ())),
    ] {
        match result {
            Err(StoreError::Corrupt(m))
                if m.contains("users.kind") || m.contains("roles.permissions") => {}
            other => panic!("{what}: expected Corrupt naming the table and column, got {other:?}"),
        }
    }
}

/// Audit search: each filter, their combination, newest first, paging with `before_seq`.
pub async fn audit_search_filters(store: &dyn Store) {
    use Outcome::{Denied, Failure, Success};
    let d = |who: &str, action: &str, object_type: &str, outcome| {
        AuditDraft::new(actor(who), action, object_type, outcome)
    };
    let records = [
        (0, d("alice", "user.create", "user", Success).object(7)),
        (
            60,
            d("alice", "user.update", "user", Success)
                .object(7)
                .detail("改名 needle-42"),
        ),
        (
            120,
            d("bob", "auth.login", "session", Failure).detail("wrong password"),
        ),
        (
            180,
            d("bob", "role.grant", "user", Denied)
                .object(8)
                .detail("职责分离 SoD"),
        ),
        (240, d("system", "usercreate", "user", Success).object(9)),
        (300, d("alice", "user_x.create", "user", Success).object(10)),
        (360, d("alice", "User.create", "user", Success).object(11)),
        (
            420,
            d("bob", "user.delete", "user", Denied)
                .object(7)
                .detail("NEEDLE-42"),
        ),
    ];
    for (secs, record) in records {
        // Whole seconds and fractions alternate, so time comparisons see both text forms.
        let when = if secs % 120 == 0 {
            at(secs) - Duration::microseconds(123_456)
        } else {
            at(secs)
        };
        audit_only(store, record, when).await;
    }
    let search = |q: AuditQuery| async move {
        seqs(
            &store
                .audit_search(&AuditQuery { limit: 100, ..q })
                .await
                .must("audit_search"),
        )
    };
    assert_eq!(
        search(AuditQuery::default()).await,
        vec![8, 7, 6, 5, 4, 3, 2, 1],
        "newest first"
    );
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };
    assert_eq!(
        search(q(|q| q.actor = Some("alice".into()))).await,
        vec![7, 6, 2, 1]
    );
    assert_eq!(
        search(q(|q| q.action_prefix = Some("user.".into()))).await,
        vec![8, 2, 1],
        "the action prefix is literal and case-sensitive"
    );
    assert_eq!(
        search(q(|q| q.action_prefix = Some("user_".into()))).await,
        vec![6]
    );
    assert_eq!(
        search(q(|q| q.action_prefix = Some("%".into()))).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        search(q(|q| q.outcome = Some("denied".into()))).await,
        vec![8, 4]
    );
    assert_eq!(
        search(q(|q| q.object_type = Some("session".into()))).await,
        vec![3]
    );
    assert_eq!(
        search(q(|q| {
            q.object_type = Some("user".into());
            q.object_id = Some("7".into());
        }))
        .await,
        vec![8, 2, 1]
    );
    assert_eq!(
        search(q(|q| q.text = Some("needle-42".into()))).await,
        vec![2],
        "text is a case-sensitive substring"
    );
    assert_eq!(
        search(q(|q| q.text = Some("职责分离".into()))).await,
        vec![4]
    );
    assert_eq!(
        search(q(|q| q.text = Some("%".into()))).await,
        Vec::<i64>::new(),
        "text is literal, not a pattern"
    );
    // Times: record 3 is at a whole second (at(120) - 0.123456 s), record 2 at at(60).
    let whole = at(120) - Duration::microseconds(123_456);
    let mut range = AuditQuery {
        from: Some(at(60)),
        to: Some(at(240) - Duration::microseconds(123_456)),
        ..AuditQuery::default()
    };
    assert_eq!(
        search(range.clone()).await,
        vec![4, 3, 2],
        "from inclusive, to exclusive"
    );
    range.from = Some(whole);
    assert_eq!(search(range.clone()).await, vec![4, 3]);
    range.from = Some(whole + Duration::microseconds(1));
    assert_eq!(search(range.clone()).await, vec![4]);
    range.from = Some(whole - Duration::microseconds(1));
    range.to = Some(whole + Duration::microseconds(1));
    assert_eq!(search(range.clone()).await, vec![3]);
    range.from = Some(at(60));
    range.to = Some(whole);
    assert_eq!(search(range).await, vec![2]);
    assert_eq!(
        search(q(|q| {
            q.actor = Some("bob".into());
            q.outcome = Some("denied".into());
            q.action_prefix = Some("role.".into());
        }))
        .await,
        vec![4],
        "filters combine with AND"
    );

    // Paging: limit and before_seq walk the whole log newest first.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .audit_search(&AuditQuery {
                before_seq: before,
                limit: 3,
                ..AuditQuery::default()
            })
            .await
            .must("audit_search page");
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 3, "a page holds at most `limit` records");
        before = Some(last.seq);
        seen.extend(seqs(&page));
    }
    assert_eq!(seen, vec![8, 7, 6, 5, 4, 3, 2, 1]);
    let none = store
        .audit_search(&AuditQuery::default())
        .await
        .must("limit 0");
    assert!(none.is_empty(), "limit 0 returns nothing");
    let all = store
        .audit_search(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .must("all");
    let mut by_range = all_audit(store).await;
    by_range.reverse();
    assert_eq!(all, by_range, "search returns the stored records exactly");
}

/// Leases: held by one holder until expiry, renewable by it, then free for another.
pub async fn leases(store: &dyn Store) {
    let lease = |name: &'static str, holder: &'static str, now: i64, until: i64| async move {
        store
            .try_lease(name, holder, at(now), at(until))
            .await
            .must("try_lease")
    };
    assert!(lease("maint", "a", 0, 30).await, "a free lease is taken");
    assert!(
        !lease("maint", "b", 10, 40).await,
        "a held lease is refused to another holder"
    );
    assert!(lease("maint", "a", 20, 50).await, "the holder renews it");
    assert!(
        !lease("maint", "b", 40, 70).await,
        "the renewal extended it"
    );
    assert!(
        lease("other", "b", 40, 70).await,
        "leases are independent by name"
    );
    assert!(
        lease("maint", "b", 50, 80).await,
        "an expired lease is taken over"
    );
    assert!(
        !lease("maint", "a", 51, 90).await,
        "the previous holder lost it"
    );
    assert!(lease("maint", "b", 60, 100).await);

    // Holders racing for a free lease: exactly one gets it.
    let won = std::sync::atomic::AtomicUsize::new(0);
    let racer = |h: usize| {
        let won = &won;
        async move {
            let holder = format!("replica-{h}");
            if store
                .try_lease("race", &holder, at(0), at(30))
                .await
                .must("try_lease")
            {
                won.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    };
    join_all((0..8).map(racer).collect()).await;
    assert_eq!(
        won.into_inner(),
        1,
        "exactly one of the racing holders takes the lease"
    );
}

/// Checkpoints: stored when they match their record, listed by sequence number, unique.
pub async fn checkpoints_insert_and_list(store: &dyn Store) {
    let mut records = Vec::new();
    for i in 0..3 {
        records.extend(
            audit_only(
                store,
                draft("system", "test.append", Outcome::Success),
                at(i),
            )
            .await,
        );
    }
    let key = CheckpointKey::generate();
    let c3 = key.sign(3, &records[2].hash, at(20));
    let c2 = key.sign(2, &records[1].hash, at(10));
    store.insert_checkpoint(&c3).await.must("checkpoint 3");
    store.insert_checkpoint(&c2).await.must("checkpoint 2");
    let read = store.checkpoints().await.must("checkpoints");
    assert_eq!(read, vec![c2.clone(), c3], "listed by sequence number");
    assert!(
        read.iter().all(|c| key.verify(c)),
        "signatures survive storage"
    );
    assert_conflict(
        store.insert_checkpoint(&c2).await,
        "a second checkpoint for seq 2",
    );
    assert_conflict(
        store
            .insert_checkpoint(&key.sign(1, &records[2].hash, at(30)))
            .await,
        "a checkpoint whose hash is not its record's",
    );
    assert_conflict(
        store
            .insert_checkpoint(&key.sign(99, &records[2].hash, at(30)))
            .await,
        "a checkpoint for a record that does not exist",
    );
}

/// Times are stored in UTC to the microsecond (the finer part is truncated) on every backend.
pub async fn timestamps_keep_microseconds(store: &dyn Store) {
    let fine = at(0) + Duration::nanoseconds(789);
    let env = Environment {
        name: "prod".into(),
        description: String::new(),
        security_zones: Vec::new(),
        created_at: fine,
    };
    let mut tx = store.begin().await.must("begin");
    tx.upsert_environment(&env).await.must("upsert");
    let records = tx
        .commit(vec![draft("system", "test.time", Outcome::Success)], fine)
        .await
        .must("commit");
    assert_eq!(
        records[0].at,
        at(0),
        "commit seals the record at the microsecond"
    );
    let read = store.environments().await.must("environments");
    assert_eq!(read[0].created_at, at(0));
    assert_eq!(all_audit(store).await, records);
    verified_chain(store).await;
}

// ---------------------------------------------------------------- the engine (exec)

fn script_row(name: &str, when: DateTime<Utc>) -> ScriptRow {
    ScriptRow {
        id: 0,
        name: name.to_string(),
        description: format!("{name} 脚本"),
        language: "bash".to_string(),
        created_by: "alice".to_string(),
        created_at: when,
    }
}

fn script_version_row(script_id: i64, version: i64, when: DateTime<Utc>) -> ScriptVersionRow {
    let content = format!("#!/bin/bash\necho v{version}\n");
    ScriptVersionRow {
        script_id,
        version,
        sha256: format!("{:064x}", version),
        content,
        params: json!([{"name": "target", "kind": "string", "required": true}]),
        state: "draft".to_string(),
        note: format!("版本 {version}"),
        author: "alice".to_string(),
        created_at: when,
        state_changed_by: None,
        state_changed_at: None,
    }
}

fn plan_row(name: &str, when: DateTime<Utc>) -> PlanRow {
    PlanRow {
        id: 0,
        name: name.to_string(),
        description: format!("{name} 作业"),
        created_by: "alice".to_string(),
        created_at: when,
    }
}

fn plan_version_row(plan_id: i64, version: i64, when: DateTime<Utc>) -> PlanVersionRow {
    PlanVersionRow {
        plan_id,
        version,
        spec: json!({"steps": [{"name": "备份", "kind": "script", "script": "backup"}]}),
        author: "alice".to_string(),
        created_at: when,
    }
}

fn approval_row(kind: &str, object_id: &str, when: DateTime<Utc>) -> ApprovalRow {
    ApprovalRow {
        id: 0,
        kind: kind.to_string(),
        object_type: "run".to_string(),
        object_id: object_id.to_string(),
        environment: Some("prod".to_string()),
        requested_by: "alice".to_string(),
        requested_at: when,
        reason: "例行变更".to_string(),
        payload: json!({"findings": ["rm -rf"]}),
        state: "pending".to_string(),
        decided_by: None,
        decided_at: None,
        comment: None,
    }
}

fn run_row(status: &str, when: DateTime<Utc>) -> RunRow {
    RunRow {
        id: 0,
        kind: "adhoc".to_string(),
        plan_id: None,
        plan_version: None,
        name: "uptime".to_string(),
        environment: "prod".to_string(),
        status: status.to_string(),
        requested_by: "alice".to_string(),
        created_at: when,
        started_at: None,
        finished_at: None,
        spec: json!({"command": "uptime", "hosts": ["local"]}),
        secrets_sealed: None,
        current_step: 0,
        owner: None,
        lease_until: None,
        message: None,
        updated_at: when,
    }
}

fn step_row(idx: i64, kind: &str) -> StepRow {
    StepRow {
        run_id: 0,
        idx,
        name: format!("步骤 {idx}"),
        kind: kind.to_string(),
        status: "pending".to_string(),
        attempt: 0,
        started_at: None,
        finished_at: None,
        message: None,
    }
}

fn task_row(run_id: i64, step_idx: i64, host: &str) -> TaskRow {
    TaskRow {
        id: 0,
        run_id,
        step_idx,
        host: host.to_string(),
        transport: "local".to_string(),
        attempt: 1,
        batch: 1,
        status: "pending".to_string(),
        exit_code: None,
        error_code: None,
        error_message: None,
        stdout_bytes: 0,
        stderr_bytes: 0,
        truncated: false,
        started_at: None,
        finished_at: None,
    }
}

fn chunk(task_id: i64, seq: i64, stream: &str, data: &[u8], when: DateTime<Utc>) -> OutputChunkRow {
    OutputChunkRow {
        task_id,
        seq,
        stream: stream.to_string(),
        data: data.to_vec(),
        at: when,
    }
}

fn agent_row(id: &str, hostname: &str, when: DateTime<Utc>) -> AgentRow {
    AgentRow {
        id: id.to_string(),
        hostname: hostname.to_string(),
        environment: "prod".to_string(),
        cert_fingerprint: format!("fp-{id}"),
        facts: json!({"os": "debian", "cpus": 4}),
        version: "0.1.0".to_string(),
        enrolled_at: when,
        last_seen_at: None,
        revoked_at: None,
        revoked_by: None,
    }
}

fn enroll_token_row(hash: &str, created: DateTime<Utc>, expires: DateTime<Utc>) -> EnrollTokenRow {
    EnrollTokenRow {
        hash: hash.to_string(),
        environment: "prod".to_string(),
        created_by: "alice".to_string(),
        created_at: created,
        expires_at: expires,
        used_at: None,
        agent_id: None,
    }
}

fn ssh_credential_row(name: &str, secret: &str, when: DateTime<Utc>) -> SshCredentialRow {
    SshCredentialRow {
        name: name.to_string(),
        username: "ops".to_string(),
        kind: "key".to_string(),
        secret_sealed: secret.to_string(),
        created_by: "alice".to_string(),
        created_at: when,
    }
}

fn host_key_row(host: &str, port: i64, key: &str, when: DateTime<Utc>) -> HostKeyRow {
    HostKeyRow {
        host: host.to_string(),
        port,
        key_line: format!("ssh-ed25519 {key}"),
        fingerprint: format!("SHA256:{key}"),
        pinned_by: "alice".to_string(),
        pinned_at: when,
    }
}

fn setting_row(key: &str, value: serde_json::Value, when: DateTime<Utc>) -> SettingRow {
    SettingRow {
        key: key.to_string(),
        value,
        updated_by: "alice".to_string(),
        updated_at: when,
    }
}

/// Commits a transaction with one audit record for `action`.
async fn commit_exec(tx: Box<dyn crate::Tx>, action: &str, when: DateTime<Utc>) {
    tx.commit(vec![draft("alice", action, Outcome::Success)], when)
        .await
        .must(action);
}

/// Inserts a run with `steps` steps (kind `command`) in its own transaction; returns its id.
async fn create_run(store: &dyn Store, status: &str, steps: i64, when: DateTime<Utc>) -> i64 {
    let mut tx = store.begin().await.must("begin");
    let steps: Vec<StepRow> = (0..steps).map(|i| step_row(i, "command")).collect();
    let id = tx
        .insert_run(&run_row(status, when), &steps)
        .await
        .must("insert run");
    commit_exec(tx, "run.start", when).await;
    id
}

fn ids(runs: &[RunRow]) -> Vec<i64> {
    runs.iter().map(|r| r.id).collect()
}

/// Scripts: unique names, immutable versions whose state changes, `NotFound` for unknown ones.
pub async fn exec_scripts_and_versions(store: &dyn Store) {
    let mut tx = store.begin().await.must("begin");
    let backup = tx
        .insert_script(&script_row("backup", at(0) + Duration::nanoseconds(999)))
        .await
        .must("insert backup");
    let check = tx
        .insert_script(&script_row("check", at(1)))
        .await
        .must("insert check");
    assert_ne!(backup, check, "scripts get distinct ids");
    tx.insert_script_version(&script_version_row(backup, 1, at(2)))
        .await
        .must("version 1");
    tx.insert_script_version(&script_version_row(backup, 2, at(3)))
        .await
        .must("version 2");
    commit_exec(tx, "script.create", at(3)).await;

    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_script(&script_row("backup", at(4))).await,
        "a second script named backup",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_script_version(&script_version_row(backup, 2, at(4)))
            .await,
        "a second version 2",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    assert_not_found(
        tx.insert_script_version(&script_version_row(9999, 1, at(4)))
            .await,
        "a version of an unknown script",
    );
    assert_not_found(
        tx.set_script_version_state(backup, 7, "online", "bob", at(5))
            .await,
        "the state of an unknown version",
    );
    tx.set_script_version_state(backup, 2, "online", "bob", at(5))
        .await
        .must("put version 2 online");
    commit_exec(tx, "script.online", at(5)).await;

    let names: Vec<String> = store
        .scripts()
        .await
        .must("scripts")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["backup", "check"], "scripts by name");
    let by_name = store
        .script_by_name("backup")
        .await
        .must("by name")
        .must("backup");
    assert_eq!(by_name.id, backup);
    assert_eq!(by_name.created_at, at(0), "times kept to the microsecond");
    assert_eq!(by_name.description, "backup 脚本");
    assert_eq!(
        store.script_by_id(backup).await.must("by id"),
        Some(by_name)
    );
    assert_eq!(store.script_by_name("nope").await.must("by name"), None);
    assert_eq!(store.script_by_id(9999).await.must("by id"), None);

    let versions = store.script_versions(backup).await.must("versions");
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2]
    );
    let mut expected = script_version_row(backup, 2, at(3));
    expected.state = "online".into();
    expected.state_changed_by = Some("bob".into());
    expected.state_changed_at = Some(at(5));
    assert_eq!(versions[1], expected, "version 2 reads back, state changed");
    assert_eq!(versions[0], script_version_row(backup, 1, at(2)));
    assert_eq!(
        store.script_version(backup, 2).await.must("version"),
        Some(expected)
    );
    assert_eq!(store.script_version(backup, 3).await.must("version"), None);
    assert!(
        store
            .script_versions(check)
            .await
            .must("versions")
            .is_empty()
    );
}

/// Plans: unique names, versions, `NotFound` for a version of an unknown plan.
pub async fn exec_plans_and_versions(store: &dyn Store) {
    let mut tx = store.begin().await.must("begin");
    let deploy = tx
        .insert_plan(&plan_row("deploy", at(0)))
        .await
        .must("insert deploy");
    let audit = tx
        .insert_plan(&plan_row("audit-logs", at(1)))
        .await
        .must("insert audit-logs");
    for v in 1..=2 {
        tx.insert_plan_version(&plan_version_row(deploy, v, at(v)))
            .await
            .must("plan version");
    }
    commit_exec(tx, "plan.create", at(2)).await;

    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_plan(&plan_row("deploy", at(3))).await,
        "a second plan named deploy",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_plan_version(&plan_version_row(deploy, 1, at(3)))
            .await,
        "a second version 1",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    assert_not_found(
        tx.insert_plan_version(&plan_version_row(9999, 1, at(3)))
            .await,
        "a version of an unknown plan",
    );
    drop(tx);

    let plans = store.plans().await.must("plans");
    assert_eq!(
        plans.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["audit-logs", "deploy"],
        "plans by name"
    );
    let mut expected = plan_row("deploy", at(0));
    expected.id = deploy;
    assert_eq!(
        store.plan_by_id(deploy).await.must("by id"),
        Some(expected.clone())
    );
    assert_eq!(
        store.plan_by_name("deploy").await.must("by name"),
        Some(expected)
    );
    assert_eq!(store.plan_by_name("nope").await.must("by name"), None);
    assert_eq!(
        store.plan_versions(deploy).await.must("versions"),
        vec![
            plan_version_row(deploy, 1, at(1)),
            plan_version_row(deploy, 2, at(2))
        ]
    );
    assert_eq!(
        store.plan_version(deploy, 2).await.must("version"),
        Some(plan_version_row(deploy, 2, at(2)))
    );
    assert_eq!(store.plan_version(audit, 1).await.must("version"), None);

    // A plan run names an existing plan version.
    let mut tx = store.begin().await.must("begin");
    let run = RunRow {
        kind: "plan".into(),
        plan_id: Some(deploy),
        plan_version: Some(2),
        ..run_row("pending", at(3))
    };
    let id = tx.insert_run(&run, &[]).await.must("plan run");
    commit_exec(tx, "run.start", at(3)).await;
    let mut tx = store.begin().await.must("begin");
    let missing = RunRow {
        plan_version: Some(9),
        ..run.clone()
    };
    assert_conflict(
        tx.insert_run(&missing, &[]).await,
        "a run of a plan version that does not exist",
    );
    drop(tx);
    let q = RunQuery {
        plan_id: Some(deploy),
        limit: 10,
        ..RunQuery::default()
    };
    assert_eq!(ids(&store.runs(&q).await.must("runs")), [id]);
}

/// Approvals: listed newest first and by state, found by object, decided once.
pub async fn exec_approvals_decided_once(store: &dyn Store) {
    let mut tx = store.begin().await.must("begin");
    let a1 = tx
        .insert_approval(&approval_row("run.start", "1", at(0)))
        .await
        .must("approval 1");
    let a2 = tx
        .insert_approval(&approval_row("run.start", "1", at(1)))
        .await
        .must("approval 2");
    let a3 = tx
        .insert_approval(&approval_row("danger.approval", "2", at(2)))
        .await
        .must("approval 3");
    commit_exec(tx, "approval.request", at(2)).await;

    let mut tx = store.begin().await.must("begin");
    tx.decide_approval(a1, "rejected", "bob", at(3), None)
        .await
        .must("reject a1");
    tx.decide_approval(a2, "approved", "bob", at(4), Some("同意"))
        .await
        .must("approve a2");
    commit_exec(tx, "approval.decide", at(4)).await;

    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.decide_approval(a2, "rejected", "carol", at(5), None)
            .await,
        "deciding an approval a second time",
    );
    assert_not_found(
        tx.decide_approval(9999, "approved", "carol", at(5), None)
            .await,
        "deciding an unknown approval",
    );
    drop(tx);

    let read = store.approval(a2).await.must("approval").must("a2");
    let expected = ApprovalRow {
        id: a2,
        state: "approved".into(),
        decided_by: Some("bob".into()),
        decided_at: Some(at(4)),
        comment: Some("同意".into()),
        ..approval_row("run.start", "1", at(1))
    };
    assert_eq!(read, expected, "the first decision stands");
    let all = store.approvals(None, 10).await.must("approvals");
    assert_eq!(
        all.iter().map(|a| a.id).collect::<Vec<_>>(),
        [a3, a2, a1],
        "newest first"
    );
    let pending = store.approvals(Some("pending"), 10).await.must("pending");
    assert_eq!(pending.iter().map(|a| a.id).collect::<Vec<_>>(), [a3]);
    assert_eq!(store.approvals(None, 1).await.must("limit").len(), 1);
    assert!(store.approvals(None, 0).await.must("limit 0").is_empty());
    assert_eq!(
        store
            .approval_for("run.start", "run", "1")
            .await
            .must("approval_for")
            .map(|a| a.id),
        Some(a2),
        "the newest approval about the object"
    );
    assert_eq!(
        store
            .approval_for("run.start", "run", "2")
            .await
            .must("approval_for"),
        None
    );
    assert_eq!(store.approval(9999).await.must("approval"), None);
}

/// A run with its steps, tasks and output reads back as written, in order.
pub async fn exec_run_steps_tasks_output(store: &dyn Store) {
    let mut tx = store.begin().await.must("begin");
    let mut run = run_row("pending", at(0));
    run.secrets_sealed = Some("sealed:abc".into());
    run.id = 4242; // ignored
    let mut steps = vec![step_row(0, "script"), step_row(1, "confirm")];
    steps[0].run_id = 777; // ignored
    let run_id = tx.insert_run(&run, &steps).await.must("insert run");
    commit_exec(tx, "run.start", at(0)).await;
    let other = create_run(store, "pending", 1, at(1)).await;

    let read = store.run(run_id).await.must("run").must("the run");
    assert_eq!(read, RunRow { id: run_id, ..run }, "the run reads back");
    assert_eq!(store.run(9999).await.must("run"), None);
    let read_steps = store.steps(run_id).await.must("steps");
    assert_eq!(
        read_steps,
        vec![
            StepRow {
                run_id,
                ..step_row(0, "script")
            },
            StepRow {
                run_id,
                ..step_row(1, "confirm")
            },
        ]
    );

    let mut step = read_steps[0].clone();
    step.status = "running".into();
    step.attempt = 1;
    step.started_at = Some(at(2));
    step.message = Some("运行中".into());
    store.update_step(&step).await.must("update step");
    assert_eq!(store.steps(run_id).await.must("steps")[0], step);
    assert_not_found(
        store
            .update_step(&StepRow {
                idx: 9,
                ..step.clone()
            })
            .await,
        "updating an unknown step",
    );

    let hosts = ["local", "agent:web01", "ssh://ops@10.0.0.5:22"];
    let new_tasks: Vec<TaskRow> = hosts.iter().map(|h| task_row(run_id, 0, h)).collect();
    let tasks = store.insert_tasks(&new_tasks).await.must("insert tasks");
    assert_eq!(tasks.len(), 3);
    for (t, h) in tasks.iter().zip(hosts) {
        assert_eq!(t.host, h, "tasks come back in input order");
        assert_eq!(TaskRow { id: 0, ..t.clone() }, task_row(run_id, 0, h));
    }
    assert!(
        tasks.windows(2).all(|w| w[0].id < w[1].id),
        "ids are ascending"
    );
    let later = store
        .insert_tasks(&[task_row(run_id, 1, "local"), task_row(other, 0, "local")])
        .await
        .must("more tasks");
    assert!(store.insert_tasks(&[]).await.must("no tasks").is_empty());
    assert_conflict(
        store.insert_tasks(&[task_row(run_id, 5, "local")]).await,
        "a task of a step that does not exist",
    );

    let mut t = tasks[1].clone();
    t.status = "succeeded".into();
    t.exit_code = Some(0);
    t.stdout_bytes = 11;
    t.stderr_bytes = 3;
    t.truncated = true;
    t.started_at = Some(at(3));
    t.finished_at = Some(at(4) + Duration::nanoseconds(1));
    store.update_task(&t).await.must("update task");
    t.finished_at = Some(at(4));
    assert_eq!(store.task(t.id).await.must("task"), Some(t.clone()));
    assert_not_found(
        store
            .update_task(&TaskRow {
                id: 99_999,
                ..t.clone()
            })
            .await,
        "updating an unknown task",
    );
    let all_tasks = store.tasks(run_id, None).await.must("tasks");
    let mut expected = tasks.clone();
    expected[1] = t.clone();
    expected.push(later[0].clone());
    assert_eq!(all_tasks, expected, "tasks by step, then id");
    assert_eq!(
        store.tasks(run_id, Some(1)).await.must("step 1"),
        vec![later[0].clone()]
    );
    assert_eq!(
        store.tasks(other, None).await.must("other run"),
        vec![later[1].clone()]
    );

    // Output: binary-safe, in order, paged by sequence number.
    let tid = t.id;
    let chunks = vec![
        chunk(tid, 0, "stdout", b"hello ", at(5)),
        chunk(tid, 1, "stderr", &[0xff, 0x00, 0xfe], at(5)),
        chunk(tid, 2, "stdout", "世界\n".as_bytes(), at(6)),
    ];
    store.append_output(&chunks[..2]).await.must("append");
    store.append_output(&chunks[2..]).await.must("append");
    store.append_output(&[]).await.must("append nothing");
    store
        .append_output(&[chunk(tasks[0].id, 0, "stdout", b"other", at(6))])
        .await
        .must("another task's output");
    assert_conflict(
        store
            .append_output(&[chunk(tid, 1, "stdout", b"again", at(7))])
            .await,
        "a chunk with a sequence number already stored",
    );
    assert_eq!(store.output(tid, -1, 100).await.must("output"), chunks);
    assert_eq!(
        store.output(tid, 0, 1).await.must("page"),
        chunks[1..2].to_vec()
    );
    assert!(
        store
            .output(tid, 2, 100)
            .await
            .must("after the end")
            .is_empty()
    );
    assert!(store.output(tid, -1, 0).await.must("limit 0").is_empty());

    // Group commit: several updates of one task (the last wins) and chunks, in one transaction;
    // all or nothing when one of them fails.
    let mut started = tasks[0].clone();
    started.status = "running".into();
    started.started_at = Some(at(8));
    let mut done = started.clone();
    done.status = "failed".into();
    done.exit_code = Some(2);
    done.finished_at = Some(at(9));
    let more = vec![
        chunk(tasks[0].id, 1, "stdout", b" more", at(8)),
        chunk(tasks[0].id, 2, "stderr", b"boom", at(9)),
    ];
    store
        .record_tasks(&[started.clone(), done.clone()], &more)
        .await
        .must("record tasks");
    assert_eq!(store.task(done.id).await.must("task"), Some(done.clone()));
    assert_eq!(store.output(tasks[0].id, 0, 100).await.must("output"), more);
    store.record_tasks(&[], &[]).await.must("record nothing");
    let missing = TaskRow {
        id: 99_999,
        ..done.clone()
    };
    let mut again = done.clone();
    again.status = "succeeded".into();
    assert_not_found(
        store
            .record_tasks(
                &[again, missing],
                &[chunk(tasks[0].id, 3, "stdout", b"lost", at(10))],
            )
            .await,
        "recording an unknown task",
    );
    assert_eq!(
        store.task(done.id).await.must("task"),
        Some(done.clone()),
        "a failed group commit changes no task"
    );
    assert_eq!(
        store.output(tasks[0].id, 0, 100).await.must("output"),
        more,
        "a failed group commit stores no chunk"
    );

    // Listing: newest first, filters, paging.
    let q = |status: Option<&str>, before_id: Option<i64>, limit: u32| RunQuery {
        status: status.map(str::to_string),
        environment: Some("prod".into()),
        plan_id: None,
        before_id,
        limit,
    };
    assert_eq!(
        ids(&store.runs(&q(None, None, 10)).await.must("runs")),
        [other, run_id]
    );
    assert_eq!(
        ids(&store.runs(&q(None, Some(other), 10)).await.must("page")),
        [run_id]
    );
    assert_eq!(
        ids(&store.runs(&q(None, None, 1)).await.must("limit")),
        [other]
    );
    assert!(
        store
            .runs(&q(Some("failed"), None, 10))
            .await
            .must("failed")
            .is_empty()
    );
    let dev = RunQuery {
        environment: Some("dev".into()),
        limit: 10,
        ..RunQuery::default()
    };
    assert!(store.runs(&dev).await.must("dev").is_empty());
}

/// A person's status changes on runs and steps, whoever holds the lease.
pub async fn exec_run_and_step_status(store: &dyn Store) {
    let run_id = create_run(store, "running", 2, at(0)).await;
    assert_eq!(
        ids(&store.claim_runs("a", at(0), at(60), 10).await.must("claim")),
        [run_id]
    );
    let mut tx = store.begin().await.must("begin");
    tx.set_step_status(run_id, 1, "succeeded", Some("已确认"), at(1))
        .await
        .must("confirm step");
    tx.set_run_status(run_id, "cancelled", Some("取消"), at(2))
        .await
        .must("cancel run");
    assert_not_found(
        tx.set_run_status(9999, "cancelled", None, at(2)).await,
        "cancelling an unknown run",
    );
    assert_not_found(
        tx.set_step_status(run_id, 7, "succeeded", None, at(2))
            .await,
        "an unknown step",
    );
    commit_exec(tx, "run.cancel", at(2)).await;
    let run = store.run(run_id).await.must("run").must("run");
    assert_eq!(run.status, "cancelled");
    assert_eq!(run.message.as_deref(), Some("取消"));
    assert_eq!(run.finished_at, Some(at(2)), "a final status ends the run");
    assert_eq!(run.updated_at, at(2));
    assert_eq!(run.owner.as_deref(), Some("a"), "the lease is untouched");
    let step = &store.steps(run_id).await.must("steps")[1];
    assert_eq!(step.status, "succeeded");
    assert_eq!(step.message.as_deref(), Some("已确认"));
    assert_eq!(step.finished_at, Some(at(1)));
    assert!(
        store
            .claim_runs("b", at(100), at(160), 10)
            .await
            .must("claim")
            .is_empty(),
        "a cancelled run is not claimed"
    );
}

/// `claim_runs`: a run belongs to one owner until its lease expires or is released.
pub async fn exec_claim_runs_exclusive(store: &dyn Store) {
    let r1 = create_run(store, "pending", 1, at(0)).await;
    let r2 = create_run(store, "running", 1, at(0)).await;
    let r3 = create_run(store, "waiting_approval", 1, at(0)).await;
    let done = create_run(store, "succeeded", 1, at(0)).await;
    let blocked = create_run(store, "blocked", 1, at(0)).await;
    let claim = |owner: &'static str, now: i64, until: i64, limit: u32| async move {
        store
            .claim_runs(owner, at(now), at(until), limit)
            .await
            .must("claim_runs")
    };

    let first = claim("a", 0, 30, 10).await;
    assert_eq!(ids(&first), [r1, r2, r3], "claimable runs, by id");
    assert!(first.iter().all(|r| r.owner.as_deref() == Some("a")));
    assert!(first.iter().all(|r| r.lease_until == Some(at(30))));
    assert!(!ids(&first).contains(&done) && !ids(&first).contains(&blocked));
    assert!(claim("b", 10, 40, 10).await.is_empty(), "held by a");
    assert_eq!(
        ids(&claim("a", 10, 40, 10).await),
        [r1, r2, r3],
        "a renews its own"
    );
    assert!(
        claim("a", 10, 40, 0).await.is_empty(),
        "limit 0 claims nothing"
    );

    assert!(
        !store.renew_run(r1, "b", at(50)).await.must("renew"),
        "not b's"
    );
    assert!(store.renew_run(r1, "a", at(50)).await.must("renew"));
    assert!(claim("b", 39, 70, 10).await.is_empty(), "not yet expired");
    assert_eq!(
        ids(&claim("b", 40, 70, 10).await),
        [r2, r3],
        "expired leases are taken over"
    );
    assert!(
        !store.renew_run(r2, "a", at(80)).await.must("renew"),
        "a lost r2"
    );

    store
        .release_run(r1, "b")
        .await
        .must("release by non-owner");
    assert_eq!(
        store.run(r1).await.must("run").must("r1").owner.as_deref(),
        Some("a"),
        "releasing someone else's lease does nothing"
    );
    store.release_run(r1, "a").await.must("release");
    let r1_row = store.run(r1).await.must("run").must("r1");
    assert_eq!((r1_row.owner, r1_row.lease_until), (None, None));
    assert_eq!(
        ids(&claim("c", 41, 90, 1).await),
        [r1],
        "a released run is free; limit 1"
    );
    assert!(claim("c", 41, 90, 10).await.iter().all(|r| r.id == r1));
}

/// Eight owners claiming twenty runs at once, finishing what they get: each run is claimed
/// exactly once.
pub async fn exec_claim_runs_concurrent(store: &dyn Store) {
    let mut all_runs = BTreeSet::new();
    for _ in 0..20 {
        all_runs.insert(create_run(store, "pending", 1, at(0)).await);
    }
    let claimed = std::sync::Mutex::new(Vec::<(String, i64)>::new());
    let worker = |n: usize| {
        let claimed = &claimed;
        async move {
            let owner = format!("replica-{n}");
            loop {
                let got = store
                    .claim_runs(&owner, at(0), at(600), 3)
                    .await
                    .must("claim_runs");
                if got.is_empty() {
                    return;
                }
                for r in got {
                    assert_eq!(r.owner.as_deref(), Some(owner.as_str()));
                    store
                        .update_run_progress(r.id, &owner, "succeeded", 1, None, at(1))
                        .await
                        .must("finish a claimed run");
                    if let Ok(mut c) = claimed.lock() {
                        c.push((owner.clone(), r.id));
                    }
                }
            }
        }
    };
    join_all((0..8).map(worker).collect()).await;
    let claimed = claimed.into_inner().must("claims");
    let mut seen = BTreeSet::new();
    for (owner, id) in &claimed {
        assert!(
            seen.insert(*id),
            "run {id} was claimed twice (again by {owner})"
        );
    }
    assert_eq!(seen, all_runs, "every run was claimed");
}

/// `update_run_progress` is the lease holder's alone.
pub async fn exec_run_progress_needs_lease(store: &dyn Store) {
    let run_id = create_run(store, "pending", 2, at(0)).await;
    assert_conflict(
        store
            .update_run_progress(run_id, "a", "running", 0, None, at(1))
            .await,
        "progress on an unclaimed run",
    );
    store.claim_runs("a", at(0), at(30), 10).await.must("claim");
    assert_conflict(
        store
            .update_run_progress(run_id, "b", "running", 0, None, at(1))
            .await,
        "progress by a replica without the lease",
    );
    assert_not_found(
        store
            .update_run_progress(9999, "a", "running", 0, None, at(1))
            .await,
        "progress on an unknown run",
    );
    store
        .update_run_progress(run_id, "a", "running", 1, Some("第二步"), at(2))
        .await
        .must("progress by the holder");
    let run = store.run(run_id).await.must("run").must("run");
    assert_eq!(run.status, "running");
    assert_eq!(run.current_step, 1);
    assert_eq!(run.message.as_deref(), Some("第二步"));
    assert_eq!(
        run.started_at,
        Some(at(2)),
        "the first progress starts the run"
    );
    assert_eq!(run.finished_at, None);
    assert_eq!(run.updated_at, at(2));
    store
        .update_run_progress(run_id, "a", "failed", 1, Some("失败"), at(3))
        .await
        .must("the run fails");
    let run = store.run(run_id).await.must("run").must("run");
    assert_eq!(run.started_at, Some(at(2)), "the start time stays");
    assert_eq!(run.finished_at, Some(at(3)), "a final status ends the run");
    // Once the run is no longer pending or running (a person cancelled or paused it, or it
    // ended), the engine's bookkeeping cannot overwrite it, even by the lease holder.
    assert_conflict(
        store
            .update_run_progress(run_id, "a", "running", 2, None, at(4))
            .await,
        "progress over a final status",
    );
    let run = store.run(run_id).await.must("run").must("run");
    assert_eq!(run.status, "failed");
}

/// `mark_tasks` moves the run's tasks in the given statuses, and only those.
pub async fn exec_mark_tasks(store: &dyn Store) {
    let run_id = create_run(store, "running", 1, at(0)).await;
    let other = create_run(store, "running", 1, at(0)).await;
    let statuses = ["running", "dispatched", "succeeded", "pending"];
    let mut new_tasks: Vec<TaskRow> = statuses
        .iter()
        .map(|s| TaskRow {
            status: (*s).to_string(),
            ..task_row(run_id, 0, "local")
        })
        .collect();
    new_tasks.push(TaskRow {
        status: "running".into(),
        ..task_row(other, 0, "local")
    });
    let tasks = store.insert_tasks(&new_tasks).await.must("insert tasks");
    let moved = store
        .mark_tasks(
            run_id,
            &["dispatched", "running"],
            "unknown",
            "exec.lost",
            at(5),
        )
        .await
        .must("mark_tasks");
    assert_eq!(moved, 2);
    let read = store.tasks(run_id, None).await.must("tasks");
    let got: Vec<(&str, Option<&str>)> = read
        .iter()
        .map(|t| (t.status.as_str(), t.error_code.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("unknown", Some("exec.lost")),
            ("unknown", Some("exec.lost")),
            ("succeeded", None),
            ("pending", None)
        ]
    );
    assert_eq!(read[0].finished_at, Some(at(5)));
    assert_eq!(
        read[2].finished_at, None,
        "untouched tasks keep their fields"
    );
    assert_eq!(
        store
            .task(tasks[4].id)
            .await
            .must("task")
            .must("task")
            .status,
        "running",
        "another run's tasks are untouched"
    );
    assert_eq!(
        store
            .mark_tasks(run_id, &[], "unknown", "exec.lost", at(6))
            .await
            .must("no statuses"),
        0
    );
}

/// Agents: unique ids and fingerprints, touched by heartbeats, revoked once.
pub async fn exec_agents_revoke_touch(store: &dyn Store) {
    let mut tx = store.begin().await.must("begin");
    tx.insert_agent(&agent_row("ag-2", "web01", at(0)))
        .await
        .must("agent 2");
    tx.insert_agent(&agent_row("ag-1", "web02", at(0)))
        .await
        .must("agent 1");
    tx.insert_agent(&agent_row("ag-3", "web01", at(0)))
        .await
        .must("agent 3");
    commit_exec(tx, "agent.enroll", at(0)).await;
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_agent(&agent_row("ag-1", "db01", at(1))).await,
        "a duplicate agent id",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    let same_cert = AgentRow {
        cert_fingerprint: "fp-ag-1".into(),
        ..agent_row("ag-9", "db01", at(1))
    };
    assert_conflict(
        tx.insert_agent(&same_cert).await,
        "a duplicate certificate fingerprint",
    );
    drop(tx);

    let order: Vec<String> = store
        .agents()
        .await
        .must("agents")
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(order, ["ag-2", "ag-3", "ag-1"], "by hostname, then id");

    let facts = json!({"os": "debian", "cpus": 8, "主机": "web01"});
    store
        .touch_agent("ag-1", at(10), Some(&facts), Some("0.2.0"))
        .await
        .must("touch");
    store
        .touch_agent("ag-1", at(5), None, None)
        .await
        .must("late heartbeat");
    let a = store.agent("ag-1").await.must("agent").must("ag-1");
    assert_eq!(a.last_seen_at, Some(at(10)), "last seen never moves back");
    assert_eq!(a.facts, facts);
    assert_eq!(a.version, "0.2.0", "version kept when not reported");
    assert_not_found(
        store.touch_agent("nope", at(10), None, None).await,
        "touching an unknown agent",
    );
    store
        .touch_agents(&[
            ("ag-1".into(), at(12)),
            ("ag-2".into(), at(3)),
            ("nope".into(), at(12)),
        ])
        .await
        .must("coalesced heartbeats");
    store
        .touch_agents(&[("ag-1".into(), at(11))])
        .await
        .must("late coalesced heartbeat");
    store.touch_agents(&[]).await.must("no heartbeats");
    let a = store.agent("ag-1").await.must("agent").must("ag-1");
    assert_eq!(a.last_seen_at, Some(at(12)), "coalesced: never moves back");
    assert_eq!(a.facts, facts, "coalesced heartbeats keep the facts");
    assert!(store.agent("nope").await.must("unknown").is_none());

    let mut tx = store.begin().await.must("begin");
    tx.revoke_agent("ag-1", "bob", at(20)).await.must("revoke");
    commit_exec(tx, "agent.revoke", at(20)).await;
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.revoke_agent("ag-1", "carol", at(21)).await,
        "revoking twice",
    );
    assert_not_found(
        tx.revoke_agent("nope", "carol", at(21)).await,
        "revoking an unknown agent",
    );
    drop(tx);
    let a = store.agent("ag-1").await.must("agent").must("ag-1");
    assert_eq!(a.revoked_at, Some(at(20)));
    assert_eq!(a.revoked_by.as_deref(), Some("bob"));
    assert_eq!(store.agent("nope").await.must("agent"), None);
}

/// Enrolment tokens: used once, refused when expired, listed newest first.
pub async fn exec_enroll_token_once(store: &dyn Store) {
    let mut tx = store.begin().await.must("begin");
    tx.insert_enroll_token(&enroll_token_row("h1", at(0), at(600)))
        .await
        .must("token 1");
    tx.insert_enroll_token(&enroll_token_row("h2", at(1), at(60)))
        .await
        .must("token 2");
    commit_exec(tx, "agent.token", at(1)).await;
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_enroll_token(&enroll_token_row("h1", at(2), at(60)))
            .await,
        "a duplicate token hash",
    );
    drop(tx);

    let mut tx = store.begin().await.must("begin");
    assert!(
        tx.use_enroll_token("h1", "ag-1", at(10)).await.must("use"),
        "a fresh token is accepted"
    );
    assert!(
        !tx.use_enroll_token("h1", "ag-2", at(11)).await.must("use"),
        "a used token is refused"
    );
    assert!(
        !tx.use_enroll_token("h2", "ag-3", at(60)).await.must("use"),
        "an expired token is refused"
    );
    assert!(
        !tx.use_enroll_token("nope", "ag-3", at(10))
            .await
            .must("use"),
        "an unknown token is refused"
    );
    commit_exec(tx, "agent.enroll", at(11)).await;

    let h1 = store.enroll_token("h1").await.must("token").must("h1");
    assert_eq!(
        h1,
        EnrollTokenRow {
            used_at: Some(at(10)),
            agent_id: Some("ag-1".into()),
            ..enroll_token_row("h1", at(0), at(600))
        }
    );
    let h2 = store.enroll_token("h2").await.must("token").must("h2");
    assert_eq!(h2.used_at, None);
    assert_eq!(store.enroll_token("nope").await.must("token"), None);
    let listed: Vec<String> = store
        .enroll_tokens()
        .await
        .must("tokens")
        .into_iter()
        .map(|t| t.hash)
        .collect();
    assert_eq!(listed, ["h2", "h1"], "newest first");
}

/// SSH credentials and pinned host keys: inserted or replaced, deleted once.
pub async fn exec_ssh_credentials_and_host_keys(store: &dyn Store) {
    let mut tx = store.begin().await.must("begin");
    tx.put_ssh_credential(&ssh_credential_row("prod-ops", "sealed:1", at(0)))
        .await
        .must("credential");
    tx.put_ssh_credential(&ssh_credential_row("dev-ops", "sealed:2", at(0)))
        .await
        .must("credential");
    tx.pin_host_key(&host_key_row("10.0.0.5", 22, "AAAA1", at(0)))
        .await
        .must("pin");
    tx.pin_host_key(&host_key_row("10.0.0.5", 2222, "AAAA2", at(0)))
        .await
        .must("pin");
    tx.pin_host_key(&host_key_row("10.0.0.4", 22, "AAAA3", at(0)))
        .await
        .must("pin");
    commit_exec(tx, "ssh.setup", at(0)).await;

    let mut tx = store.begin().await.must("begin");
    let replaced = SshCredentialRow {
        kind: "password".into(),
        ..ssh_credential_row("prod-ops", "sealed:3", at(5))
    };
    tx.put_ssh_credential(&replaced).await.must("replace");
    let repinned = host_key_row("10.0.0.5", 22, "BBBB", at(5));
    tx.pin_host_key(&repinned).await.must("repin");
    assert!(tx.delete_ssh_credential("dev-ops").await.must("delete"));
    assert!(
        !tx.delete_ssh_credential("dev-ops")
            .await
            .must("delete twice")
    );
    assert!(tx.unpin_host_key("10.0.0.5", 2222).await.must("unpin"));
    assert!(
        !tx.unpin_host_key("10.0.0.5", 2222)
            .await
            .must("unpin twice")
    );
    commit_exec(tx, "ssh.change", at(5)).await;

    assert_eq!(
        store.ssh_credentials().await.must("credentials"),
        vec![replaced.clone()]
    );
    assert_eq!(
        store.ssh_credential("prod-ops").await.must("credential"),
        Some(replaced)
    );
    assert_eq!(
        store.ssh_credential("dev-ops").await.must("credential"),
        None
    );
    assert_eq!(
        store.host_key("10.0.0.5", 22).await.must("host key"),
        Some(repinned.clone())
    );
    assert_eq!(
        store.host_key("10.0.0.5", 2222).await.must("host key"),
        None
    );
    assert_eq!(
        store.host_keys().await.must("host keys"),
        vec![host_key_row("10.0.0.4", 22, "AAAA3", at(0)), repinned],
        "by host, then port"
    );
}

/// Settings: a JSON value by key, replaced in place.
pub async fn exec_settings(store: &dyn Store) {
    assert_eq!(store.setting("danger.rules").await.must("setting"), None);
    let rules =
        json!([{"pattern": "rm -rf /", "level": "block"}, {"pattern": "重启", "level": "warn"}]);
    let mut tx = store.begin().await.must("begin");
    tx.put_setting(&setting_row("danger.rules", rules.clone(), at(0)))
        .await
        .must("put");
    tx.put_setting(&setting_row("other", json!(42), at(0)))
        .await
        .must("put");
    commit_exec(tx, "settings.update", at(0)).await;
    assert_eq!(
        store.setting("danger.rules").await.must("setting"),
        Some(setting_row("danger.rules", rules, at(0)))
    );
    let mut tx = store.begin().await.must("begin");
    let replaced = SettingRow {
        updated_by: "bob".into(),
        ..setting_row("danger.rules", json!({"disabled": true}), at(5))
    };
    tx.put_setting(&replaced).await.must("replace");
    commit_exec(tx, "settings.update", at(5)).await;
    assert_eq!(
        store.setting("danger.rules").await.must("setting"),
        Some(replaced)
    );
    assert_eq!(
        store
            .setting("other")
            .await
            .must("setting")
            .map(|s| s.value),
        Some(json!(42))
    );
}

/// Some of everything the engine keeps (for the export/import cases).
async fn populate_exec(store: &dyn Store) {
    let mut tx = store.begin().await.must("begin");
    let script = tx
        .insert_script(&script_row("backup", at(40)))
        .await
        .must("script");
    tx.insert_script_version(&script_version_row(script, 1, at(40)))
        .await
        .must("version");
    tx.set_script_version_state(script, 1, "online", "bob", at(41))
        .await
        .must("online");
    let plan = tx
        .insert_plan(&plan_row("deploy", at(41)))
        .await
        .must("plan");
    tx.insert_plan_version(&plan_version_row(plan, 1, at(41)))
        .await
        .must("plan version");
    let approval = tx
        .insert_approval(&approval_row("run.start", "1", at(42)))
        .await
        .must("approval");
    tx.decide_approval(approval, "approved", "bob", at(43), Some("同意"))
        .await
        .must("decide");
    tx.insert_approval(&approval_row("danger.approval", "1", at(43)))
        .await
        .must("pending approval");
    let run = RunRow {
        kind: "plan".into(),
        plan_id: Some(plan),
        plan_version: Some(1),
        secrets_sealed: Some("sealed:xyz".into()),
        ..run_row("pending", at(44))
    };
    let run_id = tx
        .insert_run(&run, &[step_row(0, "script"), step_row(1, "approval")])
        .await
        .must("run");
    tx.insert_agent(&agent_row("ag-1", "web01", at(44)))
        .await
        .must("agent");
    tx.insert_agent(&agent_row("ag-2", "web02", at(44)))
        .await
        .must("agent");
    tx.revoke_agent("ag-2", "bob", at(45)).await.must("revoke");
    tx.insert_enroll_token(&enroll_token_row("h1", at(44), at(600)))
        .await
        .must("token");
    tx.insert_enroll_token(&enroll_token_row("h2", at(44), at(600)))
        .await
        .must("token");
    tx.use_enroll_token("h1", "ag-1", at(45)).await.must("use");
    tx.put_ssh_credential(&ssh_credential_row("prod-ops", "sealed:1", at(45)))
        .await
        .must("credential");
    tx.pin_host_key(&host_key_row("10.0.0.5", 22, "AAAA", at(45)))
        .await
        .must("pin");
    tx.put_setting(&setting_row(
        "danger.rules",
        json!([{"pattern": "rm -rf"}]),
        at(45),
    ))
    .await
    .must("setting");
    commit_exec(tx, "exec.populate", at(45)).await;

    store
        .touch_agent(
            "ag-1",
            at(46),
            Some(&json!({"os": "debian"})),
            Some("0.2.0"),
        )
        .await
        .must("touch");
    store
        .claim_runs("replica-a", at(46), at(100), 10)
        .await
        .must("claim");
    store
        .update_run_progress(run_id, "replica-a", "running", 0, None, at(46))
        .await
        .must("progress");
    let tasks = store
        .insert_tasks(&[
            task_row(run_id, 0, "local"),
            task_row(run_id, 0, "agent:web01"),
        ])
        .await
        .must("tasks");
    let mut t = tasks[0].clone();
    t.status = "succeeded".into();
    t.exit_code = Some(0);
    t.stdout_bytes = 9;
    t.started_at = Some(at(46));
    t.finished_at = Some(at(47));
    store.update_task(&t).await.must("task");
    store
        .append_output(&[
            chunk(t.id, 0, "stdout", b"ok\n", at(46)),
            chunk(t.id, 1, "stderr", &[0xff, 0x00, 0x80], at(47)),
        ])
        .await
        .must("output");
}

// ---------------------------------------------------------------- export and import

/// Fills a store with some of everything a dump holds (and a session, which it does not).
pub async fn populate(store: &dyn Store) {
    let mut roles = authz::builtin_roles();
    roles.push(custom_role());
    upsert_roles(store, &roles).await;
    let alice = create_user(store, "alice", at(1)).await;
    let bob = create_user(store, "bob", at(2)).await;
    let mut tx = store.begin().await.must("begin");
    let carol = tx
        .insert_user(&NewUserRow {
            kind: UserKind::Outsourced {
                vendor: "外包".into(),
                contract_end: NaiveDate::from_ymd_opt(2027, 1, 31).must("date"),
            },
            ..new_user_row("carol", at(3))
        })
        .await
        .must("insert carol");
    tx.set_mfa(alice, Some("JBSWY3DPEHPK3PXP"), true)
        .await
        .must("mfa");
    tx.set_mfa_last_step(alice, 58_000_000).await.must("step");
    tx.replace_recovery_codes(alice, &["r2".into(), "r1".into()])
        .await
        .must("codes");
    tx.set_login_state(bob, 2, Some(at(500)))
        .await
        .must("login state");
    tx.set_password(bob, "$argon2id$bob2", false, at(4))
        .await
        .must("password");
    let grants = [
        (alice, authz::PLATFORM_ADMIN, Scope::Global),
        (
            bob,
            authz::AUTOMATION_OPERATOR,
            Scope::Environment("prod".into()),
        ),
        (bob, "dba_prod", Scope::BusinessSystem("集中交易".into())),
        (carol, authz::AUDITOR, Scope::Global),
    ];
    for (user_id, role, scope) in grants {
        let b = RoleBinding {
            user_id,
            role: role.into(),
            scope,
        };
        tx.insert_binding(&b, at(5)).await.must("binding");
    }
    for (name, zones) in [("prod", vec!["交易区".to_string()]), ("dev", vec![])] {
        let e = Environment {
            name: name.into(),
            description: format!("{name} 环境"),
            security_zones: zones,
            created_at: at(6),
        };
        tx.upsert_environment(&e).await.must("environment");
    }
    let t = tx
        .insert_token(&token("tok-1", alice, at(7)))
        .await
        .must("token");
    tx.insert_token(&token("tok-2", bob, at(7)))
        .await
        .must("token");
    tx.revoke_token(t, at(8)).await.must("revoke");
    tx.insert_session(&session("sess-1", alice, at(9)))
        .await
        .must("session");
    tx.commit(
        vec![
            draft("admin", "user.create", Outcome::Success).object(carol),
            draft("admin", "role.grant", Outcome::Success).after(json!({"n": 4})),
        ],
        at(9),
    )
    .await
    .must("commit");
    store.touch_token(t, at(9)).await.must("touch");
    for i in 10..15 {
        audit_only(
            store,
            draft("bob", "auth.login", Outcome::Failure).detail("试错"),
            at(i),
        )
        .await;
    }
    populate_exec(store).await;
    schedule::populate_schedules(store).await;
    assessment::populate_assessments(store).await;
    let key = CheckpointKey::generate();
    let head = store.audit_head().await.must("head").must("head");
    store
        .insert_checkpoint(&key.sign(head.0, &head.1, at(20)))
        .await
        .must("checkpoint");
}

/// Export → import into an empty store → export gives an equal dump; the imported chain verifies
/// and continues; ids continue after the imported ones; sessions are not carried.
pub async fn export_import_round_trip(a: &dyn Store, b: &dyn Store) {
    populate(a).await;
    let dump = a.export_all().await.must("export");
    assert_eq!(dump.format, 1);
    assert_eq!(dump.users.len(), 3);
    assert!(dump.users.iter().any(|u| u.recovery_codes == ["r1", "r2"]));
    assert_eq!(dump.audit.len(), 13);
    assert_eq!(dump.checkpoints.len(), 1);
    let x = &dump.exec;
    let counts = [
        x.scripts.len(),
        x.script_versions.len(),
        x.plans.len(),
        x.plan_versions.len(),
        x.approvals.len(),
        x.runs.len(),
        x.steps.len(),
        x.tasks.len(),
        x.output.len(),
        x.agents.len(),
        x.enroll_tokens.len(),
        x.ssh_credentials.len(),
        x.host_keys.len(),
        x.settings.len(),
        x.schedules.len(),
        x.schedule_fires.len(),
    ];
    assert_eq!(
        counts,
        [1, 1, 1, 1, 2, 1, 2, 2, 2, 2, 2, 1, 1, 1, 2, 3],
        "the engine's data is exported"
    );
    assert_eq!(
        x.output[1].data,
        [0xff, 0x00, 0x80],
        "output bytes verbatim"
    );
    assert_eq!(
        x.runs[0].owner.as_deref(),
        Some("replica-a"),
        "leases are kept"
    );
    let y = &dump.assessments;
    assert_eq!(
        [
            y.assessments.len(),
            y.items.len(),
            y.answers.len(),
            y.evidence.len(),
            y.actions.len()
        ],
        [1, 1, 2, 1, 1],
        "the assessments are exported"
    );
    assert_eq!(
        y.evidence[0].content.as_deref(),
        Some(&[0xff_u8, 0x00, 0x80][..]),
        "evidence bytes verbatim"
    );
    b.import_all(&dump).await.must("import");
    let again = b.export_all().await.must("export after import");
    assert_eq!(
        again, dump,
        "the dump survives export → import → export unchanged"
    );
    assert_eq!(
        b.audit_head().await.must("head"),
        a.audit_head().await.must("head")
    );
    assert_eq!(
        b.session("sess-1").await.must("session"),
        None,
        "sessions are not exported"
    );
    verified_chain(b).await;

    let next = audit_only(
        b,
        draft("system", "test.after_import", Outcome::Success),
        at(30),
    )
    .await;
    assert_eq!(
        next[0].seq, 14,
        "the chain continues after the imported head"
    );
    verified_chain(b).await;
    let max_user = dump.users.iter().map(|u| u.user.id).max().must("users");
    assert!(
        create_user(b, "dave", at(31)).await > max_user,
        "user ids continue"
    );
    let mut tx = b.begin().await.must("begin");
    let max_token = dump.tokens.iter().map(|t| t.id).max().must("tokens");
    let id = tx
        .insert_token(&token("tok-3", max_user, at(32)))
        .await
        .must("token");
    tx.commit(
        vec![draft("admin", "token.create", Outcome::Success)],
        at(32),
    )
    .await
    .must("commit");
    assert!(id > max_token, "token ids continue");

    // The engine's ids continue too.
    let mut tx = b.begin().await.must("begin");
    let script = tx
        .insert_script(&script_row("after-import", at(33)))
        .await
        .must("script");
    let plan = tx
        .insert_plan(&plan_row("after-import", at(33)))
        .await
        .must("plan");
    let approval = tx
        .insert_approval(&approval_row("run.start", "9", at(33)))
        .await
        .must("approval");
    let run = tx
        .insert_run(&run_row("pending", at(33)), &[step_row(0, "command")])
        .await
        .must("run");
    let sched = tx
        .insert_schedule(&schedule::schedule_row("after-import", plan, at(33)))
        .await
        .must("schedule");
    let fire = tx
        .insert_fires(&[schedule::fire_row(sched, at(33), "started")])
        .await
        .must("fire");
    let assessment = tx
        .insert_assessment(&assessment::assessment_row("after-import"))
        .await
        .must("assessment");
    let evidence = tx
        .insert_evidence(&assessment::evidence_row(assessment, "link", None), None)
        .await
        .must("evidence");
    let action = tx
        .insert_improvement_action(&assessment::action_row(assessment))
        .await
        .must("action");
    commit_exec(tx, "exec.after_import", at(33)).await;
    let task = store_task(b, run).await;
    let y = &dump.assessments;
    assert!(
        assessment > y.assessments.iter().map(|r| r.id).max().unwrap_or(0)
            && evidence > y.evidence.iter().map(|r| r.row.id).max().unwrap_or(0)
            && action > y.actions.iter().map(|r| r.id).max().unwrap_or(0),
        "assessment, evidence and action ids continue"
    );
    let max = |v: Vec<i64>| v.into_iter().max().must("ids");
    let x = &dump.exec;
    assert!(
        script > max(x.scripts.iter().map(|r| r.id).collect()),
        "script ids continue"
    );
    assert!(
        plan > max(x.plans.iter().map(|r| r.id).collect()),
        "plan ids continue"
    );
    assert!(
        approval > max(x.approvals.iter().map(|r| r.id).collect()),
        "approval ids continue"
    );
    assert!(
        run > max(x.runs.iter().map(|r| r.id).collect()),
        "run ids continue"
    );
    assert!(
        task > max(x.tasks.iter().map(|r| r.id).collect()),
        "task ids continue"
    );
    assert!(
        sched > max(x.schedules.iter().map(|r| r.id).collect()),
        "schedule ids continue"
    );
    assert!(
        fire.first().copied().unwrap_or(0) > max(x.schedule_fires.iter().map(|r| r.id).collect()),
        "schedule fire ids continue"
    );
}

/// Inserts one task for step 0 of `run`; returns its id.
async fn store_task(store: &dyn Store, run: i64) -> i64 {
    let tasks = store
        .insert_tasks(&[task_row(run, 0, "local")])
        .await
        .must("task");
    tasks.first().must("the task").id
}

/// Import refuses a database that holds anything, and leaves it as it was.
pub async fn import_refuses_non_empty(a: &dyn Store, b: &dyn Store) {
    populate(a).await;
    let dump = a.export_all().await.must("export");
    assert_conflict(
        a.import_all(&dump).await,
        "importing into the database it came from",
    );

    audit_only(b, draft("system", "test.only", Outcome::Success), at(0)).await;
    let before = b.export_all().await.must("export b");
    assert_conflict(
        b.import_all(&dump).await,
        "importing into a database with an audit record",
    );
    assert_eq!(
        b.export_all().await.must("export b"),
        before,
        "the refused import wrote nothing"
    );
}
