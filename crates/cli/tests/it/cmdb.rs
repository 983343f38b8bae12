//! `ballast cmdb import` and `ballast cmdb query` against a real `ballast serve`.

use super::server::serve_env;
use super::{ballast, code, stderr, stdout};

#[test]
fn cmdb_import_and_query_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ballast.toml"),
        "environments = [\"prod\"]\n",
    )
    .unwrap();
    let s = serve_env(dir.path(), &[], &[]);
    let o = ballast(
        dir.path(),
        &[
            "admin",
            "user",
            "add",
            "ops",
            "--real-name",
            "测试",
            "--department",
            "运维部",
            "--role",
            "platform_operations@global",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = ballast(
        dir.path(),
        &[
            "admin",
            "token",
            "create",
            "--user",
            "ops",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let token = stdout(&o).trim().to_string();
    std::fs::write(
        dir.path().join("hosts.csv"),
        "name,ip,os\nmd-1,10.1.0.1,CentOS 7\nmd-2,10.1.0.2,Kylin V10\n",
    )
    .unwrap();
    let import = |extra: &[&str]| {
        let mut args = vec![
            "cmdb",
            "import",
            "hosts.csv",
            "--model",
            "host",
            "--environment",
            "prod",
            "--server",
            &s.url,
            "--token",
            &token,
        ];
        args.extend_from_slice(extra);
        ballast(dir.path(), &args)
    };
    let o = import(&["--dry-run"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("create 2") && stdout(&o).contains("nothing changed"),
        "{}",
        stdout(&o)
    );
    let o = import(&[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("applied"), "{}", stdout(&o));

    let o = ballast(
        dir.path(),
        &[
            "cmdb",
            "query",
            r#"os ~ "CentOS""#,
            "--format",
            "csv",
            "--server",
            &s.url,
            "--token",
            &token,
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "id,model,environment,name,ip,os");
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].ends_with(",host,prod,md-1,10.1.0.1,CentOS 7"),
        "{out}"
    );

    // A bad query: the column, in both languages, exit non-zero.
    let o = ballast(
        dir.path(),
        &[
            "cmdb", "query", "os ~", "--server", &s.url, "--token", &token,
        ],
    );
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("第 5 列") && stderr(&o).contains("column 5"),
        "{}",
        stderr(&o)
    );

    // A file with an error: reported with row and column, exit 2, nothing changed.
    std::fs::write(dir.path().join("hosts.csv"), "name,ip\nmd-3,not-an-ip\n").unwrap();
    let o = import(&[]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("column B") && stdout(&o).contains("第 2 行"),
        "{}",
        stdout(&o)
    );
}
