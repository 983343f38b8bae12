//! Authentication (standard 8.3.1.1): password sign-in with lock-out, the TOTP second factor,
//! sessions (HttpOnly, SameSite=Strict cookies; idle and absolute expiry; CSRF token per session)
//! and API tokens. Produces the [`Principal`] the guard pipeline evaluates.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use ballast_core::Problem;
use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_core::guard::{Principal, Via, china_date};
use ballast_core::mfa;
use ballast_core::password::verify_password;
use ballast_core::user::{User, UserId};
use ballast_store::Session;
use chrono::{Duration, NaiveDate};

use crate::error::{ApiError, ApiResult};
use crate::service::{audit_only, random_hex, token_hash};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "ballast_session";
pub const LOGIN_CSRF_COOKIE: &str = "ballast_login_csrf";

/// Today's date in China Standard Time.
pub fn today(state: &AppState) -> NaiveDate {
    china_date(state.clock.now())
}

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, optionally Secure.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: Option<i64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age_secs {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if state.config.secure_cookies {
        c.push_str("; Secure");
    }
    c
}

pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// The sealing purpose of a user's TOTP secret (binds the sealed value to that user).
pub(crate) fn mfa_purpose(user: UserId) -> String {
    format!("mfa:{user}")
}

/// A stored TOTP secret in the clear: sealed ones (`v1:…`) are opened with the credential key;
/// a secret stored before sealing (base32, never containing `:`) is used as it is. One that
/// cannot be opened (another credential key) gives an empty secret, which matches no code.
fn mfa_secret(state: &AppState, user: UserId, stored: &str) -> String {
    if !stored.contains(':') {
        return stored.to_owned();
    }
    match state.exec.sealer.open(&mfa_purpose(user), stored) {
        Ok(plain) => String::from_utf8(plain).unwrap_or_default(),
        Err(e) => {
            tracing::warn!(user = %user, "TOTP secret cannot be opened: {e}");
            String::new()
        }
    }
}

/// Constant-time string comparison for secrets.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The result of a password sign-in.
pub enum SignIn {
    /// A session was created; `secret` goes into the cookie.
    Session { secret: String, needs_mfa: bool },
    /// Wrong user or password (deliberately not saying which), or the account may not sign in.
    Refused(Problem),
}

fn refused_generic() -> Problem {
    Problem::new(
        "auth.invalid_credentials",
        "用户名或密码错误",
        "wrong username or password",
    )
}

/// Checks a password, applies the lock-out policy, and opens a session.
pub async fn sign_in(
    state: &AppState,
    username: &str,
    password: &str,
    ip: Option<IpAddr>,
    user_agent: Option<String>,
) -> ApiResult<SignIn> {
    let now = state.clock.now();
    let ip_s = ip.map(|i| i.to_string());
    let fail = |actor: Actor, detail: &str| {
        AuditDraft::new(actor, "auth.login", "session", Outcome::Failure)
            .from_ip(ip_s.clone())
            .detail(detail.to_string())
    };
    let Some(user) = state.store.user_by_name(username.trim()).await? else {
        state
            .metrics
            .logins_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        audit_only(state, fail(Actor::anonymous(username), "unknown user")).await?;
        return Ok(SignIn::Refused(refused_generic()));
    };
    let actor = Actor {
        user_id: Some(user.id),
        username: user.username.clone(),
        real_name: user.real_name.clone(),
        roles: Vec::new(),
    };
    let creds = state
        .store
        .credentials(user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("credentials"))?;
    if let Some(until) = creds.locked_until.filter(|u| *u > now) {
        audit_only(state, fail(actor, "account locked")).await?;
        let mins = (until - now).num_seconds().max(1);
        return Ok(SignIn::Refused(Problem::new(
            "auth.locked",
            format!("登录失败次数过多，账号已锁定，请 {mins} 秒后再试"),
            format!("too many failed sign-ins: the account is locked for another {mins} s"),
        )));
    }
    if !verify_password(password, &creds.password_hash) {
        state
            .metrics
            .logins_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let failed = creds.failed_logins + 1;
        let cfg = &state.config;
        let locked_until = (failed >= cfg.lockout_threshold).then(|| {
            let exp = (failed - cfg.lockout_threshold).min(16);
            let secs = (cfg.lockout_base_seconds << exp).min(cfg.lockout_max_seconds);
            now + Duration::seconds(secs)
        });
        let mut tx = state.store.begin().await?;
        tx.set_login_state(user.id, failed, locked_until).await?;
        let mut audit = vec![fail(
            actor.clone(),
            &format!("wrong password (failure {failed})"),
        )];
        if let Some(until) = locked_until {
            audit.push(
                AuditDraft::new(actor, "auth.lockout", "user", Outcome::Success)
                    .object(user.id)
                    .from_ip(ip_s.clone())
                    .detail(format!("locked until {until} after {failed} failures")),
            );
        }
        tx.commit(audit, now).await?;
        return Ok(SignIn::Refused(refused_generic()));
    }
    if user.disabled || user.contract_ended(today(state)) {
        audit_only(state, fail(actor, "account disabled")).await?;
        return Ok(SignIn::Refused(Problem::new(
            "auth.account_disabled",
            "账号已停用",
            "the account is disabled",
        )));
    }
    let secret = random_hex(32);
    let session = Session {
        id_hash: token_hash(&secret),
        user_id: user.id,
        csrf_token: random_hex(16),
        created_at: now,
        last_seen_at: now,
        expires_at: now + Duration::hours(state.config.session_absolute_hours),
        mfa_verified: false,
        source_ip: ip_s.clone(),
        user_agent: user_agent.map(|u| u.chars().take(200).collect()),
        revoked: false,
    };
    let mut tx = state.store.begin().await?;
    tx.set_login_state(user.id, 0, None).await?;
    tx.insert_session(&session).await?;
    let d = AuditDraft::new(actor, "auth.login", "session", Outcome::Success)
        .from_ip(ip_s)
        .detail(if user.mfa_enrolled {
            "password verified; second factor pending"
        } else {
            "password verified"
        });
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(SignIn::Session {
        secret,
        needs_mfa: user.mfa_enrolled,
    })
}

/// Verifies a TOTP code (or a recovery code) for the session's user and marks the session.
pub async fn verify_second_factor(
    state: &AppState,
    session: &Session,
    user: &User,
    code: &str,
    ip: Option<IpAddr>,
) -> ApiResult<()> {
    let now = state.clock.now();
    let creds = state
        .store
        .credentials(user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("credentials"))?;
    let actor = Actor {
        user_id: Some(user.id),
        username: user.username.clone(),
        real_name: user.real_name.clone(),
        roles: Vec::new(),
    };
    let ip_s = ip.map(|i| i.to_string());
    let secret = creds
        .mfa_secret
        .as_deref()
        .map(|s| mfa_secret(state, user.id, s))
        .unwrap_or_default();
    let step = mfa::verify_code(&secret, code, now).and_then(|s| i64::try_from(s).ok());
    let mut tx = state.store.begin().await?;
    let how = match step {
        Some(s) if creds.mfa_last_step.is_none_or(|last| s > last) => {
            tx.set_mfa_last_step(user.id, s).await?;
            "totp"
        }
        Some(_) => {
            drop(tx);
            audit_only(
                state,
                AuditDraft::new(actor, "auth.mfa", "session", Outcome::Failure)
                    .from_ip(ip_s)
                    .detail("TOTP code replayed"),
            )
            .await?;
            return Err(ApiError::bad_request(Problem::field(
                "mfa.replayed",
                "code",
                "该验证码已使用，请等待下一个",
                "that code was already used; wait for the next one",
            )));
        }
        None if tx
            .use_recovery_code(user.id, &mfa::hash_recovery_code(code))
            .await? =>
        {
            "recovery code"
        }
        None => {
            drop(tx);
            audit_only(
                state,
                AuditDraft::new(actor, "auth.mfa", "session", Outcome::Failure)
                    .from_ip(ip_s)
                    .detail("wrong code"),
            )
            .await?;
            return Err(ApiError::bad_request(Problem::field(
                "mfa.invalid_code",
                "code",
                "验证码不正确",
                "wrong verification code",
            )));
        }
    };
    tx.set_session_mfa(&session.id_hash).await?;
    tx.commit(
        vec![
            AuditDraft::new(actor, "auth.mfa", "session", Outcome::Success)
                .from_ip(ip_s)
                .detail(format!("second factor verified by {how}")),
        ],
        now,
    )
    .await?;
    state.metrics.audit_appended(1);
    Ok(())
}

/// A live session and its user, or why not.
pub async fn live_session(state: &AppState, secret: &str) -> ApiResult<Option<(Session, User)>> {
    let Some(s) = state.store.session(&token_hash(secret)).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    let idle = Duration::minutes(state.config.session_idle_minutes);
    if s.revoked || now >= s.expires_at || now - s.last_seen_at > idle {
        return Ok(None);
    }
    let Some(user) = state.store.user_by_id(s.user_id).await? else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    if now - s.last_seen_at > Duration::seconds(30) {
        state.store.touch_session(&s.id_hash, now).await?;
    }
    Ok(Some((s, user)))
}

async fn principal_for(
    state: &AppState,
    user: User,
    via: Via,
    ip: Option<IpAddr>,
) -> ApiResult<Principal> {
    let bindings = state.store.bindings(Some(user.id)).await?;
    Ok(Principal {
        user,
        bindings,
        source_ip: ip,
        via,
    })
}

/// The caller of a JSON API endpoint: a bearer token, or a session cookie (state-changing
/// requests with a session must carry the session's CSRF token in `X-CSRF-Token`).
pub struct ApiCaller(pub Principal);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = client_ip(parts);
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(secret) = bearer {
            let now = state.clock.now();
            let Some(t) = state.store.token(&token_hash(secret)).await? else {
                return Err(ApiError::unauthenticated());
            };
            if t.revoked_at.is_some() || now >= t.expires_at {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    Problem::new(
                        "auth.token_expired",
                        "API 令牌已过期或已吊销",
                        "the API token has expired or was revoked",
                    ),
                ));
            }
            let Some(user) = state.store.user_by_id(t.user_id).await? else {
                return Err(ApiError::unauthenticated());
            };
            if t.last_used_at
                .is_none_or(|l| now - l > Duration::seconds(60))
            {
                state.store.touch_token(t.id, now).await?;
            }
            return Ok(ApiCaller(
                principal_for(
                    state,
                    user,
                    Via::Token {
                        permissions: t.permissions,
                    },
                    ip,
                )
                .await?,
            ));
        }
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(ApiError::unauthenticated());
        };
        let Some((session, user)) = live_session(state, &secret).await? else {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                Problem::new(
                    "auth.session_expired",
                    "会话已过期，请重新登录",
                    "the session has expired; sign in again",
                ),
            ));
        };
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !same_secret(sent, &session.csrf_token) {
                return Err(ApiError::forbidden(Problem::new(
                    "auth.csrf",
                    "CSRF 校验失败",
                    "CSRF token missing or wrong",
                )));
            }
        }
        if user.mfa_enrolled && !session.mfa_verified {
            return Err(ApiError::unauthenticated());
        }
        Ok(ApiCaller(
            principal_for(
                state,
                user,
                Via::Session {
                    mfa: session.mfa_verified,
                },
                ip,
            )
            .await?,
        ))
    }
}

/// The signed-in person of a web page, with the session (for its CSRF token).
pub struct PageSession {
    pub session: Session,
    pub principal: Principal,
}

pub async fn page_session(
    state: &AppState,
    headers: &HeaderMap,
    ip: Option<IpAddr>,
) -> ApiResult<Option<PageSession>> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some((session, user)) = live_session(state, &secret).await? else {
        return Ok(None);
    };
    let mfa = session.mfa_verified;
    let principal = principal_for(state, user, Via::Session { mfa }, ip).await?;
    Ok(Some(PageSession { session, principal }))
}
