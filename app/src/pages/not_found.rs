use leptos::prelude::*;
use leptos_meta::Title;

/// Shown for unknown addresses and for conversations the visitor may not see,
/// with status 404 when rendered on the server.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found" />
        <section class="not-found">
            <h1>"Not found"</h1>
            <p>"There is no conversation or page at this address."</p>
            <a href="/">"Start a new chat"</a>
        </section>
    }
}
