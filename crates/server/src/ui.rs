//! Server-rendered web UI (askama templates, no JavaScript needed), zh-CN and English.
//! Every form posts to a handler that calls the same `service` functions as the API.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ballast_core::authz::{self, Permission, Target};
use ballast_core::guard::Principal;
use ballast_core::mfa;
use ballast_store::AuditQuery;
use serde::Deserialize;

use crate::auth::{
    self, LOGIN_CSRF_COOKIE, PageSession, SESSION_COOKIE, SignIn, cookie, same_secret, set_cookie,
};
use crate::error::ApiError;
use crate::service::{self, CreateUser, Grant, random_hex};
use crate::state::AppState;

pub const LANG_COOKIE: &str = "ballast_lang";

/// The page language: `ballast_lang` cookie, else the browser's Accept-Language, else Chinese.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn from_headers(h: &HeaderMap) -> Lang {
        match cookie(h, LANG_COOKIE).as_deref() {
            Some("en") => return Lang::En,
            Some("zh") => return Lang::Zh,
            _ => {}
        }
        let accept = h
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let first = accept.split(',').next().unwrap_or_default().trim();
        if first.starts_with("en") {
            Lang::En
        } else {
            Lang::Zh
        }
    }
}

/// Translations for templates: `{{ t.s("login.title") }}`.
#[derive(Clone, Copy)]
pub struct Tr(pub Lang);

const STRINGS: &[(&str, &str, &str)] = &[
    ("nav.home", "首页", "Home"),
    ("nav.users", "用户与角色", "Users & roles"),
    ("nav.audit", "审计日志", "Audit log"),
    ("nav.logout", "退出", "Sign out"),
    ("lang.switch", "English", "中文"),
    ("login.title", "登录 Ballast", "Sign in to Ballast"),
    ("login.username", "用户名", "Username"),
    ("login.password", "密码", "Password"),
    ("login.submit", "登录", "Sign in"),
    ("mfa.title", "两步验证", "Two-step verification"),
    (
        "mfa.prompt",
        "请输入验证器应用中的 6 位验证码，或一个恢复码。",
        "Enter the 6-digit code from your authenticator app, or a recovery code.",
    ),
    ("mfa.code", "验证码", "Code"),
    ("mfa.submit", "验证", "Verify"),
    ("password.title", "修改密码", "Change password"),
    (
        "password.forced",
        "首次登录或密码被重置后，须先修改密码。",
        "You must change your password before continuing (first sign-in or reset).",
    ),
    ("password.current", "当前密码", "Current password"),
    ("password.new", "新密码", "New password"),
    ("password.confirm", "确认新密码", "Confirm new password"),
    (
        "password.policy",
        "至少 12 个字符，包含小写、大写、数字、符号中的至少 3 类，且不含用户名。",
        "At least 12 characters with 3 of: lower case, upper case, digits, symbols; not containing the username.",
    ),
    ("password.submit", "修改密码", "Change password"),
    (
        "password.mismatch",
        "两次输入的新密码不一致",
        "the two new passwords differ",
    ),
    (
        "enrol.title",
        "两步验证设置",
        "Two-step verification set-up",
    ),
    (
        "enrol.required",
        "您的角色属于特权角色，须先启用两步验证。",
        "Your role is privileged: set up two-step verification to continue.",
    ),
    (
        "enrol.scan",
        "用验证器应用扫描二维码：",
        "Scan the QR code with an authenticator app:",
    ),
    (
        "enrol.manual",
        "或手动输入密钥：",
        "or enter the key by hand:",
    ),
    ("enrol.submit", "启用", "Enable"),
    (
        "enrol.done",
        "两步验证已启用。",
        "Two-step verification is on.",
    ),
    (
        "enrol.recovery",
        "请妥善保存以下一次性恢复码（只显示这一次）：",
        "Keep these one-time recovery codes safe (shown only now):",
    ),
    ("enrol.continue", "继续", "Continue"),
    (
        "home.title",
        "运维自动化平台",
        "Operation automation platform",
    ),
    ("home.open", "进入", "Open"),
    ("home.unavailable", "尚未提供", "Not yet available"),
    ("home.you", "我的账号", "My account"),
    ("home.roles", "角色", "Roles"),
    ("users.title", "用户与角色", "Users and roles"),
    ("users.username", "用户名", "Username"),
    ("users.real_name", "真实姓名", "Real name"),
    ("users.department", "部门", "Department"),
    ("users.type", "人员类型", "Type"),
    ("users.employee", "正式员工", "Employee"),
    ("users.outsourced", "外包人员", "Outsourced"),
    ("users.vendor", "外包厂商", "Vendor"),
    ("users.contract_end", "合同结束日期", "Contract end"),
    ("users.roles", "角色", "Roles"),
    ("users.role", "角色", "Role"),
    (
        "users.scope",
        "范围（global / environment:prod / business:名称）",
        "Scope (global / environment:prod / business:NAME)",
    ),
    ("users.status", "状态", "Status"),
    ("users.disabled", "已停用", "disabled"),
    ("users.active", "正常", "active"),
    ("users.grant", "授予", "Grant"),
    ("users.create", "新建用户", "Create user"),
    (
        "users.created",
        "已创建用户，初始密码（只显示这一次，首次登录须修改）：",
        "User created. Initial password (shown once; must be changed at first sign-in):",
    ),
    ("users.granted", "已授予角色", "Role granted"),
    ("users.enable", "启用", "Enable"),
    ("users.disable", "停用", "Disable"),
    ("users.reason", "停用原因", "Reason"),
    ("users.reset_password", "重置密码", "Reset password"),
    ("users.reset_mfa", "重置两步验证", "Reset 2FA"),
    ("users.done", "已完成", "Done"),
    (
        "users.new_password",
        "新密码（只显示这一次，下次登录须修改）：",
        "New password (shown once; must be changed at next sign-in):",
    ),
    ("audit.title", "审计日志", "Audit log"),
    ("audit.actor", "操作人", "Actor"),
    ("audit.action", "操作", "Action"),
    ("audit.object", "对象", "Object"),
    ("audit.outcome", "结果", "Outcome"),
    ("audit.from", "起始日期", "From"),
    ("audit.to", "截止日期", "To"),
    ("audit.text", "包含文字", "Text"),
    ("audit.search", "查询", "Search"),
    ("audit.export", "导出", "Export"),
    ("audit.time", "时间（北京）", "Time (Beijing)"),
    ("audit.detail", "详情", "Detail"),
    ("audit.none", "没有符合条件的记录", "No matching records"),
    // ---- trading calendar and change windows (crate::calendar::pages)
    ("nav.calendar", "交易日历", "Calendar"),
    (
        "cal.title",
        "交易日历与变更窗口",
        "Trading calendar & change windows",
    ),
    ("cal.calendar", "交易日历", "Calendar"),
    ("cal.month", "月份", "Month"),
    ("cal.go", "查看", "Show"),
    ("cal.prev", "上月", "Previous month"),
    ("cal.next", "下月", "Next month"),
    ("cal.legend", "图例", "Legend"),
    ("cal.wd.mon", "周一", "Mon"),
    ("cal.wd.tue", "周二", "Tue"),
    ("cal.wd.wed", "周三", "Wed"),
    ("cal.wd.thu", "周四", "Thu"),
    ("cal.wd.fri", "周五", "Fri"),
    ("cal.wd.sat", "周六", "Sat"),
    ("cal.wd.sun", "周日", "Sun"),
    ("cal.kind.trading", "交易日", "Trading day"),
    ("cal.kind.weekend", "周末", "Weekend"),
    ("cal.kind.holiday", "节假日休市", "Holiday closure"),
    (
        "cal.kind.makeup_workday",
        "调休上班日（不交易）",
        "Make-up workday (no trading)",
    ),
    (
        "cal.kind.exchange_only",
        "交易所单独休市",
        "Exchange-only closure",
    ),
    (
        "cal.kind.extraordinary",
        "临时休市",
        "Extraordinary closure",
    ),
    ("cal.kind.non_trading", "非交易日", "Non-trading day"),
    ("cal.cw.title", "变更窗口", "Change window"),
    (
        "cal.cw.evaluate",
        "评估某一时刻的变更窗口",
        "Evaluate the change window at a time",
    ),
    ("cal.cw.environment", "环境", "Environment"),
    ("cal.cw.business_system", "业务系统", "Business system"),
    ("cal.cw.tier", "系统等级", "Tier"),
    ("cal.cw.kind", "操作类型", "Operation kind"),
    ("cal.cw.at", "时间（北京）", "Time (Beijing)"),
    ("cal.cw.submit", "评估", "Evaluate"),
    ("cal.cw.result", "结果", "Decision"),
    ("cal.cw.policy", "策略", "Policy"),
    (
        "cal.cw.not_covered",
        "该日期超出交易日历数据：按可能开市处理（不猜测）。",
        "The date is outside the calendar data: treated as possibly open (never guessed).",
    ),
    (
        "cal.policy.error",
        "变更窗口策略无效，守卫拒绝所有受管操作：",
        "The change-window policies are invalid; the guard refuses every governed operation:",
    ),
    ("cal.ov.title", "紧急放行", "Emergency overrides"),
    (
        "cal.ov.hint",
        "紧急放行须由另一位持有审批权限（approval.approve）的人员批准，申请人本人不能批准；有效期最长 24 小时；申请与批准均记入审计。",
        "An override needs approval by a second person holding approval.approve, never the requester; it lasts at most 24 hours; request and approval are audited.",
    ),
    (
        "cal.ov.scope",
        "范围（环境/业务系统/等级/操作）",
        "Scope (environment/system/tier/operation)",
    ),
    ("cal.ov.reason", "原因", "Reason"),
    ("cal.ov.requester", "申请人", "Requested by"),
    ("cal.ov.valid", "有效期（北京）", "Valid (Beijing)"),
    ("cal.ov.status", "状态", "Status"),
    ("cal.ov.approver", "审批人", "Approved by"),
    ("cal.ov.approve", "批准", "Approve"),
    ("cal.ov.none", "暂无紧急放行", "No overrides"),
    (
        "cal.ov.request",
        "申请紧急放行",
        "Request an emergency override",
    ),
    (
        "cal.ov.valid_from",
        "生效时间（北京）",
        "Valid from (Beijing)",
    ),
    (
        "cal.ov.valid_until",
        "截止时间（北京）",
        "Valid until (Beijing)",
    ),
    ("cal.ov.submit", "提交申请", "Submit request"),
    ("cal.ov.pending", "待审批", "pending"),
    (
        "cal.ov.scheduled",
        "已批准，未到生效时间",
        "approved, not yet valid",
    ),
    ("cal.ov.active", "生效中", "active"),
    ("cal.ov.expired", "已过期", "expired"),
    (
        "cal.ov.requested",
        "已提交紧急放行申请",
        "Override requested",
    ),
    ("cal.ov.approved", "已批准紧急放行", "Override approved"),
];

impl Tr {
    pub fn s(&self, key: &str) -> &'static str {
        STRINGS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or("?", |(_, zh, en)| if self.0 == Lang::Zh { zh } else { en })
    }
    pub fn html_lang(&self) -> &'static str {
        if self.0 == Lang::Zh { "zh-CN" } else { "en" }
    }
    pub fn other_lang(&self) -> &'static str {
        if self.0 == Lang::Zh { "en" } else { "zh" }
    }
    /// One of two texts by language (pages with few strings of their own).
    pub fn pick<'a>(&self, zh: &'a str, en: &'a str) -> &'a str {
        if self.0 == Lang::Zh { zh } else { en }
    }
    /// A problem's message in this language.
    pub fn problem(&self, p: &ballast_core::Problem) -> String {
        if self.0 == Lang::Zh {
            p.message_zh.clone()
        } else {
            p.message_en.clone()
        }
    }
}

/// The signed-in person as the layout shows them.
pub struct Me {
    pub username: String,
    pub real_name: String,
    pub csrf: String,
    pub can_users: bool,
    pub can_audit: bool,
    pub can_calendar: bool,
    /// Scripts, plans and runs are readable in some scope.
    pub can_jobs: bool,
    /// Assessments are readable.
    pub can_assess: bool,
    /// CMDB data is readable in some environment.
    pub can_cmdb: bool,
}

/// Beijing time, as every page shows it.
pub(crate) fn ts(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| {
        t.with_timezone(&ballast_calendar::Tz::Asia__Shanghai)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    })
    .unwrap_or_default()
}

/// Back to `path` with `key=msg` added to its query (a page's notice or error).
pub(crate) fn back(path: &str, key: &str, msg: &str) -> Response {
    let q = serde_urlencoded::to_string([(key, msg)]).unwrap_or_default();
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}{q}")).into_response()
}

/// The message and stable code of a refusal, as flash text: the message in the page's language
/// and the code, which a person can quote and search the audit log for.
pub(crate) fn refusal(t: Tr, e: &crate::error::ApiError) -> String {
    format!("{} [{}]", t.problem(&e.problem), e.problem.code)
}

/// Back to `path` with the refusal as the page's error.
pub(crate) fn fail(t: Tr, path: &str, e: &crate::error::ApiError) -> Response {
    back(path, "error", &refusal(t, e))
}

pub(crate) fn html<T: Template>(t: T) -> Response {
    match t.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!("template: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// A page request from a signed-in person whose account is ready to act: redirects to sign-in,
/// the second factor, a forced password change or the required enrolment otherwise.
pub struct Page {
    pub t: Tr,
    pub s: PageSession,
    pub roles: Vec<authz::Role>,
}

impl Page {
    pub(crate) fn me(&self) -> Me {
        let p = &self.s.principal;
        let can = |perm| {
            authz::is_allowed(
                &p.bindings,
                &self.roles,
                perm,
                &Target::global(),
                p.source_ip,
            )
        };
        Me {
            username: p.user.username.clone(),
            real_name: p.user.real_name.clone(),
            csrf: self.s.session.csrf_token.clone(),
            can_users: can(Permission::UserRead),
            can_audit: can(Permission::AuditRead),
            can_assess: can(Permission::AssessmentRead),
            // Calendar data is the same in every scope: held anywhere, shown.
            can_calendar: self.held_somewhere(Permission::CalendarRead),
            can_jobs: self.held_somewhere(Permission::JobRead),
            can_cmdb: self.held_somewhere(Permission::CmdbRead),
        }
    }
    /// Whether some role of the person's, usable from where they are, grants `perm` in any
    /// scope.
    fn held_somewhere(&self, perm: Permission) -> bool {
        let p = &self.s.principal;
        p.bindings.iter().any(|b| {
            self.roles.iter().any(|r| {
                r.key == b.role && r.permissions.contains(&perm) && r.allows_source(p.source_ip)
            })
        })
    }
    pub(crate) fn principal(&self) -> &Principal {
        &self.s.principal
    }
    /// The refusal for a form whose CSRF token is not the session's.
    pub(crate) fn csrf_refusal(&self, sent: &str) -> Option<Response> {
        (!same_secret(sent, &self.s.session.csrf_token)).then(|| {
            (
                StatusCode::FORBIDDEN,
                "CSRF token missing or wrong / CSRF 校验失败",
            )
                .into_response()
        })
    }
}

/// Where a signed-in but not-yet-ready account must go first.
fn gate(s: &PageSession, roles: &[authz::Role], path: &str) -> Option<&'static str> {
    let u = &s.principal.user;
    if u.mfa_enrolled && !s.session.mfa_verified {
        return (path != "/login/mfa").then_some("/login/mfa");
    }
    if u.must_change_password {
        return (path != "/account/password").then_some("/account/password");
    }
    let privileged = s
        .principal
        .bindings
        .iter()
        .filter_map(|b| roles.iter().find(|r| r.key == b.role))
        .any(|r| r.privileged);
    if privileged && !u.mfa_enrolled {
        return (path != "/account/mfa").then_some("/account/mfa");
    }
    None
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let t = Tr(Lang::from_headers(&parts.headers));
        let s = match auth::page_session(state, &parts.headers, auth::client_ip(parts)).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(Redirect::to("/login").into_response()),
            Err(e) => return Err(e.into_response()),
        };
        let roles = state
            .store
            .roles()
            .await
            .map_err(|e| ApiError::from(e).into_response())?;
        if let Some(to) = gate(&s, &roles, parts.uri.path()) {
            return Err(Redirect::to(to).into_response());
        }
        Ok(Page { t, s, roles })
    }
}

// ---------------------------------------------------------------- sign-in

/// The client's address (from the connection), if known.
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(auth::client_ip(parts)))
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    username: String,
    error: Option<String>,
}

fn login_page(
    state: &AppState,
    t: Tr,
    username: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let csrf = random_hex(16);
    let mut r = html(LoginPage {
        t,
        me: None,
        csrf: csrf.clone(),
        username,
        error,
    });
    *r.status_mut() = status;
    if let Ok(v) = set_cookie(state, LOGIN_CSRF_COOKIE, &csrf, Some(3600)).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn get_login(State(state): State<AppState>, headers: HeaderMap) -> Response {
    login_page(
        &state,
        Tr(Lang::from_headers(&headers)),
        String::new(),
        None,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn post_login(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let t = Tr(Lang::from_headers(&headers));
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(&f.csrf, &expected) {
        return login_page(
            &state,
            t,
            f.username,
            Some("CSRF 校验失败，请重试 / CSRF check failed, try again".into()),
            StatusCode::FORBIDDEN,
        );
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    match auth::sign_in(&state, &f.username, &f.password, ip.0, ua).await {
        Ok(SignIn::Session { secret, needs_mfa }) => {
            let age = state.config.session_absolute_hours * 3600;
            let mut r = Redirect::to(if needs_mfa { "/login/mfa" } else { "/" }).into_response();
            if let Ok(v) = set_cookie(&state, SESSION_COOKIE, &secret, Some(age)).parse() {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Ok(SignIn::Refused(p)) => login_page(
            &state,
            t,
            f.username,
            Some(t.problem(&p)),
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => login_page(&state, t, f.username, Some(t.problem(&e.problem)), e.status),
    }
}

#[derive(Template)]
#[template(path = "mfa.html")]
struct MfaPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    error: Option<String>,
}

async fn get_mfa(page: Page) -> Response {
    html(MfaPage {
        t: page.t,
        me: None,
        csrf: page.s.session.csrf_token.clone(),
        error: None,
    })
}

#[derive(Deserialize)]
struct CodeForm {
    csrf: String,
    code: String,
}

async fn post_mfa(State(state): State<AppState>, page: Page, Form(f): Form<CodeForm>) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    match auth::verify_second_factor(
        &state,
        &page.s.session,
        &page.s.principal.user,
        &f.code,
        page.s.principal.source_ip,
    )
    .await
    {
        Ok(()) => Redirect::to("/").into_response(),
        Err(e) => {
            let mut r = html(MfaPage {
                t: page.t,
                me: None,
                csrf: page.s.session.csrf_token.clone(),
                error: Some(page.t.problem(&e.problem)),
            });
            *r.status_mut() = e.status;
            r
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn post_logout(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Ok(Some(s)) = auth::page_session(&state, &headers, ip.0).await
        && same_secret(&f.csrf, &s.session.csrf_token)
    {
        {
            let now = state.clock.now();
            if let Ok(mut tx) = state.store.begin().await {
                let ok = tx.revoke_session(&s.session.id_hash).await.is_ok();
                if ok {
                    let d = ballast_core::audit::AuditDraft::new(
                        service::actor(&s.principal),
                        "auth.logout",
                        "session",
                        ballast_core::audit::Outcome::Success,
                    )
                    .from_ip(s.principal.source_ip.map(|i| i.to_string()));
                    let _ = tx.commit(vec![d], now).await;
                }
            }
        }
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = set_cookie(&state, SESSION_COOKIE, "", Some(0)).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn set_lang(
    State(state): State<AppState>,
    Path(lang): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = if lang == "en" { "en" } else { "zh" };
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| {
            r.find("://")
                .and_then(|i| r[i + 3..].find('/').map(|j| r[i + 3 + j..].to_string()))
        })
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".to_string());
    let mut r = Redirect::to(&back).into_response();
    if let Ok(v) = set_cookie(&state, LANG_COOKIE, lang, Some(365 * 86400)).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

// ---------------------------------------------------------------- account

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    forced: bool,
    error: Option<String>,
}

async fn get_password(page: Page) -> Response {
    let forced = page.s.principal.user.must_change_password;
    html(PasswordPage {
        t: page.t,
        me: Some(page.me()),
        csrf: page.s.session.csrf_token.clone(),
        forced,
        error: None,
    })
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

async fn post_password(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<PasswordForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let forced = page.s.principal.user.must_change_password;
    let error = if f.new_password != f.confirm_password {
        Some(page.t.s("password.mismatch").to_string())
    } else {
        match service::change_own_password(
            &state,
            page.principal(),
            &f.current_password,
            &f.new_password,
        )
        .await
        {
            Ok(()) => return Redirect::to("/").into_response(),
            Err(e) => Some(page.t.problem(&e.problem)),
        }
    };
    let mut r = html(PasswordPage {
        t: page.t,
        me: Some(page.me()),
        csrf: page.s.session.csrf_token.clone(),
        forced,
        error,
    });
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage {
    t: Tr,
    me: Option<Me>,
    csrf: String,
    required: bool,
    error: Option<String>,
    secret: String,
    uri: String,
    qr_svg: String,
    recovery_codes: Vec<String>,
}

fn enrol_page(
    state: &AppState,
    page: &Page,
    secret: String,
    error: Option<String>,
    recovery_codes: Vec<String>,
) -> Response {
    let e = mfa::enrolment(
        &secret,
        &state.config.mfa_issuer,
        &page.s.principal.user.username,
    );
    let (uri, qr_svg) = e.map(|e| (e.otpauth_uri, e.qr_svg)).unwrap_or_default();
    let required = !page.s.principal.user.mfa_enrolled;
    html(EnrolPage {
        t: page.t,
        me: Some(page.me()),
        csrf: page.s.session.csrf_token.clone(),
        required,
        error,
        secret,
        uri,
        qr_svg,
        recovery_codes,
    })
}

async fn get_enrol(State(state): State<AppState>, page: Page) -> Response {
    enrol_page(&state, &page, mfa::generate_secret(), None, Vec::new())
}

#[derive(Deserialize)]
struct EnrolForm {
    csrf: String,
    secret: String,
    code: String,
}

async fn post_enrol(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<EnrolForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    match service::enrol_mfa(
        &state,
        page.principal(),
        &page.s.session.id_hash,
        &f.secret,
        &f.code,
    )
    .await
    {
        Ok(codes) => enrol_page(&state, &page, f.secret, None, codes),
        Err(e) => {
            let msg = page.t.problem(&e.problem);
            let mut r = enrol_page(&state, &page, f.secret, Some(msg), Vec::new());
            *r.status_mut() = e.status;
            r
        }
    }
}

// ---------------------------------------------------------------- home

pub struct Module {
    pub name: String,
    pub href: &'static str,
    pub available: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    t: Tr,
    me: Option<Me>,
    modules: Vec<Module>,
    me_user: ballast_core::user::User,
    me_kind: String,
    me_roles: Vec<String>,
}

/// The platform's modules: those that exist link to their page; the others say so.
fn modules(t: Tr, me: &Me) -> Vec<Module> {
    let m = |zh: &str, en: &str, href: &'static str, available: bool| Module {
        name: if t.0 == Lang::Zh {
            zh.to_string()
        } else {
            en.to_string()
        },
        href,
        available,
    };
    vec![
        m("用户与角色", "Users and roles", "/users", me.can_users),
        m("审计日志", "Audit log", "/audit", me.can_audit),
        m("成熟度评估", "Maturity assessments", "", false),
        m(
            "交易日历与变更窗口",
            "Trading calendar & change windows",
            "/calendar",
            me.can_calendar,
        ),
        m("作业执行", "Job execution", "/runs", me.can_jobs),
        m("配置管理 CMDB", "CMDB", "", false),
        m("监控与告警", "Monitoring & alerting", "", false),
        m("巡检", "Inspections", "", false),
        m("故障与应急", "Incidents & emergency plans", "", false),
        m("备份与容灾演练", "Backup & DR drills", "", false),
        m("部署与数据变更", "Deployments & data changes", "", false),
    ]
}

async fn home(page: Page) -> Response {
    let me = page.me();
    let user = page.s.principal.user.clone();
    let roles = page
        .s
        .principal
        .bindings
        .iter()
        .map(|b| format!("{}@{}", b.role, b.scope.label()))
        .collect();
    let me_kind = kind_label(page.t, &user.kind);
    html(HomePage {
        t: page.t,
        modules: modules(page.t, &me),
        me: Some(me),
        me_user: user,
        me_kind,
        me_roles: roles,
    })
}

// ---------------------------------------------------------------- users

fn kind_label(t: Tr, kind: &ballast_core::user::UserKind) -> String {
    match kind {
        ballast_core::user::UserKind::Employee => t.s("users.employee").to_string(),
        ballast_core::user::UserKind::Outsourced {
            vendor,
            contract_end,
        } => {
            format!("{} · {vendor} · {contract_end}", t.s("users.outsourced"))
        }
    }
}

pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub real_name: String,
    pub department: String,
    pub kind: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub mfa: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    t: Tr,
    me: Option<Me>,
    me_username: String,
    csrf: String,
    users: Vec<UserRow>,
    roles: Vec<(String, String)>,
    can_manage: bool,
    error: Option<String>,
    notice: Option<String>,
}

async fn users_page(
    state: &AppState,
    page: &Page,
    error: Option<String>,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let me = page.me();
    let action = ballast_core::guard::Action::new(
        ballast_core::guard::ActionKind::Read,
        Permission::UserRead,
        "user.list",
        Target::global(),
    );
    if let Err(e) = service::authorize(state, page.principal(), &action).await {
        return (e.status, page.t.problem(&e.problem)).into_response();
    }
    let (users, bindings) = match (state.store.users().await, state.store.bindings(None).await) {
        (Ok(u), Ok(b)) => (u, b),
        (Err(e), _) | (_, Err(e)) => return ApiError::from(e).into_response(),
    };
    let t = page.t;
    let rows = users
        .into_iter()
        .map(|u| UserRow {
            roles: bindings
                .iter()
                .filter(|b| b.user_id == u.id)
                .map(|b| format!("{}@{}", b.role, b.scope.label()))
                .collect(),
            kind: kind_label(t, &u.kind),
            id: u.id,
            username: u.username,
            real_name: u.real_name,
            department: u.department,
            disabled: u.disabled,
            mfa: u.mfa_enrolled,
        })
        .collect();
    let roles = page
        .roles
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                if t.0 == Lang::Zh {
                    format!("{} {}", r.name_zh, r.key)
                } else {
                    format!("{} ({})", r.name_en, r.key)
                },
            )
        })
        .collect();
    let can_manage = authz::is_allowed(
        &page.s.principal.bindings,
        &page.roles,
        Permission::UserManage,
        &Target::global(),
        page.s.principal.source_ip,
    );
    let mut r = html(UsersPage {
        t,
        csrf: me.csrf.clone(),
        me_username: me.username.clone(),
        me: Some(me),
        users: rows,
        roles,
        can_manage,
        error,
        notice,
    });
    *r.status_mut() = status;
    r
}

async fn get_users(State(state): State<AppState>, page: Page) -> Response {
    users_page(&state, &page, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct CreateUserForm {
    csrf: String,
    username: String,
    real_name: String,
    department: String,
    #[serde(rename = "type")]
    kind: String,
    vendor: Option<String>,
    contract_end: Option<String>,
    role: Option<String>,
    scope: Option<String>,
}

async fn post_users(
    State(state): State<AppState>,
    page: Page,
    Form(f): Form<CreateUserForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let input = CreateUser {
        username: f.username,
        real_name: f.real_name,
        department: f.department,
        kind: f.kind,
        vendor: nonempty(f.vendor),
        contract_end: nonempty(f.contract_end),
        roles: nonempty(f.role)
            .map(|role| {
                vec![Grant {
                    role,
                    scope: nonempty(f.scope).unwrap_or_else(|| "global".into()),
                }]
            })
            .unwrap_or_default(),
    };
    match service::create_user(&state, page.principal(), &input).await {
        Ok((user, password)) => {
            let notice = format!(
                "{} {} — {password}",
                page.t.s("users.created"),
                user.username
            );
            users_page(&state, &page, None, Some(notice), StatusCode::CREATED).await
        }
        Err(e) => {
            users_page(
                &state,
                &page,
                Some(page.t.problem(&e.problem)),
                None,
                e.status,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct GrantForm {
    csrf: String,
    role: String,
    scope: String,
}

async fn post_grant(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    Form(f): Form<GrantForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let Ok(id) = id.parse::<i64>() else {
        return ApiError::not_found("user").into_response();
    };
    match service::grant_role(
        &state,
        page.principal(),
        id,
        &Grant {
            role: f.role,
            scope: f.scope,
        },
    )
    .await
    {
        Ok(b) => {
            users_page(
                &state,
                &page,
                None,
                Some(format!(
                    "{}: {}@{}",
                    page.t.s("users.granted"),
                    b.role,
                    b.scope.label()
                )),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            users_page(
                &state,
                &page,
                Some(page.t.problem(&e.problem)),
                None,
                e.status,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct AccountForm {
    csrf: String,
    op: String,
    reason: Option<String>,
}

/// Disable, enable, reset password or reset the second factor of an account.
async fn post_account(
    State(state): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    Form(f): Form<AccountForm>,
) -> Response {
    if let Some(r) = page.csrf_refusal(&f.csrf) {
        return r;
    }
    let Ok(id) = id.parse::<i64>() else {
        return ApiError::not_found("user").into_response();
    };
    let p = page.principal();
    let reason = f
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "web UI".to_string());
    let result = match f.op.as_str() {
        "disable" => service::set_disabled(&state, p, id, true, &reason)
            .await
            .map(|_| None),
        "enable" => service::set_disabled(&state, p, id, false, &reason)
            .await
            .map(|_| None),
        "reset_password" => service::reset_password(&state, p, id).await.map(Some),
        "reset_mfa" => service::reset_mfa(&state, p, id).await.map(|_| None),
        _ => Err(ApiError::bad_request(ballast_core::Problem::new(
            "request.invalid",
            "未知操作",
            "unknown operation",
        ))),
    };
    match result {
        Ok(Some(pw)) => {
            users_page(
                &state,
                &page,
                None,
                Some(format!("{} {pw}", page.t.s("users.new_password"))),
                StatusCode::OK,
            )
            .await
        }
        Ok(None) => {
            users_page(
                &state,
                &page,
                None,
                Some(page.t.s("users.done").to_string()),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            users_page(
                &state,
                &page,
                Some(page.t.problem(&e.problem)),
                None,
                e.status,
            )
            .await
        }
    }
}

// ---------------------------------------------------------------- audit

pub struct AuditRow {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub ip: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
    pub outcome_class: &'static str,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    t: Tr,
    me: Option<Me>,
    chain_intact: bool,
    chain_text: String,
    can_export: bool,
    records: Vec<AuditRow>,
    error: Option<String>,
    q_actor: String,
    q_action: String,
    q_outcome: String,
    q_from: String,
    q_to: String,
    q_text: String,
}

async fn get_audit(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let action = ballast_core::guard::Action::new(
        ballast_core::guard::ActionKind::Read,
        Permission::AuditRead,
        "audit.search",
        Target::global(),
    );
    if let Err(e) = service::authorize(&state, page.principal(), &action).await {
        return (e.status, page.t.problem(&e.problem)).into_response();
    }
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let params = crate::api::AuditParams {
        actor: Some(get("actor")),
        action: Some(get("action")),
        outcome: Some(get("outcome")),
        from: Some(get("from")),
        to: Some(get("to"))
            .filter(|s| !s.is_empty())
            .map(|d| format!("{d}T23:59:59.999999+08:00")),
        text: Some(get("text")),
        limit: Some(200),
        ..Default::default()
    };
    let t = page.t;
    let (records, error) = match params.query() {
        Ok(query) => match state.store.audit_search(&query).await {
            Ok(r) => (r, None),
            Err(e) => return ApiError::from(e).into_response(),
        },
        Err(p) => (Vec::new(), Some(t.problem(&p))),
    };
    let status = match crate::verify::chain_status(&state).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let chain_text = if status.intact {
        match t.0 {
            Lang::Zh => format!(
                "审计链完整：已校验 {} 条记录{}",
                status.records,
                status
                    .checkpoint_seq
                    .map(|s| format!("，签名检查点至第 {s} 条"))
                    .unwrap_or_default()
            ),
            Lang::En => format!(
                "Audit chain intact: {} records verified{}",
                status.records,
                status
                    .checkpoint_seq
                    .map(|s| format!("; signed checkpoint at record {s}"))
                    .unwrap_or_default()
            ),
        }
    } else {
        match t.0 {
            Lang::Zh => format!(
                "审计链已损坏：第 {} 条 — {}",
                status.first_broken_seq.unwrap_or(0),
                status.reason_zh.unwrap_or_default()
            ),
            Lang::En => format!(
                "Audit chain BROKEN at record {} — {}",
                status.first_broken_seq.unwrap_or(0),
                status.reason_en.unwrap_or_default()
            ),
        }
    };
    let cst = chrono::FixedOffset::east_opt(8 * 3600);
    let rows = records
        .iter()
        .map(|r| {
            let c = r.parsed();
            let d = c.as_ref().map(|c| &c.draft);
            let outcome = d.map(|d| d.outcome.key()).unwrap_or("?");
            AuditRow {
                seq: r.seq,
                at: cst
                    .map(|z| {
                        r.at.with_timezone(&z)
                            .format("%Y-%m-%d %H:%M:%S")
                            .to_string()
                    })
                    .unwrap_or_default(),
                actor: d
                    .map(|d| {
                        if d.actor.real_name.is_empty() {
                            d.actor.username.clone()
                        } else {
                            format!("{} ({})", d.actor.real_name, d.actor.username)
                        }
                    })
                    .unwrap_or_default(),
                ip: d.and_then(|d| d.source_ip.clone()).unwrap_or_default(),
                action: d.map(|d| d.action.clone()).unwrap_or_default(),
                object: d
                    .map(|d| {
                        format!(
                            "{}:{}",
                            d.object_type,
                            d.object_id.clone().unwrap_or_default()
                        )
                    })
                    .unwrap_or_default(),
                outcome: outcome.to_string(),
                outcome_class: match outcome {
                    "success" => "ok",
                    "denied" => "denied",
                    _ => "bad",
                },
                detail: d.and_then(|d| d.detail.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let can_export = authz::is_allowed(
        &page.s.principal.bindings,
        &page.roles,
        Permission::AuditExport,
        &Target::global(),
        page.s.principal.source_ip,
    );
    html(AuditPage {
        t,
        me: Some(page.me()),
        chain_intact: status.intact,
        chain_text,
        can_export,
        records: rows,
        error,
        q_actor: get("actor"),
        q_action: get("action"),
        q_outcome: get("outcome"),
        q_from: get("from"),
        q_to: get("to"),
        q_text: get("text"),
    })
}

async fn get_audit_export(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let action = ballast_core::guard::Action::new(
        ballast_core::guard::ActionKind::Read,
        Permission::AuditExport,
        "audit.export",
        Target::global(),
    );
    if let Err(e) = service::authorize(&state, page.principal(), &action).await {
        return e.into_response();
    }
    let format = q.get("format").cloned().unwrap_or_else(|| "csv".into());
    match crate::export::audit_export(
        &state,
        page.principal(),
        &format,
        AuditQuery {
            limit: 1000,
            ..Default::default()
        },
    )
    .await
    {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../static/app.css"),
    )
        .into_response()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(get_login).post(post_login))
        .route("/login/mfa", get(get_mfa).post(post_mfa))
        .route("/logout", post(post_logout))
        .route("/lang/{lang}", get(set_lang))
        .route("/account/password", get(get_password).post(post_password))
        .route("/account/mfa", get(get_enrol).post(post_enrol))
        .route("/users", get(get_users).post(post_users))
        .route("/users/{id}/roles", post(post_grant))
        .route("/users/{id}/account", post(post_account))
        .route("/audit", get(get_audit))
        .route("/audit/export", get(get_audit_export))
        .route("/static/app.css", get(css))
}
