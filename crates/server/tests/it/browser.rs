//! A person's path through the web UI in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by scripts/test): sign in with password, change it at first
//! sign-in, enrol and use TOTP, create a user, see a separation-of-duties refusal, search the audit
//! log. Nothing downloads a browser.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use super::TestServer;

pub(crate) struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn browser(profile: &std::path::Path) -> (Driver, Client) {
    let driver_bin =
        std::env::var("BALLAST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let chromium = std::env::var("BALLAST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&driver_bin).exists() && std::path::Path::new(&chromium).exists(),
        "Chromium and ChromeDriver are needed ({chromium}, {driver_bin}): run scripts/test, which installs Debian's chromium and chromium-driver"
    );
    let port = free_port();
    let child = Command::new(&driver_bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        // A navigation that never completes fails the test within a minute instead of hanging it
        // (the WebDriver default page-load timeout is 300 s per command).
        "timeouts": {"pageLoad": 60000, "script": 30000},
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--lang=zh-CN", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.display())]
        }
    }))
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        // Two rustls crypto providers are linked (ring for the agent hub, another through
        // other crates): name the process default before fantoccini builds its TLS config.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Ok(c) = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            return (driver, c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start on {url}");
}

pub(crate) async fn fill(c: &Client, id: &str, value: &str) {
    let e = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

pub(crate) async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The current path once navigation settled (a click that submits a form returns before the next
/// page has loaded).
pub(crate) async fn path(c: &Client) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        let _ = c.wait().for_element(Locator::Css("body")).await;
        let now = c.current_url().await.unwrap().path().to_string();
        if now == last {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// The text of the first element matching `css`, waiting for it (and retrying while the page is
/// being replaced by a form submission).
pub(crate) async fn text(c: &Client, css: &str) -> String {
    let mut last_err = String::new();
    for _ in 0..50 {
        match c.wait().for_element(Locator::Css(css)).await {
            Ok(e) => match e.text().await {
                Ok(t) => return t,
                Err(err) => last_err = err.to_string(),
            },
            Err(err) => last_err = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: {last_err}")
}

#[tokio::test]
async fn a_person_signs_in_manages_users_and_reads_the_audit_log() {
    let s = TestServer::start().await;
    let profile = tempfile::tempdir().unwrap();
    let (_driver, c) = browser(profile.path()).await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = |name: &'static str| {
        let c = c.clone();
        let p = shots.join(format!("{name}.png"));
        async move { std::fs::write(p, c.screenshot().await.unwrap()).unwrap() }
    };

    // Sign in with the initial password; the first page is the forced password change.
    c.goto(&format!("{}/lang/zh", s.url)).await.unwrap();
    c.goto(&format!("{}/login", s.url)).await.unwrap();
    assert!(text(&c, "h1").await.contains("登录"));
    fill(&c, "username", "admin").await;
    fill(&c, "password", &s.admin_password).await;
    click(&c, "login-submit").await;
    assert_eq!(path(&c).await, "/account/password");
    let new_password = "Quiet-Harbour-2026!";
    fill(&c, "current_password", &s.admin_password).await;
    fill(&c, "new_password", new_password).await;
    fill(&c, "confirm_password", new_password).await;
    click(&c, "password-submit").await;

    // admin is privileged: enrol TOTP before anything else.
    assert_eq!(path(&c).await, "/account/mfa");
    let secret = text(&c, "#mfa-secret").await;
    shot("enrol").await;
    fill(
        &c,
        "code",
        &ballast_core::mfa::current_code(&secret, s.clock_now()).unwrap(),
    )
    .await;
    click(&c, "enrol-submit").await;
    c.wait()
        .for_element(Locator::Css("#recovery-codes, .error"))
        .await
        .unwrap();
    assert_eq!(
        c.find_all(Locator::Css("#recovery-codes li"))
            .await
            .unwrap()
            .len(),
        10
    );

    // Sign out and in again: password, then the second factor.
    c.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(path(&c).await, "/login");
    fill(&c, "username", "admin").await;
    fill(&c, "password", new_password).await;
    click(&c, "login-submit").await;
    assert_eq!(path(&c).await, "/login/mfa");
    s.clock.advance(chrono::Duration::seconds(30));
    fill(
        &c,
        "code",
        &ballast_core::mfa::current_code(&secret, s.clock_now()).unwrap(),
    )
    .await;
    click(&c, "mfa-submit").await;
    assert_eq!(path(&c).await, "/");
    assert!(
        c.source().await.unwrap().contains("尚未提供"),
        "modules not built yet are marked"
    );
    shot("home").await;

    // Create an auditor, then try to make them a platform admin too.
    c.goto(&format!("{}/users", s.url)).await.unwrap();
    fill(&c, "username", "qian.qi").await;
    fill(&c, "real_name", "钱七").await;
    fill(&c, "department", "稽核部").await;
    c.find(Locator::Css("#role option[value='auditor']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&c, "create-submit").await;
    assert!(text(&c, "#notice").await.contains("qian.qi"));
    let row = c.find(Locator::Id("user-qian.qi")).await.unwrap();
    row.find(Locator::Css(
        "select[name='role'] option[value='platform_admin']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    row.find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = text(&c, "#error").await;
    assert!(error.contains("职责分离"), "{error}");
    shot("sod-refusal").await;

    // The audit log shows the refusal, and the chain is intact.
    c.goto(&format!("{}/audit", s.url)).await.unwrap();
    fill(&c, "action", "role.grant").await;
    click(&c, "audit-submit").await;
    assert!(text(&c, "#chain-status").await.contains("审计链完整"));
    let rows = text(&c, "#audit-records tbody").await;
    assert!(
        rows.contains("role.grant") && rows.contains("denied"),
        "{rows}"
    );
    shot("audit").await;
    c.close().await.unwrap();
}

// ------------------------------------------------------------------ job execution, end to end

/// How long a person waits for something the server does on its own (a run's next state).
pub(crate) const PATIENCE: Duration = Duration::from_secs(90);

/// A person of the scenario: their name, current password and (once enrolled) TOTP secret.
pub(crate) struct Person {
    name: &'static str,
    password: String,
    changed: bool,
    totp: Option<String>,
}

impl Person {
    pub(crate) fn new(name: &'static str, initial: String) -> Person {
        Person {
            name,
            password: initial,
            changed: false,
            totp: None,
        }
    }
}

/// Polls the current path until `ok` accepts it.
pub(crate) async fn until_path(c: &Client, ok: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    let mut last = String::new();
    while start.elapsed() < PATIENCE {
        if let Ok(u) = c.current_url().await {
            last = u.path().to_string();
            if ok(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still on {last}");
}

/// Polls the text of the first element matching `css` until `ok` accepts it: pages are replaced
/// by form submissions and by the run page's live reloads, so a read may hit the old page.
pub(crate) async fn until_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    let mut last = String::from("(not found)");
    while start.elapsed() < PATIENCE {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
        {
            if ok(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    panic!("{css}: gave up waiting; last text: {last}")
}

/// Chooses `value` in the `<select id=select>`.
pub(crate) async fn choose(c: &Client, select: &str, value: &str) {
    c.find(Locator::Css(&format!("#{select} option[value='{value}']")))
        .await
        .unwrap_or_else(|e| panic!("#{select} = {value}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Signs `p` in through the pages a person sees: password, the forced change at first sign-in,
/// TOTP enrolment where a privileged role requires it, the second factor afterwards.
pub(crate) async fn sign_in(c: &Client, s: &TestServer, p: &mut Person) {
    c.goto(&format!("{}/login", s.url)).await.unwrap();
    fill(c, "username", p.name).await;
    fill(c, "password", &p.password).await;
    click(c, "login-submit").await;
    let mut at = until_path(c, |x| x != "/login").await;
    if at == "/account/password" {
        assert!(!p.changed, "{}: asked to change the password twice", p.name);
        // Not containing the username (the password policy refuses that).
        let new_password = match p.name {
            "admin" => "Quiet-Harbour-2026!",
            "dev" => "Amber-Lantern-2026!",
            "ops" => "Cobalt-Meadow-2026!",
            _ => "Silver-Canyon-2026!",
        }
        .to_string();
        fill(c, "current_password", &p.password).await;
        fill(c, "new_password", &new_password).await;
        fill(c, "confirm_password", &new_password).await;
        click(c, "password-submit").await;
        p.password = new_password;
        p.changed = true;
        at = until_path(c, |x| x != "/account/password").await;
    }
    if at == "/account/mfa" {
        let secret = text(c, "#mfa-secret").await;
        fill(
            c,
            "code",
            &ballast_core::mfa::current_code(&secret, s.clock_now()).unwrap(),
        )
        .await;
        click(c, "enrol-submit").await;
        c.wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css("#recovery-codes"))
            .await
            .unwrap_or_else(|e| panic!("{}: enrolment: {e}", p.name));
        p.totp = Some(secret);
    } else if at == "/login/mfa" {
        let secret = p.totp.clone().expect("enrolled before");
        // A code is accepted once: let the next time step come.
        s.clock.advance(chrono::Duration::seconds(30));
        fill(
            c,
            "code",
            &ballast_core::mfa::current_code(&secret, s.clock_now()).unwrap(),
        )
        .await;
        click(c, "mfa-submit").await;
        until_path(c, |x| x == "/").await;
    } else {
        assert_eq!(at, "/", "{}: after sign-in", p.name);
    }
}

pub(crate) async fn sign_out(c: &Client) {
    c.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_path(c, |x| x == "/login").await;
}

/// The audit page's result rows as cell texts (seq, time, actor, IP, action, object, outcome,
/// detail), after searching for `action` (a prefix) and optionally an outcome.
pub(crate) async fn audit_search(c: &Client, action: &str, outcome: &str) -> Vec<Vec<String>> {
    fill(c, "action", action).await;
    choose(c, "outcome", outcome).await;
    click(c, "audit-submit").await;
    until_text(c, "#audit-search #action", |_| true).await;
    let start = std::time::Instant::now();
    loop {
        let url = c.current_url().await.unwrap();
        let searched = url.query_pairs().any(|(k, v)| k == "action" && v == action);
        if searched {
            let rows = c
                .execute(
                    "return Array.from(document.querySelectorAll('#audit-records tbody tr'))\
                     .map(r => Array.from(r.cells).map(c => c.textContent.trim()));",
                    vec![],
                )
                .await
                .unwrap();
            return serde_json::from_value(rows).unwrap();
        }
        assert!(start.elapsed() < PATIENCE, "audit search for {action}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 5, "Done when": from the web UI alone a script is written and put online with a second
/// person's approval, a two-step plan with a manual confirmation is built and run on an agent host
/// and an SSH host with live status and logs, a dangerous command and a production run in trading
/// hours are refused, and every one of those actions is in the audit log.
#[tokio::test]
async fn a_person_scripts_plans_runs_and_is_guarded() {
    let s = TestServer::start_with(|c| {
        std::fs::create_dir_all(&c.data_dir).unwrap();
        std::fs::write(
            c.data_dir.join("change-windows.toml"),
            crate::PROD_MARKET_HOURS,
        )
        .unwrap();
    })
    .await;
    // The accounts: what the UI deliberately leaves to the administrator's command line.
    let user = |name: &str, grants: &[(&str, &str)]| ballast_server::service::CreateUser {
        username: name.into(),
        real_name: format!("测试 {name}"),
        department: "运维部".into(),
        kind: "employee".into(),
        vendor: None,
        contract_end: None,
        roles: grants
            .iter()
            .map(|(r, sc)| ballast_server::service::Grant {
                role: (*r).into(),
                scope: (*sc).into(),
            })
            .collect(),
    };
    let mut people = Vec::new();
    for (name, grants) in [
        ("dev", vec![("ops_development", "global")]),
        ("ops", vec![("platform_operations", "global")]),
        (
            "op",
            vec![
                ("automation_operator", "environment:test"),
                ("automation_operator", "environment:prod"),
            ],
        ),
    ] {
        let (_, initial) = ballast_server::admin::user_add(&s.state, &user(name, &grants))
            .await
            .unwrap();
        people.push(Person::new(name, initial));
    }
    let [mut dev, mut ops, mut op]: [Person; 3] = people.try_into().ok().unwrap();
    let mut admin = Person::new("admin", s.admin_password.clone());

    let profile = tempfile::tempdir().unwrap();
    let (_driver, c) = browser(profile.path()).await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-exec");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = |name: &'static str| {
        let c = c.clone();
        let p = shots.join(format!("{name}.png"));
        async move { std::fs::write(p, c.screenshot().await.unwrap()).unwrap() }
    };
    c.goto(&format!("{}/lang/zh", s.url)).await.unwrap();

    // --- The administrator prepares the hosts on "Hosts & rules": an enrolment token for the
    // agent, the SSH credential and the SSH host's key.
    sign_in(&c, &s, &mut admin).await;
    c.goto(&format!("{}/agents", s.url)).await.unwrap();
    choose(&c, "env", "test").await;
    click(&c, "enroll-create").await;
    let token = until_text(&c, "#enroll-token", |t| !t.is_empty()).await;
    let agent_dir = tempfile::tempdir().unwrap();
    let agent_stop = ballast_runner::CancelToken::new();
    let agent_config = ballast_agent::client::AgentConfig {
        server: s.agent_addr.to_string(),
        data_dir: agent_dir.path().to_path_buf(),
        enroll_token: Some(token),
        heartbeat: Duration::from_secs(5),
    };
    let stop = agent_stop.clone();
    let agent = tokio::spawn(async move { ballast_agent::client::run(agent_config, stop).await });
    // The agent shows up connected (the page is reloaded as a person would).
    let start = std::time::Instant::now();
    let hostname = loop {
        c.goto(&format!("{}/agents", s.url)).await.unwrap();
        let row = c
            .execute(
                "const r = document.querySelector('#agents tbody tr[id^=\"agent-\"]');\
                 return r ? [r.cells[0].textContent.trim(), r.cells[2].textContent.trim(), \
                 r.cells[3].textContent.trim()] : null;",
                vec![],
            )
            .await
            .unwrap();
        if let Some([host, env, state]) =
            serde_json::from_value::<Option<[String; 3]>>(row).unwrap()
            && state == "在线"
        {
            assert_eq!(env, "test");
            break host;
        }
        assert!(start.elapsed() < PATIENCE, "the agent did not connect");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    let sshd_dir = tempfile::tempdir().unwrap();
    let sshd = ballast_ssh::testkit::Sshd::start(sshd_dir.path()).unwrap();
    fill(&c, "cname", &sshd.user).await;
    fill(&c, "cuser", &sshd.user).await;
    choose(&c, "ckind", "key").await;
    fill(&c, "csecret", &sshd.client_key_pem).await;
    click(&c, "credential-save").await;
    until_text(&c, "#notice", |t| t.contains("凭据已保存")).await;
    assert!(
        !c.source().await.unwrap().contains("PRIVATE KEY"),
        "the private key is never shown again"
    );
    // The key is fetched with ssh-keyscan; the person compares the fingerprint shown.
    fill(&c, "khost", "127.0.0.1").await;
    fill(&c, "kport", &sshd.port.to_string()).await;
    click(&c, "host-key-pin").await;
    let fingerprint = ballast_ssh::fingerprint_sha256(&sshd.host_key_line).unwrap();
    until_text(&c, "#notice", |t| t.contains(&fingerprint)).await;
    shot("exec-hosts").await;
    sign_out(&c).await;

    // --- dev writes a script and asks for it to go online.
    let script = "#!/bin/bash\necho \"report from $(hostname) port ${SSH_CONNECTION##* }\"\necho marker-7f3a\n";
    sign_in(&c, &s, &mut dev).await;
    c.goto(&format!("{}/scripts", s.url)).await.unwrap();
    fill(&c, "name", "host-report").await;
    choose(&c, "language", "bash").await;
    fill(&c, "description", "每台主机报告一次").await;
    fill(&c, "content", script).await;
    fill(&c, "note", "first version").await;
    click(&c, "script-save").await;
    until_path(&c, |x| x == "/scripts/host-report").await;
    assert!(text(&c, "#notice").await.contains("v1"));
    assert_eq!(text(&c, "#state-1").await, "draft");
    assert_eq!(text(&c, "#content").await.trim_end(), script.trim_end());
    fill(&c, "reason-1", "reviewed by the team").await;
    click(&c, "online-1").await;
    until_text(&c, "#notice", |t| t.contains("已提交上线申请")).await;
    assert_eq!(
        text(&c, "#state-1").await,
        "draft",
        "not online before approval"
    );

    // dev cannot approve their own request.
    c.goto(&format!("{}/approvals", s.url)).await.unwrap();
    let row_id = c
        .find(Locator::Css("#pending tbody tr[id^='approval-']"))
        .await
        .expect("the request is pending")
        .attr("id")
        .await
        .unwrap()
        .unwrap();
    let approval = row_id.trim_start_matches("approval-").to_string();
    assert!(
        text(&c, &format!("#{row_id}"))
            .await
            .contains("host-report@1")
    );
    click(&c, &format!("approve-{approval}")).await;
    let refusal = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(
        refusal.contains("approval.approve") && refusal.contains("[authz.forbidden]"),
        "{refusal}"
    );
    assert!(c.find(Locator::Id(&row_id)).await.is_ok(), "still pending");
    shot("exec-self-approval-refused").await;
    sign_out(&c).await;

    // --- ops (a second person, privileged: TOTP) approves.
    sign_in(&c, &s, &mut ops).await;
    c.goto(&format!("{}/approvals", s.url)).await.unwrap();
    let row = c.find(Locator::Id(&row_id)).await.unwrap();
    let comment = row
        .find(Locator::Css("input[name='comment']"))
        .await
        .unwrap();
    comment.send_keys("看过了，可以上线").await.unwrap();
    click(&c, &format!("approve-{approval}")).await;
    until_text(&c, "#notice", |t| t.contains("已批准")).await;
    c.goto(&format!("{}/scripts/host-report", s.url))
        .await
        .unwrap();
    assert_eq!(text(&c, "#state-1").await, "online");
    assert!(text(&c, "#version-1").await.contains("(ops)"));
    sign_out(&c).await;

    // --- dev builds a plan: the script on the agent host and the SSH host, a confirmation, a
    // command on both.
    let targets = format!(
        "agent:{hostname},ssh://{}@127.0.0.1:{}",
        sshd.user, sshd.port
    );
    let plan = format!(
        r#"name = "report-and-finish"
description = "Two steps with a manual confirmation"

[[steps]]
name = "report"
kind = "script"
script = "host-report"
targets = "{targets}"

[[steps]]
name = "confirm"
kind = "confirm"
message = "Reports look right?"

[[steps]]
name = "finish"
kind = "command"
language = "bash"
command = "echo begin-finish; sleep 3; echo finished-9c1e"
targets = "{targets}"
"#
    );
    sign_in(&c, &s, &mut dev).await;
    c.goto(&format!("{}/plans", s.url)).await.unwrap();
    // A typo in the script's name is refused, and the editor keeps the text to correct.
    let typo = plan.replace("script = \"host-report\"", "script = \"host-reprot\"");
    fill(&c, "plan-toml", &typo).await;
    click(&c, "plan-save").await;
    let refusal = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(refusal.contains("host-reprot"), "{refusal}");
    assert_eq!(
        c.find(Locator::Id("plan-toml"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default(),
        typo
    );
    fill(&c, "plan-toml", &plan).await;
    click(&c, "plan-save").await;
    until_path(&c, |x| x == "/plans/report-and-finish").await;
    assert!(text(&c, "#notice").await.contains("v1"));
    sign_out(&c).await;

    // --- op (privileged: TOTP) runs it in `test` and follows it live.
    sign_in(&c, &s, &mut op).await;
    c.goto(&format!("{}/plans/report-and-finish", s.url))
        .await
        .unwrap();
    choose(&c, "environment", "test").await;
    click(&c, "run-submit").await;
    let run_path = until_path(&c, |x| x.starts_with("/runs/")).await;
    // From here the test does not navigate: the page follows the run by itself.
    until_text(&c, "#step-status-1", |t| t == "waiting_confirmation").await;
    until_text(&c, "#run-status", |t| t == "paused").await;
    assert_eq!(text(&c, "#step-status-0").await, "succeeded");
    shot("exec-run-waiting").await;
    // Nothing changes while the run waits, so the page stays put for the click.
    click(&c, "confirm-1").await;
    until_text(&c, "#step-status-1", |t| t != "waiting_confirmation").await;
    assert!(text(&c, "#notice").await.contains("已提交"));
    assert_eq!(until_path(&c, |_| true).await, run_path);
    let status_after_confirm = text(&c, "#run-status").await;
    assert_ne!(
        status_after_confirm, "succeeded",
        "the last step takes 3 s: the page must still show it going"
    );
    // The last step's cell on the agent appears live; its log is followed live.
    let agent_host = format!("agent:{hostname}");
    let cell = until_text(
        &c,
        &format!("#hosts a[data-step='2'][data-host='{agent_host}']"),
        |_| true,
    )
    .await;
    assert!(cell.contains(&agent_host), "{cell}");
    c.find(Locator::Css(&format!(
        "#hosts a[data-step='2'][data-host='{agent_host}']"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    until_path(&c, |x| x == run_path).await;
    let log = until_text(&c, "#log", |t| t.contains("finished-9c1e")).await;
    assert!(log.contains("begin-finish"), "{log}");
    let status = until_text(&c, "#run-status", |t| t == "succeeded").await;
    assert_eq!(status, "succeeded");
    // Every host succeeded, both steps on both hosts.
    let cells = c
        .execute(
            "return Array.from(document.querySelectorAll('#hosts a.host'))\
             .map(a => [a.dataset.host, a.dataset.step, a.dataset.status]);",
            vec![],
        )
        .await
        .unwrap();
    let cells: Vec<[String; 3]> = serde_json::from_value(cells).unwrap();
    assert_eq!(cells.len(), 4, "{cells:?}");
    assert!(
        cells.iter().all(|[_, _, st]| st == "succeeded"),
        "{cells:?}"
    );
    let ssh_host = format!("ssh://{}@127.0.0.1:{}", sshd.user, sshd.port);
    for (host, step) in [
        (agent_host.as_str(), "0"),
        (ssh_host.as_str(), "0"),
        (agent_host.as_str(), "2"),
        (ssh_host.as_str(), "2"),
    ] {
        assert!(
            cells.iter().any(|[h, st, _]| h == host && st == step),
            "{host} step {step}: {cells:?}"
        );
    }
    // The script's output on each host. First wait for the page of the finished run (its live
    // updates end with one reload): a click racing that reload can leave the WebDriver waiting
    // on a navigation that was replaced.
    let start = std::time::Instant::now();
    loop {
        let done = c
            .execute(
                "var m = document.getElementById('run-meta'); \
                 return !!m && m.dataset.finished === 'true' && document.readyState === 'complete';",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if done {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the run page never showed the finished run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for host in [&agent_host, &ssh_host] {
        let href = c
            .find(Locator::Css(&format!(
                "#hosts a[data-step='0'][data-host='{host}']"
            )))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        c.goto(&format!("{}{href}", s.url)).await.unwrap();
        let log = until_text(&c, "#log", |t| t.contains("marker-7f3a")).await;
        assert!(log.contains("report from "), "{host}: {log}");
    }
    assert!(
        text(&c, "#log")
            .await
            .contains(&format!("port {}", sshd.port)),
        "the last log shown is the SSH host's"
    );
    shot("exec-run-done").await;

    // --- Guards on the ad-hoc form: a dangerous command, production during trading hours.
    c.goto(&format!("{}/runs", s.url)).await.unwrap();
    choose(&c, "environment", "test").await;
    fill(&c, "targets", &agent_host).await;
    fill(&c, "command", "sudo rm -rf /").await;
    click(&c, "adhoc-submit").await;
    let blocked = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(
        blocked.contains("高危命令已阻断") && blocked.contains("[danger.blocked]"),
        "{blocked}"
    );
    // The form keeps what was typed, to correct it.
    for (id, typed) in [
        ("targets", agent_host.as_str()),
        ("command", "sudo rm -rf /"),
        ("environment", "test"),
    ] {
        let value = c
            .find(Locator::Id(id))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default();
        assert_eq!(value, typed, "#{id}");
    }
    shot("exec-danger-blocked").await;
    choose(&c, "environment", "prod").await;
    fill(&c, "targets", "agent:*").await;
    fill(&c, "command", "uptime").await;
    click(&c, "adhoc-submit").await;
    let window = until_text(&c, "#error", |t| t.contains("change_window")).await;
    assert!(
        window.contains("变更窗口禁止") && window.contains("[change_window.blocked]"),
        "{window}"
    );
    shot("exec-change-window-blocked").await;
    sign_out(&c).await;

    // --- The administrator finds every action in the audit log.
    sign_in(&c, &s, &mut admin).await;
    c.goto(&format!("{}/audit", s.url)).await.unwrap();
    assert!(text(&c, "#chain-status").await.contains("审计链完整"));
    let found = |rows: &[Vec<String>], action: &str, actor: &str, outcome: &str| {
        rows.iter().any(|r| {
            r.len() >= 7
                && r[4] == action
                && (actor.is_empty() || r[2].ends_with(&format!("({actor})")))
                && r[6] == outcome
        })
    };
    for (action, actor, outcome) in [
        ("agent.enroll_token.create", "admin", "success"),
        ("ssh.credential.put", "admin", "success"),
        ("ssh.host_key.pin", "admin", "success"),
        ("script.create", "dev", "success"),
        ("script.online.request", "dev", "success"),
        ("approval.decide", "dev", "denied"),
        ("approval.decide", "ops", "success"),
        ("script.state", "ops", "success"),
        ("plan.save", "dev", "success"),
        ("job.run.start", "op", "success"),
        ("job.step.confirm", "op", "success"),
        ("job.run.finish", "", "success"),
    ] {
        let rows = audit_search(&c, action, outcome).await;
        assert!(
            found(&rows, action, actor, outcome),
            "audit {action} by {actor} ({outcome}): {rows:?}"
        );
    }
    let denied = audit_search(&c, "job.run", "denied").await;
    let runs_denied: Vec<&Vec<String>> = denied
        .iter()
        .filter(|r| r.len() >= 8 && r[4] == "job.run" && r[2].ends_with("(op)"))
        .collect();
    assert!(
        runs_denied.iter().any(|r| r[7].contains("danger.blocked"))
            && runs_denied
                .iter()
                .any(|r| r[7].contains("change_window.blocked")),
        "{denied:?}"
    );
    shot("exec-audit").await;

    c.close().await.unwrap();
    agent_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), agent).await;
}

/// The administrator's own rules in the browser: a site rule that only warns (the operator must
/// tick the acknowledgement) and a built-in rule turned into "needs a second person" (the run
/// waits, nothing runs, the starter cannot approve, another person can, then it runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rules_warn_or_need_a_second_persons_approval_in_the_browser() {
    let s = TestServer::start().await;
    let [mut op, mut ops] = operator_and_operations(&s).await;
    let mut admin = Person::new("admin", s.admin_password.clone());
    let profile = tempfile::tempdir().unwrap();
    let (_driver, c) = browser(profile.path()).await;
    c.goto(&format!("{}/lang/zh", s.url)).await.unwrap();

    // --- The administrator edits the rules on "Hosts & rules". A rule with an unknown action is
    // refused and changes nothing.
    sign_in(&c, &s, &mut admin).await;
    c.goto(&format!("{}/agents", s.url)).await.unwrap();
    fill(
        &c,
        "rules-toml",
        "[[rule]]\nid = \"shell.power\"\naction = \"explode\"\n",
    )
    .await;
    click(&c, "rules-save").await;
    let refusal = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(refusal.contains("explode"), "{refusal}");
    let rules = "[[rule]]\nid = \"shell.power\"\naction = \"require_approval\"\n\n\
                 [[rule]]\nid = \"site.userdel\"\nlanguage = \"shell\"\naction = \"warn\"\n\
                 matcher = { type = \"command\", names = [\"userdel\"] }\n\
                 message_zh = \"删除用户\"\nmessage_en = \"deletes a user\"\n";
    fill(&c, "rules-toml", rules).await;
    click(&c, "rules-save").await;
    until_text(&c, "#notice", |t| t.contains("规则已保存")).await;
    let table = text(&c, "#rules").await;
    assert!(
        table.contains("site.userdel") && table.contains("shell.power"),
        "{table}"
    );
    sign_out(&c).await;

    // --- The operator: a warned command is refused until the warning is acknowledged.
    sign_in(&c, &s, &mut op).await;
    c.goto(&format!("{}/runs", s.url)).await.unwrap();
    choose(&c, "environment", "test").await;
    fill(&c, "targets", "local").await;
    fill(&c, "command", "userdel nobody-here-7d1 || echo kept-going").await;
    click(&c, "adhoc-submit").await;
    let warned = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(
        warned.contains("删除用户") && warned.contains("[guard.warning_unacknowledged]"),
        "{warned}"
    );
    // The form kept the command; tick the acknowledgement and run it.
    click(&c, "acknowledge").await;
    click(&c, "adhoc-submit").await;
    until_path(&c, |x| x.starts_with("/runs/")).await;
    let status = until_text(&c, "#run-status", |t| t == "succeeded" || t == "failed").await;
    assert_eq!(status, "succeeded");

    // A reboot hidden behind `||` waits for a second person; nothing runs meanwhile.
    c.goto(&format!("{}/runs", s.url)).await.unwrap();
    choose(&c, "environment", "test").await;
    fill(&c, "targets", "local").await;
    fill(&c, "command", "true || /sbin/reboot").await;
    click(&c, "adhoc-submit").await;
    let run_path = until_path(&c, |x| x.starts_with("/runs/")).await;
    assert_eq!(
        until_text(&c, "#run-status", |t| !t.is_empty()).await,
        "waiting_approval"
    );
    // The starter cannot approve their own run.
    c.goto(&format!("{}/approvals", s.url)).await.unwrap();
    let row_id = c
        .find(Locator::Css("#pending tbody tr[id^='approval-']"))
        .await
        .expect("the run's approval request is pending")
        .attr("id")
        .await
        .unwrap()
        .unwrap();
    let approval = row_id.trim_start_matches("approval-").to_string();
    click(&c, &format!("approve-{approval}")).await;
    let refusal = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(refusal.contains("[authz."), "{refusal}");
    c.goto(&format!("{}{run_path}", s.url)).await.unwrap();
    assert_eq!(text(&c, "#run-status").await, "waiting_approval");
    assert!(
        c.find(Locator::Css("#hosts a.host")).await.is_err(),
        "no task before approval"
    );
    sign_out(&c).await;

    // --- A second person approves; the run goes on by itself.
    sign_in(&c, &s, &mut ops).await;
    c.goto(&format!("{}/approvals", s.url)).await.unwrap();
    click(&c, &format!("approve-{approval}")).await;
    until_text(&c, "#notice", |t| t.contains("已批准")).await;
    c.goto(&format!("{}{run_path}", s.url)).await.unwrap();
    let status = until_text(&c, "#run-status", |t| t == "succeeded" || t == "failed").await;
    assert_eq!(status, "succeeded");
    sign_out(&c).await;

    // --- The audit log has the rule change, the warning, the request and both decisions.
    sign_in(&c, &s, &mut admin).await;
    c.goto(&format!("{}/audit", s.url)).await.unwrap();
    for (action, outcome, actor) in [
        ("danger.rules.set", "success", "admin"),
        ("approval.request", "success", "op"),
        ("approval.decide", "denied", "op"),
        ("approval.decide", "success", "ops"),
    ] {
        let rows = audit_search(&c, action, outcome).await;
        assert!(
            rows.iter()
                .any(|r| r.len() >= 7 && r[4] == action && r[2].ends_with(&format!("({actor})"))),
            "audit {action} {outcome} by {actor}: {rows:?}"
        );
    }
    c.close().await.unwrap();
}

/// `op` (automation operator in `test`) and `ops` (platform operations everywhere), created by
/// the administrator's command line.
async fn operator_and_operations(s: &TestServer) -> [Person; 2] {
    let mut people = Vec::new();
    for (name, role, scope) in [
        ("op", "automation_operator", "environment:test"),
        ("ops", "platform_operations", "global"),
    ] {
        let (_, initial) = ballast_server::admin::user_add(
            &s.state,
            &ballast_server::service::CreateUser {
                username: name.into(),
                real_name: format!("测试 {name}"),
                department: "运维部".into(),
                kind: "employee".into(),
                vendor: None,
                contract_end: None,
                roles: vec![ballast_server::service::Grant {
                    role: role.into(),
                    scope: scope.into(),
                }],
            },
        )
        .await
        .unwrap();
        people.push(Person::new(name, initial));
    }
    people.try_into().ok().unwrap()
}

/// Issue 7, "Done when": a person imports a host spreadsheet (a renamed column is reported by row
/// and column first), sees the business topology, targets a job at `module = "行情网关"`, sees the
/// drift discovery reports and settles it, and reads the data-quality dashboard; creates, edits
/// (a bad value refused next to its field), relates and deletes an instance from the pages, and
/// edits a model whose change would invalidate instances, which files an approval request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_imports_hosts_sees_topology_targets_a_query_and_settles_drift() {
    let s = TestServer::start().await;
    let [mut op, mut ops] = operator_and_operations(&s).await;
    let admin = s.admin_token().await;
    // A real agent on this machine, enrolled in `test`.
    let (host, facts, stop, _agent_dir) = crate::cmdb::enrolled_agent(&s, &admin).await;
    let files = tempfile::tempdir().unwrap();
    let bad = files.path().join("hosts-bad.csv");
    std::fs::write(&bad, "name,ip,operating_system\nx-1,10.20.0.5,CentOS\n").unwrap();
    let good = files.path().join("hosts.csv");
    std::fs::write(
        &good,
        format!("名称,ip,os,owner\n{host},10.20.0.1,Recorded OS 6.0,张三\ndb-9,10.20.0.9,Kylin V10,李四\n"),
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (_driver, c) = browser(profile.path()).await;
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-cmdb");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = |name: &'static str| {
        let c = c.clone();
        let p = shots.join(format!("{name}.png"));
        async move { std::fs::write(p, c.screenshot().await.unwrap()).unwrap() }
    };
    c.goto(&format!("{}/lang/zh", s.url)).await.unwrap();

    // --- ops imports the host spreadsheet: a renamed column is refused by row and column, and
    // nothing is created; the right file is previewed, then exactly it is applied.
    sign_in(&c, &s, &mut ops).await;
    click(&c, "nav-cmdb").await;
    click(&c, "tab-import").await;
    until_path(&c, |x| x == "/cmdb/import").await;
    let upload = |file: std::path::PathBuf| {
        let c = c.clone();
        async move {
            choose(&c, "model", "host").await;
            choose(&c, "environment", "test").await;
            c.find(Locator::Id("file"))
                .await
                .unwrap()
                .send_keys(&file.display().to_string())
                .await
                .unwrap();
            click(&c, "import-preview").await;
        }
    };
    upload(bad).await;
    let errors = until_text(&c, "#import-errors", |t| !t.is_empty()).await;
    assert!(
        errors.contains("operating_system") && errors.contains('C'),
        "{errors}"
    );
    assert!(
        c.find(Locator::Id("import-apply")).await.is_err(),
        "no apply with errors"
    );
    upload(good).await;
    let summary = until_text(&c, "#import-summary", |t| t.starts_with("预览")).await;
    assert!(
        summary.contains("新建 2") && summary.contains("错误 0"),
        "{summary}"
    );
    shot("cmdb-import-preview").await;
    click(&c, "import-apply").await;
    let summary = until_text(&c, "#import-summary", |t| t.starts_with("已导入")).await;
    assert!(summary.contains("新建 2"), "{summary}");

    // The business topology (set up through the API, as a script would).
    let w = s
        .user_token("cmdb-api", &[("platform_operations", "global")])
        .await;
    let (_, hosts) =
        crate::exec::get(&s, &w, "/api/v1/cmdb/instances?model=host&environment=test").await;
    let id_of = |name: &str| {
        hosts
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (host_id, db_id) = (id_of(&host), id_of("db-9"));
    let biz = crate::cmdb::create(
        &s,
        &w,
        "business",
        "test",
        "集中交易",
        serde_json::json!({"owner": "张三", "level": "core"}),
    )
    .await;
    let sub = crate::cmdb::create(&s, &w, "subsystem", "test", "行情", serde_json::json!({})).await;
    let md = crate::cmdb::create(&s, &w, "module", "test", "行情网关", serde_json::json!({})).await;
    let clear = crate::cmdb::create(&s, &w, "module", "test", "清算", serde_json::json!({})).await;
    for (child, parent) in [
        (sub, biz),
        (md, sub),
        (clear, sub),
        (host_id, md),
        (db_id, clear),
    ] {
        let (st, v) = crate::cmdb::relate(&s, &w, "belongs_to", child, parent).await;
        assert_eq!(st, 201, "{v}");
    }
    click(&c, "tab-topology").await;
    choose(&c, "environment", "test").await;
    click(&c, "topology-show").await;
    let tree = until_text(&c, "#topology", |t| t.contains("行情网关")).await;
    let lines: Vec<&str> = tree.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {tree}"))
    };
    assert!(
        at("集中交易") < at("行情网关") && at("行情网关") < at(&host),
        "{tree}"
    );
    shot("cmdb-topology").await;

    // --- Discovery reports the host's real OS; the recorded one was kept by hand: drift, queued.
    click(&c, "tab-quality").await;
    click(&c, "discover-now").await;
    until_text(&c, "#notice", |t| t.contains("发现完成")).await;
    let os = facts["os"].as_str().unwrap();
    let conflicts = text(&c, "#conflicts").await;
    assert!(
        conflicts.contains(&host)
            && conflicts.contains("Recorded OS 6.0")
            && conflicts.contains(os),
        "{conflicts}"
    );
    let row = text(&c, "#quality-host-test").await;
    let cells: Vec<&str> = row.split_whitespace().collect();
    // model, environment, instances, completeness, missing, invalid, fresh, stale, conflicts,
    // consistency
    assert_eq!(&cells[..3], ["host", "test", "2"], "{row}");
    assert_eq!(
        (cells[6], cells[7], cells[8]),
        ("1", "1", "1"),
        "fresh, stale, conflicts: {row}"
    );
    shot("cmdb-quality").await;
    let (_, open) = crate::exec::get(&s, &w, "/api/v1/cmdb/conflicts").await;
    let conflict = open[0]["id"].as_i64().unwrap();
    click(&c, &format!("accept-{conflict}")).await;
    until_text(&c, "#notice", |t| t.contains("已采用发现值")).await;
    c.goto(&format!("{}/cmdb/instances/{host_id}", s.url))
        .await
        .unwrap();
    let attr = text(&c, "#attr-os").await;
    assert!(attr.contains(os) && attr.contains("discovery"), "{attr}");
    let history = text(&c, "#history").await;
    assert!(
        history.contains("discovery") && history.contains("ui"),
        "{history}"
    );
    // Search with the query language, as job targeting reads it.
    click(&c, "tab-search").await;
    fill(&c, "q", "module = \"行情网关\"").await;
    click(&c, "search").await;
    let found = until_text(&c, "#cis", |t| t.contains(&host)).await;
    assert!(!found.contains("db-9"), "{found}");
    fill(&c, "q", "module = ").await;
    click(&c, "search").await;
    let err = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(err.contains("列"), "the column is named: {err}");

    // --- Edit pages: a new host from the page, an attribute changed (history via ui), a bad
    // value refused next to its field, a relation added, refused by cardinality and removed,
    // the instance deleted.
    click(&c, "new-instance").await;
    until_path(&c, |x| x == "/cmdb/instances/new").await;
    choose(&c, "new-model", "host").await;
    choose(&c, "new-environment", "test").await;
    click(&c, "new-choose").await;
    until_text(&c, "#instance-form h2", |t| t.contains("test")).await;
    fill(&c, "name", "web-7").await;
    fill(&c, "attr_ip", "10.20.0.77").await;
    fill(&c, "attr_owner", "王五").await;
    click(&c, "instance-create").await;
    until_text(&c, "#notice", |t| t.contains("已新建")).await;
    let web = path(&c).await;
    assert!(web.starts_with("/cmdb/instances/"), "{web}");
    fill(&c, "attr_owner", "赵六").await;
    click(&c, "instance-save").await;
    until_text(&c, "#notice", |t| t.contains("已保存")).await;
    let history = text(&c, "#history tbody tr").await;
    assert!(
        history.contains("update") && history.contains("ui") && history.contains("赵六"),
        "{history}"
    );
    fill(&c, "attr_ssh_port", "twenty-two").await;
    click(&c, "instance-save").await;
    let field = until_text(&c, "#err-ssh_port", |t| !t.is_empty()).await;
    assert!(field.contains("cmdb."), "{field}");
    assert_eq!(
        c.find(Locator::Id("attr_ssh_port"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("twenty-two"),
        "the value typed is kept"
    );
    // runs_on: at most one host.
    choose(&c, "rel-kind", "runs_on").await;
    choose(&c, "rel-model", "host").await;
    fill(&c, "rel-name", "db-9").await;
    click(&c, "relation-add").await;
    until_text(&c, "#notice", |t| t.contains("已添加关系")).await;
    assert!(text(&c, "#relations").await.contains("db-9"));
    choose(&c, "rel-kind", "runs_on").await;
    choose(&c, "rel-model", "host").await;
    fill(&c, "rel-name", &host).await;
    click(&c, "relation-add").await;
    let err = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(err.contains("cmdb.relation_cardinality"), "{err}");
    c.find(Locator::Css("#relations button[id^='relation-remove-']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_text(&c, "#notice", |t| t.contains("已删除关系")).await;
    assert!(!text(&c, "#relations").await.contains("db-9"));
    fill(&c, "confirm", "web-7").await;
    click(&c, "instance-delete").await;
    until_text(&c, "#notice", |t| {
        t.contains("已删除") && t.contains("web-7")
    })
    .await;
    assert_eq!(path(&c).await, "/cmdb");

    // --- A model edited through its page: a JSON error names line and column; "check" counts
    // the instances a new required attribute would invalidate; "save" files an approval.
    click(&c, "tab-models").await;
    until_path(&c, |x| x == "/cmdb/models").await;
    c.find(Locator::Css("#model-host a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until_path(&c, |x| x == "/cmdb/models/host").await;
    until_text(&c, "#model-attributes", |t| t.contains("ssh_port")).await;
    let definition: String = c
        .execute(
            "return document.getElementById('definition').value;",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let set_definition = |text: String| {
        let c = c.clone();
        async move {
            c.execute(
                "document.getElementById('definition').value = arguments[0];",
                vec![serde_json::Value::String(text)],
            )
            .await
            .unwrap();
        }
    };
    set_definition("{\"key\": \"host\",\n  oops}".into()).await;
    click(&c, "model-check").await;
    let err = until_text(&c, "#error", |t| !t.is_empty()).await;
    assert!(err.contains("第 2 行"), "{err}");
    let mut model: serde_json::Value = serde_json::from_str(&definition).unwrap();
    model["attributes"].as_array_mut().unwrap().push(serde_json::json!(
        {"key": "idc_zone", "name_zh": "机房区域", "name_en": "Zone", "type": "enum", "values": ["a", "b"], "required": true}));
    let changed = serde_json::to_string_pretty(&model).unwrap();
    set_definition(changed.clone()).await;
    click(&c, "model-check").await;
    let report = until_text(&c, "#model-report-summary", |t| !t.is_empty()).await;
    assert!(report.contains("将使 2 "), "{report}");
    set_definition(changed).await;
    click(&c, "model-save").await;
    let notice = until_text(&c, "#notice", |t| t.contains("已提交审批")).await;
    assert!(notice.contains('#'), "{notice}");
    assert_eq!(text(&c, "#model-version").await, "1", "not applied");
    assert!(text(&c, "#model-pending").await.contains("host@2"));
    shot("cmdb-model-approval").await;
    c.goto(&format!("{}/approvals", s.url)).await.unwrap();
    let pending = text(&c, "#pending").await;
    assert!(
        pending.contains("cmdb.model.change") && pending.contains("host@2"),
        "{pending}"
    );
    sign_out(&c).await;

    // --- The operator targets a job at the module: it runs on the module's host alone.
    sign_in(&c, &s, &mut op).await;
    // A reader (cmdb.read only) sees no edit form, no model editor and no "new instance".
    c.goto(&format!("{}/cmdb/instances/{host_id}", s.url))
        .await
        .unwrap();
    until_text(&c, "#attributes", |t| t.contains("ip")).await;
    for form in ["instance-form", "relation-form", "delete-form"] {
        assert!(
            c.find(Locator::Id(form)).await.is_err(),
            "{form} shown to a reader"
        );
    }
    c.goto(&format!("{}/cmdb/models/host", s.url))
        .await
        .unwrap();
    until_text(&c, "#model-attributes", |t| t.contains("ssh_port")).await;
    assert!(c.find(Locator::Id("model-form")).await.is_err());
    c.goto(&format!("{}/runs", s.url)).await.unwrap();
    choose(&c, "environment", "test").await;
    fill(&c, "targets", "cmdb:module = \"行情网关\"").await;
    fill(&c, "command", "echo on-$(hostname)").await;
    click(&c, "adhoc-submit").await;
    until_path(&c, |x| x.starts_with("/runs/")).await;
    let status = until_text(&c, "#run-status", |t| t == "succeeded" || t == "failed").await;
    assert_eq!(status, "succeeded");
    let page = c.source().await.unwrap();
    assert!(
        page.contains(&format!("agent:{host}")) && !page.contains("db-9"),
        "only the module's host"
    );
    shot("cmdb-targeted-run").await;
    stop.cancel();
}
