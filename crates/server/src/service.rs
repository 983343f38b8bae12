//! Guarded operations. Every entry point — web UI, JSON API, admin CLI, background work — calls
//! these functions, and each one runs the guard pipeline, then changes the database and appends
//! its audit record in the same transaction. A refusal is audited too (outcome `denied`).

use axum::http::StatusCode;
use ballast_core::Problem;
use ballast_core::audit::{Actor, AuditDraft, Outcome};
use ballast_core::authz::{self, Permission, RoleBinding, Scope, Target};
use ballast_core::guard::{Action, ActionKind, Decision, GuardContext, Principal};
use ballast_core::password::{generate_password, hash_password, verify_password};
use ballast_core::user::{NewUser, User, UserId, UserKind};
use ballast_store::{ApiToken, NewUserRow};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The audit actor for a principal: real name and roles at the time of the action.
pub fn actor(p: &Principal) -> Actor {
    Actor {
        user_id: (p.user.id > 0).then_some(p.user.id),
        username: p.user.username.clone(),
        real_name: p.user.real_name.clone(),
        roles: p
            .bindings
            .iter()
            .map(|b| format!("{}@{}", b.role, b.scope.label()))
            .collect(),
    }
}

pub(crate) fn draft(
    p: &Principal,
    action: &str,
    object_type: &str,
    outcome: Outcome,
) -> AuditDraft {
    AuditDraft::new(actor(p), action, object_type, outcome)
        .from_ip(p.source_ip.map(|ip| ip.to_string()))
}

/// Appends one audit record on its own (for refusals and security events with no other change).
pub async fn audit_only(state: &AppState, d: AuditDraft) -> ApiResult<()> {
    let tx = state.store.begin().await?;
    tx.commit(vec![d], state.clock.now()).await?;
    state.metrics.audit_appended(1);
    Ok(())
}

/// Evaluates the guard pipeline: a denial is audited and returned as 403; the change-window
/// decision of an action let through is audited. Approvals and warnings are left to the caller.
pub async fn evaluate(state: &AppState, p: &Principal, action: &Action) -> ApiResult<Decision> {
    let roles = state.store.roles().await?;
    let ctx = GuardContext {
        principal: p,
        action,
        roles: &roles,
        environments: &state.config.environments,
        now: state.clock.now(),
    };
    let decision = state.pipeline.evaluate(&ctx);
    if let Some(problem) = decision.denial() {
        let d = draft(p, &action.operation, "guard", Outcome::Denied)
            .environment(action.target.environment.clone())
            .detail(format!("{} [{}]", problem.message_en, problem.code));
        audit_only(state, d).await?;
        return Err(ApiError::forbidden(problem.clone()));
    }
    // Change window (crate::calendar): record the decision of every governed action let through.
    crate::calendar::guard::audit_decision(state, p, action, ctx.now).await?;
    Ok(decision)
}

/// Runs the guard pipeline for an action with no approval path: a denial is audited and
/// returned as 403, a stage asking for approval as 409.
pub async fn authorize(state: &AppState, p: &Principal, action: &Action) -> ApiResult<Decision> {
    let decision = evaluate(state, p, action).await?;
    if decision.needs_approval() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Problem::new(
                "approval.required",
                "此操作需要另一人审批",
                "this operation needs a second person's approval",
            ),
        ));
    }
    Ok(decision)
}

fn mutate(permission: Permission, operation: &str) -> Action {
    Action::new(ActionKind::Mutate, permission, operation, Target::global())
}

fn user_summary(u: &User) -> serde_json::Value {
    serde_json::json!({
        "username": u.username, "real_name": u.real_name, "department": u.department,
        "kind": u.kind, "disabled": u.disabled,
    })
}

/// A user to create, with roles to grant.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub real_name: String,
    pub department: String,
    /// `employee` or `outsourced`.
    #[serde(rename = "type")]
    pub kind: String,
    pub vendor: Option<String>,
    /// `YYYY-MM-DD`, required for outsourced users.
    pub contract_end: Option<String>,
    /// Role grants such as `{"role": "ops_development", "scope": "environment:prod"}`.
    #[serde(default)]
    pub roles: Vec<Grant>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub role: String,
    /// `global`, `environment:NAME` or `business:NAME`.
    pub scope: String,
}

fn parse_kind(c: &CreateUser) -> Result<UserKind, Problem> {
    match c.kind.as_str() {
        "employee" => Ok(UserKind::Employee),
        "outsourced" => {
            let vendor = c.vendor.clone().unwrap_or_default();
            let end = c.contract_end.as_deref().unwrap_or_default();
            let contract_end =
                chrono::NaiveDate::parse_from_str(end, "%Y-%m-%d").map_err(|_| {
                    Problem::field(
                        "user.contract_end_invalid",
                        "contract_end",
                        "外包人员须填写合同结束日期（YYYY-MM-DD）",
                        "outsourced users need a contract end date (YYYY-MM-DD)",
                    )
                })?;
            Ok(UserKind::Outsourced {
                vendor,
                contract_end,
            })
        }
        other => Err(Problem::field(
            "user.type_invalid",
            "type",
            format!("人员类型 {other:?} 无效，应为 employee 或 outsourced"),
            format!("user type {other:?} is invalid: use employee or outsourced"),
        )),
    }
}

fn parse_grant(g: &Grant, roles: &[authz::Role]) -> Result<(String, Scope), Problem> {
    if !roles.iter().any(|r| r.key == g.role) {
        return Err(Problem::field(
            "role.unknown",
            "role",
            format!("角色 {:?} 不存在", g.role),
            format!("role {:?} does not exist", g.role),
        ));
    }
    let scope = Scope::parse(&g.scope).ok_or_else(|| {
        Problem::field(
            "role.scope_invalid",
            "scope",
            format!(
                "范围 {:?} 无效，应为 global、environment:名称 或 business:名称",
                g.scope
            ),
            format!(
                "scope {:?} is invalid: use global, environment:NAME or business:NAME",
                g.scope
            ),
        )
    })?;
    Ok((g.role.clone(), scope))
}

/// Creates a user with a random initial password (changed at first login) and role grants,
/// refusing grants that break separation of duties.
pub async fn create_user(
    state: &AppState,
    p: &Principal,
    input: &CreateUser,
) -> ApiResult<(User, String)> {
    authorize(state, p, &mutate(Permission::UserManage, "user.create")).await?;
    let now = state.clock.now();
    let kind = parse_kind(input).map_err(ApiError::bad_request)?;
    let new = NewUser {
        username: input.username.trim().to_string(),
        real_name: input.real_name.trim().to_string(),
        department: input.department.trim().to_string(),
        kind,
    };
    new.validate(crate::auth::today(state))
        .map_err(ApiError::bad_request)?;
    if state.store.user_by_name(&new.username).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Problem::field(
                "user.exists",
                "username",
                format!("用户名 {} 已存在", new.username),
                format!("username {} already exists", new.username),
            ),
        ));
    }
    let roles = state.store.roles().await?;
    let grants: Vec<(String, Scope)> = input
        .roles
        .iter()
        .map(|g| parse_grant(g, &roles))
        .collect::<Result<_, _>>()
        .map_err(ApiError::bad_request)?;
    let mut planned: Vec<RoleBinding> = Vec::new();
    for (role, scope) in &grants {
        let b = RoleBinding {
            user_id: 0,
            role: role.clone(),
            scope: scope.clone(),
        };
        if let Err(problem) =
            authz::check_separation_of_duties(&planned, &b, &state.config.exclusive_pairs(), &roles)
        {
            audit_only(
                state,
                draft(p, "user.create", "user", Outcome::Denied).detail(problem.message_en.clone()),
            )
            .await?;
            return Err(ApiError::new(StatusCode::CONFLICT, problem));
        }
        planned.push(b);
    }
    let password = generate_password();
    let hash = hash_password(&password).map_err(ApiError::bad_request)?;
    let mut tx = state.store.begin().await?;
    let id = tx
        .insert_user(&NewUserRow {
            username: new.username.clone(),
            real_name: new.real_name.clone(),
            department: new.department.clone(),
            kind: new.kind.clone(),
            password_hash: hash,
            must_change_password: true,
            created_at: now,
        })
        .await?;
    for b in &mut planned {
        b.user_id = id;
        tx.insert_binding(b, now).await?;
    }
    let labels: Vec<String> = planned
        .iter()
        .map(|b| format!("{}@{}", b.role, b.scope.label()))
        .collect();
    let d = draft(p, "user.create", "user", Outcome::Success)
        .object(id)
        .after(
            serde_json::json!({"username": new.username, "real_name": new.real_name,
            "department": new.department, "kind": new.kind, "roles": labels}),
        );
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    let user = state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok((user, password))
}

async fn load_user(state: &AppState, id: UserId) -> ApiResult<User> {
    state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("user {id}")))
}

/// Grants a role in a scope, refusing a grant that breaks separation of duties (audited).
pub async fn grant_role(
    state: &AppState,
    p: &Principal,
    user_id: UserId,
    grant: &Grant,
) -> ApiResult<RoleBinding> {
    authorize(state, p, &mutate(Permission::RoleManage, "role.grant")).await?;
    let user = load_user(state, user_id).await?;
    let roles = state.store.roles().await?;
    let (role, scope) = parse_grant(grant, &roles).map_err(ApiError::bad_request)?;
    let b = RoleBinding {
        user_id,
        role,
        scope,
    };
    let existing = state.store.bindings(Some(user_id)).await?;
    if existing.contains(&b) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Problem::new(
                "role.already_granted",
                "该角色已授予",
                "the role is already granted in that scope",
            ),
        ));
    }
    if let Err(problem) =
        authz::check_separation_of_duties(&existing, &b, &state.config.exclusive_pairs(), &roles)
    {
        let d = draft(p, "role.grant", "user", Outcome::Denied)
            .object(user_id)
            .after(serde_json::json!({"username": user.username, "role": b.role, "scope": b.scope.label()}))
            .detail(problem.message_en.clone());
        audit_only(state, d).await?;
        return Err(ApiError::new(StatusCode::CONFLICT, problem));
    }
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.insert_binding(&b, now).await?;
    let d = draft(p, "role.grant", "user", Outcome::Success)
        .object(user_id)
        .after(serde_json::json!({"username": user.username, "role": b.role, "scope": b.scope.label()}));
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(b)
}

pub async fn revoke_role(
    state: &AppState,
    p: &Principal,
    user_id: UserId,
    grant: &Grant,
) -> ApiResult<()> {
    authorize(state, p, &mutate(Permission::RoleManage, "role.revoke")).await?;
    let user = load_user(state, user_id).await?;
    let roles = state.store.roles().await?;
    let (role, scope) = parse_grant(grant, &roles).map_err(ApiError::bad_request)?;
    let b = RoleBinding {
        user_id,
        role,
        scope,
    };
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    if !tx.delete_binding(&b).await? {
        return Err(ApiError::not_found("role binding"));
    }
    let d = draft(p, "role.revoke", "user", Outcome::Success)
        .object(user_id)
        .before(serde_json::json!({"username": user.username, "role": b.role, "scope": b.scope.label()}));
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(())
}

/// Disables or re-enables an account; disabling revokes its sessions and tokens.
pub async fn set_disabled(
    state: &AppState,
    p: &Principal,
    user_id: UserId,
    disabled: bool,
    reason: &str,
) -> ApiResult<User> {
    let op = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    authorize(state, p, &mutate(Permission::UserManage, op)).await?;
    if disabled && user_id == p.user.id {
        return Err(ApiError::bad_request(Problem::new(
            "user.disable_self",
            "不能停用自己的账号",
            "you cannot disable your own account",
        )));
    }
    let mut user = load_user(state, user_id).await?;
    let before = user_summary(&user);
    user.disabled = disabled;
    user.disabled_reason = disabled.then(|| reason.to_string());
    let now = state.clock.now();
    user.updated_at = now;
    let mut tx = state.store.begin().await?;
    tx.update_user(&user).await?;
    let revoked = if disabled {
        tx.revoke_all_for_user(user_id, now).await?
    } else {
        0
    };
    let d = draft(p, op, "user", Outcome::Success)
        .object(user_id)
        .before(before)
        .after(user_summary(&user))
        .detail(format!("{reason}; sessions and tokens revoked: {revoked}"));
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(user)
}

/// Sets a new random password that must be changed at next login; returns it once.
pub async fn reset_password(state: &AppState, p: &Principal, user_id: UserId) -> ApiResult<String> {
    authorize(
        state,
        p,
        &mutate(Permission::UserManage, "user.reset_password"),
    )
    .await?;
    let user = load_user(state, user_id).await?;
    let password = generate_password();
    let hash = hash_password(&password).map_err(ApiError::bad_request)?;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.set_password(user_id, &hash, true, now).await?;
    tx.set_login_state(user_id, 0, None).await?;
    tx.revoke_all_for_user(user_id, now).await?;
    let d = draft(p, "user.reset_password", "user", Outcome::Success)
        .object(user_id)
        .detail(format!(
            "password of {} reset; must be changed at next login",
            user.username
        ));
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(password)
}

/// Removes a user's second factor and recovery codes (they enrol again at next login).
pub async fn reset_mfa(state: &AppState, p: &Principal, user_id: UserId) -> ApiResult<()> {
    authorize(state, p, &mutate(Permission::UserManage, "user.reset_mfa")).await?;
    let user = load_user(state, user_id).await?;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.set_mfa(user_id, None, false).await?;
    tx.replace_recovery_codes(user_id, &[]).await?;
    tx.revoke_all_for_user(user_id, now).await?;
    let d = draft(p, "user.reset_mfa", "user", Outcome::Success)
        .object(user_id)
        .detail(format!("second factor of {} removed", user.username));
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(())
}

/// Changes the caller's own password (checks the current one and the policy).
pub async fn change_own_password(
    state: &AppState,
    p: &Principal,
    current: &str,
    new: &str,
) -> ApiResult<()> {
    let mut action = Action::own_account("user.change_password");
    action.allowed_before_password_change = true;
    authorize(state, p, &action).await?;
    let creds = state
        .store
        .credentials(p.user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("credentials"))?;
    if !verify_password(current, &creds.password_hash) {
        audit_only(
            state,
            draft(p, "user.change_password", "user", Outcome::Failure)
                .object(p.user.id)
                .detail("current password wrong"),
        )
        .await?;
        return Err(ApiError::bad_request(Problem::field(
            "password.current_wrong",
            "current_password",
            "当前密码不正确",
            "the current password is wrong",
        )));
    }
    if verify_password(new, &creds.password_hash) {
        return Err(ApiError::bad_request(Problem::field(
            "password.unchanged",
            "new_password",
            "新密码不能与当前密码相同",
            "the new password must differ from the current one",
        )));
    }
    state
        .config
        .password
        .check(new, &p.user.username)
        .map_err(ApiError::bad_request)?;
    let hash = hash_password(new).map_err(ApiError::bad_request)?;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.set_password(p.user.id, &hash, false, now).await?;
    tx.commit(
        vec![draft(p, "user.change_password", "user", Outcome::Success).object(p.user.id)],
        now,
    )
    .await?;
    state.metrics.audit_appended(1);
    Ok(())
}

pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new API token for the caller, limited to permissions the caller holds; the secret is
/// returned once and stored only as its hash.
pub async fn create_token(
    state: &AppState,
    p: &Principal,
    name: &str,
    permissions: &[Permission],
    days: Option<i64>,
) -> ApiResult<(ApiToken, String)> {
    authorize(state, p, &Action::own_account("token.create")).await?;
    let roles = state.store.roles().await?;
    let held: std::collections::BTreeSet<Permission> = p
        .bindings
        .iter()
        .filter_map(|b| roles.iter().find(|r| r.key == b.role))
        .flat_map(|r| r.permissions.iter().copied())
        .collect();
    if let Some(missing) = permissions.iter().find(|perm| !held.contains(perm)) {
        return Err(ApiError::forbidden(Problem::field(
            "token.permission_not_held",
            "permissions",
            format!("不能为令牌授予自己没有的权限 {missing}"),
            format!("a token cannot carry a permission you do not hold: {missing}"),
        )));
    }
    if name.trim().is_empty() || name.len() > 64 {
        return Err(ApiError::bad_request(Problem::field(
            "token.name_invalid",
            "name",
            "令牌名称须为 1–64 个字符",
            "the token name must be 1–64 characters",
        )));
    }
    let days = days.unwrap_or(state.config.token_days);
    if !(1..=366).contains(&days) {
        return Err(ApiError::bad_request(Problem::field(
            "token.days_invalid",
            "days",
            "有效期须为 1–366 天",
            "the lifetime must be 1–366 days",
        )));
    }
    let secret = format!("blt_{}", random_hex(24));
    let now = state.clock.now();
    let mut t = ApiToken {
        id: 0,
        user_id: p.user.id,
        name: name.trim().to_string(),
        token_hash: token_hash(&secret),
        permissions: permissions.to_vec(),
        created_at: now,
        expires_at: now + Duration::days(days),
        revoked_at: None,
        last_used_at: None,
    };
    let mut tx = state.store.begin().await?;
    t.id = tx.insert_token(&t).await?;
    let d = draft(p, "token.create", "api_token", Outcome::Success)
        .object(t.id)
        .after(serde_json::json!({"name": t.name, "user": p.user.username, "permissions": t.permissions, "expires_at": t.expires_at}));
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok((t, secret))
}

pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Disables outsourced accounts whose contract has ended, revoking sessions and tokens.
/// Run by the background worker (under a lease) and at start.
pub async fn disable_expired_contracts(state: &AppState) -> ApiResult<usize> {
    let today = crate::auth::today(state);
    let now = state.clock.now();
    let mut n = 0;
    for mut user in state.store.users().await? {
        if user.disabled || !user.contract_ended(today) {
            continue;
        }
        user.disabled = true;
        user.disabled_reason = Some("outsourcing contract ended / 外包合同到期".to_string());
        user.updated_at = now;
        let mut tx = state.store.begin().await?;
        tx.update_user(&user).await?;
        let revoked = tx.revoke_all_for_user(user.id, now).await?;
        let d = AuditDraft::new(Actor::system(), "user.disable", "user", Outcome::Success)
            .object(user.id)
            .after(user_summary(&user))
            .detail(format!(
                "contract ended; sessions and tokens revoked: {revoked}"
            ));
        tx.commit(vec![d], now).await?;
        state.metrics.audit_appended(1);
        n += 1;
    }
    Ok(n)
}

/// Turns on the caller's second factor after checking a code from the new secret; returns the
/// one-time recovery codes (stored hashed). The current session counts as verified.
pub async fn enrol_mfa(
    state: &AppState,
    p: &Principal,
    session_hash: &str,
    secret: &str,
    code: &str,
) -> ApiResult<Vec<String>> {
    authorize(state, p, &Action::own_account("user.mfa_enrol")).await?;
    let now = state.clock.now();
    let Some(step) =
        ballast_core::mfa::verify_code(secret, code, now).and_then(|s| i64::try_from(s).ok())
    else {
        return Err(ApiError::bad_request(Problem::field(
            "mfa.invalid_code",
            "code",
            "验证码不正确，请核对设备时间后重试",
            "wrong code: check the device clock and try again",
        )));
    };
    let codes = ballast_core::mfa::generate_recovery_codes();
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| ballast_core::mfa::hash_recovery_code(c))
        .collect();
    // Sealed with the credential key, bound to the user: a copy of the database alone does not
    // give anyone the second factor.
    let sealed = state
        .exec
        .sealer
        .seal(&crate::auth::mfa_purpose(p.user.id), secret.as_bytes());
    let mut tx = state.store.begin().await?;
    tx.set_mfa(p.user.id, Some(&sealed), true).await?;
    tx.set_mfa_last_step(p.user.id, step).await?;
    tx.replace_recovery_codes(p.user.id, &hashes).await?;
    tx.set_session_mfa(session_hash).await?;
    tx.commit(
        vec![
            draft(p, "user.mfa_enrol", "user", Outcome::Success)
                .object(p.user.id)
                .detail("TOTP enrolled; 10 recovery codes issued"),
        ],
        now,
    )
    .await?;
    state.metrics.audit_appended(1);
    Ok(codes)
}

/// A custom role (or a change to one): a named permission set, optionally limited to networks.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    /// `[a-z][a-z0-9_]{1,31}`; built-in keys are reserved.
    pub key: String,
    pub name_zh: String,
    pub name_en: String,
    /// Permission keys such as `job.read`.
    pub permissions: Vec<String>,
    #[serde(default)]
    pub privileged: bool,
    /// CIDR networks operations with this role may come from; empty = anywhere.
    #[serde(default)]
    pub allowed_networks: Vec<String>,
}

fn parse_networks(nets: &[String]) -> Result<Vec<ipnet::IpNet>, Problem> {
    nets.iter()
        .map(|n| {
            n.trim().parse::<ipnet::IpNet>().map_err(|_| {
                Problem::field(
                    "role.network_invalid",
                    "allowed_networks",
                    format!("网段 {n:?} 无效，应为 CIDR，如 10.1.0.0/16"),
                    format!("network {n:?} is invalid: expected CIDR such as 10.1.0.0/16"),
                )
            })
        })
        .collect()
}

/// Creates or updates a custom role. Built-in roles keep their permissions; only their allowed
/// networks can be changed (through [`set_role_networks`]).
pub async fn upsert_custom_role(
    state: &AppState,
    p: &Principal,
    input: &RoleInput,
) -> ApiResult<authz::Role> {
    authorize(state, p, &mutate(Permission::RoleManage, "role.upsert")).await?;
    let key = input.key.trim();
    let valid_key = (2..=32).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_key {
        return Err(ApiError::bad_request(Problem::field(
            "role.key_invalid",
            "key",
            format!("角色标识 {key:?} 无效：2–32 位小写字母、数字或下划线，以字母开头"),
            format!(
                "role key {key:?} is invalid: 2–32 characters of a-z, 0-9 or '_', starting with a letter"
            ),
        )));
    }
    if authz::builtin_roles().iter().any(|r| r.key == key) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            Problem::field(
                "role.builtin",
                "key",
                "内置角色的权限不可修改",
                "built-in roles cannot be redefined",
            ),
        ));
    }
    for (field, v) in [("name_zh", &input.name_zh), ("name_en", &input.name_en)] {
        if v.trim().is_empty() || v.chars().count() > 64 {
            return Err(ApiError::bad_request(Problem::field(
                "role.name_invalid",
                field,
                "角色名称须为 1–64 个字符",
                "role names must be 1–64 characters",
            )));
        }
    }
    let permissions = input
        .permissions
        .iter()
        .map(|k| {
            Permission::parse(k).ok_or_else(|| {
                Problem::field(
                    "role.permission_unknown",
                    "permissions",
                    format!("未知权限 {k:?}"),
                    format!("unknown permission {k:?}"),
                )
            })
        })
        .collect::<Result<std::collections::BTreeSet<_>, _>>()
        .map_err(ApiError::bad_request)?;
    let role = authz::Role {
        key: key.to_string(),
        name_zh: input.name_zh.trim().to_string(),
        name_en: input.name_en.trim().to_string(),
        permissions,
        privileged: input.privileged,
        builtin: false,
        allowed_networks: parse_networks(&input.allowed_networks).map_err(ApiError::bad_request)?,
    };
    let before = state
        .store
        .roles()
        .await?
        .into_iter()
        .find(|r| r.key == role.key);
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.upsert_role(&role).await?;
    let mut d = draft(p, "role.upsert", "role", Outcome::Success)
        .object(&role.key)
        .after(serde_json::json!(role));
    if let Some(b) = before {
        d = d.before(serde_json::json!(b));
    }
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(role)
}

/// Limits any role (built-in included) to source networks (操作地点).
pub async fn set_role_networks(
    state: &AppState,
    p: &Principal,
    key: &str,
    networks: &[String],
) -> ApiResult<authz::Role> {
    authorize(state, p, &mutate(Permission::RoleManage, "role.networks")).await?;
    let nets = parse_networks(networks).map_err(ApiError::bad_request)?;
    let mut role = state
        .store
        .roles()
        .await?
        .into_iter()
        .find(|r| r.key == key)
        .ok_or_else(|| ApiError::not_found(&format!("role {key}")))?;
    let before = role.allowed_networks.clone();
    role.allowed_networks = nets;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.upsert_role(&role).await?;
    let d = draft(p, "role.networks", "role", Outcome::Success)
        .object(key)
        .before(serde_json::json!({"allowed_networks": before}))
        .after(serde_json::json!({"allowed_networks": role.allowed_networks}));
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(role)
}

/// Sets the security zones (安全区域) of a declared environment.
pub async fn set_security_zones(
    state: &AppState,
    p: &Principal,
    env: &str,
    zones: &[String],
) -> ApiResult<ballast_store::Environment> {
    let action = Action::new(
        ActionKind::Mutate,
        Permission::EnvironmentManage,
        "environment.zones",
        Target::environment(env),
    );
    authorize(state, p, &action).await?;
    let mut e = state
        .store
        .environments()
        .await?
        .into_iter()
        .find(|e| e.name == env)
        .ok_or_else(|| ApiError::not_found(&format!("environment {env}")))?;
    let zones: Vec<String> = zones
        .iter()
        .map(|z| z.trim().to_string())
        .filter(|z| !z.is_empty())
        .collect();
    if zones
        .iter()
        .any(|z| z.chars().count() > 64 || z.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(Problem::field(
            "environment.zone_invalid",
            "security_zones",
            "安全区域名称须为 1–64 个字符",
            "zone names must be 1–64 characters",
        )));
    }
    let before = std::mem::replace(&mut e.security_zones, zones);
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    tx.upsert_environment(&e).await?;
    let d = draft(p, "environment.zones", "environment", Outcome::Success)
        .object(env)
        .environment(Some(env.to_string()))
        .before(serde_json::json!({"security_zones": before}))
        .after(serde_json::json!({"security_zones": e.security_zones}));
    tx.commit(vec![d], now).await?;
    state.metrics.audit_appended(1);
    Ok(e)
}

/// The caller's tokens, or everyone's for holders of `user.manage`.
pub async fn list_tokens(state: &AppState, p: &Principal) -> ApiResult<Vec<ApiToken>> {
    let roles = state.store.roles().await?;
    let all = authz::is_allowed(
        &p.bindings,
        &roles,
        Permission::UserManage,
        &Target::global(),
        p.source_ip,
    );
    Ok(state
        .store
        .tokens(if all { None } else { Some(p.user.id) })
        .await?)
}

/// Revokes a token: one's own, or anyone's with `user.manage`.
pub async fn revoke_token(state: &AppState, p: &Principal, id: i64) -> ApiResult<()> {
    let tokens = list_tokens(state, p).await?;
    let t = tokens
        .iter()
        .find(|t| t.id == id)
        .ok_or_else(|| ApiError::not_found(&format!("token {id}")))?;
    let op = if t.user_id == p.user.id {
        Action::own_account("token.revoke")
    } else {
        mutate(Permission::UserManage, "token.revoke")
    };
    authorize(state, p, &op).await?;
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    if !tx.revoke_token(id, now).await? {
        return Err(ApiError::not_found(&format!("token {id}")));
    }
    tx.commit(
        vec![
            draft(p, "token.revoke", "api_token", Outcome::Success)
                .object(id)
                .detail(t.name.clone()),
        ],
        now,
    )
    .await?;
    state.metrics.audit_appended(1);
    Ok(())
}
