//! The admin pages' HTML, the usage chart (inline SVG drawn here) and the
//! downloads (usage as CSV, the audit log as JSON lines).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::OnceLock;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use wick_core::db::team::{self, AuditAction, Limits, UsageRow};
use wick_core::db::users;
use wick_core::team::with_commas;

use super::{admin, download, lenient, private, server_error, AuditQuery, UsageQuery};
use crate::accounts::html_escape as esc;
use crate::tokens::when;
use crate::ServerState;

/// How many audit events the page shows (the download has them all).
const AUDIT_PAGE_ROWS: u32 = 500;

/// `text` for an address's query (`?said=…`).
pub(crate) fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Limits in words, for the audit log and the pages.
pub(crate) fn limits_text(limits: &Limits) -> String {
    let one = |n: Option<i64>| n.map_or_else(|| "none".to_owned(), with_commas);
    format!(
        "replies per minute {}, tokens per day {}, replies at once {}",
        one(limits.requests_per_minute),
        one(limits.tokens_per_day),
        one(limits.replies_at_once)
    )
}

/// The site's stylesheet: by its hashed name in a release build (listed in
/// `hash.txt` beside the binary), else the plain name.
fn stylesheet() -> &'static str {
    static HREF: OnceLock<String> = OnceLock::new();
    HREF.get_or_init(|| {
        let hash = std::env::current_exe()
            .ok()
            .and_then(|exe| std::fs::read_to_string(exe.with_file_name("hash.txt")).ok())
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("css:").map(|h| h.trim().to_owned()))
            });
        match hash {
            Some(hash) => format!("/pkg/wick.{hash}.css"),
            None => "/pkg/wick.css".to_owned(),
        }
    })
}

/// A whole admin page: the navigation, what the last form did (from the
/// address; shown as text, so a crafted link can only show words), and `body`.
fn page(title: &str, current: &str, said: &Said, body: &str) -> Response {
    let nav = [
        ("/admin/users", "Users"),
        ("/admin/groups", "Groups"),
        ("/admin/models", "Models"),
        ("/admin/usage", "Usage"),
        ("/admin/audit", "Audit log"),
    ]
    .iter()
    .map(|(href, name)| {
        let here = if *href == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{here}>{name}</a>")
    })
    .collect::<Vec<_>>()
    .join(" ");
    let message = match said {
        Said { error: Some(e), .. } => format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)),
        Said { said: Some(s), .. } => format!("<p class=\"said\" role=\"status\">{}</p>", esc(s)),
        _ => String::new(),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <link rel=\"stylesheet\" href=\"{css}\">\
         <title>{title} · Admin · Wick</title></head>\
         <body class=\"admin\"><main class=\"admin-page\">\
         <nav class=\"admin-nav\" aria-label=\"Admin\">{nav} <a href=\"/\">Back to the chat</a></nav>\
         <h1>{title}</h1>{message}{body}</main></body></html>",
        css = stylesheet(),
        title = esc(title),
    );
    private("text/html; charset=utf-8", html)
}

/// What the last form said, from `?said=` or `?error=`.
#[derive(serde::Deserialize, Default)]
pub struct Said {
    said: Option<String>,
    error: Option<String>,
}

fn limit_inputs(limits: &Limits, id: &str) -> String {
    let value = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    format!(
        "<label for=\"rpm-{id}\">Replies per minute</label>\
         <input id=\"rpm-{id}\" name=\"requests_per_minute\" inputmode=\"numeric\" size=\"8\" value=\"{}\">\
         <label for=\"tpd-{id}\">Tokens per day</label>\
         <input id=\"tpd-{id}\" name=\"tokens_per_day\" inputmode=\"numeric\" size=\"12\" value=\"{}\">\
         <label for=\"rao-{id}\">Replies at once</label>\
         <input id=\"rao-{id}\" name=\"replies_at_once\" inputmode=\"numeric\" size=\"5\" value=\"{}\">",
        value(limits.requests_per_minute),
        value(limits.tokens_per_day),
        value(limits.replies_at_once),
    )
}

#[derive(serde::Deserialize, Default)]
pub struct UsersQuery {
    #[serde(default)]
    q: String,
    #[serde(flatten)]
    said: Said,
}

/// `GET /admin/users`: registered people, searchable by email or name.
pub async fn users(
    State(state): State<ServerState>,
    headers: HeaderMap,
    query: Result<Query<UsersQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(response) = admin(&state, &headers).await {
        return response;
    }
    let query: UsersQuery = lenient(query);
    let pool = state.chat().pool();
    let (all, memberships, groups) = match (
        users::list_users(pool).await,
        team::all_memberships(pool).await,
        team::list_groups(pool).await,
    ) {
        (Ok(all), Ok(m), Ok(g)) => (all, m, g),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return server_error(e),
    };
    let group_options: String = groups
        .iter()
        .map(|g| format!("<option value=\"{}\">{}</option>", g.id, esc(&g.name)))
        .collect();
    let needle = query.q.trim().to_lowercase();
    let mut rows = String::new();
    for u in all.iter().filter(|u| u.kind == "registered") {
        let name = u.display_name.clone().unwrap_or_default();
        let email = u.email.clone().unwrap_or_default();
        if !needle.is_empty()
            && !email.to_lowercase().contains(&needle)
            && !name.to_lowercase().contains(&needle)
        {
            continue;
        }
        let groups: Vec<&str> = memberships
            .iter()
            .filter(|(id, _)| *id == u.id)
            .map(|(_, g)| g.as_str())
            .collect();
        let limits = match team::user_limits(pool, u.id).await {
            Ok(l) => l,
            Err(e) => return server_error(e),
        };
        let id = u.id;
        let who = esc(if email.is_empty() { &name } else { &email });
        let roles = ["admin", "user", "pending"]
            .iter()
            .map(|r| {
                let selected = if u.role.to_string() == *r {
                    " selected"
                } else {
                    ""
                };
                format!("<option value=\"{r}\"{selected}>{r}</option>")
            })
            .collect::<String>();
        let (toggle, toggle_label) = if u.disabled_at.is_some() {
            ("false", "Enable")
        } else {
            ("true", "Disable")
        };
        let state_text = match u.disabled_at {
            Some(at) => format!("disabled {}", when(Some(at))),
            None => "active".to_owned(),
        };
        let _ = write!(
            rows,
            "<tr data-user=\"{who}\"><td>{id}</td><td>{who}<br><span class=\"hint\">{name}</span></td>\
             <td>{state_text}</td><td>{groups}{add_to_group}</td>\
             <td><form method=\"post\" action=\"/admin/users/role\">\
               <input type=\"hidden\" name=\"user\" value=\"{id}\">\
               <label for=\"role-{id}\" class=\"visually-hidden\">Role of {who}</label>\
               <select id=\"role-{id}\" name=\"role\">{roles}</select> <button>Save role</button></form>\
             <form method=\"post\" action=\"/admin/users/disabled\">\
               <input type=\"hidden\" name=\"user\" value=\"{id}\">\
               <input type=\"hidden\" name=\"disabled\" value=\"{toggle}\">\
               <button aria-label=\"{toggle_label} {who}\">{toggle_label}</button></form>\
             <details><summary>Limits</summary><form method=\"post\" action=\"/admin/users/limits\" class=\"limits-form\">\
               <input type=\"hidden\" name=\"user\" value=\"{id}\">{inputs}\
               <button>Save limits</button></form>\
               <p class=\"hint\">Empty: the most generous of the person's groups (or none).</p></details>\
             <details><summary>Delete</summary><form method=\"post\" action=\"/admin/users/delete\">\
               <input type=\"hidden\" name=\"user\" value=\"{id}\">\
               <input type=\"checkbox\" id=\"confirm-{id}\" name=\"confirm\" value=\"yes\">\
               <label for=\"confirm-{id}\">Delete {who} and all their conversations</label>\
               <button>Delete</button></form></details></td></tr>",
            name = esc(&name),
            groups = esc(&groups.join(", ")),
            add_to_group = if group_options.is_empty() {
                String::new()
            } else {
                format!(
                    "<form method=\"post\" action=\"/admin/groups/members\">\
                     <input type=\"hidden\" name=\"user\" value=\"{id}\">\
                     <input type=\"hidden\" name=\"change\" value=\"add\">\
                     <input type=\"hidden\" name=\"back\" value=\"users\">\
                     <label for=\"group-{id}\" class=\"visually-hidden\">Group to put {who} in</label>\
                     <select id=\"group-{id}\" name=\"group\">{group_options}</select> \
                     <button>Add to group</button></form>"
                )
            },
            inputs = limit_inputs(&limits, &format!("u{id}")),
        );
    }
    let body = format!(
        "<form method=\"get\" action=\"/admin/users\" role=\"search\">\
         <label for=\"q\">Search by email or name</label> \
         <input id=\"q\" name=\"q\" value=\"{q}\"> <button>Search</button></form>\
         <p class=\"hint\">Pending people wait for approval: give them the role <em>user</em>. \
         Groups are set on the <a href=\"/admin/groups\">Groups</a> page.</p>\
         <div class=\"table-scroll\"><table><thead><tr><th>Id</th><th>Person</th><th>State</th>\
         <th>Groups</th><th>Change</th></tr></thead><tbody>{rows}</tbody></table></div>",
        q = esc(&query.q),
    );
    page("Users", "/admin/users", &query.said, &body)
}

/// `GET /admin/groups`: groups, their members and limits.
pub async fn groups(
    State(state): State<ServerState>,
    headers: HeaderMap,
    said: Result<Query<Said>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(response) = admin(&state, &headers).await {
        return response;
    }
    let said: Said = lenient(said);
    let pool = state.chat().pool();
    let groups = match team::list_groups(pool).await {
        Ok(g) => g,
        Err(e) => return server_error(e),
    };
    let mut sections = String::new();
    for g in &groups {
        let members = match team::members(pool, g.id).await {
            Ok(m) => m,
            Err(e) => return server_error(e),
        };
        let id = g.id;
        let name = esc(&g.name);
        let list = members
            .iter()
            .map(|(user, who)| {
                format!(
                    "<li>{who} <form method=\"post\" action=\"/admin/groups/members\" class=\"inline\">\
                     <input type=\"hidden\" name=\"group\" value=\"{id}\">\
                     <input type=\"hidden\" name=\"user\" value=\"{user}\">\
                     <input type=\"hidden\" name=\"change\" value=\"remove\">\
                     <button aria-label=\"Remove {who} from {name}\">Remove</button></form></li>",
                    who = esc(who),
                )
            })
            .collect::<String>();
        let _ = write!(
            sections,
            "<section class=\"group\" aria-labelledby=\"group-{id}\"><h2 id=\"group-{id}\">{name}</h2>\
             <p class=\"hint\">{count} members · {limits}</p>\
             <ul>{list}</ul>\
             <form method=\"post\" action=\"/admin/groups/members\">\
               <input type=\"hidden\" name=\"group\" value=\"{id}\">\
               <input type=\"hidden\" name=\"change\" value=\"add\">\
               <label for=\"add-{id}\">Add a person (email or id)</label>\
               <input id=\"add-{id}\" name=\"user\" required> <button>Add</button></form>\
             <form method=\"post\" action=\"/admin/groups/limits\" class=\"limits-form\">\
               <input type=\"hidden\" name=\"group\" value=\"{id}\">{inputs}\
               <button>Save limits</button></form>\
             <form method=\"post\" action=\"/admin/groups/rename\">\
               <input type=\"hidden\" name=\"group\" value=\"{id}\">\
               <label for=\"rename-{id}\">New name</label>\
               <input id=\"rename-{id}\" name=\"name\" maxlength=\"64\" required> <button>Rename</button></form>\
             <form method=\"post\" action=\"/admin/groups/delete\">\
               <input type=\"hidden\" name=\"group\" value=\"{id}\">\
               <button aria-label=\"Delete group {name}\">Delete group</button></form></section>",
            count = g.members,
            limits = esc(&limits_text(&g.limits)),
            inputs = limit_inputs(&g.limits, &format!("g{id}")),
        );
    }
    let body = format!(
        "<p class=\"hint\">A group's limits hold for its members; someone in several groups gets the \
         most generous of each, and limits set on a person (Users page) win over their groups'. \
         An empty field is no limit. With an OpenID provider, people are put in the groups named \
         like theirs at each sign-in.</p>\
         <form method=\"post\" action=\"/admin/groups\">\
         <label for=\"new-group\">New group</label> \
         <input id=\"new-group\" name=\"name\" maxlength=\"64\" required> <button>Create group</button></form>\
         {sections}"
    );
    page("Groups", "/admin/groups", &said, &body)
}

/// `GET /admin/models`: which groups may use each model.
pub async fn models(
    State(state): State<ServerState>,
    headers: HeaderMap,
    said: Result<Query<Said>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(response) = admin(&state, &headers).await {
        return response;
    }
    let said: Said = lenient(said);
    let pool = state.chat().pool();
    let (groups, access) = match (
        team::list_groups(pool).await,
        team::model_access(pool).await,
    ) {
        (Ok(g), Ok(a)) => (g, a),
        (Err(e), _) | (_, Err(e)) => return server_error(e),
    };
    let mut sections = String::new();
    for (n, model) in state.chat().models().all().enumerate() {
        let allowed: Vec<i64> = access
            .iter()
            .filter(|(m, _)| *m == model.id)
            .map(|(_, g)| *g)
            .collect();
        let boxes = groups
            .iter()
            .map(|g| {
                let checked = if allowed.contains(&g.id) { " checked" } else { "" };
                format!(
                    "<label><input type=\"checkbox\" name=\"groups\" value=\"{}\"{checked}> {}</label> ",
                    g.id,
                    esc(&g.name)
                )
            })
            .collect::<String>();
        let who = if allowed.is_empty() {
            "Everyone may use it.".to_owned()
        } else {
            "Only the ticked groups may use it.".to_owned()
        };
        let _ = write!(
            sections,
            "<section aria-labelledby=\"model-{n}\"><h2 id=\"model-{n}\">{name}</h2>\
             <p class=\"hint\"><code>{id}</code> · {who}</p>\
             <form method=\"post\" action=\"/admin/models\">\
             <input type=\"hidden\" name=\"model\" value=\"{id}\">\
             <fieldset><legend>Groups that may use {name} (none ticked: everyone)</legend>{boxes}</fieldset>\
             <button>Save access</button></form></section>",
            name = esc(&model.name),
            id = esc(&model.id),
        );
    }
    let body = format!(
        "<p class=\"hint\">A model no group is ticked for is open to everyone. Admins may use every model. \
         People see only the models they may use, in the chat and in <code>/v1/models</code>.</p>{sections}"
    );
    page("Models", "/admin/models", &said, &body)
}

async fn usage_rows(state: &ServerState, query: &UsageQuery) -> Result<Vec<UsageRow>, Response> {
    team::usage(state.chat().pool(), &query.filter())
        .await
        .map_err(server_error)
}

/// `GET /admin/usage`: tokens per day as a chart, and the table, filtered
/// by user, group and model.
pub async fn usage(
    State(state): State<ServerState>,
    headers: HeaderMap,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(response) = admin(&state, &headers).await {
        return response;
    }
    let query: UsageQuery = lenient(query);
    let filter = query.filter();
    let rows = match usage_rows(&state, &query).await {
        Ok(rows) => rows,
        Err(response) => return response,
    };
    let pool = state.chat().pool();
    let (people, groups) = match (users::list_users(pool).await, team::list_groups(pool).await) {
        (Ok(p), Ok(g)) => (p, g),
        (Err(e), _) | (_, Err(e)) => return server_error(e),
    };
    let option = |value: String, label: &str, selected: bool| {
        let s = if selected { " selected" } else { "" };
        format!(
            "<option value=\"{}\"{s}>{}</option>",
            esc(&value),
            esc(label)
        )
    };
    let user_options: String = people
        .iter()
        .filter(|u| u.kind == "registered")
        .map(|u| {
            let label = u
                .email
                .clone()
                .or(u.display_name.clone())
                .unwrap_or_default();
            option(u.id.to_string(), &label, filter.user == Some(u.id))
        })
        .collect();
    let group_options: String = groups
        .iter()
        .map(|g| option(g.id.to_string(), &g.name, filter.group == Some(g.id)))
        .collect();
    let model_options: String = state
        .chat()
        .models()
        .all()
        .map(|m| {
            option(
                m.id.clone(),
                &m.name,
                filter.model.as_deref() == Some(&m.id),
            )
        })
        .collect();
    let mut table = String::new();
    let (mut prompt, mut completion) = (0i64, 0i64);
    for r in &rows {
        prompt += r.prompt_tokens;
        completion += r.completion_tokens;
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"number\">{}</td>\
             <td class=\"number\">{}</td><td class=\"number\">{}</td></tr>",
            esc(&r.day),
            esc(&r.user),
            esc(&r.model_id),
            r.requests,
            with_commas(r.prompt_tokens),
            with_commas(r.completion_tokens),
        );
    }
    let csv = format!(
        "/admin/usage.csv?user={}&group={}&model={}&days={}",
        query_escape(&query.user),
        query_escape(&query.group),
        query_escape(&query.model),
        filter.days
    );
    let body = format!(
        "<form method=\"get\" action=\"/admin/usage\" class=\"filters\">\
         <label for=\"f-user\">User</label> <select id=\"f-user\" name=\"user\"><option value=\"\">All</option>{user_options}</select>\
         <label for=\"f-group\">Group</label> <select id=\"f-group\" name=\"group\"><option value=\"\">All</option>{group_options}</select>\
         <label for=\"f-model\">Model</label> <select id=\"f-model\" name=\"model\"><option value=\"\">All</option>{model_options}</select>\
         <label for=\"f-days\">Days</label> <input id=\"f-days\" name=\"days\" size=\"4\" value=\"{days}\">\
         <button>Show</button></form>\
         {chart}\
         <p>Total: <strong data-total=\"prompt\">{p}</strong> prompt tokens and \
         <strong data-total=\"completion\">{c}</strong> completion tokens. \
         <a href=\"{csv}\" download>Download as CSV</a></p>\
         <div class=\"table-scroll\"><table><thead><tr><th>Day (UTC)</th><th>User</th><th>Model</th>\
         <th>Requests</th><th>Prompt tokens</th><th>Completion tokens</th></tr></thead>\
         <tbody>{table}</tbody></table></div>",
        days = filter.days,
        chart = chart(&rows, filter.days),
        p = with_commas(prompt),
        c = with_commas(completion),
        csv = esc(&csv),
    );
    page("Usage", "/admin/usage", &Said::default(), &body)
}

/// The last `days` days' tokens (prompt + completion) as bars, in inline SVG.
fn chart(rows: &[UsageRow], days: u32) -> String {
    let today = wick_core::db::now_ms().div_euclid(86_400_000);
    let mut per_day: BTreeMap<String, i64> = BTreeMap::new();
    for back in (0..i64::from(days)).rev() {
        per_day.insert(
            wick_types::account::utc_date((today - back) * 86_400_000),
            0,
        );
    }
    for r in rows {
        if let Some(total) = per_day.get_mut(&r.day) {
            *total += r.prompt_tokens + r.completion_tokens;
        }
    }
    let most = per_day.values().copied().max().unwrap_or(0).max(1);
    let (width, height, bar) = (per_day.len() as i64 * 12, 120i64, 10i64);
    let mut bars = String::new();
    for (i, (day, total)) in per_day.iter().enumerate() {
        let h = (total * (height - 20) / most).max(if *total > 0 { 1 } else { 0 });
        let _ = write!(
            bars,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{bar}\" height=\"{h}\" fill=\"currentColor\">\
             <title>{day}: {t} tokens</title></rect>",
            x = i as i64 * 12 + 1,
            y = height - h,
            t = with_commas(*total),
        );
    }
    let first = per_day.keys().next().cloned().unwrap_or_default();
    format!(
        "<figure class=\"usage-chart\"><svg role=\"img\" aria-labelledby=\"chart-title\" \
         viewBox=\"0 0 {width} {height}\" width=\"100%\" height=\"{height}\" preserveAspectRatio=\"none\">\
         <title id=\"chart-title\">Tokens per day, last {days} days; most in one day: {most}</title>{bars}</svg>\
         <figcaption>Tokens per day (prompt + completion) from {first} to today; the highest bar is {most}.</figcaption></figure>",
        most = with_commas(most),
    )
}

/// `GET /admin/usage.csv`: the usage table with the page's filters.
pub async fn usage_csv(
    State(state): State<ServerState>,
    headers: HeaderMap,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(response) = admin(&state, &headers).await {
        return response;
    }
    let query: UsageQuery = lenient(query);
    let rows = match usage_rows(&state, &query).await {
        Ok(rows) => rows,
        Err(response) => return response,
    };
    let mut csv = String::from("day,user_id,user,model,requests,prompt_tokens,completion_tokens\n");
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{}",
            r.day,
            r.user_id.map(|u| u.to_string()).unwrap_or_default(),
            csv_field(&r.user),
            csv_field(&r.model_id),
            r.requests,
            r.prompt_tokens,
            r.completion_tokens
        );
    }
    download(
        "text/csv; charset=utf-8",
        "attachment; filename=\"wick-usage.csv\"",
        csv,
    )
}

/// A CSV field, quoted when needed; a leading `=`, `+`, `-` or `@` is
/// prefixed with `'` so that a spreadsheet does not run it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// `GET /admin/audit`: the newest events, filtered by action and by who.
pub async fn audit_log(
    State(state): State<ServerState>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(response) = admin(&state, &headers).await {
        return response;
    }
    let query: AuditQuery = lenient(query);
    let filter = query.filter(AUDIT_PAGE_ROWS);
    let entries = match team::audit_entries(state.chat().pool(), &filter).await {
        Ok(e) => e,
        Err(e) => return server_error(e),
    };
    let actions = AuditAction::ALL
        .iter()
        .map(|a| {
            let s = if filter.action == Some(*a) {
                " selected"
            } else {
                ""
            };
            format!("<option value=\"{0}\"{s}>{0}</option>", a.as_str())
        })
        .collect::<String>();
    let mut rows = String::new();
    for e in &entries {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&when(Some(e.at))),
            esc(e.actor.as_deref().unwrap_or("-")),
            esc(&e.action),
            esc(e.target.as_deref().unwrap_or("")),
            esc(e.detail.as_deref().unwrap_or("")),
            esc(e.address.as_deref().unwrap_or("")),
        );
    }
    let body = format!(
        "<form method=\"get\" action=\"/admin/audit\" class=\"filters\">\
         <label for=\"a-action\">Action</label> <select id=\"a-action\" name=\"action\"><option value=\"\">All</option>{actions}</select>\
         <label for=\"a-who\">Who (email or target)</label> <input id=\"a-who\" name=\"who\" value=\"{who}\">\
         <button>Show</button></form>\
         <p class=\"hint\">The newest {AUDIT_PAGE_ROWS} events; the log never holds what people wrote. \
         <a href=\"/admin/audit.jsonl\" download>Download all as JSON lines</a></p>\
         <div class=\"table-scroll\"><table><thead><tr><th>When (UTC)</th><th>Who</th><th>Action</th>\
         <th>Target</th><th>Detail</th><th>Address</th></tr></thead><tbody>{rows}</tbody></table></div>",
        who = esc(&query.who),
    );
    page("Audit log", "/admin/audit", &Said::default(), &body)
}

/// `GET /admin/audit.jsonl`: every event (with the page's filters), one
/// JSON object per line, oldest last.
pub async fn audit_jsonl(
    State(state): State<ServerState>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(response) = admin(&state, &headers).await {
        return response;
    }
    let query: AuditQuery = lenient(query);
    let entries = match team::audit_entries(state.chat().pool(), &query.filter(u32::MAX)).await {
        Ok(e) => e,
        Err(e) => return server_error(e),
    };
    let mut out = String::new();
    for e in entries {
        if let Ok(line) = serde_json::to_string(&e) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    download(
        "application/jsonl; charset=utf-8",
        "attachment; filename=\"wick-audit.jsonl\"",
        out,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("alice@example.org"), "alice@example.org");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn a_sentence_survives_the_address() {
        assert_eq!(query_escape("a b&c=é"), "a%20b%26c%3D%C3%A9");
    }
}
