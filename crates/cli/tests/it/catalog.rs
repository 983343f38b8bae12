//! `ballast catalog …`

use super::{ballast, code, stderr, stdout};

#[test]
fn show_tree_item_clause_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let tree = ballast(dir.path(), &["catalog", "show"]);
    assert_eq!(code(&tree), 0);
    let out = stdout(&tree);
    assert!(
        out.contains("46 items") && out.contains("表49") && out.contains("Process management"),
        "{out}"
    );

    let item = ballast(dir.path(), &["catalog", "show", "T5"]);
    let out = stdout(&item);
    assert!(
        out.contains("表5 风险控制策略")
            && out.contains("T5.3.L2.c")
            && out.contains("操作管控管理"),
        "{out}"
    );
    assert_eq!(
        stdout(&ballast(dir.path(), &["catalog", "show", "表5"])),
        out,
        "T5 and 表5 name the same table"
    );

    let clause = stdout(&ballast(dir.path(), &["catalog", "show", "T5.3.L3.c"]));
    assert!(
        clause.contains("判断、提示和阻断机制") && clause.contains("same text as T5.3.L2.c"),
        "{clause}"
    );

    let by_name = stdout(&ballast(dir.path(), &["catalog", "show", "巡检"]));
    assert!(by_name.starts_with("表37 服务巡检"), "{by_name}");
}

#[test]
fn show_unknown_things_exits_2_with_bilingual_message() {
    let dir = tempfile::tempdir().unwrap();
    for (query, en) in [
        ("T99.1.L1.a", "clause T99.1.L1.a does not exist"),
        ("T50", "no table 50 in the catalog (tables are 4–49)"),
        ("no-such-item", "no item name contains"),
    ] {
        let o = ballast(dir.path(), &["catalog", "show", query]);
        assert_eq!(code(&o), 2, "{query}");
        let err = stderr(&o);
        assert!(err.contains("错误") && err.contains(en), "{query}: {err}");
    }
}

#[test]
fn export_formats() {
    let dir = tempfile::tempdir().unwrap();
    let json = ballast(dir.path(), &["catalog", "export", "--format", "json"]);
    assert_eq!(code(&json), 0);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(46));

    let yaml = ballast(
        dir.path(),
        &[
            "catalog",
            "export",
            "--format",
            "yaml",
            "-o",
            "edition.yaml",
        ],
    );
    assert_eq!(code(&yaml), 0);
    // The YAML export is a loadable edition: show works with it.
    let again = ballast(
        dir.path(),
        &["--catalog", "edition.yaml", "catalog", "show", "T49"],
    );
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(stdout(&again).contains("表49"));

    let no_file = ballast(dir.path(), &["catalog", "export", "--format", "xlsx"]);
    assert_eq!(code(&no_file), 2);
    assert!(stderr(&no_file).contains("-o FILE"));
    let xlsx = ballast(
        dir.path(),
        &["catalog", "export", "--format", "xlsx", "-o", "c.xlsx"],
    );
    assert_eq!(code(&xlsx), 0);
    assert!(std::fs::metadata(dir.path().join("c.xlsx")).unwrap().len() > 10_000);
}

#[test]
fn a_broken_catalog_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "schema: 1\nid: x\n").unwrap();
    let o = ballast(dir.path(), &["--catalog", "bad.yaml", "catalog", "show"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("bad.yaml"), "{}", stderr(&o));
    let o = ballast(
        dir.path(),
        &["--catalog", "missing.yaml", "catalog", "show"],
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("cannot read catalog file missing.yaml"),
        "{}",
        stderr(&o)
    );
}
