//! Sign-in through the web forms: CSRF, forced password change, lock-out with growing delay,
//! the TOTP second factor with replay protection and recovery codes, session expiry.

use reqwest::StatusCode;

use super::TestServer;

/// The hidden `csrf` value of the page at `path`.
pub async fn csrf_of(c: &reqwest::Client, base: &str, path: &str) -> String {
    let body = c
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let i = body
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field on {path}:\n{body}"));
    let rest = &body[i + 19..];
    rest[..rest.find('"').unwrap()].to_string()
}

pub async fn login(
    c: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    let csrf = csrf_of(c, base, "/login").await;
    c.post(format!("{base}/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Signs in as admin and changes the initial password; returns the client and the new password.
pub async fn admin_session(s: &TestServer) -> (reqwest::Client, String) {
    let c = s.client();
    let r = login(&c, &s.url, "admin", &s.admin_password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let new = "Harbour-Lights-2026!".to_string();
    let csrf = csrf_of(&c, &s.url, "/account/password").await;
    let r = c
        .post(format!("{}/account/password", s.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current_password", s.admin_password.as_str()),
            ("new_password", new.as_str()),
            ("confirm_password", new.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    (c, new)
}

#[tokio::test]
async fn first_login_forces_a_password_change() {
    let s = TestServer::start().await;
    let c = s.client();
    let r = login(&c, &s.url, "admin", &s.admin_password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("ballast_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // Every page leads to the password change first.
    for path in ["/", "/users", "/audit"] {
        let r = c.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(location(&r), "/account/password", "{path}");
    }
    // A weak password is refused with the policy named.
    let csrf = csrf_of(&c, &s.url, "/account/password").await;
    let r = c
        .post(format!("{}/account/password", s.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current_password", s.admin_password.as_str()),
            ("new_password", "short"),
            ("confirm_password", "short"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("12"));
    let (c, new) = admin_session(&s).await;
    let home = c.get(format!("{}/", s.url)).send().await.unwrap();
    // admin holds a privileged role and has no second factor yet: enrolment comes next.
    assert_eq!(location(&home), "/account/mfa");
    assert!(!new.is_empty());
}

#[tokio::test]
async fn wrong_csrf_is_refused() {
    let s = TestServer::start().await;
    let c = s.client();
    let _ = csrf_of(&c, &s.url, "/login").await;
    let r = c
        .post(format!("{}/login", s.url))
        .form(&[
            ("csrf", "forged"),
            ("username", "admin"),
            ("password", s.admin_password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A session cookie without the CSRF header cannot change state through the API.
    let (c, _) = admin_session(&s).await;
    let r = c
        .post(format!("{}/api/v1/tokens", s.url))
        .json(&serde_json::json!({"name": "x", "permissions": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["code"],
        "auth.csrf"
    );
}

#[tokio::test]
async fn lockout_after_repeated_failures_with_growing_delay() {
    let s = TestServer::start().await;
    let c = s.client();
    for _ in 0..5 {
        let r = login(&c, &s.url, "admin", "wrong-password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Locked: even the right password is refused, saying so.
    let r = login(&c, &s.url, "admin", &s.admin_password).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.unwrap().contains("锁定"));
    s.clock.advance(chrono::Duration::seconds(31));
    let r = login(&c, &s.url, "admin", "wrong-again").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let creds = s.state.store.credentials(1).await.unwrap().unwrap();
    let delay = creds.locked_until.unwrap() - s.clock_now();
    assert!(
        delay >= chrono::Duration::seconds(59),
        "the delay grows: {delay}"
    );
    s.clock.advance(chrono::Duration::seconds(61));
    let r = login(&c, &s.url, "admin", &s.admin_password).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let actions = s.audit_actions().await;
    assert!(
        actions
            .iter()
            .filter(|(a, o)| a == "auth.login" && o == "failure")
            .count()
            >= 7
    );
    assert!(actions.contains(&("auth.lockout".into(), "success".into())));
}

#[tokio::test]
async fn totp_enrolment_then_second_factor_at_login() {
    let s = TestServer::start().await;
    let (c, password) = admin_session(&s).await;
    let page = c
        .get(format!("{}/account/mfa", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<svg") && page.contains("otpauth://totp/Ballast:admin"));
    let i = page.find("id=\"mfa-secret\">").unwrap() + 16;
    let secret = page[i..i + page[i..].find('<').unwrap()].to_string();
    let csrf = csrf_of(&c, &s.url, "/account/mfa").await;
    let code = ballast_core::mfa::current_code(&secret, s.clock_now()).unwrap();
    let r = c
        .post(format!("{}/account/mfa", s.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("secret", secret.as_str()),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"recovery-codes\""), "{body}");
    let recovery: Vec<String> = body
        .split("<li class=\"mono\">")
        .skip(1)
        .map(|p| p[..p.find('<').unwrap()].to_string())
        .collect();
    assert_eq!(recovery.len(), 10);
    // The secret is stored sealed with the credential key, not as the base32 the device got.
    let admin = s.state.store.user_by_name("admin").await.unwrap().unwrap();
    let stored = s
        .state
        .store
        .credentials(admin.id)
        .await
        .unwrap()
        .unwrap()
        .mfa_secret
        .unwrap();
    assert!(stored.starts_with("v1:"), "{stored}");
    assert!(!stored.contains(&secret));
    // A new sign-in needs the second factor before any page.
    let c2 = s.client();
    let r = login(&c2, &s.url, "admin", &password).await;
    assert_eq!(location(&r), "/login/mfa");
    let r = c2.get(format!("{}/users", s.url)).send().await.unwrap();
    assert_eq!(location(&r), "/login/mfa");
    let csrf = csrf_of(&c2, &s.url, "/login/mfa").await;
    // The enrolment code cannot be replayed.
    let r = c2
        .post(format!("{}/login/mfa", s.url))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    s.clock.advance(chrono::Duration::seconds(30));
    let code = ballast_core::mfa::current_code(&secret, s.clock_now()).unwrap();
    let r = c2
        .post(format!("{}/login/mfa", s.url))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/");
    assert_eq!(
        c2.get(format!("{}/users", s.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // A recovery code works once.
    let c3 = s.client();
    login(&c3, &s.url, "admin", &password).await;
    let csrf = csrf_of(&c3, &s.url, "/login/mfa").await;
    let r = c3
        .post(format!("{}/login/mfa", s.url))
        .form(&[("csrf", csrf.as_str()), ("code", recovery[0].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/");
    let c4 = s.client();
    login(&c4, &s.url, "admin", &password).await;
    let csrf = csrf_of(&c4, &s.url, "/login/mfa").await;
    let r = c4
        .post(format!("{}/login/mfa", s.url))
        .form(&[("csrf", csrf.as_str()), ("code", recovery[0].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sessions_expire_when_idle() {
    let s = TestServer::start().await;
    let (c, _) = admin_session(&s).await;
    assert_eq!(
        location(&c.get(format!("{}/", s.url)).send().await.unwrap()),
        "/account/mfa"
    );
    s.clock.advance(chrono::Duration::minutes(31));
    assert_eq!(
        location(&c.get(format!("{}/", s.url)).send().await.unwrap()),
        "/login"
    );
}

impl TestServer {
    pub fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use ballast_core::clock::Clock;
        self.clock.now()
    }
}

/// Signs in as admin, changes the password and enrols the second factor: a client ready to use
/// every page. Returns the client and the TOTP secret.
pub async fn admin_ready(s: &TestServer) -> (reqwest::Client, String) {
    let (c, _) = admin_session(s).await;
    let page = c
        .get(format!("{}/account/mfa", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let i = page.find("id=\"mfa-secret\">").unwrap() + 16;
    let secret = page[i..i + page[i..].find('<').unwrap()].to_string();
    let csrf = csrf_of(&c, &s.url, "/account/mfa").await;
    let code = ballast_core::mfa::current_code(&secret, s.clock_now()).unwrap();
    let r = c
        .post(format!("{}/account/mfa", s.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("secret", secret.as_str()),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("recovery-codes"));
    (c, secret)
}
