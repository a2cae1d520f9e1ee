//! The admin pages of a team deployment: users, groups, model access, usage
//! and the audit log. Plain server-rendered HTML and forms (they work
//! without JavaScript and add nothing to the browser's download). Only an
//! active admin sees them: to everyone else every admin address is a 404.
//! No page shows anyone's conversations.

mod pages;

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Form;
use serde::Deserialize;
use wick_core::db::team::{self, AuditAction, AuditFilter, LimitsOf, TeamError, UsageFilter};
use wick_core::db::users::{self, Role};
use wick_core::team::{check_group_name, LimitsForm};
use wick_core::{session, StoreError, UserId};

use crate::audit::{self, address, Peer};
use crate::ServerState;

/// The admin routes, for the router's table.
pub fn routes() -> Vec<(&'static str, MethodRouter<ServerState>)> {
    vec![
        ("/admin", get(index)),
        ("/admin/users", get(pages::users)),
        ("/admin/users/role", post(set_role)),
        ("/admin/users/disabled", post(set_disabled)),
        ("/admin/users/delete", post(delete_user)),
        ("/admin/users/limits", post(set_user_limits)),
        ("/admin/groups", get(pages::groups).post(create_group)),
        ("/admin/groups/rename", post(rename_group)),
        ("/admin/groups/delete", post(delete_group)),
        ("/admin/groups/limits", post(set_group_limits)),
        ("/admin/groups/members", post(change_member)),
        ("/admin/models", get(pages::models).post(set_model_access)),
        ("/admin/usage", get(pages::usage)),
        ("/admin/usage.csv", get(pages::usage_csv)),
        ("/admin/audit", get(pages::audit_log)),
        ("/admin/audit.jsonl", get(pages::audit_jsonl)),
    ]
}

/// `GET /admin`: the users page.
async fn index(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    match admin(&state, &headers).await {
        Ok(_) => see_other("/admin/users"),
        Err(response) => response,
    }
}

/// The signed-in admin, or the answer for anyone else: 404, as if the
/// admin pages did not exist.
pub(crate) async fn admin(state: &ServerState, headers: &HeaderMap) -> Result<UserId, Response> {
    let pool = state.chat().pool();
    let user = session::account_from_headers(pool, headers)
        .await
        .map_err(server_error)?;
    match user {
        Some(user) if team::is_admin(pool, user).await.map_err(server_error)? => Ok(user),
        _ => Err(not_found()),
    }
}

pub(crate) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "There is no such page.").into_response()
}

pub(crate) fn server_error(e: StoreError) -> Response {
    tracing::error!(error = %e, "database error on an admin page");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on the server; nothing was changed.",
    )
        .into_response()
}

pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Back to `page` saying `sentence` (an error when `error`), through the
/// address: `?said=…` or `?error=…`.
fn back(page: &str, sentence: &str, error: bool) -> Response {
    let key = if error { "error" } else { "said" };
    see_other(&format!("{page}?{key}={}", pages::query_escape(sentence)))
}

/// An answer of `content_type`, never cached (admin data).
pub(crate) fn private(content_type: &'static str, body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn download(content_type: &'static str, name: &'static str, body: String) -> Response {
    let mut response = private(content_type, body);
    response
        .headers_mut()
        .insert(CONTENT_DISPOSITION, HeaderValue::from_static(name));
    response
}

/// The admin and their form, or the answer: 404 for anyone else, and back
/// to `page` saying so when the form cannot be read.
async fn admin_form<T>(
    state: &ServerState,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
    page: &str,
) -> Result<(UserId, T), Response> {
    let actor = admin(state, headers).await?;
    match form {
        Ok(Form(form)) => Ok((actor, form)),
        Err(_) => Err(incomplete(page)),
    }
}

fn incomplete(page: &str) -> Response {
    back(page, "The form was incomplete; nothing was changed.", true)
}

/// Writes an admin's change to the audit log.
async fn log(
    state: &ServerState,
    actor: UserId,
    peer: &Peer,
    action: AuditAction,
    target: Option<String>,
    detail: Option<String>,
) {
    audit::record(state, Some(actor), action, target, detail, address(peer)).await;
}

fn team_error(page: &str, e: TeamError) -> Response {
    match e {
        TeamError::Store(StoreError::NotFound) => not_found(),
        TeamError::Store(e) => server_error(e),
        e => back(page, &e.to_string(), true),
    }
}

fn parse_id(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

#[derive(Deserialize)]
pub struct RoleForm {
    user: String,
    role: String,
}

async fn set_role(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<RoleForm>, FormRejection>,
) -> Response {
    let page = "/admin/users";
    let (actor, form) = match admin_form(&state, &headers, form, page).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (Some(user), Ok(role)) = (parse_id(&form.user), form.role.parse::<Role>()) else {
        return back(page, "Choose a role: admin, user or pending.", true);
    };
    if let Err(e) = team::change_role(state.chat().pool(), user, role).await {
        return team_error(page, e);
    }
    let (target, detail) = (Some(format!("user {user}")), Some(format!("role {role}")));
    log(
        &state,
        actor,
        &peer,
        AuditAction::RoleChanged,
        target,
        detail,
    )
    .await;
    back(page, &format!("User {user} is now {role}."), false)
}

#[derive(Deserialize)]
pub struct DisableForm {
    user: String,
    /// "true" to disable, "false" to enable.
    disabled: String,
}

async fn set_disabled(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<DisableForm>, FormRejection>,
) -> Response {
    let page = "/admin/users";
    let (actor, form) = match admin_form(&state, &headers, form, page).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (Some(user), Ok(disabled)) = (parse_id(&form.user), form.disabled.parse::<bool>()) else {
        return incomplete(page);
    };
    if let Err(e) = team::change_disabled(state.chat().pool(), user, disabled).await {
        return team_error(page, e);
    }
    let action = if disabled {
        AuditAction::UserDisabled
    } else {
        AuditAction::UserEnabled
    };
    log(
        &state,
        actor,
        &peer,
        action,
        Some(format!("user {user}")),
        None,
    )
    .await;
    let said = if disabled {
        format!("User {user} is disabled: their sessions ended and their tokens are refused.")
    } else {
        format!("User {user} may sign in again.")
    };
    back(page, &said, false)
}

#[derive(Deserialize)]
pub struct DeleteForm {
    user: String,
    /// The confirmation box: "yes" when ticked.
    #[serde(default)]
    confirm: String,
}

async fn delete_user(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<DeleteForm>, FormRejection>,
) -> Response {
    let page = "/admin/users";
    let (actor, form) = match admin_form(&state, &headers, form, page).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(user) = parse_id(&form.user) else {
        return incomplete(page);
    };
    if form.confirm != "yes" {
        return back(
            page,
            "Tick the box to confirm that the user and all their conversations are deleted; nothing was deleted.",
            true,
        );
    }
    // Named before the row goes, for the log and the sentence.
    let who = users::list_users(state.chat().pool())
        .await
        .ok()
        .and_then(|all| all.into_iter().find(|u| u.id == user))
        .and_then(|u| u.email)
        .unwrap_or_else(|| format!("user {user}"));
    if let Err(e) = team::delete_user(state.chat().pool(), user).await {
        return team_error(page, e);
    }
    log(
        &state,
        actor,
        &peer,
        AuditAction::UserDeleted,
        Some(who.clone()),
        None,
    )
    .await;
    back(
        page,
        &format!("{who} and all their data are deleted."),
        false,
    )
}

#[derive(Deserialize)]
pub struct UserLimitsForm {
    user: String,
    #[serde(flatten)]
    limits: LimitsForm,
}

async fn set_user_limits(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<UserLimitsForm>, FormRejection>,
) -> Response {
    let page = "/admin/users";
    let (actor, form) = match admin_form(&state, &headers, form, page).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(user) = parse_id(&form.user) else {
        return incomplete(page);
    };
    save_limits(
        &state,
        actor,
        &peer,
        page,
        LimitsOf::User(user),
        &form.limits,
    )
    .await
}

#[derive(Deserialize)]
pub struct GroupForm {
    #[serde(default)]
    group: String,
    #[serde(default)]
    name: String,
}

async fn create_group(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<GroupForm>, FormRejection>,
) -> Response {
    let page = "/admin/groups";
    let (actor, form) = match admin_form(&state, &headers, form, page).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let name = match check_group_name(&form.name) {
        Ok(name) => name,
        Err(sentence) => return back(page, &sentence, true),
    };
    let id = match team::create_group(state.chat().pool(), &name).await {
        Ok(id) => id,
        Err(e) => return team_error(page, e),
    };
    log(
        &state,
        actor,
        &peer,
        AuditAction::GroupCreated,
        Some(format!("group {id}")),
        Some(format!("name {name}")),
    )
    .await;
    back(page, &format!("Group {name} is created."), false)
}

async fn rename_group(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<GroupForm>, FormRejection>,
) -> Response {
    let page = "/admin/groups";
    let (actor, form) = match admin_form(&state, &headers, form, page).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(group) = parse_id(&form.group) else {
        return incomplete(page);
    };
    let name = match check_group_name(&form.name) {
        Ok(name) => name,
        Err(sentence) => return back(page, &sentence, true),
    };
    if let Err(e) = team::rename_group(state.chat().pool(), group, &name).await {
        return team_error(page, e);
    }
    log(
        &state,
        actor,
        &peer,
        AuditAction::GroupRenamed,
        Some(format!("group {group}")),
        Some(format!("name {name}")),
    )
    .await;
    back(page, &format!("The group is now called {name}."), false)
}

async fn delete_group(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<GroupForm>, FormRejection>,
) -> Response {
    let actor = match admin(&state, &headers).await {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let page = "/admin/groups";
    let Some(group) = form.ok().and_then(|Form(f)| parse_id(&f.group)) else {
        return incomplete(page);
    };
    match team::delete_group(state.chat().pool(), group).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return not_found(),
        Err(e) => return server_error(e),
    }
    log(
        &state,
        actor,
        &peer,
        AuditAction::GroupDeleted,
        Some(format!("group {group}")),
        None,
    )
    .await;
    back(page, "The group is deleted; its members stay.", false)
}

/// Stores a group's or a person's limits from their form, logs it, and
/// goes back to `page` saying so (or what is wrong, changing nothing).
async fn save_limits(
    state: &ServerState,
    actor: UserId,
    peer: &Peer,
    page: &str,
    of: LimitsOf,
    form: &LimitsForm,
) -> Response {
    let limits = match form.parse() {
        Ok(limits) => limits,
        Err(sentence) => return back(page, &format!("{sentence} Nothing was changed."), true),
    };
    match team::set_limits(state.chat().pool(), of, &limits).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return not_found(),
        Err(e) => return server_error(e),
    }
    let (target, said) = match of {
        LimitsOf::User(user) => (
            format!("user {user}"),
            format!("The limits of user {user} are saved."),
        ),
        LimitsOf::Group(group) => (
            format!("group {group}"),
            "The group's limits are saved.".to_owned(),
        ),
    };
    let detail = Some(pages::limits_text(&limits));
    log(
        state,
        actor,
        peer,
        AuditAction::LimitsChanged,
        Some(target),
        detail,
    )
    .await;
    back(page, &said, false)
}

#[derive(Deserialize)]
pub struct GroupLimitsForm {
    group: String,
    #[serde(flatten)]
    limits: LimitsForm,
}

async fn set_group_limits(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<GroupLimitsForm>, FormRejection>,
) -> Response {
    let page = "/admin/groups";
    let (actor, form) = match admin_form(&state, &headers, form, page).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(group) = parse_id(&form.group) else {
        return incomplete(page);
    };
    save_limits(
        &state,
        actor,
        &peer,
        page,
        LimitsOf::Group(group),
        &form.limits,
    )
    .await
}

#[derive(Deserialize)]
pub struct MemberForm {
    group: String,
    /// The person's email or id.
    user: String,
    /// "add" or "remove".
    change: String,
    /// The page the form is on: "users", else the groups page.
    #[serde(default)]
    back: String,
}

async fn change_member(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    form: Result<Form<MemberForm>, FormRejection>,
) -> Response {
    let (actor, form) = match admin_form(&state, &headers, form, "/admin/groups").await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let page = if form.back == "users" {
        "/admin/users"
    } else {
        "/admin/groups"
    };
    let Some(group) = parse_id(&form.group) else {
        return incomplete(page);
    };
    let pool = state.chat().pool();
    let user = match users::find_user(pool, &form.user).await {
        Ok(user) => user,
        Err(StoreError::NotFound) => {
            return back(
                page,
                "There is no user with that email or id; nothing was changed.",
                true,
            )
        }
        Err(e) => return server_error(e),
    };
    let (result, action) = match form.change.as_str() {
        "add" => (
            team::add_member(pool, group, user).await,
            AuditAction::MemberAdded,
        ),
        "remove" => (
            team::remove_member(pool, group, user).await,
            AuditAction::MemberRemoved,
        ),
        _ => return incomplete(page),
    };
    match result {
        Ok(()) => {}
        Err(StoreError::NotFound) if action == AuditAction::MemberRemoved => {
            return back(
                page,
                "That user is not in the group; nothing was changed.",
                true,
            )
        }
        Err(StoreError::NotFound) => return not_found(),
        Err(e) => return server_error(e),
    }
    log(
        &state,
        actor,
        &peer,
        action,
        Some(format!("user {user}")),
        Some(format!("group {group}")),
    )
    .await;
    let said = if action == AuditAction::MemberAdded {
        format!("User {user} is in the group.")
    } else {
        format!("User {user} is no longer in the group.")
    };
    back(page, &said, false)
}

#[derive(Deserialize)]
pub struct AccessForm {
    model: String,
    /// The ids of the groups that may use it (repeated; none: everyone).
    #[serde(default)]
    groups: Vec<String>,
}

async fn set_model_access(
    State(state): State<ServerState>,
    peer: Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let actor = match admin(&state, &headers).await {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let page = "/admin/models";
    // Repeated `groups` fields: serde_urlencoded reads them only through a
    // list of pairs.
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) else {
        return incomplete(page);
    };
    let form = AccessForm {
        model: pairs
            .iter()
            .find(|(k, _)| k == "model")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
        groups: pairs
            .iter()
            .filter(|(k, _)| k == "groups")
            .map(|(_, v)| v.clone())
            .collect(),
    };
    let Some(model) = state.chat().models().get(&form.model).cloned() else {
        return back(page, "There is no such model; nothing was changed.", true);
    };
    let Some(groups) = form
        .groups
        .iter()
        .map(|g| parse_id(g))
        .collect::<Option<Vec<_>>>()
    else {
        return incomplete(page);
    };
    match team::set_model_access(state.chat().pool(), &model.id, &groups).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => {
            return back(
                page,
                "One of those groups no longer exists; nothing was changed.",
                true,
            )
        }
        Err(e) => return server_error(e),
    }
    let detail = Some(if groups.is_empty() {
        "everyone".to_owned()
    } else {
        format!("groups {groups:?}")
    });
    log(
        &state,
        actor,
        &peer,
        AuditAction::ModelAccessChanged,
        Some(format!("model {}", model.id)),
        detail,
    )
    .await;
    let said = if groups.is_empty() {
        format!("Everyone may use {}.", model.name)
    } else {
        format!("Only the chosen groups may use {}.", model.name)
    };
    back(page, &said, false)
}

/// The usage page's filters, from its address.
#[derive(Deserialize, Default)]
pub struct UsageQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    days: String,
}

impl UsageQuery {
    fn filter(&self) -> UsageFilter {
        let some = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
        UsageFilter {
            user: parse_id(&self.user),
            group: parse_id(&self.group),
            model: some(&self.model),
            days: self
                .days
                .trim()
                .parse()
                .ok()
                .filter(|d| (1..=366).contains(d))
                .unwrap_or(30),
        }
    }
}

/// The audit page's filters.
#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    who: String,
}

impl AuditQuery {
    fn filter(&self, limit: u32) -> AuditFilter {
        AuditFilter {
            action: AuditAction::parse(self.action.trim()),
            who: Some(self.who.trim())
                .filter(|w| !w.is_empty())
                .map(str::to_owned),
            limit,
        }
    }
}

/// Reads a page's query leniently: a malformed one shows the page unfiltered.
pub(crate) fn lenient<T: Default>(query: Result<Query<T>, impl std::fmt::Debug>) -> T {
    query.map(|Query(q)| q).unwrap_or_default()
}
