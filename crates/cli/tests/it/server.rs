//! `ballast serve`, `ballast admin …` and `ballast audit verify` as processes: first start, admin
//! commands with separation of duties, tamper detection, kill -9 consistency, SQLite → PostgreSQL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{ballast, code, stderr, stdout};

/// A `ballast serve` process on a free loopback port.
pub(crate) struct Serve {
    pub(crate) child: Child,
    pub(crate) url: String,
    /// Where agents connect (`exec.agent_listen`).
    pub(crate) agent_addr: String,
    first_lines: Vec<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn serve(dir: &Path, extra: &[&str]) -> Serve {
    serve_env(dir, extra, &[])
}

pub(crate) fn serve_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["serve", "--data-dir", "data", "--listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir)
        .env("BALLAST_LOG", "warn")
        .env("BALLAST_AGENT_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("serve.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .expect("start ballast serve");
    let out = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(out);
    let mut buf = String::new();
    while reader.read_line(&mut buf).unwrap_or(0) > 0 {
        let line = buf.trim_end().to_string();
        buf.clear();
        let done = line.starts_with("Ballast listening on ");
        lines.push(line);
        if done {
            break;
        }
    }
    // Keep draining the server's output (its log) into serve.log, so it never blocks on a full
    // pipe and a failing test can show it.
    let log = dir.join("serve.log");
    std::thread::spawn(move || {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = std::io::copy(&mut reader, &mut f);
        }
    });
    let last = lines.last().cloned().unwrap_or_default();
    let url = last
        .trim_start_matches("Ballast listening on ")
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{lines:?}");
    let agent_addr = last
        .rsplit("agents connect to ")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    Serve {
        child,
        url,
        agent_addr,
        first_lines: lines,
    }
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn first_start_admin_commands_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let password_line = s
        .first_lines
        .iter()
        .position(|l| l.starts_with("First start"))
        .map(|i| s.first_lines[i + 1].trim().to_string())
        .unwrap();
    let file = std::fs::read_to_string(dir.path().join("data/initial-admin-password")).unwrap();
    assert_eq!(file.trim(), password_line);
    let ready: serde_json::Value = rt().block_on(async {
        reqwest::get(format!("{}/readyz", s.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(ready["audit_chain_verified"], true);
    drop(s);

    // A second start prints no password and keeps the same admin.
    let s = serve(dir.path(), &[]);
    assert!(!s.first_lines.iter().any(|l| l.starts_with("First start")));
    drop(s);

    let d = ["--data-dir", "data"];
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend_from_slice(&d);
        ballast(dir.path(), &a)
    };
    let o = run(&[
        "admin",
        "user",
        "add",
        "wu.jiu",
        "--real-name",
        "吴九",
        "--department",
        "审计部",
        "--role",
        "auditor",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("initial password"));
    let o = run(&[
        "admin",
        "user",
        "grant",
        "wu.jiu",
        "--role",
        "automation_operator",
        "--scope",
        "environment:prod",
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("separation of duties") && stderr(&o).contains("职责分离"),
        "{}",
        stderr(&o)
    );
    let o = run(&["admin", "user", "reset-password", "wu.jiu"]);
    assert!(stdout(&o).contains("new password for wu.jiu"));
    let o = run(&["admin", "user", "reset-mfa", "wu.jiu"]);
    assert_eq!(code(&o), 0);
    // Resets revoke sessions and tokens, so the token comes after them.
    let o = run(&["admin", "token", "create", "--user", "wu.jiu"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let token = stdout(&o).trim().to_string();
    assert!(token.starts_with("blt_"));
    let o = run(&["admin", "user", "disable", "nobody", "--reason", "x"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no user named nobody"));

    // The token works against the server until the account is disabled.
    let s = serve(dir.path(), &[]);
    let status = |t: &str| {
        rt().block_on(async {
            reqwest::Client::new()
                .get(format!("{}/api/v1/audit", s.url))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    assert_eq!(status(&token), 200);
    let o = run(&[
        "admin",
        "user",
        "disable",
        "wu.jiu",
        "--reason",
        "left the firm",
    ]);
    assert_eq!(code(&o), 0);
    assert_eq!(status(&token), 401);
    drop(s);

    let o = run(&["audit", "verify"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("audit chain intact"));
    // Behind the product's back: edit a record.
    rt().block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("data/ballast.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("DROP TRIGGER audit_log_no_update").execute(&mut c).await.unwrap();
        sqlx::query("UPDATE audit_log SET content = replace(content, '吴九', '某人') WHERE action = 'user.create' AND content LIKE '%吴九%'").execute(&mut c).await.unwrap();
    });
    let o = run(&["audit", "verify"]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("BROKEN at record") && stdout(&o).contains("altered"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn kill_9_during_writes_leaves_database_and_chain_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path(), &[]);
    let o = ballast(
        dir.path(),
        &[
            "admin",
            "token",
            "create",
            "--user",
            "admin",
            "--data-dir",
            "data",
        ],
    );
    let token = stdout(&o).trim().to_string();
    let url = s.url.clone();
    let pid = s.child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let created = runtime.block_on(async {
        let c = reqwest::Client::new();
        let ok = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut writers = Vec::new();
        for w in 0..4 {
            let (c, url, token, ok) = (c.clone(), url.clone(), token.clone(), ok.clone());
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let body = serde_json::json!({"username": format!("k{w}x{i}"), "real_name": "K", "department": "D", "type": "employee"});
                    match c.post(format!("{url}/api/v1/users")).bearer_auth(&token).json(&body).send().await {
                        Ok(r) if r.status().as_u16() == 201 => ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                        _ => return,
                    };
                }
            }));
        }
        // Let writes flow, then kill the server in the middle of them.
        while ok.load(std::sync::atomic::Ordering::Relaxed) < 20 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        kill_9(pid);
        for w in writers {
            let _ = w.await;
        }
        ok.load(std::sync::atomic::Ordering::Relaxed)
    });
    assert!(created >= 20);
    drop(s);
    let o = ballast(dir.path(), &["audit", "verify", "--data-dir", "data"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    // Every user that exists has its audit record, and no audit record lacks its user.
    rt().block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("data/ballast.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE username LIKE 'k%'").fetch_one(&mut c).await.unwrap();
        let records: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'user.create' AND content LIKE '%\"username\":\"k%'").fetch_one(&mut c).await.unwrap();
        assert_eq!(users, records);
        // Every acknowledged write survived (synchronous=FULL).
        assert!(users as usize >= created, "{users} users, {created} acknowledged");
    });
    let s = serve(dir.path(), &[]);
    let ready: serde_json::Value = rt().block_on(async {
        reqwest::get(format!("{}/readyz", s.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(ready["audit_chain_verified"], true);
}

pub(crate) fn kill_9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn export_sqlite_import_postgres_round_trip() {
    let admin_url = std::env::var("BALLAST_TEST_POSTGRES_URL")
        .expect("BALLAST_TEST_POSTGRES_URL is not set: run scripts/test");
    let dir = tempfile::tempdir().unwrap();
    let d = ["--data-dir", "data"];
    let o = ballast(
        dir.path(),
        &[
            "admin",
            "user",
            "add",
            "zheng.shi",
            "--real-name",
            "郑十",
            "--department",
            "运维部",
            "--type",
            "outsourced",
            "--vendor",
            "某公司",
            "--contract-end",
            "2030-01-01",
            "--role",
            "ops_development@environment:prod",
            "--data-dir",
            "data",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = ballast(
        dir.path(),
        &["admin", "export", "-o", "sqlite.json", d[0], d[1]],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let name = format!("ballast_cli_{}", std::process::id());
    let db_url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);
    rt().block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
    });
    let o = ballast(
        dir.path(),
        &[
            "admin",
            "import",
            "sqlite.json",
            "--database",
            &db_url,
            d[0],
            d[1],
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = ballast(
        dir.path(),
        &[
            "admin",
            "export",
            "-o",
            "pg.json",
            "--database",
            &db_url,
            d[0],
            d[1],
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("sqlite.json")).unwrap())
            .unwrap();
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("pg.json")).unwrap())
            .unwrap();
    assert_eq!(a, b, "lossless round trip");
    let o = ballast(
        dir.path(),
        &["audit", "verify", "--database", &db_url, d[0], d[1]],
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    // Importing twice is refused: the target is not empty.
    let o = ballast(
        dir.path(),
        &[
            "admin",
            "import",
            "sqlite.json",
            "--database",
            &db_url,
            d[0],
            d[1],
        ],
    );
    assert_eq!(code(&o), 2);
    // A file that is not an export names the line.
    std::fs::write(
        dir.path().join("bad.json"),
        "{\n  \"format\": 1,\n  oops\n}",
    )
    .unwrap();
    let o = ballast(
        dir.path(),
        &[
            "admin",
            "import",
            "bad.json",
            "--database",
            &db_url,
            d[0],
            d[1],
        ],
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("bad.json:3"), "{}", stderr(&o));
    rt().block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .await;
    });
}
