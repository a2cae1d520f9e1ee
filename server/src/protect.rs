//! What every browser request passes through before the app sees it: a
//! cross-site check on requests that change something, the removal of error
//! text another site put in a link, and the security headers of every answer.

use axum::body::Body;
use axum::extract::Request;
use axum::extract::State;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, HOST, ORIGIN, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ServerState;

/// What the refused request is told (a browser shows it as the page).
pub const CROSS_SITE_MESSAGE: &str =
    "This request came from another site, so Wick refused it. Nothing was changed. \
     Open Wick itself and try again there.";

/// The policy of answers that are not pages (the pages set their own, with
/// the nonce of their inline scripts: see `app::shell`).
const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The query parameter through which Leptos hands a failed form's error to
/// the page it redirects back to.
const ERROR_PARAM: &str = "__err";

/// Refuses a state-changing request that another site made the browser send.
///
/// A form on another site posts without Wick's cookie (it is `SameSite=Lax`),
/// and answering it would start a new anonymous session whose cookie replaces
/// the visitor's own, losing their history; a page on a sibling origin (another
/// port, a sibling subdomain) posts *with* the cookie. Browsers say where a
/// request comes from in `Sec-Fetch-Site` (all current ones) and `Origin`;
/// only the page's own origin may change anything. A request with neither
/// header is not a browser's (a browser sends `Origin` with every POST) and
/// cannot carry a visitor's cookie without their knowing, so it passes.
///
/// The inference APIs are not behind this check: they authenticate with a
/// token in a header, never a cookie, and accept only JSON bodies, which
/// another site cannot send without a CORS preflight Wick does not grant.
///
/// With `WICK_PUBLIC_URL` set, an `Origin` naming that address passes too
/// (behind a proxy, the `Host` Wick sees may be its own).
pub async fn same_origin_only(
    State(state): State<ServerState>,
    request: Request,
    next: Next,
) -> Response {
    let changes_state = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if changes_state
        && !is_inference_api(request.uri().path())
        && !from_own_origin(request.headers(), state.public_url.as_deref())
    {
        tracing::info!(
            method = %request.method(),
            path = request.uri().path(),
            "refused a cross-site request"
        );
        return (StatusCode::FORBIDDEN, CROSS_SITE_MESSAGE).into_response();
    }
    next.run(request).await
}

/// The routes of the inference APIs (token-authenticated, JSON only).
pub fn is_inference_api(path: &str) -> bool {
    path.starts_with("/v1/")
        || path.starts_with("/models/")
        || path == "/generate"
        || path == "/generate_stream"
}

/// Whether the browser says the request comes from Wick's own pages (at
/// the host it asked for, or at the public address).
fn from_own_origin(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none`: the person typed the address or used a bookmark.
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match headers.get(ORIGIN) {
        // An older browser: its `Origin` must name the host it talks to.
        Some(origin) => {
            let origin = origin.to_str().unwrap_or("");
            if public_url.is_some_and(|public| public.eq_ignore_ascii_case(origin)) {
                return true;
            }
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            !host.is_empty() && authority == Some(host)
        }
        None => true,
    }
}

/// Drops the `__err` query parameter from a page request that did not come
/// from one of Wick's own forms, so that a link on another site cannot make
/// Wick show text of its choosing as an error message. Leptos' redirect after
/// a failed plain form post is a same-origin navigation and keeps it.
pub async fn drop_foreign_error_text(mut request: Request, next: Next) -> Response {
    let carries_error = request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split('=').next() == Some(ERROR_PARAM))
    });
    let from_our_form = request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"same-origin");
    if request.method() == Method::GET && carries_error && !from_our_form {
        if let Some(uri) = without_error_param(request.uri()) {
            *request.uri_mut() = uri;
        }
    }
    next.run(request).await
}

fn without_error_param(uri: &Uri) -> Option<Uri> {
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(ERROR_PARAM))
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// The headers every answer carries: no sniffing of content types, no
/// framing by other sites, no full URLs (conversation ids) in referrers, and
/// a strict content policy wherever a page did not set its own.
pub async fn security_headers(mut request: Request<Body>, next: Next) -> Response {
    // A page notes its nonce here as it renders (`app::note_page_nonce`).
    let nonce = app::PageNonce::default();
    request.extensions_mut().insert(nonce.clone());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let page_nonce = nonce.0.lock().ok().and_then(|n| n.clone());
    if let Some(policy) = page_nonce.and_then(|n| HeaderValue::from_str(&app::page_policy(&n)).ok())
    {
        headers.insert(CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    headers
        .entry(CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DEFAULT_CSP));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn own(headers: &HeaderMap) -> bool {
        from_own_origin(headers, None)
    }

    #[test]
    fn behind_a_proxy_the_public_address_is_the_pages_origin_too() {
        let h = headers(&[
            ("origin", "https://chat.example.org"),
            ("host", "127.0.0.1:3000"),
        ]);
        assert!(!own(&h));
        assert!(from_own_origin(&h, Some("https://chat.example.org")));
        assert!(!from_own_origin(&h, Some("https://other.example.org")));
    }

    #[test]
    fn only_the_pages_own_origin_may_change_state() {
        assert!(own(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(own(&headers(&[("sec-fetch-site", "none")])));
        assert!(!own(&headers(&[("sec-fetch-site", "cross-site")])));
        // Another port of the same host is the same *site*, not the same origin.
        assert!(!own(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(own(&headers(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000")
        ])));
        assert!(!own(&headers(&[
            ("origin", "http://127.0.0.1:3001"),
            ("host", "127.0.0.1:3000")
        ])));
        assert!(!own(&headers(&[
            ("origin", "null"),
            ("host", "127.0.0.1:3000")
        ])));
        // Not a browser: curl, scripts, the tests' own clients.
        assert!(own(&headers(&[])));
    }

    #[test]
    fn the_error_parameter_is_dropped_and_the_rest_kept() {
        let uri: Uri = "/c/abc?x=1&__err=%7B%22Invalid%22%7D&y=2".parse().unwrap();
        assert_eq!(without_error_param(&uri).unwrap(), "/c/abc?x=1&y=2");
        let uri: Uri = "/?__err=boo".parse().unwrap();
        assert_eq!(without_error_param(&uri).unwrap(), "/");
    }
}
