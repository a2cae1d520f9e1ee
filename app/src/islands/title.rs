//! The model's title for a new conversation, shown when it arrives: it is
//! written after the first reply, in the model's queue, so the page that
//! shows the reply's end still has the provisional title (its first words).

use leptos::prelude::*;

/// Asks for the title (the server waits up to half a minute for it) and puts
/// it in the document's title, the page's heading and the sidebar's link.
/// `url` is the `conversation_title` server function's. Draws nothing.
#[island]
pub fn TitleWatcher(conversation_id: String, url: String) -> impl IntoView {
    // Ids are hex (they go into a selector and a form body below).
    #[cfg(feature = "hydrate")]
    if conversation_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        leptos::task::spawn_local(async move {
            if let Some(title) = watch::title(&conversation_id, &url).await {
                watch::show(&conversation_id, &title);
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (conversation_id, url);
}

#[cfg(feature = "hydrate")]
mod watch {
    use leptos::prelude::*;
    use leptos::wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{Headers, RequestInit, Response};

    use crate::islands::dom;

    /// Posts to the server function as a form would, and reads its JSON answer.
    pub async fn title(conversation_id: &str, url: &str) -> Option<String> {
        let headers = Headers::new().ok()?;
        headers
            .set("Content-Type", "application/x-www-form-urlencoded")
            .ok()?;
        headers.set("Accept", "application/json").ok()?;
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_headers(&headers);
        // Conversation ids are hex: nothing to encode.
        init.set_body(&JsValue::from_str(&format!(
            "conversation_id={conversation_id}"
        )));
        let answer = JsFuture::from(window().fetch_with_str_and_init(url, &init))
            .await
            .ok()?;
        let answer: Response = answer.dyn_into().ok()?;
        if !answer.ok() {
            return None;
        }
        JsFuture::from(answer.json().ok()?).await.ok()?.as_string()
    }

    pub fn show(conversation_id: &str, title: &str) {
        document().set_title(&format!("{title} · Wick"));
        if let Some(h1) = dom::query("main h1") {
            h1.set_text_content(Some(title));
        }
        if let Some(link) = dom::query(&format!(
            "#conversation-list a[href=\"/c/{conversation_id}\"]"
        )) {
            link.set_text_content(Some(title));
            let _ = link.set_attribute("title", title);
        }
    }
}
