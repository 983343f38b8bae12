//! Web pages: language from the browser, user management with a visible SoD refusal, escaping,
//! modules that do not exist yet shown as such.

use reqwest::StatusCode;

use super::TestServer;
use super::authn::{admin_ready, csrf_of};

#[tokio::test]
async fn language_follows_the_browser_and_the_switch() {
    let s = TestServer::start().await;
    let c = s.client();
    let zh = c
        .get(format!("{}/login", s.url))
        .header("accept-language", "zh-CN,zh;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(zh.contains("登录 Ballast") && zh.contains("lang=\"zh-CN\""));
    let en = c
        .get(format!("{}/login", s.url))
        .header("accept-language", "en-US,en;q=0.8")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(en.contains("Sign in to Ballast") && en.contains("lang=\"en\""));
    let r = c
        .get(format!("{}/lang/en", s.url))
        .header("referer", format!("{}/login", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login");
    let after = c
        .get(format!("{}/login", s.url))
        .header("accept-language", "zh-CN")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        after.contains("Sign in to Ballast"),
        "the cookie wins over the header"
    );
}

#[tokio::test]
async fn home_lists_modules_honestly() {
    let s = TestServer::start().await;
    let (c, _) = admin_ready(&s).await;
    let home = c
        .get(format!("{}/", s.url))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(home.contains("href=\"/users\"") && home.contains("href=\"/audit\""));
    // Job execution exists now (the administrator reads runs); the later modules say so.
    assert!(home.contains("href=\"/runs\""), "{home}");
    assert!(home.matches("Not yet available").count() >= 7, "{home}");
    assert!(
        !home.contains("href=\"\""),
        "no links to modules that do not exist"
    );
}

#[tokio::test]
async fn create_user_and_see_a_sod_refusal() {
    let s = TestServer::start().await;
    let (c, _) = admin_ready(&s).await;
    let csrf = csrf_of(&c, &s.url, "/users").await;
    let r = c
        .post(format!("{}/users", s.url))
        .header("accept-language", "zh-CN")
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "zhao.liu"),
            ("real_name", "<b>赵六</b>"),
            ("department", "审计部"),
            ("type", "employee"),
            ("role", "auditor"),
            ("scope", "global"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body = r.text().await.unwrap();
    assert!(body.contains("已创建用户") && body.contains("zhao.liu"));
    assert!(
        !body.contains("<b>赵六</b>") && body.contains("赵六"),
        "escaped: {}",
        &body[body.find("赵六").map_or(0, |i| i.saturating_sub(40))..]
    );
    let id = s
        .state
        .store
        .user_by_name("zhao.liu")
        .await
        .unwrap()
        .unwrap()
        .id;
    let r = c
        .post(format!("{}/users/{id}/roles", s.url))
        .header("accept-language", "zh-CN")
        .form(&[
            ("csrf", csrf.as_str()),
            ("role", "platform_admin"),
            ("scope", "global"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("职责分离") && body.contains("id=\"error\""),
        "{body}"
    );
    // A forged CSRF token changes nothing.
    let r = c
        .post(format!("{}/users/{id}/roles", s.url))
        .form(&[
            ("csrf", "nope"),
            ("role", "product_design"),
            ("scope", "global"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.state.store.bindings(Some(id)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn audit_page_searches_and_shows_chain_status() {
    let s = TestServer::start().await;
    let (c, _) = admin_ready(&s).await;
    let page = c
        .get(format!("{}/audit?action=auth.&outcome=success", s.url))
        .header("accept-language", "en")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Audit chain intact"), "{page}");
    assert!(page.contains("auth.login"), "{page}");
    assert!(!page.contains(">user.create<"), "filtered by action prefix");
    // Platform admins read the log; only auditors export it.
    assert!(!page.contains("/audit/export?format=csv"));
    let r = c
        .get(format!("{}/audit/export?format=csv", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let auditor = s.user_token("sun.ba", &[("auditor", "global")]).await;
    for (format, magic) in [
        ("csv", &b"seq,at,actor"[..]),
        ("xlsx", &b"PK"[..]),
        ("json", &b"["[..]),
    ] {
        let r = s
            .client()
            .get(format!("{}/api/v1/audit/export?format={format}", s.url))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{format}");
        assert!(r.bytes().await.unwrap().starts_with(magic), "{format}");
    }
    let exports = s
        .audit_actions()
        .await
        .iter()
        .filter(|(a, o)| a == "audit.export" && o == "success")
        .count();
    assert_eq!(exports, 3);
}

#[tokio::test]
async fn accounts_are_disabled_and_reset_from_the_users_page() {
    let s = TestServer::start().await;
    let (c, _) = admin_ready(&s).await;
    s.user_token("feng.yi", &[("product_design", "global")])
        .await;
    let id = s
        .state
        .store
        .user_by_name("feng.yi")
        .await
        .unwrap()
        .unwrap()
        .id;
    let csrf = csrf_of(&c, &s.url, "/users").await;
    let post = |op: &'static str| {
        c.post(format!("{}/users/{id}/account", s.url))
            .header("accept-language", "en")
            .form(&[
                ("csrf", csrf.as_str()),
                ("op", op),
                ("reason", "moved team"),
            ])
            .send()
    };
    let body = post("reset_password").await.unwrap().text().await.unwrap();
    assert!(body.contains("New password (shown once"), "{body}");
    post("disable").await.unwrap();
    let u = s
        .state
        .store
        .user_by_name("feng.yi")
        .await
        .unwrap()
        .unwrap();
    assert!(u.disabled && u.disabled_reason.as_deref() == Some("moved team"));
    post("enable").await.unwrap();
    assert!(
        !s.state
            .store
            .user_by_name("feng.yi")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    let actions = s.audit_actions().await;
    for a in ["user.reset_password", "user.disable", "user.enable"] {
        assert!(
            actions.contains(&(a.to_string(), "success".to_string())),
            "{a}"
        );
    }
}
