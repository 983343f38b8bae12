//! The CMDB on a real server: models, instances with validation, relations with their rules,
//! the business topology, queries (attributes and topology paths), impact and dependencies,
//! history and as-of views, environment permissions, CSV/XLSX import (dry run, idempotent
//! re-import, atomic failure, renamed columns) and export, model changes that would invalidate
//! data (a second person's approval, stale requests refused), data quality.

use ballast_core::clock::Clock;
use serde_json::{Value, json};

use crate::TestServer;
use crate::exec::{call, get, post};

async fn put(s: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    call(s, token, reqwest::Method::PUT, path, Some(body)).await
}

pub(crate) async fn create(
    s: &TestServer,
    token: &str,
    model: &str,
    env: &str,
    name: &str,
    attrs: Value,
) -> i64 {
    let (st, v) = post(
        s,
        token,
        "/api/v1/cmdb/instances",
        json!({"model": model, "environment": env, "name": name, "attributes": attrs}),
    )
    .await;
    assert_eq!(st, 201, "{name}: {v}");
    v["id"].as_i64().unwrap()
}

pub(crate) async fn relate(
    s: &TestServer,
    token: &str,
    kind: &str,
    source: i64,
    target: i64,
) -> (u16, Value) {
    post(
        s,
        token,
        "/api/v1/cmdb/relations",
        json!({"kind": kind, "source": source, "target": target}),
    )
    .await
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

async fn query(s: &TestServer, token: &str, q: &str) -> (u16, Value) {
    let url = format!("/api/v1/cmdb/instances?q={}", url_escape(q));
    get(s, token, &url).await
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Business 集中交易 → subsystem 行情 → modules 行情网关 (md-1, md-2) and 交易网关 (tr-1), in
/// prod; one host in test. Returns (writer token, ids by name).
async fn topology(s: &TestServer) -> (String, std::collections::HashMap<&'static str, i64>) {
    let w = s
        .user_token("cmdb-ops", &[("platform_operations", "global")])
        .await;
    let mut ids = std::collections::HashMap::new();
    ids.insert(
        "集中交易",
        create(
            s,
            &w,
            "business",
            "prod",
            "集中交易",
            json!({"owner": "张三", "level": "core"}),
        )
        .await,
    );
    ids.insert(
        "行情",
        create(s, &w, "subsystem", "prod", "行情", json!({})).await,
    );
    ids.insert(
        "行情网关",
        create(s, &w, "module", "prod", "行情网关", json!({"port": "9000"})).await,
    );
    ids.insert(
        "交易网关",
        create(s, &w, "module", "prod", "交易网关", json!({})).await,
    );
    ids.insert(
        "md-1",
        create(
            s,
            &w,
            "host",
            "prod",
            "md-1",
            json!({"ip": "10.1.0.1", "os": "CentOS Linux 7.9", "cpus": 16}),
        )
        .await,
    );
    ids.insert(
        "md-2",
        create(
            s,
            &w,
            "host",
            "prod",
            "md-2",
            json!({"ip": "10.1.0.2", "os": "CentOS Linux 8", "cpus": "8"}),
        )
        .await,
    );
    ids.insert(
        "tr-1",
        create(
            s,
            &w,
            "host",
            "prod",
            "tr-1",
            json!({"ip": "10.1.0.3", "os": "Kylin V10"}),
        )
        .await,
    );
    ids.insert(
        "t-1",
        create(
            s,
            &w,
            "host",
            "test",
            "t-1",
            json!({"ip": "10.9.0.1", "os": "CentOS Linux 7.9"}),
        )
        .await,
    );
    for (child, parent) in [
        ("行情", "集中交易"),
        ("行情网关", "行情"),
        ("交易网关", "行情"),
        ("md-1", "行情网关"),
        ("md-2", "行情网关"),
        ("tr-1", "交易网关"),
    ] {
        let (st, v) = relate(s, &w, "belongs_to", ids[child], ids[parent]).await;
        assert_eq!(st, 201, "{child} → {parent}: {v}");
    }
    (w, ids)
}

#[tokio::test]
async fn instances_relations_topology_queries_and_history() {
    let s = TestServer::start().await;
    let (w, ids) = topology(&s).await;

    // Built-in models are there.
    let (st, models) = get(&s, &w, "/api/v1/cmdb/models").await;
    assert_eq!(st, 200);
    let keys: Vec<&str> = models
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"]["key"].as_str().unwrap())
        .collect();
    for k in [
        "business",
        "subsystem",
        "module",
        "host",
        "db_instance",
        "middleware",
        "network_device",
        "datacenter",
        "rack",
    ] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }

    // Queries: topology paths, attributes, regex, environment.
    let (st, v) = query(&s, &w, r#"module = "行情网关""#).await;
    assert_eq!(
        (st, names(&v)),
        (200, vec!["md-1".to_string(), "md-2".to_string()])
    );
    let (_, v) = query(
        &s,
        &w,
        r#"business = "集中交易" and env = "prod" and os ~ "CentOS""#,
    )
    .await;
    assert_eq!(names(&v), ["md-1", "md-2"]);
    let (_, v) = query(&s, &w, r#"os ~ "^CentOS Linux 7" and model = host"#).await;
    assert_eq!(names(&v), ["md-1", "t-1"]);
    let (_, v) = query(
        &s,
        &w,
        r#"model = host and (cpus >= 10 or subsystem.name = "行情" and not module in ("行情网关"))"#,
    )
    .await;
    assert_eq!(names(&v), ["md-1", "tr-1"]);
    let (_, v) = query(&s, &w, r#"module.port = 9000 and model = host"#).await;
    assert_eq!(names(&v), ["md-1", "md-2"]);
    let (st, v) = query(&s, &w, r#"os ~ "CentOS" and"#).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["code"], "cmdb.query_incomplete");
    assert!(
        v["details"]["message_zh"]
            .as_str()
            .unwrap()
            .contains("第 18 列"),
        "{v}"
    );

    // Validation: every problem, each naming its field.
    let (st, v) = post(
        &s,
        &w,
        "/api/v1/cmdb/instances",
        json!({"model": "host", "environment": "prod", "name": "bad",
               "attributes": {"ip": "10.1.0.300", "cpus": "many", "colour": "red"}}),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    let en = v["details"]["message_en"].as_str().unwrap();
    for part in ["field colour", "field ip", "field cpus", "10.1.0.300"] {
        assert!(en.contains(part), "{part} in {en}");
    }
    assert!(
        v["details"]["message_zh"]
            .as_str()
            .unwrap()
            .contains("字段 ip")
    );
    let (st, v) = post(&s, &w, "/api/v1/cmdb/instances",
        json!({"model": "host", "environment": "prod", "name": "md-3", "attributes": {"ip": "10.1.0.1"}})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("cmdb.unique_taken")),
        "{v}"
    );
    assert!(
        v["details"]["message_en"]
            .as_str()
            .unwrap()
            .contains("md-1")
    );
    let (st, v) = post(&s, &w, "/api/v1/cmdb/instances",
        json!({"model": "host", "environment": "prod", "name": "md-3", "attributes": {"ip": "10.1.0.9", "rack": "R-404"}})).await;
    assert_eq!(
        (st, v["code"].as_str(), v["details"]["field"].as_str()),
        (422, Some("cmdb.reference_missing"), Some("rack")),
        "{v}"
    );
    let (st, v) = post(&s, &w, "/api/v1/cmdb/instances",
        json!({"model": "host", "environment": "prod", "name": "md-1", "attributes": {"ip": "10.1.0.8"}})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("cmdb.instance_exists")),
        "{v}"
    );

    // Relation rules: topology levels, cardinality, cycles, environments.
    let (st, v) = relate(&s, &w, "belongs_to", ids["md-1"], ids["集中交易"]).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("cmdb.relation_topology")),
        "{v}"
    );
    let db = create(
        &s,
        &w,
        "db_instance",
        "prod",
        "行情库",
        json!({"engine": "oracle", "port": 1521}),
    )
    .await;
    let (st, _) = relate(&s, &w, "runs_on", db, ids["md-1"]).await;
    assert_eq!(st, 201);
    let (st, v) = relate(&s, &w, "runs_on", db, ids["md-2"]).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("cmdb.relation_cardinality")),
        "{v}"
    );
    let (st, _) = relate(&s, &w, "depends_on", ids["交易网关"], ids["行情网关"]).await;
    assert_eq!(st, 201);
    let (st, v) = relate(&s, &w, "depends_on", ids["行情网关"], ids["交易网关"]).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("cmdb.relation_cycle")),
        "{v}"
    );
    let (st, v) = relate(&s, &w, "connects_to", ids["md-1"], ids["t-1"]).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("cmdb.relation_environment")),
        "{v}"
    );
    let (st, v) = relate(&s, &w, "depends_on", ids["交易网关"], ids["行情网关"]).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("cmdb.relation_exists")),
        "{v}"
    );

    // Impact of md-1: the database on it, its module, what depends on the module, and upwards.
    let (st, v) = get(
        &s,
        &w,
        &format!("/api/v1/cmdb/instances/{}/impact", ids["md-1"]),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        names(&v),
        ["交易网关", "行情", "行情库", "行情网关", "集中交易"]
    );
    let (_, v) = get(
        &s,
        &w,
        &format!("/api/v1/cmdb/instances/{}/impact?depth=1", ids["md-1"]),
    )
    .await;
    assert_eq!(names(&v), ["行情库", "行情网关"]);
    let (_, v) = get(
        &s,
        &w,
        &format!("/api/v1/cmdb/instances/{}/dependencies", ids["交易网关"]),
    )
    .await;
    assert_eq!(names(&v), ["md-1", "md-2", "tr-1", "行情网关"]);

    // The topology tree.
    let (st, t) = get(&s, &w, "/api/v1/cmdb/topology?environment=prod").await;
    assert_eq!(st, 200, "{t}");
    let biz = &t["businesses"][0];
    assert_eq!(biz["name"], "集中交易");
    let modules: Vec<&str> = biz["children"][0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(modules, ["交易网关", "行情网关"]);
    assert_eq!(
        names(&biz["children"][0]["children"][1]["children"]),
        ["md-1", "md-2"]
    );

    // History and as-of.
    let before = s.clock.now();
    s.clock.advance(chrono::Duration::minutes(5));
    let (st, v) = put(
        &s,
        &w,
        &format!("/api/v1/cmdb/instances/{}", ids["md-1"]),
        json!({"attributes": {"ip": "10.1.0.1", "os": "Rocky Linux 9", "cpus": 16}}),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    let (_, h) = get(
        &s,
        &w,
        &format!("/api/v1/cmdb/instances/{}/history", ids["md-1"]),
    )
    .await;
    let ops: Vec<(String, String, String)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["object_type"].as_str().unwrap().into(),
                x["op"].as_str().unwrap().into(),
                x["via"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(ops[0], ("instance".into(), "create".into(), "api".into()));
    assert!(ops.contains(&("relation".into(), "create".into(), "api".into())));
    let last = h.as_array().unwrap().last().unwrap();
    assert_eq!(
        last["diff"],
        json!({"os": {"from": "CentOS Linux 7.9", "to": "Rocky Linux 9"}})
    );
    assert_eq!(last["actor"], "cmdb-ops");
    let at = before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (st, v) = get(
        &s,
        &w,
        &format!(
            "/api/v1/cmdb/instances/{}/as-of?at={}",
            ids["md-1"],
            url_escape(&at)
        ),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["instance"]["attributes"]["os"], "CentOS Linux 7.9");
    assert_eq!(v["relations"].as_array().unwrap().len(), 2, "{v}");
    let (_, v) = query(&s, &w, r#"os ~ "Rocky""#).await;
    assert_eq!(names(&v), ["md-1"]);

    // Delete: relations go, history stays.
    let (st, _) = call(
        &s,
        &w,
        reqwest::Method::DELETE,
        &format!("/api/v1/cmdb/instances/{db}"),
        None,
    )
    .await;
    assert_eq!(st, 204);
    let (_, v) = get(&s, &w, &format!("/api/v1/cmdb/instances/{}", ids["md-1"])).await;
    assert_eq!(v["relations"].as_array().unwrap().len(), 1, "{v}");
    let (st, h) = get(&s, &w, &format!("/api/v1/cmdb/instances/{db}/history")).await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h.as_array().unwrap().last().unwrap()["op"], "delete");

    // The API is described.
    let doc: Value = s
        .client()
        .get(format!("{}/api/openapi.json", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for p in [
        "/api/v1/cmdb/instances",
        "/api/v1/cmdb/instances/{id}/impact",
        "/api/v1/cmdb/import",
        "/api/v1/cmdb/topology",
    ] {
        assert!(doc["paths"].get(p).is_some(), "OpenAPI lacks {p}");
    }

    // Every change is audited.
    let actions = s.audit_actions().await;
    for a in [
        "cmdb.model.builtin",
        "cmdb.ci.create",
        "cmdb.ci.update",
        "cmdb.ci.delete",
        "cmdb.relation.create",
    ] {
        assert!(actions.iter().any(|(x, o)| x == a && o == "success"), "{a}");
    }
}

#[tokio::test]
async fn permissions_follow_environments() {
    let s = TestServer::start().await;
    let (_w, ids) = topology(&s).await;
    let reader = s
        .user_token("dev-test", &[("ops_development", "environment:test")])
        .await;
    let (st, v) = get(&s, &reader, "/api/v1/cmdb/instances?model=host").await;
    assert_eq!((st, names(&v)), (200, vec!["t-1".to_string()]));
    let (st, v) = get(
        &s,
        &reader,
        &format!("/api/v1/cmdb/instances/{}", ids["md-1"]),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    let (st, _) = get(
        &s,
        &reader,
        &format!("/api/v1/cmdb/instances/{}", ids["t-1"]),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = get(&s, &reader, "/api/v1/cmdb/topology?environment=prod").await;
    assert_eq!(st, 403);
    let (st, v) = post(&s, &reader, "/api/v1/cmdb/instances",
        json!({"model": "host", "environment": "test", "name": "t-2", "attributes": {"ip": "10.9.0.2"}})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("authz.forbidden")),
        "{v}"
    );
    // A prod-scoped writer cannot change models (platform-wide) nor test data.
    let pw = s
        .user_token("ops-prod", &[("platform_operations", "environment:prod")])
        .await;
    let (st, _) = put(
        &s,
        &pw,
        &format!("/api/v1/cmdb/instances/{}", ids["t-1"]),
        json!({"attributes": {"ip": "10.9.0.1"}}),
    )
    .await;
    assert_eq!(st, 403);
    let (_, m) = get(&s, &pw, "/api/v1/cmdb/models/rack").await;
    let (st, _) = put(&s, &pw, "/api/v1/cmdb/models/rack", m["model"].clone()).await;
    assert_eq!(st, 403);
    let actions = s.audit_actions().await;
    assert!(
        actions
            .iter()
            .any(|(a, o)| a == "cmdb.ci.create" && o == "denied")
    );
}

/// A `business:集中交易` grant opens that business's part of the topology in every environment:
/// the business, its subsystems, modules and hosts — and nothing else — for reading and changing.
#[tokio::test]
async fn permissions_follow_business_systems() {
    let s = TestServer::start().await;
    let (w, ids) = topology(&s).await;
    // Another business, an unattached host, and a subsystem of the other business that depends
    // on md-1 (so md-1's impact reaches outside 集中交易).
    let other = create(
        &s,
        &w,
        "business",
        "prod",
        "融资融券",
        json!({"owner": "李四", "level": "core"}),
    )
    .await;
    let sub = create(&s, &w, "subsystem", "prod", "两融", json!({})).await;
    assert_eq!(relate(&s, &w, "belongs_to", sub, other).await.0, 201);
    assert_eq!(relate(&s, &w, "depends_on", sub, ids["md-1"]).await.0, 201);
    let lone = create(&s, &w, "host", "prod", "lone-1", json!({"ip": "10.1.0.9"})).await;

    let team = s
        .user_token("jz-team", &[("platform_operations", "business:集中交易")])
        .await;
    let hosts = ["md-1", "md-2", "tr-1"].map(String::from).to_vec();
    let (st, v) = get(&s, &team, "/api/v1/cmdb/instances?model=host").await;
    assert_eq!((st, names(&v)), (200, hosts.clone()), "{v}");
    let (st, v) = get(
        &s,
        &team,
        "/api/v1/cmdb/instances?model=host&environment=prod",
    )
    .await;
    assert_eq!((st, names(&v)), (200, hosts.clone()), "{v}");
    // t-1 (test) is CentOS too, but outside the business.
    let (st, v) = query(&s, &team, "os ~ \"CentOS\"").await;
    assert_eq!(
        (st, names(&v)),
        (200, vec!["md-1".to_string(), "md-2".to_string()])
    );
    let (_, v) = query(&s, &team, "model = \"business\"").await;
    assert_eq!(names(&v), ["集中交易"]);
    let (st, v) = get(&s, &team, "/api/v1/cmdb/export?format=csv&model=host").await;
    assert_eq!(st, 200, "{v}");
    let csv = v.as_str().unwrap_or_default().to_string();
    assert!(csv.contains("md-1") && !csv.contains("lone-1"), "{csv}");

    for (name, id, want) in [
        ("md-1", ids["md-1"], 200),
        ("行情网关", ids["行情网关"], 200),
        ("t-1", ids["t-1"], 403),
        ("lone-1", lone, 403),
        ("融资融券", other, 403),
    ] {
        let (st, v) = get(&s, &team, &format!("/api/v1/cmdb/instances/{id}")).await;
        assert_eq!(st, want, "{name}: {v}");
    }
    let (st, v) = get(
        &s,
        &team,
        &format!("/api/v1/cmdb/instances/{}/history", ids["md-1"]),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = get(&s, &team, "/api/v1/cmdb/topology?environment=prod").await;
    assert_eq!(st, 200, "{v}");
    let roots: Vec<&str> = v["businesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(roots, ["集中交易"], "{v}");
    assert_eq!(v["unassigned"], json!([]), "{v}");
    // Impact lists only what the grant opens; the full reader sees 两融 too.
    let impact = format!("/api/v1/cmdb/instances/{}/impact", ids["md-1"]);
    let (_, all) = get(&s, &w, &impact).await;
    assert!(names(&all).contains(&"两融".to_string()), "{all}");
    let (_, mine) = get(&s, &team, &impact).await;
    assert!(!names(&mine).contains(&"两融".to_string()), "{mine}");
    assert!(names(&mine).contains(&"行情网关".to_string()), "{mine}");
    // A grant in one environment's terms does not open another environment's data.
    let (st, _) = get(&s, &team, "/api/v1/cmdb/topology?environment=nowhere").await;
    assert_eq!(st, 403);

    // Changes: inside the business yes, outside no; relations need both ends.
    let (st, v) = put(
        &s,
        &team,
        &format!("/api/v1/cmdb/instances/{}", ids["md-2"]),
        json!({"attributes": {"ip": "10.1.0.2", "os": "CentOS Linux 8", "cpus": 12}}),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    let (st, v) = put(
        &s,
        &team,
        &format!("/api/v1/cmdb/instances/{lone}"),
        json!({"attributes": {"ip": "10.1.0.10"}}),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = relate(&s, &team, "belongs_to", lone, ids["行情网关"]).await;
    assert_eq!(st, 403, "attaching a host the grant does not cover: {v}");
    let (st, v) = relate(&s, &team, "depends_on", ids["md-1"], ids["tr-1"]).await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = relate(&s, &team, "depends_on", ids["md-1"], other).await;
    assert_eq!(st, 403, "{v}");
    // Renaming the business itself would move it out of the grant.
    let (st, v) = put(
        &s,
        &team,
        &format!("/api/v1/cmdb/instances/{}", ids["集中交易"]),
        json!({"name": "集中交易二期", "attributes": {"owner": "张三", "level": "core"}}),
    )
    .await;
    assert_eq!(st, 403, "{v}");
    // New instances belong to no business yet: creating one needs an environment grant.
    let (st, v) = post(&s, &team, "/api/v1/cmdb/instances",
        json!({"model": "host", "environment": "prod", "name": "md-3", "attributes": {"ip": "10.1.0.4"}})).await;
    assert_eq!(st, 403, "{v}");

    let actions = s.audit_actions().await;
    for (action, outcome) in [
        ("cmdb.ci.update", "success"),
        ("cmdb.ci.update", "denied"),
        ("cmdb.relation.create", "denied"),
        ("cmdb.ci.read", "denied"),
    ] {
        assert!(
            actions.iter().any(|(a, o)| a == action && o == outcome),
            "{action} {outcome}: {actions:?}"
        );
    }
}

#[tokio::test]
async fn model_changes_are_versioned_and_invalidating_ones_need_approval() {
    let s = TestServer::start().await;
    let (w, _ids) = topology(&s).await;
    let (_, m) = get(&s, &w, "/api/v1/cmdb/models/host").await;
    assert_eq!(m["version"], 1);
    let mut model = m["model"].clone();
    // A new required attribute: existing hosts lack it.
    model["attributes"].as_array_mut().unwrap().push(json!(
        {"key": "idc_zone", "name_zh": "机房区域", "name_en": "Zone", "type": "enum", "values": ["a", "b"], "required": true}));
    let (st, v) = post(&s, &w, "/api/v1/cmdb/models/host/check", model.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (
            v["may_invalidate"].as_bool(),
            v["invalid_instances"].as_u64()
        ),
        (Some(true), Some(4)),
        "{v}"
    );
    let (st, v) = put(&s, &w, "/api/v1/cmdb/models/host", model.clone()).await;
    // Not applied: a pending approval request instead.
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["invalid_instances"], 4, "{v}");
    let request = v["approval"].as_i64().expect("an approval id");
    let (_, m) = get(&s, &w, "/api/v1/cmdb/models/host").await;
    assert_eq!(m["version"], 1, "not applied");
    let (st, v) = put(&s, &w, "/api/v1/cmdb/models/host", model.clone()).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("approval.already_pending")),
        "{v}"
    );
    let (_, pending) = get(&s, &w, "/api/v1/approvals?state=pending").await;
    let a = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == request)
        .unwrap_or_else(|| panic!("{pending}"));
    assert_eq!(
        (&a["kind"], &a["object_type"], &a["object_id"]),
        (
            &json!("cmdb.model.change"),
            &json!("cmdb_model"),
            &json!("host@2")
        )
    );
    assert_eq!(a["payload"]["invalid_instances"], 4);
    assert_eq!(a["payload"]["examples"].as_array().unwrap().len(), 4);
    assert!(
        a["payload"]["definition"]["attributes"]
            .to_string()
            .contains("idc_zone")
    );
    // The requester cannot approve it (separation of duties).
    let decide = |token: String, id: i64, approve: bool| {
        let s = &s;
        async move {
            post(
                s,
                &token,
                &format!("/api/v1/approvals/{id}/decide"),
                json!({"approve": approve, "comment": "checked"}),
            )
            .await
        }
    };
    let (st, v) = decide(w.clone(), request, true).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (403, Some("sod.self_approval")),
        "{v}"
    );
    let (_, m) = get(&s, &w, "/api/v1/cmdb/models/host").await;
    assert_eq!(m["version"], 1, "still not applied");
    // A second person approves: the model moves to version 2.
    let w2 = s
        .user_token("cmdb-approver", &[("platform_operations", "global")])
        .await;
    let (st, v) = decide(w2.clone(), request, true).await;
    assert_eq!(st, 200, "{v}");
    let (_, m) = get(&s, &w, "/api/v1/cmdb/models/host").await;
    assert_eq!(m["version"], 2);
    assert!(m["model"]["attributes"].to_string().contains("idc_zone"));
    // The invalid instances show in the data-quality figures.
    let (_, q) = get(&s, &w, "/api/v1/cmdb/quality").await;
    let host = q
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["model"] == "host" && q["environment"] == "prod")
        .unwrap();
    assert_eq!(
        (&host["missing_required"], &host["invalid"]),
        (&json!(3), &json!(3)),
        "{host}"
    );
    // A request overtaken by another change is refused on approval, nothing applied.
    let mut stale = m["model"].clone();
    stale["attributes"].as_array_mut().unwrap().push(json!(
        {"key": "row", "name_zh": "机柜排", "name_en": "Row", "type": "string", "required": true}));
    let (st, v) = put(&s, &w, "/api/v1/cmdb/models/host", stale.clone()).await;
    assert_eq!(st, 202, "{v}");
    let second = v["approval"].as_i64().unwrap();
    let mut meanwhile = m["model"].clone();
    meanwhile["attributes"].as_array_mut().unwrap().push(json!(
        {"key": "note", "name_zh": "备注", "name_en": "Note", "type": "string"}));
    let (st, v) = put(&s, &w, "/api/v1/cmdb/models/host", meanwhile).await;
    assert_eq!((st, v["version"].as_i64()), (200, Some(3)), "{v}");
    let (st, v) = decide(w2.clone(), second, true).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (409, Some("cmdb.model_changed")),
        "{v}"
    );
    let (_, m) = get(&s, &w, "/api/v1/cmdb/models/host").await;
    assert_eq!(m["version"], 3);
    assert!(!m["model"]["attributes"].to_string().contains("\"row\""));
    // Rejection applies nothing.
    let (st, v) = decide(w2.clone(), second, false).await;
    assert_eq!(st, 200, "{v}");
    let (_, m) = get(&s, &w, "/api/v1/cmdb/models/host").await;
    assert_eq!(m["version"], 3);
    let (_, a) = get(&s, &w, "/api/v1/approvals?state=rejected").await;
    assert!(
        a.as_array().unwrap().iter().any(|a| a["id"] == second),
        "{a}"
    );
    // The models import files the same request per model.
    let file = json!({"format": "ballast-cmdb-models", "format_version": 1,
        "models": [{"version": 4, "model": stale}]});
    let r = s
        .client()
        .post(format!("{}/api/v1/cmdb/models-import", s.url))
        .bearer_auth(&w)
        .body(file.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["models"][0]["approval"].as_i64().is_some(), "{v}");
    let (_, m) = get(&s, &w, "/api/v1/cmdb/models/host").await;
    assert_eq!(m["version"], 3);
    // Audited: the request, the refused self-approval, the save naming its approval.
    let records: Vec<ballast_core::audit::AuditDraft> = s
        .state
        .store
        .audit_range(0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| r.parsed())
        .map(|c| c.draft)
        .collect();
    let has = |action: &str, outcome: &str| {
        records
            .iter()
            .filter(|d| d.action == action && d.outcome.key() == outcome)
            .count()
    };
    assert_eq!(has("cmdb.model.change.request", "success"), 3);
    assert!(has("approval.decide", "denied") >= 1);
    assert!(records.iter().any(|d| {
        d.action == "cmdb.model.save"
            && d.after
                .as_ref()
                .is_some_and(|a| a["approval"] == request && a["version"] == 2)
    }));
    // Back to the first model: optional attributes are fine at once.
    let (_, m) = get(&s, &w, "/api/v1/cmdb/models/host").await;
    let mut model = m["model"].clone();
    model["attributes"].as_array_mut().unwrap().push(json!(
        {"key": "idc_room", "name_zh": "机房", "name_en": "Room", "type": "enum", "values": ["a", "b"]}));
    let (st, v) = put(&s, &w, "/api/v1/cmdb/models/host", model.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["version"], 4);
    assert!(v.get("approval").is_none(), "{v}");
    let (_, m) = get(&s, &w, "/api/v1/cmdb/models/host").await;
    assert_eq!(m["version"], 4);
    assert_eq!(m["versions"].as_array().unwrap().len(), 4);
    // A custom model, exported and imported (dry run shows nothing to change).
    let app = json!({"key": "app", "name_zh": "应用", "name_en": "Application", "attributes": [
        {"key": "lang", "name_zh": "语言", "name_en": "Language", "type": "string", "pattern": "[a-z]+"},
        {"key": "db", "name_zh": "数据库", "name_en": "Database", "type": "reference", "model": "db_instance"}]});
    let (st, v) = put(&s, &w, "/api/v1/cmdb/models/app", app).await;
    assert_eq!((st, v["version"].as_i64()), (200, Some(1)), "{v}");
    let (_, file) = get(&s, &w, "/api/v1/cmdb/models-export").await;
    assert_eq!(file["format"], "ballast-cmdb-models");
    let r = s
        .client()
        .post(format!("{}/api/v1/cmdb/models-import?dry_run=true", s.url))
        .bearer_auth(&w)
        .body(file.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["changes"].as_array().unwrap().is_empty()),
        "{v}"
    );
    let (st, v) = put(&s, &w, "/api/v1/cmdb/models/app",
        json!({"key": "app", "name_zh": "应用", "name_en": "Application", "attributes": [{"key": "name", "name_zh": "x", "name_en": "x", "type": "string"}]})).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (422, Some("cmdb.attribute_key_invalid")),
        "{v}"
    );
}

async fn import(s: &TestServer, token: &str, query: &str, ct: &str, body: Vec<u8>) -> (u16, Value) {
    let r = s
        .client()
        .post(format!("{}/api/v1/cmdb/import?{query}", s.url))
        .bearer_auth(token)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap())
}

#[tokio::test]
async fn spreadsheet_import_previews_is_idempotent_and_atomic() {
    let s = TestServer::start().await;
    let w = s
        .user_token("cmdb-ops", &[("platform_operations", "global")])
        .await;
    let csv = "name,ip,操作系统,CPU 核数,addresses\n\
               web-01,10.0.0.1,CentOS 7,8,\"10.0.0.1, 192.168.0.1\"\n\
               web-02,10.0.0.2,CentOS 7,8,\n\
               \n\
               web-03,10.0.0.3,Kylin V10,16,\n";
    let q = "model=host&environment=prod";
    let (st, v) = import(&s, &w, &format!("{q}&dry_run=true"), "text/csv", csv.into()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (
            v["creates"].as_array().unwrap().len(),
            v["applied"].as_bool()
        ),
        (3, Some(false))
    );
    assert_eq!(
        v["creates"][2]["row"], 5,
        "the empty row counts in row numbers"
    );
    let (_, listed) = get(&s, &w, "/api/v1/cmdb/instances?model=host").await;
    assert!(
        listed.as_array().unwrap().is_empty(),
        "a dry run changes nothing"
    );

    let (st, v) = import(&s, &w, q, "text/csv", csv.into()).await;
    assert_eq!((st, v["applied"].as_bool()), (200, Some(true)), "{v}");
    let (_, listed) = get(&s, &w, "/api/v1/cmdb/instances?model=host").await;
    assert_eq!(names(&listed), ["web-01", "web-02", "web-03"]);
    assert_eq!(
        listed[0]["attributes"]["addresses"],
        json!(["10.0.0.1", "192.168.0.1"])
    );
    assert_eq!(listed[0]["attributes"]["cpus"], 8);
    let (_, h) = get(
        &s,
        &w,
        &format!("/api/v1/cmdb/instances/{}/history", listed[0]["id"]),
    )
    .await;
    assert_eq!(h[0]["via"], "import");

    // The same file again: nothing to do.
    let (st, v) = import(&s, &w, q, "text/csv", csv.into()).await;
    assert_eq!(
        (
            st,
            v["unchanged"].as_u64(),
            v["creates"].as_array().unwrap().len()
        ),
        (200, Some(3), 0),
        "{v}"
    );

    // One bad row: every problem with its row and column; nothing changes.
    let bad = "name,ip,os,cpus\n\
               web-01,10.0.0.1,Rocky 9,8\n\
               web-04,10.0.0.300,CentOS 7,eight\n\
               web-03,10.0.0.2,CentOS 7,4\n\
               web-01,10.0.0.9,x,1\n";
    let (st, v) = import(&s, &w, q, "text/csv", bad.into()).await;
    assert_eq!((st, v["applied"].as_bool()), (422, Some(false)), "{v}");
    let errs: Vec<(u64, Option<&str>, &str)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["column"].as_str(),
                e["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        errs,
        [
            (3, Some("B"), "cmdb.attribute_type"),
            (3, Some("D"), "cmdb.attribute_type"),
            (4, Some("B"), "cmdb.unique_taken"),
            (5, Some("A"), "cmdb.import_duplicate_name"),
        ],
        "{v}"
    );
    assert!(
        v["errors"][0]["message_zh"]
            .as_str()
            .unwrap()
            .starts_with("第 3 行")
    );
    let (_, listed) = get(&s, &w, "/api/v1/cmdb/instances?model=host&q=os%20~%20Rocky").await;
    assert!(
        listed.as_array().unwrap().is_empty(),
        "a failed import changes nothing"
    );

    // Renamed and missing columns.
    let (st, v) = import(&s, &w, q, "text/csv", "hostname,IP地址,os\nx,1,y\n".into()).await;
    assert_eq!(st, 422);
    let errs: Vec<(Option<&str>, &str)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["column"].as_str(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errs,
        [
            (Some("A"), "cmdb.import_unknown_column"),
            (Some("B"), "cmdb.import_unknown_column"),
            (None, "cmdb.import_missing_column"),
            (None, "cmdb.import_missing_column"),
        ],
        "{v}"
    );

    // A renamed host (same unique IP) is updated, not duplicated.
    let (st, v) = import(
        &s,
        &w,
        q,
        "text/csv",
        "name,ip\nweb-03-new,10.0.0.3\n".into(),
    )
    .await;
    assert_eq!(
        (st, v["updates"].as_array().unwrap().len()),
        (200, 1),
        "{v}"
    );
    assert_eq!(
        v["updates"][0]["diff"]["name"],
        json!({"from": "web-03", "to": "web-03-new"})
    );

    // Export (filtered) as XLSX and CSV; the XLSX imports back unchanged.
    let r = s
        .client()
        .get(format!(
            "{}/api/v1/cmdb/export?model=host&format=xlsx&q=os%20~%20CentOS",
            s.url
        ))
        .bearer_auth(&w)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let xlsx = r.bytes().await.unwrap().to_vec();
    let (st, v) = import(
        &s,
        &w,
        &format!("{q}&format=xlsx"),
        "application/octet-stream",
        xlsx,
    )
    .await;
    assert_eq!(
        (st, v["rows"].as_u64(), v["unchanged"].as_u64()),
        (200, Some(2), Some(2)),
        "{v}"
    );
    let r = s
        .client()
        .get(format!("{}/api/v1/cmdb/export?model=host", s.url))
        .bearer_auth(&w)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.starts_with("name,ip,os,"), "{text}");
    assert!(text.contains("web-01,10.0.0.1,CentOS 7,"), "{text}");
    let actions = s.audit_actions().await;
    assert_eq!(
        actions.iter().filter(|(a, _)| a == "cmdb.import").count(),
        2,
        "applied imports only"
    );
}

#[tokio::test]
async fn data_quality_per_model() {
    let s = TestServer::start().await;
    let (w, _ids) = topology(&s).await;
    let (st, v) = get(&s, &w, "/api/v1/cmdb/quality").await;
    assert_eq!(st, 200, "{v}");
    let host = v
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["model"] == "host" && q["environment"] == "prod")
        .unwrap();
    assert_eq!(host["instances"], 3);
    assert_eq!(host["stale"], 3, "never discovered");
    let c = host["completeness"].as_f64().unwrap();
    assert!(c > 0.1 && c < 0.5, "{c}");
    assert_eq!(host["consistency"], 1.0);
}

/// A real agent enrols in `test`; returns its hostname, its facts, the token that stops it and
/// its data directory.
pub(crate) async fn enrolled_agent(
    s: &TestServer,
    admin: &str,
) -> (
    String,
    Value,
    ballast_runner::CancelToken,
    tempfile::TempDir,
) {
    let (st, v) = post(
        s,
        admin,
        "/api/v1/enroll-tokens",
        json!({"environment": "test"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let dir = tempfile::tempdir().unwrap();
    let stop = ballast_runner::CancelToken::new();
    let config = ballast_agent::client::AgentConfig {
        server: s.agent_addr.to_string(),
        data_dir: dir.path().to_path_buf(),
        enroll_token: Some(v["token"].as_str().unwrap().to_string()),
        heartbeat: std::time::Duration::from_secs(5),
    };
    let sd = stop.clone();
    tokio::spawn(async move { ballast_agent::client::run(config, sd).await });
    for _ in 0..200 {
        let (_, agents) = get(s, admin, "/api/v1/agents").await;
        if agents[0]["connected"] == true {
            let host = agents[0]["hostname"].as_str().unwrap().to_string();
            return (host, agents[0]["facts"].clone(), stop, dir);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the agent did not connect");
}

async fn discover(s: &TestServer, token: &str) -> Value {
    let (st, v) = post(s, token, "/api/v1/cmdb/discovery", json!({})).await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn open_conflicts(s: &TestServer, token: &str) -> Vec<Value> {
    let (st, v) = get(s, token, "/api/v1/cmdb/conflicts").await;
    assert_eq!(st, 200, "{v}");
    v.as_array().unwrap().clone()
}

#[tokio::test]
async fn discovery_records_facts_queues_drift_and_jobs_target_a_query() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let w = s
        .user_token("cmdb-ops2", &[("platform_operations", "global")])
        .await;
    let reader = s.user_token("cmdb-reader", &[("auditor", "global")]).await;
    let (host, facts, stop, _dir) = enrolled_agent(&s, &admin).await;

    // Discovery creates the host from the agent's facts; discovery owns those values.
    let (st, _) = post(&s, &reader, "/api/v1/cmdb/discovery", json!({})).await;
    assert_eq!(st, 403, "discovery on demand needs cmdb.write");
    let r = discover(&s, &w).await;
    assert_eq!(
        (r["created"].as_u64(), r["agents"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    let (_, found) = query(&s, &w, &format!("name = \"{host}\"")).await;
    let ci = found[0].clone();
    let id = ci["id"].as_i64().unwrap();
    assert_eq!(ci["environment"], "test");
    assert_eq!(ci["attributes"]["os"], facts["os"]);
    assert_eq!(ci["attributes"]["cpus"], facts["cpus"]);
    assert_eq!(ci["sources"]["os"], "discovery");
    assert!(ci["discovered_at"].is_string(), "{ci}");
    let again = discover(&s, &w).await;
    assert_eq!(
        (again["created"].as_u64(), again["updated"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );
    let (_, h) = get(&s, &w, &format!("/api/v1/cmdb/instances/{id}/history")).await;
    assert_eq!(h[0]["via"], "discovery", "{h}");

    // Business topology: the agent's host runs 行情网关; db-9 (no agent, no SSH user) 清算.
    let biz = create(
        &s,
        &w,
        "business",
        "test",
        "集中交易",
        json!({"owner": "张三", "level": "core"}),
    )
    .await;
    let sub = create(&s, &w, "subsystem", "test", "行情", json!({})).await;
    let md = create(&s, &w, "module", "test", "行情网关", json!({})).await;
    let clear = create(&s, &w, "module", "test", "清算", json!({})).await;
    let db = create(&s, &w, "host", "test", "db-9", json!({"ip": "10.9.9.9"})).await;
    for (child, parent) in [(sub, biz), (md, sub), (clear, sub), (id, md), (db, clear)] {
        let (st, v) = relate(&s, &w, "belongs_to", child, parent).await;
        assert_eq!(st, 201, "{v}");
    }

    // A job targets a CMDB query: exactly the module's host runs it, through its agent.
    let op = s
        .user_token("cmdb-op", &[("automation_operator", "environment:test")])
        .await;
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": "cmdb:module = \"行情网关\"", "command": "echo on-$(hostname)"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let run = v["run_id"].as_i64().unwrap();
    let d = crate::exec::wait_run(&s, &op, run, crate::exec::finished).await;
    assert_eq!(d["run"]["status"], "succeeded", "{d}");
    let tasks = d["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{d}");
    assert_eq!(tasks[0]["host"], format!("agent:{host}"), "{d}");
    // A matched host nobody can reach is a refused task, not a silent skip.
    let (_, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": "cmdb:module = \"清算\"", "command": "echo x"}),
    )
    .await;
    let d = crate::exec::wait_run(
        &s,
        &op,
        v["run_id"].as_i64().unwrap(),
        crate::exec::finished,
    )
    .await;
    assert_eq!(d["tasks"][0]["host"], "agent:db-9", "{d}");
    assert_eq!(d["tasks"][0]["error_code"], "agent.unknown", "{d}");
    // A bad query is refused before anything runs, naming the column.
    let (st, v) = post(
        &s,
        &op,
        "/api/v1/exec",
        json!({"environment": "test", "targets": "cmdb:module = ", "command": "echo x"}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["details"]["message_en"]
            .as_str()
            .unwrap()
            .contains("query column"),
        "{v}"
    );

    // Drift: somebody keeps `os` by hand; discovery queues the difference instead of overwriting.
    let mut attrs = ci["attributes"].clone();
    attrs["os"] = json!("Hand-kept OS 1.0");
    attrs["cpus"] = json!(999);
    let (st, v) = put(
        &s,
        &w,
        &format!("/api/v1/cmdb/instances/{id}"),
        json!({"attributes": attrs}),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    let r = discover(&s, &w).await;
    assert_eq!(r["conflicts"], 2, "{r}");
    assert_eq!(discover(&s, &w).await["conflicts"], 0, "queued once");
    let open = open_conflicts(&s, &reader).await;
    assert_eq!(open.len(), 2, "{open:?}");
    let (_, q) = get(&s, &reader, "/api/v1/cmdb/quality").await;
    let hostq = q
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["model"] == "host" && x["environment"] == "test")
        .unwrap()
        .clone();
    assert_eq!(
        (
            hostq["open_conflicts"].as_u64(),
            hostq["stale"].as_u64(),
            hostq["discovered_fresh"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{hostq}"
    );
    assert!(hostq["consistency"].as_f64().unwrap() < 1.0, "{hostq}");
    let by_attr = |a: &str| {
        open.iter().find(|c| c["attribute"] == a).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let decide = |token: String, attr: &str, decision: &str| {
        let (s, path, body) = (
            &s,
            format!("/api/v1/cmdb/conflicts/{}/decision", by_attr(attr)),
            json!({ "decision": decision }),
        );
        async move { post(s, &token, &path, body).await }
    };
    // Keep the hand-kept OS; take the discovered CPU count.
    let (st, v) = decide(reader.clone(), "cpus", "accept").await;
    assert_eq!(st, 403, "{v}");
    let (st, v) = decide(w.clone(), "os", "reject").await;
    assert_eq!(st, 204, "{v}");
    let (st, v) = decide(w.clone(), "cpus", "accept").await;
    assert_eq!(st, 204, "{v}");
    let (st, v) = decide(w.clone(), "cpus", "accept").await;
    assert_eq!(st, 409, "decided once: {v}");
    let (_, now) = get(&s, &w, &format!("/api/v1/cmdb/instances/{id}")).await;
    assert_eq!(now["instance"]["attributes"]["os"], "Hand-kept OS 1.0");
    assert_eq!(now["instance"]["attributes"]["cpus"], facts["cpus"]);
    assert_eq!(now["instance"]["sources"]["cpus"], "discovery");
    assert_eq!(now["instance"]["sources"]["os"], "manual");
    assert_eq!(
        discover(&s, &w).await["conflicts"],
        0,
        "a rejected value is not queued again"
    );
    assert!(open_conflicts(&s, &w).await.is_empty());
    let actions = s.audit_actions().await;
    for a in [
        "cmdb.discovery",
        "cmdb.conflict.accept",
        "cmdb.conflict.reject",
    ] {
        assert!(actions.iter().any(|(x, _)| x == a), "missing audit {a}");
    }
    stop.cancel();
}
