//! Wick's web app: the page shell, the routes, the components, and the server
//! functions — thin adapters over `wick-core`'s chat (with the `ssr` feature).
//! The browser build (`hydrate`) sees only `wick-types`: no database, no model.

pub mod api;
pub mod components;
pub mod error;
pub mod islands;
pub mod markdown;
pub mod pages;

/// The data shared with the server, under the names the components use.
pub use wick_types::{conversation as data, message};

#[cfg(feature = "ssr")]
pub mod session;
#[cfg(feature = "ssr")]
pub mod state;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::use_location;
use leptos_router::{path, SsrMode};

use crate::components::sidebar::Sidebar;
use crate::islands::page::PageEvents;
use crate::pages::{
    account::{SignInPage, SignUpPage},
    conversation::ConversationPage,
    new_chat::NewChatPage,
    not_found::NotFound,
    search::SearchPage,
    settings::SettingsPage,
    shared::SharedPage,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <AutoReload options=options.clone() />
                // The stylesheet by its hashed name in a release build.
                <HashedStylesheet options=options.clone() id="leptos" />
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// Where a page's nonce goes for the server's headers layer, which sets the
/// page's content policy from it (`page_policy`). The layer puts an empty one
/// in each request's extensions; `note_page_nonce` fills it.
///
/// (The policy used to be set on Leptos' response options from the page
/// shell; about one reload in fifty in a loop then answered without it, and
/// the page, under the strict policy of non-pages, never became interactive.)
#[cfg(feature = "ssr")]
#[derive(Clone, Default)]
pub struct PageNonce(pub std::sync::Arc<std::sync::Mutex<Option<String>>>);

/// Hands this page's nonce (the one Leptos puts on its scripts) to the
/// request's `PageNonce`. Called as each request's context is set up, right
/// after Leptos provides the nonce; a server function's request has none.
#[cfg(feature = "ssr")]
pub fn note_page_nonce() {
    let (Some(nonce), Some(parts)) = (
        leptos::nonce::use_nonce(),
        use_context::<http::request::Parts>(),
    ) else {
        return;
    };
    if let Some(slot) = parts.extensions.get::<PageNonce>() {
        if let Ok(mut slot) = slot.0.lock() {
            *slot = Some(nonce.to_string());
        }
    }
}

/// A page's content policy: scripts only from Wick itself or inline with
/// this response's nonce (Leptos puts it on the hydration scripts),
/// WebAssembly compiled from Wick's own file, no plugins, no framing, forms
/// posted only to Wick. An injected `<script>` or `onerror=` in a message
/// would not run even if the markdown filter missed it.
#[cfg(feature = "ssr")]
pub fn page_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Title formatter=page_title />
        <Router>
            // (`PageEvents` moves the focus there too; without JavaScript the browser scrolls.)
            <a class="skip-link" href="#composer-input">
                "Skip to the message box"
            </a>
            <PageEvents />
            <div class="layout">
                // A shared conversation is shown alone: no one's sidebar.
                <Show when=move || !use_location().pathname.get().starts_with("/s/")>
                    <Sidebar />
                </Show>
                <main class="chat">
                    // Async: whole pages are rendered on the server, so everything works without
                    // JavaScript and a missing conversation can still answer 404.
                    <Routes fallback=|| view! { <NotFound /> }>
                        <Route path=path!("/") view=NewChatPage ssr=SsrMode::Async />
                        <Route path=path!("/c/:id") view=ConversationPage ssr=SsrMode::Async />
                        <Route path=path!("/settings") view=SettingsPage ssr=SsrMode::Async />
                        <Route path=path!("/search") view=SearchPage ssr=SsrMode::Async />
                        <Route path=path!("/s/:id") view=SharedPage ssr=SsrMode::Async />
                        <Route path=path!("/sign-in") view=SignInPage ssr=SsrMode::Async />
                        <Route path=path!("/sign-up") view=SignUpPage ssr=SsrMode::Async />
                    </Routes>
                </main>
            </div>
        </Router>
    }
}

/// The document title for a page's own title ("" on the start page).
///
/// leptos_meta 0.8 writes the server-rendered `<title>` without escaping it, and
/// conversation titles are user text: a title like `</title><script>` must not
/// become markup. In the browser the same text goes to `document.title`, which
/// is plain text, so escaping there would show the entities.
fn page_title(text: String) -> String {
    let title = if text.is_empty() {
        "Wick".to_owned()
    } else {
        format!("{text} · Wick")
    };
    if cfg!(feature = "ssr") {
        escape_html(&title)
    } else {
        title
    }
}

/// A `<textarea>`'s text as the HTML inside it. Leptos writes a textarea's
/// child text unescaped, so text such as `</textarea><form …>` would end the
/// box and become markup: it is escaped here and set as the inner HTML (which
/// the browser decodes back to exactly the text).
pub(crate) fn textarea_text(text: &str) -> String {
    escape_html(text)
}

pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // Panic messages in the console while developing; a release build
    // (`wasm-release`, no debug assertions) leaves the hook out of the download.
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    // Only the islands (`app::islands`) are in the wasm and come alive.
    leptos::mount::hydrate_islands();
    // Tests (and impatient users' clicks) can tell when the page is interactive.
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let _ = body.set_attribute("data-hydrated", "true");
    }
}
