//! Conformance cases for the CMDB ([`crate::cmdb`]).
//!
//! Behaviour pinned down beyond the signatures: a model version is written once (a second write
//! of the same version is a `Conflict`); an instance of an unknown model, a duplicate (model,
//! environment, name) and a unique value another instance of the same model and environment holds
//! are `Conflict`s, and the failed transaction leaves nothing behind; the value index follows
//! every update (list items one by one); a relation between unknown instances or a duplicate
//! (kind, source, target) is a `Conflict`; deleting an instance deletes its relations and
//! conflicts but keeps its history; history is read oldest first, `until` inclusive, for both
//! ends of a relation; a conflict is decided once.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use ballast_core::audit::Outcome;

use super::{Must, assert_conflict, assert_not_found, at, draft};
use crate::cmdb::{
    CiConflictRow, CiHistoryRow, CiQuery, CiRelationRow, CiRow, CmdbModelRow, RelationSide,
};
use crate::{Store, Tx};

async fn commit(tx: Box<dyn Tx>, action: &str) {
    tx.commit(vec![draft("alice", action, Outcome::Success)], at(0))
        .await
        .must(action);
}

fn model(key: &str, version: i64, when: DateTime<Utc>) -> CmdbModelRow {
    CmdbModelRow {
        key: key.to_string(),
        version,
        definition: json!({"key": key, "name_zh": "主机", "name_en": "Host", "attributes": [], "v": version}),
        builtin: version == 1,
        updated_by: "alice".to_string(),
        updated_at: when,
    }
}

async fn save_model(store: &dyn Store, key: &str) {
    let mut tx = store.begin().await.must("begin");
    tx.save_cmdb_model(&model(key, 1, at(0)), "built in")
        .await
        .must("model");
    commit(tx, "cmdb.model.save").await;
}

fn ci(model: &str, env: &str, name: &str, attributes: Value) -> CiRow {
    CiRow {
        id: 0,
        model: model.to_string(),
        environment: env.to_string(),
        name: name.to_string(),
        attributes,
        sources: json!({}),
        created_by: "alice".to_string(),
        created_at: at(1),
        updated_by: "alice".to_string(),
        updated_at: at(1),
        discovered_at: None,
    }
}

fn unique() -> Vec<String> {
    vec!["ip".to_string()]
}

async fn insert(store: &dyn Store, c: &CiRow) -> crate::Result<i64> {
    let mut tx = store.begin().await.must("begin");
    let id = tx.insert_ci(c, &unique()).await?;
    commit(tx, "cmdb.ci.create").await;
    Ok(id)
}

fn names(rows: &[CiRow]) -> Vec<&str> {
    rows.iter().map(|c| c.name.as_str()).collect()
}

/// Models: versions written once, the current definition follows the newest.
pub async fn cmdb_models_versioned(store: &dyn Store) {
    save_model(store, "host").await;
    let mut tx = store.begin().await.must("begin");
    tx.save_cmdb_model(&model("host", 2, at(5)), "owner required")
        .await
        .must("v2");
    commit(tx, "cmdb.model.save").await;
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.save_cmdb_model(&model("host", 2, at(6)), "again").await,
        "the same model version twice",
    );
    drop(tx);
    let current = store.cmdb_model("host").await.must("read").must("host");
    assert_eq!(current, model("host", 2, at(5)));
    let versions = store.cmdb_model_versions("host").await.must("versions");
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.note.as_str(), v.definition["v"].clone()))
            .collect::<Vec<_>>(),
        [(1, "built in", json!(1)), (2, "owner required", json!(2))]
    );
    assert_eq!(store.cmdb_model("none").await.must("none"), None);
    save_model(store, "business").await;
    let keys: Vec<String> = store
        .cmdb_models()
        .await
        .must("models")
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, ["business", "host"]);
}

/// Instances: unique names and unique values per model and environment, the value index, updates,
/// filters, deletes.
pub async fn cmdb_instances_unique_and_indexed(store: &dyn Store) {
    save_model(store, "host").await;
    save_model(store, "rack").await;
    let a = ci(
        "host",
        "prod",
        "web-01",
        json!({"ip": "10.0.0.1", "addresses": ["10.0.0.1", "192.168.0.1"], "cpus": 8}),
    );
    let id_a = insert(store, &a).await.must("web-01");
    let read = store.ci(id_a).await.must("read").must("web-01");
    assert_eq!(
        read,
        CiRow {
            id: id_a,
            ..a.clone()
        }
    );
    assert_eq!(
        store
            .ci_by_name("host", "prod", "web-01")
            .await
            .must("by name"),
        Some(read.clone())
    );
    assert_eq!(
        store
            .ci_by_name("host", "uat", "web-01")
            .await
            .must("other env"),
        None
    );

    assert_conflict(
        insert(store, &ci("host", "prod", "web-01", json!({}))).await,
        "a duplicate name",
    );
    assert_conflict(
        insert(
            store,
            &ci("host", "prod", "web-02", json!({"ip": "10.0.0.1"})),
        )
        .await,
        "a unique value held by another instance",
    );
    assert_conflict(
        insert(store, &ci("nope", "prod", "x", json!({}))).await,
        "an instance of an unknown model",
    );
    assert_eq!(
        names(&store.cis(&CiQuery::default()).await.must("all")),
        ["web-01"],
        "failed inserts leave nothing behind"
    );
    // The same values elsewhere are fine: another environment, another model.
    let id_uat = insert(
        store,
        &ci("host", "uat", "web-01", json!({"ip": "10.0.0.1"})),
    )
    .await
    .must("uat");
    let id_rack = insert(
        store,
        &ci("rack", "prod", "R-01", json!({"ip": "10.0.0.1"})),
    )
    .await
    .must("rack");

    let by_item = store
        .ci_ids_by_value(Some("host"), "addresses", &["192.168.0.1".to_string()])
        .await
        .must("by list item");
    assert_eq!(by_item, [id_a]);
    let by_ip = store
        .ci_ids_by_value(
            None,
            "ip",
            &["10.0.0.1".to_string(), "10.9.9.9".to_string()],
        )
        .await
        .must("by ip");
    assert_eq!(by_ip, [id_a, id_uat, id_rack]);
    assert_eq!(
        store
            .ci_ids_by_value(Some("host"), "cpus", &["8".to_string()])
            .await
            .must("number"),
        [id_a]
    );

    // Update: the index and the unique key follow.
    let mut tx = store.begin().await.must("begin");
    let changed = CiRow {
        id: id_a,
        name: "web-01a".to_string(),
        attributes: json!({"ip": "10.0.0.2", "addresses": ["10.0.0.2"]}),
        sources: json!({"addresses": "discovery"}),
        updated_at: at(7),
        discovered_at: Some(at(7)),
        ..a.clone()
    };
    tx.update_ci(&changed, &unique()).await.must("update");
    commit(tx, "cmdb.ci.update").await;
    assert_eq!(store.ci(id_a).await.must("read"), Some(changed.clone()));
    assert!(
        store
            .ci_ids_by_value(Some("host"), "addresses", &["192.168.0.1".to_string()])
            .await
            .must("old item")
            .is_empty()
    );
    insert(
        store,
        &ci("host", "prod", "web-03", json!({"ip": "10.0.0.1"})),
    )
    .await
    .must("the freed unique value can be taken");
    let mut tx = store.begin().await.must("begin");
    assert_not_found(
        tx.update_ci(
            &CiRow {
                id: id_a + 1000,
                ..changed.clone()
            },
            &unique(),
        )
        .await,
        "an unknown instance",
    );
    drop(tx);

    // Filters and paging.
    let q = |model: Option<&str>, envs: Option<Vec<&str>>| CiQuery {
        model: model.map(str::to_string),
        environments: envs.map(|e| e.into_iter().map(str::to_string).collect()),
        ..CiQuery::default()
    };
    assert_eq!(
        names(
            &store
                .cis(&q(Some("host"), Some(vec!["prod"])))
                .await
                .must("prod hosts")
        ),
        ["web-01a", "web-03"]
    );
    assert!(
        store
            .cis(&q(None, Some(vec![])))
            .await
            .must("no env")
            .is_empty()
    );
    let page = store
        .cis(&CiQuery {
            after_id: Some(id_a),
            limit: 2,
            ..CiQuery::default()
        })
        .await
        .must("page");
    assert_eq!(names(&page), ["web-01", "R-01"]);
    let by_ids = store
        .cis(&CiQuery {
            ids: Some(vec![id_rack, id_a]),
            ..CiQuery::default()
        })
        .await
        .must("ids");
    assert_eq!(names(&by_ids), ["web-01a", "R-01"]);
    let by_names = store
        .cis(&CiQuery {
            names: Some(vec!["web-01".into()]),
            ..CiQuery::default()
        })
        .await
        .must("names");
    assert_eq!(names(&by_names), ["web-01"]);
    let counts = store.ci_counts().await.must("counts");
    assert_eq!(
        counts,
        [
            ("host".to_string(), "prod".to_string(), 2),
            ("host".to_string(), "uat".to_string(), 1),
            ("rack".to_string(), "prod".to_string(), 1),
        ]
    );

    let mut tx = store.begin().await.must("begin");
    assert!(tx.delete_ci(id_uat).await.must("delete"));
    assert!(!tx.delete_ci(id_uat).await.must("again"));
    commit(tx, "cmdb.ci.delete").await;
    assert_eq!(store.ci(id_uat).await.must("gone"), None);
    assert!(
        !store
            .ci_ids_by_value(None, "ip", &["10.0.0.1".to_string()])
            .await
            .must("index")
            .contains(&id_uat)
    );
}

fn relation(kind: &str, source: i64, target: i64) -> CiRelationRow {
    CiRelationRow {
        id: 0,
        kind: kind.to_string(),
        source_id: source,
        target_id: target,
        created_by: "alice".to_string(),
        created_at: at(2),
    }
}

fn history(ci: i64, related: Option<i64>, op: &str, when: DateTime<Utc>) -> CiHistoryRow {
    CiHistoryRow {
        id: 0,
        ci_id: ci,
        related_id: related,
        object_type: if related.is_some() {
            "relation"
        } else {
            "instance"
        }
        .to_string(),
        op: op.to_string(),
        via: "api".to_string(),
        actor: "alice".to_string(),
        at: when,
        diff: json!({"os": {"from": null, "to": "CentOS"}}),
        snapshot: json!({"name": "x"}),
    }
}

/// Relations, history and discovery conflicts.
pub async fn cmdb_relations_history_conflicts(store: &dyn Store) {
    save_model(store, "host").await;
    save_model(store, "module").await;
    let host = insert(store, &ci("host", "prod", "h1", json!({})))
        .await
        .must("h1");
    let host2 = insert(store, &ci("host", "prod", "h2", json!({})))
        .await
        .must("h2");
    let module = insert(store, &ci("module", "prod", "行情网关", json!({})))
        .await
        .must("module");

    let mut tx = store.begin().await.must("begin");
    let r1 = tx
        .insert_ci_relation(&relation("belongs_to", host, module))
        .await
        .must("r1");
    let r2 = tx
        .insert_ci_relation(&relation("belongs_to", host2, module))
        .await
        .must("r2");
    let r3 = tx
        .insert_ci_relation(&relation("depends_on", host, host2))
        .await
        .must("r3");
    tx.insert_ci_history(&[
        history(host, None, "create", at(1)),
        history(host, Some(module), "create", at(2)),
        history(host2, Some(host), "create", at(3)),
    ])
    .await
    .must("history");
    commit(tx, "cmdb.relation.create").await;

    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_ci_relation(&relation("belongs_to", host, module))
            .await,
        "a duplicate relation",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    assert_conflict(
        tx.insert_ci_relation(&relation("depends_on", host, module + 1000))
            .await,
        "a relation to an unknown instance",
    );
    drop(tx);

    assert_eq!(
        store.ci_relation(r1).await.must("r1"),
        Some(CiRelationRow {
            id: r1,
            ..relation("belongs_to", host, module)
        })
    );
    let ids = |rs: Vec<CiRelationRow>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .ci_relations(&[module], RelationSide::Target, &[])
            .await
            .must("in")),
        [r1, r2]
    );
    assert_eq!(
        ids(store
            .ci_relations(&[host], RelationSide::Source, &[])
            .await
            .must("out")),
        [r1, r3]
    );
    assert_eq!(
        ids(store
            .ci_relations(
                &[host, host2],
                RelationSide::Both,
                &["depends_on".to_string()]
            )
            .await
            .must("kind")),
        [r3]
    );
    let many: Vec<i64> = (0..1200)
        .map(|i| module + 10_000 + i)
        .chain([module])
        .collect();
    assert_eq!(
        ids(store
            .ci_relations(&many, RelationSide::Target, &[])
            .await
            .must("chunks")),
        [r1, r2],
        "long id lists are chunked"
    );

    let h = store.ci_history(host, None).await.must("history");
    assert_eq!(
        h.iter().map(|x| x.at).collect::<Vec<_>>(),
        [at(1), at(2), at(3)]
    );
    assert_eq!(h[0].diff, json!({"os": {"from": null, "to": "CentOS"}}));
    assert_eq!(
        store
            .ci_history(host, Some(at(2)))
            .await
            .must("until")
            .len(),
        2
    );
    assert_eq!(
        store.ci_history(module, None).await.must("related").len(),
        1
    );

    let mut tx = store.begin().await.must("begin");
    let c = tx
        .insert_ci_conflict(&CiConflictRow {
            id: 0,
            ci_id: host,
            attribute: "os".to_string(),
            recorded: json!("CentOS 7"),
            discovered: json!("Rocky 9"),
            discovered_at: at(4),
            state: "open".to_string(),
            decided_by: None,
            decided_at: None,
        })
        .await
        .must("conflict");
    commit(tx, "cmdb.discovery").await;
    assert_eq!(
        store
            .ci_conflicts(Some("open"), None)
            .await
            .must("open")
            .len(),
        1
    );
    let mut tx = store.begin().await.must("begin");
    tx.decide_ci_conflict(c, "accepted", "bob", at(5))
        .await
        .must("decide");
    assert_conflict(
        tx.decide_ci_conflict(c, "rejected", "bob", at(5)).await,
        "decided twice",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    tx.decide_ci_conflict(c, "accepted", "bob", at(5))
        .await
        .must("decide");
    assert_not_found(
        tx.decide_ci_conflict(c + 100, "accepted", "bob", at(5))
            .await,
        "unknown",
    );
    drop(tx);
    let mut tx = store.begin().await.must("begin");
    tx.decide_ci_conflict(c, "rejected", "bob", at(6))
        .await
        .must("decide");
    commit(tx, "cmdb.conflict.decide").await;
    let decided = store.ci_conflicts(None, Some(host)).await.must("all");
    assert_eq!(
        (
            decided[0].state.as_str(),
            decided[0].decided_by.as_deref(),
            decided[0].decided_at
        ),
        ("rejected", Some("bob"), Some(at(6)))
    );
    assert!(
        store
            .ci_conflicts(Some("open"), None)
            .await
            .must("open")
            .is_empty()
    );

    let mut tx = store.begin().await.must("begin");
    assert!(tx.delete_ci_relation(r3).await.must("delete r3"));
    assert!(!tx.delete_ci_relation(r3).await.must("again"));
    assert!(tx.delete_ci(host).await.must("delete host"));
    commit(tx, "cmdb.ci.delete").await;
    assert_eq!(
        ids(store
            .ci_relations(&[module], RelationSide::Target, &[])
            .await
            .must("in")),
        [r2],
        "the deleted instance's relations are gone"
    );
    assert!(
        store
            .ci_conflicts(None, Some(host))
            .await
            .must("conflicts")
            .is_empty()
    );
    assert_eq!(
        store.ci_history(host, None).await.must("kept").len(),
        3,
        "history outlives"
    );
}
