//! Conformance cases for scheduled job runs ([`crate::schedule`]).
//!
//! Behaviour pinned down beyond the signatures: a duplicate schedule name or a schedule of an
//! unknown plan is a `Conflict`; changes to an unknown schedule or fire are `NotFound`; deleting a
//! schedule deletes its fires; `due_schedules` takes enabled schedules whose `next_fire_at` is at
//! or before `now` (a schedule without one is never due), by (next_fire_at, id); `claim_fire`
//! succeeds once per expected `last_fire_at` (NULL-safe) and fails after an edit moved
//! `updated_at`, also when many claim at once.

use chrono::{DateTime, Duration};
use serde_json::json;

use ballast_core::audit::Outcome;
use chrono::Utc;

use super::plan_version_row;
use super::{Must, assert_conflict, assert_not_found, at, draft, join_all, plan_row};
use crate::schedule::{FireClaim, FireQuery, ScheduleFireRow, ScheduleRow};
use crate::{Store, StoreError};

pub(super) fn schedule_row(name: &str, plan_id: i64, when: DateTime<Utc>) -> ScheduleRow {
    ScheduleRow {
        id: 0,
        name: name.to_string(),
        plan_id,
        plan_version: None,
        environment: "test".to_string(),
        expression: "30 8 * * * @trading tz=Asia/Shanghai".to_string(),
        calendar: "sse".to_string(),
        vars: json!({"hosts": "local", "token": "******"}),
        secrets_sealed: Some("sealed:abc".to_string()),
        catch_up: "skip".to_string(),
        enabled: true,
        owner: "alice".to_string(),
        created_by: "alice".to_string(),
        created_at: when,
        updated_by: "alice".to_string(),
        updated_at: when,
        last_fire_at: None,
        next_fire_at: Some(when + Duration::hours(1)),
    }
}

pub(super) fn fire_row(
    schedule_id: i64,
    scheduled: DateTime<Utc>,
    outcome: &str,
) -> ScheduleFireRow {
    ScheduleFireRow {
        id: 0,
        schedule_id,
        scheduled_at: scheduled,
        handled_at: scheduled + Duration::seconds(1),
        outcome: outcome.to_string(),
        run_id: None,
        message: format!("{outcome} 测试"),
    }
}

/// Creates a plan with one version; returns its id.
pub(super) async fn create_plan(store: &dyn Store, name: &str) -> i64 {
    let mut tx = store.begin().await.must("begin");
    let id = tx.insert_plan(&plan_row(name, at(0))).await.must("plan");
    tx.insert_plan_version(&plan_version_row(id, 1, at(0)))
        .await
        .must("plan version");
    commit(tx, "plan.save").await;
    id
}

async fn commit(tx: Box<dyn crate::Tx>, action: &str) {
    commit_at(tx, action, at(0)).await;
}

async fn commit_at(tx: Box<dyn crate::Tx>, action: &str, when: DateTime<Utc>) {
    tx.commit(vec![draft("alice", action, Outcome::Success)], when)
        .await
        .must(action);
}

async fn insert(store: &dyn Store, s: &ScheduleRow) -> crate::Result<i64> {
    let mut tx = store.begin().await.must("begin");
    let id = tx.insert_schedule(s).await?;
    commit(tx, "schedule.create").await;
    Ok(id)
}

fn names(rows: &[ScheduleRow]) -> Vec<&str> {
    rows.iter().map(|s| s.name.as_str()).collect()
}

/// Schedules: unique names, plans that exist, read back as written, replaced, listed when due,
/// deleted with their fires.
pub async fn schedules_create_update_delete(store: &dyn Store) {
    let plan = create_plan(store, "deploy").await;
    let nightly = schedule_row("nightly", plan, at(0));
    let id = insert(store, &nightly).await.must("insert nightly");
    let read = store.schedule(id).await.must("read").must("nightly");
    assert_eq!(
        read,
        ScheduleRow {
            id,
            ..nightly.clone()
        }
    );
    assert_eq!(
        store.schedule_by_name("nightly").await.must("by name"),
        Some(read.clone())
    );
    assert_eq!(store.schedule_by_name("none").await.must("by name"), None);
    assert_eq!(store.schedule(id + 100).await.must("unknown"), None);
    assert_conflict(insert(store, &nightly).await, "a duplicate schedule name");
    assert_conflict(
        insert(store, &schedule_row("orphan", plan + 100, at(0))).await,
        "a schedule of a plan that does not exist",
    );

    let early = ScheduleRow {
        next_fire_at: Some(at(10)),
        plan_version: Some(1),
        ..schedule_row("early", plan, at(1))
    };
    let early_id = insert(store, &early).await.must("insert early");
    let off = ScheduleRow {
        enabled: false,
        next_fire_at: Some(at(5)),
        ..schedule_row("off", plan, at(1))
    };
    insert(store, &off).await.must("insert off");
    let stuck = ScheduleRow {
        next_fire_at: None,
        ..schedule_row("stuck", plan, at(1))
    };
    insert(store, &stuck).await.must("insert stuck");
    assert_eq!(
        names(&store.schedules().await.must("list")),
        ["early", "nightly", "off", "stuck"],
        "by name"
    );
    assert_eq!(
        names(&store.due_schedules(at(3600), 10).await.must("due")),
        ["early", "nightly"],
        "enabled, next fire at or before now, soonest first; never one without a next fire"
    );
    assert_eq!(
        names(&store.due_schedules(at(3599), 10).await.must("due")),
        ["early"]
    );
    assert!(store.due_schedules(at(9), 10).await.must("due").is_empty());
    assert_eq!(store.due_schedules(at(3600), 1).await.must("due").len(), 1);

    // Update replaces the definition, keeps created_* and last_fire_at.
    let mut tx = store.begin().await.must("begin");
    tx.claim_fire(&FireClaim {
        schedule_id: id,
        expected_last_fire_at: None,
        expected_updated_at: at(0),
        last_fire_at: Some(at(3600)),
        next_fire_at: Some(at(7200)),
    })
    .await
    .must("claim");
    commit(tx, "schedule.fire").await;
    let changed = ScheduleRow {
        id,
        name: "nightly-2".into(),
        plan_id: plan,
        plan_version: Some(1),
        environment: "prod".into(),
        expression: "0 18 * * * @last-trading-day-of-month tz=Asia/Shanghai".into(),
        calendar: "szse".into(),
        vars: json!({"hosts": "agent:*"}),
        secrets_sealed: None,
        catch_up: "run_once".into(),
        enabled: false,
        owner: "bob".into(),
        created_by: "mallory".into(),
        created_at: at(99),
        updated_by: "bob".into(),
        updated_at: at(50),
        last_fire_at: None,
        next_fire_at: Some(at(90_000)),
    };
    let mut tx = store.begin().await.must("begin");
    tx.update_schedule(&changed).await.must("update");
    commit(tx, "schedule.update").await;
    let read = store.schedule(id).await.must("read").must("updated");
    assert_eq!(
        read,
        ScheduleRow {
            created_by: "alice".into(),
            created_at: at(0),
            last_fire_at: Some(at(3600)),
            ..changed.clone()
        }
    );
    let mut tx = store.begin().await.must("begin");
    assert_not_found(
        tx.update_schedule(&ScheduleRow {
            id: id + 100,
            ..changed.clone()
        })
        .await,
        "updating an unknown schedule",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.update_schedule(&ScheduleRow {
            id: early_id,
            ..changed.clone()
        })
        .await,
        "renaming onto an existing name",
    );
    drop(tx);

    // Delete removes the schedule and its history.
    let mut tx = store.begin().await.must("begin");
    tx.insert_fires(&[
        fire_row(id, at(3600), "started"),
        fire_row(early_id, at(10), "missed"),
    ])
    .await
    .must("fires");
    commit(tx, "schedule.fire").await;
    let mut tx = store.begin().await.must("begin");
    assert!(tx.delete_schedule(id).await.must("delete"));
    assert!(!tx.delete_schedule(id).await.must("delete again"));
    commit(tx, "schedule.delete").await;
    assert_eq!(store.schedule(id).await.must("read"), None);
    let left = store
        .fires(&FireQuery {
            limit: 10,
            ..FireQuery::default()
        })
        .await
        .must("fires");
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].schedule_id, early_id,
        "only the deleted one's fires go"
    );
}

/// Fires: inserted in order, listed newest first with filters, the newest per schedule,
/// finished once claimed; a fire of an unknown schedule is refused.
pub async fn schedule_fires_recorded_and_listed(store: &dyn Store) {
    let plan = create_plan(store, "deploy").await;
    let a = insert(store, &schedule_row("a", plan, at(0)))
        .await
        .must("a");
    let b = insert(store, &schedule_row("b", plan, at(0)))
        .await
        .must("b");
    let mut tx = store.begin().await.must("begin");
    let ids = tx
        .insert_fires(&[
            fire_row(a, at(60), "missed"),
            fire_row(a, at(120), "missed"),
            fire_row(a, at(180), "caught_up"),
            fire_row(b, at(60), "skipped_calendar"),
            fire_row(b, at(120), "denied"),
        ])
        .await
        .must("insert fires");
    commit(tx, "schedule.fire").await;
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in input order");
    let q = |schedule_id, outcomes: &[&str], before_id, limit| FireQuery {
        schedule_id,
        outcomes: outcomes.iter().map(|o| o.to_string()).collect(),
        before_id,
        limit,
    };
    let of = |v: Vec<ScheduleFireRow>| v.into_iter().map(|f| f.id).collect::<Vec<_>>();
    let all = store.fires(&q(None, &[], None, 100)).await.must("all");
    assert_eq!(of(all.clone()), [ids[4], ids[3], ids[2], ids[1], ids[0]]);
    assert_eq!(
        all[4],
        ScheduleFireRow {
            id: ids[0],
            ..fire_row(a, at(60), "missed")
        }
    );
    assert_eq!(
        of(store.fires(&q(Some(a), &[], None, 100)).await.must("a")),
        [ids[2], ids[1], ids[0]]
    );
    assert_eq!(
        of(store
            .fires(&q(None, &["missed", "denied"], None, 100))
            .await
            .must("report")),
        [ids[4], ids[1], ids[0]]
    );
    assert_eq!(
        of(store
            .fires(&q(None, &["missed", "denied"], Some(ids[4]), 1))
            .await
            .must("page")),
        [ids[1]]
    );
    assert!(
        store
            .fires(&q(None, &[], None, 0))
            .await
            .must("0")
            .is_empty()
    );
    assert_eq!(
        of(store.latest_fires().await.must("latest")),
        [ids[2], ids[4]],
        "the newest per schedule, by schedule"
    );

    store
        .finish_fire(ids[2], "started", Some(42), "运行 #42", at(200))
        .await
        .must("finish");
    let f = store.fires(&q(Some(a), &[], None, 1)).await.must("a");
    assert_eq!(
        (
            f[0].outcome.as_str(),
            f[0].run_id,
            f[0].message.as_str(),
            f[0].handled_at
        ),
        ("started", Some(42), "运行 #42", at(200))
    );
    assert_not_found(
        store
            .finish_fire(ids[4] + 100, "failed", None, "", at(200))
            .await,
        "finishing an unknown fire",
    );
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_fires(&[fire_row(b + 100, at(60), "missed")])
            .await,
        "a fire of an unknown schedule",
    );
}

/// `claim_fire` is a compare-and-set on (last_fire_at, updated_at).
pub async fn schedule_claim_fire_compare_and_set(store: &dyn Store) {
    let plan = create_plan(store, "deploy").await;
    let id = insert(store, &schedule_row("s", plan, at(0)))
        .await
        .must("s");
    let claim = |expected_last, expected_updated, last, next| FireClaim {
        schedule_id: id,
        expected_last_fire_at: expected_last,
        expected_updated_at: expected_updated,
        last_fire_at: last,
        next_fire_at: next,
    };
    let try_claim = |c: FireClaim| async move {
        let mut tx = store.begin().await.must("begin");
        let won = tx.claim_fire(&c).await.must("claim");
        if won {
            commit(tx, "schedule.fire").await;
        }
        won
    };
    assert!(try_claim(claim(None, at(0), Some(at(60)), Some(at(120)))).await);
    assert!(
        !try_claim(claim(None, at(0), Some(at(60)), Some(at(120)))).await,
        "the same occurrence is claimed once"
    );
    assert!(
        !try_claim(claim(Some(at(60)), at(1), Some(at(120)), Some(at(180)))).await,
        "a stale updated_at fails"
    );
    let s = store.schedule(id).await.must("read").must("s");
    assert_eq!(
        (s.last_fire_at, s.next_fire_at),
        (Some(at(60)), Some(at(120)))
    );
    assert!(try_claim(claim(Some(at(60)), at(0), Some(at(120)), None)).await);
    let s = store.schedule(id).await.must("read").must("s");
    assert_eq!((s.last_fire_at, s.next_fire_at), (Some(at(120)), None));
    // An edit moves updated_at: a claim read before it fails.
    let mut tx = store.begin().await.must("begin");
    tx.update_schedule(&ScheduleRow {
        updated_at: at(130),
        next_fire_at: Some(at(180)),
        ..s.clone()
    })
    .await
    .must("update");
    commit(tx, "schedule.update").await;
    assert!(!try_claim(claim(Some(at(120)), at(0), Some(at(180)), Some(at(240)))).await);
    assert!(try_claim(claim(Some(at(120)), at(130), Some(at(180)), Some(at(240)))).await);
    let mut tx = store.begin().await.must("begin");
    assert!(
        !tx.claim_fire(&FireClaim {
            schedule_id: id + 100,
            ..claim(None, at(0), None, None)
        })
        .await
        .must("claim unknown"),
        "an unknown schedule is never claimed"
    );
}

/// Eight replicas racing over twenty occurrences of one schedule, each claiming the occurrence
/// after the `last_fire_at` it read and recording a fire with it: every occurrence is claimed
/// exactly once.
pub async fn schedule_claim_fire_concurrent(store: &dyn Store) {
    let plan = create_plan(store, "deploy").await;
    let id = insert(store, &schedule_row("race", plan, at(0)))
        .await
        .must("race");
    let claimed = std::sync::Mutex::new(Vec::<(usize, DateTime<Utc>)>::new());
    let worker = |n: usize| {
        let claimed = &claimed;
        async move {
            loop {
                let s = store.schedule(id).await.must("read").must("race");
                let last = s.last_fire_at;
                let occurrence = last.map_or(at(60), |l| l + Duration::seconds(60));
                if occurrence > at(60 * 20) {
                    return;
                }
                let mut tx = store.begin().await.must("begin");
                let won = tx
                    .claim_fire(&FireClaim {
                        schedule_id: id,
                        expected_last_fire_at: last,
                        expected_updated_at: s.updated_at,
                        last_fire_at: Some(occurrence),
                        next_fire_at: Some(occurrence + Duration::seconds(60)),
                    })
                    .await
                    .must("claim");
                if !won {
                    continue;
                }
                tx.insert_fires(&[fire_row(id, occurrence, "started")])
                    .await
                    .must("fire");
                match tx
                    .commit(
                        vec![draft("system", "schedule.fire", Outcome::Success)],
                        at(0),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(StoreError::Unavailable(e)) => panic!("commit: {e}"),
                    Err(e) => panic!("commit: {e:?}"),
                }
                if let Ok(mut c) = claimed.lock() {
                    c.push((n, occurrence));
                }
            }
        }
    };
    join_all((0..8).map(worker).collect()).await;
    let claimed = claimed.into_inner().must("claims");
    let mut seen = std::collections::BTreeSet::new();
    for (n, occ) in &claimed {
        assert!(seen.insert(*occ), "{occ} was claimed twice (again by {n})");
    }
    assert_eq!(seen.len(), 20, "every occurrence was claimed");
    let fires = store
        .fires(&FireQuery {
            schedule_id: Some(id),
            limit: 100,
            ..FireQuery::default()
        })
        .await
        .must("fires");
    assert_eq!(fires.len(), 20, "one fire record per occurrence");
}

/// What `populate` adds for the export/import round trip: two schedules, three fires.
pub(super) async fn populate_schedules(store: &dyn Store) {
    let plan = store
        .plan_by_name("deploy")
        .await
        .must("plan")
        .must("the populated plan");
    let mut tx = store.begin().await.must("begin");
    let a = tx
        .insert_schedule(&ScheduleRow {
            last_fire_at: Some(at(46)),
            ..schedule_row("nightly", plan.id, at(45))
        })
        .await
        .must("schedule");
    let b = tx
        .insert_schedule(&ScheduleRow {
            plan_version: Some(1),
            enabled: false,
            secrets_sealed: None,
            next_fire_at: None,
            catch_up: "run_once".into(),
            ..schedule_row("month-end", plan.id, at(45))
        })
        .await
        .must("schedule");
    tx.insert_fires(&[
        fire_row(a, at(46), "started"),
        ScheduleFireRow {
            run_id: Some(1),
            ..fire_row(a, at(47), "caught_up")
        },
        fire_row(b, at(47), "failed"),
    ])
    .await
    .must("fires");
    commit_at(tx, "schedule.populate", at(47)).await;
}
