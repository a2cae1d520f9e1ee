//! Signing in with an OpenID Connect provider (`WICK_OIDC_*`): discovery,
//! the authorization code flow with PKCE, `state` and `nonce`, and the ID
//! token checked by the `openidconnect` crate (issuer, audience, expiry,
//! signature, nonce). People are matched by issuer and subject; the allowed
//! email domains and groups decide who gets in, and the admin groups who is
//! an admin, at every sign-in.
//!
//! The flow's secrets (PKCE verifier, nonce, where to go after) stay on the
//! server, under the random `state`, for ten minutes and one use; the
//! browser holds the same `state` in a cookie, so a callback the person did
//! not start in this browser is refused (no login CSRF), and a replayed one
//! finds nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;
use wick_core::accounts::{SignInError, Signup};
use wick_core::db::users::{self, ExternalError, ExternalIdentity};
use wick_core::session;

use crate::ServerState;

/// The provider's settings, from `WICK_OIDC_*` and `WICK_ALLOWED_EMAIL_DOMAINS`.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    /// What the button says: "Sign in with {name}".
    pub name: String,
    /// `{WICK_PUBLIC_URL}/auth/oidc/callback`.
    pub redirect_url: String,
    /// Lower-case domains; empty: any.
    pub allowed_email_domains: Vec<String>,
    pub groups_claim: String,
    /// Empty: groups do not make admins.
    pub admin_groups: Vec<String>,
    /// Empty: any group (or none) may sign in.
    pub allowed_groups: Vec<String>,
}

/// The client as discovery makes it (authorization endpoint set, token and
/// userinfo endpoints as the provider lists them).
type Discovered = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A sign-in under way, under its `state`.
struct Started {
    verifier: PkceCodeVerifier,
    nonce: Nonce,
    next: String,
    at: Instant,
}

/// How long a person has at the provider's login form.
const FLOW_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// The most sign-ins under way at once (each is a few hundred bytes; past
/// it, the oldest are dropped: a flood of starts cannot grow memory).
const MAX_STARTED: usize = 10_000;
/// How long a discovery document is trusted before it is read again (the
/// provider may rotate its keys).
const DISCOVERY_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// The cookie holding the flow's `state` in the browser.
const STATE_COOKIE: &str = "wick_oidc_state";

/// The provider and the sign-ins under way.
pub struct Oidc {
    pub settings: OidcSettings,
    http: openidconnect::reqwest::Client,
    discovered: tokio::sync::Mutex<Option<(Discovered, Instant)>>,
    started: Mutex<HashMap<String, Started>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

/// What went wrong, as the person is told (a page with a clear sentence,
/// never a 500); the detail goes to the log.
#[derive(Debug, thiserror::Error)]
enum OidcError {
    #[error("The sign-in provider cannot be reached right now. Try again in a moment.")]
    Unreachable(String),
    #[error("This sign-in was not started in this browser, has expired or was already used. Start again.")]
    UnknownState,
    #[error("The sign-in provider did not sign you in ({0}).")]
    Provider(String),
    #[error("The sign-in could not be verified. Start again.")]
    Invalid(String),
    #[error("Your account at the provider is not allowed to use this Wick.")]
    NotAllowed(String),
    #[error(
        "There is no account for you here, and this Wick does not make new ones: ask an admin."
    )]
    NotInvited,
    #[error("An account with your email already exists here; sign in with its password.")]
    EmailTaken,
    #[error("Your account is waiting for an admin's approval.")]
    Pending,
    #[error("Something went wrong on the server.")]
    Server(String),
}

impl OidcError {
    fn status(&self) -> StatusCode {
        match self {
            OidcError::Unreachable(_) => StatusCode::BAD_GATEWAY,
            OidcError::UnknownState | OidcError::Provider(_) | OidcError::Invalid(_) => {
                StatusCode::BAD_REQUEST
            }
            OidcError::NotAllowed(_)
            | OidcError::NotInvited
            | OidcError::EmailTaken
            | OidcError::Pending => StatusCode::FORBIDDEN,
            OidcError::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn detail(&self) -> Option<&str> {
        match self {
            OidcError::Unreachable(d)
            | OidcError::Invalid(d)
            | OidcError::NotAllowed(d)
            | OidcError::Server(d) => Some(d),
            _ => None,
        }
    }
}

impl IntoResponse for OidcError {
    fn into_response(self) -> Response {
        match self.detail() {
            Some(detail) => tracing::warn!(%detail, "an OpenID sign-in failed: {self}"),
            None => tracing::info!("an OpenID sign-in failed: {self}"),
        }
        let heading = match self {
            OidcError::Pending => "Waiting for approval",
            _ => "Sign-in failed",
        };
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{heading}</title></head><body><main><h1>{heading}</h1>\
             <p>{}</p><p><a href=\"/sign-in\">Back to sign in</a></p></main></body></html>",
            crate::accounts::html_escape(&self.to_string())
        );
        let mut response = (self.status(), page).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Result<Self, String> {
        IssuerUrl::new(settings.issuer.clone()).map_err(|e| format!("WICK_OIDC_ISSUER: {e}"))?;
        RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|e| format!("the redirect URL {}: {e}", settings.redirect_url))?;
        let http = openidconnect::reqwest::Client::builder()
            // Following redirects would let a provider's answer send Wick elsewhere.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("an HTTP client for the provider: {e}"))?;
        Ok(Self {
            settings,
            http,
            discovered: tokio::sync::Mutex::new(None),
            started: Mutex::new(HashMap::new()),
        })
    }

    /// The client, discovering the provider on first use and hourly after
    /// (Wick starts while the provider is down, and recovers when it is up).
    async fn client(&self) -> Result<Discovered, OidcError> {
        let mut discovered = self.discovered.lock().await;
        if let Some((client, at)) = discovered.as_ref() {
            if at.elapsed() < DISCOVERY_LIFETIME {
                return Ok(client.clone());
            }
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| OidcError::Server(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Unreachable(format!("discovery: {e}")))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(
            RedirectUrl::new(self.settings.redirect_url.clone())
                .map_err(|e| OidcError::Server(e.to_string()))?,
        );
        *discovered = Some((client.clone(), Instant::now()));
        Ok(client)
    }

    fn remember(&self, state: String, started: Started) {
        let mut map = self.started.lock().expect("never poisoned");
        map.retain(|_, s| s.at.elapsed() < FLOW_LIFETIME);
        if map.len() >= MAX_STARTED {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.at).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(state, started);
    }

    /// The sign-in started under `state`, taken (a second use finds nothing).
    fn take(&self, state: &str) -> Option<Started> {
        let mut map = self.started.lock().expect("never poisoned");
        map.remove(state).filter(|s| s.at.elapsed() < FLOW_LIFETIME)
    }

    /// Whether the groups and the email let this person in, and whether they
    /// are an admin (`None`: groups do not decide).
    ///
    /// Only an email the provider verified counts for the domains: some
    /// providers let people type any address into their profile.
    fn admit(
        &self,
        email: Option<&str>,
        verified: bool,
        groups: &[String],
    ) -> Result<Option<bool>, OidcError> {
        let s = &self.settings;
        if !s.allowed_email_domains.is_empty() {
            let domain = email.and_then(|e| e.rsplit_once('@')).map(|(_, d)| d);
            if !verified || !domain.is_some_and(|d| s.allowed_email_domains.iter().any(|a| a == d))
            {
                return Err(OidcError::NotAllowed(format!(
                    "email {email:?} (verified: {verified}) is not in WICK_ALLOWED_EMAIL_DOMAINS"
                )));
            }
        }
        let in_any = |wanted: &[String]| groups.iter().any(|g| wanted.contains(g));
        let admin = (!s.admin_groups.is_empty()).then(|| in_any(&s.admin_groups));
        if !s.allowed_groups.is_empty() && !in_any(&s.allowed_groups) && admin != Some(true) {
            return Err(OidcError::NotAllowed(format!(
                "groups {groups:?} are not in WICK_OIDC_ALLOWED_GROUPS"
            )));
        }
        Ok(admin)
    }
}

#[derive(Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    next: String,
}

/// `GET /auth/oidc/start`: to the provider's login, with a fresh `state`,
/// `nonce` and PKCE challenge. A link, not a form: the page's content policy
/// lets forms post only to Wick itself.
pub async fn start(State(state): State<ServerState>, Query(query): Query<StartQuery>) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match start_flow(&oidc, &query.next, state.app.secure_cookies).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn start_flow(oidc: &Oidc, next: &str, secure: bool) -> Result<Response, OidcError> {
    let client = oidc.client().await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in &oidc.settings.scopes {
        if scope != "openid" {
            request = request.add_scope(Scope::new(scope.clone()));
        }
    }
    let (url, csrf, nonce) = request.url();
    oidc.remember(
        csrf.secret().clone(),
        Started {
            verifier,
            nonce,
            next: crate::accounts::safe_next(next).to_owned(),
            at: Instant::now(),
        },
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(
        LOCATION,
        HeaderValue::from_str(url.as_str()).map_err(|e| OidcError::Server(e.to_string()))?,
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.append(
        SET_COOKIE,
        state_cookie(csrf.secret(), secure, FLOW_LIFETIME),
    );
    Ok(response)
}

/// The `state` cookie: sent back only to the callback, and on the
/// provider's redirect (a top-level GET, which `SameSite=Lax` allows).
fn state_cookie(value: &str, secure: bool, lifetime: Duration) -> HeaderValue {
    let cookie = cookie::Cookie::build((STATE_COOKIE, value.to_owned()))
        .path("/auth/oidc")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(lifetime.as_secs() as i64))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("a state is URL-safe text")
}

fn state_from_cookie(headers: &HeaderMap) -> Option<String> {
    session::cookie_values(headers, STATE_COOKIE).next()
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/oidc/callback`: the provider sends the person back here with
/// a code; Wick trades it for an ID token, checks it, and signs them in.
pub async fn callback(
    State(state): State<ServerState>,
    peer: crate::audit::Peer,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = state.oidc.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let secure = state.app.secure_cookies;
    let address = crate::audit::address(&peer);
    let mut response = match finish(&state, &oidc, &headers, query, address).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    // The state is spent either way.
    response
        .headers_mut()
        .append(SET_COOKIE, state_cookie("", secure, Duration::ZERO));
    response
}

async fn finish(
    state: &ServerState,
    oidc: &Oidc,
    headers: &HeaderMap,
    query: CallbackQuery,
    address: Option<std::net::IpAddr>,
) -> Result<Response, OidcError> {
    if let Some(error) = query.error {
        // Only a short, plain code is shown: the text comes from the address.
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(OidcError::Provider(code));
    }
    let from_browser = state_from_cookie(headers);
    let started = match (&query.state, &from_browser) {
        (Some(given), Some(held)) if given == held => oidc.take(given),
        _ => None,
    }
    .ok_or(OidcError::UnknownState)?;
    let code = query
        .code
        .filter(|c| !c.is_empty() && c.len() <= 2048)
        .ok_or_else(|| OidcError::Invalid("the callback had no code".into()))?;
    let client = oidc.client().await?;
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| OidcError::Server(format!("no token endpoint: {e}")))?
        .set_pkce_verifier(started.verifier)
        .request_async(&oidc.http)
        .await
        .map_err(|e| OidcError::Invalid(format!("code exchange: {e}")))?;
    let id_token = token
        .id_token()
        .ok_or_else(|| OidcError::Invalid("the token answer had no ID token".into()))?;
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &started.nonce)
        .map_err(|e| OidcError::Invalid(format!("ID token: {e}")))?;
    if let Some(expected) = claims.access_token_hash() {
        let algorithm = id_token
            .signing_alg()
            .map_err(|e| OidcError::Invalid(format!("ID token algorithm: {e}")))?;
        let key = id_token
            .signing_key(&verifier)
            .map_err(|e| OidcError::Invalid(format!("ID token key: {e}")))?;
        let actual = AccessTokenHash::from_token(token.access_token(), algorithm, key)
            .map_err(|e| OidcError::Invalid(format!("access token hash: {e}")))?;
        if actual != *expected {
            return Err(OidcError::Invalid(
                "the access token hash does not match".into(),
            ));
        }
    }
    // The claims Wick does not model (the groups) are read from the same
    // token, whose signature and claims were checked just above.
    let groups = groups_of(&id_token.to_string(), &oidc.settings.groups_claim);
    let email = claims
        .email()
        .map(|e| users::normalise_email(e.as_str()))
        .filter(|e| users::looks_like_email(e));
    let email_verified = claims.email_verified() == Some(true);
    let admin = oidc.admit(email.as_deref(), email_verified, &groups)?;
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| {
            n.as_str()
                .trim()
                .chars()
                .take(wick_core::accounts::MAX_NAME_CHARS)
                .collect::<String>()
        })
        .filter(|n| !n.is_empty());
    let identity = ExternalIdentity {
        issuer: claims.issuer().as_str().to_owned(),
        subject: claims.subject().as_str().to_owned(),
        email_verified,
        email,
        name,
        admin,
        groups: Some(groups),
    };
    let policy = state.chat().accounts();
    let may_create = policy.signup == Signup::Open;
    let account = users::external_sign_in(
        state.chat().pool(),
        &identity,
        may_create,
        policy.default_role,
    )
    .await
    .map_err(|e| match e {
        ExternalError::NotInvited => OidcError::NotInvited,
        ExternalError::EmailTaken => OidcError::EmailTaken,
        ExternalError::Store(e) => OidcError::Server(e.to_string()),
    })?;
    let current = session::user_from_headers(state.chat().pool(), headers)
        .await
        .map_err(|e| OidcError::Server(e.to_string()))?;
    let signed_in = state
        .chat()
        .sign_in_external(account, current, &session::token_hashes(headers))
        .await
        .map_err(|e| match e {
            SignInError::Pending => OidcError::Pending,
            SignInError::Credentials => OidcError::NotAllowed("the account is disabled".into()),
            other => OidcError::Server(other.to_string()),
        })?;
    tracing::info!(user = signed_in.user, role = %account.role, "signed in with OpenID Connect");
    let action = wick_core::db::team::AuditAction::SignIn;
    let detail = Some("openid".to_owned());
    crate::audit::record(state, Some(signed_in.user), action, None, detail, address).await;
    Ok(crate::accounts::signed(state, signed_in, &started.next))
}

/// The groups claim of a JWT's payload: a list of strings (or one string).
fn groups_of(jwt: &str, claim: &str) -> Vec<String> {
    let payload = jwt
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    match payload.as_ref().and_then(|p| p.get(claim)) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|g| g.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(domains: &[&str], admin: &[&str], allowed: &[&str]) -> Oidc {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Oidc::new(OidcSettings {
            issuer: "http://127.0.0.2:1".into(),
            client_id: "wick".into(),
            client_secret: None,
            scopes: vec!["openid".into()],
            name: "Test".into(),
            redirect_url: "http://127.0.0.1:1/auth/oidc/callback".into(),
            allowed_email_domains: list(domains),
            groups_claim: "groups".into(),
            admin_groups: list(admin),
            allowed_groups: list(allowed),
        })
        .unwrap()
    }

    #[test]
    fn domains_and_groups_decide_who_gets_in_and_who_is_admin() {
        let g = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let open = oidc(&[], &[], &[]);
        assert_eq!(open.admit(None, false, &[]).unwrap(), None);
        let team = oidc(&["example.org"], &["wick-admins"], &["staff"]);
        assert_eq!(
            team.admit(Some("a@example.org"), true, &g(&["staff"]))
                .unwrap(),
            Some(false)
        );
        assert_eq!(
            team.admit(Some("a@example.org"), true, &g(&["wick-admins"]))
                .unwrap(),
            Some(true),
            "an admin group lets in by itself"
        );
        assert!(team
            .admit(Some("a@example.org"), true, &g(&["contractors"]))
            .is_err());
        assert!(team
            .admit(Some("a@elsewhere.example"), true, &g(&["staff"]))
            .is_err());
        assert!(team
            .admit(Some("a@sub.example.org"), true, &g(&["staff"]))
            .is_err());
        assert!(team.admit(None, true, &g(&["staff"])).is_err());
        assert!(
            team.admit(Some("a@example.org"), false, &g(&["staff"]))
                .is_err(),
            "an unverified email proves no domain"
        );
    }

    #[test]
    fn groups_are_read_from_the_payload_as_a_list_or_one_string() {
        let jwt = |payload: &str| format!("h.{}.s", URL_SAFE_NO_PAD.encode(payload));
        assert_eq!(
            groups_of(&jwt(r#"{"groups":["a","b",3]}"#), "groups"),
            ["a", "b"]
        );
        assert_eq!(groups_of(&jwt(r#"{"roles":"x"}"#), "roles"), ["x"]);
        assert!(groups_of(&jwt(r#"{}"#), "groups").is_empty());
        assert!(groups_of("not a jwt", "groups").is_empty());
    }

    #[test]
    fn a_state_is_used_once_and_not_after_its_lifetime() {
        let o = oidc(&[], &[], &[]);
        let started = || Started {
            verifier: PkceCodeVerifier::new("v".repeat(43)),
            nonce: Nonce::new("n".into()),
            next: "/".into(),
            at: Instant::now(),
        };
        o.remember("s1".into(), started());
        assert!(o.take("s1").is_some());
        assert!(o.take("s1").is_none(), "replayed");
        let mut old = started();
        old.at = Instant::now() - FLOW_LIFETIME - Duration::from_secs(1);
        o.remember("s2".into(), old);
        assert!(o.take("s2").is_none(), "expired");
    }
}
