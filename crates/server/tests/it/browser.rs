//! A person's path through the web UI in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by scripts/test): sign in with password, change it at first
//! sign-in, enrol and use TOTP, create a user, see a separation-of-duties refusal, search the audit
//! log. Nothing downloads a browser.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use super::TestServer;

struct Driver(Child);

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

async fn browser(profile: &std::path::Path) -> (Driver, Client) {
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

async fn fill(c: &Client, id: &str, value: &str) {
    let e = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"));
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap();
}

/// The current path once navigation settled (a click that submits a form returns before the next
/// page has loaded).
async fn path(c: &Client) -> String {
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
async fn text(c: &Client, css: &str) -> String {
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
