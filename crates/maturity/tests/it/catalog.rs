//! The catalog API and its exports (the data itself is checked against the standard in
//! `standard_text`).

use ballast_maturity::{Catalog, ClauseId, ScaleKey, export};

use super::catalog;

#[test]
fn bundled_catalog_shape() {
    let c = catalog();
    assert_eq!(c.id(), "jrt-ops-automation-maturity");
    assert_eq!(c.classes().len(), 4);
    assert_eq!(
        c.classes().iter().map(|cl| cl.domains.len()).sum::<usize>(),
        21
    );
    assert_eq!(c.tables().collect::<Vec<_>>(), (4..=49).collect::<Vec<_>>());
    assert_eq!(c.clauses().count(), c.clause_count());
    let tm = c
        .scale(ScaleKey::TechnicalManagement)
        .map(|s| s.levels.len());
    let ta = c
        .scale(ScaleKey::TechnicalApplication)
        .map(|s| s.levels.len());
    assert_eq!((tm, ta), (Some(3), Some(5)));
    let ta_names: Vec<&str> = c
        .scale(ScaleKey::TechnicalApplication)
        .map(|s| s.levels.iter().map(|l| l.name_zh.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ta_names, ["初始级", "基础级", "先进级", "领先级", "顶尖级"]);
}

#[test]
fn lookups() {
    let c = catalog();
    let id = ClauseId::parse("T5.3.L2.c").unwrap();
    let cl = c.clause(&id).unwrap();
    assert_eq!(cl.item.name_zh, "风险控制策略");
    assert_eq!(cl.aspect.name_zh, "操作管控管理");
    assert!(cl.clause.text_zh.contains("判断、提示和阻断机制"));
    // The draft repeats lower-level clauses in higher cells.
    assert_eq!(
        c.same_text_below(&ClauseId::parse("T5.3.L3.c").unwrap()),
        Some(id)
    );
    assert!(c.clause(&ClauseId::parse("T5.9.L1.a").unwrap()).is_none());
    assert_eq!(
        c.find_items("巡检")
            .iter()
            .map(|r| r.item.table)
            .collect::<Vec<_>>(),
        vec![37]
    );
    assert_eq!(
        c.item(49).map(|r| r.domain.name_zh.as_str()),
        Some("配置管理")
    );
}

#[test]
fn json_export_has_the_documented_shape() {
    let v: serde_json::Value = serde_json::from_str(&export::to_json(catalog())).unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 46);
    let t5 = &items[1];
    for key in [
        "table", "section", "class", "domain", "name_zh", "name_en", "levels", "aspects",
    ] {
        assert!(!t5[key].is_null(), "item key {key}");
    }
    assert_eq!(t5["table"], 5);
    assert_eq!(t5["levels"], 3);
    let aspect = &t5["aspects"][2];
    assert_eq!(aspect["name_zh"], "操作管控管理");
    assert_eq!(aspect["levels"][1]["level"], 2);
    assert_eq!(aspect["levels"][1]["clauses"][2]["id"], "T5.3.L2.c");
    assert!(
        aspect["levels"][1]["clauses"][2]["text_zh"]
            .as_str()
            .unwrap()
            .contains("阻断")
    );
}

#[test]
fn yaml_export_loads_back_as_the_same_catalog() {
    let c = catalog();
    let text = export::to_yaml(c).unwrap();
    let back = Catalog::from_yaml_str(&text, "exported.yaml").unwrap();
    assert_eq!(
        serde_json::to_value(back.data()).unwrap(),
        serde_json::to_value(c.data()).unwrap()
    );
}

#[test]
fn xlsx_export_has_one_row_per_clause() {
    use calamine::{Reader, Xlsx};
    let bytes = export::to_xlsx(catalog()).unwrap();
    let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = wb.worksheet_range("条款 Clauses").unwrap();
    assert_eq!(range.rows().count(), catalog().clause_count() + 1);
}

#[test]
fn broken_editions_are_refused_with_a_reason() {
    let good = export::to_yaml(catalog()).unwrap();
    let cases = [
        (
            good.replacen("id: T4.1.L1.b", "id: T4.1.L1.c", 1),
            "sits where",
        ),
        (
            good.replacen("schema: 1", "schema: 2", 1),
            "unsupported catalog schema",
        ),
        (good.replacen("levels: 3", "levels: 4", 1), "levels"),
        (good.replacen("title_zh:", "titel_zh:", 1), "unknown field"),
        ("id: [".to_string(), "cannot parse"),
    ];
    for (text, expected) in cases {
        let err = Catalog::from_yaml_str(&text, "edition.yaml").err().unwrap();
        assert!(
            err.to_string().contains(expected),
            "{err} should mention {expected:?}"
        );
        assert!(err.to_string().starts_with("edition.yaml"), "{err}");
    }
}
