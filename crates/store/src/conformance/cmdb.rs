//! Conformance cases for the CMDB ([`crate::cmdb`]).
//!
//! Behaviour pinned down beyond the signatures: a model version is written once (a second write
//! of the same version is a `Conflict`); an instance of an unknown model, a duplicate (model,
//! environment, name) and a unique value another instance of the same model and environment holds
//! are `Conflict`s, and the failed transaction leaves nothing behind; the value index follows
//! every update (list items one by one); a relation between unknown instances or a duplicate
//! (kind, source, target) is a `Conflict`; deleting an instance deletes its relations and
//! conflicts but keeps its history; history is read oldest first, `until` inclusive, for both
//! ends of a relation; a conflict is decided once. Export/import keeps every row with its id,
//! rebuilds the value index and the unique keys (from each model's current definition: the
//! `key` of each `attributes` entry with `"unique": true`), and new ids continue after the
//! imported ones.

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

/// Id lists longer than one statement's chunk: a page comes back in id order, starts after
/// `after_id`, and holds the smallest ids — whatever the order of the list.
pub async fn cmdb_long_id_lists_page_in_order(store: &dyn Store) {
    save_model(store, "host").await;
    let mut tx = store.begin().await.must("begin");
    let mut ids = Vec::new();
    for i in 0..1_300 {
        let env = if i % 10 == 0 { "uat" } else { "prod" };
        let c = ci(
            "host",
            env,
            &format!("h-{i:04}"),
            json!({"ip": format!("10.2.{}.{}", i / 256, i % 256)}),
        );
        ids.push(tx.insert_ci(&c, &unique()).await.must("insert"));
    }
    commit(tx, "cmdb.ci.create").await;
    let mut list = ids.clone();
    list.reverse();
    list.push(ids[5]);
    list.push(9_999_999);
    let page = |after: Option<i64>, limit: u32| CiQuery {
        environments: Some(vec!["prod".to_string()]),
        ids: Some(list.clone()),
        after_id: after,
        limit,
        ..CiQuery::default()
    };
    let prod: Vec<i64> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, id)| *id)
        .collect();
    let got: Vec<i64> = store
        .cis(&page(None, 100))
        .await
        .must("first page")
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(got, prod[..100]);
    let after = prod[549];
    let got: Vec<i64> = store
        .cis(&page(Some(after), 600))
        .await
        .must("page after")
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(got, prod[550..1_150]);
    let all: Vec<i64> = store
        .cis(&page(None, 0))
        .await
        .must("no limit")
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(all, prod);
    let none = store
        .cis(&page(Some(9_999_999), 10))
        .await
        .must("past the end");
    assert!(none.is_empty());
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

/// A model definition in the shape of `ballast_cmdb::Model`, with `ip` unique.
fn host_definition(version: i64) -> Value {
    json!({
        "key": "host",
        "name_zh": "主机",
        "name_en": "Host",
        "builtin": true,
        "attributes": [
            {"key": "ip", "name_zh": "IP", "name_en": "IP", "type": "ip", "unique": true},
            {"key": "addresses", "name_zh": "地址", "name_en": "Addresses", "type": "list"},
            {"key": "os", "name_zh": "操作系统", "name_en": "OS", "type": "string",
             "required": version > 1, "discovered": true}
        ]
    })
}

/// Fills the CMDB of `store`: two versions of a model with a unique attribute, a second model,
/// instances (one deleted, leaving a gap in the ids and its history), relations, history and
/// conflicts (one open, one decided). Returns the ids of the hosts `h1`, `gone` (deleted), `h2`
/// and the module.
async fn populate_cmdb(store: &dyn Store) -> [i64; 4] {
    let mut tx = store.begin().await.must("begin");
    for version in [1, 2] {
        let m = CmdbModelRow {
            key: "host".to_string(),
            version,
            definition: host_definition(version),
            builtin: true,
            updated_by: "system".to_string(),
            updated_at: at(version),
        };
        tx.save_cmdb_model(&m, &format!("version {version}"))
            .await
            .must("host model");
    }
    tx.save_cmdb_model(&model("module", 1, at(3)), "built in")
        .await
        .must("module model");
    commit(tx, "cmdb.model.save").await;

    let h1 = insert(
        store,
        &ci(
            "host",
            "prod",
            "h1",
            json!({"ip": "10.0.0.1", "addresses": ["10.0.0.1", "192.168.0.1"], "os": "CentOS 7"}),
        ),
    )
    .await
    .must("h1");
    let gone = insert(
        store,
        &ci("host", "prod", "gone", json!({"ip": "10.0.0.9"})),
    )
    .await
    .must("gone");
    let h2 = insert(
        store,
        &CiRow {
            sources: json!({"os": "discovery"}),
            discovered_at: Some(at(4)),
            ..ci(
                "host",
                "prod",
                "h2",
                json!({"ip": "10.0.0.2", "os": "Rocky 9", "cpus": 8}),
            )
        },
    )
    .await
    .must("h2");
    let module = insert(store, &ci("module", "prod", "行情网关", json!({})))
        .await
        .must("module");

    let mut tx = store.begin().await.must("begin");
    tx.insert_ci_relation(&relation("belongs_to", h1, module))
        .await
        .must("r1");
    tx.insert_ci_relation(&relation("depends_on", h1, h2))
        .await
        .must("r2");
    tx.insert_ci_relation(&relation("belongs_to", gone, module))
        .await
        .must("r3");
    tx.insert_ci_history(&[
        history(h1, None, "create", at(1)),
        history(gone, None, "create", at(1)),
        history(h2, None, "create", at(1)),
        history(h1, Some(module), "create", at(2)),
        history(h1, Some(h2), "create", at(2)),
    ])
    .await
    .must("history");
    for (ci_id, state) in [(h1, "open"), (h2, "accepted")] {
        let decided = state != "open";
        tx.insert_ci_conflict(&CiConflictRow {
            id: 0,
            ci_id,
            attribute: "os".to_string(),
            recorded: json!("CentOS 7"),
            discovered: json!("Rocky 9"),
            discovered_at: at(4),
            state: state.to_string(),
            decided_by: decided.then(|| "bob".to_string()),
            decided_at: decided.then(|| at(5)),
        })
        .await
        .must("conflict");
    }
    commit(tx, "cmdb.relation.create").await;

    let mut tx = store.begin().await.must("begin");
    assert!(tx.delete_ci(gone).await.must("delete gone"));
    tx.insert_ci_history(&[history(gone, None, "delete", at(6))])
        .await
        .must("history of the delete");
    commit(tx, "cmdb.ci.delete").await;
    [h1, gone, h2, module]
}

/// Everything the CMDB reads return for the instances `ids`.
async fn cmdb_view(
    store: &dyn Store,
    ids: &[i64],
) -> (
    Vec<CmdbModelRow>,
    Vec<Vec<crate::cmdb::CmdbModelVersionRow>>,
    Vec<CiRow>,
    Vec<CiRelationRow>,
    Vec<Vec<CiHistoryRow>>,
    Vec<CiConflictRow>,
) {
    let models = store.cmdb_models().await.must("models");
    let mut versions = Vec::new();
    for m in &models {
        versions.push(store.cmdb_model_versions(&m.key).await.must("versions"));
    }
    let cis = store.cis(&CiQuery::default()).await.must("instances");
    let relations = store
        .ci_relations(ids, RelationSide::Both, &[])
        .await
        .must("relations");
    let mut history = Vec::new();
    for id in ids {
        history.push(store.ci_history(*id, None).await.must("history"));
    }
    let conflicts = store.ci_conflicts(None, None).await.must("conflicts");
    (models, versions, cis, relations, history, conflicts)
}

/// The CMDB in `export_all`/`import_all`: every row with its id survives into a fresh store, the
/// value index and unique keys are rebuilt there, new ids continue after the imported ones, and a
/// dump without a CMDB section (from before it was exported) still loads.
pub async fn cmdb_export_import(a: &dyn Store, b: &dyn Store) {
    let ids = populate_cmdb(a).await;
    let [h1, gone, h2, module] = ids;
    let dump = a.export_all().await.must("export");
    let c = &dump.cmdb;
    assert_eq!(
        [
            c.models.len(),
            c.model_versions.len(),
            c.cis.len(),
            c.relations.len(),
            c.history.len(),
            c.conflicts.len()
        ],
        [2, 3, 3, 2, 6, 2],
        "the CMDB is exported (the deleted instance's relation is gone, its history kept)"
    );
    assert_eq!(
        c.cis.iter().map(|r| r.id).collect::<Vec<_>>(),
        [h1, h2, module],
        "instances by id, with their ids"
    );
    assert_eq!(
        c.model_versions
            .iter()
            .map(|v| (v.key.as_str(), v.version))
            .collect::<Vec<_>>(),
        [("host", 1), ("host", 2), ("module", 1)]
    );

    b.import_all(&dump).await.must("import");
    let again = b.export_all().await.must("export after import");
    assert_eq!(
        again.cmdb, dump.cmdb,
        "the CMDB survives export → import → export unchanged"
    );
    assert_eq!(again, dump, "and so does the rest of the dump");
    assert_eq!(
        cmdb_view(b, &ids).await,
        cmdb_view(a, &ids).await,
        "every CMDB read gives the same rows on the imported store"
    );
    assert_eq!(
        b.ci_history(gone, None).await.must("history").len(),
        2,
        "the deleted instance's history is imported"
    );
    assert_eq!(
        b.ci_conflicts(Some("open"), None)
            .await
            .must("open")
            .iter()
            .map(|c| c.ci_id)
            .collect::<Vec<_>>(),
        [h1]
    );

    // The derived tables were rebuilt: searches by value, and the unique keys.
    assert_eq!(
        b.ci_ids_by_value(Some("host"), "addresses", &["192.168.0.1".to_string()])
            .await
            .must("by list item"),
        [h1]
    );
    assert_eq!(
        b.ci_ids_by_value(
            None,
            "ip",
            &["10.0.0.1".to_string(), "10.0.0.2".to_string()]
        )
        .await
        .must("by ip"),
        [h1, h2]
    );
    assert_eq!(
        b.ci_ids_by_value(Some("host"), "cpus", &["8".to_string()])
            .await
            .must("by number"),
        [h2]
    );
    assert!(
        b.ci_ids_by_value(None, "ip", &["10.0.0.9".to_string()])
            .await
            .must("deleted")
            .is_empty(),
        "the deleted instance is not indexed"
    );
    let keys = vec!["ip".to_string()];
    let mut tx = b.begin().await.must("begin");
    assert_conflict(
        tx.insert_ci(&ci("host", "prod", "h3", json!({"ip": "10.0.0.1"})), &keys)
            .await,
        "a unique value an imported instance holds",
    );
    drop(tx);

    // New rows get fresh ids, after the imported ones.
    let mut tx = b.begin().await.must("begin");
    let h3 = tx
        .insert_ci(&ci("host", "prod", "h3", json!({"ip": "10.0.0.3"})), &keys)
        .await
        .must("an instance after import");
    let r = tx
        .insert_ci_relation(&relation("depends_on", h3, h1))
        .await
        .must("a relation after import");
    tx.insert_ci_history(&[history(h3, None, "create", at(7))])
        .await
        .must("history after import");
    let conflict = tx
        .insert_ci_conflict(&CiConflictRow {
            id: 0,
            ci_id: h3,
            attribute: "os".to_string(),
            recorded: json!(null),
            discovered: json!("Rocky 9"),
            discovered_at: at(7),
            state: "open".to_string(),
            decided_by: None,
            decided_at: None,
        })
        .await
        .must("a conflict after import");
    commit(tx, "cmdb.ci.create").await;
    let max = |ids: Vec<i64>| ids.into_iter().max().must("ids");
    assert!(
        h3 > max(c.cis.iter().map(|r| r.id).collect()) && h3 > gone,
        "instance ids continue (not reusing the deleted one's)"
    );
    assert!(
        r > max(c.relations.iter().map(|r| r.id).collect()),
        "relation ids continue"
    );
    assert!(
        conflict > max(c.conflicts.iter().map(|r| r.id).collect()),
        "conflict ids continue"
    );
    let h3_history = b.ci_history(h3, None).await.must("history");
    assert!(
        h3_history[0].id > max(c.history.iter().map(|r| r.id).collect()),
        "history ids continue"
    );
    assert_eq!(
        b.ci_ids_by_value(None, "ip", &["10.0.0.3".to_string()])
            .await
            .must("new"),
        [h3]
    );

    // A dump from before the CMDB was exported has no `cmdb`: it loads as an empty one.
    let mut old = serde_json::to_value(&dump).must("to json");
    old.as_object_mut().must("an object").remove("cmdb");
    let old: crate::Dump = serde_json::from_value(old).must("an old dump loads");
    assert_eq!(old.cmdb, crate::cmdb::CmdbDump::default());
    assert_eq!(old.audit, dump.audit);
}
